"""Eight hydrocarbon liquids: IBI, ML-predicted, friction and time-rescaled CG models against
their all-atom references.

The liquids of the mobility-preserving CG study (:data:`cgforge.workflows.references.LIQUIDS`)
at 298.15 K. By default each liquid's all-atom reference is the one shipped with cgforge
(``cgforge references``; built by ``benchmarks/aa_references.py``: 216 molecules, GROMACS,
drift-checked NPT equilibration, 500 ps Nosé–Hoover production); ``--references DIR`` takes
``DIR/<liquid>`` run directories instead. A liquid without a reference is recorded with the
reason and the others go on.

For each liquid :func:`cgforge.workflows.compare.run_compare` runs in
``WORKDIR/<liquid>/compare`` (every stage resumes; a rerun skips finished methods):

* ``ibi``: IBI to its 1 % RDF criterion with the pressure ramp (at most 50 iterations of
  300 ps, stopped after 10 without improvement, the best kept), then 50 ps NPT + 500 ps Nosé–Hoover NVT;
* ``ml``: the shipped mobility model (or ``--model``), its out-of-distribution flags in the notes;
* ``friction``: the IBI potential under Langevin dynamics with γ fitted to D_AA;
* ``rescale``: the IBI run's time axis stretched by the α measured on it (a calibration);
* ``rescale-predicted`` (``--predicted-alpha MODELS``, no runs: added to an existing result
  file from its IBI rows): stretched by the α that an acceleration model of the liquid's own
  molecule (``MODELS/<liquid>``, ``cgforge train acceleration``) predicts from its OPLS-AA
  bonded parameters and D_AA; liquids without such a model get a "not run" row.

CG runs use as many beads as the reference has molecules, so finite-size effects cancel in
D_CG/D_AA, on the CG engine ``--engine`` (default ``auto``: LAMMPS on CPUs).
``--quick`` is a check that everything runs (the ``tiny`` compare preset), not a measurement.

Writes ``benchmarks/results/eight_liquids.{json,csv,png}`` (``--quick``:
``eight_liquids_quick.*``): one row per liquid and method with D_CG/D_AA ± error, RDF R² and
integrated deviation, density error under NPT, pressure, IBI iterations and wall time.

    python benchmarks/eight_liquids.py                                  # all eight, shipped refs
    python benchmarks/eight_liquids.py --liquids benzene --methods ibi,friction
    python benchmarks/eight_liquids.py --merge runs/eight_liquids/*.json   # one table
    python benchmarks/eight_liquids.py --predicted-alpha runs/acceleration  # α-model rows
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.errors import CGForgeError
from cgforge.fileio import write_json, write_text
from cgforge.methods.friction import FrictionConfig
from cgforge.methods.ibi import IBIConfig
from cgforge.methods.rescale import rescale_diffusion
from cgforge.workflows.compare import CompareSettings, get_settings, run_compare
from cgforge.workflows.references import LIQUIDS, resolve_reference, slug

RESULTS = Path(__file__).parent / "results"
WORKDIR = Path(__file__).resolve().parent.parent / "runs" / "eight_liquids"
#: The CPU benchmark's CG settings (LAMMPS makes them affordable on two cores).
BENCHMARK = CompareSettings(
    name="benchmark",
    n_beads=None,  # as many beads as the reference has molecules
    ibi=IBIConfig(max_iterations=50, equilibration_ps=10.0, production_ps=300.0),
    cg_equilibration_ps=50.0,
    cg_production_ps=500.0,
    friction=FrictionConfig(),
)
#: Figure marker of each method.
MARKERS = {"ibi": "o", "ml": "s", "friction": "^", "rescale": "D", "rescale-predicted": "v"}
TABLE_KEYS = (
    "acceleration_factor",
    "acceleration_factor_err",
    "rdf_r2",
    "rdf_deviation",
    "density_error",
    "pressure_bar",
    "pressure_err_bar",
    "friction_per_ps",
    "alpha",
)


def run_liquid(
    name: str,
    references: Path | None,
    workdir: Path,
    settings: CompareSettings,
    methods: list[str],
    model: Path | None,
    engine: str,
    seed: int,
) -> dict[str, Any]:
    """Comparison of one liquid on its reference; the record of the JSON file."""
    root = workdir / slug(name)
    record: dict[str, Any] = {"liquid": name, "dir": str(root)}
    tic = time.perf_counter()
    try:
        reference = resolve_reference(name if references is None else references / slug(name))
    except CGForgeError as exc:
        record.update(status="failed", reason=f"all-atom reference: {exc}")
        return record
    aa = json.loads((reference / "summary.json").read_text())
    record["reference"] = str(reference)
    record["aa"] = {
        k: aa.get(k)
        for k in (
            "n_molecules",
            "box_nm",
            "density_g_cm3",
            "density_err_g_cm3",
            "diffusion_m2_s",
            "diffusion_err_m2_s",
            "pressure_bar",
            "pressure_target_bar",
            "engine",
        )
    }
    try:
        result = run_compare(
            reference,
            root / "compare",
            methods=methods,
            preset=settings,
            model_dir=model,
            seed=seed,
            engine=engine,
        )
    except CGForgeError as exc:
        record.update(status="failed", reason=str(exc))
        return record
    ibi = root / "compare" / "ibi" / "summary.json"
    ibi_summary = json.loads(ibi.read_text()) if ibi.exists() else {}
    record.update(
        status="done",
        rows=result["rows"],
        ibi_iterations=ibi_summary.get("iterations"),
        ibi_converged=ibi_summary.get("converged"),
        cg_engine=ibi_summary.get("engine"),
        wall_s=time.perf_counter() - tic,
    )
    return record


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def table_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per liquid and method."""
    rows = []
    for record in records:
        if record.get("status") != "done":
            rows.append(
                {
                    "liquid": record["liquid"],
                    "method": "-",
                    "status": "failed",
                    "notes": record.get("reason", ""),
                }
            )
            continue
        for row in record["rows"]:
            rows.append(
                {
                    "liquid": record["liquid"],
                    "method": row["method"],
                    "status": row["status"],
                    **{k: row.get(k) for k in TABLE_KEYS},
                    "ibi_iterations": record.get("ibi_iterations"),
                    "ibi_converged": record.get("ibi_converged"),
                    "liquid_wall_s": record.get("wall_s"),
                    "notes": row.get("notes", ""),
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'liquid':<24} {'method':<9} {'status':<7} {'D_CG/D_AA':>16} {'RDF R2':>8} "
        f"{'RDF dev':>8} {'density err':>11} {'P bar':>8} {'IBI it':>6}"
    )
    for row in rows:
        factor = row.get("acceleration_factor")
        d = (
            "-"
            if factor is None
            else f"{factor:.3g} ± {_fmt(row.get('acceleration_factor_err'), '.2g')}"
        )
        print(
            f"{row['liquid']:<24} {row['method']:<9} {row['status']:<7} {d:>16} "
            f"{_fmt(row.get('rdf_r2'), '.4f'):>8} {_fmt(row.get('rdf_deviation'), '.2%'):>8} "
            f"{_fmt(row.get('density_error'), '+.2%'):>11} "
            f"{_fmt(row.get('pressure_bar'), '.0f'):>8} {_fmt(row.get('ibi_iterations'), 'd'):>6}"
        )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value).replace('"', "'")
    return f'"{text}"' if ("," in text or ";" in text) else text


COLUMNS = (
    "liquid",
    "method",
    "status",
    *TABLE_KEYS,
    "ibi_iterations",
    "ibi_converged",
    "liquid_wall_s",
    "notes",
)


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """The table as CSV (columns :data:`COLUMNS`; pressure in bar, wall time in s)."""
    lines = [",".join(COLUMNS)]
    lines += [",".join(_cell(row.get(c)) for c in COLUMNS) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """D_CG/D_AA per liquid, one marker per method, the all-atom line at 1, error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    liquids = list(dict.fromkeys(r["liquid"] for r in rows))
    methods = [m for m in MARKERS if any(r["method"] == m for r in rows)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for k, method in enumerate(methods):
        xs, ys, es = [], [], []
        for i, liquid in enumerate(liquids):
            row = next((r for r in rows if r["liquid"] == liquid and r["method"] == method), None)
            if row and row.get("acceleration_factor") is not None and row["status"] == "ok":
                xs.append(i + (k - (len(methods) - 1) / 2) * 0.12)
                ys.append(row["acceleration_factor"])
                es.append(row.get("acceleration_factor_err") or 0.0)
        ax.errorbar(xs, ys, yerr=es, fmt=MARKERS[method], capsize=3, label=method)
    ax.axhline(1.0, color="k", lw=1, ls="--", label="all-atom (D_CG = D_AA)")
    ax.set_yscale("log")
    ax.set_xticks(range(len(liquids)), liquids, rotation=30, ha="right")
    ax.set_ylabel("D_CG / D_AA")
    ax.set_title("One-bead CG models of eight liquids against their all-atom references")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def predicted_alpha_row(record: dict[str, Any], models: Path) -> dict[str, Any]:
    """The ``rescale-predicted`` row of a liquid's record: its IBI row's D_CG/D_AA divided by
    the α an acceleration model of its molecule (``models/<slug>``) predicts; structure,
    density and pressure are the IBI run's (time rescaling changes only the clock)."""
    from cgforge.workflows.cg import load_reference
    from cgforge.workflows.predict import predicted_acceleration

    liquid = record["liquid"]
    ibi = next((r for r in record.get("rows", []) if r["method"] == "ibi"), None)
    model = models / slug(liquid)
    row: dict[str, Any] = {"method": "rescale-predicted", "model": str(model)}
    if ibi is None or ibi.get("status") != "ok":
        return {**row, "status": "not run", "notes": "no IBI row to rescale"}
    if not (model / "model.json").is_file():
        return {
            **row,
            "status": "not run",
            "notes": f"no acceleration model of {liquid} in {models} (the database's "
            "randomised molecules are 2,3,4-trimethylpentane, ethylbenzene and 3-methylpentane)",
        }
    try:
        where = record.get("reference")
        reference = load_reference(where if where and Path(where).is_dir() else liquid)
        prediction = predicted_acceleration(model, reference)
    except CGForgeError as exc:
        return {**row, "status": "failed", "notes": str(exc)}
    alpha, alpha_err = prediction["alpha"], prediction["alpha_err"]
    ratio, ratio_err = rescale_diffusion(
        ibi["acceleration_factor"], ibi.get("acceleration_factor_err"), alpha, alpha_err
    )
    notes = [
        f"alpha {alpha:.3g} ± {alpha_err:.2g} (random forest {prediction['random_forest']:.3g})"
    ]
    notes += [f"out of distribution: {r}" for r in prediction["ood_reasons"]]
    return {
        **row,
        "status": "ok",
        **{k: ibi.get(k) for k in ("rdf_r2", "rdf_deviation", "density_error", "pressure_bar",
                                   "pressure_err_bar", "d_aa_m2_s", "d_aa_err_m2_s")},
        "acceleration_factor": ratio,
        "acceleration_factor_err": ratio_err,
        "d_cg_m2_s": None if ibi.get("d_cg_m2_s") is None else ibi["d_cg_m2_s"] / alpha,
        "alpha": alpha,
        "alpha_err": alpha_err,
        "alpha_random_forest": prediction["random_forest"],
        "out_of_distribution": prediction["out_of_distribution"],
        "notes": "; ".join(notes),
    }  # fmt: skip


def add_predicted_alpha(path: Path, models: Path) -> None:
    """Add (or replace) the ``rescale-predicted`` rows of every liquid of the result file
    ``path`` and rewrite it with its CSV and figure; no simulation runs."""
    result = json.loads(path.read_text())
    for record in result["liquids"]:
        if record.get("status") != "done":
            continue
        row = predicted_alpha_row(record, models)
        record["rows"] = [r for r in record["rows"] if r["method"] != "rescale-predicted"]
        record["rows"].append(row)
        print(f"{record['liquid']:<24} {row['status']:<8} "
              f"{_fmt(row.get('acceleration_factor'), '.3g'):>6}  {row['notes']}")  # fmt: skip
    result["table"] = table_rows(result["liquids"])
    result["predicted_alpha"] = {
        "models": str(models),
        "command": "python benchmarks/eight_liquids.py " + " ".join(sys.argv[1:]),
    }
    write_json(path, result)
    write_table(path.with_suffix(".csv"), result["table"])
    plot(path.with_suffix(".png"), result["table"])
    print(f"written {path}, {path.with_suffix('.csv')} and {path.with_suffix('.png')}")


def _listed(part: dict, key: str) -> list:
    """A per-run field of a result file: one value, or the list of a merged file."""
    return list(part[f"{key}s"]) if f"{key}s" in part else [part[key]]


def _nested(value: list) -> list:
    """Load averages of one run ([1, 5, 15 min]) or of a merged file (a list of those)."""
    return list(value) if value and isinstance(value[0], list) else [value]


def merge(
    paths: list[Path],
    out: Path,
    replace: bool = False,
    replace_methods: list[str] | None = None,
) -> None:
    """One result file from per-liquid (or earlier merged) result files, in the order of
    :data:`LIQUIDS`; each liquid keeps its own command, machine load and wall time. A liquid in
    more than one file is an error, unless ``replace``: then the last file's record is kept.
    With ``replace_methods``, a later file's rows of those methods replace the earlier rows
    of the same liquid (e.g. the ``ml`` rows of a retrained mobility model), each replaced row
    naming the file and model it came from; the rest of the liquid's record is kept (a liquid
    whose earlier record failed takes the later record whole; a failed later record changes
    nothing)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    order = [n for n, _ in LIQUIDS]
    chosen: dict[str, dict] = {}
    for path, part in zip(paths, parts, strict=True):
        for record in part["liquids"]:
            earlier = chosen.get(record["liquid"])
            if earlier is not None and replace_methods and "rows" not in earlier:
                chosen[record["liquid"]] = record  # the earlier run failed: take this one whole
                continue
            if earlier is not None and replace_methods:
                rows = record.get("rows", [])  # a failed later record brings no rows
                new = {r["method"]: r for r in rows if r["method"] in replace_methods}
                if not new:
                    continue
                for row in new.values():
                    row.update(source=str(path), model=part.get("model"))
                kept = chosen[record["liquid"]]
                kept["rows"] = [new.pop(r["method"], r) for r in kept["rows"]] + list(new.values())
                continue
            if record["liquid"] in chosen and not replace:
                raise SystemExit(
                    f"error: {record['liquid']} appears in more than one file; merge each once "
                    "or pass --replace to keep the last file's"
                )
            chosen[record["liquid"]] = record
    records = sorted(chosen.values(), key=lambda r: order.index(r["liquid"]))
    settings = {json.dumps(part["compare_settings"], sort_keys=True) for part in parts}
    if len(settings) != 1:
        raise SystemExit("error: the files were made with different CG settings")
    rows = table_rows(records)
    print_table(rows)
    result = {
        **{
            k: v
            for k, v in parts[0].items()
            if k not in ("liquids", "table", "command", "commands", "merged_from")
        },
        "commands": [c for part in parts for c in _listed(part, "command")],
        "load_average_before": [x for part in parts for x in _nested(part["load_average_before"])],
        "load_average_after": [x for part in parts for x in _nested(part["load_average_after"])],
        "merged_from": [
            m
            for p, part in zip(paths, parts, strict=True)
            for m in part.get("merged_from", [str(p)])
        ],
        "table": rows,
        "liquids": records,
    }
    write_json(out, result)
    write_table(out.with_suffix(".csv"), rows)
    plot(out.with_suffix(".png"), rows)
    print(f"written {out}, {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings: a check, no result")
    parser.add_argument(
        "--liquids", nargs="+", default=[n for n, _ in LIQUIDS], help="built-in names"
    )
    parser.add_argument(
        "--references", type=Path, default=None, help="DIR/<liquid> references (default: shipped)"
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="mobility model (default: shipped)"
    )
    parser.add_argument("--methods", default="ibi,ml,friction,rescale")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="run directories")
    parser.add_argument("--engine", default="auto", help="CG engine: auto, lammps, openmm, torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="result JSON (CSV, PNG beside it)")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="combine result JSONs of single liquids (run separately) into --out; no runs",
    )
    parser.add_argument(
        "--replace", action="store_true", help="with --merge: a later file's liquid replaces"
    )
    parser.add_argument(
        "--replace-methods",
        default=None,
        help="with --merge: a later file's rows of these methods (comma-separated) replace",
    )
    parser.add_argument(
        "--predicted-alpha",
        type=Path,
        default=None,
        metavar="MODELS",
        help="add rescale-predicted rows to --out from acceleration models MODELS/<liquid>; no runs",
    )
    args = parser.parse_args()
    if args.predicted_alpha is not None:
        add_predicted_alpha(args.out or RESULTS / "eight_liquids.json", args.predicted_alpha)
        return
    if args.merge:
        merge(
            args.merge,
            args.out or RESULTS / "eight_liquids.json",
            replace=args.replace,
            replace_methods=args.replace_methods.split(",") if args.replace_methods else None,
        )
        return

    known = [n for n, _ in LIQUIDS]
    unknown = [n for n in args.liquids if n not in known]
    if unknown:
        parser.error(f"not one of the eight liquids: {', '.join(unknown)}; use {', '.join(known)}")
    methods = args.methods.split(",")
    settings = get_settings("tiny") if args.quick else BENCHMARK
    out = args.out or RESULTS / ("eight_liquids_quick.json" if args.quick else "eight_liquids.json")
    load_before = os.getloadavg()
    records = []
    for name in args.liquids:
        print(f"== {name}", flush=True)
        records.append(
            run_liquid(
                name,
                args.references,
                args.workdir,
                settings,
                methods,
                args.model,
                args.engine,
                args.seed,
            )
        )
        if records[-1]["status"] != "done":
            print(f"   failed: {records[-1].get('reason')}", flush=True)
    load_after = os.getloadavg()
    rows = table_rows(records)
    print_table(rows)
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    result = {
        "benchmark": "eight_liquids",
        "mode": "quick" if args.quick else "benchmark",
        "command": "python benchmarks/eight_liquids.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "methods": methods,
        "engine": args.engine,
        "compare_settings": settings.to_dict(),
        "model": None if args.model is None else str(args.model),
        "table": rows,
        "liquids": records,
    }
    write_json(out, result)
    write_table(out.with_suffix(".csv"), rows)
    plot(out.with_suffix(".png"), rows)
    print(f"written {out}, {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
