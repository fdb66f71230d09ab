"""The staged MD runner on a Lennard-Jones fluid (Reference platform: deterministic)."""

import numpy as np
import pytest

from _systems import lj_fluid, lj_protocol, lj_runner
from cgforge.engines.md import MDProtocol, MDRunner
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
