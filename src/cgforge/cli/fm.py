"""``cgforge fm``: force matching — linear MS-CG and graph neural networks (SchNet, HIP-NN-TS).

Commands: ``linear`` (:mod:`cgforge.cli.fm_linear`), ``train`` (a GNN on mapped forces),
``simulate`` (CG MD with a trained model), ``transfer`` (the model at several state points),
``study`` (one training per combination of a hyperparameter grid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.fm_linear import register as register_linear
from cgforge.cli.progress import console, stage_progress
from cgforge.errors import InputError
from cgforge.units import parse_time_ps

fm_app = typer.Typer(
    help="Force matching: linear MS-CG pair forces and graph neural networks.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``fm`` group (with ``linear``, ``train``, ``simulate``, ``transfer``, ``study``)."""
    register_linear(fm_app)
    fm_app.command("train")(train)
    fm_app.command("simulate")(simulate)
    fm_app.command("transfer")(transfer)
    fm_app.command("study")(study)
    app.add_typer(fm_app, name="fm")


def model_file(path: Path) -> Path:
    """A model file, or ``model.pt`` inside a training directory."""
    if path.is_dir():
        candidate = path / "model.pt"
        if not candidate.is_file():
            raise InputError(
                f"{path} holds no model.pt; give a `cgforge fm train` output or a model file"
            )
        return candidate
    if not path.is_file():
        raise InputError(f"model {path} not found; give a `cgforge fm train` output or model file")
    return path


def train(
    run_dirs: options.ForceRunsArgument,
    out: Path = typer.Option(..., "--out", help="Run directory for the trained model."),
    model: str = typer.Option("schnet", "--model", help="Network: schnet or hipnn."),
    epochs: int = typer.Option(100, "--epochs", help="Most training epochs."),
    cutoff: float = typer.Option(
        None, "--cutoff", help="Interaction cutoff, nm (default: min(1.0, half box))."
    ),
    width: int = typer.Option(None, "--width", help="Features per layer (model default)."),
    interactions: int = typer.Option(
        None, "--interactions", help="Interaction layers (model default)."
    ),
    batch_frames: int = typer.Option(4, "--batch-frames", help="Frames per optimiser step."),
    lr: float = typer.Option(1.0e-3, "--lr", help="Initial learning rate (Adam)."),
    lr_schedule: str = typer.Option("plateau", "--lr-schedule", help="plateau or cosine."),
    patience: int = typer.Option(20, "--patience", help="Early-stopping patience, epochs."),
    pressure_weight: float = typer.Option(
        0.0, "--pressure-weight", help="Weight of the pressure (virial) term (0: off)."
    ),
    prior: bool = typer.Option(
        True, "--prior/--no-prior", help="Repulsive pair prior set from the data."
    ),
    validation_fraction: float = typer.Option(
        0.2, "--validation-fraction", help="Fraction of time blocks held out for validation."
    ),
    blocks: int = typer.Option(10, "--blocks", help="Time blocks per run for the split."),
    start: options.StartFrames = 0,
    stride: options.Stride = 1,
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, frame order and split."),
    device: options.Device = "auto",
    overwrite: options.OverwriteRun = False,
    quiet: options.Quiet = False,
) -> None:
    """Train a GNN force field (SchNet or HIP-NN-TS) on mapped all-atom forces."""
    from cgforge.methods.force_data import load_force_data
    from cgforge.workflows.gnn_train import train_model

    hyperparameters: dict[str, Any] = {}
    for key, value in (("cutoff_nm", cutoff), ("width", width), ("n_interactions", interactions)):
        if value is not None:
            hyperparameters[key] = value
    datasets = load_force_data(run_dirs, start=start, stride=stride)
    with stage_progress(not quiet) as progress:

        def on_epoch(record: dict[str, Any]) -> None:
            if progress is not None:
                progress("epochs", int(record["epoch"]), epochs, 0.0)

        summary = train_model(
            datasets,
            out,
            model=model,
            hyperparameters=hyperparameters,
            epochs=epochs,
            batch_frames=batch_frames,
            lr=lr,
            seed=seed,
            device=device,
            lr_schedule=lr_schedule,
            early_stopping_patience=patience,
            validation_fraction=validation_fraction,
            n_blocks=blocks,
            pressure_weight=pressure_weight,
            prior=prior,
            dtype=dtype,
            overwrite=overwrite,
            on_epoch=on_epoch,
        )
    _print_training(summary, out)


def _print_training(summary: dict[str, Any], out: Path) -> None:
    floor = summary["noise_floor"]
    table = Table(title=f"{summary['molecule']} ({summary['model']}) → {out}", show_header=False)
    best_val = summary["best_val_loss"]
    rows = [
        (
            "frames",
            f"{summary['n_frames_train']} training, {summary['n_frames_validation']} validation",
        ),
        ("parameters", f"{summary['n_parameters']}"),
        (
            "epochs",
            f"{summary['epochs_run']} (best {summary['best_epoch']}"
            f"{', stopped early' if summary['stopped_early'] else ''})",
        ),
        (
            "force loss",
            f"{summary['best_train_loss']:.4g} training, "
            f"{'n/a' if best_val is None else f'{best_val:.4g}'} validation (kJ/mol/nm)²",
        ),
        ("pair MS-CG", f"{floor['pair_fm_val_loss']:.4g} (noise-floor bound)"),
        ("zero force", f"{floor['zero_force_val_loss']:.4g}"),
        ("loss / bound", _fmt(summary["loss_over_floor"], "{:.3g}")),
        ("time", f"{summary['train_seconds']:.1f} s on {summary['device']}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def simulate(
    model: Path = typer.Argument(..., help="Model file or `cgforge fm train` directory."),
    out: options.RunOut = ...,
    beads: options.Beads = None,
    temperature: float = typer.Option(
        None, "--temperature", help="Temperature, K (default: reference or training state)."
    ),
    density: float = typer.Option(
        None, "--density", help="Density, g/cm3 (default: reference or training state)."
    ),
    reference: options.Reference = None,
    equilibrate: str = typer.Option(
        "20ps", "--equilibrate", help="Equilibration time (NVT; NPT for --ensemble npt)."
    ),
    production: str = typer.Option("200ps", "--production", help="Production time, e.g. 1ns."),
    timestep: options.Timestep = "5fs",
    sample_every: options.SampleEvery = "0.5ps",
    ensemble: str = typer.Option(
        "nvt",
        "--ensemble",
        help="Production: nvt (Bussi), nve, or npt (Bussi + Monte Carlo barostat).",
    ),
    pressure: float = typer.Option(
        None, "--pressure", help="NPT pressure, bar (default: the reference's, else 1)."
    ),
    seed: options.MDSeed = 0,
    device: options.Device = "auto",
    overwrite: options.OverwriteRun = False,
    quiet: options.Quiet = False,
) -> None:
    """CG molecular dynamics with a trained model: RDF, MSD, D, pressure (vs a reference)."""
    from cgforge.workflows.gnn_md import simulate_model

    path = model_file(model)
    with stage_progress(not quiet) as progress:
        summary = simulate_model(
            path,
            out,
            n_beads=beads,
            temperature_K=temperature,
            density_g_cm3=density,
            production_ps=parse_time_ps(production, what="--production", allow_zero=False),
            equilibration_ps=parse_time_ps(equilibrate, what="--equilibrate"),
            timestep_fs=parse_time_ps(timestep, what="--timestep", allow_zero=False) * 1e3,
            sample_interval_ps=parse_time_ps(sample_every, what="--sample-every", allow_zero=False),
            production_ensemble=ensemble,
            pressure_bar=pressure,
            reference_dir=reference,
            seed=seed,
            device=device,
            overwrite=overwrite,
            progress=progress,
        )
    _print_simulation(summary, out)


def _print_simulation(summary: dict[str, Any], out: Path) -> None:
    table = Table(title=f"CG run → {out}", show_header=False)
    for key, label, fmt in (
        ("temperature_K", "temperature", "{:.2f} K"),
        ("density_g_cm3", "density", "{:.4f} g/cm3"),
        ("pressure_bar", "pressure", "{:.1f} bar"),
        ("diffusion_m2_s", "D", "{:.4g} m2/s"),
        ("acceleration_factor", "D_CG / D_AA", "{:.3g}"),
        ("rdf_deviation", "RDF deviation", "{:.2%}"),
    ):
        value = summary.get(key)
        if isinstance(value, int | float):
            table.add_row(label, fmt.format(value))
    console.print(table)


def transfer(
    model: Path = typer.Argument(
        ...,
        help="Neural model (file or `cgforge fm train` directory) or pair-potential table "
        "(file, or a `cgforge ibi` / `cgforge fm linear` directory with potential.csv).",
    ),
    more_references: list[Path] = typer.Argument(
        None, help="Further reference directories (--references A B C)."
    ),
    references: list[Path] = typer.Option(
        ..., "--references", help="All-atom reference directories: --references A B C."
    ),
    out: Path = typer.Option(..., "--out", help="Directory for the runs and the table."),
    equilibrate: str = typer.Option("20ps", "--equilibrate", help="Equilibration time."),
    production: str = typer.Option("200ps", "--production", help="Production time per state."),
    timestep: options.Timestep = "5fs",
    sample_every: options.SampleEvery = "0.5ps",
    beads: int = typer.Option(
        None, "--beads", help="Number of beads (default: each reference's molecules)."
    ),
    trained_at: list[Path] = typer.Option(
        None,
        "--trained-at",
        help="Reference directories the model was trained on (repeat the option), where its "
        "run directory does not record them.",
    ),
    name: str = typer.Option(None, "--name", help="The model's name in the table."),
    engine: options.CGEngine = "auto",
    npt: bool = typer.Option(
        True, "--npt/--no-npt", help="Also an NPT row at each reference's pressure."
    ),
    seed: options.MDSeed = 0,
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto (neural models)."),
    allow_other_molecules: bool = typer.Option(
        False,
        "--allow-other-molecules",
        help="Also run references of another molecule than the model was trained on.",
    ),
    quiet: options.Quiet = False,
) -> None:
    """Run a model at the state point of every reference: transferability.csv.

    A neural model runs on the torch engine, a pair-potential table on the CG engine
    (--engine): NVT at the reference density and (--npt) NPT at the reference's pressure (the
    torch engine's Monte Carlo barostat for a neural model). State points outside the
    trained temperature/density range are flagged (extrapolated); a state point whose run
    blows up is listed as failed with the reason.
    """
    from cgforge.workflows.gnn_md import transferability_table

    settings: dict[str, Any] = {
        "production_ps": parse_time_ps(production, what="--production", allow_zero=False),
        "equilibration_ps": parse_time_ps(equilibrate, what="--equilibrate"),
        "timestep_fs": parse_time_ps(timestep, what="--timestep", allow_zero=False) * 1e3,
        "sample_interval_ps": parse_time_ps(sample_every, what="--sample-every", allow_zero=False),
        "seed": seed,
        "device": device,
    }
    if beads is not None:
        settings["n_beads"] = beads
    with stage_progress(not quiet) as progress:
        rows = transferability_table(
            model,
            [*references, *(more_references or [])],
            out,
            progress=progress,
            allow_other_molecules=allow_other_molecules,
            trained_at=trained_at or None,
            model_name=name,
            engine=engine,
            ensembles=("nvt", "npt") if npt else ("nvt",),
            **settings,
        )
    table = Table(title=f"transferability → {out / 'transferability.csv'}")
    columns = ("state", "T / K", "ρ / g cm⁻³", "ens.", "status", "trained", "extrap.")
    for column in (*columns, "RDF R²", "ρ err.", "P / bar", "D_CG/D_AA", "notes"):
        table.add_column(column)
    for row in rows:
        extrapolated = row.get("extrapolated")
        table.add_row(
            str(row.get("state") or ""),
            f"{row['temperature_K']:g}",
            f"{row['density_g_cm3']:.4g}",
            str(row.get("ensemble") or ""),
            str(row.get("status", "ok")),
            "yes" if row.get("trained_on") else "no",
            "?" if extrapolated is None else "yes" if extrapolated else "no",
            _fmt(row.get("rdf_r2"), "{:.4f}"),
            _fmt(row.get("density_error"), "{:+.2%}"),
            _fmt(row.get("pressure_bar"), "{:.1f}"),
            _fmt(row.get("acceleration_factor"), "{:.3g}"),
            str(row.get("notes") or ""),
        )
    console.print(table)


def _fmt(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, int | float) else "n/a"


def study(
    run_dirs: options.ForceRunsArgument,
    grid: Path = typer.Option(..., "--grid", help="YAML grid: name: \\[values] (see docs)."),
    out: Path = typer.Option(..., "--out", help="Study directory."),
    device: options.Device = "auto",
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing study."),
    quiet: options.Quiet = False,
) -> None:
    """One GNN training per combination of a hyperparameter grid: study.csv and study.png."""
    from cgforge.workflows.gnn_study import load_grid, run_study

    spec = load_grid(grid)
    with stage_progress(not quiet) as progress:

        def on_combination(index: int, total: int, combo: dict[str, Any]) -> None:
            if progress is not None:
                progress("combinations", index, total, 0.0)

        summary = run_study(
            run_dirs, spec, out, device=device, overwrite=overwrite, on_combination=on_combination
        )
        if progress is not None:
            progress("combinations", summary["n_combinations"], summary["n_combinations"], 0.0)
    table = Table(title=f"study → {out / 'study.csv'}")
    varied = summary["varied"]
    for column in (*varied, "best val loss", "floor bound", "params", "time / s"):
        table.add_column(column)
    for row in summary["results"]:
        table.add_row(
            *(str(row[k]) for k in varied),
            _fmt(row["best_val_loss"], "{:.4g}"),
            _fmt(row["noise_floor"], "{:.4g}"),
            str(row["n_parameters"]),
            _fmt(row["train_seconds"], "{:.1f}"),
        )
    console.print(table)
