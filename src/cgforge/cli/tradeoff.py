"""``cgforge tradeoff``: the structure–mobility trade-off curve of one liquid."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.progress import console, stage_progress
from cgforge.units import parse_time_ps


def register(app: typer.Typer) -> None:
    app.command("tradeoff")(tradeoff)


def tradeoff(
    reference: str = typer.Argument(
        ..., help="All-atom reference directory or shipped reference name (cgforge references)."
    ),
    potential: Path = typer.Option(
        ..., "--potential", help="Structure-preserving start potential (IBI's potential.csv)."
    ),
    out: options.RunOut = ...,
    points: int = typer.Option(5, "--points", help="Points on the curve, the start included."),
    target_ratio: float = typer.Option(
        1.0, "--target-ratio", help="Last D_CG/D_AA of the curve (1: mobility-exact)."
    ),
    basis: int = typer.Option(6, "--basis", help="Number of smooth bumps added to the potential."),
    steps: int = typer.Option(6, "--steps", help="Optimisation steps per point."),
    settle: str = typer.Option("20ps", "--settle", help="Discarded start of each CG run."),
    run: str = typer.Option("100ps", "--run", help="Measured NVT run of each potential."),
    timestep: str = typer.Option("5fs", "--timestep", help="Time step (shortened if needed)."),
    sample_every: options.SampleEvery = "0.5ps",
    beads: options.Beads = None,
    engine: options.CGEngine = "auto",
    seed: int = typer.Option(0, "--seed", help="Seed of every CG run's start and velocities."),
    overwrite: options.OverwriteRun = False,
    quiet: options.Quiet = False,
) -> None:
    """Trade structure for mobility: the least RDF deviation at each D_CG/D_AA down to 1."""
    from cgforge.methods.tradeoff import TradeoffConfig
    from cgforge.workflows.tradeoff import run_tradeoff

    config = TradeoffConfig(
        n_basis=basis, points=points, target_ratio=target_ratio, max_steps=steps
    )
    with stage_progress(not quiet) as progress:
        summary = run_tradeoff(
            reference,
            potential,
            out,
            config,
            n_beads=beads,
            equilibration_ps=parse_time_ps(settle, what="--settle"),
            production_ps=parse_time_ps(run, what="--run", allow_zero=False),
            timestep_fs=parse_time_ps(timestep, what="--timestep", allow_zero=False) * 1e3,
            sample_interval_ps=parse_time_ps(sample_every, what="--sample-every", allow_zero=False),
            engine=engine,
            seed=seed,
            overwrite=overwrite,
            progress=progress,
        )
    table = Table(title=f"{summary['molecule']}: structure vs mobility → {out}")
    for column in ("target D_CG/D_AA", "D_CG/D_AA", "RDF deviation", "R²", "pressure bar"):
        table.add_column(column, justify="right")
    for row in summary["curve"]:
        table.add_row(
            f"{row['target_ratio']:.3g}{'' if row['reached'] else ' (not reached)'}",
            f"{row['ratio']:.3g} ± {row['ratio_err']:.2g}",
            f"{row['rdf_deviation']:.2%}",
            f"{row['rdf_r2']:.4f}",
            f"{row['pressure_bar']:.0f}",
        )
    console.print(table)
    for note in summary.get("notes") or []:
        console.print(f"note: {note}")
