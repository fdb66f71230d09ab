"""Database generation speed: stage-A wall time per system, stage-B and stage-C records/hour on
1 and 2 Dask workers (parallel efficiency), through :func:`cgforge.workflows.db_generate.generate`.

Stage A: one record per molecule (2,3,4-trimethylpentane, ethylbenzene, 3-methylpentane, the
molecules of the seed papers), bonded parameters drawn from narrow ranges around OPLS-AA, at
298.15 K and 1 bar, with the ``tiny`` stage preset (40 molecules, 2 + 6 ps AA, one IBI
iteration of 1 + 4 ps, CG 2 + 8 ps of 64 beads), with each all-atom engine (``--engines``:
OpenMM CPU and GROMACS where ``gmx`` is installed), run one at a time on a LocalCluster of one
worker with one CPU thread; the time is the task's own wall time (``task_wall_s`` in the
record's provenance), so it leaves out cluster start-up. ``--quick-molecule NAME`` adds one
system with the ``quick`` preset (100 molecules, 30 + 60 ps AA, up to 10 IBI iterations of
5 + 30 ps with 300 beads, CG 20 + 100 ps), with the first engine of ``--engines``.

Stage B: a fixed batch of ``--b-records`` records (default 8) over the stage-A parents, bead
masses uniform in 20–200 amu, ``tiny`` preset (64 beads, 2 + 8 ps, 5 fs steps scaled by
√(m/m_A) below the parent's mass), the LAMMPS CG engine (``--cg-engine``) with one thread per worker, on a
LocalCluster of 1 and of 2 worker processes. records/hour = done records / wall time of the
stage (cluster start-up excluded, reported apart); parallel efficiency = rate(2) / (2 rate(1)).

Stage C: likewise a fixed batch of ``--c-records`` records (default 8; 0 skips it): the
parents' potentials perturbed by random draws of the trade-off basis (deeper well, barrier
behind the first shell; :func:`cgforge.database.stages.draw_perturbation`), same masses,
preset and engine as stage B. Records that are no diffusive liquid are recorded failed and
counted apart (``failed``); records/hour counts done records only.

Other jobs may share the machine: the load average before and after is stored with the
results in ``benchmarks/results/db_generate.json``.

    python benchmarks/db_generate.py                        # about 10 minutes on 2 cores
    python benchmarks/db_generate.py --engines gromacs openmm --quick-molecule 3-methylpentane
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.database.store import Database
from cgforge.fileio import write_json
from cgforge.molecules.randomize import ParameterRanges
from cgforge.workflows.db_generate import generate

RESULTS = Path(__file__).parent / "results" / "db_generate.json"
MOLECULES = ("2,3,4-trimethylpentane", "ethylbenzene", "3-methylpentane")
#: Narrow bonded ranges around OPLS-AA: stable liquids, so every record times a full run.
RANGES = ParameterRanges(
    bond_k_kcal_mol_A2=(250.0, 350.0),
    bond_cc_r0_A=(1.48, 1.58),
    bond_ch_r0_A=(1.05, 1.12),
    angle_k_kcal_mol_rad2=(35.0, 60.0),
    angle_theta0_deg=(106.0, 114.0),
    dihedral_v_kcal_mol=(-1.0, 1.0),
)
SEED = 2026
MASS_RANGE_AMU = (20.0, 200.0)


def stage_a(
    root: Path,
    preset: str,
    engine: str,
    platform: str,
    molecules: tuple[str, ...] = MOLECULES,
    cg_engine: str = "lammps",
) -> tuple[Path, dict[str, Any]]:
    """One stage-A record per molecule on one worker; returns the database and the timings."""
    path = root / f"stage_a_{preset}_{engine}.db"
    tic = time.perf_counter()
    report = generate(
        path,
        molecules=list(molecules),
        aa_runs=len(molecules),
        preset=preset,
        ranges=RANGES,
        seed=SEED,
        workers=1,
        threads=1,
        platform=platform,
        engine=engine,
        cg_engine=cg_engine,
    )
    total = time.perf_counter() - tic
    systems = []
    with Database.open(path, readonly=True) as db:
        for record in db.iter_done("A"):
            executor = record.provenance["executor"]
            systems.append(
                {
                    "molecule": record.molecule,
                    "wall_s": executor["task_wall_s"],
                    "engine": record.provenance.get("engine"),
                    "platform": record.provenance.get("platform"),
                    "density_g_cm3": record.scalars["density_g_cm3"],
                    "diffusion_aa_m2_s": record.scalars["diffusion_aa_m2_s"],
                    "acceleration_factor": record.scalars["acceleration_factor"],
                }
            )
        failures = [f"{f['molecule']}: {f['error']}" for f in db.failures()]
    for row in systems:
        print(
            f"  stage A {preset:>5} {row['engine']:>7} {row['molecule']:>24}: "
            f"{row['wall_s']:7.1f} s",
            flush=True,
        )
    result = {
        "preset": preset,
        "engine_requested": engine,
        "engine": report.engine,
        "systems": systems,
        "failed": failures,
        "stage_wall_s": report.stages["A"].wall_s,
        "total_wall_s": total,
        "cluster_overhead_s": total - report.stages["A"].wall_s,
    }
    return path, result


def stage_b(
    parents_db: Path,
    root: Path,
    workers: int,
    n_records: int,
    platform: str,
    cg_engine: str = "lammps",
    stage: str = "B",
) -> dict:
    """``n_records`` stage-B (or, with ``stage="C"``, stage-C) records on ``workers`` local
    workers from a copy of the parents."""
    path = root / f"stage_{stage.lower()}_{workers}w.db"
    shutil.copyfile(parents_db, path)
    runs = {"mass_runs": n_records} if stage == "B" else {"perturbed_runs": n_records}
    tic = time.perf_counter()
    report = generate(
        path,
        **runs,
        preset="tiny",
        seed=SEED,
        mass_range_amu=MASS_RANGE_AMU,
        workers=workers,
        threads=1,
        platform=platform,
        cg_engine=cg_engine,
    )
    total = time.perf_counter() - tic
    name = stage
    stage_report = report.stages[name]
    with Database.open(path, readonly=True) as db:
        task_s = [r.provenance["executor"]["task_wall_s"] for r in db.iter_done(name)]
        reasons = [f["error"] for f in db.failures() if f["stage"] == name]
    row = {
        "workers": workers,
        "records": n_records,
        "done": stage_report.done,
        "failed": stage_report.failed,
        "failure_reasons": reasons,
        "stage_wall_s": stage_report.wall_s,
        "records_per_hour": stage_report.records_per_hour,
        "mean_task_wall_s": float(np.mean(task_s)) if task_s else None,
        "cluster_overhead_s": total
        - sum(report.stages[s].wall_s for s in report.stages if s != name)
        - stage_report.wall_s,
    }
    mean = row["mean_task_wall_s"]
    print(
        f"  stage {name} {workers} worker(s): {stage_report.done}/{n_records} done in "
        f"{stage_report.wall_s:6.1f} s -> {stage_report.records_per_hour:7.1f} records/hour "
        f"(mean task {'-' if mean is None else f'{mean:.1f}'} s)",
        flush=True,
    )
    return row


def _efficiency(rows: list[dict], stage: str) -> float | None:
    """rate(2 workers) / (2 rate(1 worker)) of one stage's rows, or None."""
    rates = {r["workers"]: r["records_per_hour"] for r in rows}
    if 1 in rates and 2 in rates and rates[1] > 0:
        efficiency = rates[2] / (2.0 * rates[1])
        print(f"  stage {stage} parallel efficiency (2 workers): {efficiency:.2f}")
        return efficiency
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["openmm", "gromacs"])
    parser.add_argument("--quick-molecule", default=None, help="add one quick-preset system")
    parser.add_argument("--platform", default="cpu", help="OpenMM platform")
    parser.add_argument("--cg-engine", default="lammps", help="CG engine of IBI and stage B")
    parser.add_argument("--b-records", type=int, default=8)
    parser.add_argument("--c-records", type=int, default=8, help="stage-C records (0: skip)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    engines = [e for e in args.engines if e != "gromacs" or shutil.which("gmx")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cgforge-bench-") as tmp:
        root = Path(tmp)
        stage_a_results = []
        parents = None
        for engine in engines:
            path, result = stage_a(root, "tiny", engine, args.platform, cg_engine=args.cg_engine)
            stage_a_results.append(result)
            parents = parents or path
        if args.quick_molecule:
            _, result = stage_a(
                root, "quick", engines[0], args.platform, (args.quick_molecule,), args.cg_engine
            )
            stage_a_results.append(result)
        stage_b_results = [
            stage_b(parents, root, w, args.b_records, args.platform, args.cg_engine)
            for w in args.workers
        ]
        stage_c_results = [
            stage_b(parents, root, w, args.c_records, args.platform, args.cg_engine, stage="C")
            for w in args.workers
            if args.c_records > 0
        ]
    load_after = os.getloadavg()
    efficiency = _efficiency(stage_b_results, "B")
    efficiency_c = _efficiency(stage_c_results, "C")
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    result = {
        "benchmark": "db_generate",
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "settings": {
            "stage_c_records": args.c_records,
            "molecules": list(MOLECULES),
            "ranges": RANGES.to_dict(),
            "seed": SEED,
            "stage_b_preset": "tiny",
            "stage_b_mass_range_amu": list(MASS_RANGE_AMU),
            "threads_per_worker": 1,
            "platform": args.platform,
            "cg_engine": args.cg_engine,
        },
        "stage_a": stage_a_results,
        "stage_b": stage_b_results,
        "parallel_efficiency_2_workers": efficiency,
        "stage_c": stage_c_results,
        "stage_c_parallel_efficiency_2_workers": efficiency_c,
    }
    write_json(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
