"""Force-matching transferability: every CG model of 3-methylpentane at every all-atom state point.

The all-atom state points are those ``benchmarks/fm_states.py`` ships to
``benchmarks/data/fm_states/3-methylpentane/<label>/`` (298K, 260K, 340K at 1 bar and 298K-dense5,
+5 % density in NVT; 216 molecules, 1,000 frames of mapped forces each); one not shipped yet is
skipped with a printed note. The models (each trained resumably in ``WORKDIR/models/<model>``):

* ``ibi-298K``: IBI against the 298K reference (structure baseline, ``cgforge ibi``);
* ``linear-298K``, ``linear-260K+340K``: linear MS-CG pair tables (``cgforge fm linear``);
* ``schnet-298K``, ``schnet-260K+340K``, ``hipnn-298K``, ``hipnn-260K+340K``: GNNs
  (``cgforge fm train --model schnet|hipnn``) on the mapped forces of those state points.

Each model then runs at each state point with
:func:`cgforge.workflows.gnn_md.transferability_table` (``WORKDIR/transfer/<model>/<state>``,
resumable): an NVT row at the AA density and an NPT row at the AA barostat pressure, tables on
the CG engine (LAMMPS by default), GNNs on the torch engine (its Monte Carlo barostat for the
NPT row). Training frames: every ``--frame-stride``-th frame.

Results: ``benchmarks/results/transferability.{json,csv,png}``. A rerun merges: rows already in
the JSON are kept and only missing model × state pairs run (``--replace`` reruns the selected
ones), so the study can be run in pieces. A row with status ``not run`` (the GNN NPT rows of
results from before the torch engine had a barostat) counts as missing: a plain rerun runs it,
and only it (a pair runs the ensembles it lacks)::

    python benchmarks/transferability.py --models ibi,linear            # the pair tables
    python benchmarks/transferability.py --models schnet-298K --epochs 100 --frame-stride 5
    python benchmarks/transferability.py --models hipnn --states 298K 260K

The JSON records the machine, the load average, the settings, each command that added rows,
each model's training metrics (GNN: force loss against the pair-MS-CG noise-floor bound;
linear: residuals; IBI: iterations and RDF deviation) and the claim under test: HIP-NN-TS
trained at one temperature reproduces the structure at the others (RDF R² >= 0.98) better than
the pair models.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data" / "fm_states" / "3-methylpentane"
WORKDIR = ROOT / "runs" / "transferability"
RESULTS = ROOT / "benchmarks" / "results" / "transferability.json"
MOLECULE = "3-methylpentane"
#: State points in plotting order (temperature, then density).
STATES = ("260K", "298K", "298K-dense5", "340K")
#: The models: name → method and the state points it is trained on.
MODELS: dict[str, dict[str, Any]] = {
    "ibi-298K": {"method": "ibi", "train": ["298K"]},
    "linear-298K": {"method": "linear", "train": ["298K"]},
    "linear-260K+340K": {"method": "linear", "train": ["260K", "340K"]},
    "schnet-298K": {"method": "schnet", "train": ["298K"]},
    "schnet-260K+340K": {"method": "schnet", "train": ["260K", "340K"]},
    "hipnn-298K": {"method": "hipnn", "train": ["298K"]},
    "hipnn-260K+340K": {"method": "hipnn", "train": ["260K", "340K"]},
}
PAIR_METHODS = ("ibi", "linear")
#: The structure criterion of the claim.
R2_CRITERION = 0.98
#: Row key: one row per model, state point and ensemble.
ROW_KEY = ("model", "state", "ensemble")
#: ``status`` of a row that holds no result (GNN NPT rows before the torch engine's barostat).
NOT_RUN = "not run"
#: The ensembles of every model × state pair: NVT at the AA density, NPT at the AA pressure.
ENSEMBLES = ("nvt", "npt")


# ====================================================================== rows (pure)
def _key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k)) for k in ROW_KEY)


def _not_run(row: dict[str, Any]) -> bool:
    return str(row.get("status")) == NOT_RUN


def merge_rows(
    existing: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]], *, replace: bool = False
) -> list[dict[str, Any]]:
    """``existing`` rows with ``new`` ones merged by (model, state, ensemble): an existing row
    is kept unless its status is ``not run`` (``replace``: the new one always takes its place),
    a new key is appended; order kept."""
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in existing:
        merged[_key(row)] = row
    for row in new:
        key = _key(row)
        if key not in merged or replace or _not_run(merged[key]):
            merged[key] = row
    return list(merged.values())


def missing_pairs(
    models: Sequence[str],
    states: Sequence[str],
    rows: Iterable[dict[str, Any]],
    *,
    replace: bool = False,
) -> list[tuple[str, str]]:
    """The (model, state) pairs with no row yet, or with a ``not run`` row (all of them with
    ``replace``); a failed row counts as a result."""
    rows = list(rows)
    done = {(str(r.get("model")), str(r.get("state"))) for r in rows}
    done -= {(str(r.get("model")), str(r.get("state"))) for r in rows if _not_run(r)}
    return [(m, s) for m in models for s in states if replace or (m, s) not in done]


def missing_ensembles(
    model: str, state: str, rows: Iterable[dict[str, Any]], *, replace: bool = False
) -> tuple[str, ...]:
    """The ensembles of (model, state) to run: those without a row or with a ``not run`` row
    (all with ``replace``)."""
    have = {
        str(r.get("ensemble"))
        for r in rows
        if str(r.get("model")) == model and str(r.get("state")) == state and not _not_run(r)
    }
    return tuple(e for e in ENSEMBLES if replace or e not in have)


def select_models(spec: str | None) -> list[str]:
    """Model names from ``--models``: names or methods (``ibi``, ``linear``, ``schnet``,
    ``hipnn``), comma-separated; all without."""
    if not spec:
        return list(MODELS)
    chosen: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        names = (
            [token] if token in MODELS else [n for n, m in MODELS.items() if m["method"] == token]
        )
        if not names:
            raise SystemExit(
                f"unknown model {token!r}; use {', '.join(MODELS)} or a method "
                f"({', '.join(sorted({m['method'] for m in MODELS.values()}))})"
            )
        chosen += [n for n in names if n not in chosen]
    return chosen


def claim(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per model: RDF R² (NVT rows) at state points it was not trained on, and whether all
    reach :data:`R2_CRITERION`; then whether HIP-NN-TS trained at 298 K beats the pair
    models trained there."""
    per_model: dict[str, dict[str, Any]] = {}
    for name in MODELS:
        untrained = {
            str(r["state"]): r.get("rdf_r2")
            for r in rows
            if r.get("model") == name
            and r.get("ensemble") == "nvt"
            and not _truthy(r.get("trained_on"))
        }
        values = [v for v in untrained.values() if _finite(v)]
        if not untrained:
            continue
        per_model[name] = {
            "rdf_r2_untrained": untrained,
            "min_rdf_r2_untrained": min(values) if values else None,
            "all_ge_criterion": bool(values)
            and len(values) == len(untrained)
            and min(values) >= R2_CRITERION,
        }
    hip = per_model.get("hipnn-298K", {}).get("min_rdf_r2_untrained")
    pairs = {
        n: per_model[n]["min_rdf_r2_untrained"]
        for n in ("ibi-298K", "linear-298K")
        if n in per_model and per_model[n]["min_rdf_r2_untrained"] is not None
    }
    verdict = None
    if hip is not None and pairs:
        verdict = bool(hip >= R2_CRITERION and all(hip > v for v in pairs.values()))
    return {
        "statement": "HIP-NN-TS trained at one temperature reproduces the structure at the "
        f"others (RDF R² >= {R2_CRITERION}) better than pair models do",
        "criterion_rdf_r2": R2_CRITERION,
        "models": per_model,
        "hipnn_298K_min_rdf_r2": hip,
        "pair_298K_min_rdf_r2": pairs,
        "holds": verdict,
    }


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ====================================================================== training
def shipped(data: Path, label: str) -> Path | None:
    """The shipped state point ``label`` (summary.json and mapped data present), else None."""
    path = data / label
    ok = (path / "summary.json").is_file() and (path / "cg_trajectory.npz").is_file()
    return path if ok else None


def train(name: str, dirs: list[Path], args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """Train (or resume, or read) model ``name`` on ``dirs``; (its model path, its metrics)."""
    method = MODELS[name]["method"]
    out = args.workdir / "models" / name
    tic = time.perf_counter()
    if method == "ibi":
        from cgforge.methods.ibi import IBIConfig
        from cgforge.workflows.cg import run_ibi_from_reference

        config = IBIConfig(max_iterations=args.ibi_iterations, engine=args.engine, seed=args.seed)
        summary = run_ibi_from_reference(
            dirs[0],
            out,
            config,
            equilibration_ps=args.equilibration_ps,
            production_ps=args.production_ps,
        )
        record = {
            k: summary.get(k)
            for k in (
                "converged",
                "iterations",
                "ibi_iteration_kept",
                "ibi_rdf_deviation",
                "ibi_pressure_bar",
                "ibi_pressure_target_bar",
                "rdf_r2",
                "density_error",
            )
        }
        path = out / "potential.csv"
    elif method == "linear":
        from cgforge.workflows.fm_linear import run_linear_fm

        summary = run_linear_fm(dirs, out, stride=args.frame_stride, seed=args.seed)
        record = {
            k: summary.get(k)
            for k in (
                "n_frames_train",
                "n_frames_validation",
                "cutoff_nm",
                "n_knots",
                "force_rms_kj_mol_nm",
                "train_rms_residual_kj_mol_nm",
                "validation_rms_residual_kj_mol_nm",
                "train_explained_variance",
                "validation_explained_variance",
            )
        }
        path = out / "potential.csv"
    else:
        from cgforge.methods.force_data import load_force_data
        from cgforge.workflows.gnn_train import train_model

        datasets = load_force_data(dirs, stride=args.frame_stride)
        summary = train_model(
            datasets, out, model=method, epochs=args.epochs, seed=args.seed, device=args.device
        )
        floor = summary.get("noise_floor") or {}
        record = {
            "hyperparameters": summary.get("hyperparameters"),
            "n_parameters": summary.get("n_parameters"),
            "n_frames_train": summary.get("n_frames_train"),
            "n_frames_validation": summary.get("n_frames_validation"),
            "epochs_run": summary.get("epochs_run"),
            "best_epoch": summary.get("best_epoch"),
            "stopped_early": summary.get("stopped_early"),
            "best_train_loss": summary.get("best_train_loss"),
            "best_val_loss": summary.get("best_val_loss"),
            "loss_units": summary.get("loss_units"),
            "noise_floor_pair_fm_val_loss": floor.get("pair_fm_val_loss"),
            "zero_force_val_loss": floor.get("zero_force_val_loss"),
            "loss_over_floor": summary.get("loss_over_floor"),
            "train_seconds": summary.get("train_seconds"),
        }
        path = out / "model.pt"
    record.update(
        method=method,
        trained_on=[d.name for d in dirs],
        run_dir=_rel(out),
        frame_stride=args.frame_stride if method != "ibi" else None,
        wall_s_this_call=time.perf_counter() - tic,
    )
    return path, record


def _rel(path: Path | str | None) -> str | None:
    if path is None or path == "":
        return None
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ====================================================================== output
def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """The results table as CSV (the workflow's columns, with the method and training states)."""
    from cgforge.fileio import write_text
    from cgforge.workflows.gnn_md import TABLE_COLUMNS, table_csv

    columns = ("method", "training_states", *TABLE_COLUMNS)
    header = "# one row per model, state point and ensemble (NVT: AA density; NPT: AA pressure)"
    write_text(path, table_csv(rows, columns, digits=6, header=header))


def plot(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """RDF R² and D_CG/D_AA (NVT) and the NPT density error per state point; one marker per
    model, filled where the model was trained on the state point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("nvt", "rdf_r2", "RDF R² (NVT, AA density)"),
        ("nvt", "acceleration_factor", "D_CG / D_AA (NVT)"),
        ("npt", "density_error", "density error (NPT, AA pressure)"),
    )
    markers = {"ibi": "s", "linear": "D", "schnet": "o", "hipnn": "^"}
    states = [s for s in STATES if any(r.get("state") == s for r in rows)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (ensemble, column, title) in zip(axes, panels, strict=True):
        for k, name in enumerate(MODELS):
            spec = MODELS[name]
            xs, ys, filled = [], [], []
            for r in rows:
                if r.get("model") != name or r.get("ensemble") != ensemble:
                    continue
                if r.get("state") not in states or not _finite(r.get(column)):
                    continue
                xs.append(states.index(r["state"]) + 0.07 * (k - 3))
                ys.append(float(r[column]))
                filled.append(_truthy(r.get("trained_on")))
            color = f"C{k}"
            for x, y, f in zip(xs, ys, filled, strict=True):
                ax.plot(x, y, markers[spec["method"]], color=color, mfc=color if f else "white")
            ax.plot([], [], markers[spec["method"]], color=color, label=name)
        ax.set_xticks(range(len(states)), states)
        ax.set_xlim(-0.5, len(states) - 0.5)
        ax.set_title(title, fontsize=10)
        if column == "rdf_r2":
            ax.axhline(R2_CRITERION, color="k", lw=0.8, ls=":")
        elif column == "acceleration_factor":
            ax.axhline(1.0, color="k", lw=0.8, ls=":")
            ax.set_yscale("log")
        else:
            ax.axhline(0.0, color="k", lw=0.8, ls=":")
    axes[0].legend(fontsize=7, title="filled: trained there", title_fontsize=7)
    fig.suptitle(f"{MOLECULE}: CG models at all-atom state points", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ====================================================================== main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help=f"comma-separated names or methods ({', '.join(MODELS)})")
    parser.add_argument("--states", nargs="*", help=f"state labels (default all: {STATES})")
    parser.add_argument("--epochs", type=int, default=100, help="GNN epochs (most)")
    parser.add_argument(
        "--frame-stride", type=int, default=5, help="train on every k-th frame (MS-CG, GNN)"
    )
    parser.add_argument("--production", default="200ps", help="CG production per row")
    parser.add_argument("--equilibrate", default="20ps", help="CG equilibration per row")
    parser.add_argument("--timestep", default="5fs", help="CG time step")
    parser.add_argument("--ibi-iterations", type=int, default=30)
    parser.add_argument("--engine", default="auto", help="CG engine of the tables")
    parser.add_argument("--device", default="cpu", help="torch device of the GNNs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replace", action="store_true", help="rerun the selected rows")
    parser.add_argument("--data", type=Path, default=DATA, help="shipped state points")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    from cgforge.errors import CGForgeError
    from cgforge.fileio import write_json
    from cgforge.units import parse_time_ps

    args.production_ps = parse_time_ps(args.production, what="--production", allow_zero=False)
    args.equilibration_ps = parse_time_ps(args.equilibrate, what="--equilibrate")
    args.timestep_fs = parse_time_ps(args.timestep, what="--timestep", allow_zero=False) * 1e3
    if args.frame_stride < 1:
        parser.error("--frame-stride must be >= 1")
    models = select_models(args.models)
    wanted = args.states or list(STATES)
    unknown = [s for s in wanted if s not in STATES]
    if unknown:
        parser.error(f"unknown state(s) {', '.join(unknown)}; choose from {', '.join(STATES)}")
    available = {s: p for s in STATES if (p := shipped(args.data, s)) is not None}
    for s in wanted:
        if s not in available:
            print(f"note: state point {s} is not shipped yet ({args.data / s}); skipped")
    states = [s for s in wanted if s in available]

    import torch

    torch.set_num_threads(max(1, args.threads))
    command = "python benchmarks/transferability.py " + shlex.join(sys.argv[1:])
    previous = json.loads(args.results.read_text()) if args.results.is_file() else {}
    earlier: list[dict[str, Any]] = list(previous.get("rows", []))
    training: dict[str, Any] = dict(previous.get("training", {}))
    load_before = os.getloadavg()
    new_rows: list[dict[str, Any]] = []
    todo = missing_pairs(models, states, earlier, replace=args.replace)
    from cgforge.workflows.gnn_md import transferability_table

    def save() -> list[dict[str, Any]]:
        """Merge the rows so far into the results file (after every state point: a stopped
        run keeps what it measured). The file is read again under a lock first, so runs of
        other models in parallel processes keep each other's rows."""
        args.workdir.mkdir(parents=True, exist_ok=True)
        with open(args.workdir / "results.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return _save_locked()

    def _save_locked() -> list[dict[str, Any]]:
        current = json.loads(args.results.read_text()) if args.results.is_file() else previous
        for name, record in current.get("training", {}).items():
            training.setdefault(name, record)
        rows = merge_rows(current.get("rows", earlier), new_rows, replace=args.replace)
        rows.sort(
            key=lambda r: (
                list(MODELS).index(r["model"]) if r.get("model") in MODELS else 99,
                STATES.index(r["state"]) if r.get("state") in STATES else 99,
                str(r.get("ensemble")),
            )
        )
        commands = list(current.get("commands", []))
        if new_rows and command not in commands:
            commands.append(command)
        result_json = {
            "benchmark": "transferability",
            "molecule": MOLECULE,
            "command": command,
            "commands": commands,
            "machine": describe_machine(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "settings": {
                "models": {n: MODELS[n] for n in models},
                "states": states,
                "skipped_states": [s for s in wanted if s not in available],
                "epochs": args.epochs,
                "frame_stride": args.frame_stride,
                "production_ps": args.production_ps,
                "equilibration_ps": args.equilibration_ps,
                "timestep_fs": args.timestep_fs,
                "ibi_iterations": args.ibi_iterations,
                "engine": args.engine,
                "device": args.device,
                "threads": args.threads,
                "seed": args.seed,
                "data": _rel(args.data),
                "workdir": _rel(args.workdir),
            },
            "states": {
                s: {
                    k: json.loads((p / "summary.json").read_text()).get(k)
                    for k in ("temperature_K", "density_g_cm3", "pressure_bar", "diffusion_m2_s")
                }
                for s, p in available.items()
            },
            "training": training,
            "claim": claim(rows),
            "rows": rows,
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.results, result_json)
        write_csv(args.results.with_suffix(".csv"), rows)
        if rows:
            plot(args.results.with_suffix(".png"), rows)
        return rows

    for name in models:
        pending = [s for m, s in todo if m == name]
        if not pending:
            print(f"{name}: every selected state point has its rows")
            continue
        spec = MODELS[name]
        lacking = [s for s in spec["train"] if s not in available]
        if lacking:
            print(f"note: {name} needs {', '.join(lacking)}, not shipped yet; skipped")
            continue
        dirs = [available[s] for s in spec["train"]]
        print(f"== {name}: training on {', '.join(spec['train'])}", flush=True)
        try:
            model_path, record = train(name, dirs, args)
        except CGForgeError as exc:
            print(f"   training failed: {exc}", flush=True)
            training[name] = {"status": "failed", "reason": str(exc)}
            continue
        training[name] = {"status": "done", **record}
        for state in pending:
            print(f"   {name} at {state}", flush=True)
            tic = time.perf_counter()
            settings: dict[str, Any] = {
                "production_ps": args.production_ps,
                "equilibration_ps": args.equilibration_ps,
                "timestep_fs": args.timestep_fs,
                "seed": args.seed,
            }
            if spec["method"] not in PAIR_METHODS:
                settings["device"] = args.device
            ensembles = missing_ensembles(name, state, earlier, replace=args.replace)
            try:
                result = transferability_table(
                    model_path,
                    [available[state]],
                    args.workdir / "transfer" / name / state,
                    trained_at=dirs,
                    model_name=name,
                    engine=args.engine,
                    ensembles=ensembles,
                    **settings,
                )
            except CGForgeError as exc:
                print(f"      failed: {exc}", flush=True)
                result = [
                    {
                        "model": name,
                        "state": state,
                        "ensemble": ensemble,
                        "status": "failed",
                        "notes": f"failed: {' '.join(str(exc).split())}",
                    }
                    for ensemble in ensembles
                ]
            for row in result:
                row.update(
                    method=spec["method"],
                    training_states="+".join(spec["train"]),
                    state=state,
                    reference_dir=_rel(row.get("reference_dir")),
                    run_dir=_rel(row.get("run_dir")),
                    command=command,
                )
                r2, dev = row.get("rdf_r2"), row.get("density_error")
                print(
                    f"      {row.get('ensemble')}: {row.get('status')}"
                    + (f", RDF R² {r2:.4f}" if _finite(r2) else "")
                    + (f", density error {dev:+.2%}" if _finite(dev) else "")
                    + (f" ({row['notes']})" if row.get("notes") else ""),
                    flush=True,
                )
            print(f"      {time.perf_counter() - tic:.0f} s", flush=True)
            new_rows += result
            save()
    rows = save()
    print(f"written {args.results} (+ .csv, .png): {len(rows)} rows, {len(new_rows)} new")
    return 0


if __name__ == "__main__":
    sys.exit(main())
