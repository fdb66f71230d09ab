"""Stage-A acceptance rate under the seed papers' full default bonded ranges.

For each seed molecule (2,3,4-trimethylpentane, ethylbenzene, 3-methylpentane) ``--draws``
parameter sets are drawn from the default :class:`~cgforge.molecules.randomize.ParameterRanges`
(bond K 20–1000 kcal/mol/Å², C–C r0 1.0–2.5 Å, C–H r0 0.6–1.8 Å, angle K 5–100 kcal/mol/rad²,
θ0 70–140°, Fourier V1..V4 −2…2 kcal/mol, impropers too), and each goes through stage A's
all-atom part as ``db generate`` runs it: vacuum pre-relaxation of one molecule, packing at
the density its relaxed volume suggests (:mod:`cgforge.engines.prerelax`), then NPT
equilibration doubled from ``--start-ps`` until the density stops drifting, up to
``--cap-ps`` (:func:`cgforge.workflows.db_stages.equilibrate_aa`), with a short production.
``--molecules-per-box`` molecules (64), GROMACS with one OpenMP thread, 298.15 K, 1 bar.

A draw is accepted when its density stopped drifting within the cap and the MD finished; the
failure reasons are counted by kind (:func:`cgforge.workflows.db_generate.failure_kind`). The
results go to ``benchmarks/results/stage_a_acceptance.json``: per draw the accepted
equilibration length, tries, drift, final and estimated densities, pre-relaxation energies and
wall time; per molecule the acceptance rate, and how many accepted draws settled (density
change between the last two quarters within 1 % or 3 standard errors) rather than being
accepted at the cap by stage A's gate, which also allows 3 natural density fluctuations of the
box (about 5 % at 64 molecules). Each accepted box is also scanned for cavities (the largest
empty sphere, and the fraction of the box over 0.4 nm from every atom), which no drift
criterion sees. ``--no-prerelax`` runs the old start (unrelaxed
conformer at 0.9 × the reference density) for comparison.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/stage_a_acceptance.py --draws 4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.errors import InputError, SimulationError
from cgforge.fileio import write_json
from cgforge.molecules.randomize import ParameterRanges
from cgforge.workflows.aa import AAConfig, default_protocol
from cgforge.workflows.db_generate import failure_kind
from cgforge.workflows.db_stages import SETTLED_DRIFT, StageFailure, equilibrate_aa

RESULTS = Path(__file__).parent / "results" / "stage_a_acceptance.json"
MOLECULES = ("2,3,4-trimethylpentane", "ethylbenzene", "3-methylpentane")
TEMPERATURE_K = 298.15
#: Grid spacing (nm) of the cavity scan and the distance from every atom beyond which a grid
#: point counts as empty: a dense liquid has no such point.
CAVITY_GRID_NM = 0.1
CAVITY_DISTANCE_NM = 0.4
SEED = 2026


def cavities(gro: Path) -> dict[str, float]:
    """Largest empty sphere (nm; the largest distance of a grid point from every atom) and the
    fraction of the box farther than :data:`CAVITY_DISTANCE_NM` from every atom, in the
    production start of a run (``system.gro``): a homogeneous liquid has neither."""
    lines = gro.read_text().splitlines()
    n = int(lines[1])
    xyz = np.array([[float(v) for v in line[20:].split()[:3]] for line in lines[2 : 2 + n]])
    box = np.array([float(v) for v in lines[2 + n].split()[:3]])
    tree = cKDTree(np.mod(xyz, box), boxsize=box)
    axes = [np.arange(0.0, b, CAVITY_GRID_NM) for b in box]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    distance, _ = tree.query(grid)
    return {
        "largest_cavity_radius_nm": float(distance.max()),
        "cavity_volume_fraction": float(np.mean(distance > CAVITY_DISTANCE_NM)),
    }


def run_draw(molecule: str, draw_seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One draw through pre-relaxation, packing and NPT until converged; a result row."""
    ranges = ParameterRanges()
    base = AAConfig(
        molecule=molecule,
        n_molecules=args.molecules_per_box,
        engine="gromacs",
        randomize={"seed": draw_seed, "ranges": ranges.to_dict()},
        prerelax=not args.no_prerelax,
    )

    def config_with(equilibration_ps: float) -> AAConfig:
        protocol = default_protocol(
            equilibration_ps,
            args.production_ps,
            temperature_K=TEMPERATURE_K,
            pressure_bar=1.0,
            seed=SEED,
            save_particles=False,
        )
        return dataclasses.replace(base, protocol=protocol)

    row: dict[str, Any] = {"molecule": molecule, "draw_seed": draw_seed}
    tic = time.perf_counter()
    try:
        out, summary, check = equilibrate_aa(
            config_with,
            work,
            args.start_ps,
            args.cap_ps,
            temperature_K=TEMPERATURE_K,
        )
    except (StageFailure, SimulationError, InputError) as exc:
        reason = exc.reason if isinstance(exc, StageFailure) else f"{type(exc).__name__}: {exc}"
        row.update(accepted=False, reason=reason, kind=failure_kind(reason))
    else:
        prerelax = summary.get("prerelax") or {}
        row.update(
            accepted=True,
            density_g_cm3=summary.get("density_g_cm3"),
            density_estimate_g_cm3=prerelax.get("density_estimate_g_cm3"),
            packing_density_g_cm3=prerelax.get("packing_density_g_cm3"),
            prerelax_energy_start_kj_mol=prerelax.get("energy_start_kj_mol"),
            prerelax_energy_relaxed_kj_mol=prerelax.get("energy_relaxed_kj_mol"),
            pressure_bar=summary.get("pressure_bar"),
            diffusion_m2_s=summary.get("diffusion_m2_s"),
            ns_per_day=summary.get("ns_per_day"),
            **check,
            **cavities(out / "system.gro"),
        )
        del out
    row["wall_s"] = time.perf_counter() - tic
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=4, help="parameter sets per molecule")
    parser.add_argument(
        "--draw-seeds", type=int, nargs="+", default=None, help="these draw seeds, not 1000.."
    )
    parser.add_argument("--molecules", nargs="+", default=list(MOLECULES))
    parser.add_argument("--molecules-per-box", type=int, default=64)
    parser.add_argument("--start-ps", type=float, default=5.0)
    parser.add_argument("--cap-ps", type=float, default=20.0)
    parser.add_argument("--production-ps", type=float, default=2.0)
    parser.add_argument("--no-prerelax", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", type=Path, default=None, help="keep run folders here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = args.keep or Path(tempfile.mkdtemp(prefix="cgforge-acceptance-"))
    rows: list[dict[str, Any]] = []
    tic = time.perf_counter()
    load_before = os.getloadavg()
    try:
        seeds = args.draw_seeds or [1000 + k for k in range(args.draws)]
        for draw_seed in seeds:
            for molecule in args.molecules:  # interleaved: a cut-short run covers all three
                row = run_draw(molecule, draw_seed, args, root / f"{molecule}-{draw_seed}")
                rows.append(row)
                verdict = "accepted" if row["accepted"] else f"failed: {row['reason']}"
                print(f"{molecule} draw {draw_seed}: {verdict} ({row['wall_s']:.0f} s)", flush=True)
                write_json(args.out, _report(rows, args, time.perf_counter() - tic, load_before))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report = _report(rows, args, time.perf_counter() - tic, load_before)
    write_json(args.out, report)
    for name, entry in report["per_molecule"].items():
        print(f"{name}: {entry['accepted']}/{entry['draws']} accepted; {entry['failures']}")


def _report(
    rows: list[dict[str, Any]], args: argparse.Namespace, wall_s: float, load_before: Any
) -> dict[str, Any]:
    per_molecule: dict[str, Any] = {}
    for molecule in args.molecules:
        mine = [r for r in rows if r["molecule"] == molecule]
        accepted = sum(r["accepted"] for r in mine)
        settled = sum(bool(r.get("density_settled")) for r in mine)
        per_molecule[molecule] = {
            "draws": len(mine),
            "accepted": accepted,
            "acceptance_rate": accepted / len(mine) if mine else None,
            "accepted_settled": settled,
            "failures": dict(Counter(r["kind"] for r in mine if not r["accepted"])),
        }
    accepted = sum(r["accepted"] for r in rows)
    return {
        "description": (
            "stage-A all-atom part under the full default bonded ranges: pre-relaxation, "
            "packing at the estimated density, NPT doubled until the density stops drifting"
        ),
        "settings": {
            "ranges": ParameterRanges().to_dict(),
            "molecules_per_box": args.molecules_per_box,
            "engine": "gromacs",
            "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "start_ps": args.start_ps,
            "cap_ps": args.cap_ps,
            "production_ps": args.production_ps,
            "prerelax": not args.no_prerelax,
            "settled_drift": SETTLED_DRIFT,
            "temperature_K": TEMPERATURE_K,
            "pressure_bar": 1.0,
            "seed": SEED,
        },
        "per_molecule": per_molecule,
        "overall": {
            "draws": len(rows),
            "accepted": accepted,
            "acceptance_rate": accepted / len(rows) if rows else None,
            "failures": dict(Counter(r["kind"] for r in rows if not r["accepted"])),
        },
        "draws": rows,
        "wall_s": wall_s,
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "machine": describe_machine(),
    }


if __name__ == "__main__":
    main()
