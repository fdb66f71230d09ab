"""``cgforge compare``: IBI, ML-predicted, friction and time-rescaled CG models side by side."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cgforge.cli import options
from cgforge.cli.progress import console, stage_progress


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


def _cell(value: object, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def compare(
    reference: options.ReferenceArgument,
    out: Path = typer.Option(..., "--out", help="Directory for the methods and the comparison."),
    methods: str = typer.Option(
        "ibi,ml,friction,rescale", "--methods", help="Comma-separated: ibi, ml, friction, rescale."
    ),
    model: Path = typer.Option(None, "--model", help="Trained mobility model directory (ml)."),
    preset: options.Preset = "quick",
    alpha: float = typer.Option(
        None,
        "--alpha",
        help="Predicted acceleration factor for rescale (default: measured on the IBI run).",
    ),
    alpha_err: float = typer.Option(0.0, "--alpha-err", help="Standard error of --alpha."),
    alpha_model: Path = typer.Option(
        None,
        "--alpha-model",
        help="Acceleration model (cgforge train acceleration, trained on this molecule) that "
        "predicts the alpha of rescale from the molecule's bonded parameters and D_AA.",
    ),
    platform: options.Platform = "auto",
    engine: options.CGEngine = "auto",
    threads: options.CGThreads = 1,
    seed: int = typer.Option(0, "--seed", help="Seed of every CG run."),
    quiet: options.Quiet = False,
) -> None:
    """Run the CG methods on one all-atom reference; write comparison.csv and comparison.png."""
    from cgforge.workflows.compare import run_compare

    predicted = None if alpha is None else (alpha, alpha_err)
    if alpha_model is not None:
        from cgforge.errors import InputError
        from cgforge.workflows.cg import load_reference
        from cgforge.workflows.predict import predicted_acceleration

        if alpha is not None:
            raise InputError(
                "give --alpha or --alpha-model, not both", parameters=("alpha", "alpha_model")
            )
        prediction = predicted_acceleration(alpha_model, load_reference(reference))
        predicted = (prediction["alpha"], prediction["alpha_err"])
        console.print(
            f"predicted alpha {prediction['alpha']:.3g} ± {prediction['alpha_err']:.2g} "
            f"(random forest {prediction['random_forest']:.3g})",
            highlight=False,
        )
        for reason in prediction["ood_reasons"]:
            console.print(
                f"[yellow]warning:[/] out of the acceleration model's training distribution: "
                f"{reason}",
                highlight=False,
            )
    with stage_progress(not quiet) as progress:
        result = run_compare(
            reference,
            out,
            methods=methods,
            preset=preset,
            model_dir=model,
            alpha_model=predicted,
            seed=seed,
            platform=platform,
            progress=progress,
            engine=engine,
            cg_threads=threads,
        )
    table = Table(title=f"{result['molecule']}: CG methods → {out}", show_header=True)
    for column in ("method", "status", "D_CG/D_AA", "RDF R²", "RDF deviation", "density error"):
        table.add_column(column)
    for row in result["rows"]:
        factor = row.get("acceleration_factor")
        error = row.get("acceleration_factor_err")
        table.add_row(
            row["method"],
            row["status"],
            "-" if factor is None else f"{factor:.3g} ± {_cell(error, '.2g')}",
            _cell(row.get("rdf_r2"), ".4f"),
            _cell(row.get("rdf_deviation"), ".2%"),
            _cell(row.get("density_error"), "+.2%"),
        )
    console.print(table)
    for row in result["rows"]:
        if row["status"] != "ok" and row.get("notes"):
            console.print(f"{row['method']}: {row['notes']}", highlight=False, markup=False)
    console.print(f"table: {Path(out) / 'comparison.csv'}, figure: {Path(out) / 'comparison.png'}")
    failed = [row["method"] for row in result["rows"] if row["status"] == "failed"]
    if failed and len(failed) == len(result["rows"]):
        from cgforge.errors import SimulationError

        raise SimulationError(
            f"every requested method failed ({', '.join(failed)}); see the reasons above and "
            f"in {Path(out) / 'comparison.csv'}"
        )
