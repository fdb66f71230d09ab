"""Neural CG MD speed: steps/s of TorchMD with a pair model and a SchNet, beside LAMMPS.

The system is the one-bead liquid of ``benchmarks/cg_md.py`` (a 3-methylpentane-like liquid,
86.18 amu beads at 4.6 nm⁻³, 298.15 K, 5 fs time step, started from a jittered lattice), run by
:class:`cgforge.engines.torch_md.TorchMD` (velocity Verlet + Bussi thermostat, Verlet
neighbour list with a 0.1 nm skin, forces and virial by autograd) with two models:

* ``pair``: the Lennard-Jones table of ``cg_md.py`` (ε = 2.5 kJ/mol, σ = 0.55 nm, every 0.005 nm,
  tapered to zero over the last 0.1 nm before the 1.4 nm cutoff) as a
  :class:`~cgforge.potentials.neural.pair.TabulatedPairModel`;
* ``schnet``: a :class:`~cgforge.methods.gnn.schnet.SchNet` of the default size (cutoff 1.0 nm,
  width 64, 3 interactions, 32 Gaussians) with untrained weights (seed 0; the cost of a step
  does not depend on the weights) and the repulsive prior of trained models (σ = 0.45 nm,
  ε = 2.5 kJ/mol, n = 12), so that the untrained liquid stays stable;

for every size (216 and 1,000 beads), dtype (float32, float64) and number of torch intra-op
threads (1, 2), on the CPU (and once on CUDA when torch sees a GPU). Beside them, in the same
run, the same table on the LAMMPS engine through the CG-engine interface
(:func:`cgforge.engines.cg_engine.run_cg_md`, engine ``lammps``, production only, 1 and 2
OpenMP threads; steps/s between its first progress report after 10 % of the run and its last).
Besides whole steps the torch rows time one force evaluation with a fresh neighbour search and
one with a valid Verlet list, and count neighbour-list builds per 100 steps and minor page
faults per step (memory the C library maps afresh; next to none once
:func:`cgforge.engines.torch_md.retain_freed_memory` keeps freed memory, as every CPU engine
does unless ``--glibc-malloc-defaults`` measures glibc's defaults instead: run that alone, as
the setting holds for the whole process). The 216-bead SchNet step is profiled (cProfile) and
the shares of the model's forward pass, its backward pass, the neighbour list and the rest
(integrator, blow-up checks, host transfers) are written as ``profile``.

Prints a table and writes ``benchmarks/results/torch_md.json`` and ``.csv`` (one row per
engine, model, size, dtype and thread count) with the machine description and its load average
before and after (other jobs may share the machine; their load slows every row).

    python benchmarks/torch_md.py                     # 216 and 1000 beads, 1 and 2 threads
    python benchmarks/torch_md.py --quick             # a few steps each: checks that it runs
    python benchmarks/torch_md.py --sizes 1000 --threads 1 --models schnet
    python benchmarks/torch_md.py --glibc-malloc-defaults --no-lammps --out before.json
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import math
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cg_md import (
    CUTOFF_NM,
    MASS_AMU,
    NUMBER_DENSITY_NM3,
    SWITCH_WIDTH_NM,
    TEMPERATURE_K,
    TIMESTEP_PS,
    lj_table,
)
from cgforge.engines.cg_engine import CGSystem, run_cg_md
from cgforge.engines.cg_system import lattice_positions
from cgforge.engines.protocol import MDProtocol
from cgforge.engines.torch_md import DEFAULT_SKIN_NM, DEFAULT_TAU_PS, TorchMD
from cgforge.fileio import write_json, write_text
from cgforge.methods.gnn.schnet import SchNet
from cgforge.potentials.neural.base import EnergyModel
from cgforge.potentials.neural.neighbors import NeighborCache, use_neighbor_cache
from cgforge.potentials.neural.pair import TabulatedPairModel

RESULTS = Path(__file__).parent / "results" / "torch_md.json"
#: Whether the engines keep freed memory (``--glibc-malloc-defaults`` sets it to False).
RETAIN_FREED_MEMORY = True
TABLE_DR_NM = 0.005
MODELS = ("pair", "schnet")
#: The SchNet of the benchmark: default architecture, prior as a trained model has it.
SCHNET = {"cutoff_nm": 1.0, "prior_sigma_nm": 0.45, "prior_epsilon_kj_mol": 2.5}
CSV_COLUMNS = (
    "engine",
    "model",
    "n_beads",
    "device",
    "dtype",
    "threads",
    "steps",
    "seconds",
    "steps_per_s",
    "ns_per_day",
    "speed_vs_lammps",
    "neighbor_builds",
    "neighbor_builds_per_100_steps",
    "minor_page_faults_per_step",
    "force_eval_fresh_search_ms",
    "force_eval_verlet_list_ms",
    "temperature_K",
)


def _box(n: int) -> float:
    return (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(name: str, dtype: torch.dtype) -> EnergyModel:
    """The benchmark's ``pair`` or ``schnet`` model in ``dtype``."""
    if name == "pair":
        return TabulatedPairModel.from_potential(lj_table(TABLE_DR_NM)).to(dtype)
    torch.manual_seed(0)
    return SchNet(**SCHNET).to(dtype)


def make_engine(model: EnergyModel, n: int, device: str) -> TorchMD:
    box = _box(n)
    return TorchMD(
        model,
        lattice_positions(n, box, seed=1),
        box,
        MASS_AMU,
        timestep_fs=TIMESTEP_PS * 1e3,
        temperature_K=TEMPERATURE_K,
        tau_ps=DEFAULT_TAU_PS,
        seed=1,
        device=device,
        retain_freed_memory=RETAIN_FREED_MEMORY,
    )


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _time_forces(model: EnergyModel, engine: TorchMD, repeats: int, fresh: bool) -> float:
    """Seconds per energy/force/virial evaluation (a new neighbour search each when fresh)."""
    pos = engine.positions_nm.to(model.dtype)
    box = engine.box_nm.to(model.dtype)
    cache = NeighborCache(DEFAULT_SKIN_NM)
    with use_neighbor_cache(cache):
        model.energy_forces_virial(pos, box)  # builds the list
        _sync(engine.device)
        tic = time.perf_counter()
        for _ in range(repeats):
            if fresh:
                cache.clear()
            model.energy_forces_virial(pos, box)
        _sync(engine.device)
    return (time.perf_counter() - tic) / repeats


def _row(**values: Any) -> dict[str, Any]:
    steps_per_s = values["steps"] / values["seconds"]
    return {
        **values,
        "steps_per_s": steps_per_s,
        "ns_per_day": steps_per_s * TIMESTEP_PS * 86400.0 / 1000.0,
    }


def measure_torch(
    model_name: str, n: int, steps: int, device: str, dtype: torch.dtype, threads: int, evals: int
) -> dict[str, Any]:
    """Steps/s of ``steps`` NVT steps after a warm-up of ``max(2, steps // 5)`` steps."""
    torch.set_num_threads(threads)
    model = build_model(model_name, dtype)
    engine = make_engine(model, n, device)
    warm = max(2, steps // 5)
    engine.run(warm, sample_interval=warm)
    faults = _minor_faults()
    result = engine.run(steps, sample_interval=steps)
    faults = _minor_faults() - faults
    return _row(
        engine="torch",
        model=model_name,
        n_beads=n,
        box_nm=_box(n),
        device=result.device,
        dtype=str(dtype).replace("torch.", ""),
        threads=threads if engine.device.type == "cpu" else 0,
        steps=steps,
        seconds=result.wall_s,
        neighbor_builds=result.neighbor_builds,
        neighbor_builds_per_100_steps=100.0 * result.neighbor_builds / steps,
        minor_page_faults_per_step=faults / steps,
        force_eval_fresh_search_ms=_time_forces(model, engine, evals, True) * 1e3,
        force_eval_verlet_list_ms=_time_forces(model, engine, evals, False) * 1e3,
        temperature_K=float(result.thermo["temperature_K"][-1]),
        potential_energy_per_bead_kj_mol=float(result.thermo["potential_kJ_mol"][-1]) / n,
    )


def measure_lammps(n: int, steps: int, threads: int, workdir: Path) -> dict[str, Any]:
    """The same table on the LAMMPS engine through :func:`run_cg_md` (production only)."""
    from cgforge.engines.lammps_md import LammpsEngine

    box = _box(n)
    system = CGSystem(lj_table(TABLE_DR_NM), n, box, MASS_AMU)
    protocol = MDProtocol(
        temperature_K=TEMPERATURE_K,
        timestep_fs=TIMESTEP_PS * 1e3,
        equilibration_ps=0.0,
        production_ps=steps * TIMESTEP_PS,
        sample_interval_ps=steps * TIMESTEP_PS / 2,
        thermo_interval_ps=steps * TIMESTEP_PS / 20,
        checkpoint_interval_ps=steps * TIMESTEP_PS,
        save_particles=False,
        engine="lammps",
        seed=1,
    )
    marks: list[tuple[float, int]] = []

    def progress(stage: str, done: int, total: int, speed: float) -> None:
        if stage == "production":
            marks.append((time.perf_counter(), done))

    tic = time.perf_counter()
    run_cg_md(system, protocol, workdir, progress=progress, engine=LammpsEngine(threads=threads))
    seconds = time.perf_counter() - tic
    later = [m for m in marks if m[1] >= steps // 10]
    if len(later) >= 2 and later[-1][1] > later[0][1]:
        timed, seconds = later[-1][1] - later[0][1], later[-1][0] - later[0][0]
    else:  # too few reports: the whole call, set-up included
        timed = steps
    return _row(
        engine="lammps",
        model="pair",
        n_beads=n,
        box_nm=box,
        device="cpu",
        dtype="float64",
        threads=threads,
        steps=timed,
        seconds=seconds,
    )


def profile_step(n: int, steps: int, dtype: torch.dtype) -> dict[str, Any]:
    """cProfile of ``steps`` TorchMD steps of the SchNet: shares of the step's time."""
    torch.set_num_threads(1)
    engine = make_engine(build_model("schnet", dtype), n, "cpu")
    engine.run(2, sample_interval=2)
    faults = _minor_faults()
    profiler = cProfile.Profile()
    profiler.enable()
    result = engine.run(steps, sample_interval=steps)
    profiler.disable()
    faults = _minor_faults() - faults
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _, name), (_, _, _, cum, _) in pstats.Stats(profiler).stats.items():
        key = (Path(filename).name, name)
        cumulative[key] = max(cumulative.get(key, 0.0), cum)
    total = cumulative[("torch_md.py", "run")]
    model = cumulative.get(("base.py", "energy_forces_virial"), 0.0) / total
    backward = cumulative.get(("__init__.py", "grad"), 0.0) / total
    neighbours = cumulative.get(("neighbors.py", "neighbor_pairs"), 0.0) / total
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
    return {
        "model": "schnet",
        "n_beads": n,
        "dtype": str(dtype).replace("torch.", ""),
        "threads": 1,
        "steps": steps,
        "steps_per_s_profiled": result.steps_per_s,
        "neighbor_builds_per_100_steps": 100.0 * result.neighbor_builds / steps,
        "minor_page_faults_per_step": faults / steps,
        "fractions": {
            "model_forward_without_neighbour_list": model - backward - neighbours,
            "model_backward": backward,
            "neighbour_list": neighbours,
            "outside_the_model": 1.0 - model,
        },
        "top_functions": text.getvalue().strip().splitlines()[-9:],
    }


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells = []
        for column in CSV_COLUMNS:
            value = row.get(column)
            cells.append(
                "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
            )
        writer.writerow(cells)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[216, 1000])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU threads")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--pair-steps", type=int, default=200, help="pair steps at 1000 beads")
    parser.add_argument("--schnet-steps", type=int, default=20, help="SchNet steps at 1000 beads")
    parser.add_argument("--lammps-steps", type=int, default=3000, help="at 1000 beads")
    parser.add_argument("--min-steps", type=int, default=10, help="fewest timed torch steps")
    parser.add_argument("--evals", type=int, default=3, help="timed force evaluations")
    parser.add_argument("--no-lammps", action="store_true", help="leave the LAMMPS rows out")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile")
    parser.add_argument(
        "--quick", action="store_true", help="a few steps each (checks that it runs)"
    )
    parser.add_argument(
        "--glibc-malloc-defaults",
        action="store_true",
        help="engines leave glibc malloc's defaults (freed memory returned to the system)",
    )
    parser.add_argument("--out", type=Path, default=None, help=f"default {RESULTS}")
    args = parser.parse_args()
    global RETAIN_FREED_MEMORY
    RETAIN_FREED_MEMORY = not args.glibc_malloc_defaults
    if args.quick:
        args.pair_steps, args.schnet_steps, args.lammps_steps = 10, 1, 200
        args.min_steps, args.evals = 2, 1
    out = args.out or (
        Path(tempfile.gettempdir()) / "cgforge_torch_md_quick.json" if args.quick else RESULTS
    )
    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    threads_before = torch.get_num_threads()
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        print(
            f"  {row['engine']:>6} {row['model']:>6} {row['n_beads']:>5} {row['device']:>6} "
            f"{row['dtype']:>7} {row['threads']} thr: {row['steps_per_s']:9.1f} steps/s",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as scratch:
        for n in args.sizes:
            for device in devices:
                for threads in args.threads if device == "cpu" else [1]:
                    for model_name in args.models:
                        base = args.pair_steps if model_name == "pair" else args.schnet_steps
                        steps = max(args.min_steps, round(base * 1000 / n))
                        for name in args.dtypes:
                            dtype = getattr(torch, name)
                            report(
                                measure_torch(
                                    model_name, n, steps, device, dtype, threads, args.evals
                                )
                            )
            if not args.no_lammps:
                for threads in args.threads:
                    steps = max(100, round(args.lammps_steps * 1000 / n))
                    work = Path(scratch) / f"lammps-{n}-{threads}"
                    report(measure_lammps(n, steps, threads, work))
    lammps = {
        (r["n_beads"], r["threads"]): r["steps_per_s"] for r in rows if r["engine"] == "lammps"
    }
    for row in rows:
        reference = lammps.get((row["n_beads"], row["threads"]))
        row["speed_vs_lammps"] = row["steps_per_s"] / reference if reference else math.nan
    profile = None
    if not args.no_profile:
        profile = profile_step(216, max(args.min_steps, 2 * args.schnet_steps), torch.float64)
    torch.set_num_threads(threads_before)
    load_after = os.getloadavg()
    print(
        f"\n{'engine':>6} {'model':>6} {'beads':>5} {'device':>6} {'dtype':>7} {'thr':>3} "
        f"{'steps/s':>9} {'ns/day':>8} {'x LAMMPS':>8} {'F fresh ms':>10} {'F Verlet ms':>11} "
        f"{'NL/100':>6} {'faults':>7}"
    )
    for r in rows:
        fresh = r.get("force_eval_fresh_search_ms", math.nan)
        cached = r.get("force_eval_verlet_list_ms", math.nan)
        builds = r.get("neighbor_builds_per_100_steps", math.nan)
        faults = r.get("minor_page_faults_per_step", math.nan)
        print(
            f"{r['engine']:>6} {r['model']:>6} {r['n_beads']:>5} {r['device']:>6} "
            f"{r['dtype']:>7} {r['threads']:>3} {r['steps_per_s']:>9.1f} {r['ns_per_day']:>8.1f} "
            f"{r['speed_vs_lammps']:>8.3f} {fresh:>10.2f} {cached:>11.2f} {builds:>6.1f} "
            f"{faults:>7.0f}"
        )
    if profile is not None:
        shares = ", ".join(f"{k} {v:.1%}" for k, v in profile["fractions"].items())
        print(
            f"profile of the {profile['n_beads']}-bead SchNet step: {shares}; "
            f"{profile['neighbor_builds_per_100_steps']:.1f} neighbour-list builds per 100 steps, "
            f"{profile['minor_page_faults_per_step']:.0f} page faults per step"
        )
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    result = {
        "benchmark": "torch_md",
        "quick": args.quick,
        "retain_freed_memory": RETAIN_FREED_MEMORY,
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "devices_not_present": sorted(set(args.devices) - set(devices)),
        "system": {
            "pair_model": "pair_table (TabulatedPairModel), LJ eps 2.5 kJ/mol, sigma 0.55 nm",
            "schnet_model": {**SCHNET, "width": 64, "n_interactions": 3, "n_rbf": 32},
            "table_dr_nm": TABLE_DR_NM,
            "mass_amu": MASS_AMU,
            "number_density_nm3": NUMBER_DENSITY_NM3,
            "pair_cutoff_nm": CUTOFF_NM,
            "switch_width_nm": SWITCH_WIDTH_NM,
            "temperature_K": TEMPERATURE_K,
            "timestep_ps": TIMESTEP_PS,
            "neighbor_skin_nm": DEFAULT_SKIN_NM,
            "integrator": f"velocity Verlet + Bussi thermostat (tau {DEFAULT_TAU_PS} ps)",
            "lammps": "run_cg_md engine lammps, same table, Nose-Hoover NVT production",
        },
        "results": rows,
        "profile": profile,
    }
    write_json(out, result)
    write_text(out.with_suffix(".csv"), _csv_text(rows))
    print(f"written {out} and {out.with_suffix('.csv')}")


if __name__ == "__main__":
    main()
