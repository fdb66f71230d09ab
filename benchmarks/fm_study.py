"""The GNN study on 3-methylpentane at 298.15 K: which settings make a good CG force field.

One SchNet-like model per setting, trained by force matching (``cgforge fm train``) on the
shipped 298.15 K state point (``benchmarks/data/fm_states/3-methylpentane/298K``: 216 molecules,
mapped forces every 0.5 ps; every ``--frame-stride``-th frame, validation by time blocks), then
run in NVT at the all-atom density on the torch engine (``cgforge fm transfer``). The settings
vary one at a time around a base (``BASE``: cutoff 1.0 nm, width 64, 2 interaction layers,
forces-only loss):

* cutoff 0.8, 1.0, 1.2 nm;
* width (features per bead) 32, 64, 128;
* interaction layers 1, 2, 3;
* loss: forces only, or forces + pressure (``pressure_weight`` 1: the virial term of
  :mod:`cgforge.methods.gnn.train`, matched to the all-atom mean pressure).

Per setting: the best validation force loss against the noise-floor bound (the validation loss
of a pair MS-CG fit on the same frames; (kJ/mol/nm)² per bead), the number of parameters, the
training time, and from the NVT run the RDF R² and deviation against the all-atom g(r), the
pressure and its error against the all-atom pressure, D_CG/D_AA, and the MD time.

Resumable: each training and each run resumes from its run directory (``--workdir``), and the
results file is rewritten after every setting::

    python benchmarks/fm_study.py --workdir /path/to/runs/fm_study
    python benchmarks/fm_study.py --settings base,cutoff-0.8   # a subset

Results: ``benchmarks/results/fm_study.{json,csv,png}`` (machine, load, versions, command).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "fm_states" / "3-methylpentane" / "298K"
WORKDIR = ROOT / "runs" / "fm_study"
RESULTS = ROOT / "benchmarks" / "results" / "fm_study.json"
MODEL = "schnet"
#: The base setting: model hyperparameters and the loss's pressure weight.
BASE: dict[str, Any] = {"cutoff_nm": 1.0, "width": 64, "n_interactions": 2, "pressure_weight": 0.0}
#: One axis at a time: name → the values tried (the base value among them).
AXES: dict[str, tuple[Any, ...]] = {
    "cutoff_nm": (0.8, 1.0, 1.2),
    "width": (32, 64, 128),
    "n_interactions": (1, 2, 3),
    "pressure_weight": (0.0, 1.0),
}
SHORT = {"cutoff_nm": "cutoff", "width": "width", "n_interactions": "layers",
         "pressure_weight": "pressure"}  # fmt: skip
COLUMNS = (
    "setting", "axis", "cutoff_nm", "width", "n_interactions", "pressure_weight", "status",
    "n_parameters", "epochs_run", "best_epoch", "best_val_loss", "noise_floor_val_loss",
    "zero_force_val_loss", "loss_over_floor", "val_pressure_residual_kj_mol_nm",
    "train_seconds", "rdf_r2", "rdf_deviation", "pressure_bar", "pressure_err_bar",
    "reference_pressure_bar", "pressure_error_bar", "diffusion_m2_s",
    "reference_diffusion_m2_s", "acceleration_factor", "acceleration_factor_err",
    "temperature_measured_K", "md_seconds", "md_steps_per_s", "notes",
)  # fmt: skip


def settings() -> dict[str, dict[str, Any]]:
    """The settings in a fixed order: ``base`` first, then each axis's other values."""
    out: dict[str, dict[str, Any]] = {"base": {"axis": "base", **BASE}}
    for axis, values in AXES.items():
        for value in values:
            if value == BASE[axis]:
                continue
            out[f"{SHORT[axis]}-{value:g}"] = {"axis": axis, **BASE, axis: value}
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def run_setting(name: str, setting: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Train and run one setting; its row (``status`` failed with the reason on an error)."""
    from cgforge.errors import CGForgeError
    from cgforge.methods.force_data import load_force_data
    from cgforge.workflows.gnn_md import transferability_table
    from cgforge.workflows.gnn_train import train_model

    row: dict[str, Any] = {"setting": name, **setting}
    hyper = {k: setting[k] for k in ("cutoff_nm", "width", "n_interactions")}
    try:
        datasets = load_force_data([args.data], stride=args.frame_stride)
        summary = train_model(
            datasets,
            args.workdir / "models" / name,
            model=MODEL,
            hyperparameters=hyper,
            pressure_weight=float(setting["pressure_weight"]),
            epochs=args.epochs,
            seed=args.seed,
            device=args.device,
        )
    except CGForgeError as exc:
        return {**row, "status": "failed", "notes": f"training: {' '.join(str(exc).split())}"}
    floor = summary.get("noise_floor") or {}
    row.update(
        n_parameters=summary.get("n_parameters"),
        epochs_run=summary.get("epochs_run"),
        best_epoch=summary.get("best_epoch"),
        best_val_loss=summary.get("best_val_loss"),
        noise_floor_val_loss=floor.get("pair_fm_val_loss"),
        zero_force_val_loss=floor.get("zero_force_val_loss"),
        loss_over_floor=summary.get("loss_over_floor"),
        val_pressure_residual_kj_mol_nm=summary.get("val_pressure_residual_kj_mol_nm"),
        train_seconds=summary.get("train_seconds"),
    )
    model_path = args.workdir / "models" / name / "model.pt"
    try:
        (result,) = transferability_table(
            model_path,
            [args.data],
            args.workdir / "md" / name,
            trained_at=[args.data],
            model_name=name,
            ensembles=("nvt",),
            production_ps=args.production_ps,
            equilibration_ps=args.equilibration_ps,
            timestep_fs=args.timestep_fs,
            seed=args.seed,
            device=args.device,
        )
    except CGForgeError as exc:
        return {**row, "status": "failed", "notes": f"MD: {' '.join(str(exc).split())}"}
    for key in COLUMNS:
        if key in result and key not in ("setting", "notes"):
            row[key] = result[key]
    row["status"] = result.get("status")
    row["notes"] = result.get("notes") or ""
    row["md_seconds"] = result.get("wall_s")
    steps = (args.equilibration_ps + args.production_ps) / (args.timestep_fs * 1e-3)
    if _finite(row["md_seconds"]) and row["md_seconds"] > 0:
        row["md_steps_per_s"] = steps / row["md_seconds"]
    return row


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    import csv
    import io

    from cgforge.fileio import write_text

    def cell(value: Any) -> str:
        if value is None:
            return ""
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([cell(r.get(c)) for c in COLUMNS] for r in rows)
    write_text(path, buffer.getvalue())


def plot(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get("status") == "ok"]
    if not done:
        return
    names = [r["setting"] for r in done]
    x = range(len(done))
    panels = (
        ("loss_over_floor", "force loss / noise-floor bound", 1.0),
        ("rdf_r2", "RDF R² (NVT, 298 K)", 0.98),
        ("pressure_error_bar", "pressure error, bar", 0.0),
        ("acceleration_factor", "D_CG / D_AA", 1.0),
        ("train_seconds", "training time, s", None),
        ("md_steps_per_s", "MD steps/s (216 beads)", None),
    )
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5), sharex=True)
    for ax, (key, label, line) in zip(axes.flat, panels, strict=True):
        values = [r.get(key) if _finite(r.get(key)) else math.nan for r in done]
        ax.bar(x, values, color=["C0" if r["axis"] == "base" else "C1" for r in done])
        if line is not None:
            ax.axhline(line, color="k", lw=0.8, ls="--")
        ax.set_ylabel(label)
        if key == "rdf_r2":
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                ax.set_ylim(min(min(finite), 0.97) - 0.005, 1.0)
        if key == "loss_over_floor":
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                ax.set_ylim(min(min(finite), 0.98) - 0.01, max(max(finite), 1.02) + 0.01)
    for ax in axes[-1]:
        ax.set_xticks(list(x), names, rotation=60, ha="right")
    fig.suptitle("SchNet force matching, 3-methylpentane 298.15 K: one setting changed at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    all_settings = settings()
    parser.add_argument("--settings", help=f"comma-separated subset of {', '.join(all_settings)}")
    parser.add_argument("--epochs", type=int, default=100, help="most epochs per training")
    parser.add_argument("--frame-stride", type=int, default=5, help="train on every k-th frame")
    parser.add_argument("--production", default="100ps", help="NVT production per setting")
    parser.add_argument("--equilibrate", default="20ps", help="NVT equilibration per setting")
    parser.add_argument("--timestep", default="5fs", help="CG time step")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replace", action="store_true", help="rerun the selected settings")
    parser.add_argument("--data", type=Path, default=DATA, help="the 298.15 K state point")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    from cgforge.fileio import write_json
    from cgforge.units import parse_time_ps

    args.production_ps = parse_time_ps(args.production, what="--production", allow_zero=False)
    args.equilibration_ps = parse_time_ps(args.equilibrate, what="--equilibrate")
    args.timestep_fs = parse_time_ps(args.timestep, what="--timestep", allow_zero=False) * 1e3
    if args.frame_stride < 1 or args.epochs < 1:
        parser.error("--frame-stride and --epochs must be >= 1")
    if (
        not (args.data / "summary.json").is_file()
        or not (args.data / "cg_trajectory.npz").is_file()
    ):
        parser.error(
            f"no state point with mapped forces at {args.data}; see benchmarks/fm_states.py"
        )
    chosen = list(all_settings)
    if args.settings:
        chosen = [s.strip() for s in args.settings.split(",") if s.strip()]
        unknown = [s for s in chosen if s not in all_settings]
        if unknown:
            parser.error(f"unknown setting(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(all_settings)}")  # fmt: skip

    import torch

    torch.set_num_threads(max(1, args.threads))
    previous = json.loads(args.results.read_text()) if args.results.is_file() else {}
    rows = {r["setting"]: r for r in previous.get("rows", [])}
    commands = list(previous.get("commands", []))
    command = "python benchmarks/fm_study.py " + shlex.join(sys.argv[1:])
    commands.append(command)
    load_before = os.getloadavg()
    for name in chosen:
        if name in rows and rows[name].get("status") == "ok" and not args.replace:
            print(f"{name}: done", flush=True)
            continue
        print(f"== {name}: {all_settings[name]}", flush=True)
        tic = time.perf_counter()
        row = run_setting(name, all_settings[name], args)
        row["command"] = command
        rows[name] = row
        print(
            f"   {row.get('status')}: loss/floor {row.get('loss_over_floor')}, "
            f"RDF R² {row.get('rdf_r2')}, P {row.get('pressure_bar')} bar, "
            f"D_CG/D_AA {row.get('acceleration_factor')} ({time.perf_counter() - tic:.0f} s)"
            + (f" — {row['notes']}" if row.get("notes") else ""),
            flush=True,
        )
        ordered = [rows[s] for s in all_settings if s in rows]
        result = {
            "benchmark": "fm_study",
            "molecule": "3-methylpentane",
            "state": "298.15 K, 1 bar, 216 molecules (all-atom density, NVT)",
            "model": MODEL,
            "base": BASE,
            "axes": {k: list(v) for k, v in AXES.items()},
            "settings": {
                "epochs": args.epochs,
                "frame_stride": args.frame_stride,
                "production_ps": args.production_ps,
                "equilibration_ps": args.equilibration_ps,
                "timestep_fs": args.timestep_fs,
                "device": args.device,
                "torch_threads": args.threads,
                "seed": args.seed,
                "data": _rel(args.data),
            },
            "loss_units": "(kJ/mol/nm)^2 per bead (mean of |F_model - F_mapped|^2)",
            "commands": commands,
            "machine": describe_machine(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "rows": ordered,
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.results, result)
        write_csv(args.results.with_suffix(".csv"), ordered)
        plot(args.results.with_suffix(".png"), ordered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
