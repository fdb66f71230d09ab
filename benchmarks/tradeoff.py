"""The structure–mobility trade-off curve of real liquids (``cgforge tradeoff``) from their IBI models.

For each liquid, the IBI potential of the eight-liquid benchmark (``WORKDIR/<liquid>/compare/
ibi/potential.csv``, made by ``benchmarks/eight_liquids.py``) is the start, and the shipped
all-atom reference the target: :func:`cgforge.workflows.tradeoff.run_tradeoff` traces the least
RDF deviation at D_CG/D_AA from IBI's ratio down to 1 (every CG run: as many beads as the
reference has molecules, 20 ps discarded + 100 ps NVT at the AA density, LAMMPS). Each liquid's
run directory is ``OUT/<liquid>`` (resumable); the curves go to
``benchmarks/results/tradeoff.{json,csv,png}``.

    python benchmarks/tradeoff.py benzene
    python benchmarks/tradeoff.py benzene 3-methylpentane --workdir runs/eight_liquids
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

from _machine import describe_machine
from cgforge.errors import CGForgeError
from cgforge.fileio import write_json, write_text
from cgforge.methods.tradeoff import TradeoffConfig
from cgforge.workflows.references import slug
from cgforge.workflows.tradeoff import csv_text, run_tradeoff

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

COLUMNS = (
    "liquid",
    "point",
    "target_ratio",
    "reached",
    "ratio",
    "ratio_err",
    "rdf_deviation",
    "rdf_r2",
    "pressure_bar",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("liquids", nargs="+")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "eight_liquids")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "tradeoff")
    parser.add_argument("--points", type=int, default=TradeoffConfig.points)
    parser.add_argument("--results", type=Path, default=RESULTS / "tradeoff.json")
    args = parser.parse_args()
    config = TradeoffConfig(points=args.points)
    previous = json.loads(args.results.read_text()) if args.results.is_file() else {}
    liquids: dict[str, dict] = dict(previous.get("liquids", {}))
    load_before = os.getloadavg()
    for name in args.liquids:
        start = args.workdir / slug(name) / "compare" / "ibi" / "potential.csv"
        print(f"== {name} from {start}", flush=True)
        tic = time.perf_counter()
        try:
            summary = run_tradeoff(name, start, args.out / slug(name), config)
        except CGForgeError as exc:
            print(f"   failed: {exc}", flush=True)
            liquids[name] = {"status": "failed", "reason": str(exc)}
            continue
        liquids[name] = {
            "status": "done",
            "command": f"python benchmarks/tradeoff.py {shlex.quote(name)} --workdir "
            f"{args.workdir} --points {args.points}",
            "config": config.__dict__,
            "wall_s": time.perf_counter() - tic,
            "start_potential": str(start),
            "run_dir": str(args.out / slug(name)),
            "curve": summary["curve"],
            "evaluations": summary["evaluations"],
            "notes": summary["notes"],
            "provenance": summary["provenance"],
        }
        for row in summary["curve"]:
            print(
                f"   target {row['target_ratio']:.3g}: D_CG/D_AA {row['ratio']:.3g} ± "
                f"{row['ratio_err']:.2g}, RDF deviation {row['rdf_deviation']:.2%}, R² "
                f"{row['rdf_r2']:.4f}{'' if row['reached'] else ' (not reached)'}",
                flush=True,
            )
    result = {
        "benchmark": "tradeoff",
        "command": "python benchmarks/tradeoff.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "config": config.__dict__,
        "note": "command and config above are the last invocation's; each liquid keeps its own",
        "liquids": liquids,
    }
    write_json(args.results, result)
    rows = [
        {"liquid": name, "point": k, **row}
        for name, entry in liquids.items()
        for k, row in enumerate(entry.get("curve", []))
    ]
    header = "# D_CG/D_AA (ratio) and cgforge's RDF deviation along each liquid's curve\n"
    write_text(args.results.with_suffix(".csv"), csv_text(rows, COLUMNS, header))
    plot(args.results.with_suffix(".png"), liquids)
    print(f"written {args.results} (+ .csv, .png)")
    return 0


def plot(path: Path, liquids: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k, (name, entry) in enumerate(liquids.items()):
        curve = entry.get("curve") or []
        if not curve:
            continue
        xs = [r["ratio"] for r in curve]
        ys = [100 * r["rdf_deviation"] for r in curve]
        ax.plot(xs, ys, "-", color=f"C{k}", label=name)
        for r, x, y in zip(curve, xs, ys, strict=True):
            ax.plot(x, y, "o", color=f"C{k}", mfc=f"C{k}" if r["reached"] else "white")
        ax.plot(xs[0], ys[0], "s", color=f"C{k}")
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("D_CG / D_AA (square: IBI; open: target not reached)")
    ax.set_ylabel("RDF deviation (%)")
    ax.set_title("Least structure cost of mobility, pair potentials at the true mass")
    ax.legend(fontsize=8)
    finite = [
        100 * r["rdf_deviation"]
        for e in liquids.values()
        for r in e.get("curve") or []
        if math.isfinite(r["rdf_deviation"])
    ]
    if finite:
        ax.set_ylim(0, max(finite) * 1.1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
