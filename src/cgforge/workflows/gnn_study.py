"""Hyperparameter studies of GNN force matching: one training per grid combination.

A grid (a YAML file at the command line) maps names to a value or a list of values; every
combination of the listed values is trained once with
:func:`~cgforge.workflows.gnn_train.train_model` on the same data::

    model: [schnet, hipnn]
    cutoff_nm: [0.8, 1.0]
    width: 32
    n_interactions: [1, 2]
    pressure_weight: [0.0, 1.0e-3]   # loss weight of the virial (pressure) term
    epochs: 50

Names that are training options (:data:`TRAINING_KEYS`: ``model``, ``epochs``,
``batch_frames``, ``lr``, ``pressure_weight`` and the other fields of
:class:`~cgforge.methods.gnn.train.TrainConfig`) go to the trainer; every other name is a
model hyperparameter (``cutoff_nm``, ``width``, ``n_interactions``, ``n_rbf``,
``n_sensitivities``, ``l_max``, ...). A name the chosen model does not take is an error.

Each combination trains into ``OUT/runs/NNN_<hash>/``; rerunning the study skips finished
combinations and resumes an interrupted one. ``OUT/study.csv`` (one row per combination:
its settings, best validation loss, the noise-floor bound of the training module, the loss
over that floor, parameter count, training time; losses in (kJ/mol/nm)² per bead) and
``OUT/study.png`` are rewritten after every combination; ``OUT/summary.json`` is written last.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from cgforge.errors import InputError
from cgforge.fileio import atomic_path, write_text
from cgforge.methods.force_data import ForceDataset, load_force_data
from cgforge.methods.gnn.train import TrainConfig
from cgforge.provenance import collect, normalised_json
from cgforge.rundir import RunDirectory
from cgforge.workflows.gnn_train import train_model

__all__ = ["TRAINING_KEYS", "combinations", "load_grid", "run_study"]

#: Grid names that are training options rather than model hyperparameters.
TRAINING_KEYS = tuple(f.name for f in fields(TrainConfig) if f.name != "hyperparameters")
#: Columns of study.csv after the grid names.
RESULT_COLUMNS = (
    "best_val_loss",
    "best_train_loss",
    "noise_floor",
    "loss_over_floor",
    "zero_force_loss",
    "n_parameters",
    "epochs_run",
    "train_seconds",
)


def load_grid(path: str | Path) -> dict[str, Any]:
    """Read a grid from a YAML file (a mapping of names to a value or a list of values)."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"grid file '{source}' not found; give a YAML file of name: [values]")
    try:
        grid = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"grid file '{source}' is not valid YAML: {exc}") from exc
    if not isinstance(grid, dict) or not grid:
        raise InputError(f"grid file '{source}' must hold a non-empty mapping of name: [values]")
    return grid


def combinations(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """All combinations of the grid's listed values (scalars are fixed), in a stable order."""
    if not isinstance(grid, dict) or not grid:
        raise InputError("the grid must be a non-empty mapping of name: value or [values]")
    names = sorted(grid)
    choices = []
    for name in names:
        value = grid[name]
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not values:
            raise InputError(f"grid entry {name!r} is an empty list; give at least one value")
        for v in values:
            if not (v is None or isinstance(v, bool | int | float | str)):
                raise InputError(
                    f"grid entry {name!r} holds {v!r}; values must be numbers, strings or booleans"
                )
        choices.append(values)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def _split(combo: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    training = {k: v for k, v in combo.items() if k in TRAINING_KEYS}
    model_hp = {k: v for k, v in combo.items() if k not in TRAINING_KEYS}
    return training, model_hp


def _name(index: int, combo: dict[str, Any]) -> str:
    digest = hashlib.sha256(normalised_json(combo).encode()).hexdigest()[:8]
    return f"{index:03d}_{digest}"


def _write_table(path: Path, names: list[str], rows: list[dict[str, Any]]) -> None:
    header = ["combination", *names, *RESULT_COLUMNS]

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.8g}"
        return str(value)

    lines = [",".join(header)]
    lines += [",".join(cell(row.get(key)) for key in header) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def _plot(path: Path, rows: list[dict[str, Any]], varied: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        "\n".join(f"{k}={row[k]}" for k in varied) if varied else row["combination"] for row in rows
    ]
    x = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2.0), 4.5))
    val = [row["best_val_loss"] if row["best_val_loss"] is not None else math.nan for row in rows]
    ax.plot(x, val, "ro", label="best validation loss")
    ax.plot(x, [row["best_train_loss"] for row in rows], "b.", label="training loss (best model)")
    ax.plot(x, [row["noise_floor"] for row in rows], "k_", ms=20, label="pair MS-CG (floor bound)")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("force loss / (kJ mol⁻¹ nm⁻¹)²")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def run_study(
    run_dirs: str | Path | Sequence[str | Path] | Sequence[ForceDataset],
    grid: dict[str, Any],
    out: str | Path,
    *,
    device: str = "cpu",
    overwrite: bool = False,
    on_combination: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train one model per grid combination on the same data; write study.csv and study.png.

    ``run_dirs``: all-atom run directories with forces (or loaded
    :class:`~cgforge.methods.force_data.ForceDataset` objects); ``grid``: see the module
    docstring; ``out``: the study directory; ``device`` for every training;
    ``on_combination(index, total, combo)`` is called before each training. Returns the
    summary (also ``OUT/summary.json``) with one result row per combination.
    """
    if isinstance(run_dirs, ForceDataset):
        datasets: list[ForceDataset] = [run_dirs]
    elif isinstance(run_dirs, str | Path):
        datasets = load_force_data(run_dirs)
    else:
        items = list(run_dirs)
        if items and all(isinstance(d, ForceDataset) for d in items):
            datasets = items
        else:
            datasets = load_force_data(items)
    combos = combinations(grid)
    varied = sorted(k for k, v in grid.items() if isinstance(v, list | tuple) and len(v) > 1)
    config = {
        "method": "GNN force-matching study",
        "grid": {k: grid[k] for k in sorted(grid)},
        "data": [{**ds.state.to_dict(), "n_frames": ds.n_frames} for ds in datasets],
    }
    rundir = RunDirectory(out, config, overwrite=overwrite)
    if rundir.prepare() == "complete":
        return rundir.read_summary()
    out_path = rundir.path
    names = sorted(grid)
    rows: list[dict[str, Any]] = []
    for index, combo in enumerate(combos):
        if on_combination is not None:
            on_combination(index, len(combos), combo)
        training, model_hp = _split(combo)
        name = _name(index, combo)
        summary = train_model(
            datasets,
            out_path / "runs" / name,
            hyperparameters=model_hp,
            device=device,
            **training,
        )
        floor = summary["noise_floor"]
        rows.append(
            {
                "combination": name,
                **combo,
                "best_val_loss": summary["best_val_loss"],
                "best_train_loss": summary["best_train_loss"],
                "noise_floor": floor["pair_fm_val_loss"],
                "loss_over_floor": summary["loss_over_floor"],
                "zero_force_loss": floor["zero_force_val_loss"],
                "n_parameters": summary["n_parameters"],
                "epochs_run": summary["epochs_run"],
                "train_seconds": summary["train_seconds"],
            }
        )
        _write_table(out_path / "study.csv", names, rows)
        _plot(out_path / "study.png", rows, varied)
    finished = [r for r in rows if r["best_val_loss"] is not None]
    best = min(finished, key=lambda r: r["best_val_loss"]) if finished else None
    summary = {
        "source": "cgforge fm study",
        "n_combinations": len(combos),
        "varied": varied,
        "best_combination": best,
        "results": rows,
        "loss_units": "(kJ/mol/nm)^2 per bead",
        "files": {"table": "study.csv", "plot": "study.png", "runs": "runs/"},
        "provenance": collect(config),
    }
    rundir.write_summary(summary)
    return summary
