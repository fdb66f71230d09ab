"""``cgforge aa``, ``cgforge analyze`` and ``cgforge molecules``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.options import protocol_from_options
from cgforge.cli.progress import console, stage_progress
from cgforge.units import parse_time_ps


def register(app: typer.Typer) -> None:
    app.command("aa")(aa)
    app.command("analyze")(analyze)
    app.command("molecules")(molecules)


def aa(
    molecule: str = typer.Argument(None, help="Built-in name (see 'cgforge molecules') or SMILES."),
    out: options.RunOut = ...,
    molecules_: int = typer.Option(500, "--molecules", help="Number of molecules."),
    equilibrate: str = typer.Option(
        "100ps", "--equilibrate", help="NPT equilibration time, e.g. 200ps."
    ),
    production: options.Production = "1ns",
    temperature: options.Temperature = 298.15,
    pressure: options.Pressure = 1.0,
    timestep: str = typer.Option("2fs", "--timestep", help="Time step (HBond constraints)."),
    ensemble: str = typer.Option(
        "nvt", "--ensemble", help="Production ensemble: nvt (Nosé-Hoover) or nve."
    ),
    sample_every: options.BeadSampleEvery = None,
    forces: bool = typer.Option(False, "--forces", help="Also save mapped (per-molecule) forces."),
    density_scale: float = typer.Option(
        None,
        "--density-scale",
        help="Production at a fixed density: this factor (0.5-1.5) times the NPT mean density, "
        "e.g. 1.05 for 5 % denser (NVT relaxation first, see --density-relax).",
    ),
    production_density: float = typer.Option(
        None,
        "--density",
        help="Production at this fixed density, g/cm3 (instead of --density-scale).",
    ),
    density_relax: str = typer.Option(
        "50ps",
        "--density-relax",
        help="NVT relaxation at a fixed --density-scale/--density before production (discarded).",
    ),
    cutoff: float = typer.Option(1.0, "--cutoff", help="Nonbonded cutoff, nm (PME beyond)."),
    density: float = typer.Option(
        None, "--pack-density", help="Packing density, g/cm3 (default: 0.9 x reference)."
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="MD engine: auto (OpenMM on a CUDA GPU, else GROMACS where installed, else "
        "OpenMM on the CPU), openmm or gromacs.",
    ),
    platform: str = typer.Option(
        "auto",
        "--platform",
        help="OpenMM platform: auto, cuda, cpu, reference (naming one "
        "selects OpenMM under --engine auto).",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for conformer, packing and velocities."),
    topology: Path = typer.Option(
        None, "--topology", help="Your own GROMACS .top (instead of a molecule)."
    ),
    coordinates: Path = typer.Option(
        None, "--coordinates", help="The .gro that goes with --topology."
    ),
    include_dir: Path = typer.Option(
        None, "--include-dir", help="GROMACS force-field directory for --topology."
    ),
    overwrite: options.OverwriteRun = False,
    quiet: options.Quiet = False,
) -> None:
    """All-atom reference liquid: OPLS-AA → MD (OpenMM or GROMACS) → one bead per molecule →
    RDF, D, density."""
    from cgforge.workflows.aa import AAConfig

    density_settings: dict[str, float] = {
        "density_relax_ps": parse_time_ps(density_relax, what="--density-relax")
    }
    if density_scale is not None:
        density_settings["production_density_scale"] = density_scale
    if production_density is not None:
        density_settings["production_density_g_cm3"] = production_density
    protocol = protocol_from_options(
        equilibrate,
        production,
        timestep=timestep,
        sample_every=sample_every,
        temperature_K=temperature,
        pressure_bar=pressure,
        production_ensemble=ensemble,
        save_forces=forces,
        platform=platform,
        seed=seed,
        **density_settings,
    )
    config = AAConfig(
        molecule=molecule,
        topology_file=str(topology) if topology else None,
        coordinates_file=str(coordinates) if coordinates else None,
        include_dir=str(include_dir) if include_dir else None,
        n_molecules=molecules_,
        packing_density_g_cm3=density,
        cutoff_nm=cutoff,
        protocol=protocol,
        engine=engine,
    )
    from cgforge.workflows.aa import run_aa

    with stage_progress(not quiet) as progress:
        summary = run_aa(config, out, overwrite=overwrite, progress=progress)
    _print_summary(summary, out)


def analyze(
    topology: Path = typer.Option(
        ..., "--topology", help="Topology: .gro/.tpr/.pdb/.psf/LAMMPS data."
    ),
    trajectory: list[Path] = typer.Option(
        None, "--trajectory", help="Trajectory file(s): .xtc/.trr/.dcd/LAMMPS dump."
    ),
    out: options.RunOut = ...,
    temperature: float = typer.Option(
        None, "--temperature", help="Temperature of the run, K (recorded)."
    ),
    start: int = typer.Option(None, "--start", help="First frame."),
    stop: int = typer.Option(None, "--stop", help="Stop before this frame."),
    step: int = typer.Option(None, "--step", help="Frame stride."),
    fit_start: str = typer.Option(
        None, "--fit-start", help="Start of the MSD fit window, e.g. 10ps."
    ),
    fit_end: str = typer.Option(None, "--fit-end", help="End of the MSD fit window."),
    overwrite: options.OverwriteRun = False,
) -> None:
    """One-bead reference (RDF, MSD, D, density) of your own trajectory, read with MDAnalysis."""
    from cgforge.workflows.analyze import AnalyzeConfig, run_analyze

    config = AnalyzeConfig(
        topology=str(topology),
        trajectory=tuple(str(t) for t in trajectory or ()),
        temperature_K=temperature,
        start=start,
        stop=stop,
        step=step,
        fit_start_ps=parse_time_ps(fit_start, what="--fit-start") if fit_start else None,
        fit_end_ps=parse_time_ps(fit_end, what="--fit-end") if fit_end else None,
    )
    summary = run_analyze(config, out, overwrite=overwrite)
    _print_summary(summary, out)


def molecules() -> None:
    """List the built-in molecules."""
    from cgforge.molecules import list_builtin_molecules

    table = Table("name", "SMILES", "M / g mol-1", "rho_ref / g cm-3")
    for entry in list_builtin_molecules():
        table.add_row(
            entry.name,
            entry.smiles,
            f"{entry.molar_mass:.2f}",
            f"{entry.density_g_cm3:.4f}" if entry.density_g_cm3 else "-",
        )
    console.print(table)


def _print_summary(summary: dict, out: Path) -> None:
    table = Table(title=f"{summary.get('molecule')} → {out}", show_header=False)
    rows = [
        ("molecules", f"{summary['n_molecules']}"),
        ("bead mass", f"{summary['bead_mass_amu']:.3f} amu"),
        ("density", f"{summary['density_g_cm3']:.4f} ± {summary['density_err_g_cm3']:.4f} g/cm3"),
        ("D", f"{summary['diffusion_m2_s']:.4g} ± {summary['diffusion_err_m2_s']:.2g} m2/s"),
        ("fit window", "{:.3g}-{:.3g} ps".format(*summary["diffusion_fit_window_ps"])),
    ]
    if "density_scale" in summary:  # a fixed production density
        npt = summary["density_npt_g_cm3"]
        rows.append(("fixed density", f"{summary['density_scale']:.4f} x NPT mean {npt:.4f} g/cm3"))
    if "ns_per_day" in summary:
        rows.append(("speed", f"{summary['ns_per_day']:.2f} ns/day on {summary['platform']}"))
    if "engine" in summary:
        rows.append(("engine", str(summary["engine"])))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
    for note in summary.get("notes", []):
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
