"""Randomised molecules that equilibrate: vacuum pre-relaxation, the density estimate of the
relaxed molecule, NPT equilibration until the density stops drifting, and the early stop of a
generation whose stage-A draws all fail.

Cost: a few seconds (one-molecule OpenMM runs on the Reference platform, a 16-molecule liquid
on the CPU platform with one thread, stage A's equilibration loop on written thermo files, and
a generation on an in-process Dask cluster whose stage A is replaced by a failing stub).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import unit

import cgforge.workflows.aa as aa_workflow
import cgforge.workflows.db_stages as db_stages
from cgforge.cli.main import main
from cgforge.database.stages import STAGE_A_EQUILIBRATION, stage_a_spec
from cgforge.database.store import Database, spec_key
from cgforge.engines.openmm_system import group_energies
from cgforge.engines.prerelax import (
    estimate_density,
    hull_volume_nm3,
    prerelax_molecule,
    vdw_volume_nm3,
)
from cgforge.errors import InputError, SimulationError
from cgforge.molecules import load_molecule
from cgforge.molecules.library import reference_density
from cgforge.molecules.randomize import ParameterRanges, randomize_molecule
from cgforge.workflows.db_generate import StageAFailing, failure_kind, generate
from cgforge.workflows.db_stages import StageFailure, equilibrate_aa

MOLECULE = "3-methylpentane"
#: Stretched: every C–C bond 2.5 Å, every C–H 1.8 Å (the tops of the seeds' ranges), stiff.
LONG = ParameterRanges(
    bond_k_kcal_mol_A2=(1000.0, 1000.0),
    bond_cc_r0_A=(2.5, 2.5),
    bond_ch_r0_A=(1.8, 1.8),
    angle_k_kcal_mol_rad2=(100.0, 100.0),
    angle_theta0_deg=(110.0, 110.0),
)
#: Shrunk: every C–C bond 1.0 Å, every C–H 0.6 Å (the bottoms of the seeds' ranges).
SHORT = ParameterRanges(
    bond_k_kcal_mol_A2=(1000.0, 1000.0),
    bond_cc_r0_A=(1.0, 1.0),
    bond_ch_r0_A=(0.6, 0.6),
    angle_k_kcal_mol_rad2=(100.0, 100.0),
    angle_theta0_deg=(110.0, 110.0),
)


@pytest.fixture(scope="module")
def plain():
    return load_molecule(MOLECULE)


@pytest.mark.parametrize(("ranges", "denser"), [(LONG, False), (SHORT, True)])
def test_prerelaxation_lowers_the_energy_and_moves_the_density_the_right_way(plain, ranges, denser):
    """Stretched bonds relax to a larger molecule (lower estimated density), shrunk ones to a
    smaller one (higher density); the relaxed energy is far below the starting one."""
    molecule = randomize_molecule(plain, ranges, seed=1)
    relaxed = prerelax_molecule(molecule, md_ps=1.0, seed=1)
    assert relaxed.energy_relaxed_kj_mol < 0.2 * relaxed.energy_start_kj_mol
    assert relaxed.energy_relaxed_kj_mol <= relaxed.energy_minimized_kj_mol + 1.0
    assert relaxed.volume_start_nm3 == pytest.approx(hull_volume_nm3(plain), rel=1e-9)
    ref = reference_density(MOLECULE)
    density, info = estimate_density(relaxed.molecule, plain, ref)
    ratio = relaxed.volume_relaxed_nm3 / relaxed.volume_start_nm3
    vdw_ratio = info["vdw_volume_relaxed_nm3"] / info["vdw_volume_reference_nm3"]
    if denser:
        assert ratio < 0.9 and density > 1.1 * ref and vdw_ratio < 0.9
    else:  # stretched: the hull also counts the gaps between atoms, the vdW volume does not
        assert ratio > 1.2 and density < ref / 1.2 and ratio > vdw_ratio > 1.1
    assert vdw_volume_nm3(relaxed.molecule) == pytest.approx(info["vdw_volume_relaxed_nm3"])
    assert info["density_estimate_g_cm3"] == density
    # the relaxed bonds sit at their drawn lengths (C–C 1.0 or 2.5 Å)
    xyz = relaxed.molecule.positions_nm
    heavy = [b for b in plain.bonds if all(plain.atoms[i].element == "C" for i in b)]
    lengths = [np.linalg.norm(xyz[i] - xyz[j]) for i, j in heavy]
    target = ranges.bond_cc_r0_nm[0]
    assert np.allclose(lengths, target, rtol=0.25)  # 1-4 repulsion stretches short bonds


@pytest.mark.parametrize("name", [MOLECULE, "ethylbenzene"])
def test_density_estimate_of_the_unperturbed_molecule_is_the_reference(name):
    molecule = load_molecule(name)
    relaxed = prerelax_molecule(molecule, md_ps=1.0, seed=2)
    ref = reference_density(name)
    density, _ = estimate_density(relaxed.molecule, molecule, ref)
    assert density == pytest.approx(ref, rel=0.03)


def test_prerelaxation_input_is_checked(plain):
    with pytest.raises(InputError, match="pre-relaxation MD length"):
        prerelax_molecule(plain, md_ps=-1.0)
    with pytest.raises(InputError, match="reference density"):
        estimate_density(plain, plain, 0.0)
    with pytest.raises(InputError, match="pre-relaxation needs a built-in molecule"):
        aa_workflow.AAConfig(topology_file="x.top", coordinates_file="x.gro", prerelax=True)
    assert "prerelax" not in aa_workflow.AAConfig(molecule=MOLECULE).to_dict()


def _first_steps(prerelax: bool) -> tuple[dict[str, float], float, float]:
    """Bonded and LJ energies (kJ/mol) after minimising a 16-molecule liquid of the LONG draw,
    and the box volume (nm³) before and after 1 ps of NPT MD at 2 fs."""
    config = aa_workflow.AAConfig(
        molecule=MOLECULE,
        n_molecules=16,
        randomize={"seed": 3, "ranges": LONG.to_dict()},
        prerelax=prerelax,
    )
    prepared = aa_workflow.prepare_builtin(config, "openmm")
    system = prepared.system
    system.addForce(openmm.MonteCarloBarostat(1.0, 298.15, 25))
    integrator = openmm.LangevinMiddleIntegrator(298.15, 1.0, 0.002)
    integrator.setRandomNumberSeed(7)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": "1"})
    context.setPositions(prepared.positions_nm)
    context.applyConstraints(1e-6)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 1000)
    energies = group_energies(context)
    volume = context.getState().getPeriodicBoxVolume().value_in_unit(unit.nanometer**3)
    integrator.step(500)
    state = context.getState(getEnergy=True)
    assert np.isfinite(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    after = state.getPeriodicBoxVolume().value_in_unit(unit.nanometer**3)
    return energies, volume, after


def test_extreme_draw_starts_without_clashes_after_prerelaxation():
    """Packed from the unrelaxed conformer, the stretched molecules overlap (minimisation
    leaves large angle and LJ energies); packed from the relaxed one at its estimated
    density, they start near their vacuum minimum and the first ps of NPT stays bounded."""
    before, _, _ = _first_steps(prerelax=False)
    after, v0, v1 = _first_steps(prerelax=True)
    old = before["bond"] + before["angle"] + max(before["lj"], 0.0)
    new = after["bond"] + after["angle"] + max(after["lj"], 0.0)
    assert new < 0.25 * old
    assert 0.7 < v1 / v0 < 1.4


# ------------------------------------------------------------------ equilibration loop
def _fake_run(drifting_until_ps: float, calls: list[float], ramp: float = 0.05):
    """A run_aa stand-in writing a thermo.csv whose density rises by ``ramp`` g/cm³ over the
    equilibration while it is shorter than ``drifting_until_ps`` and is flat otherwise."""

    def run_aa(config, out, **kwargs):
        length = config.protocol.equilibration_ps
        calls.append(length)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        t = np.linspace(0.0, length, 80)
        if length < drifting_until_ps:
            rho = 0.5 + ramp * t / length
        else:
            rho = 0.7 + 0.001 * np.sin(7.0 * t)
        rows = ["t_ps,stage,density_g_cm3"]
        rows += [f"{a:.4f},equilibration,{b:.6f}" for a, b in zip(t, rho, strict=True)]
        rows.append(f"{length + 1:.4f},production,0.7")
        (out / "thermo.csv").write_text("\n".join(rows) + "\n")
        return {"density_g_cm3": float(rho[-1])}

    return run_aa


def test_equilibration_doubles_until_the_density_stops_drifting(tmp_path, monkeypatch):
    calls: list[float] = []
    monkeypatch.setattr(aa_workflow, "run_aa", _fake_run(20.0, calls))

    def make(ps):
        return aa_workflow.AAConfig(
            molecule=MOLECULE, protocol=aa_workflow.default_protocol(ps, 10.0)
        )

    out, summary, check = equilibrate_aa(make, tmp_path, 5.0, 40.0, temperature_K=298.15)
    assert calls == [5.0, 10.0, 20.0] and out == tmp_path / "aa_eq20ps"
    assert check["aa_equilibration_ps"] == 20.0 and check["equilibration_attempts"] == 3
    assert check["density_settled"] is True
    assert abs(check["density_drift"]) < 0.01 and summary["density_g_cm3"] == pytest.approx(
        0.7, abs=0.002
    )

    calls.clear()
    monkeypatch.setattr(aa_workflow, "run_aa", _fake_run(1e9, calls))
    with pytest.raises(StageFailure, match=r"still compacting.*after 20 ps.*cap 20 ps") as info:
        equilibrate_aa(make, tmp_path / "b", 5.0, 20.0, temperature_K=298.15)
    assert calls == [5.0, 10.0, 20.0] and "\n" not in info.value.reason

    # a drift of 1.5 % per quarter passes stage A's 2 % gate but has not settled (1 %): the
    # loop extends to the cap and accepts it there, marked unsettled
    calls.clear()
    monkeypatch.setattr(aa_workflow, "run_aa", _fake_run(1e9, calls, ramp=0.03))
    _, _, check = equilibrate_aa(make, tmp_path / "c", 5.0, 20.0, temperature_K=298.15)
    assert calls == [5.0, 10.0, 20.0] and check["density_settled"] is False
    assert 0.01 < check["density_drift"] < 0.02


def test_stage_a_specs_carry_the_equilibration_entry():
    new = stage_a_spec(MOLECULE, 5, None, "tiny")
    assert new["equilibration"] == dict(STAGE_A_EQUILIBRATION)
    old = stage_a_spec(MOLECULE, 5, None, "tiny", equilibration=None)
    assert "equilibration" not in old and spec_key(old) != spec_key(new)
    with pytest.raises(InputError, match="max_equilibration_factor"):
        stage_a_spec(MOLECULE, 5, None, "tiny", equilibration={"max_equilibration_factor": 0.5})
    with pytest.raises(InputError, match="unknown stage-A equilibration"):
        stage_a_spec(MOLECULE, 5, None, "tiny", equilibration={"cap": 3})


# ------------------------------------------------------------------ early stop
def test_failure_kinds_drop_the_numbers():
    a = failure_kind("all-atom NPT density still expanding (evaporating): +5.1% ± 0.2% ...")
    b = failure_kind("all-atom NPT density still expanding (evaporating): -9.0% ± 1.2% ...")
    assert a == b == "all-atom NPT density still expanding (evaporating)"
    c = failure_kind("SimulationError: energy is NaN at step 120: the system blew up")
    assert c == "SimulationError: energy is NaN at step #"


@pytest.fixture
def threaded_scheduler():
    """An in-process Dask cluster: its tasks see this process's monkeypatches."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_generation_stops_when_its_first_stage_a_draws_all_fail(
    tmp_path, monkeypatch, threaded_scheduler, capsys
):
    calls: list[int] = []

    def failing(spec, workdir, grids, **kwargs):
        calls.append(spec["draw_seed"])
        if len(calls) % 2:
            raise StageFailure(
                "all-atom NPT density still expanding (evaporating): +7.5% ± 0.4% between "
                "the last two quarters"
            )
        raise StageFailure("SimulationError: energy is NaN at step 40: the system blew up")

    monkeypatch.setattr(db_stages, "run_stage_a", failing)
    path = tmp_path / "ff.db"
    with pytest.raises(StageAFailing) as info:
        generate(
            path,
            molecules=[MOLECULE],
            aa_runs=12,
            preset="tiny",
            scheduler=threaded_scheduler,
            platform="cpu",
            engine="openmm",
            stop_after_failures=4,
        )
    message = str(info.value)
    assert "\n" not in message and "first 4 stage-A records" in message
    assert "expanding (evaporating)" in message and "energy is NaN" in message
    assert "ranges" in message and "set stop_after_failures to 0" in message
    assert info.value.parameters == ("stop_after_failures",)
    assert sum(info.value.reasons.values()) == 4
    assert len(calls) < 12  # stopped early: most draws never ran
    with Database.open(path, readonly=True) as db:
        counts = db.counts()["A"]
    assert counts["failed"] == 4 and counts["pending"] == 8 and counts.get("running", 0) == 0

    # the command line says the same in one line and exits non-zero
    capsys.readouterr()
    code = main(
        [
            "db", "generate", str(tmp_path / "cli.db"), "--molecules", MOLECULE,
            "--aa-runs", "6", "--preset", "tiny", "--scheduler", threaded_scheduler,
            "--engine", "openmm", "--platform", "cpu", "--stop-after-failures", "2", "--quiet",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("error:") and "\n" not in err
    assert "first 2 stage-A records" in err and "set --stop-after-failures to 0" in err


def test_stop_after_failures_is_checked(tmp_path):
    with pytest.raises(InputError, match="stop_after_failures must be a non-negative"):
        generate(tmp_path / "x.db", molecules=[MOLECULE], aa_runs=1, stop_after_failures=-1)
    assert not (tmp_path / "x.db").exists()


def test_a_blow_up_is_retried_at_half_the_time_step(tmp_path, monkeypatch):
    steps: list[float] = []
    flat = _fake_run(0.0, [])

    def run_aa(config, out, **kwargs):
        steps.append(config.protocol.timestep_fs)
        if config.protocol.timestep_fs > 1.0:
            raise SimulationError("constraints could not be satisfied (LINCS): the system blew up")
        return flat(config, out)

    def make(ps):
        return aa_workflow.AAConfig(
            molecule=MOLECULE, protocol=aa_workflow.default_protocol(ps, 10.0)
        )

    monkeypatch.setattr(aa_workflow, "run_aa", run_aa)
    out, _, check = equilibrate_aa(make, tmp_path, 5.0, 40.0, temperature_K=298.15)
    assert steps == [2.0, 1.0] and out == tmp_path / "aa_eq5ps_dt1fs"
    assert check["aa_timestep_fs"] == 1.0 and check["density_settled"] is True

    steps.clear()
    with pytest.raises(SimulationError, match="blew up"):
        equilibrate_aa(make, tmp_path / "b", 5.0, 40.0, temperature_K=298.15, min_timestep_fs=2.0)
    assert steps == [2.0]
