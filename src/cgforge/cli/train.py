"""``cgforge train mobility|params-to-potential|acceleration`` and ``cgforge predict``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.progress import console, line_progress, stage_progress
from cgforge.errors import InputError
from cgforge.units import parse_time_ps

train_app = typer.Typer(
    help="Train learned CG models on a force-field database (cgforge db).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("predict")(predict)


@contextlib.contextmanager
def _epoch_progress(enabled: bool) -> Iterator[Any]:
    """A callback ``(label, epoch, max_epochs)`` that drives one bar per network member."""
    if not enabled:
        yield None
        return
    if not console.is_terminal:  # a log: lines at the start and each quarter of a member
        lines = line_progress(unit="epochs")

        def line(label: str, done: int, total: int) -> None:
            lines(label, done, total, 0.0)

        yield line
        return
    progress = Progress(
        TextColumn("[bold]{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, Any] = {}

    def callback(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=max(total, 1))
        progress.update(tasks[label], completed=done, total=max(total, 1))

    with progress:
        yield callback


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise InputError(
            f"--hidden must be comma-separated layer widths, e.g. 128,128; got {text!r}"
        )
    return widths


def _config(
    folds: int, epochs: int, patience: int, seed: int, hidden: str, learning_curve: bool
) -> Any:
    from cgforge.methods.mobility.network import EnsembleTrainConfig

    defaults = EnsembleTrainConfig()
    return EnsembleTrainConfig(
        folds=folds,
        max_epochs=epochs,
        patience=patience,
        seed=seed,
        hidden=_hidden(hidden),
        learning_curve=defaults.learning_curve if learning_curve else (),
    )


DATABASE = typer.Argument(..., help="Force-field database (cgforge db).")
MODEL_OUT = typer.Option(..., "--out", help="Model directory to write.")
MOLECULE = typer.Option(
    None, "--molecule", help="Molecule to train on (needed if the database has several)."
)
FOLDS = typer.Option(5, "--folds", help="Ensemble members = cross-validation folds.")
EPOCHS = typer.Option(2000, "--epochs", help="Maximum training epochs per member.")
PATIENCE = typer.Option(100, "--patience", help="Early stopping: epochs without improvement.")
SEED = typer.Option(0, "--seed", help="Seed of folds, initialisation and shuffling.")
HIDDEN = typer.Option("128,128", "--hidden", help="Hidden layer widths, comma-separated.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing model in --out.")
LEARNING_CURVE = typer.Option(
    True, "--learning-curve/--no-learning-curve", help="Also train on subsets for the curve."
)


def _print_network_summary(manifest: dict[str, Any], out: Path) -> None:
    metrics = manifest["metrics"]
    data = manifest["training_data"]
    table = Table(title=f"{manifest['kind']} model → {out}", show_header=False)
    table.add_row("records", f"{data['n_records']} ({data.get('n_groups', '?')} potentials)")
    if data.get("skipped"):
        table.add_row("skipped", ", ".join(f"{k}: {v}" for k, v in data["skipped"].items()))
    table.add_row(
        "validation loss",
        f"{metrics['val_loss']:.4g} (predicting the mean: {metrics['baseline_val_loss']:.4g})",
    )
    if "rmse_kj_mol" in metrics:
        table.add_row(
            "U error (held out)",
            f"RMSE {metrics['rmse_kj_mol']:.3g} kJ/mol, R² {metrics['r2']:.3f} (mean: RMSE "
            f"{metrics['baseline_rmse_kj_mol']:.3g})",
        )
    console.print(table)


def _train_network(
    train: Any,
    database: Path,
    out: Path,
    config: Any,
    *,
    overwrite: bool,
    quiet: bool,
    **kwargs: Any,
) -> dict[str, Any]:
    """Train a network model with ``train`` (a :mod:`cgforge.workflows.train` function), with
    progress bars unless ``quiet``, and print its summary; returns its manifest."""
    with _epoch_progress(not quiet) as progress:
        manifest = train(database, out, config, **kwargs, overwrite=overwrite, progress=progress)
    _print_network_summary(manifest, out)
    return manifest


@train_app.command("mobility")
def train_mobility_command(
    database: Path = DATABASE,
    out: Path = MODEL_OUT,
    folds: int = FOLDS,
    epochs: int = EPOCHS,
    patience: int = PATIENCE,
    seed: int = SEED,
    hidden: str = HIDDEN,
    learning_curve: bool = LEARNING_CURVE,
    stages: str = typer.Option(
        "A,B,C",
        "--stages",
        help="Record kinds to learn from, comma-separated: A (IBI potentials), B (other masses), "
        "C (perturbed potentials).",
    ),
    overwrite: bool = OVERWRITE,
    quiet: options.Quiet = False,
) -> None:
    """Mobility network: (bead mass, D, g(r)) → U(r), from stage-A, -B and -C records."""
    from cgforge.workflows.train import train_mobility

    config = _config(folds, epochs, patience, seed, hidden, learning_curve)
    chosen = [x for x in stages.split(",") if x.strip()]
    _train_network(
        train_mobility, database, out, config, overwrite=overwrite, quiet=quiet, stages=chosen
    )


@train_app.command("params-to-potential")
def train_params_command(
    database: Path = DATABASE,
    out: Path = MODEL_OUT,
    molecule: str = MOLECULE,
    target: str = typer.Option(
        "ibi",
        "--target",
        help="ibi: parameters → own IBI potential; pairs: → potential with matching CG dynamics.",
    ),
    tolerance: float = typer.Option(
        0.1, "--tolerance", help="pairs: relative tolerance of D_CG(j) = D_AA(i)."
    ),
    folds: int = FOLDS,
    epochs: int = EPOCHS,
    patience: int = PATIENCE,
    seed: int = SEED,
    hidden: str = HIDDEN,
    learning_curve: bool = LEARNING_CURVE,
    overwrite: bool = OVERWRITE,
    quiet: options.Quiet = False,
) -> None:
    """All-atom bonded parameters → CG potential (one molecule's stage-A records)."""
    from cgforge.workflows.train import train_params_to_potential

    config = _config(folds, epochs, patience, seed, hidden, learning_curve)
    manifest = _train_network(
        train_params_to_potential,
        database,
        out,
        config,
        overwrite=overwrite,
        quiet=quiet,
        molecule=molecule,
        target=target,
        tolerance=tolerance,
    )
    if "pairs" in manifest:
        console.print(f"pairs used: {manifest['pairs']['n_pairs']}")


@train_app.command("acceleration")
def train_acceleration_command(
    database: Path = DATABASE,
    out: Path = MODEL_OUT,
    molecule: str = MOLECULE,
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Held-out test share."),
    trees: int = typer.Option(300, "--trees", help="Trees of the random forest."),
    folds: int = FOLDS,
    epochs: int = EPOCHS,
    patience: int = PATIENCE,
    seed: int = SEED,
    hidden: str = typer.Option("64,64", "--hidden", help="Hidden layer widths, comma-separated."),
    overwrite: bool = OVERWRITE,
    quiet: options.Quiet = False,
) -> None:
    """(Bonded parameters, D_AA) → acceleration factor: random forest and network."""
    from cgforge.workflows.train import train_acceleration

    config = _config(folds, epochs, patience, seed, hidden, False)
    with _epoch_progress(not quiet) as progress:
        manifest = train_acceleration(
            database,
            out,
            config,
            molecule=molecule,
            test_fraction=test_fraction,
            n_trees=trees,
            overwrite=overwrite,
            progress=progress,
        )
    test = manifest["metrics"]["test"]
    table = Table(title=f"acceleration model ({manifest['molecule']}) → {out}")
    table.add_column("test set")
    table.add_column("R²")
    table.add_column("MAE of D_CG/D_AA")
    for name in ("random_forest", "network", "mean"):
        table.add_row(name.replace("_", " "), f"{test[name]['r2']:.3f}", f"{test[name]['mae']:.3g}")
    console.print(table)


def predict(
    reference: options.ReferenceArgument,
    model: Path = typer.Option(
        None,
        "--model",
        help="Mobility model (cgforge train mobility); default: the model shipped with cgforge.",
    ),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    beads: int = typer.Option(
        None,
        "--beads",
        help="CG beads (default: the reference's molecules, or more where the potential's "
        "cutoff needs a larger box).",
    ),
    equilibrate: str = typer.Option("20ps", "--equilibrate", help="NPT equilibration of CG MD."),
    production: str = typer.Option("100ps", "--production", help="CG production, e.g. 500ps."),
    timestep: options.CGTimestep = "5fs",
    platform: options.Platform = "auto",
    engine: options.CGEngine = "auto",
    threads: options.CGThreads = 1,
    seed: options.MDSeed = 0,
    md: bool = typer.Option(True, "--md/--no-md", help="Run CG MD with the prediction."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing CG run."),
    quiet: options.Quiet = False,
) -> None:
    """Predict a mobility-preserving CG potential for an all-atom reference, then test it."""
    from cgforge.workflows.predict import run_predict

    with stage_progress(not quiet and md) as progress:
        summary = run_predict(
            reference,
            model,
            out,
            n_beads=beads,
            equilibration_ps=parse_time_ps(equilibrate, what="--equilibrate"),
            production_ps=parse_time_ps(production, what="--production", allow_zero=False),
            timestep_fs=parse_time_ps(timestep, what="--timestep", allow_zero=False) * 1e3,
            platform=platform,
            seed=seed,
            run_md=md,
            overwrite=overwrite,
            progress=progress,
            engine=engine,
            cg_threads=threads,
        )
    for reason in summary["ood_reasons"]:
        console.print(
            f"[yellow]warning:[/] out of the training distribution: {escape(reason)}",
            highlight=False,
        )
    if summary["status"] == "failed":
        console.print(f"[bold red]failed:[/] {escape(summary['reason'])}", highlight=False)
        raise typer.Exit(1)
    table = Table(title=f"{summary['molecule']} → {out}", show_header=False)
    band = summary["prediction"]
    table.add_row("potential", f"{out / summary['files']['potential']}")
    table.add_row(
        "uncertainty",
        f"mean ± {band['u_std_mean_kj_mol']:.3g} kJ/mol (max ± {band['u_std_max_kj_mol']:.3g})",
    )
    if summary["status"] == "ok":
        cg = summary["cg"]
        ref = summary["reference"]
        table.add_row("D all-atom", f"{ref['diffusion_m2_s']:.4g} m2/s")
        table.add_row("D CG", f"{cg['diffusion_m2_s']:.4g} ± {cg['diffusion_err_m2_s']:.2g} m2/s")
        if summary.get("acceleration_factor") is not None:
            table.add_row("D_CG / D_AA", f"{summary['acceleration_factor']:.3g}")
        if summary.get("rdf_deviation") is not None:
            table.add_row("RDF deviation", f"{summary['rdf_deviation']:.2%}")
        table.add_row("report", str(out / "report.html"))
    console.print(table)
