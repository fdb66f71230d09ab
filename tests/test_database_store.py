"""The SQLite store of the synthetic force-field database: schema, queue, arrays, merge, export."""

from __future__ import annotations

import csv
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from cgforge.database import SCHEMA_VERSION, Database, spec_key
from cgforge.errors import InputError

R_RDF = np.linspace(0.0, 1.5, 151)
R_POT = np.linspace(0.2, 1.4, 121)
GRIDS = {"rdf": {"values": R_RDF, "unit": "nm"}, "potential": (R_POT, "nm")}


def spec_a(seed: int, temperature: float = 300, molecule: str = "ethanol") -> dict:
    return {
        "stage": "A",
        "molecule": molecule,
        "temperature_K": temperature,
        "preset": "fast",
        "draw": {"seed": seed, "k_bond_scale": 1.0 + 0.01 * seed, "k_angle_scale": 0.9},
    }


def spec_b(parent: str, mass: float) -> dict:
    return {"stage": "B", "molecule": "ethanol", "parent_key": parent, "mass_amu": mass}


def results(seed: int) -> tuple[dict, dict]:
    g = 1.0 + 0.1 * np.sin(R_RDF * (seed + 1))
    u = (0.1 * seed) * np.exp(-R_POT)
    scalars = {
        "density_g_cm3": 0.789,
        "diffusion_aa_m2_s": 1.1e-9,
        "diffusion_cg_m2_s": 5.5e-9,
        "acceleration_factor": 5.0,
        "rdf_deviation": 0.01 * seed,
        "ibi_iterations": 12,
    }
    arrays = {
        "rdf": (g, "1", "rdf"),
        "potential": (u.astype(np.float32), "kJ/mol", "potential"),
        "params": (np.arange(4, dtype=np.int64) + seed, "1", None),
    }
    return scalars, arrays


def run_one(db: Database, stage: str | None = None) -> str | None:
    claimed = db.claim(stage, worker="w0")
    if claimed is None:
        return None
    key, spec = claimed
    scalars, arrays = results(spec.get("draw", {}).get("seed", 0))
    db.complete(key, scalars, arrays, provenance={"seed": 1})
    return key


@pytest.fixture
def db(tmp_path: Path):
    with Database.init(tmp_path / "ff.db", GRIDS) as database:
        yield database


def test_init_open_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ff.db"
    with Database.init(path, GRIDS) as db:
        key = db.add_pending(spec_a(1))
    with Database.open(path) as db:
        assert db.meta["schema_version"] == SCHEMA_VERSION
        assert db.meta["created_utc"] and db.meta["cgforge_version"]
        assert db.grids["rdf"]["unit"] == "nm"
        np.testing.assert_allclose(db.grids["potential"]["values"], R_POT)
        assert db.get(key).state == "pending"
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(InputError, match="already exists"):
        Database.init(path, GRIDS)
    Database.init(path, GRIDS, exist_ok=True).close()
    with pytest.raises(InputError, match="different grids"):
        Database.init(path, {"rdf": (R_RDF[:-1], "nm")}, exist_ok=True)


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 100)
    with pytest.raises(InputError, match=r"notes\.db' is not an SQLite file"):
        Database.open(text)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE things (x INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match="not a cgforge database"):
        Database.open(other)
    with pytest.raises(InputError, match="no database at"):
        Database.open(tmp_path / "missing.db")


@pytest.mark.parametrize(("version", "message"), [(99, "newer"), (0, "older")])
def test_wrong_schema_version(tmp_path: Path, version: int, message: str) -> None:
    path = tmp_path / "ff.db"
    Database.init(path, GRIDS).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(version),))
    conn.commit()
    conn.close()
    with pytest.raises(InputError, match=f"schema version {version}, {message}") as info:
        Database.open(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_add_pending_idempotent_and_key_invariant(db: Database) -> None:
    key = db.add_pending(spec_a(3, temperature=300))
    reordered = dict(reversed(list(spec_a(3, temperature=300.0).items())))
    reordered["draw"] = dict(reversed(list(reordered["draw"].items())))
    reordered["draw"]["seed"] = np.int64(3)
    assert spec_key(reordered) == key
    assert db.add_pending(reordered) == key
    assert db.add_pending(spec_a(3, temperature=301)) != key
    assert db.counts()["A"]["pending"] == 2
    assert db.get(key).scalars["temperature_K"] == 300.0
    with pytest.raises(InputError, match="parent_key"):
        db.add_pending({"stage": "B", "molecule": "ethanol", "mass_amu": 50})
    with pytest.raises(InputError, match="stage"):
        db.add_pending({"stage": "C", "molecule": "ethanol"})


def test_lifecycle_claim_complete_fail(db: Database) -> None:
    ka = db.add_pending(spec_a(1))
    kb = db.add_pending(spec_a(2))
    kc = db.add_pending(spec_b(ka, 40.0))
    # Stage filter: the only stage-B record is claimed, not the older stage-A ones.
    key, spec = db.claim("B", worker="w1")
    assert key == kc and spec["mass_amu"] == 40
    with pytest.raises(InputError, match="not 'running'"):
        db.complete(ka, {}, {})
    db.fail(kc, "CG MD blew up: NaN energy at step 120")
    assert run_one(db) == ka
    claimed = db.claim(worker="w2")
    assert claimed is not None and claimed[0] == kb
    assert db.claim() is None
    # An array on the wrong grid length is refused and leaves the record running, not half done.
    with pytest.raises(InputError, match="grid 'rdf' has 151 points"):
        db.complete(kb, {"density_g_cm3": 0.8}, {"rdf": (np.ones(10), "1", "rdf")})
    with pytest.raises(InputError, match="fail"):
        db.complete(kb, {"density_g_cm3": float("nan")}, {})
    rec = db.get(kb)
    assert rec.state == "running" and rec.arrays == {} and "density_g_cm3" not in rec.scalars
    assert rec.worker == "w2" and rec.attempts == 1
    db.complete(kb, *results(2))
    counts = db.counts()
    assert counts["A"] == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    assert counts["B"]["failed"] == 1
    (failure,) = db.failures()
    assert failure["key"] == kc and "NaN energy" in failure["error"]
    assert db.throughput(hours=2.0) == pytest.approx(1.0)
    done = db.get(ka)
    assert done.finished_utc >= done.started_utc >= done.created_utc
    assert done.provenance == {"seed": 1} and done.scalars["ibi_iterations"] == 12
    assert db.requeue_failed() == 1 and db.get(kc).state == "pending"


def test_requeue_after_crash_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ff.db"
    with Database.init(path, GRIDS) as db:
        keys = {db.add_pending(spec_a(s)) for s in range(5)}
        run_one(db)
        db.claim(worker="crashed")
        db.claim(worker="crashed")
        # The writer dies here: its connection goes away with two records left 'running'.
    with Database.open(path) as db:
        assert db.counts()["A"]["running"] == 2
        assert db.requeue_running() == 2
        while run_one(db):
            pass
        done = [r.key for r in db.iter_done("A")]
        assert sorted(done) == sorted(keys)
        assert db.counts()["A"] == {"pending": 0, "running": 0, "done": 5, "failed": 0}
        attempts = sorted(db.get(k).attempts for k in keys)
        assert attempts == [1, 1, 1, 2, 2]


def test_arrays_round_trip(db: Database) -> None:
    key = db.add_pending(spec_a(7))
    assert run_one(db) == key
    rec = db.get(key)
    _, arrays = results(7)
    assert set(rec.arrays) == set(arrays)
    for name, (values, unit, grid) in arrays.items():
        stored = rec.arrays[name]
        assert stored.data.dtype == np.asarray(values).dtype
        assert stored.data.shape == np.asarray(values).shape
        np.testing.assert_array_equal(stored.data, values)
        assert stored.unit == unit and stored.grid_name == grid
    assert rec.scalars["rdf_deviation"] == pytest.approx(0.07)
    (only,) = list(db.iter_done())
    np.testing.assert_array_equal(only.arrays["potential"].data, arrays["potential"][0])


def test_merge_no_duplicates_done_wins(tmp_path: Path) -> None:
    with Database.init(tmp_path / "a.db", GRIDS) as a, Database.init(tmp_path / "b.db", GRIDS) as b:
        shared_done_in_b = a.add_pending(spec_a(1))
        assert b.add_pending(spec_a(1)) == shared_done_in_b
        shared_done_in_a = a.add_pending(spec_a(2))
        b.add_pending(spec_a(2))
        only_b = b.add_pending(spec_a(3))
        a.add_pending(spec_a(4))
        # In a: record 2 done, record 1 failed. In b: record 1 done, 2 pending, 3 running.
        a.claim(worker="a")  # 1
        a.fail(shared_done_in_b, "IBI did not converge")
        assert run_one(a) == shared_done_in_a
        assert run_one(b) == shared_done_in_b
        for _ in range(2):
            b.claim(worker="b")  # 2 and 3 running in b
        stats = a.merge(tmp_path / "b.db")
        assert stats == {"added": 1, "replaced": 1, "kept": 1}
        assert a.get(shared_done_in_b).state == "done"
        assert a.get(shared_done_in_b).arrays["rdf"].data.shape == R_RDF.shape
        assert a.get(shared_done_in_a).state == "done"
        assert a.get(only_b).state == "pending"  # running elsewhere → pending here
        total = sum(sum(s.values()) for s in a.counts().values())
        assert total == 4
        assert a.merge(tmp_path / "b.db") == {"added": 0, "replaced": 0, "kept": 3}
    with (
        Database.init(tmp_path / "c.db", {"rdf": (R_RDF * 2, "nm")}) as c,
        pytest.raises(InputError, match="grids differ"),
    ):
        c.merge(tmp_path / "a.db")


def test_reader_counts_while_writer_commits(tmp_path: Path) -> None:
    path = tmp_path / "ff.db"
    Database.init(path, GRIDS).close()
    n_records = 40
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with Database.open(path) as db:
                for seed in range(n_records):
                    db.add_pending(spec_a(seed))
                    run_one(db)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    seen: list[int] = []
    with Database.open(path, readonly=True) as reader:
        thread.start()
        while thread.is_alive():
            counts = reader.counts()["A"]
            assert counts["failed"] == 0 and counts["running"] + counts["pending"] <= 1
            seen.append(counts["done"])
        thread.join()
        assert not errors, errors
        assert reader.counts()["A"]["done"] == n_records
        with pytest.raises(InputError, match="read-only"):
            reader.add_pending(spec_a(999))
    assert len(seen) > 1 and seen == sorted(seen)


def test_export_npz_shapes(db: Database, tmp_path: Path) -> None:
    parents = [db.add_pending(spec_a(s)) for s in range(3)]
    while run_one(db, "A"):
        pass
    for i, mass in enumerate((20.0, 110.0)):
        db.add_pending(spec_b(parents[i], mass))
    for i in range(2):
        key, _ = db.claim("B")
        arrays = {
            "rdf": (np.ones_like(R_RDF), "1", "rdf"),
            "traj_msd": (np.ones(10 + i), "nm^2", None),  # varying length: not stacked
        }
        db.complete(key, {"mass_amu": 20.0 + 90 * i, "diffusion_cg_m2_s": 2e-9}, arrays)
    db.add_pending(spec_a(10))  # pending: not exported
    out = db.export_npz(tmp_path / "export")
    assert out["skipped"] == {"A": [], "B": ["traj_msd"]}
    a = np.load(tmp_path / "export" / "stage_A.npz")
    assert a["rdf"].shape == (3, R_RDF.size) and a["potential"].shape == (3, R_POT.size)
    assert a["params"].shape == (3, 4) and a["key"].shape == (3,)
    assert str(a["unit_potential"]) == "kJ/mol" and str(a["grid_of_rdf"]) == "rdf"
    np.testing.assert_allclose(a["grid_rdf"], R_RDF)
    b = np.load(tmp_path / "export" / "stage_B.npz")
    assert b["rdf"].shape == (2, R_RDF.size) and "traj_msd" not in b
    with open(tmp_path / "export" / "stage_B.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(float(r["mass_amu"]) for r in rows) == [20.0, 110.0]
    assert {r["parent_key"] for r in rows} <= set(parents)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="pyarrow"):
            db.export_npz(tmp_path / "export", format="parquet")
