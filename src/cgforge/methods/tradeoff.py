"""The structure–mobility trade-off of a one-bead CG liquid, searched directly with CG MD.

By Henderson's theorem the pair potential that reproduces a liquid's g(r) is unique, and at the
true bead mass it gives the CG liquid its own diffusion coefficient, several times the all-atom
one (the CG energy landscape is smoother). Any pair potential that is slower must give up some
structure. This module finds how much: starting from a structure-preserving potential U₀ (IBI),
it searches potentials

    U_c(r) = (1 + c₀) U₀(r) + Σₖ cₖ φₖ(r)

(c₀ scales the whole potential, like a change of temperature; φₖ are K smooth bumps of height
kT between the core of the target g(r) and the cutoff, a partition of unity there) that
minimise the squared deviation of g_c from the target g(r) subject to D_c / D_AA = ρ, for a
sequence of targets ρ from U₀'s own ratio down to ``target_ratio`` (default 1, mobility-exact).
The result, RDF deviation against D_CG/D_AA, is the best a pair potential with the true mass can
do between the two goals: a yardstick for the mobility model's predictions and, for one liquid,
a method of its own (a few dozen short CG runs).

The search is a trust-region Gauss–Newton method on a local linear model of the measurements
(g on the target's bins and ln D), fitted by weighted least squares to every evaluation made so
far (a central-difference design around U₀ first): MD noise averages out in the fit, and no
gradient of MD is needed. Each step solves the linearised problem with the equality constraint
in closed form (KKT), shortened to the trust radius. A target counts as reached when the
measured ratio lies within ``ratio_tolerance`` (relative, or two standard errors if larger);
otherwise its row is the closest point found.

The MD itself is the caller's: :func:`trace_tradeoff` takes an ``evaluate`` callable that runs a
potential and returns its :class:`Measurement` (``cgforge.workflows.tradeoff`` runs it with the
CG engine and keeps every evaluation on disk, so a killed search resumes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError, SimulationError
from cgforge.methods.ibi import rdf_deviation, rdf_r2
from cgforge.methods.measure import Measurement
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.table import TabulatedPotential
from cgforge.units import kT

#: g(r) of the target below which the core region starts (the bumps begin where g first
#: exceeds this).
CORE_G = 0.05


@dataclass(frozen=True)
class TradeoffConfig:
    """Settings of the search (dimensionless unless named).

    ``n_basis`` bumps φₖ; ``points`` targets on the curve, spaced evenly in ln ρ from the
    start potential's ratio to ``target_ratio`` (the start itself is the curve's first point);
    ``max_steps`` Gauss–Newton steps per target; ``ratio_tolerance`` (relative) for a target
    to count as reached; ``probe`` the coefficient step of the initial central-difference design
    and ``trust_radius`` the largest coefficient change per step (both in units of kT for the
    bumps, and of U₀ for the scale c₀, which uses ``scale_probe``); ``ridge`` a Tikhonov term that
    keeps steps from directions the data do not determine.
    """

    n_basis: int = 6
    points: int = 5
    target_ratio: float = 1.0
    max_steps: int = 6
    ratio_tolerance: float = 0.05
    probe: float = 0.3
    scale_probe: float = 0.1
    trust_radius: float = 1.0
    ridge: float = 1e-3

    def __post_init__(self) -> None:
        checks = {
            "n_basis": isinstance(self.n_basis, int) and 1 <= self.n_basis <= 20,
            "points": isinstance(self.points, int) and 1 <= self.points <= 50,
            "target_ratio": math.isfinite(self.target_ratio) and self.target_ratio > 0,
            "max_steps": isinstance(self.max_steps, int) and self.max_steps >= 1,
            "ratio_tolerance": 0 < self.ratio_tolerance < 1,
            "probe": 0 < self.probe <= 5,
            "scale_probe": 0 < self.scale_probe < 1,
            "trust_radius": 0 < self.trust_radius <= 10,
            "ridge": self.ridge >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InputError(
                f"invalid trade-off settings: {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}"
                " (n_basis 1-20, points 1-50, target_ratio > 0, max_steps >= 1, "
                "0 < ratio_tolerance < 1, 0 < probe <= 5, 0 < scale_probe < 1, "
                "0 < trust_radius <= 10, ridge >= 0)"
            )


@dataclass(frozen=True)
class Evaluation:
    """One potential of the search: its coefficients (c₀, c₁…c_K), measurement and scores
    (``measurement`` None, scores NaN: its CG run failed, ``failure`` says why)."""

    index: int
    coefficients: tuple[float, ...]
    measurement: Measurement | None = field(repr=False)
    ratio: float
    ratio_err: float
    rdf_deviation: float
    rdf_r2: float
    purpose: str
    failure: str | None = None

    def row(self) -> dict[str, Any]:
        nan = float("nan")
        m = self.measurement
        return {
            "evaluation": self.index,
            "purpose": self.purpose,
            "ratio": self.ratio,
            "ratio_err": self.ratio_err,
            "rdf_deviation": self.rdf_deviation,
            "rdf_r2": self.rdf_r2,
            "diffusion_m2_s": nan if m is None else m.diffusion_m2_s,
            "diffusion_err_m2_s": nan if m is None else m.diffusion_err_m2_s,
            "pressure_bar": nan if m is None else m.pressure_bar,
            "pressure_err_bar": nan if m is None else m.pressure_err_bar,
            "temperature_K": nan if m is None else m.temperature_K,
            "coefficients": list(self.coefficients),
            "failure": self.failure,
        }


@dataclass(frozen=True)
class CurvePoint:
    """The curve at one target ratio: the evaluation kept and whether the target was reached."""

    target_ratio: float
    evaluation: Evaluation
    reached: bool

    def row(self) -> dict[str, Any]:
        return {"target_ratio": self.target_ratio, "reached": self.reached, **self.evaluation.row()}


@dataclass(frozen=True)
class TradeoffResult:
    """The curve (one :class:`CurvePoint` per target, the start first) and every evaluation."""

    curve: tuple[CurvePoint, ...]
    evaluations: tuple[Evaluation, ...]
    basis: TradeoffBasis
    config: TradeoffConfig

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "basis": self.basis.to_dict(),
            "curve": [p.row() for p in self.curve],
            "evaluations": [e.row() for e in self.evaluations],
        }


class TradeoffBasis:
    """The potentials U_c = (1 + c₀) U₀ + Σₖ cₖ φₖ on U₀'s grid.

    φₖ(r) = kT cos²(π (r − rₖ) / (2h)) for |r − rₖ| < h, with centres rₖ = r_core + k h
    (k = 1…K) and h = (cutoff − r_core) / (K + 1): smooth (continuous force), zero at r_core and
    at the cutoff, summing to kT in between.
    """

    def __init__(self, start: TabulatedPotential, r_core_nm: float, n_basis: int, kt: float):
        cutoff = start.cutoff_nm
        if not (0.0 <= r_core_nm < cutoff):
            raise InputError(
                f"the core radius {r_core_nm:.3g} nm is not below the cutoff {cutoff:.3g} nm; "
                "the target g(r) has no liquid structure inside the potential's range"
            )
        self.start = start
        self.kt = float(kt)
        self.r_core_nm = float(r_core_nm)
        self.width_nm = (cutoff - r_core_nm) / (n_basis + 1)
        self.centres_nm = r_core_nm + self.width_nm * np.arange(1, n_basis + 1)

    @property
    def size(self) -> int:
        """Number of coefficients (the scale and the bumps)."""
        return 1 + len(self.centres_nm)

    def to_dict(self) -> dict[str, Any]:
        return {
            "form": "U = (1 + c0) U_start + sum_k c_k kT cos^2(pi (r - r_k) / (2 h)), |r - r_k| < h",
            "kT_kJ_mol": self.kt,
            "r_core_nm": self.r_core_nm,
            "h_nm": self.width_nm,
            "centres_nm": self.centres_nm.tolist(),
        }

    def bumps(self, r: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """φₖ(r) and −dφₖ/dr, shape (K, len(r)), kJ/mol and kJ/mol/nm."""
        x = (r[None, :] - self.centres_nm[:, None]) * (math.pi / (2.0 * self.width_nm))
        inside = np.abs(x) < math.pi / 2
        phi = np.where(inside, self.kt * np.cos(x) ** 2, 0.0)
        force = np.where(inside, self.kt * np.sin(2.0 * x) * math.pi / (2.0 * self.width_nm), 0.0)
        return phi, force

    def potential(self, coefficients: Sequence[float]) -> TabulatedPotential:
        """U_c on the start potential's grid, with its analytic force."""
        c = np.asarray(coefficients, dtype=np.float64)
        if c.shape != (self.size,) or not np.all(np.isfinite(c)):
            raise InputError(f"expected {self.size} finite coefficients, got {c.tolist()}")
        r = self.start.r_nm
        phi, dphi = self.bumps(r)
        u = (1.0 + c[0]) * self.start.u_kj_mol + c[1:] @ phi
        f = (1.0 + c[0]) * self.start.f_kj_mol_nm + c[1:] @ dphi
        return TabulatedPotential(
            r,
            u,
            cutoff_nm=self.start.cutoff_nm,
            force_kj_mol_nm=f,
            wall_below_nm=self.start.wall_below_nm,
        )


def core_radius(target: RDFResult, threshold: float = CORE_G) -> float:
    """The distance where the target g(r) first exceeds ``threshold`` (nm)."""
    g = np.asarray(target.g)
    above = np.nonzero(g > threshold)[0]
    if above.size == 0:
        raise InputError(f"the target g(r) never exceeds {threshold}; it is not a liquid's RDF")
    return float(target.r_nm[above[0]])


Evaluator = Callable[[TabulatedPotential, int, str], Measurement]


class _Search:
    """The search state: the evaluations made and the local linear model around a centre."""

    def __init__(
        self,
        basis: TradeoffBasis,
        target: RDFResult,
        diffusion_aa_m2_s: float,
        r_max_nm: float,
        evaluate: Evaluator,
        config: TradeoffConfig,
    ) -> None:
        self.basis = basis
        self.target = target
        self.d_aa = diffusion_aa_m2_s
        self.r_max = r_max_nm
        self.evaluate_md = evaluate
        self.c = config
        self.trust = config.trust_radius / config.probe  # max |Δ_k| in probe units
        keep = np.asarray(target.r_nm) <= r_max_nm
        self.bins = np.asarray(target.r_nm)[keep]
        self.g_target = np.asarray(target.g)[keep]
        self.norm = math.sqrt(float(np.sum(self.g_target)))
        self.evaluations: list[Evaluation] = []
        self.features: list[NDArray[np.float64]] = []  # residual of g, scaled; then ln ratio
        self.scales = np.array([config.scale_probe] + [config.probe] * (basis.size - 1))

    # ------------------------------------------------------------------ evaluations
    def evaluate(self, coefficients: NDArray[np.float64], purpose: str) -> Evaluation:
        index = len(self.evaluations)
        nan = float("nan")
        try:
            m = self.evaluate_md(self.basis.potential(coefficients), index, purpose)
        except SimulationError as exc:
            ev = Evaluation(
                index,
                tuple(float(x) for x in coefficients),
                None,
                nan,
                nan,
                nan,
                nan,
                purpose,
                failure=" ".join(str(exc).split()),
            )
            self.evaluations.append(ev)
            self.features.append(np.full(len(self.bins) + 1, nan))
            self.trust *= 0.5  # a blow-up: take shorter steps from here on
            return ev
        d, e = m.diffusion_m2_s, m.diffusion_err_m2_s
        ratio = d / self.d_aa if math.isfinite(d) and d > 0 else nan
        ratio_err = ratio * (e / d) if math.isfinite(ratio) and math.isfinite(e) else nan
        ev = Evaluation(
            index=index,
            coefficients=tuple(float(x) for x in coefficients),
            measurement=m,
            ratio=ratio,
            ratio_err=ratio_err,
            rdf_deviation=rdf_deviation(m.rdf, self.target, self.r_max),
            rdf_r2=rdf_r2(m.rdf, self.target, self.r_max),
            purpose=purpose,
        )
        self.evaluations.append(ev)
        g = np.interp(self.bins, np.asarray(m.rdf.r_nm), np.asarray(m.rdf.g))
        ln_ratio = math.log(ratio) if math.isfinite(ratio) else nan
        self.features.append(np.append((g - self.g_target) / self.norm, ln_ratio))
        return ev

    # ------------------------------------------------------------------ local model
    def local_model(
        self, centre: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Intercept (features at ``centre``) and Jacobian (features × coefficients) of the
        linear model fitted to the evaluations, weighted by closeness to ``centre`` (in units
        of the probe steps); evaluations without a finite D are left out."""
        x = np.array([e.coefficients for e in self.evaluations]) - centre
        y = np.array(self.features)
        ok = np.all(np.isfinite(y), axis=1)
        x, y = x[ok], y[ok]
        if len(x) < self.basis.size + 1:
            raise InputError(
                f"only {len(x)} evaluations with a finite D; the local model needs "
                f"{self.basis.size + 1} (the potentials freeze or blow up: lower probe)"
            )
        dist = np.linalg.norm(x / self.scales, axis=1)
        reach = max(2.0 * self.c.trust_radius / self.c.probe, 2.0)
        w = np.exp(-0.5 * (dist / reach) ** 2)
        design = np.hstack([np.ones((len(x), 1)), x]) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(design, y * np.sqrt(w)[:, None], rcond=None)
        return coef[0], coef[1:].T

    def step(self, centre: NDArray[np.float64], ln_target: float) -> NDArray[np.float64]:
        """The next coefficients: min ‖a + J_g Δ‖² + ridge ‖Δ/s‖² subject to
        z + j·Δ = ln ρ (KKT), shortened so that no coefficient moves by more than the trust
        radius (s: the probe steps; the scale c₀ moves by at most trust × scale_probe/probe)."""
        intercept, jac = self.local_model(centre)
        a, z = intercept[:-1], intercept[-1]
        jg, jz = jac[:-1], jac[-1]
        n = self.basis.size
        s2 = np.diag(1.0 / self.scales**2)
        kkt = np.zeros((n + 1, n + 1))
        kkt[:n, :n] = 2.0 * (jg.T @ jg + self.c.ridge * s2)
        kkt[:n, n] = jz
        kkt[n, :n] = jz
        rhs = np.append(-2.0 * jg.T @ a, ln_target - z)
        delta = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:n]
        size = float(np.max(np.abs(delta / self.scales)))
        if size > self.trust:
            delta *= self.trust / size
        return centre + delta

    def reached(self, ev: Evaluation, target_ratio: float) -> bool:
        if not math.isfinite(ev.ratio):
            return False
        bound = max(self.c.ratio_tolerance, 2.0 * ev.ratio_err / ev.ratio)
        return abs(math.log(ev.ratio / target_ratio)) <= bound

    def best_for(self, target_ratio: float) -> CurvePoint:
        """The lowest RDF deviation among evaluations that reach ``target_ratio``; else the
        evaluation closest to it in ln ratio."""
        hits = [e for e in self.evaluations if self.reached(e, target_ratio)]
        if hits:
            return CurvePoint(target_ratio, min(hits, key=lambda e: e.rdf_deviation), True)
        finite = [e for e in self.evaluations if math.isfinite(e.ratio)]
        closest = min(finite, key=lambda e: abs(math.log(e.ratio / target_ratio)))
        return CurvePoint(target_ratio, closest, False)


def trace_tradeoff(
    start: TabulatedPotential,
    target: RDFResult,
    diffusion_aa_m2_s: float,
    temperature_K: float,
    evaluate: Evaluator,
    config: TradeoffConfig | None = None,
    *,
    r_max_nm: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> TradeoffResult:
    """Trace the trade-off curve from ``start`` (the structure-preserving potential) toward
    D_CG/D_AA = ``config.target_ratio``.

    ``evaluate(potential, index, purpose)`` runs CG MD of ``potential`` at the reference's state
    point and mass and returns its :class:`Measurement`; ``index`` numbers the evaluations in
    order (a caller that stores them by index can resume a search: the search is deterministic
    given its measurements). ``r_max_nm`` (default: the cutoff plus half a bin) bounds the bins
    that the RDF deviation and the fit use.
    """
    cfg = config or TradeoffConfig()
    if not (math.isfinite(diffusion_aa_m2_s) and diffusion_aa_m2_s > 0):
        raise InputError(
            f"the reference's D is {diffusion_aa_m2_s!r} m2/s; the trade-off needs a positive "
            "all-atom diffusion coefficient (rebuild the reference with its MSD)"
        )
    top = r_max_nm if r_max_nm is not None else start.cutoff_nm + 0.5 * target.bin_width_nm
    basis = TradeoffBasis(start, core_radius(target), cfg.n_basis, kT(temperature_K))
    search = _Search(basis, target, diffusion_aa_m2_s, top, evaluate, cfg)
    n = basis.size
    total = 1 + 2 * n + (cfg.points - 1) * cfg.max_steps
    done = 0

    def tick(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(what, done, total)

    zero = np.zeros(n)
    origin = search.evaluate(zero, "start")
    tick("start")
    if not math.isfinite(origin.ratio):
        raise InputError(
            "the start potential's CG run gave no diffusion coefficient; check the potential "
            "(run it with cgforge cg) before tracing the trade-off"
        )
    curve = [CurvePoint(origin.ratio, origin, True)]
    if cfg.points == 1:
        return TradeoffResult(tuple(curve), tuple(search.evaluations), basis, cfg)
    for k in range(n):
        for sign in (1.0, -1.0):
            c = zero.copy()
            c[k] = sign * search.scales[k]
            search.evaluate(c, f"probe c{k}{'+' if sign > 0 else '-'}")
            tick("probe")
    ln_start, ln_end = math.log(origin.ratio), math.log(cfg.target_ratio)
    targets = [
        math.exp(ln_start + (ln_end - ln_start) * j / (cfg.points - 1))
        for j in range(1, cfg.points)
    ]
    centre = zero
    for target_ratio in targets:
        for step in range(cfg.max_steps):
            coefficients = search.step(centre, math.log(target_ratio))
            ev = search.evaluate(coefficients, f"target {target_ratio:.3g} step {step + 1}")
            tick(f"target {target_ratio:.3g}")
            if not math.isfinite(ev.ratio):
                continue
            centre = coefficients
            before = [e for e in search.evaluations[:-1] if search.reached(e, target_ratio)]
            stalled = bool(before) and ev.rdf_deviation > 0.9 * min(e.rdf_deviation for e in before)
            if search.reached(ev, target_ratio) and stalled:
                break  # reached, and the structure no longer improves by 10 % a step
        point = search.best_for(target_ratio)
        curve.append(point)
        centre = np.array(point.evaluation.coefficients)
    return TradeoffResult(tuple(curve), tuple(search.evaluations), basis, cfg)
