"""The staged MD runner on a Lennard-Jones fluid (Reference platform: deterministic)."""

import numpy as np
import pytest

from _systems import lj_fluid, lj_protocol, lj_runner
from cgforge.engines.openmm_md import MDRunner
from cgforge.engines.protocol import STAGE_IDS, MDProtocol
from cgforge.errors import InputError, SimulationError


class _Kill(Exception):
    pass


def test_killed_run_resumes_to_the_same_result(tmp_path):
    reference = lj_runner(tmp_path / "ref", lj_protocol()).run()

    calls = {"n": 0}

    def kill_in_production(stage, done, total, speed):
        if stage == "production" and done >= total // 2:
            calls["n"] += 1
            raise _Kill

    with pytest.raises(_Kill):
        lj_runner(tmp_path / "killed", lj_protocol(), progress=kill_in_production).run()
    assert calls["n"] == 1
    resumed = lj_runner(tmp_path / "killed", lj_protocol()).run()
    np.testing.assert_allclose(resumed.times_ps, reference.times_ps)
    assert len(np.unique(resumed.times_ps)) == len(resumed.times_ps), (
        "duplicated samples after resume"
    )
    np.testing.assert_allclose(resumed.bead_positions_nm, reference.bead_positions_nm, atol=1e-6)
    for key in ("potential_kJ_mol", "volume_nm3"):
        np.testing.assert_allclose(resumed.thermo[key], reference.thermo[key], rtol=1e-8)


def test_npt_equilibration_then_nve_conserves_energy(tmp_path):
    result = lj_runner(tmp_path, lj_protocol(production_ensemble="nve", timestep_fs=2.0)).run()
    prod = result.thermo["stage"] == 1
    total = result.thermo["total_kJ_mol"][prod]
    kinetic = result.thermo["kinetic_kJ_mol"][prod]
    drift = np.ptp(total) / np.mean(kinetic)
    assert drift < 0.02, f"NVE total energy fluctuates by {drift:.3%} of the kinetic energy"
    # production runs at the NPT mean volume of the second half of equilibration
    eq = result.thermo["stage"] == 0
    volumes = result.thermo["volume_nm3"][eq]
    assert np.isclose(np.prod(result.box_nm), volumes[len(volumes) // 2 :].mean(), rtol=1e-6)
    assert np.ptp(result.thermo["volume_nm3"][prod]) == 0.0
    # unwrapped bead positions move continuously (no jumps of a box length between samples)
    steps = np.abs(np.diff(result.bead_positions_nm, axis=0))
    assert steps.max() < 0.3 * result.box_nm.min()


def test_nose_hoover_production_holds_temperature(tmp_path):
    result = lj_runner(tmp_path, lj_protocol(production_ps=4.0)).run()
    prod = result.thermo["stage"] == 1
    assert abs(result.thermo["temperature_K"][prod].mean() - 120.0) < 12.0


def test_blow_up_is_reported_before_anything_is_written(tmp_path):
    system, topology, positions, box = lj_fluid(n_side=4)
    positions[1] = positions[0] + 0.02  # two atoms on top of each other, no minimisation
    groups = np.arange(system.getNumParticles())
    runner = MDRunner(
        system, topology, positions, box, groups, lj_protocol(minimize=False), tmp_path
    )
    with pytest.raises(SimulationError, match="blew up"):
        runner.run()
    assert not (tmp_path / "state.json").exists()


def test_bad_protocol_values_are_refused():
    with pytest.raises(InputError, match="production_ps"):
        MDProtocol(production_ps=-1.0)
    with pytest.raises(InputError, match="ensemble"):
        MDProtocol(production_ensemble="langevin")


def test_production_has_no_collective_drift(tmp_path):
    """Langevin equilibration leaves a net momentum; production must not carry it as a drift
    (its ballistic motion would inflate the MSD and D)."""
    result = lj_runner(tmp_path, lj_protocol(production_ps=4.0)).run()
    masses = result.bead_masses_amu
    com = (result.bead_positions_nm * masses[None, :, None]).sum(axis=1) / masses.sum()
    drift = np.linalg.norm(com - com[0], axis=1).max()
    assert drift < 1e-3, f"system centre of mass moved {drift:.4f} nm during production"


def test_fixed_density_production_after_a_relax_stage(tmp_path):
    """production_density_scale: production at that factor times the mean NPT density, after a
    discarded NVT relax stage that resumes like the other stages and holds no samples."""
    protocol = lj_protocol(production_density_scale=1.05, density_relax_ps=1.0)

    def kill_in_relax(stage, done, total, speed):
        if stage == "relax" and done >= total // 2:
            raise _Kill

    with pytest.raises(_Kill):
        lj_runner(tmp_path, protocol, progress=kill_in_relax).run()
    result = lj_runner(tmp_path, protocol).run()
    th = result.thermo
    eq, prod, relax = (
        th["stage"] == STAGE_IDS[s] for s in ("equilibration", "production", "relax")
    )
    np.testing.assert_allclose(th["t_ps"][relax], np.arange(1, 21) * 0.05, atol=1e-9)
    assert np.flatnonzero(relax).max() < np.flatnonzero(prod).min()
    volumes = th["volume_nm3"][eq]
    npt_volume = volumes[len(volumes) // 2 :].mean()
    assert result.npt_volume_nm3 == pytest.approx(npt_volume, rel=1e-12)
    assert npt_volume / np.prod(result.box_nm) == pytest.approx(1.05, rel=1e-9)
    np.testing.assert_allclose(th["volume_nm3"][relax | prod], np.prod(result.box_nm), rtol=1e-9)
    np.testing.assert_allclose(result.times_ps, np.arange(1, 41) * 0.05, atol=1e-9)


def test_fixed_density_settings_are_checked_and_hash_stable():
    from cgforge.engines.gromacs import mdp_settings
    from cgforge.units import AMU_NM3_TO_G_CM3

    assert not {"production_density_scale", "production_density_g_cm3", "density_relax_ps"} & set(
        MDProtocol().to_dict()
    )
    assert MDProtocol(density_relax_ps=5.0).to_dict() == MDProtocol().to_dict()
    dense = MDProtocol(production_density_scale=1.05)
    assert dense.fixed_density and dense.relax_steps == 25000
    assert dense.to_dict()["production_density_scale"] == 1.05
    assert dense.to_dict()["density_relax_ps"] == 50.0
    assert dense.production_volume(10.5, 1.0) == pytest.approx(10.0)
    assert MDProtocol(production_density_scale=1.05, density_relax_ps=0).relax_steps == 0
    # an absolute density: the volume of that density; far from the NPT one, an error
    absolute = MDProtocol(production_density_g_cm3=0.7)
    mass = 0.65 * 10.0 / AMU_NM3_TO_G_CM3  # amu in 10 nm³ at 0.65 g/cm³
    assert absolute.production_volume(10.0, mass) == pytest.approx(10.0 * 0.65 / 0.7)
    with pytest.raises(InputError, match="times the NPT mean density"):
        MDProtocol(production_density_g_cm3=1.2).production_volume(10.0, mass)
    bad = [
        ({"production_density_scale": 0.0}, "within 0.5-1.5"),
        ({"production_density_scale": -1.05}, "within 0.5-1.5"),
        ({"production_density_scale": 1.6}, "within 0.5-1.5"),
        ({"production_density_scale": float("nan")}, "within 0.5-1.5"),
        ({"production_density_g_cm3": 0.0}, "liquid density"),
        ({"production_density_scale": 1.05, "production_density_g_cm3": 0.7}, "not both"),
        ({"production_density_scale": 1.05, "production_ensemble": "npt"}, "npt production"),
        ({"production_density_scale": 1.05, "equilibration_ps": 0.0}, "NPT equilibration"),
        ({"density_relax_ps": -1.0}, "density_relax_ps"),
    ]
    for settings, fragment in bad:
        with pytest.raises(InputError, match=fragment):
            MDProtocol(**settings)
    relax = mdp_settings("relax", dense, 1.0, n_steps=100)
    assert relax["integrator"] == "sd" and relax["pcoupl"] == "no"
    assert relax["gen-vel"] == "no" and relax["nstvout"] == 100
