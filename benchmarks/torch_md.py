"""Torch CG MD speed: steps/s of a one-bead liquid with the ``pair_table`` model in TorchMD.

The system is the one of ``benchmarks/cg_md.py`` (a 3-methylpentane-like one-bead liquid,
Lennard-Jones ε = 2.5 kJ/mol, σ = 0.55 nm tabulated every 0.005 nm and tapered to zero over the
last 0.1 nm before the 1.4 nm cutoff, 86.18 amu beads at 4.6 nm⁻³, 298.15 K, 5 fs time step),
integrated by :class:`cgforge.engines.torch_md.TorchMD` (velocity Verlet + Bussi thermostat,
Verlet neighbour list with a 0.1 nm skin, forces and virial by autograd) with
:class:`cgforge.methods.gnn.pair.TabulatedPairModel` in float64 and float32, on the CPU (and
CUDA when torch sees a GPU). Besides whole steps it times one force evaluation with a fresh
neighbour search and one with a valid Verlet list. When ``benchmarks/results/cg_md.json``
holds OpenMM's speed for the same system (the ``table`` variant) the ratio is reported.

Torch's intra-op threads are set with ``--threads`` (default 1: on a shared machine more threads
than free cores make torch far slower, not faster). Prints a table and writes
``benchmarks/results/torch_md.json`` with the machine's load average before and after.

    python benchmarks/torch_md.py                       # 1000 beads, 200 steps, CPU (+ CUDA)
    python benchmarks/torch_md.py --sizes 1000 4000 --steps 100 --threads 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

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
from cgforge.engines.cg_system import lattice_positions
from cgforge.engines.torch_md import DEFAULT_SKIN_NM, TorchMD
from cgforge.fileio import write_json
from cgforge.methods.gnn.neighbors import NeighborCache, use_neighbor_cache
from cgforge.methods.gnn.pair import TabulatedPairModel

RESULTS = Path(__file__).parent / "results" / "torch_md.json"
OPENMM_RESULTS = Path(__file__).parent / "results" / "cg_md.json"
TABLE_DR_NM = 0.005


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_forces(model, engine: TorchMD, repeats: int, skin_nm: float) -> float:
    """Seconds per energy/force/virial evaluation (fresh search when skin_nm is None)."""
    pos = engine.positions_nm.to(model.dtype)
    box = engine.box_nm.to(model.dtype)
    cache = NeighborCache(skin_nm)
    with use_neighbor_cache(cache):
        model.energy_forces_virial(pos, box)  # builds the list
        _sync(engine.device)
        tic = time.perf_counter()
        for _ in range(repeats):
            if skin_nm == 0.0:
                cache.clear()
            model.energy_forces_virial(pos, box)
        _sync(engine.device)
    return (time.perf_counter() - tic) / repeats


def measure(n: int, steps: int, device: str, dtype: torch.dtype) -> dict:
    """Steps/s of ``steps`` NVT steps after an equilibration of ``steps // 2`` steps."""
    box = (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)
    model = TabulatedPairModel.from_potential(lj_table(TABLE_DR_NM)).to(dtype)
    engine = TorchMD(
        model,
        lattice_positions(n, box, seed=1),
        box,
        MASS_AMU,
        timestep_fs=TIMESTEP_PS * 1e3,
        temperature_K=TEMPERATURE_K,
        tau_ps=0.5,
        seed=1,
        device=device,
    )
    engine.run(max(20, steps // 2), sample_interval=max(20, steps // 2))  # warm-up
    result = engine.run(steps, sample_interval=steps)
    thermo = result.thermo
    fresh = _time_forces(model, engine, 5, 0.0)
    cached = _time_forces(model, engine, 20, DEFAULT_SKIN_NM)
    steps_per_s = result.steps_per_s
    return {
        "n_beads": n,
        "box_nm": box,
        "device": result.device,
        "dtype": str(dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "steps": steps,
        "seconds": result.wall_s,
        "steps_per_s": steps_per_s,
        "ns_per_day": steps_per_s * TIMESTEP_PS * 86400.0 / 1000.0,
        "neighbor_builds": result.neighbor_builds,
        "force_eval_fresh_search_ms": fresh * 1e3,
        "force_eval_verlet_list_ms": cached * 1e3,
        "temperature_K": float(thermo["temperature_K"][-1]),
        "potential_energy_per_bead_kj_mol": float(thermo["potential_kJ_mol"][-1]) / n,
    }


def openmm_reference() -> dict[int, float]:
    """OpenMM CPU steps/s of the ``table`` variant by bead count, from cg_md.json if present."""
    if not OPENMM_RESULTS.is_file():
        return {}
    data = json.loads(OPENMM_RESULTS.read_text())
    return {
        int(r["n_beads"]): float(r["steps_per_s"])
        for r in data.get("results", [])
        if r.get("variant") == "table" and r.get("platform") == "CPU"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--steps", type=int, default=200, help="timed steps at 1000 beads")
    parser.add_argument("--min-steps", type=int, default=40)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    openmm = openmm_reference()
    load_before = os.getloadavg()
    rows = []
    for device in devices:
        for n in args.sizes:
            steps = max(args.min_steps, round(args.steps * 1000 / n))
            for name in args.dtypes:
                row = measure(n, steps, device, getattr(torch, name))
                reference = openmm.get(n)
                row["openmm_cpu_table_steps_per_s"] = reference
                row["speed_vs_openmm_cpu_table"] = (
                    row["steps_per_s"] / reference if reference else math.nan
                )
                rows.append(row)
                print(
                    f"  {row['device']:>5} {n:>6} {row['dtype']:>8}: "
                    f"{row['steps_per_s']:8.1f} steps/s",
                    flush=True,
                )
    load_after = os.getloadavg()
    print(
        f"\n{'device':>6} {'beads':>6} {'dtype':>8} {'steps/s':>9} {'ns/day':>8} "
        f"{'F fresh ms':>11} {'F Verlet ms':>12} {'x OpenMM':>9}"
    )
    for row in rows:
        print(
            f"{row['device']:>6} {row['n_beads']:>6} {row['dtype']:>8} {row['steps_per_s']:>9.1f} "
            f"{row['ns_per_day']:>8.1f} {row['force_eval_fresh_search_ms']:>11.1f} "
            f"{row['force_eval_verlet_list_ms']:>12.1f} {row['speed_vs_openmm_cpu_table']:>9.2f}"
        )
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    result = {
        "benchmark": "torch_md",
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "devices_not_present": sorted(set(args.devices) - set(devices)),
        "system": {
            "model": "pair_table (TabulatedPairModel), LJ eps 2.5 kJ/mol, sigma 0.55 nm",
            "table_dr_nm": TABLE_DR_NM,
            "mass_amu": MASS_AMU,
            "number_density_nm3": NUMBER_DENSITY_NM3,
            "cutoff_nm": CUTOFF_NM,
            "switch_width_nm": SWITCH_WIDTH_NM,
            "temperature_K": TEMPERATURE_K,
            "timestep_ps": TIMESTEP_PS,
            "neighbor_skin_nm": DEFAULT_SKIN_NM,
            "integrator": "velocity Verlet + Bussi thermostat (tau 0.5 ps)",
            "torch_threads": args.threads,
        },
        "results": rows,
    }
    write_json(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
