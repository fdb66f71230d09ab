"""``cgforge ibi`` and ``cgforge cg``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.options import protocol_from_options
from cgforge.cli.progress import console, stage_progress
from cgforge.units import parse_time_ps


def register(app: typer.Typer) -> None:
    app.command("ibi")(ibi)
    app.command("cg")(cg)


def ibi(
    reference: options.ReferenceArgument,
    out: options.RunOut = ...,
    iterations: int = typer.Option(30, "--iterations", help="Maximum number of IBI iterations."),
    run: str = typer.Option("100ps", "--run", help="Sampled NVT run per iteration, e.g. 200ps."),
    settle: str = typer.Option("10ps", "--settle", help="Discarded start of each iteration's run."),
    equilibrate: str = typer.Option(
        "50ps", "--equilibrate", help="NPT equilibration of the final CG run."
    ),
    production: str = typer.Option("500ps", "--production", help="Final CG production, e.g. 1ns."),
    beads: options.Beads = None,
    cutoff: float = typer.Option(
        None, "--cutoff", help="Potential cutoff, nm (default: min(1.4, half box))."
    ),
    damping: float = typer.Option(0.8, "--damping", help="IBI damping factor alpha (0-1]."),
    tolerance: float = typer.Option(
        0.01, "--tolerance", help="RDF deviation at convergence (0.01 = 1%)."
    ),
    pressure_tolerance: float = typer.Option(
        25.0, "--pressure-tolerance", help="Pressure tolerance, bar (or 2 sigma if larger)."
    ),
    pressure_correction: bool = typer.Option(
        True,
        "--pressure-correction/--no-pressure-correction",
        help="Linear pressure-correction ramp.",
    ),
    timestep: options.CGTimestep = "5fs",
    platform: options.Platform = "auto",
    engine: options.CGEngine = "auto",
    threads: options.CGThreads = 1,
    seed: options.MDSeed = 0,
    overwrite: options.OverwriteRun = False,
    quiet: options.Quiet = False,
) -> None:
    """Iterative Boltzmann inversion against an all-atom reference, then a CG production run."""
    from cgforge.methods.ibi import IBIConfig
    from cgforge.workflows.cg import run_ibi_from_reference

    run_ps = parse_time_ps(run, what="--run", allow_zero=False)
    config = IBIConfig(
        max_iterations=iterations,
        damping=damping,
        rdf_tolerance=tolerance,
        pressure_tolerance_bar=pressure_tolerance,
        pressure_correction=pressure_correction,
        cutoff_nm=cutoff,
        timestep_fs=parse_time_ps(timestep, what="--timestep", allow_zero=False) * 1e3,
        equilibration_ps=parse_time_ps(settle, what="--settle"),
        production_ps=run_ps,
        sample_interval_ps=min(0.5, run_ps / 100.0),
        platform=platform,
        seed=seed,
        engine=engine,
        cg_threads=threads,
    )
    with stage_progress(not quiet) as progress:
        summary = run_ibi_from_reference(
            reference,
            out,
            config,
            n_beads=beads,
            equilibration_ps=parse_time_ps(equilibrate, what="--equilibrate"),
            production_ps=parse_time_ps(production, what="--production", allow_zero=False),
            overwrite=overwrite,
            progress=progress,
        )
    _print_summary(summary, out)


def cg(
    potential: Path = typer.Argument(
        ..., help="Tabulated potential, r_nm,U_kJ_mol,F_kJ_mol_nm CSV."
    ),
    out: options.RunOut = ...,
    mass: float = typer.Option(None, "--mass", help="Bead mass, amu (default: the reference's)."),
    beads: int = typer.Option(None, "--beads", help="Number of beads (default: the reference's)."),
    density: float = typer.Option(None, "--density", help="Start density, g/cm3."),
    box: float = typer.Option(None, "--box", help="Start box edge (cubic), nm."),
    start: Path = typer.Option(
        None,
        "--start",
        help="Start configuration (GRO, PDB, LAMMPS data; one bead per particle): sets the "
        "beads and the start box.",
    ),
    reference: options.Reference = None,
    equilibrate: str = typer.Option(
        "50ps", "--equilibrate", help="NPT equilibration time (0ps: NVT at the start density)."
    ),
    production: options.Production = "1ns",
    temperature: float = typer.Option(
        None, "--temperature", help="Temperature, K (default: the reference's, else 298.15)."
    ),
    pressure: float = typer.Option(
        None, "--pressure", help="NPT pressure, bar (default: the reference's, else 1)."
    ),
    timestep: options.Timestep = "5fs",
    ensemble: str = typer.Option(
        "nvt",
        "--ensemble",
        help="Production ensemble: nvt (Nosé-Hoover), nve, or npt (Nosé-Hoover + the NPT "
        "barostat; density from the production; torch: Bussi + Monte Carlo barostat).",
    ),
    sample_every: options.BeadSampleEvery = None,
    platform: options.Platform = "auto",
    engine: options.CGEngine = "auto",
    threads: options.CGThreads = 1,
    seed: options.MDSeed = 0,
    overwrite: options.OverwriteRun = False,
    quiet: options.Quiet = False,
) -> None:
    """One-bead CG liquid with a tabulated pair potential: CG MD → RDF, D, density."""
    from cgforge.workflows.cg import load_reference, run_cg

    ref = load_reference(reference) if reference is not None else None
    if temperature is None:
        temperature = ref.temperature_K if ref is not None else 298.15
    if pressure is None:
        pressure = ref.barostat_pressure_bar if ref is not None else 1.0
    protocol = protocol_from_options(
        equilibrate,
        production,
        timestep=timestep,
        sample_every=sample_every,
        temperature_K=temperature,
        pressure_bar=pressure,
        production_ensemble=ensemble,
        save_particles=False,
        platform=platform,
        seed=seed,
        engine=engine,
        cg_threads=threads,
    )
    with stage_progress(not quiet) as progress:
        summary = run_cg(
            potential,
            mass_amu=mass,
            n_beads=beads,
            protocol=protocol,
            out=out,
            density_g_cm3=density,
            box_nm=box,
            reference_dir=reference,
            overwrite=overwrite,
            progress=progress,
            start_file=start,
        )
    _print_summary(summary, out)


def _print_summary(summary: dict, out: Path) -> None:
    table = Table(title=f"{summary.get('molecule')} → {out}", show_header=False)
    rows = [
        ("beads", f"{summary['n_molecules']} × {summary['bead_mass_amu']:.3f} amu"),
        (
            "density",
            f"{summary['density_g_cm3']:.4f} ± {summary['density_err_g_cm3']:.4f} g/cm3"
            + (f" ({summary['density_source']})" if summary.get("density_source") else ""),
        ),
        ("pressure", f"{summary['pressure_bar']:.1f} ± {summary['pressure_err_bar']:.1f} bar"),
        ("D", f"{summary['diffusion_m2_s']:.4g} ± {summary['diffusion_err_m2_s']:.2g} m2/s"),
    ]
    if summary.get("iterations") is not None:
        state = "converged" if summary.get("converged") else "not converged"
        rows.append(("IBI", f"{state} after {summary['iterations']} iterations"))
    if summary.get("acceleration_factor") is not None:
        rows += [
            (
                "acceleration",
                f"{summary['acceleration_factor']:.3g} ± "
                f"{summary['acceleration_factor_err']:.2g} (D_CG / D_AA)",
            ),
            ("RDF deviation", f"{summary['rdf_deviation']:.2%}  (R² {summary['rdf_r2']:.4f})"),
            ("density error", f"{summary['density_error']:+.2%}"),
        ]
    if "ns_per_day" in summary:
        rows.append(("speed", f"{summary['ns_per_day']:.1f} ns/day on {summary['platform']}"))
    for note in summary.get("notes") or []:
        rows.append(("note", str(note)))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
