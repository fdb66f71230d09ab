"""Friction baseline: the Langevin friction γ that slows a CG model to the all-atom mobility.

A structure-preserving CG potential (IBI) run under Newtonian dynamics diffuses faster than the
all-atom liquid it was fitted to (D_0 > D_AA): coarse-graining removed the friction of the
discarded degrees of freedom. Langevin dynamics put a friction back without touching the
potential: the configurational distribution of Langevin dynamics is the Boltzmann distribution
at any γ, so the RDF, density and pressure of the model are those of the Newtonian run, while
D(γ) decreases monotonically with γ. This module finds the γ with D(γ) = D_AA.

Model of D(γ)
    Friction from the potential (ζ_0 = kT/D_0) and from the bath (m γ) add up, as for a
    Brownian particle in a liquid (the Langevin-dynamics interpolation
    1/D(γ) = 1/D_0 + m γ / kT; exact for free particles, where D = kT/(m γ) at D_0 → ∞).
    Liquids deviate from it (the bath friction also changes the cage dynamics), so the slope
    is taken from the measurements as soon as there are any.

Root finder (safeguarded regula falsi in ln γ on the linearised residual)
    y(γ) = 1/D(γ) is close to linear in γ, so γ is chosen where the straight line through two
    measured points of (γ, y) reaches y* = 1/D_AA:

    * first guess: γ₁ = (kT/m) (1/D_AA − 1/D_0), the interpolation above with D_0 the Newtonian D;
    * afterwards, while the target is not bracketed, the line through the Newtonian point (0, y_0)
      and the measured point nearest the target (the effective relation, updated with each
      measurement); once it is bracketed, the line through the tightest bracket
      [γ_lo (D > D_AA), γ_hi (D < D_AA)] (regula falsi);
    * safeguards in x = ln γ: before a bracket exists γ changes by at most a factor
      ``max_step_factor`` per step; inside a bracket a proposal outside the central 80 % of
      [ln γ_lo, ln γ_hi] is replaced by bisection in ln γ (Dekker's rule, as in Brent's method;
      with γ_lo = 0 the lower end is γ_hi / ``max_step_factor``); γ stays within
      [``gamma_min_per_ps``, ``gamma_max_per_ps``].

    The fit stops at the first evaluation with
    |D − D_AA| ≤ max(``sigmas`` · sqrt(σ_D² + σ_AA²), ``tolerance`` · D_AA) (σ: standard errors)
    and otherwise after ``max_evaluations``, when γ would repeat, or when the target lies beyond
    the γ range; the result is then the evaluation closest to the target (in units of its
    criterion) and ``converged`` is False. If the Newtonian model already meets the criterion
    the answer is γ = 0; if it is slower than the target beyond it, no friction can help
    (γ = 0, not converged).

    Uncertainty of γ: σ_γ = σ_y / b with σ_y the combined error of y − y* and b the slope of y
    over γ of the chord from the Newtonian point to the accepted one (the range of γ whose D is
    compatible with D_AA).

This module is the search (:func:`search_friction`): it takes the evaluation of one γ as a
callable, ``evaluate(name, protocol) → run summary``, and runs no simulation itself.
:func:`cgforge.workflows.friction.fit_friction` is the fit with CG runs: every evaluation is a
CG run of :func:`cgforge.workflows.cg.run_cg` (NPT equilibration, then production at the NPT
mean volume with the langevin production ensemble of :class:`~cgforge.engines.protocol.MDProtocol`),
each in its own run directory, all with the same seed (common random numbers make the
differences between evaluations less noisy than the values). Work directory (resumable: finished evaluations are read back, the sequence of γ is
deterministic, an unfinished evaluation resumes from its checkpoints)::

    newtonian/        the Newtonian (protocol's own ensemble) run, when D_0 is not given
    eval_NNN/         run_cg output of evaluation NNN (summary.json, rdf.csv, msd.csv, ...)
    history.csv       run,gamma_per_ps,diffusion_m2_s,diffusion_err_m2_s,deviation_m2_s,
                      criterion_m2_s,accepted,step (rewritten after each evaluation)
    summary.json      the fit (written last): gamma_per_ps, gamma_err_per_ps, converged,
                      reason, final_run, history and the final run's comparison fields

Units: γ in 1/ps, D in m²/s at the interface (nm²/ps inside the relation), mass amu, T K.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cgforge.engines.cg_engine import resolved_protocol
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import InputError, check_settings
from cgforge.fileio import write_text
from cgforge.units import NM2_PS_TO_M2_S, kT

#: Columns of ``history.csv``.
HISTORY_COLUMNS = (
    "run",
    "gamma_per_ps",
    "diffusion_m2_s",
    "diffusion_err_m2_s",
    "deviation_m2_s",
    "criterion_m2_s",
    "accepted",
    "step",
)
NEWTONIAN_DIR = "newtonian"

#: ``evaluate(name, protocol)``: run the model under ``protocol`` in the work directory's
#: subdirectory ``name`` and return its summary (at least ``diffusion_m2_s``).
FrictionEvaluator = Callable[[str, MDProtocol], Mapping[str, Any]]


@dataclass(frozen=True)
class FrictionConfig:
    """Settings of the friction fit (see the module docstring).

    ``tolerance``: relative bound on |D − D_AA| / D_AA that counts as a match whatever the
    errors; ``sigmas``: how many combined standard errors count as a match;
    ``max_evaluations``: Langevin runs at most; ``gamma_min_per_ps``/``gamma_max_per_ps``: the
    range searched (1/ps); ``max_step_factor``: largest factor between successive γ before the
    target is bracketed.
    """

    tolerance: float = 0.05
    sigmas: float = 2.0
    max_evaluations: int = 8
    gamma_min_per_ps: float = 1.0e-3
    gamma_max_per_ps: float = 1.0e3
    max_step_factor: float = 10.0

    def __post_init__(self) -> None:
        checks = {
            "tolerance": self.tolerance >= 0,
            "sigmas": self.sigmas >= 0,
            "max_evaluations": isinstance(self.max_evaluations, int)
            and not isinstance(self.max_evaluations, bool)
            and self.max_evaluations >= 1,
            "gamma_min_per_ps": self.gamma_min_per_ps > 0,
            "gamma_max_per_ps": self.gamma_max_per_ps > self.gamma_min_per_ps,
            "max_step_factor": self.max_step_factor > 1,
        }
        check_settings(self, checks, "friction-fit", finite=True)
        if self.tolerance == 0 and self.sigmas == 0:
            raise InputError("give the friction fit a tolerance > 0 or sigmas > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrictionPoint:
    """One measured point: ``run`` directory name, γ (1/ps), D and its error (m²/s)."""

    run: str
    gamma_per_ps: float
    diffusion_m2_s: float
    diffusion_err_m2_s: float
    step: str  # how γ was chosen

    @property
    def inverse_d(self) -> float:
        """1/D in ps/nm²."""
        return NM2_PS_TO_M2_S / self.diffusion_m2_s


@dataclass(frozen=True)
class FrictionFit:
    """Result of :func:`cgforge.workflows.friction.fit_friction`.

    ``gamma_per_ps`` the fitted friction (1/ps; 0 when the Newtonian model needs none or cannot
    be helped), ``gamma_err_per_ps`` its uncertainty, ``converged``, ``reason``,
    ``final_run`` the run directory of the accepted evaluation (None when there is none),
    ``history`` the measured points (the Newtonian one first), ``summary`` the fit's
    summary.json.
    """

    gamma_per_ps: float
    gamma_err_per_ps: float
    converged: bool
    reason: str
    final_run: Path | None
    history: tuple[FrictionPoint, ...]
    summary: dict[str, Any]


def initial_gamma(
    d0_m2_s: float, target_m2_s: float, mass_amu: float, temperature_K: float
) -> float:
    """γ (1/ps) of 1/D_target = 1/D_0 + m γ / kT (D in m²/s, mass amu, T K)."""
    y0 = NM2_PS_TO_M2_S / d0_m2_s
    y_target = NM2_PS_TO_M2_S / target_m2_s
    return (y_target - y0) * kT(temperature_K) / mass_amu


def criterion_m2_s(
    d_err: float, target_m2_s: float, target_err: float, config: FrictionConfig
) -> float:
    """Largest |D − D_target| that counts as a match (m²/s)."""
    return max(config.sigmas * math.hypot(d_err, target_err), config.tolerance * target_m2_s)


def _finite_or(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def propose_gamma(
    newtonian: FrictionPoint,
    points: list[FrictionPoint],
    target_m2_s: float,
    mass_amu: float,
    temperature_K: float,
    config: FrictionConfig,
) -> tuple[float, str]:
    """The next γ (1/ps) and a word on how it was chosen (see the module docstring)."""
    y_target = NM2_PS_TO_M2_S / target_m2_s
    if not points:
        gamma = initial_gamma(newtonian.diffusion_m2_s, target_m2_s, mass_amu, temperature_K)
        return _clamp(gamma, config), "first guess 1/D = 1/D0 + m gamma/kT"
    fast = [p for p in points if p.inverse_d < y_target]  # D above the target: need more γ
    slow = [p for p in points if p.inverse_d >= y_target]
    if fast and slow:
        lo = max(fast, key=lambda p: p.gamma_per_ps)
        hi = min(slow, key=lambda p: p.gamma_per_ps)
        if lo.gamma_per_ps < hi.gamma_per_ps:
            return _bracketed(lo, hi, y_target, config)
        # noise made D non-monotonic: bracket against the Newtonian point instead
        return _bracketed(newtonian, hi, y_target, config)
    if slow and newtonian.inverse_d < y_target:
        hi = min(slow, key=lambda p: p.gamma_per_ps)
        return _bracketed(newtonian, hi, y_target, config)
    # not bracketed: every Langevin point is still too fast; extrapolate the effective relation
    nearest = max(points, key=lambda p: p.gamma_per_ps)
    slope = (nearest.inverse_d - newtonian.inverse_d) / nearest.gamma_per_ps
    if slope > 0:
        gamma = nearest.gamma_per_ps + (y_target - nearest.inverse_d) / slope
        how = "effective relation through the Newtonian and the last point"
    else:
        gamma = math.inf
        how = "D did not decrease; larger step"
    gamma = min(gamma, nearest.gamma_per_ps * config.max_step_factor)
    gamma = max(gamma, nearest.gamma_per_ps * 1.05)
    return _clamp(gamma, config), how


def _bracketed(
    lo: FrictionPoint, hi: FrictionPoint, y_target: float, config: FrictionConfig
) -> tuple[float, str]:
    g_lo = lo.gamma_per_ps if lo.gamma_per_ps > 0 else hi.gamma_per_ps / config.max_step_factor
    g_hi = hi.gamma_per_ps
    dy = hi.inverse_d - lo.inverse_d
    gamma = (
        lo.gamma_per_ps + (y_target - lo.inverse_d) * (hi.gamma_per_ps - lo.gamma_per_ps) / dy
        if dy > 0
        else math.nan
    )
    x_lo, x_hi = math.log(g_lo), math.log(g_hi)
    inside = (
        math.isfinite(gamma)
        and gamma > 0
        and x_lo + 0.1 * (x_hi - x_lo) <= math.log(gamma) <= x_lo + 0.9 * (x_hi - x_lo)
    )
    if inside:
        return _clamp(gamma, config), "regula falsi in the bracket"
    return _clamp(math.exp(0.5 * (x_lo + x_hi)), config), "bisection in ln gamma"


def _clamp(gamma: float, config: FrictionConfig) -> float:
    value = min(max(gamma, config.gamma_min_per_ps), config.gamma_max_per_ps)
    return float(f"{value:.6g}")  # a clean number for the run's configuration


def _point(run: str, summary: Mapping[str, Any], gamma: float, step: str) -> FrictionPoint:
    d = _finite_or(summary.get("diffusion_m2_s"), math.nan)
    if not (d > 0):
        raise InputError(
            f"run {run} measured no positive diffusion coefficient ({d}); lengthen the production"
        )
    return FrictionPoint(
        run=run,
        gamma_per_ps=gamma,
        diffusion_m2_s=d,
        diffusion_err_m2_s=_finite_or(summary.get("diffusion_err_m2_s"), 0.0),
        step=step,
    )


def friction_protocol(protocol: MDProtocol) -> MDProtocol:
    """The Newtonian protocol of a friction fit: ``protocol`` resolved, without a production
    friction, its Langevin production (if any) replaced by Nosé–Hoover ``nvt``."""
    base = resolved_protocol(replace(protocol, production_friction_per_ps=None))
    if base.production_ensemble == "langevin":
        base = replace(base, production_ensemble="nvt")
    return base


def search_friction(
    evaluate: FrictionEvaluator,
    root: Path,
    *,
    base: MDProtocol,
    target: float,
    target_err: float,
    mass: float,
    newtonian_diffusion_m2_s: float | None = None,
    newtonian_diffusion_err_m2_s: float | None = None,
    config: FrictionConfig,
) -> dict[str, Any]:
    """The root search of the friction fit (see the module docstring); its summary fields.

    ``evaluate(name, protocol)`` runs the model with ``protocol`` in ``root / name`` and returns
    that run's summary (``diffusion_m2_s``, ``diffusion_err_m2_s``; the accepted run's summary
    goes into ``final_summary``). ``base`` is the Newtonian protocol
    (:func:`friction_protocol`); it is evaluated in :data:`NEWTONIAN_DIR` unless
    ``newtonian_diffusion_m2_s`` gives its D. ``target``/``target_err``: D_target and its
    standard error (m²/s); ``mass``: bead mass (amu). ``history.csv`` is rewritten in ``root``
    after each evaluation. The caller adds provenance and writes the summary.
    """
    newtonian_summary: Mapping[str, Any] | None = None
    if newtonian_diffusion_m2_s is None:
        newtonian_summary = evaluate(NEWTONIAN_DIR, base)
        newtonian = _point(NEWTONIAN_DIR, newtonian_summary, 0.0, f"{base.production_ensemble} run")
    else:
        d0 = float(newtonian_diffusion_m2_s)
        if not (math.isfinite(d0) and d0 > 0):
            raise InputError(f"the Newtonian D must be positive (m2/s), got {d0}")
        newtonian = FrictionPoint(
            "given", 0.0, d0, float(newtonian_diffusion_err_m2_s or 0.0), "given"
        )
    temperature = base.temperature_K
    rows: list[dict[str, Any]] = []

    def record(p: FrictionPoint, accepted: bool) -> float:
        crit = criterion_m2_s(p.diffusion_err_m2_s, target, target_err, config)
        rows.append(
            {
                "run": p.run,
                "gamma_per_ps": p.gamma_per_ps,
                "diffusion_m2_s": p.diffusion_m2_s,
                "diffusion_err_m2_s": p.diffusion_err_m2_s,
                "deviation_m2_s": p.diffusion_m2_s - target,
                "criterion_m2_s": crit,
                "accepted": int(accepted),
                "step": p.step,
            }
        )
        _write_history(root / "history.csv", rows)
        return crit

    points: list[FrictionPoint] = []
    d0_crit = criterion_m2_s(newtonian.diffusion_err_m2_s, target, target_err, config)
    d0_match = abs(newtonian.diffusion_m2_s - target) <= d0_crit
    record(newtonian, d0_match)
    accepted: FrictionPoint | None = None
    accepted_summary: Mapping[str, Any] | None = None
    if d0_match:
        converged, reason = True, "the Newtonian model already matches the target; gamma = 0"
        accepted, accepted_summary = newtonian, newtonian_summary
    elif newtonian.diffusion_m2_s < target:
        converged = False
        reason = (
            "the Newtonian model is slower than the target; friction only slows it further "
            "(gamma = 0)"
        )
    else:
        converged, reason = False, f"no match within {config.max_evaluations} evaluations"
        summaries: dict[str, Mapping[str, Any]] = {}
        for i in range(config.max_evaluations):
            gamma, how = propose_gamma(newtonian, points, target, mass, temperature, config)
            if any(abs(p.gamma_per_ps - gamma) <= 1e-6 * gamma for p in points):
                reason = (
                    f"gamma {gamma:g}/ps repeats: the target lies beyond "
                    f"[{config.gamma_min_per_ps:g}, {config.gamma_max_per_ps:g}]/ps or D is "
                    "too noisy; lengthen the production"
                )
                break
            name = f"eval_{i:03d}"
            proto = replace(base, production_ensemble="langevin", production_friction_per_ps=gamma)
            summaries[name] = evaluate(name, proto)
            point = _point(name, summaries[name], gamma, how)
            points.append(point)
            crit = criterion_m2_s(point.diffusion_err_m2_s, target, target_err, config)
            match = abs(point.diffusion_m2_s - target) <= crit
            record(point, match)
            if match:
                converged, reason = True, f"|D - D_target| within its criterion at {name}"
                accepted, accepted_summary = point, summaries[name]
                break
        if accepted is None and points:
            accepted = min(
                points,
                key=lambda p: (
                    abs(p.diffusion_m2_s - target)
                    / criterion_m2_s(p.diffusion_err_m2_s, target, target_err, config)
                ),
            )
            accepted_summary = summaries[accepted.run]
    gamma_fit, gamma_err = _gamma_and_error(newtonian, accepted, target, target_err)
    history = (newtonian, *points)
    final_run = None if accepted is None or accepted.run == "given" else accepted.run
    summary: dict[str, Any] = {
        "method": "Langevin friction fitted to the target diffusion coefficient",
        "gamma_per_ps": gamma_fit,
        "gamma_err_per_ps": gamma_err,
        "converged": converged,
        "reason": reason,
        "evaluations": len(points),
        "target_diffusion_m2_s": target,
        "target_diffusion_err_m2_s": target_err,
        "newtonian_diffusion_m2_s": newtonian.diffusion_m2_s,
        "newtonian_diffusion_err_m2_s": newtonian.diffusion_err_m2_s,
        "diffusion_m2_s": None if accepted is None else accepted.diffusion_m2_s,
        "diffusion_err_m2_s": None if accepted is None else accepted.diffusion_err_m2_s,
        "first_guess_per_ps": initial_gamma(newtonian.diffusion_m2_s, target, mass, temperature)
        if newtonian.diffusion_m2_s > target
        else 0.0,
        "mass_amu": mass,
        "temperature_K": temperature,
        "final_run": final_run,
        "final_summary": None
        if accepted_summary is None
        else {k: v for k, v in accepted_summary.items() if k != "provenance"},
        "history": [asdict(p) for p in history],
        "files": {"history": "history.csv"},
    }
    return summary


def _gamma_and_error(
    newtonian: FrictionPoint, accepted: FrictionPoint | None, target: float, target_err: float
) -> tuple[float, float]:
    if accepted is None or accepted.gamma_per_ps <= 0:
        return 0.0, 0.0
    slope = (accepted.inverse_d - newtonian.inverse_d) / accepted.gamma_per_ps  # ps²/nm²
    if not slope > 0:
        return accepted.gamma_per_ps, math.nan
    # error of y = 1/D (ps/nm²) of the point and of the target, combined
    sigma_y = math.hypot(
        accepted.diffusion_err_m2_s / accepted.diffusion_m2_s * accepted.inverse_d,
        target_err / target * (NM2_PS_TO_M2_S / target),
    )
    return accepted.gamma_per_ps, sigma_y / slope


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    def cell(value: Any) -> str:
        return f"{value:.10g}" if isinstance(value, float) else str(value)

    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(cell(row[c]) for c in HISTORY_COLUMNS) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def fit_from_summary(root: Path, summary: dict[str, Any]) -> FrictionFit:
    """The :class:`FrictionFit` of a finished fit's summary (run directories under ``root``)."""
    history = tuple(FrictionPoint(**p) for p in summary["history"])
    final = summary.get("final_run")
    return FrictionFit(
        gamma_per_ps=float(summary["gamma_per_ps"]),
        gamma_err_per_ps=_finite_or(summary.get("gamma_err_per_ps"), math.nan),
        converged=bool(summary["converged"]),
        reason=str(summary["reason"]),
        final_run=None if final is None else root / final,
        history=history,
        summary=summary,
    )
