"""``cgforge export``: write a CG potential for LAMMPS, GROMACS, OpenMM, VOTCA or as CSV."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from cgforge.cli.progress import console


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    source: Path = typer.Argument(
        ..., help="Run directory with potential.csv (cgforge ibi/cg --out) or a potential file."
    ),
    fmt: str = typer.Option(..., "--format", help="Target: lammps, gromacs, openmm, votca or csv."),
    out: Path = typer.Option(..., "--out", help="Output directory (must be empty)."),
    mass: float = typer.Option(
        None, "--mass", help="Bead mass, amu (default: the run's summary.json)."
    ),
    density: float = typer.Option(
        None, "--density", help="Density, g/cm3 (default: the run's summary.json)."
    ),
    temperature: float = typer.Option(
        None, "--temperature", help="Temperature, K (default: the run's summary.json)."
    ),
    beads: int = typer.Option(
        1000, "--beads", help="Beads of the OpenMM system and the GROMACS conf.gro."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the start positions."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into a non-empty --out (replaces files of same name)."
    ),
) -> None:
    """Write a tabulated CG pair potential as input files of another simulation program."""
    from cgforge.workflows.export import export_potential

    result = export_potential(
        source,
        fmt,
        out,
        overwrite=overwrite,
        mass_amu=mass,
        density_g_cm3=density,
        temperature_K=temperature,
        n_beads=beads,
        seed=seed,
    )
    console.print(
        f"{result.format} files in {result.out_dir}: {', '.join(result.files)}",
        highlight=False,
        soft_wrap=True,
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if result.format == "gromacs":
        console.print(
            "[yellow]note:[/] GROMACS 2020 and later cannot run user tables for non-bonded "
            "interactions; see README.txt",
            highlight=False,
            soft_wrap=True,
        )
