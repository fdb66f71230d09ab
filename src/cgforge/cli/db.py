"""``cgforge db``: create, inspect, export and merge force-field databases."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cgforge.cli.progress import console

db_app = typer.Typer(
    name="db",
    help="The synthetic force-field database (SQLite): init, status, export, merge.",
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

    with Database.init(database, database_grids()) as db:
        sizes = ", ".join(f"{name} {len(g['values'])} points" for name, g in db.grids.items())
    console.print(f"created {database} (grids: {sizes})", highlight=False)


@db_app.command("status")
def status(
    database: Path = typer.Argument(..., help="Database file."),
    hours: float = typer.Option(1.0, "--hours", help="Window of the throughput, hours."),
    failures: int = typer.Option(10, "--failures", help="How many recent failures to list."),
) -> None:
    """Records by stage and state, the latest failures with reasons, throughput."""
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
    if failed:
        console.print(f"failures ({len(failed)}, latest first):", highlight=False)
        for row in failed[: max(failures, 0)]:
            console.print(
                f"  {row['key'][:12]}  stage {row['stage']}  {row['molecule']}  "
                f"(attempts {row['attempts']}): {row['error']}",
                highlight=False,
                soft_wrap=True,
            )


@db_app.command("export")
def export(
    database: Path = typer.Argument(..., help="Database file."),
    fmt: str = typer.Option("npz", "--format", help="npz (arrays + CSV table) or parquet."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
) -> None:
    """Done records per stage: stacked arrays with grids (stage_<S>.npz) and a scalar table."""
    from cgforge.database.store import Database

    with Database.open(database, readonly=True) as db:
        result = db.export_npz(out, format=fmt)
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
    """Bring in the records of another database made with the same grids."""
    from cgforge.database.store import Database

    with Database.open(database) as db:
        stats = db.merge(other)
    console.print(
        f"merged {other} into {database}: {stats['added']} added, {stats['replaced']} "
        f"replaced, {stats['kept']} kept",
        highlight=False,
    )
