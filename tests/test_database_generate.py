"""``cgforge db generate``: Dask execution with one writer, kill/resume, worker crashes, bad
input, and the D ∝ m^-1/2 check on stored stage-B records.

Cost: one tiny stage-A record (about 40 s on a free core) made once per module; stage-B
records of 64 beads and a few ps; every generation starts its own LocalCluster (a few s).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from _systems import stable_ranges
from cgforge.cli.main import main
from cgforge.database.lock import DatabaseLocked, WriterLock, lock_holder, lock_path
from cgforge.database.plan import plan_stage_a, record_workdir
from cgforge.database.stages import (
    POTENTIAL_GRID,
    STAGE_PRESETS,
    database_grids,
    learning_grids,
    stage_b_spec,
)
from cgforge.database.store import Database, spec_key
from cgforge.errors import InputError
from cgforge.grids import LearningGrids, resample_potential
from cgforge.potentials.table import TabulatedPotential
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows.db_generate import (
    CRASH_ONCE_ENV,
    generate,
    load_cluster_config,
    parse_mass_range,
    parse_molecules,
    slurm_cluster_kwargs,
)
from cgforge.workflows.db_stages import run_stage_a

MOLECULE = "3-methylpentane"
RANGES = stable_ranges()
SEED = 11
RUN = {"platform": "cpu", "engine": "openmm", "threads": 1}
PLAN_A = {"molecules": [MOLECULE], "aa_runs": 1, "preset": "tiny", "ranges": RANGES, "seed": SEED}

# Argon-like Lennard-Jones liquid (ε/kB = 120 K, σ = 0.34 nm, 39.948 amu) at 85 K: a parent
# stage-A record built by hand, so stage B runs a potential whose physics is known.
LJ_EPSILON_KJ_MOL = 0.996
LJ_SIGMA_NM = 0.34
LJ_MASS_AMU = 39.948
LJ_TEMPERATURE_K = 85.0
LJ_NUMBER_DENSITY_NM3 = 21.0


def lj_settings(beads: int, equilibration_ps: float, production_ps: float) -> dict:
    """Stage settings for runs of the LJ parent (10 fs steps: 0.005 LJ time units)."""
    settings = dict(STAGE_PRESETS["tiny"])
    settings.update(
        cg_beads=beads, cg_equilibration_ps=equilibration_ps, cg_production_ps=production_ps
    )
    settings["ibi"] = dict(settings["ibi"], timestep_fs=10.0)
    return settings


def add_lj_parent(db: Database, cutoff_nm: float) -> str:
    """A done stage-A record whose potential is the LJ cut (and tapered) at ``cutoff_nm``."""
    grids = learning_grids(db)
    r = grids.potential_r_nm
    table = TabulatedPotential.lj(LJ_EPSILON_KJ_MOL, LJ_SIGMA_NM, r[r <= cutoff_nm + 1e-9])
    u = resample_potential(table.smooth_cutoff(0.1), grids)
    spec = {
        "stage": "A",
        "molecule": "lj-argon",
        "temperature_K": LJ_TEMPERATURE_K,
        "pressure_bar": 1.0,
        "lennard_jones": {"epsilon_kj_mol": LJ_EPSILON_KJ_MOL, "sigma_nm": LJ_SIGMA_NM},
        "cutoff_nm": cutoff_nm,
    }
    key = db.add_pending(spec)
    assert db.claim("A", worker="test")[0] == key
    density = LJ_NUMBER_DENSITY_NM3 * LJ_MASS_AMU * AMU_NM3_TO_G_CM3
    scalars = {
        "mass_amu": LJ_MASS_AMU,
        "temperature_K": LJ_TEMPERATURE_K,
        "density_g_cm3": density,
        "cutoff_nm": cutoff_nm,
    }
    db.complete(key, scalars, {"potential": (u, "kJ/mol", POTENTIAL_GRID)}, {"hand_built": 1})
    return key


def lj_database(path: Path, cutoff_nm: float = 0.68) -> tuple[Path, str]:
    with Database.init(path, database_grids()) as db:
        key = add_lj_parent(db, cutoff_nm)
    return path, key


def contents(path: Path) -> dict:
    """{key: (stage, state, spec, scalars, arrays)} of every record."""
    out = {}
    with Database.open(path, readonly=True) as db:
        keys = [row[0] for row in db._conn.execute("SELECT key FROM records")]
        for key in keys:
            rec = db.get(key)
            arrays = {name: (a.data, a.unit, a.grid_name) for name, a in rec.arrays.items()}
            out[key] = (rec.stage, rec.state, rec.spec, rec.scalars, arrays)
    return out


def assert_same_records(x: dict, y: dict) -> None:
    assert sorted(x) == sorted(y)
    for key in x:
        stage, state, spec, scalars, arrays = x[key]
        assert y[key][:4] == (stage, state, spec, scalars), key
        assert sorted(y[key][4]) == sorted(arrays)
        for name, (data, unit, grid) in arrays.items():
            other = y[key][4][name]
            assert other[1:] == (unit, grid) and np.array_equal(other[0], data), (key, name)


# ------------------------------------------------------------------------------ stage A
@pytest.fixture(scope="module")
def stage_a_db(tmp_path_factory) -> Path:
    """A database with one tiny stage-A record made by ``generate`` (no stage B yet)."""
    path = tmp_path_factory.mktemp("gen_a") / "a.db"
    report = generate(path, mass_runs=0, workers=1, **PLAN_A, **RUN)
    assert report.stages["A"].done == 1 and report.stages["A"].failed == 0
    assert report.counts["A"]["done"] == 1 and report.counts["B"] == dict.fromkeys(
        ("pending", "running", "done", "failed"), 0
    )
    return path


def copy_database(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)  # closed: the WAL is checkpointed into the main file
    return dst


def cli_command(path: Path, ranges_file: Path, mass_runs: int) -> list[str]:
    return [
        "db", "generate", str(path), "--molecules", MOLECULE, "--aa-runs", "1",
        "--mass-runs", str(mass_runs), "--preset", "tiny", "--ranges", str(ranges_file),
        "--seed", str(SEED), "--platform", "cpu", "--engine", "openmm", "--workers", "1",
        "--threads", "1", "--quiet",
    ]  # fmt: skip


def wait_for_done(path: Path, proc: subprocess.Popen, n_done: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the generation ended before it could be stopped"
        if path.exists():
            with Database.open(path, readonly=True) as db:
                counts = db.counts()
            if counts["B"]["done"] >= n_done:
                return counts
        time.sleep(0.1)
    raise AssertionError(f"no {n_done} stage-B records done within {timeout_s} s")


def test_kill_and_resume_equal_an_uninterrupted_generation(stage_a_db, tmp_path, capsys):
    """SIGTERM (clean stop), then SIGKILL of the whole process group, then the same command:
    the records equal those of an uninterrupted generation, bit for bit (CPU platform, one
    thread: deterministic, and checkpoints restore the exact state)."""
    uninterrupted = copy_database(stage_a_db, tmp_path / "x.db")
    report = generate(uninterrupted, mass_runs=3, workers=1, **PLAN_A, **RUN)
    assert report.stages["A"].ran == 0 and report.stages["A"].added == 0  # A already done
    assert report.stages["B"].planned == report.stages["B"].done == 3
    assert report.counts["B"]["done"] == 3 and report.stages["B"].records_per_hour > 0

    resumed = copy_database(stage_a_db, tmp_path / "y.db")
    ranges_file = tmp_path / "ranges.yaml"
    ranges_file.write_text(yaml.safe_dump(RANGES.to_dict()))
    command = [sys.executable, "-m", "cgforge.cli.main", *cli_command(resumed, ranges_file, 3)]
    with open(tmp_path / "generate.log", "w") as log:
        # 1. a clean stop (SIGTERM to the writer, as Slurm sends): nothing is left running
        proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for_done(resumed, proc, 1, 240)
            holder = lock_holder(resumed)
            assert holder is not None and holder["pid"] == proc.pid
            capsys.readouterr()
            assert main(["db", "status", str(resumed)]) == 0  # a reader while the writer writes
            status = capsys.readouterr().err
            assert f"generation running (pid {proc.pid}" in status and "records/hour" in status
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 130
        finally:  # the writer's workers share its process group: none may outlive it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        with Database.open(resumed, readonly=True) as db:
            counts = db.counts()["B"]
        assert counts["running"] == 0 and 1 <= counts["done"] < 3, counts
        done_after_stop = counts["done"]

        # 2. a hard kill of the writer and its workers: records stay 'running'
        proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for_done(resumed, proc, done_after_stop + 1, 240)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        with Database.open(resumed, readonly=True) as db:
            counts = db.counts()["B"]
        assert counts["done"] < 3, "every record finished before the kill; nothing was resumed"
        assert counts["running"] >= 1, counts
        assert lock_holder(resumed) is None  # the kernel dropped the dead writer's lock

    # 3. the same command resumes
    capsys.readouterr()
    assert main(cli_command(resumed, ranges_file, 3)) == 0
    assert "interrupted" in capsys.readouterr().err
    x, y = contents(uninterrupted), contents(resumed)
    assert len(y) == 4, sorted(v[:2] for v in y.values())
    with Database.open(resumed, readonly=True) as db:
        errors = [(r["stage"], r["error"]) for r in db.failures()]
    assert all(v[1] == "done" for v in y.values()), (sorted(v[:2] for v in y.values()), errors)
    assert_same_records(x, y)
    with Database.open(resumed, readonly=True) as db:
        attempts = [r.attempts for r in db.iter_done("B")]
    assert max(attempts) >= 2  # a record claimed again after a stop


@pytest.mark.slow
@pytest.mark.parametrize(("platform", "engine"), [("reference", "openmm"), ("auto", "gromacs")])
def test_the_fixture_record_is_made_on_other_platforms(tmp_path, platform, engine):
    """The stage-A record of the fixture (CPU platform) also passes the equilibration gate on
    OpenMM's Reference platform and on GROMACS: the 40-molecule box's density drift (a few %,
    either sign, by platform) lies well inside its tolerance (3 natural fluctuations, ~9 %).
    Reference: about 4 min on a free core."""
    if engine == "gromacs" and shutil.which("gmx") is None:
        pytest.skip("GROMACS (gmx) is not installed")
    (spec,) = plan_stage_a([MOLECULE], 1, seed=SEED, ranges=RANGES, preset="tiny")
    scalars, _, _ = run_stage_a(
        spec, tmp_path / "a", LearningGrids(), platform=platform, engine=engine
    )
    assert scalars["density_drift_tolerance"] > 0.08
    assert abs(scalars["density_drift"]) < 0.5 * scalars["density_drift_tolerance"]


@pytest.mark.slow
def test_stage_a_killed_mid_md_resumes_to_the_same_record(stage_a_db, tmp_path):
    """A generation killed during the all-atom production of its stage-A record resumes from
    the checkpoint and stores the record an uninterrupted generation stored."""
    resumed = tmp_path / "a.db"
    ranges_file = tmp_path / "ranges.yaml"
    ranges_file.write_text(yaml.safe_dump(RANGES.to_dict()))
    (spec,) = plan_stage_a([MOLECULE], 1, seed=SEED, ranges=RANGES, preset="tiny")
    first_try = f"aa_eq{STAGE_PRESETS['tiny']['aa_equilibration_ps']:g}ps"  # equilibrate_aa
    checkpoint = (
        record_workdir(resumed, spec_key(spec)) / first_try / ".cgforge" / "production-0.chk"
    )
    command = [sys.executable, "-m", "cgforge.cli.main", *cli_command(resumed, ranges_file, 0)]
    with open(tmp_path / "generate.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 600
            while not checkpoint.exists() and time.monotonic() < deadline:
                assert proc.poll() is None, "the generation ended before it could be killed"
                time.sleep(0.2)
            assert checkpoint.exists()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    with Database.open(resumed, readonly=True) as db:
        assert db.counts()["A"]["running"] == 1
    assert main(cli_command(resumed, ranges_file, 0)) == 0
    assert_same_records(contents(stage_a_db), contents(resumed))
    with Database.open(resumed, readonly=True) as db:
        (record,) = db.iter_done("A")
    assert record.attempts == 2 and len(record.provenance["executor"]["starts"]) == 2


# ------------------------------------------------------------------------------ worker death
def test_dead_worker_task_is_retried(tmp_path, monkeypatch):
    """On a running Dask scheduler (``--scheduler tcp://…``) a worker dies in its task; Dask
    reruns it; with no reruns allowed it is KilledWorker, and ``--retry-failed`` reruns it."""
    import dask
    from distributed import LocalCluster

    path, parent = lj_database(tmp_path / "lj.db")
    settings = lj_settings(64, 2.0, 4.0)
    monkeypatch.setenv(CRASH_ONCE_ENV, str(tmp_path / "crashed-once"))  # workers inherit it
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 3}),
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        ) as cluster,
    ):
        report = generate(
            path, mass_runs=1, preset=settings, mass_range_amu=(60, 60),
            scheduler=cluster.scheduler_address, **RUN,
        )  # fmt: skip
    assert report.scheduler == cluster.scheduler_address and report.workers == 1
    assert (tmp_path / "crashed-once").exists()  # a worker process did die
    assert report.stages["B"].done == 1
    with Database.open(path, readonly=True) as db:
        (record,) = db.iter_done("B")
    assert record.parent_key == parent and record.attempts == 1  # Dask retried, not the writer
    starts = record.provenance["executor"]["starts"]
    assert len(starts) == 2 and starts[0]["pid"] != starts[1]["pid"]
    assert record.scalars["diffusion_cg_m2_s"] > 0

    # with no retries allowed the record fails with KilledWorker; --retry-failed reruns it
    monkeypatch.setenv(CRASH_ONCE_ENV, str(tmp_path / "crashed-twice"))
    report = generate(
        path, mass_runs=2, preset=settings, mass_range_amu=(60, 60), workers=1,
        allowed_failures=0, **RUN,
    )  # fmt: skip
    assert report.stages["B"].failed == 1 and report.stages["B"].done == 0
    with Database.open(path, readonly=True) as db:
        (failure,) = db.failures()
    assert "KilledWorker" in failure["error"] and "\n" not in failure["error"]
    report = generate(
        path, mass_runs=2, preset=settings, mass_range_amu=(60, 60), workers=1,
        retry_failed=True, **RUN,
    )  # fmt: skip
    assert report.requeued_failed == 1 and report.stages["B"].done == 1
    with Database.open(path, readonly=True) as db:
        record = db.get(failure["key"])
    assert record.state == "done" and record.attempts == 2


# ------------------------------------------------------------------------------ one writer
def test_second_writer_is_refused_at_once(tmp_path, capsys):
    path, _ = lj_database(tmp_path / "lj.db")
    before = path.read_bytes()
    with WriterLock(path):
        assert lock_holder(path)["pid"] == os.getpid()
        with pytest.raises(DatabaseLocked, match=f"being generated by pid {os.getpid()}"):
            WriterLock(path).acquire()
        capsys.readouterr()
        tic = time.monotonic()
        assert main(["db", "generate", str(path), "--mass-runs", "1", "--quiet"]) == 2
        assert time.monotonic() - tic < 5
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and f"pid {os.getpid()}" in err
        assert main(["db", "merge", str(path), str(path)]) == 2  # merging writes too
        assert main(["db", "status", str(path)]) == 0  # readers need no lock
    assert lock_holder(path) is None
    assert path.read_bytes() == before
    assert lock_path(path).exists()  # kept: deleting it could let two writers in


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_scheduler_changes_nothing(tmp_path, capsys):
    address = f"tcp://127.0.0.1:{free_port()}"
    fresh = tmp_path / "new.db"
    with pytest.raises(InputError, match=f"no Dask scheduler answers at {address}"):
        generate(fresh, mass_runs=0, scheduler=address, connect_timeout_s=2, **PLAN_A, **RUN)
    assert not fresh.exists() and not lock_path(fresh).exists()
    path, _ = lj_database(tmp_path / "lj.db")
    before = path.read_bytes()
    capsys.readouterr()
    rc = main(
        ["db", "generate", str(path), "--mass-runs", "2", "--scheduler", address,
         "--connect-timeout", "2", "--quiet"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no Dask scheduler answers" in err and "\n" not in err
    assert path.read_bytes() == before and not lock_path(path).exists()


def test_stages_runs_only_the_named_stages_and_plans_the_rest(stage_a_db, tmp_path):
    """stages='A' plans stage B over the done stage-A record and leaves it pending; a new
    stage-A entry planned under stages='c' stays pending too (nothing is simulated)."""
    path = copy_database(stage_a_db, tmp_path / "a.db")
    report = generate(path, mass_runs=2, workers=1, stages="A", **PLAN_A, **RUN)
    assert report.stages["B"].added == 2 and report.stages["B"].done == 0
    assert report.counts["B"]["pending"] == 2 and report.counts["A"]["done"] == 1
    more = {**PLAN_A, "aa_runs": 2}
    report = generate(path, workers=1, stages=["c"], **more, **RUN)
    assert report.stages["A"].added == 1 and report.stages["A"].done == 0
    assert report.counts["A"] == {"pending": 1, "running": 0, "done": 1, "failed": 0}
    assert report.counts["B"]["pending"] == 2 and report.counts["B"]["done"] == 0


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("extra", "ranges_text", "message"),
    [
        (["--molecules", "unobtainium-9"], None, "unknown molecule 'unobtainium-9'"),
        (["--molecules", MOLECULE], "angle_theta0_deg: [120, 100]\n", "is inverted"),
        (["--molecules", MOLECULE], "bond_k_kcal_mol_A2: []\n", "must be a pair"),
        (["--molecules", MOLECULE], "", "is empty"),
        (["--molecules", MOLECULE, "--mass-range", "0,200"], None, r"outside \(0, ∞\)"),
        (["--molecules", MOLECULE, "--mass-range", "-5,200"], None, r"outside \(0, ∞\)"),
        (["--molecules", MOLECULE, "--mass-range", "200,20"], None, "inverted"),
        (["--molecules", MOLECULE, "--preset", "huge"], None, "unknown preset"),
        (["--molecules", MOLECULE, "--scheduler", "udp"], None, "unknown --scheduler"),
        (["--molecules", MOLECULE, "--scheduler", "slurm"], None, "needs --cluster-config"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, ranges_text, message):
    path = tmp_path / "ff.db"
    args = ["db", "generate", str(path), "--aa-runs", "2", "--mass-runs", "4", *extra]
    if ranges_text is not None:
        (tmp_path / "ranges.yaml").write_text(ranges_text)
        args += ["--ranges", str(tmp_path / "ranges.yaml")]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert __import__("re").search(message, err), err
    assert not path.exists() and not lock_path(path).exists()


def test_database_of_another_schema_is_refused(tmp_path, capsys):
    path, _ = lj_database(tmp_path / "lj.db")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["db", "generate", str(path), "--mass-runs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "schema version 99, newer" in err and "\n" not in err


def test_molecule_lists_keep_commas_inside_names():
    names = parse_molecules("2,3,4-trimethylpentane,ethylbenzene,3-methylpentane")
    assert names == ["2,3,4-trimethylpentane", "ethylbenzene", "3-methylpentane"]
    assert parse_molecules(["3-Methylpentane", "CCO"]) == ["3-methylpentane", "CCO"]
    with pytest.raises(InputError, match="empty entry"):
        parse_molecules("ethylbenzene,,toluene")
    assert parse_mass_range("20, 200") == (20.0, 200.0)
    with pytest.raises(InputError, match="two masses"):
        parse_mass_range("20")


@pytest.mark.parametrize(
    ("kwargs", "parameters", "shown"),
    [
        ({"aa_runs": 1}, ("molecules",), "stage A needs --molecules, e.g. --molecules 3-methyl"),
        ({"aa_runs": -1}, ("aa_runs",), "--aa-runs must be a non-negative integer, got -1"),
        ({"threads": 0}, ("threads",), "--threads must be at least 1"),
        ({"platform": "tpu"}, ("platform",), "unknown --platform 'tpu'"),
        ({"scheduler": "ftp"}, ("scheduler",), "unknown --scheduler ftp; use local, slurm"),
        ({"cluster_config": "c.yaml"}, ("cluster_config", "scheduler"),
         "--cluster-config is for --scheduler slurm only"),
        ({"workers": 2, "scheduler": "slurm"}, ("workers", "scheduler"),
         "--workers is for --scheduler local"),
        ({"scheduler": "slurm"}, ("scheduler", "cluster_config"),
         "--scheduler slurm needs --cluster-config, a YAML file"),
        ({"stages": "A,D"}, ("stages",), "--stages must be a comma-separated subset of A,B,C"),
        ({"stages": ""}, ("stages",), "--stages must be a comma-separated subset of A,B,C"),
    ],
)  # fmt: skip
def test_generation_errors_name_parameters_and_the_command_line_its_flags(
    tmp_path, kwargs, parameters, shown
):
    from cgforge.cli.options import with_flags

    with pytest.raises(InputError) as info:
        generate(tmp_path / "x.db", **kwargs)
    assert "--" not in str(info.value) and info.value.parameters == parameters
    assert shown in with_flags(info.value, "db")
    assert not (tmp_path / "x.db").exists()


# ------------------------------------------------------------------------------ Slurm
SLURM_YAML = """\
cores: 8
memory: 16GB
walltime: "02:00:00"
queue: short
account: cg-project
job_extra_directives: ["--constraint=avx2"]
job_script_prologue: ["source /opt/venv/bin/activate"]
adapt: {minimum_jobs: 0, maximum_jobs: 4}
"""


def test_slurm_cluster_file_is_translated_and_checked(tmp_path):
    good = tmp_path / "slurm.yaml"
    good.write_text(SLURM_YAML)
    kwargs, scaling = slurm_cluster_kwargs(load_cluster_config(good), threads=2)
    assert kwargs["cores"] == 8 and kwargs["processes"] == 4  # one record per 2 cores
    assert kwargs["queue"] == "short" and kwargs["account"] == "cg-project"
    assert kwargs["worker_extra_args"][-2:] == ["--resources", "cgforge_record=1"]
    assert scaling == {"adapt": {"minimum_jobs": 0, "maximum_jobs": 4}, "slots": 16}
    assert slurm_cluster_kwargs({"cores": 4, "memory": "8GB", "jobs": 3})[1] == {
        "jobs": 3,
        "slots": 12,
    }
    bad = [
        ({"memory": "8GB"}, "needs 'cores'"),
        ({"cores": 8, "memory": "8GB", "gpus": 1}, "unknown key"),
        ({"cores": 0, "memory": "8GB"}, "positive integer"),
        ({"cores": 8, "memory": "8GB", "processes": 3}, "multiple of processes"),
        ({"cores": 8, "memory": "8GB", "jobs": 2, "adapt": {"maximum_jobs": 2}}, "not both"),
        ({"cores": 8, "memory": "8GB", "adapt": {"minimum_jobs": 3, "maximum_jobs": 1}}, "inv"),
        ({"cores": 8, "memory": "8GB", "job_extra_directives": "--gres=gpu"}, "must be a list"),
    ]
    for config, message in bad:
        with pytest.raises(InputError, match=message):
            slurm_cluster_kwargs(config)
    with pytest.raises(InputError, match="exceeds the 8 cores"):
        slurm_cluster_kwargs({"cores": 8, "memory": "8GB"}, threads=16)
    (tmp_path / "broken.yaml").write_text("cores: [8\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_cluster_config(tmp_path / "broken.yaml")
    with pytest.raises(InputError, match="not found"):
        load_cluster_config(tmp_path / "absent.yaml")

    jobqueue = pytest.importorskip("dask_jobqueue")
    cluster = jobqueue.SLURMCluster(**kwargs)  # starts only a scheduler, submits nothing
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p short" in script and "#SBATCH -A cg-project" in script
    assert "#SBATCH --constraint=avx2" in script and "--resources cgforge_record=1" in script
    assert "source /opt/venv/bin/activate" in script and "--nworkers 4" in script


# ------------------------------------------------------------------------------ physics
def mass_scan(tmp_path: Path, cutoff_nm: float, settings: dict, masses: list[float]) -> list:
    path, parent = lj_database(tmp_path / "lj.db", cutoff_nm)
    with Database.open(path) as db:
        for i, mass in enumerate(masses):
            db.add_pending(stage_b_spec(db.get(parent), mass, i, settings))
    report = generate(path, workers=2, **RUN)  # the pending records are the queue
    assert report.stages["B"].done == len(masses)
    with Database.open(path, readonly=True) as db:
        records = sorted(db.iter_done("B"), key=lambda r: r.scalars["mass_amu"])
    assert [r.scalars["mass_amu"] for r in records] == sorted(masses)
    assert all(r.parent_key == parent for r in records)
    for r in records:  # the work directory the record's provenance names is the plan's
        assert Path(r.provenance["workdir"]) == record_workdir(path.resolve(), r.key).resolve()
    return records


def check_mass_scaling(records: list, tolerance: float, slope_tolerance: float) -> None:
    """D·√m constant within ``tolerance`` (relative), log D vs log m slope −1/2."""
    m = np.array([r.scalars["mass_amu"] for r in records])
    d = np.array([r.scalars["diffusion_cg_m2_s"] for r in records])
    n = np.array([r.scalars["density_g_cm3"] / (r.scalars["mass_amu"] * AMU_NM3_TO_G_CM3)
                  for r in records])  # fmt: skip
    # same potential, T and P: the same liquid, whatever the mass
    assert np.all(np.abs(n / n.mean() - 1) < 0.05), n
    assert np.all((d > 1e-10) & (d < 1e-8))  # m²/s, a liquid
    scaled = d * np.sqrt(m)
    assert np.all(np.abs(scaled / scaled.mean() - 1) < tolerance), scaled / scaled.mean()
    slope = np.polyfit(np.log(m), np.log(d), 1)[0]
    assert abs(slope + 0.5) < slope_tolerance, slope
    assert math.isclose(m[-1] / m[0], 4.0)


def test_diffusion_scales_as_inverse_root_mass(tmp_path):
    """64 beads, 40 ps: each D has a block error of 7–9 %, so D·√m may stray 30 % (3.3σ)
    from the mean and the slope ±0.3 (3σ); −1/2 is still told apart from 0 and −1 (> 5σ)."""
    records = mass_scan(tmp_path, 0.68, lj_settings(64, 4.0, 40.0), [40.0, 80.0, 160.0])
    check_mass_scaling(records, tolerance=0.30, slope_tolerance=0.3)


@pytest.mark.slow
def test_diffusion_scales_as_inverse_root_mass_precisely(tmp_path):
    """256 beads, 100 ps: D·√m varies by 6 % from seed to seed (measured over 4 seeds at
    80 amu; the NPT volume of each record and the D fit), so it may stray 15 % from the mean
    of three records and the slope ±0.15 (2.5σ): half the bounds of the quick test."""
    records = mass_scan(tmp_path, 0.85, lj_settings(256, 20.0, 100.0), [40.0, 80.0, 160.0])
    check_mass_scaling(records, tolerance=0.15, slope_tolerance=0.15)
