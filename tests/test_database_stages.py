"""Database stages A (randomised AA → IBI → CG) and B (CG at another mass); ``cgforge db``."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import cgforge.workflows.aa as aa_workflow
from _systems import stable_ranges
from cgforge.cli.main import main
from cgforge.database.stages import (
    STAGE_PRESETS,
    database_grids,
    learning_grids,
    stage_a_spec,
    stage_b_spec,
)
from cgforge.database.store import Database, spec_key
from cgforge.errors import InputError, SimulationError
from cgforge.grids import LearningGrids
from cgforge.molecules import load_molecule
from cgforge.molecules.randomize import parameter_names
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows.db_stages import StageFailure, run_stage_a, run_stage_b

MOLECULE = "3-methylpentane"
RANGES = stable_ranges()


@pytest.fixture(scope="module")
def stage_a(tmp_path_factory):
    """One stage-A record run and stored; returns (db path, key, scalars)."""
    root = tmp_path_factory.mktemp("stages")
    path = root / "ff.db"
    with Database.init(path, database_grids()) as db:
        spec = stage_a_spec(MOLECULE, 7, RANGES, "tiny", temperature_K=298.15)
        key = db.add_pending(spec)
        claimed = db.claim("A", worker="test")
        assert claimed is not None and claimed[0] == key
        scalars, arrays, provenance = run_stage_a(
            claimed[1], root / "work_a", learning_grids(db), platform="cpu"
        )
        db.complete(key, scalars, arrays, provenance)
    return path, key, scalars


def test_stage_a_record_is_stored_on_the_grids(stage_a):
    path, key, scalars = stage_a
    grids = LearningGrids()
    with Database.open(path, readonly=True) as db:
        rec = db.get(key)
    assert rec.state == "done" and rec.stage == "A" and rec.molecule == MOLECULE
    assert rec.scalars["diffusion_cg_m2_s"] == scalars["diffusion_cg_m2_s"]
    # the molecular mass of C6H14 and a liquid-like density from the randomised AA run
    assert rec.scalars["mass_amu"] == pytest.approx(86.18, abs=0.05)
    assert 0.3 < rec.scalars["density_g_cm3"] < 1.2
    d_aa, d_cg = rec.scalars["diffusion_aa_m2_s"], rec.scalars["diffusion_cg_m2_s"]
    assert 1e-11 < d_aa < 1e-7 and 1e-11 < d_cg < 1e-7  # m²/s, not nm²/ps
    assert rec.scalars["acceleration_factor"] == pytest.approx(d_cg / d_aa)
    assert 0 < rec.scalars["rdf_deviation"] < 1
    assert rec.arrays["g_aa"].data.shape == (grids.n_rdf,)
    assert rec.arrays["g_cg"].data.shape == (grids.n_rdf,)
    assert rec.arrays["potential"].data.shape == (grids.n_potential,)
    assert rec.arrays["potential"].unit == "kJ/mol"
    assert rec.arrays["potential"].grid_name == "potential"
    # excluded core at short r, a first peak above 1 for both RDFs
    for name in ("g_aa", "g_cg"):
        g = rec.arrays[name].data
        assert np.all(g[grids.rdf_r_nm < 0.25] < 0.05) and g.max() > 1.2
    # the parameter vector is the drawn one, in parameter_names order, within the ranges
    names = rec.provenance["parameter_names"]
    assert tuple(names) == parameter_names(load_molecule(MOLECULE))
    values = rec.arrays["parameters"].data
    assert rec.arrays["parameters"].unit == "mixed" and values.shape == (len(names),)
    theta = values[[i for i, n in enumerate(names) if n.endswith("theta0_rad")]]
    assert np.all((theta > np.radians(106.0)) & (theta < np.radians(114.0)))


def test_stage_b_runs_the_parent_potential_at_another_mass(stage_a, tmp_path):
    path, key, _ = stage_a
    with Database.open(path) as db:
        parent = db.get(key)
        spec = stage_b_spec(parent, 2.0 * parent.scalars["mass_amu"], 3, "tiny")
        assert spec["molecule"] == MOLECULE and spec["parent_key"] == key
        bkey = db.add_pending(spec)
        assert bkey == spec_key(spec) != key
        claimed = db.claim("B")
        scalars, arrays, provenance = run_stage_b(
            claimed[1], parent, tmp_path / "work_b", learning_grids(db), platform="cpu"
        )
        db.complete(bkey, scalars, arrays, provenance)
        rec = db.get(bkey)
    assert rec.parent_key == key and rec.scalars["mass_amu"] == pytest.approx(172.35, abs=0.1)
    assert 1e-11 < rec.scalars["diffusion_cg_m2_s"] < 1e-7
    # same potential → about the same number density; mass density doubles
    n_a = parent.scalars["density_cg_g_cm3"] / (parent.scalars["mass_amu"] * AMU_NM3_TO_G_CM3)
    n_b = rec.scalars["density_g_cm3"] / (rec.scalars["mass_amu"] * AMU_NM3_TO_G_CM3)
    assert n_b == pytest.approx(n_a, rel=0.15)
    assert rec.arrays["g_cg"].data.shape == (LearningGrids().n_rdf,)
    # the stored potential is the parent's one (up to the wall below its table)
    u_a, u_b = parent.arrays["potential"].data, rec.arrays["potential"].data
    r = LearningGrids().potential_r_nm
    tail = r >= 0.4
    assert np.allclose(u_b[tail], u_a[tail], atol=1e-6)


def test_failing_stage_is_recorded_with_its_reason(tmp_path, monkeypatch):
    def unstable(*args, **kwargs):
        raise SimulationError("energy is NaN at step 120: the system blew up")

    monkeypatch.setattr(aa_workflow, "run_aa", unstable)
    with Database.init(tmp_path / "ff.db", database_grids()) as db:
        key = db.add_pending(stage_a_spec(MOLECULE, 1, None, "tiny"))
        _, spec = db.claim()
        with pytest.raises(StageFailure) as info:
            run_stage_a(spec, tmp_path / "work", learning_grids(db), platform="cpu")
        db.fail(key, info.value.reason)
        assert db.counts()["A"]["failed"] == 1
        (failure,) = db.failures()
    assert failure["key"] == key and "blew up" in failure["error"]


def test_specs_identify_records():
    a1 = stage_a_spec(MOLECULE, 5, RANGES, "tiny", temperature_K=300)
    a2 = stage_a_spec(MOLECULE, 5, RANGES.to_dict(), STAGE_PRESETS["tiny"], temperature_K=300.0)
    assert spec_key(a1) == spec_key(a2)
    assert spec_key(a1) != spec_key(stage_a_spec(MOLECULE, 6, RANGES, "tiny"))
    assert spec_key(a1) != spec_key(stage_a_spec(MOLECULE, 5, RANGES, "quick"))
    b = stage_b_spec("k" * 64, 50.0, 0, "tiny", molecule=MOLECULE, temperature_K=300.0)
    assert b["parent_key"] == "k" * 64 and b["mass_amu"] == 50.0
    with pytest.raises(InputError, match="unknown stage preset"):
        stage_a_spec(MOLECULE, 5, RANGES, "huge")
    with pytest.raises(InputError, match="bead mass"):
        stage_b_spec("k" * 64, -1.0, 0, "tiny", molecule=MOLECULE, temperature_K=300.0)


def test_aa_config_randomisation_is_checked():
    with pytest.raises(InputError, match="unknown parameter range"):
        aa_workflow.AAConfig(molecule=MOLECULE, randomize={"seed": 1, "ranges": {"bogus": 1}})
    plain = aa_workflow.AAConfig(molecule=MOLECULE)
    assert "randomize" not in plain.to_dict()  # OPLS-AA run directories keep their config


def test_cli_init_status_export_merge(stage_a, tmp_path, capsys):
    path, key, _ = stage_a
    fresh = tmp_path / "other.db"
    assert main(["db", "init", str(fresh)]) == 0
    assert main(["db", "init", str(fresh)]) == 2  # exists
    with Database.open(fresh) as db:
        bad = db.add_pending(stage_a_spec(MOLECULE, 99, None, "tiny"))
        db.claim()
        db.fail(bad, "SimulationError: not a liquid (density 0.01 g/cm3)")
    capsys.readouterr()
    assert main(["db", "status", str(fresh)]) == 0
    text = capsys.readouterr().err
    assert "failed" in text and "not a liquid" in text and "records/hour" in text

    assert main(["db", "merge", str(fresh), str(path)]) == 0
    with Database.open(fresh, readonly=True) as db:
        counts = db.counts()
        assert db.get(key).state == "done"
    assert counts["A"]["done"] >= 1 and counts["A"]["failed"] == 1

    out = tmp_path / "export"
    assert main(["db", "export", str(fresh), "--format", "npz", "--out", str(out)]) == 0
    data = np.load(out / "stage_A.npz")
    assert data["g_aa"].shape[1] == LearningGrids().n_rdf
    assert data["potential"].shape[1] == LearningGrids().n_potential
    assert str(data["unit_potential"]) == "kJ/mol"
    assert (out / "stage_A.csv").read_text().startswith("key,molecule,parent_key,mass_amu")


def test_cli_refuses_foreign_files_in_one_line(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 50)
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    for path in (text, foreign, tmp_path / "missing.db"):
        capsys.readouterr()
        assert main(["db", "status", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err


def _thermo_csv(path, densities):
    lines = ["t_ps,stage,density_g_cm3"]
    lines += [f"{0.1 * i:.1f},equilibration,{rho:.6f}" for i, rho in enumerate(densities)]
    lines += ["100.0,production,0.5"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_stage_a_refuses_a_liquid_whose_density_still_drifts(tmp_path):
    """A stationary noisy NPT density passes; one still compacting by 10 % fails with a reason
    that says so; so does one evaporating."""
    from cgforge.workflows.db_stages import check_equilibrated

    rng = np.random.default_rng(3)
    steady = 0.66 + 0.004 * rng.standard_normal(200)
    result = check_equilibrated(_thermo_csv(tmp_path / "a.csv", steady))
    assert abs(result["density_drift"]) < 3 * result["density_drift_err"] + 0.005
    compacting = np.linspace(0.40, 0.60, 200) + 0.004 * rng.standard_normal(200)
    with pytest.raises(StageFailure, match="compacting"):
        check_equilibrated(_thermo_csv(tmp_path / "b.csv", compacting))
    with pytest.raises(StageFailure, match="evaporating"):
        check_equilibrated(_thermo_csv(tmp_path / "c.csv", compacting[::-1]))


def _thermo_csv_with_volume(path, densities, volume_nm3):
    lines = ["t_ps,stage,temperature_K,volume_nm3,density_g_cm3"]
    lines += [
        f"{0.1 * i:.1f},equilibration,298.15,{volume_nm3 * densities[0] / rho:.6f},{rho:.6f}"
        for i, rho in enumerate(densities)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_drift_tolerance_follows_the_natural_density_fluctuation_of_the_box(tmp_path):
    """A 9 nm³ box (40 hexanes) fluctuates by 3 % per frame: a 4 % wander between quarters is
    noise there and passes; the same wander of a 100 nm³ box, and a 15 % one of the small box,
    fail. The tolerance is recorded."""
    from cgforge.workflows.db_stages import check_equilibrated, natural_density_fluctuation

    assert natural_density_fluctuation(9.0, 298.15) == pytest.approx(0.030, abs=0.002)
    assert natural_density_fluctuation(100.0, 298.15) == pytest.approx(0.0091, abs=0.0005)
    rng = np.random.default_rng(5)
    wander = np.r_[np.full(100, 0.64), np.full(50, 0.64), np.full(50, 0.666)]
    wander = wander + 0.001 * rng.standard_normal(200)  # +4 % from the third to the last quarter
    small = check_equilibrated(_thermo_csv_with_volume(tmp_path / "s.csv", wander, 9.0))
    assert small["density_drift"] == pytest.approx(0.04, abs=0.005)
    assert small["density_drift_tolerance"] == pytest.approx(0.09, abs=0.007)
    with pytest.raises(StageFailure, match=r"compacting.*tolerance 2\.[78]%"):
        check_equilibrated(_thermo_csv_with_volume(tmp_path / "l.csv", wander, 100.0))
    jump = np.r_[np.full(150, 0.60), np.full(50, 0.70)] + 0.001 * rng.standard_normal(200)
    with pytest.raises(StageFailure, match="compacting"):
        check_equilibrated(_thermo_csv_with_volume(tmp_path / "j.csv", jump, 9.0))
    with pytest.raises(InputError, match="must be positive"):
        natural_density_fluctuation(0.0, 298.15)
