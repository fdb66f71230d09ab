"""Eight hydrocarbon liquids: IBI, ML-predicted, friction and time-rescaled CG models against
their all-atom references.

The liquids of the mobility-preserving CG study: 2,3,4-trimethylpentane, 3-ethylhexane,
3-methylpentane, benzene, ethylbenzene, neopentane, mesitylene and 2,3-dimethylbutane, all
built-in molecules of :mod:`cgforge.molecules.library` (OPLS-AA), at 298.15 K. The pressure is
1 bar except for neopentane, which boils at 282.6 K at 1 atm: at 298.15 and 1 bar it is a gas,
so its reference is the liquid at its saturation pressure, 1.7 bar (the state of the library's
experimental density, the saturated liquid). The density of a liquid barely depends on the
pressure near 1 bar (compressibility ~2·10⁻⁴ bar⁻¹ for neopentane: 0.014 % from 1 to 1.7 bar);
the choice only keeps a small NPT box from being driven toward the vapour.

For each liquid: the all-atom reference (:func:`cgforge.workflows.aa.run_aa`; NPT then
Nosé–Hoover production; engine ``auto``: OpenMM on CUDA, else GROMACS) in ``WORKDIR/<liquid>/aa``,
then :func:`cgforge.workflows.compare.run_compare` in ``WORKDIR/<liquid>/compare`` (IBI, ML when
``--model`` is given, friction fitted to D_AA, time rescaling with α measured on the IBI run).
Every stage resumes: a rerun skips finished liquids and methods. A liquid whose reference fails
is recorded with its reason and the others go on.

Settings:

* default (a GPU or a cluster node): the ``standard`` presets, 500 molecules, 0.5 ns NPT +
  2 ns all-atom production, 1,000 CG beads, IBI up to 50 × 200 ps, 0.1 + 1 ns CG runs;
* ``--quick`` (a check on a desktop CPU, minutes per liquid): 64 molecules, 10 + 20 ps
  all-atom, the ``tiny`` compare preset (216 beads, 3 short IBI iterations, 5 + 20 ps CG
  runs). Its numbers are noisy: it shows that everything runs, not how the methods compare.

Prints one table (D_CG/D_AA, RDF R², density error per method and liquid), writes it as
``benchmarks/results/eight_liquids.csv`` and everything (settings, machine, per-liquid rows)
as ``benchmarks/results/eight_liquids.json`` (``--out``; ``--quick`` writes
``eight_liquids_quick.*``).

    python benchmarks/eight_liquids.py --model models/mobility          # GPU / cluster
    python benchmarks/eight_liquids.py --quick --liquids 3-methylpentane  # CPU check
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.errors import CGForgeError
from cgforge.fileio import write_json, write_text
from cgforge.methods.ibi import IBIConfig
from cgforge.molecules.library import get_builtin
from cgforge.workflows.aa import AAConfig, default_protocol, run_aa
from cgforge.workflows.compare import get_settings, run_compare
from cgforge.workflows.run import PRESETS, Preset

RESULTS = Path(__file__).parent / "results"
WORKDIR = Path(__file__).resolve().parent.parent / "runs" / "eight_liquids"
TEMPERATURE_K = 298.15
#: (built-in name, pressure in bar) of the eight liquids.
LIQUIDS: tuple[tuple[str, float], ...] = (
    ("2,3,4-trimethylpentane", 1.0),
    ("3-ethylhexane", 1.0),
    ("3-methylpentane", 1.0),
    ("benzene", 1.0),
    ("ethylbenzene", 1.0),
    ("neopentane", 1.7),  # saturation pressure at 298.15 K; a gas at 1 bar
    ("mesitylene", 1.0),
    ("2,3-dimethylbutane", 1.0),
)
#: The all-atom part of ``--quick``: a check, not a measurement.
QUICK_AA = Preset(
    name="quick-check",
    n_molecules=64,
    aa_equilibration_ps=10.0,
    aa_production_ps=20.0,
    cg_beads=216,
    ibi=IBIConfig(),
    cg_equilibration_ps=5.0,
    cg_production_ps=20.0,
)
TABLE_KEYS = ("acceleration_factor", "acceleration_factor_err", "rdf_r2", "density_error")


def slug(name: str) -> str:
    """Directory name of a liquid."""
    return name.replace(",", "").replace(" ", "-")


def run_liquid(
    name: str,
    pressure_bar: float,
    workdir: Path,
    aa_preset: Preset,
    compare_preset: str,
    methods: list[str],
    model: Path | None,
    platform: str,
    engine: str,
    seed: int,
) -> dict[str, Any]:
    """Reference and comparison of one liquid; the record of the JSON file."""
    get_builtin(name)  # an unknown name stops here, before any work
    root = workdir / slug(name)
    tic = time.perf_counter()
    protocol = default_protocol(
        aa_preset.aa_equilibration_ps,
        aa_preset.aa_production_ps,
        temperature_K=TEMPERATURE_K,
        pressure_bar=pressure_bar,
        platform=platform,
        seed=seed,
    )
    record: dict[str, Any] = {"liquid": name, "pressure_bar": pressure_bar, "dir": str(root)}
    try:
        aa = run_aa(
            AAConfig(
                molecule=name, n_molecules=aa_preset.n_molecules, protocol=protocol, engine=engine
            ),
            root / "aa",
        )
    except CGForgeError as exc:
        record.update(status="failed", reason=f"all-atom reference: {exc}")
        return record
    record["aa"] = {
        k: aa.get(k)
        for k in (
            "n_molecules",
            "density_g_cm3",
            "density_err_g_cm3",
            "diffusion_m2_s",
            "diffusion_err_m2_s",
            "pressure_bar",
            "engine",
            "platform",
        )
    }
    result = run_compare(
        root / "aa",
        root / "compare",
        methods=methods,
        preset=compare_preset,
        model_dir=model,
        seed=seed,
        platform=platform,
    )
    record.update(status="done", rows=result["rows"], wall_s=time.perf_counter() - tic)
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
            rows.append({"liquid": record["liquid"], "method": "-", "status": "failed"})
            continue
        for row in record["rows"]:
            rows.append(
                {
                    "liquid": record["liquid"],
                    "method": row["method"],
                    "status": row["status"],
                    **{k: row.get(k) for k in TABLE_KEYS},
                }
            )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'liquid':<24} {'method':<9} {'status':<14} {'D_CG/D_AA':>16} {'RDF R2':>8} "
        f"{'density err':>11}"
    )
    for row in rows:
        factor = row.get("acceleration_factor")
        d = (
            "-"
            if factor is None
            else f"{factor:.3g} ± {_fmt(row['acceleration_factor_err'], '.2g')}"
        )
        print(
            f"{row['liquid']:<24} {row['method']:<9} {row['status']:<14} {d:>16} "
            f"{_fmt(row.get('rdf_r2'), '.4f'):>8} {_fmt(row.get('density_error'), '+.2%'):>11}"
        )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return f'"{text}"' if "," in text else text


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """The table as CSV: liquid,method,status,acceleration_factor,..., density_error."""
    columns = ("liquid", "method", "status", *TABLE_KEYS)
    lines = [",".join(columns)]
    lines += [",".join(_cell(row.get(c)) for c in columns) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings for a CPU check")
    parser.add_argument(
        "--liquids", nargs="+", default=[n for n, _ in LIQUIDS], help="built-in names"
    )
    parser.add_argument("--model", type=Path, default=None, help="mobility model (adds ml)")
    parser.add_argument("--methods", default=None, help="default: ibi,friction,rescale (+ml)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="run directories")
    parser.add_argument("--platform", default="auto", help="OpenMM platform")
    parser.add_argument("--engine", default="auto", help="all-atom engine: auto, openmm, gromacs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="result JSON (CSV beside it)")
    args = parser.parse_args()

    pressures = dict(LIQUIDS)
    unknown = [n for n in args.liquids if n not in pressures]
    if unknown:
        parser.error(f"not one of the eight liquids: {', '.join(unknown)}")
    methods = (args.methods or "ibi,friction,rescale" + (",ml" if args.model else "")).split(",")
    aa_preset = QUICK_AA if args.quick else PRESETS["standard"]
    compare_preset = "tiny" if args.quick else "standard"
    out = args.out or RESULTS / ("eight_liquids_quick.json" if args.quick else "eight_liquids.json")
    load_before = os.getloadavg()
    records = []
    for name in args.liquids:
        print(f"== {name} ({pressures[name]} bar)", flush=True)
        records.append(
            run_liquid(
                name,
                pressures[name],
                args.workdir,
                aa_preset,
                compare_preset,
                methods,
                args.model,
                args.platform,
                args.engine,
                args.seed,
            )
        )
    load_after = os.getloadavg()
    rows = table_rows(records)
    print_table(rows)
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    aa_settings = asdict(replace(aa_preset, ibi=IBIConfig()))
    del aa_settings["ibi"], aa_settings["cg_beads"]
    del aa_settings["cg_equilibration_ps"], aa_settings["cg_production_ps"]
    result = {
        "benchmark": "eight_liquids",
        "mode": "quick" if args.quick else "standard",
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "temperature_K": TEMPERATURE_K,
        "pressures_bar": {n: pressures[n] for n in args.liquids},
        "methods": methods,
        "aa_settings": aa_settings,
        "compare_settings": get_settings(compare_preset).to_dict(),
        "model": None if args.model is None else str(args.model),
        "table": rows,
        "liquids": records,
    }
    write_json(out, result)
    write_table(out.with_suffix(".csv"), rows)
    print(f"written {out} and {out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
