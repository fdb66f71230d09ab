"""``cgforge db``: create, generate, inspect, export and merge force-field databases, and
measure which real liquids a mobility model trained on one covers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.progress import console

db_app = typer.Typer(
    name="db",
    help="The synthetic force-field database (SQLite): init, generate, status, export, merge, coverage.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


@db_app.command("init")
def init(
    database: Path = typer.Argument(..., help="Path of the new database file, e.g. ff.db."),
) -> None:
    """Create an empty database with the default learning grids (RDF and potential, nm)."""
    from cgforge.database.stages import database_grids
    from cgforge.database.store import Database
    from cgforge.errors import InputError

    if database.exists():
        raise InputError(
            f"database '{database}' already exists; generate into it as it is (cgforge db "
            "generate), or give a new path"
        )
    with Database.init(database, database_grids()) as db:
        sizes = ", ".join(f"{name} {len(g['values'])} points" for name, g in db.grids.items())
    console.print(f"created {database} (grids: {sizes})", highlight=False)


@db_app.command("status")
def status(
    database: Path = typer.Argument(..., help="Database file."),
    hours: float = typer.Option(1.0, "--hours", help="Window of the throughput, hours."),
    failures: int = typer.Option(10, "--failures", help="How many recent failures to list."),
) -> None:
    """Records by stage and state, the running generation, latest failures, throughput."""
    from cgforge.database.lock import describe_holder, lock_holder
    from cgforge.database.store import STATES, Database

    with Database.open(database, readonly=True) as db:
        counts = db.counts()
        failed = db.failures()
        rate = db.throughput(hours)
    table = Table(title=f"{database}")
    table.add_column("stage")
    for state in STATES:
        table.add_column(state, justify="right")
    table.add_column("total", justify="right")
    for stage, by_state in counts.items():
        table.add_row(stage, *(str(by_state[s]) for s in STATES), str(sum(by_state.values())))
    console.print(table)
    console.print(f"throughput: {rate:.2f} records/hour (last {hours:g} h)", highlight=False)
    holder = lock_holder(database)
    writer = f"generation running ({describe_holder(holder)})" if holder else "none running"
    console.print(f"writer: {writer}", highlight=False)
    if failed:
        console.print(f"failures ({len(failed)}, latest first):", highlight=False)
        for row in failed[: max(failures, 0)]:
            console.print(
                f"  {row['key'][:12]}  stage {row['stage']}  {row['molecule']}  "
                f"(attempts {row['attempts']}): {row['error']}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


@db_app.command("export")
def export(
    database: Path = typer.Argument(..., help="Database file."),
    fmt: str = typer.Option("npz", "--format", help="npz (arrays + CSV table) or parquet."),
    out: Path = typer.Option(..., "--out", help="Output directory (new or empty)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into a non-empty --out (replaces files of same name)."
    ),
) -> None:
    """Done records per stage: stacked arrays with grids (stage_<S>.npz) and a scalar table."""
    from cgforge.database.store import Database
    from cgforge.errors import InputError

    with Database.open(database, readonly=True) as db:
        try:
            result = db.export_npz(out, format=fmt, overwrite=overwrite)
        except InputError as exc:  # name the flags
            message = str(exc).replace("export directory", "--out")
            raise InputError(message.replace("pass overwrite", "add --overwrite")) from None
    for path in result["files"]:
        console.print(f"wrote {path}", highlight=False)
    if not result["files"]:
        console.print("no done records to export", highlight=False)
    for stage, names in result["skipped"].items():
        if names:
            console.print(
                f"stage {stage}: left out arrays of varying shape/unit: {', '.join(names)}",
                highlight=False,
            )


@db_app.command("merge")
def merge(
    database: Path = typer.Argument(..., help="Database to merge into."),
    other: Path = typer.Argument(..., help="Database whose records are brought in."),
) -> None:
    """Bring in the records of another database made with the same grids (not while a
    generation writes to it: merging takes the database's writer lock)."""
    from cgforge.database.lock import WriterLock
    from cgforge.database.store import Database

    with WriterLock(database), Database.open(database) as db:
        stats = db.merge(other)
    console.print(
        f"merged {other} into {database}: {stats['added']} added, {stats['replaced']} "
        f"replaced, {stats['kept']} kept",
        highlight=False,
    )


class _GenerateProgress:
    """Live progress of a generation: a rich display on a terminal, else one line a record."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _GenerateProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]stage {task.fields[stage]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("done {task.fields[done]}  failed {task.fields[failed]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, event: Any) -> None:
        rate = f"{event.records_per_hour:8.1f} records/h" if event.done else ""
        finished = event.done + event.failed
        if self.progress is not None:
            if event.stage not in self.tasks:
                self.tasks[event.stage] = self.progress.add_task(
                    event.stage,
                    total=max(event.total, 1),
                    stage=event.stage,
                    done=0,
                    failed=0,
                    rate="",
                )
            self.progress.update(
                self.tasks[event.stage],
                completed=finished,
                total=max(event.total, 1),
                done=event.done,
                failed=event.failed,
                rate=rate,
            )
            if event.state == "failed":
                self.progress.console.print(
                    f"stage {event.stage} {event.key[:12]} failed: {event.error}",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
            return
        if event.key is None:
            console.print(f"stage {event.stage}: {event.total} records to run", highlight=False)
            return
        text = f"stage {event.stage} {finished}/{event.total} {event.key[:12]} {event.state}"
        if event.error:
            text += f": {event.error}"
        counts = f"done {event.done}, failed {event.failed}" + (f", {rate.strip()}" if rate else "")
        console.print(f"{text}  ({counts})", highlight=False, soft_wrap=True, markup=False)


@db_app.command("generate")
def generate(
    database: Path = typer.Argument(..., help="Database file (created if absent)."),
    molecules: str = typer.Option(
        "",
        "--molecules",
        help="Stage-A molecules, comma-separated (built-in names may contain commas: "
        "2,3,4-trimethylpentane,ethylbenzene,3-methylpentane), or SMILES.",
    ),
    aa_runs: int = typer.Option(0, "--aa-runs", help="Stage-A entries (randomised force fields)."),
    mass_runs: int = typer.Option(0, "--mass-runs", help="Stage-B entries (bead masses)."),
    perturbed_runs: int = typer.Option(
        0,
        "--perturbed-runs",
        help="Stage-C entries: stage-A potentials perturbed toward slower liquids (deeper "
        "well, barrier behind the first shell), each at a random bead mass.",
    ),
    preset: str = typer.Option("quick", "--preset", help="tiny, quick or standard."),
    seed: int = typer.Option(0, "--seed", help="Seed of the plan (parameters, masses, MD)."),
    mass_range: str = typer.Option(
        "20,200", "--mass-range", help="Stage-B and -C bead masses low,high in amu (g/mol)."
    ),
    ranges: Path | None = typer.Option(
        None,
        "--ranges",
        help="YAML file of bonded-parameter ranges (e.g. 'angle_theta0_deg: [100, 120]').",
    ),
    temperature: options.Temperature = 298.15,
    pressure: options.Pressure = 1.0,
    scheduler: str = typer.Option(
        "local",
        "--scheduler",
        help="local (embedded Dask cluster), slurm (with --cluster-config), or the address of "
        "a running Dask scheduler (tcp://host:8786).",
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Local worker processes (default: cores // threads)."
    ),
    threads: int = typer.Option(
        1,
        "--threads",
        help="CPU threads per record: of the all-atom engine (OpenMM CPU, GROMACS) and of "
        "the CG engine (IBI and CG MD: LAMMPS OPENMP, torch). Not part of a record's spec "
        "or key.",
    ),
    cluster_config: Path | None = typer.Option(
        None,
        "--cluster-config",
        help="YAML for --scheduler slurm: cores, memory, walltime, queue, account, processes, "
        "job_extra_directives, job_script_prologue, and jobs: N or adapt: {minimum_jobs, "
        "maximum_jobs}.",
    ),
    platform: str = typer.Option(
        "auto", "--platform", help="OpenMM platform: auto, cpu, cuda, reference."
    ),
    engine: str = typer.Option(
        "auto", "--engine", help="All-atom engine of stage A: auto, openmm, gromacs."
    ),
    cg_engine: options.DBCGEngine = "auto",
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed records again."),
    stop_after_failures: int = typer.Option(
        5,
        "--stop-after-failures",
        help="Stop when the first N stage-A records all fail, with their reasons counted "
        "(0: never stop).",
    ),
    connect_timeout: float = typer.Option(
        10.0, "--connect-timeout", help="Seconds to wait for a --scheduler address to answer."
    ),
    stages: str = typer.Option(
        "A,B,C",
        "--stages",
        help="Stages whose pending records run (e.g. B,C: the children of the stage-A records "
        "done so far, while other stage-A records stay pending).",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress output."),
) -> None:
    """Plan and run stage-A, -B and -C records on Dask; rerun the same command to resume."""
    from cgforge.workflows.db_generate import GenerationInterrupted, load_ranges, parse_mass_range
    from cgforge.workflows.db_generate import generate as run_generation

    parameter_ranges = load_ranges(ranges) if ranges is not None else None
    display = _GenerateProgress(live=console.is_terminal and not quiet)
    try:
        with display:
            report = run_generation(
                database,
                molecules=molecules,
                aa_runs=aa_runs,
                mass_runs=mass_runs,
                perturbed_runs=perturbed_runs,
                preset=preset,
                seed=seed,
                ranges=parameter_ranges,
                mass_range_amu=parse_mass_range(mass_range),
                temperature_K=temperature,
                pressure_bar=pressure,
                scheduler=scheduler,
                workers=workers,
                threads=threads,
                cluster_config=cluster_config,
                platform=platform,
                engine=engine,
                cg_engine=cg_engine,
                retry_failed=retry_failed,
                stop_after_failures=stop_after_failures,
                progress=None if quiet else display,
                connect_timeout_s=connect_timeout,
                stages=stages,
            )
    except GenerationInterrupted as stop:
        console.print(str(stop), highlight=False)
        raise SystemExit(130) from None  # the shell's code for an interrupted command
    table = Table(title=f"{database}: generation on {report.scheduler}")
    for column in ("stage", "planned", "added", "ran", "done", "failed", "wall", "records/h"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, stage in report.stages.items():
        table.add_row(
            name,
            str(stage.planned),
            str(stage.added),
            str(stage.ran),
            str(stage.done),
            str(stage.failed),
            f"{stage.wall_s:.0f} s",
            f"{stage.records_per_hour:.1f}",
        )
    console.print(table)
    totals = ", ".join(
        f"{stage}: " + " ".join(f"{state} {n}" for state, n in by_state.items())
        for stage, by_state in report.counts.items()
    )
    console.print(f"database now: {totals}", highlight=False)
    if report.requeued_running or report.requeued_failed:
        console.print(
            f"resumed: {report.requeued_running} interrupted and {report.requeued_failed} failed "
            "records were queued again",
            highlight=False,
        )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


@db_app.command("coverage")
def coverage(
    database: Path | None = typer.Option(
        None, "--db", help="Database file (default: the shipped data/ffdb-cpu-quick.sqlite)."
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Mobility model directory (default: the shipped model)."
    ),
    out: Path = typer.Option(
        Path("coverage"), "--out", help="Directory for coverage.json and coverage.png."
    ),
) -> None:
    """Which shipped all-atom references the mobility model predicts in distribution, the
    database's (mass, D, first-peak) cloud, and where the database must grow."""
    from cgforge.workflows.coverage import run_coverage

    result = run_coverage(database, model, out)
    table = Table(title=f"coverage of {result['model']}")
    for column in ("liquid", "mass/amu", "D_AA/m²s⁻¹", "g_max", "OOD", "reasons"):
        table.add_column(column, justify="left" if column in ("liquid", "reasons") else "right")

    def number(value: Any, fmt: str) -> str:
        return "–" if value is None else format(value, fmt)

    for row in result["liquids"]:
        table.add_row(
            str(row["liquid"]),
            number(row["mass_amu"], ".1f"),
            number(row["diffusion_m2_s"], ".3g"),
            number(row["peak_height"], ".2f"),
            "yes" if row["out_of_distribution"] else "no",
            "; ".join(row["ood_reasons"]) or "–",
        )
    console.print(table)
    cloud = result["cloud"]
    if result["coverage"] is None:
        console.print("no shipped references to cover", highlight=False)
    else:
        console.print(
            f"coverage: {result['n_covered']}/{result['n_references']} = {result['coverage']:.2f}",
            highlight=False,
        )
    d, m, h = cloud["diffusion_m2_s"], cloud["mass_amu"], cloud["peak_height"]
    if d is not None:
        console.print(
            f"database {result['database']}: {cloud['n_records']} records, D_CG "
            f"{d[0]:.3g}–{d[1]:.3g} m²/s, mass {m[0]:.0f}–{m[1]:.0f} amu, g_max "
            f"{h[0]:.2f}–{h[1]:.2f}",
            highlight=False,
        )
    for statement in result["advice"]["statements"]:
        console.print(f"- {statement}", highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"wrote {Path(out) / 'coverage.json'}, {Path(out) / 'coverage.png'}", highlight=False
    )
