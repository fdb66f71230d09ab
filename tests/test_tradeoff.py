"""The structure–mobility trade-off search (methods.tradeoff) and its workflow."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

from cgforge.errors import InputError, SimulationError
from cgforge.methods.tradeoff import (
    Measurement,
    TradeoffBasis,
    TradeoffConfig,
    core_radius,
    trace_tradeoff,
)
from cgforge.observables.rdf import RDFResult
from cgforge.potentials import TabulatedPotential
from cgforge.units import kT

T = 298.15
BETA = 1.0 / kT(T)
D_AA = 2.0e-9
BIN = 0.01


def _start() -> TabulatedPotential:
    r = np.linspace(0.2, 1.2, 401)
    return TabulatedPotential.lj(2.5, 0.5, r, cutoff_nm=1.2)


def _rdf(r: np.ndarray, g: np.ndarray) -> RDFResult:
    return RDFResult(r, g, np.full_like(g, 0.01), 100, float(r[-1] + BIN / 2), BIN)


class DiluteLiquid:
    """A stand-in for CG MD with known responses: g = exp(−βU) (the dilute limit) and
    ln D = ln(α₀ D_AA) + κ ⟨βΔU⟩_w, an average beyond the first shell (deeper there: slower
    beads), with 3 % noise on D. Structure and mobility respond to different parts of U, so the
    best slow potential is not a rescaled start potential."""

    def __init__(self, start: TabulatedPotential, alpha0: float = 3.0, seed: int = 0) -> None:
        self.start = start
        self.noise = 0.03
        self.alpha0 = alpha0
        self.rng = np.random.default_rng(seed)
        self.bins = np.arange(0.2 + BIN / 2, 1.2, BIN)
        self.calls = 0

    def g(self, potential: TabulatedPotential) -> np.ndarray:
        return np.exp(-BETA * np.clip(potential.energy(self.bins), -50 / BETA, 50 / BETA))

    def __call__(self, potential: TabulatedPotential, index: int, purpose: str) -> Measurement:
        assert index == self.calls
        self.calls += 1
        d = math.exp(self.ln_d(potential)) * (1.0 + self.noise * self.rng.standard_normal())
        return Measurement(_rdf(self.bins, self.g(potential)), d, self.noise * d, 0.0, 1.0, T)

    def ln_d(self, potential: TabulatedPotential) -> float:
        du = potential.energy(self.bins) - self.start.energy(self.bins)
        w = np.exp(-(((self.bins - 0.85) / 0.1) ** 2))
        return math.log(self.alpha0 * D_AA) + 1.5 * float(np.sum(w * BETA * du) / np.sum(w))


def test_the_search_reaches_each_ratio_at_less_structure_cost_than_rescaling():
    start = _start()
    md = DiluteLiquid(start)
    target = _rdf(md.bins, md.g(start))
    config = TradeoffConfig(n_basis=6, points=4, max_steps=6)
    result = trace_tradeoff(start, target, D_AA, T, md, config)
    curve = result.curve
    assert len(curve) == 4 and curve[0].evaluation.index == 0
    assert curve[0].evaluation.rdf_deviation < 1e-9  # the start reproduces its target
    assert abs(curve[0].target_ratio - 3.0) < 0.3
    for point in curve[1:]:
        assert point.reached, point.row()
        assert abs(math.log(point.evaluation.ratio / point.target_ratio)) < 0.1
    deviations = [p.evaluation.rdf_deviation for p in curve]
    assert all(b > a for a, b in itertools.pairwise(deviations))  # a trade-off
    # the optimum of the same problem in the same basis, without noise (SLSQP)
    basis = result.basis
    md.noise = 0.0

    def eps(c: np.ndarray) -> float:
        g = md.g(basis.potential(c))
        return float(np.sum(np.abs(g - target.g)) / np.sum(target.g))

    best = minimize(
        lambda c: float(np.sum((md.g(basis.potential(c)) - target.g) ** 2)),
        np.zeros(basis.size),
        method="SLSQP",
        constraints={"type": "eq", "fun": lambda c: md.ln_d(basis.potential(c)) - math.log(D_AA)},
    )
    assert best.success
    assert deviations[-1] < 1.3 * eps(best.x) + 0.005
    # the naive route to D = D_AA, rescaling the start potential (c0 alone), costs far more
    c0 = brentq(
        lambda x: md.ln_d(basis.potential([x] + [0.0] * (basis.size - 1))) - math.log(D_AA),
        0.0,
        50.0,
    )
    assert deviations[-1] < 0.5 * eps(np.array([c0] + [0.0] * (basis.size - 1)))
    assert len(result.evaluations) <= 1 + 2 * basis.size + 3 * config.max_steps
    row = curve[-1].row()
    assert row["reached"] and len(row["coefficients"]) == basis.size


def test_a_target_out_of_reach_is_reported_with_the_closest_point():
    """D that no potential changes: the target stays unreached and the closest point is kept."""
    start = _start()
    bins = np.arange(0.2 + BIN / 2, 1.2, BIN)

    def frozen(potential: TabulatedPotential, index: int, purpose: str) -> Measurement:
        g = np.exp(-BETA * np.clip(potential.energy(bins), -50 / BETA, 50 / BETA))
        return Measurement(_rdf(bins, g), 3.0 * D_AA, 0.01 * D_AA)

    target = _rdf(bins, np.exp(-BETA * np.clip(start.energy(bins), -50 / BETA, 50 / BETA)))
    result = trace_tradeoff(start, target, D_AA, T, frozen, TradeoffConfig(points=2, max_steps=2))
    last = result.curve[-1]
    assert not last.reached and abs(last.evaluation.ratio - 3.0) < 1e-9


def test_failed_runs_are_recorded_and_shorten_the_steps():
    start = _start()
    md = DiluteLiquid(start, seed=1)
    target = _rdf(md.bins, md.g(start))

    def flaky(potential: TabulatedPotential, index: int, purpose: str) -> Measurement:
        if purpose.startswith("target") and index % 3 == 0:
            md.calls += 1
            raise SimulationError("lost atoms at step 120")
        return md(potential, index, purpose)

    result = trace_tradeoff(start, target, D_AA, T, flaky, TradeoffConfig(points=2, max_steps=4))
    failed = [e for e in result.evaluations if e.failure]
    assert failed and "lost atoms" in failed[0].failure
    assert math.isnan(failed[0].row()["ratio"])
    assert result.curve[-1].evaluation.failure is None


def test_basis_is_smooth_and_zero_outside_the_liquid_range():
    start = _start()
    basis = TradeoffBasis(start, 0.35, 5, kT(T))
    r = start.r_nm
    phi, force = basis.bumps(r)
    inside = (r > basis.centres_nm[0]) & (r < basis.centres_nm[-1])
    assert np.allclose(phi.sum(axis=0)[inside], kT(T))  # a partition of unity inside
    assert np.all(phi[:, r <= 0.35] == 0) and np.all(phi[:, r >= 1.2] < 1e-12)
    numeric = -np.gradient(phi, r, axis=1)  # off by ~dr·φ''/4 at the bump ends (C¹, not C²)
    assert np.max(np.abs(numeric - force)[:, 2:-2]) < 0.03 * np.max(np.abs(force))
    pot = basis.potential([0.1, 0, 1.0, 0, 0, 0])
    k = np.argmin(np.abs(r - basis.centres_nm[1]))
    expected = 1.1 * start.energy(r[k]) + phi[1, k]
    assert pot.energy(r[k]) == pytest.approx(expected, rel=1e-9)
    assert phi[1, k] == pytest.approx(kT(T), rel=1e-3)
    with pytest.raises(InputError, match="coefficients"):
        basis.potential([0.0, 1.0])
    with pytest.raises(InputError, match="core radius"):
        TradeoffBasis(start, 1.3, 5, kT(T))


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(InputError, match="points"):
        TradeoffConfig(points=0)
    start = _start()
    bins = np.arange(0.2 + BIN / 2, 1.2, BIN)
    flat = _rdf(bins, np.zeros_like(bins))
    with pytest.raises(InputError, match="never exceeds"):
        core_radius(flat)
    with pytest.raises(InputError, match="positive all-atom diffusion"):
        trace_tradeoff(start, _rdf(bins, np.ones_like(bins)), float("nan"), T, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the workflow (CG MD)
def test_tradeoff_workflow_slows_the_liquid_and_resumes(lj_reference_run, tmp_path):
    """From the reference's own potential (D_CG/D_AA ≈ 1) toward half its mobility: the curve
    starts at the reference's structure and mobility and moves to slower, less faithful
    potentials; files are written, a rerun returns the stored result, and a run killed after
    its evaluations resumes from them without new MD."""
    from cgforge.workflows.tradeoff import run_tradeoff

    out = tmp_path / "tradeoff"
    config = TradeoffConfig(n_basis=1, points=2, target_ratio=0.5, max_steps=2)
    kwargs = dict(
        equilibration_ps=2.0, production_ps=10.0, timestep_fs=10.0, sample_interval_ps=0.2, seed=2
    )
    summary = run_tradeoff(*lj_reference_run, out, config, **kwargs)
    start, last = summary["curve"][0], summary["curve"][-1]
    assert 0.75 < start["ratio"] < 1.33 and start["rdf_deviation"] < 0.15
    assert last["ratio"] < 0.85 * start["ratio"]
    assert last["rdf_deviation"] > start["rdf_deviation"]
    for name in ("tradeoff.csv", "evaluations.csv", "curve_01_potential.csv", "tradeoff.png"):
        assert (out / name).is_file()
    assert summary["evaluations"] == len(list((out / "evaluations").iterdir()))
    assert run_tradeoff(*lj_reference_run, out, config, **kwargs) == summary
    # killed after the last evaluation: the stored measurements are reused, no MD runs
    stamps = {p: p.stat().st_mtime_ns for p in (out / "evaluations").glob("*/measurement.json")}
    (out / "summary.json").unlink()
    again = run_tradeoff(*lj_reference_run, out, config, **kwargs)
    assert again["curve"] == summary["curve"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    with pytest.raises(InputError, match=r"start potential .* not found"):
        run_tradeoff(lj_reference_run[0], tmp_path / "none.csv", tmp_path / "x", config)
