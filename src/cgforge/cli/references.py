"""``cgforge references``: the shipped all-atom references of the eight benchmark liquids."""

from __future__ import annotations

import json

import typer

from cgforge.cli.progress import console


def register(app: typer.Typer) -> None:
    app.command("references")(references)


def _num(value: object, spec: str) -> str:
    return "-" if not isinstance(value, int | float) else format(value, spec)


def references(
    as_json: bool = typer.Option(False, "--json", help="Print the summaries as JSON."),
) -> None:
    """List the shipped all-atom references (usable by name in compare, predict, ibi)."""
    from rich.table import Table

    from cgforge.molecules.library import get_builtin
    from cgforge.workflows.references import shipped_references

    found = shipped_references()
    if as_json:
        typer.echo(json.dumps(found, indent=1))
        return
    if not found:
        console.print("no shipped references in this installation")
        return
    table = Table(title="shipped all-atom references (OPLS-AA)")
    for column in (
        "name",
        "molecules",
        "box nm",
        "T K",
        "P bar",
        "density g/cm3",
        "exp.",
        "D 1e-9 m2/s",
        "production ps",
    ):
        table.add_column(column, justify="left" if column == "name" else "right")
    for s in found:
        box = s.get("box_nm")
        edge = box[0] if isinstance(box, list) else box
        d, d_err = s.get("diffusion_m2_s"), s.get("diffusion_err_m2_s")
        table.add_row(
            s["molecule"],
            str(s.get("n_molecules")),
            _num(edge, ".3f"),
            _num(s.get("temperature_K"), ".2f"),
            _num(s.get("pressure_target_bar"), ".1f"),
            f"{_num(s.get('density_g_cm3'), '.4f')} ± {_num(s.get('density_err_g_cm3'), '.4f')}",
            _num(get_builtin(s["molecule"]).density_g_cm3, ".4f"),
            f"{_num(d * 1e9 if d else None, '.3f')} ± {_num(d_err * 1e9 if d_err else None, '.3f')}",
            _num(s.get("production_ps"), ".0f"),
        )
    console.print(table)
