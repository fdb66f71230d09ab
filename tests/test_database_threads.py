"""``cgforge db generate --threads`` reaches the CG engine of every stage (the ``cg_threads`` of
the IBI settings and CG protocols) without entering a record's spec or key.

No simulation runs: the CG runs (``run_cg``, ``run_ibi_from_reference``) and the all-atom
equilibration are replaced by stand-ins that capture what they are given (well under a
second per test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cgforge.workflows.cg as cg_workflow
import cgforge.workflows.db_generate as db_generate
import cgforge.workflows.db_stages as db_stages
from cgforge.database.stages import (
    POTENTIAL_GRID,
    STAGE_PRESETS,
    database_grids,
    learning_grids,
    stage_a_spec,
    stage_b_spec,
    stage_c_spec,
    stage_settings,
)
from cgforge.database.store import Database, spec_key
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import SimulationError
from cgforge.grids import resample_potential
from cgforge.methods.ibi import IBIConfig
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.table import TabulatedPotential
from cgforge.rundir import WORK
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows.db_generate import run_record

THREADS = 3
NO_PERTURBATION = {"depth_kT": 0.0, "barrier_kT": 0.0, "scale": 0.0, "jitter_kT": [0.0] * 6}


@pytest.fixture(autouse=True)
def _keep_process_threads(monkeypatch):
    """run_record's thread setting of the process (environment, OpenMM's CPU default) is left
    out: it would outlive the test."""
    monkeypatch.setattr(db_generate, "_use_threads", lambda threads: None)


@pytest.fixture
def lj_parent(tmp_path):
    """A database with a done, hand-built stage-A record (an argon-like LJ potential)."""
    path = tmp_path / "ff.db"
    with Database.init(path, database_grids()) as db:
        grids = learning_grids(db)
        r = grids.potential_r_nm
        table = TabulatedPotential.lj(0.996, 0.34, r[r <= 0.68 + 1e-9])
        u = resample_potential(table.smooth_cutoff(0.1), grids)
        spec = {"stage": "A", "molecule": "lj-argon", "temperature_K": 85.0, "pressure_bar": 1.0}
        key = db.add_pending(spec)
        db.claim("A", worker="test")
        scalars = {
            "mass_amu": 39.948,
            "temperature_K": 85.0,
            "density_g_cm3": 21.0 * 39.948 * AMU_NM3_TO_G_CM3,
            "cutoff_nm": 0.68,
        }
        db.complete(key, scalars, {"potential": (u, "kJ/mol", POTENTIAL_GRID)}, {"hand": 1})
    return path, key


def _capturing_run_cg(captured: list, fail: bool = False):
    """A stand-in for run_cg that keeps the protocol it is given and writes a flat g(r)."""

    def run_cg(potential_file, *, protocol, out, density_g_cm3, **kwargs):
        captured.append(protocol)
        if fail:
            raise SimulationError("stand-in run stopped after capturing its protocol")
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        r = np.arange(0.005, 1.2, 0.01)
        RDFResult(r, np.ones_like(r), np.zeros_like(r), 0, 1.2, 0.01).to_csv(out / "rdf.csv")
        return {
            "density_g_cm3": density_g_cm3,
            "diffusion_m2_s": 2.0e-9,
            "pressure_bar": 1.0,
            "cg_threads": protocol.cg_threads,
            "platform": "stand-in",
            "provenance": {},
        }

    return run_cg


def test_threads_are_no_part_of_the_hashed_settings_or_the_spec():
    assert "cg_threads" not in MDProtocol().to_dict()  # the default keeps old run hashes
    assert MDProtocol(cg_threads=THREADS).to_dict()["cg_threads"] == THREADS
    assert "cg_threads" not in IBIConfig().to_dict()
    settings = dict(STAGE_PRESETS["tiny"])
    threaded = dict(settings, ibi=dict(settings["ibi"], cg_threads=THREADS))
    assert stage_settings(threaded) == stage_settings(settings) == STAGE_PRESETS["tiny"]


def test_stage_b_record_runs_its_cg_md_on_the_generation_threads(lj_parent, tmp_path, monkeypatch):
    path, parent_key = lj_parent
    captured: list[MDProtocol] = []
    monkeypatch.setattr(cg_workflow, "run_cg", _capturing_run_cg(captured))
    with Database.open(path) as db:
        parent = db.get(parent_key)
        spec = stage_b_spec(parent, 80.0, 1, "tiny")
        key = db.add_pending(spec)
        _, claimed = db.claim("B", worker="test")
        grids = learning_grids(db).to_dict()
        out = run_record(claimed, parent, tmp_path / "work", grids, platform="cpu", threads=THREADS)
        assert out[0] == "done", out
        db.complete(key, *out[1:])
        rec = db.get(key)
    assert [p.cg_threads for p in captured] == [THREADS]
    # the record is the one planned: same spec, same key, whatever the threads
    assert rec.spec == spec == stage_b_spec(parent, 80.0, 1, "tiny")
    assert rec.key == key == spec_key(spec)
    assert rec.provenance["cg_threads"] == THREADS
    assert rec.provenance["executor"]["threads"] == THREADS
    # one thread: the protocol of a serial run, whose hashed dict has no cg_threads
    run_record(spec, parent, tmp_path / "serial", grids, platform="cpu", threads=1)
    assert captured[-1].cg_threads == 1 and "cg_threads" not in captured[-1].to_dict()


@pytest.mark.parametrize(("stored", "expected"), [({}, 1), ({"cg_threads": 2}, 2)])
def test_a_started_cg_run_resumes_with_its_own_threads(
    lj_parent, tmp_path, monkeypatch, stored, expected
):
    """A CG run directory names its threads in its configuration (when not 1): a record
    resumed with other --threads keeps the run's, instead of being refused as another run."""
    path, parent_key = lj_parent
    captured: list[MDProtocol] = []
    monkeypatch.setattr(cg_workflow, "run_cg", _capturing_run_cg(captured, fail=True))
    work = tmp_path / "work"
    (work / "cg" / WORK).mkdir(parents=True)
    config = {"protocol": {"engine": "lammps", **stored}}
    (work / "cg" / WORK / "config.json").write_text(json.dumps({"hash": "x", "config": config}))
    with Database.open(path, readonly=True) as db:
        parent = db.get(parent_key)
        grids = learning_grids(db).to_dict()
    spec = stage_b_spec(parent, 80.0, 1, "tiny")
    out = run_record(spec, parent, work, grids, platform="cpu", threads=THREADS)
    assert out[0] == "failed" and "stand-in run stopped" in out[1]
    assert [p.cg_threads for p in captured] == [expected]
    assert db_stages.resumed_cg_threads(tmp_path / "fresh", THREADS) == THREADS


def test_stage_c_record_runs_its_cg_md_on_the_generation_threads(lj_parent, tmp_path, monkeypatch):
    path, parent_key = lj_parent
    captured: list[MDProtocol] = []
    monkeypatch.setattr(cg_workflow, "run_cg", _capturing_run_cg(captured, fail=True))

    def unperturbed(parent, perturbation, grids, temperature_K):
        return db_stages.parent_potential(parent, grids), np.zeros(7), {"stand_in": True}

    monkeypatch.setattr(db_stages, "perturbed_potential", unperturbed)
    with Database.open(path, readonly=True) as db:
        parent = db.get(parent_key)
        grids = learning_grids(db).to_dict()
    spec = stage_c_spec(parent, 60.0, 2, "tiny", NO_PERTURBATION)
    out = run_record(spec, parent, tmp_path / "work", grids, platform="cpu", threads=THREADS)
    assert out[0] == "failed" and "stand-in run stopped" in out[1]
    assert [p.cg_threads for p in captured] == [THREADS]


def test_stage_a_ibi_and_cg_production_run_on_the_generation_threads(tmp_path, monkeypatch):
    captured: list[IBIConfig] = []

    def equilibrated(make_config, workdir, *args, **kwargs):
        return Path(workdir) / "aa", {}, {}

    def ibi(reference_dir, out, config, **kwargs):
        captured.append(config)
        raise SimulationError("stand-in IBI stopped after capturing its settings")

    monkeypatch.setattr(db_stages, "equilibrate_aa", equilibrated)
    monkeypatch.setattr(cg_workflow, "run_ibi_from_reference", ibi)
    spec = stage_a_spec("3-methylpentane", 1, None, "tiny")
    with Database.init(tmp_path / "ff.db", database_grids()) as db:
        grids = learning_grids(db).to_dict()
    out = run_record(spec, None, tmp_path / "work", grids, platform="cpu", threads=THREADS)
    assert out[0] == "failed" and "stand-in IBI stopped" in out[1]
    # the IBI settings carry the threads; cgforge.workflows.cg gives them to the production
    assert [c.cg_threads for c in captured] == [THREADS]
    assert spec == stage_a_spec("3-methylpentane", 1, None, "tiny")
