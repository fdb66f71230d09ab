"""CG MD speed: steps/s of a one-bead liquid with a tabulated pair potential on OpenMM.

System: a 3-methylpentane-like one-bead liquid, Lennard-Jones ε = 2.5 kJ/mol, σ = 0.55 nm,
86.18 amu beads at a number density of 4.6 nm⁻³, 298.15 K, cutoff 1.4 nm, time step 5 fs,
Nosé–Hoover NVT, periodic box. The same pair interaction is timed three ways:

* ``table``: the production path of cgforge (:func:`cgforge.engines.cg_system.create_cg_system`),
  the LJ tabulated on the IBI grid (0.005 nm by default), tapered to zero over the last 0.1 nm
  (:meth:`TabulatedPotential.smooth_cutoff`) and read by OpenMM as a ``Continuous1DFunction``
  in a ``CustomNonbondedForce``;
* ``custom_analytic``: ``CustomNonbondedForce`` with the LJ formula, OpenMM's switching
  function from 1.3 to 1.4 nm;
* ``nonbonded``: OpenMM's built-in ``NonbondedForce`` LJ (``CutoffPeriodic``, same switching,
  no dispersion correction).

The two analytic variants switch U(r) instead of shifting and tapering it, so their energies
differ from the table's by a constant inside 1.3 nm; the cost per step is what is compared.
Prints a table and writes ``benchmarks/results/cg_md.json`` (with the load average of the
machine before and after, since other jobs may share it).

    python benchmarks/cg_md.py                          # 1000 and 8000 beads, CPU (+ CUDA)
    python benchmarks/cg_md.py --sizes 1000 --steps 200 --platforms cpu
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import openmm

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.engines.cg_system import create_cg_system, lattice_positions
from cgforge.engines.md import select_platform
from cgforge.errors import InputError
from cgforge.fileio import write_json
from cgforge.potentials import TabulatedPotential

RESULTS = Path(__file__).parent / "results" / "cg_md.json"

EPSILON_KJ_MOL = 2.5
SIGMA_NM = 0.55
MASS_AMU = 86.18
NUMBER_DENSITY_NM3 = 4.6
CUTOFF_NM = 1.4
SWITCH_WIDTH_NM = 0.1
TEMPERATURE_K = 298.15
TIMESTEP_PS = 0.005
TABLE_START_NM = 0.3
VARIANTS = ("table", "custom_analytic", "nonbonded")


def lj_table(dr_nm: float) -> TabulatedPotential:
    """The LJ on a uniform grid from 0.3 nm to the cutoff, tapered to zero at the cutoff."""
    n = math.ceil((CUTOFF_NM - TABLE_START_NM) / dr_nm - 1e-9)
    grid = np.linspace(TABLE_START_NM, CUTOFF_NM, n + 1)
    return TabulatedPotential.lj(EPSILON_KJ_MOL, SIGMA_NM, grid).smooth_cutoff(SWITCH_WIDTH_NM)


def _periodic_system(n: int, box: float) -> openmm.System:
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(
        openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0), openmm.Vec3(0, 0, box)
    )
    for _ in range(n):
        system.addParticle(MASS_AMU)
    system.addForce(openmm.CMMotionRemover())
    return system


def build_system(variant: str, n: int, box: float, dr_nm: float) -> openmm.System:
    """The benchmark system of ``n`` beads in a cubic box of edge ``box`` nm."""
    if variant == "table":
        return create_cg_system(lj_table(dr_nm), n, box, MASS_AMU)
    system = _periodic_system(n, box)
    if variant == "custom_analytic":
        force = openmm.CustomNonbondedForce("4*eps*((sig/r)^12 - (sig/r)^6)")
        force.addGlobalParameter("eps", EPSILON_KJ_MOL)
        force.addGlobalParameter("sig", SIGMA_NM)
        force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        force.setUseLongRangeCorrection(False)
        for _ in range(n):
            force.addParticle([])
    elif variant == "nonbonded":
        force = openmm.NonbondedForce()
        force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
        force.setUseDispersionCorrection(False)
        for _ in range(n):
            force.addParticle(0.0, SIGMA_NM, EPSILON_KJ_MOL)
    else:
        raise InputError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    force.setCutoffDistance(CUTOFF_NM)
    force.setUseSwitchingFunction(True)
    force.setSwitchingDistance(CUTOFF_NM - SWITCH_WIDTH_NM)
    system.addForce(force)
    return system


def measure(variant: str, n: int, steps: int, platform_name: str, dr_nm: float) -> dict:
    """Steps/s of ``steps`` NVT steps after minimisation and a short warm-up."""
    box = (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)
    system = build_system(variant, n, box, dr_nm)
    integrator = openmm.NoseHooverIntegrator(TEMPERATURE_K, 1.0, TIMESTEP_PS)
    platform, properties = select_platform(platform_name)
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(lattice_positions(n, box, seed=1))
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 200)
    context.setVelocitiesToTemperature(TEMPERATURE_K, 1)
    integrator.step(max(20, steps // 10))  # warm-up: neighbour lists, kernels
    context.getState(getEnergy=True)
    tic = time.perf_counter()
    integrator.step(steps)
    state = context.getState(getEnergy=True)
    elapsed = time.perf_counter() - tic
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    if not math.isfinite(energy):
        raise RuntimeError(f"{variant} with {n} beads blew up (energy {energy})")
    steps_per_s = steps / elapsed
    threads = platform.getPropertyValue(context, "Threads") if platform.getName() == "CPU" else ""
    return {
        "variant": variant,
        "n_beads": n,
        "box_nm": box,
        "platform": platform.getName(),
        "threads": threads,
        "steps": steps,
        "seconds": elapsed,
        "steps_per_s": steps_per_s,
        "ns_per_day": steps_per_s * TIMESTEP_PS * 86400.0 / 1000.0,
        "potential_energy_per_bead_kj_mol": energy / n,
    }


def available_platforms(wanted: list[str]) -> list[str]:
    count = openmm.Platform.getNumPlatforms()
    names = {openmm.Platform.getPlatform(i).getName().lower() for i in range(count)}
    return [p for p in wanted if p.lower() in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000])
    parser.add_argument(
        "--steps", type=int, default=300, help="timed steps at 1000 beads (scaled as 1000/N)"
    )
    parser.add_argument("--min-steps", type=int, default=50, help="fewest timed steps per run")
    parser.add_argument("--platforms", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--table-dr", type=float, default=0.005, help="table spacing, nm")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    platforms = available_platforms(args.platforms)
    load_before = os.getloadavg()
    rows = []
    for platform_name in platforms:
        for n in args.sizes:
            steps = max(args.min_steps, round(args.steps * 1000 / n))
            for variant in args.variants:
                rows.append(measure(variant, n, steps, platform_name, args.table_dr))
                row = rows[-1]
                print(
                    f"  {row['platform']:>5} {n:>6} {variant:>16}: "
                    f"{row['steps_per_s']:8.1f} steps/s",
                    flush=True,
                )
    load_after = os.getloadavg()
    tables = {
        (r["platform"], r["n_beads"]): r["steps_per_s"] for r in rows if r["variant"] == "table"
    }
    for row in rows:
        row["speed_vs_table"] = row["steps_per_s"] / tables.get(
            (row["platform"], row["n_beads"]), math.nan
        )
    print(
        f"\n{'platform':>8} {'beads':>6} {'variant':>16} {'steps/s':>9} "
        f"{'ns/day':>8} {'x table':>8}"
    )
    for row in rows:
        print(
            f"{row['platform']:>8} {row['n_beads']:>6} {row['variant']:>16} "
            f"{row['steps_per_s']:>9.1f} {row['ns_per_day']:>8.1f} {row['speed_vs_table']:>8.2f}"
        )
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    skipped = sorted(set(p.lower() for p in args.platforms) - {p.lower() for p in platforms})
    result = {
        "benchmark": "cg_md",
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "platforms_not_present": skipped,
        "system": {
            "epsilon_kj_mol": EPSILON_KJ_MOL,
            "sigma_nm": SIGMA_NM,
            "mass_amu": MASS_AMU,
            "number_density_nm3": NUMBER_DENSITY_NM3,
            "cutoff_nm": CUTOFF_NM,
            "switch_width_nm": SWITCH_WIDTH_NM,
            "temperature_K": TEMPERATURE_K,
            "timestep_ps": TIMESTEP_PS,
            "table_dr_nm": args.table_dr,
            "integrator": "NoseHooverIntegrator, collision frequency 1/ps",
        },
        "results": rows,
    }
    write_json(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
