"""Langevin production and the friction fit of a CG model to a target diffusion coefficient.

Free particles give the exact Langevin answer; the dense liquid is the argon-like supercritical
Lennard-Jones model of the CG tests (ε = 0.996 kJ/mol, σ = 0.34 nm, 40 amu, tapered at
0.85 nm, ρ = 12.7 nm⁻³, 180 K, 285 bar), CPU platform.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import pytest

from _systems import lj_protocol, lj_runner
from cgforge.engines.openmm_md import MDRunner
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import InputError
from cgforge.methods.friction import (
    FrictionConfig,
    FrictionPoint,
    initial_gamma,
    propose_gamma,
)
from cgforge.observables import MSD, fit_diffusion
from cgforge.potentials import TabulatedPotential, write_csv
from cgforge.trajectory import CGTrajectory
from cgforge.units import AMU_NM3_TO_G_CM3, NM2_PS_TO_M2_S, kT
from cgforge.workflows.aa import default_protocol
from cgforge.workflows.cg import run_cg
from cgforge.workflows.friction import fit_friction

EPS, SIGMA, CUTOFF = 0.996, 0.34, 0.85  # kJ/mol, nm, nm
MASS, T, P = 40.0, 180.0, 285.0  # amu, K, bar
N = 125
DENSITY = 12.7 * MASS * AMU_NM3_TO_G_CM3  # g/cm³
GAMMA_TARGET = 5.0  # 1/ps


def _reference_protocol(**kw) -> MDProtocol:
    settings = {"production_ensemble": "langevin", "production_friction_per_ps": 5.0, **kw}
    return lj_protocol(**settings)


class _Kill(Exception):
    pass


# ---------------------------------------------------------------------- the protocol
def test_langevin_production_settings():
    with pytest.raises(InputError, match="needs production_friction_per_ps"):
        MDProtocol(production_ensemble="langevin")
    for bad in (0.0, -1.0, math.nan, math.inf, True, "5"):
        with pytest.raises(InputError, match="production_friction_per_ps"):
            MDProtocol(production_ensemble="langevin", production_friction_per_ps=bad)
    with pytest.raises(InputError, match="ensemble"):
        MDProtocol(production_ensemble="brownian")
    protocol = MDProtocol(production_ensemble="langevin", production_friction_per_ps=2.5)
    assert protocol.to_dict()["production_friction_per_ps"] == 2.5
    # protocols without Langevin production keep the configuration (and run-directory hash)
    # they had before the friction setting existed
    assert "production_friction_per_ps" not in MDProtocol().to_dict()


def test_langevin_production_resumes_to_the_same_result(tmp_path):
    """Reference platform: a run killed in production and resumed equals an uninterrupted one
    (the checkpoint restores the integrator's random stream), and the friction thermostats."""
    reference = lj_runner(tmp_path / "ref", _reference_protocol()).run()

    def kill(stage, done, total, speed):
        if stage == "production" and done >= total // 2:
            raise _Kill

    with pytest.raises(_Kill):
        lj_runner(tmp_path / "killed", _reference_protocol(), progress=kill).run()
    resumed = lj_runner(tmp_path / "killed", _reference_protocol()).run()
    np.testing.assert_allclose(resumed.times_ps, reference.times_ps)
    np.testing.assert_allclose(resumed.bead_positions_nm, reference.bead_positions_nm, atol=1e-9)
    prod = reference.thermo["stage"] == 1
    assert abs(reference.thermo["temperature_K"][prod].mean() - 120.0) < 15.0
    # the friction changes the trajectory: Nosé–Hoover from the same start differs
    nose_hoover = lj_runner(tmp_path / "nh", _reference_protocol(production_ensemble="nvt")).run()
    assert np.abs(nose_hoover.bead_positions_nm[-1] - reference.bead_positions_nm[-1]).max() > 1e-3


def _free_particle_diffusion(tmp: Path, gamma: float, n: int = 1000) -> tuple[float, float]:
    """D (nm²/ps) and its error of ``n`` non-interacting particles under Langevin dynamics."""
    box = 4.0
    system = openmm.System()
    force = openmm.CustomNonbondedForce("0")  # periodic, interaction-free
    force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(0.1)
    for _ in range(n):
        system.addParticle(MASS)
        force.addParticle([])
    system.addForce(force)
    vectors = np.eye(3) * box
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*v) for v in vectors))
    protocol = MDProtocol(
        temperature_K=T,
        timestep_fs=10.0,
        minimize=False,
        equilibration_ps=0.0,
        production_ps=10.0,
        sample_interval_ps=0.1,
        thermo_interval_ps=1.0,
        production_ensemble="langevin",
        production_friction_per_ps=gamma,
        save_particles=False,
        platform="cpu",
        seed=1,
    )
    start = np.random.default_rng(0).uniform(0.0, box, size=(n, 3))
    result = MDRunner(
        system, app.Topology(), start, np.full(3, box), np.arange(n), protocol, tmp / f"g{gamma}"
    ).run()
    traj = CGTrajectory(
        result.bead_positions_nm, result.box_nm, result.times_ps, result.bead_masses_amu
    )
    d = fit_diffusion(MSD(remove_drift=True).compute(traj))
    return d.diffusion_nm2_ps, d.diffusion_err_nm2_ps


@pytest.mark.parametrize("gamma", [10.0, 50.0])
def test_free_particles_diffuse_with_kT_over_m_gamma(tmp_path, gamma):
    """Non-interacting particles: D = kT/(m γ), exactly (kT/m)(Δt/2) coth(γΔt/2) for the
    discrete Langevin middle integrator (1.003 and 1.021 × kT/(mγ) at 10 fs), times (1 − 1/N)
    for the removed centre-of-mass motion. 1000 particles, 10 ps: measured within 2 % (σ ≈ 2 %);
    the bound is the larger of 3σ and 6 %."""
    d, err = _free_particle_diffusion(tmp_path, gamma)
    dt = 0.01
    expected = kT(T) / MASS * 0.5 * dt / math.tanh(0.5 * gamma * dt) * (1.0 - 1.0 / 1000)
    assert abs(d / expected - 1.0) < max(3.0 * err / expected, 0.06), (d, err, expected)


# ---------------------------------------------------------------------- the fit
def test_initial_guess_and_proposals():
    """The first guess solves 1/D = 1/D0 + mγ/kT; a bracket is refined inside itself."""
    d0, target = 2.0e-8, 5.0e-9  # m²/s
    gamma = initial_gamma(d0, target, MASS, T)
    y = lambda d: NM2_PS_TO_M2_S / d  # noqa: E731  ps/nm²
    assert y(d0) + gamma * MASS / kT(T) == pytest.approx(y(target))
    config = FrictionConfig()
    newton = FrictionPoint("n", 0.0, d0, 1e-10, "nvt")
    first, how = propose_gamma(newton, [], target, MASS, T, config)
    assert first == pytest.approx(gamma, rel=1e-5) and "first guess" in how
    # a point still too fast: step along the effective relation, at most ×10
    fast = FrictionPoint("a", 1.0, 1.5e-8, 1e-10, "")
    nxt, _ = propose_gamma(newton, [fast], target, MASS, T, config)
    slope = (y(1.5e-8) - y(d0)) / 1.0
    assert nxt == pytest.approx(min(10.0, 1.0 + (y(target) - y(1.5e-8)) / slope), rel=1e-5)
    # bracketed: regula falsi lands inside, an extreme interpolation falls back to bisection
    slow = FrictionPoint("b", 8.0, 4.0e-9, 1e-10, "")
    inside, how = propose_gamma(newton, [fast, slow], target, MASS, T, config)
    assert 1.0 < inside < 8.0 and "regula falsi" in how
    barely = FrictionPoint("c", 8.0, 4.999e-9, 1e-10, "")
    mid, how = propose_gamma(newton, [fast, barely], target, MASS, T, config)
    assert mid == pytest.approx(math.sqrt(8.0), rel=1e-5) and "bisection" in how
    with pytest.raises(InputError, match="friction-fit setting"):
        FrictionConfig(max_evaluations=0)


@pytest.fixture(scope="module")
def lj_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pot") / "lj.csv"
    grid = np.arange(0.2, CUTOFF + 1e-9, 0.002)
    write_csv(path, TabulatedPotential.lj(EPS, SIGMA, grid).smooth_cutoff(0.1))
    return path


def _cg_protocol(seed: int, **kw) -> MDProtocol:
    return default_protocol(
        5.0,
        15.0,
        temperature_K=T,
        pressure_bar=P,
        timestep_fs=10.0,
        platform="cpu",
        seed=seed,
        save_particles=False,
        **kw,
    )


def test_friction_fit_recovers_a_known_friction(tmp_path, lj_csv):
    """Target: the LJ liquid under Langevin dynamics with γ* = 5/ps (seed 1), a valid reference
    directory. The fit (seed 2) starts from a Newtonian run, is killed in its second Langevin
    run and resumed, and must find γ* within its error. Measured: Newtonian D = 1.64e-8 m²/s,
    target 3.8e-9, first guess γ = 7.5/ps (D 2.5e-9), then γ = 4.5 ± 0.4/ps within the 5 %
    criterion; D decreases with γ and 1/D rises with a slope of 1–2 m/kT (the interpolation's
    m/kT plus the liquid's cage)."""
    target_dir = tmp_path / "target"
    langevin = {"production_ensemble": "langevin", "production_friction_per_ps": GAMMA_TARGET}
    target = run_cg(
        lj_csv,
        mass_amu=MASS,
        n_beads=N,
        protocol=_cg_protocol(1, **langevin),
        out=target_dir,
        density_g_cm3=DENSITY,
    )
    runs = {"n": 0}

    def kill_third_run(stage, done, total, speed):
        if stage == "minimize" and done == 0:
            runs["n"] += 1
        if runs["n"] == 3 and stage == "production" and done >= total // 2:
            raise _Kill

    out = tmp_path / "fit"
    with pytest.raises(_Kill):
        fit_friction(
            lj_csv, out, protocol=_cg_protocol(2), reference_dir=target_dir, progress=kill_third_run
        )
    assert (out / "eval_001" / ".cgforge" / "md" / "state.json").is_file()
    assert not (out / "summary.json").exists()
    fit = fit_friction(lj_csv, out, protocol=_cg_protocol(2), reference_dir=target_dir)

    assert fit.converged, fit.reason
    assert abs(fit.gamma_per_ps - GAMMA_TARGET) < max(3.0 * fit.gamma_err_per_ps, 0.2 * 5.0)
    final = json.loads((fit.final_run / "summary.json").read_text())
    crit = max(
        2.0 * math.hypot(final["diffusion_err_m2_s"], target["diffusion_err_m2_s"]),
        0.05 * target["diffusion_m2_s"],
    )
    assert abs(final["diffusion_m2_s"] - target["diffusion_m2_s"]) <= crit
    # the structure is that of the target at any friction
    assert final["rdf_r2"] > 0.97 and abs(final["density_error"]) < 0.06
    assert final["production_ensemble"] == "langevin"

    with (out / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["run"] == "newtonian" and len(rows) == len(fit.history) >= 2
    points = sorted(fit.history, key=lambda p: p.gamma_per_ps)
    d = [p.diffusion_m2_s for p in points]
    assert all(a > b for a, b in itertools.pairwise(d)), "D must fall as γ grows"
    y = [NM2_PS_TO_M2_S / p.diffusion_m2_s for p in points]
    slope = (y[-1] - y[0]) / points[-1].gamma_per_ps
    assert 1.0 < slope / (MASS / kT(T)) < 2.5
    # a finished fit returns its result without running again
    again = fit_friction(lj_csv, out, protocol=_cg_protocol(2), reference_dir=target_dir)
    assert again.gamma_per_ps == fit.gamma_per_ps and again.history == fit.history


def test_friction_fit_needs_no_friction_or_cannot_help(tmp_path, lj_csv):
    """No MD: a Newtonian D within the criterion gives γ = 0; a slower one cannot be helped."""
    common = dict(
        protocol=_cg_protocol(2),
        target_diffusion_m2_s=5.0e-9,
        target_diffusion_err_m2_s=1.0e-10,
        mass_amu=MASS,
        n_beads=N,
        density_g_cm3=DENSITY,
    )
    fit = fit_friction(lj_csv, tmp_path / "a", newtonian_diffusion_m2_s=5.1e-9, **common)
    assert fit.converged and fit.gamma_per_ps == 0.0 and fit.final_run is None
    fit = fit_friction(lj_csv, tmp_path / "b", newtonian_diffusion_m2_s=2.0e-9, **common)
    assert not fit.converged and fit.gamma_per_ps == 0.0 and "slower" in fit.reason
    with pytest.raises(InputError, match="target diffusion"):
        fit_friction(lj_csv, tmp_path / "c", protocol=_cg_protocol(2), mass_amu=MASS)
