"""Database stage C: stage-A IBI potentials perturbed toward slower liquids (deeper well,
barrier behind the first shell: the trade-off basis), each run at a bead mass with its own
potential array; schema version 2 and the migration of version-1 files; generation, the
mobility data and coverage with stage-C records.

Cost: one tiny stage-A record (about 25 s on a free core) made once per module; stage-C runs
of 64 beads and 2 + 8 ps (about a second each); one generation on a LocalCluster (a few s).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from _systems import stable_ranges
from cgforge.cli.main import main
from cgforge.database.learning import load_mobility_data, read_records
from cgforge.database.lock import lock_path
from cgforge.database.plan import plan_stage_c
from cgforge.database.stages import (
    POTENTIAL_GRID,
    RDF_GRID,
    STAGE_C_DEPTH_KT,
    check_perturbation,
    database_grids,
    draw_perturbation,
    learning_grids,
    stage_a_spec,
    stage_c_spec,
)
from cgforge.database.store import SCHEMA_VERSION, Database, _records_table, spec_key
from cgforge.database.synthetic import build_synthetic_database
from cgforge.errors import InputError
from cgforge.grids import LearningGrids
from cgforge.observables.rdf import RDFResult
from cgforge.workflows.coverage import input_cloud
from cgforge.workflows.db_generate import generate
from cgforge.workflows.db_stages import (
    StageFailure,
    liquid_state_problem,
    run_stage_a,
    run_stage_c,
)

SHIPPED_DB = Path(__file__).resolve().parents[1] / "data" / "ffdb-cpu-quick.sqlite"
MOLECULE = "3-methylpentane"
NO_PERTURBATION = {"depth_kT": 0.0, "barrier_kT": 0.0, "scale": 0.0, "jitter_kT": [0.0] * 6}
STRONG = dict(NO_PERTURBATION, depth_kT=0.75, barrier_kT=0.75)


@pytest.fixture(scope="module")
def stage_a(tmp_path_factory):
    """A database with one tiny stage-A record; returns (db path, parent key)."""
    root = tmp_path_factory.mktemp("stage_c")
    path = root / "ff.db"
    with Database.init(path, database_grids()) as db:
        key = db.add_pending(stage_a_spec(MOLECULE, 7, stable_ranges(), "tiny"))
        _, spec = db.claim("A", worker="test")
        out = run_stage_a(spec, root / "work_a", learning_grids(db), platform="cpu")
        db.complete(key, *out)
    return path, key


def _version_1_copy(dest: Path) -> Path:
    """A schema-1 database with the shipped file's stage A and B records at ``dest``.

    The shipped file itself may already be schema 2 (grown by stage C); its A and B records are
    then written back into a ``records`` table with schema 1's CHECK, as a file made before
    stage C existed holds them."""
    shutil.copyfile(SHIPPED_DB, dest)
    conn = sqlite3.connect(dest)
    version = int(
        conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()[0]
    )
    if version != 1:
        indexes = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' "
                "AND sql IS NOT NULL"
            )
        ]
        conn.execute("PRAGMA foreign_keys = OFF")
        with conn:
            conn.execute(
                "DELETE FROM arrays WHERE key IN (SELECT key FROM records WHERE stage = 'C')"
            )
            conn.execute(_records_table("records_v1", ("A", "B")))
            conn.execute(
                "INSERT INTO records_v1 SELECT * FROM records WHERE stage IN ('A', 'B') ORDER BY rowid"
            )
            conn.execute("DROP TABLE records")
            conn.execute("ALTER TABLE records_v1 RENAME TO records")
            for sql in indexes:
                conn.execute(sql)
            conn.execute("UPDATE meta SET value = '1' WHERE name = 'schema_version'")
        conn.execute("VACUUM")
    conn.close()
    return dest


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_c(db: Database, parent, spec: dict, work: Path) -> str:
    key = db.add_pending(spec)
    claimed = db.claim("C", worker="test")
    assert claimed is not None and claimed[0] == key
    try:
        out = run_stage_c(claimed[1], parent, work, learning_grids(db), platform="cpu")
    except StageFailure as exc:
        db.fail(key, exc.reason)
        return key
    db.complete(key, *out)
    return key


# ------------------------------------------------------------------------------ schema
def test_version_1_database_migrates_on_open_and_reads_as_it_is(tmp_path):
    """A copy of the shipped (schema 1) database: read-only it is read unchanged; opened
    writable it is migrated to schema 2 (stage 'C' allowed) keeping every record and array."""
    before = _sha256(SHIPPED_DB)
    old = _version_1_copy(tmp_path / "old.sqlite")
    version_1 = _sha256(old)
    with Database.open(old, readonly=True) as db:
        assert db.meta["schema_version"] == 1
        counts = db.counts()
        records = {r.key: r for stage in ("A", "B") for r in db.iter_done(stage)}
    assert counts["C"] == dict.fromkeys(counts["C"], 0) and counts["B"]["done"] >= 20
    assert _sha256(old) == version_1  # reading does not migrate
    conn = sqlite3.connect(old)
    n_rows = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    n_arrays = conn.execute("SELECT COUNT(*) FROM arrays").fetchone()[0]
    conn.close()

    with Database.open(old) as db:
        assert db.meta["schema_version"] == SCHEMA_VERSION == 2
        assert db.counts() == counts
        parent = db.get(next(k for k, r in records.items() if r.stage == "A"))
        for key, record in records.items():
            again = db.get(key)
            assert (again.stage, again.state, again.spec, again.scalars) == (
                record.stage,
                record.state,
                record.spec,
                record.scalars,
            )
            for name, item in record.arrays.items():
                assert np.array_equal(again.arrays[name].data, item.data)
        spec = stage_c_spec(parent, 50.0, 1, "tiny", NO_PERTURBATION)
        key = db.add_pending(spec)  # the migrated CHECK accepts stage C
        assert db.get(key).stage == "C" and db.counts()["C"]["pending"] == 1
    conn = sqlite3.connect(old)
    assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == n_rows + 1
    assert conn.execute("SELECT COUNT(*) FROM arrays").fetchone()[0] == n_arrays
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    table = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()[0]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert "'C'" in table
    assert {"records_stage_state", "records_finished", "records_parent"} <= indexes
    with Database.open(old) as db:  # a second open finds version 2: nothing to migrate
        assert db.meta["schema_version"] == 2 and db.counts()["C"]["pending"] == 1
    assert _sha256(SHIPPED_DB) == before  # the shipped file is never touched


def test_version_1_database_refuses_stage_c_until_migrated(tmp_path):
    """The CHECK of a version-1 file refuses stage C: it is the reason for the migration."""
    old = _version_1_copy(tmp_path / "old.sqlite")
    conn = sqlite3.connect(old)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute(
            "INSERT INTO records (key, stage, state, spec_json, created_utc) "
            "VALUES ('x', 'C', 'pending', '{}', 'now')"
        )
    conn.close()


# ------------------------------------------------------------------------------ specs and plan
def test_stage_c_plan_is_deterministic_and_draws_within_its_ranges(stage_a):
    path, parent_key = stage_a
    with Database.open(path, readonly=True) as db:
        parents = list(db.iter_done("A"))
    plan = plan_stage_c(parents, 6, seed=3, mass_range_amu=(20, 200), preset="tiny")
    again = plan_stage_c(parents, 8, seed=3, mass_range_amu=(20, 200), preset="tiny")
    assert [spec_key(s) for s in plan] == [spec_key(s) for s in again[:6]]
    assert len({spec_key(s) for s in again}) == 8
    other = plan_stage_c(parents, 6, seed=4, mass_range_amu=(20, 200), preset="tiny")
    assert not {spec_key(s) for s in plan} & {spec_key(s) for s in other}
    for spec in again:
        assert spec["stage"] == "C" and spec["parent_key"] == parent_key
        assert 20 <= spec["mass_amu"] <= 200
        p = spec["perturbation"]
        assert STAGE_C_DEPTH_KT[0] <= p["depth_kT"] <= STAGE_C_DEPTH_KT[1]
        assert 0.25 * p["depth_kT"] - 1e-3 <= p["barrier_kT"] <= p["depth_kT"] + 1e-3
        assert len(p["jitter_kT"]) == p["n_basis"] == 6
    assert draw_perturbation(5) == draw_perturbation(5) != draw_perturbation(6)
    with pytest.raises(InputError, match="scale must lie in"):
        check_perturbation(dict(NO_PERTURBATION, scale=1.5))
    with pytest.raises(InputError, match="stage C perturbs done stage-A records"):
        plan_stage_c([], 1, preset="tiny")


# ------------------------------------------------------------------------------ records
def test_stage_c_record_has_its_own_potential_and_is_slower_when_perturbed(stage_a, tmp_path):
    """At the parent's mass and seed: no perturbation reproduces the parent's potential and
    about its D; a deeper well with a barrier behind the first shell is its own potential and
    at least 1.3x slower. 0.75 kT each (measured 3.4x, MSD log-log slope 1.03): deeper draws
    (2 + 2 kT: slope 0.47) sit at the non-diffusive gate (0.5) of the tiny preset's 8 ps."""
    path, parent_key = stage_a
    work = tmp_path / "c.db"
    shutil.copyfile(path, work)
    with Database.open(work) as db:
        parent = db.get(parent_key)
        mass = parent.scalars["mass_amu"]
        plain = _run_c(db, parent, stage_c_spec(parent, mass, 5, "tiny", NO_PERTURBATION),
                       tmp_path / "plain")  # fmt: skip
        strong = _run_c(db, parent, stage_c_spec(parent, mass, 5, "tiny", STRONG),
                        tmp_path / "strong")  # fmt: skip
        plain_rec, strong_rec = db.get(plain), db.get(strong)
    assert plain_rec.state == strong_rec.state == "done", (plain_rec.error, strong_rec.error)
    r = LearningGrids().potential_r_nm
    tail = r >= 0.4
    u_parent = parent.arrays["potential"].data
    u_plain, u_strong = plain_rec.arrays["potential"].data, strong_rec.arrays["potential"].data
    assert strong_rec.arrays["potential"].grid_name == POTENTIAL_GRID
    assert strong_rec.arrays["g_cg"].grid_name == RDF_GRID
    assert np.allclose(u_plain[tail], u_parent[tail], atol=1e-6)
    assert (
        np.max(np.abs(u_strong[tail] - u_parent[tail])) > 1.0
    )  # kJ/mol: 0.75 kT (~1.9 kJ/mol) deeper
    assert strong_rec.stage == "C" and strong_rec.parent_key == parent_key
    d_parent = parent.scalars["diffusion_cg_m2_s"]
    d_plain = plain_rec.scalars["diffusion_cg_m2_s"]
    d_strong = strong_rec.scalars["diffusion_cg_m2_s"]
    assert 1e-11 < d_strong < 1e-7 and np.isfinite(d_strong)  # m²/s
    assert 1 / 3 < d_plain / d_parent < 3.0  # the same potential, another seed
    assert d_plain / d_strong >= 1.3
    s = strong_rec.scalars
    assert len(s["perturbation_coefficients"]) == 7 and s["depth_kT"] == STRONG["depth_kT"]
    assert s["mobility_vs_parent"] == pytest.approx(d_strong / d_parent)  # same mass
    assert s["acceleration_factor"] == pytest.approx(d_strong / parent.scalars["diffusion_aa_m2_s"])
    assert s["parent_diffusion_aa_m2_s"] == parent.scalars["diffusion_aa_m2_s"]
    assert np.isfinite(s["pressure_bar"]) and s["density_g_cm3"] > 0
    assert strong_rec.provenance["basis"]["h_nm"] > 0


def test_liquid_state_gates_name_their_reason():
    r = LearningGrids().rdf_r_nm
    liquid = np.interp(r, [0.0, 0.4, 0.5, 0.6, 0.75, 0.9, 1.5], [0, 0, 2.5, 1.2, 0.8, 1.05, 1.0])
    crystal = np.interp(r, [0.0, 0.45, 0.5, 0.55, 0.62, 0.7, 1.5], [0, 0, 7.0, 0.5, 0.0, 2, 1.0])

    def rdf(g):
        return RDFResult(r, g, np.zeros_like(g), 10, 1.5, 0.01)

    ok = {"diffusion_m2_s": 2e-9, "msd_loglog_slope": 0.95, "pressure_bar": 30.0}
    msd = np.array([0.0, 0.05, 0.2])
    kwargs = {"pressure_target_bar": 1.0, "number_density_fraction": 1.0}
    assert liquid_state_problem(ok, rdf(liquid), msd, **kwargs) is None
    cases = [
        ({**ok, "diffusion_m2_s": 2e-11}, liquid, msd, kwargs, "frozen: D_CG"),
        (ok, liquid, np.array([0.0, 0.001, 0.002]), kwargs, "frozen: the beads moved"),
        ({**ok, "msd_loglog_slope": 0.2}, liquid, msd, kwargs, "non-diffusive MSD"),
        (ok, crystal, msd, kwargs, "crystalline g"),
        (ok, liquid, msd, {**kwargs, "number_density_fraction": 0.2}, "evaporated"),
        ({**ok, "pressure_bar": 9000.0}, liquid, msd, kwargs, "no liquid at 1 bar"),
    ]
    for summary, g, m, kw, reason in cases:
        problem = liquid_state_problem(summary, rdf(g), m, **kw)
        assert problem is not None and problem.startswith(reason) and "\n" not in problem


# ------------------------------------------------------------------------------ generation
def test_generate_plans_runs_and_resumes_stage_c(stage_a, tmp_path, capsys):
    path, parent_key = stage_a
    work = tmp_path / "gen.db"
    shutil.copyfile(path, work)
    run = {"preset": "tiny", "seed": 2, "workers": 1, "platform": "cpu", "threads": 1}
    report = generate(work, perturbed_runs=2, **run)
    stage = report.stages["C"]
    assert stage.planned == stage.added == stage.ran == 2 and stage.done + stage.failed == 2
    assert report.counts["C"]["done"] + report.counts["C"]["failed"] == 2
    with Database.open(work, readonly=True) as db:
        done = list(db.iter_done("C"))
        reasons = [f["error"] for f in db.failures()]
        assert all(r.parent_key == parent_key for r in done)
        assert all("\n" not in str(r) for r in reasons)
    again = generate(work, perturbed_runs=2, **run)  # the same plan: nothing new, nothing rerun
    assert again.stages["C"].added == 0 and again.stages["C"].ran == 0
    capsys.readouterr()
    assert main(["db", "status", str(work)]) == 0
    rows = [
        [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]
        for line in capsys.readouterr().err.splitlines()
    ]
    assert ["C", *map(str, again.counts["C"].values()), "2"] in rows


def test_stage_c_bad_input_is_one_line_and_names_the_fix(tmp_path, capsys):
    from cgforge.cli.options import with_flags

    with pytest.raises(InputError) as info:
        generate(tmp_path / "x.db", perturbed_runs=-1)
    assert info.value.parameters == ("perturbed_runs",)
    assert "--perturbed-runs must be a non-negative integer, got -1" in with_flags(info.value, "db")
    # no database, and a database without done stage-A records: one line naming the fix
    missing = tmp_path / "missing.db"
    empty = tmp_path / "empty.db"
    Database.init(empty, database_grids()).close()
    before = empty.read_bytes()
    for target in (missing, empty):
        capsys.readouterr()
        assert main(["db", "generate", str(target), "--perturbed-runs", "2", "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, err
        assert "stage C perturbs done stage-A records" in err and "--molecules" in err, err
        assert "--aa-runs" in err
    assert not missing.exists() and not lock_path(missing).exists()
    assert empty.read_bytes() == before
    capsys.readouterr()
    assert main(["db", "generate", str(empty), "--perturbed-runs", "-3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--perturbed-runs must be a non-negative integer, got -3" in err and "\n" not in err


# ------------------------------------------------------------------------------ learning data
def _with_stage_c(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A synthetic database (24 A + 24 B) plus one stage-C record per stage-A record, each
    with its own potential (the parent's with a 1 kJ/mol deeper well); returns the path and
    {stage-C key: its potential}."""
    path = build_synthetic_database(tmp_path / "syn.db", n_a=24, n_b_per_a=1, seed=1)["path"]
    own: dict[str, np.ndarray] = {}
    with Database.open(path) as db:
        r = learning_grids(db).potential_r_nm
        for parent in list(db.iter_done("A")):
            u = parent.arrays["potential"].data - np.exp(-(((r - 0.45) / 0.05) ** 2))
            spec = stage_c_spec(parent, 120.0, 0, "tiny", NO_PERTURBATION)
            spec["hand_made"] = True
            key = db.add_pending(spec)
            db.claim("C", worker="test")
            scalars = {
                "mass_amu": 120.0,
                "temperature_K": parent.scalars["temperature_K"],
                "density_g_cm3": 0.7,
                "diffusion_cg_m2_s": 0.5 * parent.scalars["diffusion_cg_m2_s"],
                "cutoff_nm": parent.scalars.get("cutoff_nm", 1.0),
            }
            arrays = {
                "g_cg": (parent.arrays["g_cg"].data, "1", RDF_GRID),
                "potential": (u, "kJ/mol", POTENTIAL_GRID),
            }
            db.complete(key, scalars, arrays, {"parent_key": parent.key})
            own[key] = u
    return path, own


def test_mobility_data_take_stage_c_with_their_own_potentials(tmp_path):
    path, own = _with_stage_c(tmp_path)
    data = load_mobility_data(path, folds=4)
    records = data.records
    assert records.stages.count("C") == 24 and records.stages.count("B") == 24
    assert records.summary()["n_stage_c"] == 24
    for i, key in enumerate(records.keys):
        if records.stages[i] != "C":
            continue
        assert np.array_equal(records.potential[i], own[key])  # its own, not its parent's
        parent = records.keys.index(records.groups[i])  # grouped with its parent
        assert records.stages[parent] == "A"
        assert not np.allclose(records.potential[i], records.potential[parent])
        assert np.isnan(records.d_aa[i]) and np.isnan(records.acceleration[i])
        assert records.parameters[i] is None
    # the parameters→potential and acceleration models read stage A only
    assert set(read_records(path, ("A",)).stages) == {"A"}
    cloud = input_cloud(path)
    assert cloud["summary"]["n_stage_c"] == 24
    c_rows = [row for row in cloud["records"] if row["stage"] == "C"]
    assert all(row["group"] == row["key"] for row in c_rows)  # its own potential
