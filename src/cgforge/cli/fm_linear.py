"""``cgforge fm linear``: linear force matching (MS-CG) of a one-bead pair potential."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.progress import console, stage_progress
from cgforge.units import parse_time_ps


def register(fm_app: typer.Typer) -> None:
    """Add the ``linear`` command to the ``cgforge fm`` group."""
    fm_app.command("linear")(linear)


def linear(
    run_dirs: options.ForceRunsArgument,
    out: options.RunOut = ...,
    cutoff: float = typer.Option(
        None, "--cutoff", help="Cutoff of the pair force, nm (default: min(1.4, half box))."
    ),
    r_min: float = typer.Option(
        None, "--r-min", help="Start of the spline range, nm (default: the closest pair seen)."
    ),
    knots: int = typer.Option(
        None, "--knots", help="Number of B-spline knots (default: one every 0.02 nm)."
    ),
    regularisation: float | None = typer.Option(
        None, "--regularisation", help="Relative regularisation strength λ (default 1e-4)."
    ),
    penalty: str = typer.Option(
        "smoothness", "--penalty", help="Regulariser: smoothness or tikhonov."
    ),
    start: options.StartFrames = 0,
    stride: options.Stride = 1,
    validation_fraction: float | None = typer.Option(
        None,
        "--validation-fraction",
        help="Fraction of time blocks held out of the fit for validation (0: none; default 0.2).",
    ),
    blocks: int | None = typer.Option(None, "--blocks", help="Time blocks per run (default 5)."),
    switch_width: float | None = typer.Option(
        None,
        "--switch-width",
        help="Taper of the simulated table to zero at the cutoff, nm (0: none; default 0.1).",
    ),
    validate: bool = typer.Option(
        False,
        "--validate/--no-validate",
        help="Run CG MD with the fitted potential against each reference.",
    ),
    equilibrate: str = typer.Option(
        "50ps", "--equilibrate", help="NPT equilibration of each validation run."
    ),
    production: str = typer.Option("500ps", "--production", help="Validation production run."),
    timestep: str = typer.Option("5fs", "--timestep", help="Time step of the validation runs."),
    platform: str = typer.Option(
        "auto", "--platform", help="OpenMM platform of the validation runs: auto, cuda, cpu."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the time-block split and the MD."),
    overwrite: options.OverwriteRun = False,
    quiet: options.Quiet = False,
) -> None:
    """Fit a pair force to mapped all-atom forces (MS-CG), integrate it to a potential table."""
    from cgforge.workflows.fm_linear import run_linear_fm

    optional = {
        "regularisation": regularisation,
        "validation_fraction": validation_fraction,
        "n_blocks": blocks,
        "switch_width_nm": switch_width,
    }  # None: the library's default
    with stage_progress(not quiet) as progress:
        summary = run_linear_fm(
            run_dirs,
            out,
            cutoff_nm=cutoff,
            r_min_nm=r_min,
            n_knots=knots,
            penalty=penalty,
            start=start,
            stride=stride,
            seed=seed,
            validate=validate,
            validation_equilibration_ps=parse_time_ps(equilibrate, what="--equilibrate"),
            validation_production_ps=parse_time_ps(
                production, what="--production", allow_zero=False
            ),
            validation_timestep_fs=parse_time_ps(timestep, what="--timestep", allow_zero=False)
            * 1e3,
            platform=platform,
            overwrite=overwrite,
            progress=progress,
            **{k: v for k, v in optional.items() if v is not None},
        )
    _print_summary(summary, out)


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_summary(summary: dict, out: Path) -> None:
    table = Table(title=f"{summary.get('molecule')} (force matching) → {out}", show_header=False)
    rows = [
        ("frames", f"{summary['n_frames_train']} fit, {summary['n_frames_validation']} held out"),
        (
            "basis",
            f"{summary['n_knots']} knots, {summary['r_min_nm']:.3g}-{summary['cutoff_nm']:.3g} nm, "
            f"λ = {summary['regularisation']:g} ({summary['penalty']})",
        ),
        ("sampled from", f"{summary['sampled_from_nm']:.3f} nm (wall below)"),
        ("mapped force", f"{summary['force_rms_kj_mol_nm']:.4g} kJ/mol/nm RMS per component"),
        (
            "explained",
            f"{_fraction(summary['train_explained_variance'])} fit, "
            f"{_fraction(summary['validation_explained_variance'])} held out",
        ),
    ]
    for run in summary.get("validation_runs") or []:
        parts = []
        if run.get("rdf_deviation") is not None:
            parts.append(f"RDF deviation {run['rdf_deviation']:.2%}")
        if run.get("density_error") is not None:
            parts.append(f"density error {run['density_error']:+.2%}")
        if run.get("acceleration_factor") is not None:
            parts.append(f"D_CG/D_AA {run['acceleration_factor']:.3g}")
        rows.append((f"CG at {run['state']['temperature_K']:g} K", ", ".join(parts) or "n/a"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
