"""Generating a database on Dask distributed: ``cgforge db generate``.

The store (:mod:`cgforge.database`) keeps the records, their specifications, the plan and the
writer lock; this workflow runs the records' simulations
(:mod:`cgforge.workflows.db_stages`) and stores their results.

A generation plans its records (:mod:`cgforge.database.plan`), adds them to the database as
``pending`` and runs them as Dask tasks, one task per record (one simulation stage):

1. stage A, every pending stage-A record (randomised AA → IBI → CG at the molecular mass);
2. when stage A is finished, stage B is planned over the done stage-A records
   (:func:`~cgforge.database.plan.order_parents`, :func:`~cgforge.database.plan.plan_stage_b`)
   and every pending stage-B record runs (the parent's potential at another bead mass);
3. then stage C is planned over the same parents
   (:func:`~cgforge.database.plan.plan_stage_c`) and every pending stage-C record runs (the
   parent's potential perturbed toward slower liquids, at a random bead mass).

The database is the queue: pending records that earlier generations or merges left there run
too. Asking for the same plan again adds nothing (a record's key is the hash of its
specification), so running the same command after a crash or a kill resumes the generation
without losing or duplicating a record.

One writer
    The generating process is the database's only writer. It holds the writer lock
    (:class:`~cgforge.database.lock.WriterLock`) for its whole life; only under it does it put
    the records a dead generation left ``running`` back to ``pending``. It claims each record
    right before submitting it (so ``running`` means "at the executor") and stores each result
    as its task finishes (``done`` with scalars and arrays, or ``failed`` with a one-line
    reason), so nothing finished is lost when the generation stops. Workers never open the
    SQLite file: they return their results to the writer.

Executors (``scheduler``)
    ``"local"`` (default): an embedded ``distributed.LocalCluster`` of ``workers`` processes
    (default: cores // threads), one task at a time each. ``"tcp://host:port"``: an existing
    Dask scheduler; its workers need cgforge installed, should run one task at a time
    (``dask worker --nthreads 1``) and must see the database's directory under the same path
    (record work directories live beside it). ``"slurm"``:
    ``dask_jobqueue.SLURMCluster`` built from a YAML file (:func:`slurm_cluster_kwargs`).

Threads
    Each task may use ``threads`` CPU threads: OpenMM's CPU platform is told so (its
    ``Threads`` property, and ``OPENMM_CPU_THREADS``), GROMACS through ``OMP_NUM_THREADS``,
    and the CG engine of IBI and stages B and C through the ``cg_threads`` of its protocol
    (:mod:`cgforge.workflows.db_stages`). Threads are an execution setting: they enter no
    record's spec or key; the record's provenance keeps them (``executor.threads``, and
    ``cg_threads``: those of its CG run).

A worker that dies
    Dask reschedules the tasks of a worker that died, up to
    ``distributed.scheduler.allowed-failures`` times (set to :data:`ALLOWED_FAILURES` for the
    clusters cgforge starts; an external scheduler uses its own setting). A rerun task resumes
    from the checkpoints in its work directory (:func:`~cgforge.database.plan.record_workdir`).
    A task whose retries are exhausted is recorded ``failed`` with the reason ``KilledWorker``;
    ``retry_failed`` runs failed records again. Every start of a record's task is logged in
    ``task_starts.jsonl`` in its work directory, and the provenance of a done record lists them
    (``provenance["executor"]["starts"]``), so a retry is visible.

Ranges that make every draw fail
    When the first ``stop_after_failures`` stage-A records that finish in a generation have
    all failed (and none is done), the generation stops (:class:`StageAFailing`): the tasks in
    flight are cancelled and go back to pending with the records not yet started, and the
    error counts the failure reasons, so a hopeless parameter range costs a few records, not
    hours. Narrow the ranges, or set ``stop_after_failures`` to 0 to run every record anyway.

Stopping
    Ctrl-C (or SIGTERM, as Slurm sends at the end of a job) stops submitting, cancels the
    tasks in flight and puts their records back to ``pending``; a ``kill -9`` leaves them
    ``running`` and the next generation requeues them. Either way the same command resumes.

Test hook
    When the environment variable :data:`CRASH_ONCE_ENV` names a file that does not exist,
    :func:`run_record` creates it and ends its worker process at once (``os._exit``), as a
    crashing worker would; the retried task finds the file and runs normally. It exists for
    the tests of crash recovery, stays out of record specifications and is never set by cgforge.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cgforge.database.lock import WriterLock
from cgforge.database.plan import (
    PURPOSE_MASS,
    derived_seed,
    mass_range,
    order_parents,
    plan_stage_a,
    plan_stage_b,
    plan_stage_c,
    record_workdir,
)
from cgforge.database.stages import (
    STAGE_PRESETS,
    database_grids,
    learning_grids,
    stage_settings,
)
from cgforge.database.store import Database, Record
from cgforge.errors import InputError
from cgforge.molecules.randomize import ParameterRanges
from cgforge.workflows.db_stages import StageFailure

__all__ = [
    "ALLOWED_FAILURES",
    "CONNECT_TIMEOUT_S",
    "CRASH_ONCE_ENV",
    "PLATFORMS",
    "STOP_AFTER_FAILURES",
    "TASKS_PER_SLOT",
    "GenerateReport",
    "GenerationInterrupted",
    "ProgressEvent",
    "StageAFailing",
    "StageReport",
    "default_workers",
    "failure_kind",
    "generate",
    "load_cluster_config",
    "load_ranges",
    "parse_mass_range",
    "parse_molecules",
    "run_record",
    "slurm_cluster_kwargs",
]


#: How often Dask reruns a task whose worker died before it records ``KilledWorker``.
ALLOWED_FAILURES = 3
#: Seconds to wait for an external scheduler to answer.
CONNECT_TIMEOUT_S = 10.0
#: A generation stops when this many of its first stage-A results are all failures.
STOP_AFTER_FAILURES = 5
#: Tasks kept submitted per worker slot (one running, one queued behind it).
TASKS_PER_SLOT = 2
#: Test hook: path of a marker file; see the module docstring.
CRASH_ONCE_ENV = "CGFORGE_TEST_CRASH_ONCE"
#: OpenMM platforms a generation may name (availability is checked on the workers).
PLATFORMS = ("auto", "cpu", "cuda", "opencl", "reference")
#: Dask resource a Slurm worker process offers once, and each task takes: one record at a time.
RECORD_RESOURCE = "cgforge_record"
#: File in a record's work directory with one JSON line per start of its task.
STARTS_FILE = "task_starts.jsonl"
#: File in a record's work directory with the traceback of an unexpected error.
ERROR_FILE = "error.log"


# ====================================================================== input parsing
def parse_molecules(text: str | Sequence[str]) -> list[str]:
    """Molecule names from ``"a,b,c"`` (or a list). Commas inside built-in names such as
    ``2,3,4-trimethylpentane`` are kept: the longest run of comma-separated pieces that names
    a built-in molecule wins. Built-ins are given by their canonical name; other pieces are
    kept as written (SMILES, or unknown names that planning refuses)."""
    from cgforge.molecules import find_builtin

    pieces = [text] if isinstance(text, str) else list(text)
    tokens = [t.strip() for piece in pieces for t in str(piece).split(",")]
    if not tokens or any(not t for t in tokens):
        raise InputError(
            f"molecules {text!r} has an empty entry; give names separated by commas, e.g. "
            "molecules='2,3,4-trimethylpentane,ethylbenzene'",
            parameters="molecules",
        )
    out: list[str] = []
    i = 0
    while i < len(tokens):
        for j in range(len(tokens), i, -1):
            builtin = find_builtin(",".join(tokens[i:j]))
            if builtin is not None:
                out.append(builtin.name)
                i = j
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def parse_mass_range(text: str | Sequence[float] | None) -> tuple[float, float]:
    """A bead-mass range ``"20,200"`` (amu) as a validated ``(low, high)`` pair."""
    if text is None:
        return mass_range(None)
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 2:
            raise InputError(
                f"mass_range_amu {text!r} must be two masses in amu, low,high, e.g. '20,200'",
                parameters="mass_range_amu",
            )
        return mass_range(values)
    return mass_range(text)


def _read_yaml(file: Path, what: str) -> Any:
    """The YAML content of ``file``; an InputError naming ``what`` and the line if invalid."""
    import yaml

    try:
        return yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise InputError(f"{what} '{file}' is not valid YAML{where}; fix it") from None


def load_ranges(path: str | Path) -> ParameterRanges:
    """Bonded-parameter ranges from a YAML file of :meth:`ParameterRanges.to_dict` keys
    (missing keys take the defaults; units in the key names)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"ranges file '{file}' not found; give a YAML file of parameter ranges")
    data = _read_yaml(file, "ranges file")
    if data is None:
        raise InputError(
            f"ranges file '{file}' is empty; give ranges such as 'bond_k_kcal_mol_A2: [250, 350]'"
        )
    if not isinstance(data, dict):
        raise InputError(
            f"ranges file '{file}' must map range names to [low, high], got a {type(data).__name__}"
        )
    return ParameterRanges.from_dict(data)


def default_workers(threads: int) -> int:
    """Worker processes of a local cluster: the cores this process may use // ``threads``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads))


# ====================================================================== Slurm configuration
#: Keys of a Slurm cluster file passed to ``dask_jobqueue.SLURMCluster`` and their types.
SLURM_KEYS: dict[str, type | tuple[type, ...]] = {
    "cores": int,
    "memory": str,
    "processes": int,
    "walltime": str,
    "queue": str,
    "account": str,
    "job_cpu": int,
    "job_mem": str,
    "job_extra_directives": list,
    "job_script_prologue": list,
    "worker_extra_args": list,
    "local_directory": str,
    "log_directory": str,
    "interface": str,
    "python": str,
    "death_timeout": (int, float),
    "job_name": str,
}
#: Scaling keys of a Slurm cluster file: ``jobs: n`` or ``adapt: {minimum_jobs, maximum_jobs}``.
SLURM_SCALE_KEYS = ("jobs", "adapt")


def load_cluster_config(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML cluster file (see :func:`slurm_cluster_kwargs` for its keys)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(
            f"cluster_config '{file}' not found; write a YAML file with cores, memory, walltime, "
            "queue/account and jobs (the keys of slurm_cluster_kwargs)",
            parameters="cluster_config",
        )
    data = _read_yaml(file, "cluster config")
    if not isinstance(data, dict) or not data:
        raise InputError(
            f"cluster config '{file}' must be a YAML mapping with at least cores and memory"
        )
    return data


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"cluster config: {what} must be a positive integer, got {value!r}")
    return value


def slurm_cluster_kwargs(
    config: Mapping[str, Any], threads: int = 1
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Translate a Slurm cluster file into ``(SLURMCluster keyword arguments, scaling)``.

    Keys (YAML): ``cores`` (CPU cores per job, required), ``memory`` (per job, e.g. ``"16GB"``,
    required), ``walltime`` (``"HH:MM:SS"``), ``queue`` (partition), ``account``,
    ``processes`` (worker processes per job; default ``cores // threads``, so each record gets
    ``threads`` cores), ``job_extra_directives`` (extra ``#SBATCH`` lines, e.g.
    ``["--gres=gpu:1"]``), ``job_script_prologue`` (shell lines run first, e.g. ``module load``
    or ``source venv/bin/activate``), ``worker_extra_args``, ``local_directory``,
    ``log_directory``, ``interface``, ``python``, ``job_cpu``, ``job_mem``, ``death_timeout``,
    ``job_name``; and scaling: ``jobs: n`` (a fixed number of jobs, default 1) or
    ``adapt: {minimum_jobs: a, maximum_jobs: b}`` (Dask adds and removes jobs with the load).

    Each worker process offers one ``cgforge_record`` resource, so it runs one record at a
    time with ``cores / processes`` threads. ``scaling`` is ``{"jobs": n}`` or
    ``{"adapt": {...}}`` plus ``"slots"``, the most records running at once.
    """
    if not isinstance(config, Mapping):
        raise InputError("cluster config must be a mapping of SLURMCluster settings")
    known = set(SLURM_KEYS) | set(SLURM_SCALE_KEYS)
    unknown = sorted(set(config) - known)
    if unknown:
        raise InputError(
            f"cluster config: unknown key(s) {', '.join(map(str, unknown))}; known: "
            f"{', '.join(sorted(known))}"
        )
    for required in ("cores", "memory"):
        if required not in config:
            raise InputError(f"cluster config needs '{required}' (per Slurm job)")
    kwargs: dict[str, Any] = {}
    for name, kind in SLURM_KEYS.items():
        if name not in config:
            continue
        value = config[name]
        if kind is int:
            value = _positive_int(value, name)
        elif isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "number"
            raise InputError(f"cluster config: {name} must be a {names}, got {value!r}")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise InputError(f"cluster config: {name} must be a list of strings")
        if isinstance(value, str) and not value.strip():
            raise InputError(f"cluster config: {name} is empty")
        kwargs[name] = list(value) if isinstance(value, list) else value
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(
            f"threads must be a positive integer, got {threads!r}", parameters="threads"
        )
    cores = kwargs["cores"]
    if "processes" not in kwargs:
        if threads > cores:
            raise InputError(
                f"threads {threads} exceeds the {cores} cores of a Slurm job; lower threads or "
                "raise cores in the cluster config",
                parameters="threads",
            )
        kwargs["processes"] = cores // threads
    processes = kwargs["processes"]
    if processes > cores or cores % processes:
        raise InputError(
            f"cluster config: {cores} cores do not split into {processes} worker processes; "
            "make cores a multiple of processes"
        )
    kwargs["worker_extra_args"] = [
        *kwargs.get("worker_extra_args", []),
        "--resources",
        f"{RECORD_RESOURCE}=1",
    ]
    if "jobs" in config and "adapt" in config:
        raise InputError("cluster config: give either jobs or adapt, not both")
    if "adapt" in config:
        adapt = config["adapt"]
        if not isinstance(adapt, Mapping) or set(adapt) - {"minimum_jobs", "maximum_jobs"}:
            raise InputError(
                "cluster config: adapt must be a mapping {minimum_jobs: a, maximum_jobs: b}"
            )
        low = adapt.get("minimum_jobs", 0)
        if isinstance(low, bool) or not isinstance(low, int) or low < 0:
            raise InputError(f"cluster config: adapt minimum_jobs must be ≥ 0, got {low!r}")
        high = _positive_int(adapt.get("maximum_jobs"), "adapt maximum_jobs")
        if low > high:
            raise InputError(
                f"cluster config: adapt range {low}–{high} jobs is inverted; give minimum first"
            )
        scaling: dict[str, Any] = {"adapt": {"minimum_jobs": low, "maximum_jobs": high}}
        scaling["slots"] = high * processes
    else:
        jobs = _positive_int(config.get("jobs", 1), "jobs")
        scaling = {"jobs": jobs, "slots": jobs * processes}
    return kwargs, scaling


def _slurm_cluster(kwargs: Mapping[str, Any], scaling: Mapping[str, Any]) -> Any:
    """A started ``SLURMCluster`` scaled as ``scaling`` says (submits the jobs)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise InputError(
            "scheduler='slurm' needs dask-jobqueue; install it with pip install 'cgforge[dist]'",
            parameters="scheduler",
        ) from None
    if shutil.which("sbatch") is None:
        raise InputError(
            "scheduler='slurm' needs Slurm's sbatch on the PATH; run on a Slurm login node, or "
            "use scheduler='local'",
            parameters="scheduler",
        )
    cluster = SLURMCluster(**kwargs)
    if "adapt" in scaling:
        cluster.adapt(**scaling["adapt"])
    else:
        cluster.scale(jobs=scaling["jobs"])
    return cluster


# ====================================================================== the task
def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _use_threads(threads: int) -> None:
    """Let this process's simulations use ``threads`` CPU threads (OpenMM and GROMACS)."""
    value = str(max(1, int(threads)))
    os.environ["OMP_NUM_THREADS"] = value
    os.environ["OPENMM_CPU_THREADS"] = value
    import openmm

    names = {
        openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())
    }
    if "CPU" in names:
        openmm.Platform.getPlatformByName("CPU").setPropertyDefaultValue("Threads", value)


def _executor_identity() -> dict[str, Any]:
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = None
    return {"worker": address, "host": socket.gethostname(), "pid": os.getpid()}


def _log_start(work: Path, threads: int) -> list[dict[str, Any]]:
    """Append this start to the record's start log; return every start so far."""
    entry = {
        **_executor_identity(),
        "threads": int(threads),
        "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    path = work / STARTS_FILE
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    starts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            starts.append(json.loads(line))
    return starts


def _crash_hook() -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker and not os.path.exists(marker):
        Path(marker).write_text(f"worker pid {os.getpid()} ended by the crash test hook\n")
        os._exit(70)


def run_record(
    spec: Mapping[str, Any],
    parent: Record | None,
    workdir: str | Path,
    grids: Mapping[str, Any],
    platform: str = "auto",
    engine: str = "openmm",
    threads: int = 1,
    cg_engine: str = "auto",
) -> tuple[Any, ...]:
    """Simulate one record (a Dask task; also callable directly).

    ``spec``: the record's specification; ``parent``: the done stage-A record of a stage-B
    or stage-C spec (None for stage A); ``workdir``: the record's work directory (a rerun resumes from
    its checkpoints); ``grids``: :meth:`LearningGrids.to_dict` of the database; ``platform``:
    OpenMM platform; ``engine``: all-atom engine of stage A (``"openmm"`` or ``"gromacs"``);
    ``threads``: CPU threads the simulation may use, by the all-atom engine (OpenMM's CPU
    platform, GROMACS) and by the CG engine (the stages' ``cg_threads``: LAMMPS's OPENMP
    package, torch; not part of the record's spec or key); ``cg_engine``: CG MD engine of IBI
    and stages B and C (:mod:`cgforge.engines.cg_engine`).

    Returns ``("done", scalars, arrays, provenance)`` or ``("failed", reason)``; never raises
    for a simulation problem. An unexpected error is returned as ``("failed", "internal error:
    <type>: <message> …")`` with its traceback written to ``error.log`` in ``workdir``.
    """
    from cgforge.grids import LearningGrids
    from cgforge.workflows.db_stages import run_stage_a, run_stage_b, run_stage_c

    work = Path(workdir)
    tic = time.perf_counter()
    try:
        work.mkdir(parents=True, exist_ok=True)
        _use_threads(threads)
        starts = _log_start(work, threads)
        _crash_hook()
        learning = LearningGrids.from_dict(grids)
        stage = spec.get("stage")
        if stage == "A":
            scalars, arrays, provenance = run_stage_a(
                spec,
                work,
                learning,
                platform=platform,
                engine=engine,
                cg_engine=cg_engine,
                threads=threads,
            )
        elif stage in ("B", "C"):
            if parent is None:
                raise InputError(f"a stage-{stage} record needs its parent record")
            runner = run_stage_b if stage == "B" else run_stage_c
            scalars, arrays, provenance = runner(
                spec,
                parent,
                work,
                learning,
                platform=platform,
                cg_engine=cg_engine,
                threads=threads,
            )
        else:
            raise InputError(f"unknown stage {stage!r} in a record specification")
    except StageFailure as exc:
        return ("failed", _one_line(exc.reason) or type(exc).__name__)
    except Exception as exc:  # one record's bug must not end the generation: record it
        trace = traceback.format_exc()
        where = work / ERROR_FILE
        try:
            with open(where, "a", encoding="utf-8") as handle:
                handle.write(f"--- {_dt.datetime.now(_dt.UTC).isoformat()}\n{trace}\n")
        except OSError:
            where = None
        note = f" (traceback in {where})" if where is not None else ""
        return ("failed", f"internal error: {type(exc).__name__}: {_one_line(str(exc))}{note}")
    provenance = dict(provenance)
    provenance["executor"] = {
        **_executor_identity(),
        "threads": int(threads),
        "task_wall_s": time.perf_counter() - tic,
        "starts": starts,
    }
    return ("done", scalars, arrays, provenance)


# ====================================================================== reports and progress
class GenerationInterrupted(KeyboardInterrupt):
    """A generation stopped by Ctrl-C or SIGTERM: ``requeued`` records went back to pending;
    ``report`` holds what was done until then."""

    def __init__(self, requeued: int, report: GenerateReport) -> None:
        super().__init__(
            f"generation interrupted: {requeued} records back to pending; rerun the same "
            "command to resume"
        )
        self.requeued = requeued
        self.report = report


class StageAFailing(InputError):
    """The first stage-A records of a generation all failed: ``reasons`` counts their causes
    (:func:`failure_kind`); the records not finished stay pending."""

    def __init__(self, failed: int, reasons: Counter[str], requeued: int) -> None:
        counted = ", ".join(f"{n}x {reason}" for reason, n in reasons.most_common())
        super().__init__(
            f"the first {failed} stage-A records of this generation all failed ({counted}); "
            "narrow the bonded-parameter ranges, or set stop_after_failures to 0 to run "
            "them all anyway",
            parameters="stop_after_failures",
        )
        self.failed = failed
        self.reasons = reasons
        self.requeued = requeued


def failure_kind(reason: str) -> str:
    """The cause of a failure reason without its numbers, for counting: the text before the
    first ``:`` (or ``;``), with the next part kept after an error type such as
    ``SimulationError:``, and digits replaced by ``#``."""
    parts = [p.strip() for p in re.split(r"[:;]", str(reason)) if p.strip()]
    if not parts:
        return "no reason given"
    kind = parts[0]
    if re.fullmatch(r"[A-Za-z]+(Error|Exception|Failure|Worker)", kind) and len(parts) > 1:
        kind = f"{kind}: {parts[1]}"
    kind = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", kind)
    return kind[:120]


@dataclass(frozen=True)
class ProgressEvent:
    """What a generation reports to its progress callback: a stage started (``key`` None) or
    one record finished (``state`` ``"done"`` or ``"failed"``, ``error`` its reason)."""

    stage: str
    total: int
    done: int
    failed: int
    records_per_hour: float
    key: str | None = None
    state: str | None = None
    error: str | None = None


@dataclass
class StageReport:
    """One stage of a generation: records planned (plan entries), newly added, run in this
    generation (done + failed), wall time (s) and done records per hour of that wall time."""

    stage: str
    planned: int = 0
    added: int = 0
    ran: int = 0
    done: int = 0
    failed: int = 0
    wall_s: float = 0.0

    @property
    def records_per_hour(self) -> float:
        """Done records per hour of this stage's wall time (0 when nothing ran)."""
        return 3600.0 * self.done / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class GenerateReport:
    """The outcome of :func:`generate`: per-stage reports, the database's counts
    ``{stage: {state: n}}`` afterwards, the wall time (s) and how the records ran."""

    database: Path
    scheduler: str
    workers: int
    threads: int
    engine: str
    platform: str
    stages: dict[str, StageReport]
    counts: dict[str, dict[str, int]]
    wall_s: float
    requeued_running: int = 0
    requeued_failed: int = 0
    notes: list[str] = field(default_factory=list)
    cg_engine: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready) including records/hour per stage."""
        out = asdict(self)
        out["database"] = str(self.database)
        for name, stage in self.stages.items():
            out["stages"][name]["records_per_hour"] = stage.records_per_hour
        return out


ProgressCallback = Callable[[ProgressEvent], None]


# ====================================================================== executors
@dataclass
class _Executor:
    client: Any
    label: str
    workers: int  # expected worker slots (records running at once)
    resources: dict[str, int] | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def slots(self) -> int:
        """Records that can run at once now (at least the expected number, at least 1)."""
        try:
            nthreads = self.client.nthreads()
        except (OSError, TimeoutError):
            nthreads = {}
        # a Slurm worker process runs one record (its resource); others one per thread
        now = len(nthreads) if self.resources else sum(nthreads.values())
        return max(1, self.workers, now)

    def close(self) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):  # teardown of a cluster that is going away
                closer()
        self.closers.clear()


def _scheduler_kind(scheduler: str) -> str:
    text = str(scheduler).strip()
    if text in ("local", "slurm"):
        return text
    if "://" in text and text.split("://", 1)[1]:
        return "address"
    raise InputError(
        f"unknown scheduler='{scheduler}'; use local, slurm, or the address of a running Dask "
        "cluster such as tcp://host:8786",
        parameters="scheduler",
    )


def _connect_address(address: str, timeout_s: float) -> _Executor:
    """A client of an existing scheduler; InputError when none answers within ``timeout_s``."""
    from distributed import Client

    try:
        client = Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(
            f"no Dask scheduler answers at {address} ({_one_line(str(exc)) or type(exc).__name__});"
            " start one with `dask scheduler` or generate on a local cluster"
        ) from None
    executor = _Executor(client=client, label=address, workers=0, resources=None)
    executor.closers.append(client.close)
    return executor


def _start_local(workers: int, threads: int, allowed_failures: int) -> _Executor:
    import dask
    from distributed import Client, LocalCluster

    env = {"OMP_NUM_THREADS": str(threads), "OPENMM_CPU_THREADS": str(threads)}
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # a free local port, never a fixed one
            silence_logs=logging.ERROR,
            env=env,
        )
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    executor = _Executor(
        client=client, label=f"local ({workers} workers)", workers=workers, resources=None
    )
    executor.closers += [cluster.close, client.close]
    return executor


def _start_slurm(config_path: str | Path, threads: int, allowed_failures: int) -> _Executor:
    import dask
    from distributed import Client

    kwargs, scaling = slurm_cluster_kwargs(load_cluster_config(config_path), threads)
    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures}):
        cluster = _slurm_cluster(kwargs, scaling)
    client = Client(cluster, set_as_default=False)
    executor = _Executor(
        client=client,
        label=f"slurm ({scaling['slots']} slots)",
        workers=scaling["slots"],
        resources={RECORD_RESOURCE: 1},
    )
    executor.closers += [cluster.close, client.close]
    return executor


# ====================================================================== running a stage
def _outcome(future: Any) -> tuple[Any, ...]:
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError

    try:
        return future.result()
    except KilledWorker as exc:
        return (
            "failed",
            f"KilledWorker: the worker running this record died too often ({_one_line(str(exc))});"
            " check memory and the worker logs, then rerun with retry_failed=True",
        )
    except FutureCancelledError:
        return (
            "failed",
            "the scheduler cancelled this record's task; rerun with retry_failed=True",
        )
    except Exception as exc:  # a transport or scheduler error of one task: record, go on
        return ("failed", f"internal error: {type(exc).__name__}: {_one_line(str(exc))}")


def _emit(progress: ProgressCallback | None, event: ProgressEvent) -> None:
    if progress is not None:
        progress(event)


class _Runner:
    """Claims, submits and stores the records of one stage (the writer's loop)."""

    def __init__(
        self,
        db: Database,
        executor: _Executor,
        *,
        platform: str,
        engine: str,
        threads: int,
        progress: ProgressCallback | None,
        cg_engine: str = "auto",
        stop_after_failures: int = 0,
    ) -> None:
        self.db = db
        self.stop_after_failures = stop_after_failures
        self.executor = executor
        self.platform = platform
        self.engine = engine
        self.threads = threads
        self.cg_engine = cg_engine
        self.progress = progress
        self.grids = learning_grids(db).to_dict()
        self.database = db.path.resolve()
        self.claimer = f"generate {socket.gethostname()}:{os.getpid()}"
        self.in_flight: dict[Any, str] = {}
        self._parents: dict[str, Record] = {}

    def _parent(self, key: str) -> Record:
        if key not in self._parents:
            self._parents[key] = self.db.get(key)
        return self._parents[key]

    def run(self, stage: str, report: StageReport) -> None:
        from distributed import as_completed

        tic = time.perf_counter()
        total = self.db.counts()[stage]["pending"]
        done = failed = 0

        def event(**kw: Any) -> ProgressEvent:
            hours = (time.perf_counter() - tic) / 3600.0
            rate = done / hours if hours > 0 else 0.0
            return ProgressEvent(stage, total, done, failed, rate, **kw)

        _emit(self.progress, event())
        pending = as_completed(loop=self.executor.client.loop)
        exhausted = total == 0
        reasons: Counter[str] = Counter()
        try:
            while True:
                limit = TASKS_PER_SLOT * self.executor.slots()
                while not exhausted and len(self.in_flight) < limit:
                    claimed = self.db.claim(stage, worker=self.claimer)
                    if claimed is None:
                        exhausted = True
                        break
                    key, spec = claimed
                    parent = None
                    if stage in ("B", "C"):
                        problem = None
                        try:
                            parent = self._parent(spec.get("parent_key"))
                        except InputError:
                            problem = f"parent record {spec.get('parent_key')} is not here"
                        if parent is not None and parent.state != "done":
                            problem = f"parent record {parent.key} is {parent.state}, not done"
                        if problem is not None:
                            self.db.fail(key, problem + "; merge or generate it first")
                            failed += 1
                            _emit(self.progress, event(key=key, state="failed", error=problem))
                            continue
                    future = self.executor.client.submit(
                        run_record,
                        spec,
                        parent,
                        str(record_workdir(self.database, key)),
                        self.grids,
                        self.platform,
                        self.engine,
                        self.threads,
                        self.cg_engine,
                        key=f"cgforge-{stage}-{key[:12]}-{uuid.uuid4().hex[:8]}",
                        pure=False,
                        resources=self.executor.resources,
                    )
                    self.in_flight[future] = key
                    pending.add(future)
                if not self.in_flight:
                    break
                future = next(pending)
                key = self.in_flight.pop(future)
                outcome = _outcome(future)
                future.release()
                error = None
                if outcome[0] == "done":
                    try:
                        self.db.complete(key, *outcome[1:])
                    except (InputError, ValueError) as exc:
                        error = f"result not storable: {_one_line(str(exc))}"
                else:
                    error = str(outcome[1])
                if error is None:
                    done += 1
                    _emit(self.progress, event(key=key, state="done"))
                else:
                    self.db.fail(key, error)
                    failed += 1
                    _emit(self.progress, event(key=key, state="failed", error=error))
                    reasons[failure_kind(error)] += 1
                    limit_failures = self.stop_after_failures
                    if stage == "A" and limit_failures and done == 0 and failed >= limit_failures:
                        raise StageAFailing(failed, reasons, self.abandon())
        finally:
            report.ran += done + failed
            report.done += done
            report.failed += failed
            report.wall_s += time.perf_counter() - tic

    def abandon(self) -> int:
        """Cancel the tasks in flight and put their records back to pending; returns how many."""
        futures = list(self.in_flight)
        self.in_flight.clear()
        if futures:
            with contextlib.suppress(Exception):  # the cluster may already be gone
                self.executor.client.cancel(futures)
        return self.db.requeue_running()


# ====================================================================== generate
@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (e.g. Slurm's end of a job) stops like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _settings_of(preset: str | Mapping[str, Any] | Any) -> str | dict[str, Any]:
    if isinstance(preset, str):
        if preset not in STAGE_PRESETS:
            raise InputError(f"unknown preset '{preset}'; choose one of {', '.join(STAGE_PRESETS)}")
        return preset
    return stage_settings(preset)


#: The stages of a generation, in the order they run.
STAGES = ("A", "B", "C")


def parse_stages(stages: Sequence[str] | str) -> tuple[str, ...]:
    """``stages`` (letters of :data:`STAGES`, or one comma-separated string such as ``"B,C"``)
    as a tuple in run order; an :class:`InputError` naming ``stages`` for anything else."""
    items = stages.split(",") if isinstance(stages, str) else list(stages)
    chosen = {str(item).strip().upper() for item in items if str(item).strip()}
    unknown = sorted(chosen - set(STAGES))
    if unknown or not chosen:
        raise InputError(
            f"stages must be a comma-separated subset of {','.join(STAGES)}, got {stages!r}",
            parameters="stages",
        )
    return tuple(stage for stage in STAGES if stage in chosen)


def _count_arg(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{what} must be a non-negative integer, got {value!r}", parameters=what)
    return value


def _open_database(path: Path) -> Database:
    if path.exists():
        db = Database.open(path)
        try:
            learning_grids(db)
        except BaseException:
            db.close()
            raise
        return db
    return Database.init(path, database_grids())


def generate(
    db_path: str | Path,
    *,
    molecules: Sequence[str] | str = (),
    aa_runs: int = 0,
    mass_runs: int = 0,
    perturbed_runs: int = 0,
    preset: str | Mapping[str, Any] | Any = "quick",
    seed: int = 0,
    ranges: ParameterRanges | Mapping[str, Any] | None = None,
    mass_range_amu: Sequence[float] | None = None,
    temperature_K: float = 298.15,
    pressure_bar: float = 1.0,
    scheduler: str = "local",
    workers: int | None = None,
    threads: int = 1,
    cluster_config: str | Path | None = None,
    platform: str = "auto",
    engine: str = "auto",
    retry_failed: bool = False,
    progress: ProgressCallback | None = None,
    cg_engine: str = "auto",
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    allowed_failures: int = ALLOWED_FAILURES,
    stop_after_failures: int = STOP_AFTER_FAILURES,
    stages: Sequence[str] | str = STAGES,
) -> GenerateReport:
    """Plan and run a generation into the database ``db_path`` (created if absent).

    Stage A: ``aa_runs`` entries over ``molecules`` (names, or one comma-separated string),
    bonded parameters drawn from ``ranges`` (:class:`ParameterRanges`, a dict of its keys, or
    None for the defaults), at ``temperature_K`` (K) and ``pressure_bar`` (bar). Stage B:
    ``mass_runs`` entries over the done stage-A records, bead masses uniform in
    ``mass_range_amu`` (amu; default 20–200). Stage C: ``perturbed_runs`` entries over the
    same parents, each the parent's potential perturbed by a random draw of the trade-off
    basis (:func:`~cgforge.database.stages.draw_perturbation`) at a bead mass uniform in
    ``mass_range_amu``, run with stage B's CG settings. ``preset``: a name of :data:`STAGE_PRESETS`
    (``tiny``, ``quick``, ``standard``) or a settings dict; ``seed``: the plan's seed
    (:mod:`cgforge.database.plan`). ``scheduler``, ``workers``, ``threads``,
    ``cluster_config``: see the module docstring; ``platform``: OpenMM platform (``auto``,
    ``cpu``, ``cuda``, ``reference``); ``engine``: all-atom engine of stage A (``auto``:
    :func:`cgforge.workflows.aa.resolve_engine`); ``cg_engine``: CG MD engine of IBI and
    stage B (``auto``: :func:`cgforge.engines.cg_engine.resolve_engine_name`, resolved here so
    that every worker runs the same one); ``retry_failed``: put failed records back to
    pending first; ``progress``: called with a :class:`ProgressEvent` at each stage start and
    each finished record. ``allowed_failures``: worker deaths a task survives (clusters
    cgforge starts). ``stop_after_failures``: stop when this many stage-A records are the
    first to finish and all failed (0: never), raising :class:`StageAFailing` with the
    failure reasons counted. ``stages``: the stages whose pending records are run (letters,
    or one comma-separated string; default all): records of the other stages are still
    planned and stay pending for a later call, e.g. ``stages="B,C"`` makes the children of the
    stage-A records done so far while other stage-A records wait.

    Every argument is checked, and an external scheduler must answer, before anything is
    written. Raises :class:`~cgforge.database.lock.DatabaseLocked` when another generation
    works on the database, and :class:`GenerationInterrupted` (a ``KeyboardInterrupt``) on
    Ctrl-C or SIGTERM, after putting the records in flight back to pending.
    """
    from cgforge.workflows.aa import resolve_engine

    tic = time.perf_counter()
    path = Path(db_path)
    run_stages = parse_stages(stages)
    aa_runs = _count_arg(aa_runs, "aa_runs")
    mass_runs = _count_arg(mass_runs, "mass_runs")
    perturbed_runs = _count_arg(perturbed_runs, "perturbed_runs")
    threads = _count_arg(threads, "threads")
    if threads < 1:
        raise InputError("threads must be at least 1", parameters="threads")
    allowed_failures = _count_arg(allowed_failures, "allowed_failures")
    stop_after_failures = _count_arg(stop_after_failures, "stop_after_failures")
    if workers is not None and (_count_arg(workers, "workers") < 1):
        raise InputError("workers must be at least 1", parameters="workers")
    if not (isinstance(connect_timeout_s, int | float) and connect_timeout_s > 0):
        raise InputError(f"connect timeout must be positive (s), got {connect_timeout_s!r}")
    if not (isinstance(pressure_bar, int | float) and math.isfinite(pressure_bar)):
        raise InputError(f"pressure must be a finite number (bar), got {pressure_bar!r}")
    if str(platform).lower() not in PLATFORMS:
        raise InputError(
            f"unknown platform '{platform}'; use one of {', '.join(PLATFORMS)}",
            parameters="platform",
        )
    platform = str(platform).lower()
    kind = _scheduler_kind(scheduler)
    if kind != "slurm" and cluster_config is not None:
        raise InputError(
            "cluster_config is for scheduler='slurm' only",
            parameters=("cluster_config", "scheduler"),
        )
    if kind != "local" and workers is not None:
        raise InputError(
            "workers is for scheduler='local'; an external Dask cluster or Slurm has its own",
            parameters=("workers", "scheduler"),
        )
    if not path.parent.is_dir():
        raise InputError(f"directory '{path.parent}' does not exist; create it first")
    settings = _settings_of(preset)
    names = parse_molecules(molecules) if molecules else []
    if ranges is not None and not isinstance(ranges, ParameterRanges):
        ranges = ParameterRanges.from_dict(ranges)
    masses = mass_range(mass_range_amu)
    if aa_runs and not names:
        raise InputError(
            "stage A needs molecules, e.g. molecules='3-methylpentane'", parameters="molecules"
        )
    if names:
        plan_a = plan_stage_a(
            names,
            aa_runs,
            seed=seed,
            ranges=ranges,
            preset=settings,
            temperature_K=temperature_K,
            pressure_bar=pressure_bar,
        )
    else:
        derived_seed(seed, PURPOSE_MASS, 0)  # checks the seed before anything starts
        plan_a = []
    aa_engine = resolve_engine(engine, platform)
    from cgforge.engines.cg_engine import resolve_engine_name

    cg_engine = resolve_engine_name(cg_engine)
    if kind == "slurm":  # a missing or bad cluster file fails before anything starts
        if cluster_config is None:
            raise InputError(
                "scheduler='slurm' needs cluster_config, a YAML file with cores, memory, "
                "walltime, queue/account, jobs",
                parameters=("scheduler", "cluster_config"),
            )
        slurm_cluster_kwargs(load_cluster_config(cluster_config), threads)
    if mass_runs and not plan_a and not path.exists():
        raise InputError(
            f"stage B needs stage-A records and there is no database at '{path}'; give "
            "molecules and aa_runs",
            parameters=("molecules", "aa_runs"),
        )
    if perturbed_runs and not plan_a and not path.exists():
        raise InputError(
            f"stage C perturbs done stage-A records and there is no database at '{path}'; give "
            "molecules and aa_runs",
            parameters=("molecules", "aa_runs"),
        )
    n_workers = workers if workers is not None else default_workers(threads)

    report = GenerateReport(
        database=path,
        scheduler=str(scheduler),
        workers=n_workers if kind == "local" else 0,  # set from the executor below
        threads=threads,
        engine=aa_engine,
        platform=platform,
        stages={
            "A": StageReport("A", planned=len(plan_a)),
            "B": StageReport("B"),
            "C": StageReport("C"),
        },
        counts={},
        wall_s=0.0,
        cg_engine=cg_engine,
    )
    with contextlib.ExitStack() as stack:
        executor: _Executor | None = None
        if kind == "address":
            executor = _connect_address(str(scheduler).strip(), float(connect_timeout_s))
            stack.callback(executor.close)
        stack.enter_context(WriterLock(path))
        db = stack.enter_context(_open_database(path))
        if mass_runs and not plan_a and not any(db.counts()["A"].values()):
            raise InputError(
                f"stage B needs stage-A records and '{path}' has none; give molecules and "
                "aa_runs, or merge a database with done stage-A records",
                parameters=("molecules", "aa_runs"),
            )
        if perturbed_runs and not plan_a and not db.counts()["A"]["done"]:
            raise InputError(
                f"stage C perturbs done stage-A records and '{path}' has none done; give "
                "molecules and aa_runs to make some first, or merge a database with done "
                "stage-A records",
                parameters=("molecules", "aa_runs"),
            )
        stack.enter_context(_terminate_as_interrupt())
        runner: _Runner | None = None
        try:
            report.requeued_running = db.requeue_running()
            if retry_failed:
                report.requeued_failed = db.requeue_failed()
            report.stages["A"].added = _add_all(db, plan_a, "A")
            if executor is None:
                if kind == "local":
                    executor = _start_local(n_workers, threads, allowed_failures)
                else:
                    executor = _start_slurm(cluster_config, threads, allowed_failures)
                stack.callback(executor.close)
            report.scheduler = executor.label
            report.workers = executor.slots()
            runner = _Runner(
                db, executor, platform=platform, engine=aa_engine, threads=threads,
                progress=progress, cg_engine=cg_engine,
                stop_after_failures=stop_after_failures,
            )  # fmt: skip
            if "A" in run_stages:
                runner.run("A", report.stages["A"])
            for stage, planner, n_runs in (
                ("B", plan_stage_b, mass_runs),
                ("C", plan_stage_c, perturbed_runs),
            ):
                # the children of the done stage-A records: B at other masses, C perturbed
                if n_runs:
                    parents = order_parents(db.iter_done("A"), plan_a)
                    if parents:
                        plan = planner(
                            parents, n_runs, seed=seed, mass_range_amu=masses, preset=settings
                        )
                        report.stages[stage].planned = len(plan)
                        report.stages[stage].added = _add_all(db, plan, stage)
                    else:
                        report.notes.append(
                            f"no stage-A record is done, so no stage-{stage} record was planned"
                        )
                if stage in run_stages:
                    runner.run(stage, report.stages[stage])
        except KeyboardInterrupt as exc:
            requeued = runner.abandon() if runner is not None else db.requeue_running()
            report.counts = db.counts()
            report.wall_s = time.perf_counter() - tic
            raise GenerationInterrupted(requeued, report) from exc
        report.counts = db.counts()
    report.wall_s = time.perf_counter() - tic
    return report


def _add_all(db: Database, specs: Sequence[Mapping[str, Any]], stage: str) -> int:
    """Add ``specs`` as pending (idempotent); returns how many were new."""
    before = sum(db.counts()[stage].values())
    for spec in specs:
        db.add_pending(spec)
    return sum(db.counts()[stage].values()) - before
