"""``cgforge run``: AA reference → IBI → CG production → report, in one command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.progress import console, stage_progress


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    molecule: str = typer.Argument(..., help="Built-in name (see 'cgforge molecules') or SMILES."),
    out: Path = typer.Option(..., "--out", help="Run directory (stages in aa/ and cg/)."),
    preset: options.Preset = "quick",
    temperature: options.Temperature = 298.15,
    pressure: options.Pressure = 1.0,
    platform: options.Platform = "auto",
    engine: options.CGEngine = "auto",
    threads: options.CGThreads = 1,
    seed: int = typer.Option(0, "--seed", help="Seed of every stage."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Redo stages that already ran in --out."
    ),
    quiet: options.Quiet = False,
) -> None:
    """Molecule → all-atom reference → IBI → CG MD → report.html and summary.json."""
    from cgforge.workflows.run import run_pipeline

    with stage_progress(not quiet) as progress:
        summary = run_pipeline(
            molecule,
            out,
            preset=preset,
            temperature_K=temperature,
            pressure_bar=pressure,
            platform=platform,
            seed=seed,
            overwrite=overwrite,
            progress=progress,
            cg_engine=engine,
            cg_threads=threads,
        )
    table = Table(title=f"{summary['molecule']} ({summary['preset']}) → {out}", show_header=True)
    table.add_column("")
    table.add_column("all-atom")
    table.add_column("CG (IBI)")
    aa, cg = summary["aa"], summary["cg"]
    table.add_row("density / g cm-3", f"{aa['density_g_cm3']:.4f}", f"{cg['density_g_cm3']:.4f}")
    table.add_row("D / m2 s-1", f"{aa['diffusion_m2_s']:.3g}", f"{cg['diffusion_m2_s']:.3g}")
    factor = summary.get("acceleration_factor")
    table.add_row("D_CG / D_AA", "1", f"{factor:.2f}" if factor is not None else "-")
    deviation = summary.get("rdf_deviation")
    table.add_row("RDF deviation", "", f"{deviation:.2%}" if deviation is not None else "-")
    table.add_row(
        "IBI", "", f"{summary['iterations']} iterations, converged: {summary['converged']}"
    )
    console.print(table)
    console.print(f"report: {Path(out) / 'report.html'}")
