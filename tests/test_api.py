"""The in-memory API (cgforge.api): reference → IBI → CG run → observables, objects in and out."""

from __future__ import annotations

import pytest

from _systems import LJ_REFERENCE, lj_table
from cgforge import api
from cgforge.errors import InputError
from cgforge.methods.ibi import IBIConfig


@pytest.fixture(scope="module")
def ref(lj_reference_run):
    return api.reference(lj_reference_run[0])


def test_the_reference_potential_reproduces_its_own_liquid(ref, tmp_path):
    """The reference's own table, run through api.simulate at the reference's state: same
    structure, density and mobility within the noise of short runs."""
    run = api.simulate(
        lj_table(),
        ref,
        tmp_path / "cg",
        equilibration_ps=10.0,
        production_ps=20.0,
        timestep_fs=10.0,
        sample_interval_ps=0.2,
        seed=4,
    )
    assert run.rdf_deviation(ref) < 0.15 and run.rdf_r2(ref) > 0.95
    assert 0.7 < run.acceleration_factor(ref) < 1.4
    assert abs(run.density_g_cm3 / ref.density_g_cm3 - 1.0) < 0.05
    assert abs(run.temperature_K - LJ_REFERENCE["temperature_K"]) < 10.0
    assert run.trajectory.n_beads == LJ_REFERENCE["n_beads"]


def test_ibi_then_simulate_in_memory(ref, tmp_path):
    config = IBIConfig(
        max_iterations=2,
        cutoff_nm=0.85,
        timestep_fs=10.0,
        equilibration_ps=2.0,
        production_ps=8.0,
        sample_interval_ps=0.2,
        seed=3,
    )
    result = api.ibi(ref, tmp_path / "ibi", config)
    assert result.iterations == 2 and result.potential.cutoff_nm == pytest.approx(0.85, abs=0.01)
    run = api.simulate(
        result.potential,
        ref,
        tmp_path / "cg",
        equilibration_ps=0.0,
        production_ps=10.0,
        timestep_fs=10.0,
        sample_interval_ps=0.2,
    )
    assert run.rdf_deviation(ref) < 0.25 and run.diffusion_m2_s > 0


def test_simulate_without_a_reference_names_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="mass_amu, density_g_cm3"):
        api.simulate(lj_table(), None, tmp_path / "x", n_beads=100, temperature_K=100.0)
