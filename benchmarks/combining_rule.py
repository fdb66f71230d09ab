"""Speed of the exact geometric-combining-rule formulations on OpenMM's CPU platform.

Builds liquids of ``--n-molecules`` molecules (default 100 × 3-methylpentane, then
100 × ethylbenzene) at their experimental density with packmol, relaxes them briefly, then
times Langevin dynamics (2 fs, H-bond constraints, 1.0 nm cutoff, PME) for every ``combining``
mode of :func:`cgforge.engines.openmm_system.create_aa_system`, in interleaved rounds to
average out load from other processes. Also checks on the Reference platform that all modes
give the same energy and forces.

Writes ``benchmarks/results/combining_rule.json`` (ns/day per mode and the machine).

    PYTHONPATH=src .venv/bin/python benchmarks/combining_rule.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import openmm
from openmm import unit

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.engines.openmm_system import COMBINING_MODES, create_aa_system
from cgforge.molecules import get_builtin, load_molecule
from cgforge.packing import pack_liquid

RESULTS = Path(__file__).resolve().parent / "results" / "combining_rule.json"
TIMESTEP_PS = 0.002
TEMPERATURE_K = 298.15
REFERENCE_MODE = "lb_only_inexact"


def make_context(system: openmm.System, threads: int, seed: int) -> openmm.Context:
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K, 1.0, TIMESTEP_PS)
    integrator.setRandomNumberSeed(seed)
    cpu = openmm.Platform.getPlatformByName("CPU")
    return openmm.Context(system, integrator, cpu, {"Threads": str(threads)})


def run_molecule(name: str, n_molecules: int, steps: int, warmup: int, rounds: int, threads: int):
    """Timings (ns/day per mode) and cross-mode agreement for one liquid."""
    molecule = load_molecule(name, seed=0)
    density = get_builtin(name).density_g_cm3
    packed = pack_liquid(molecule, n_molecules, density, seed=1)
    edge = packed.box_nm
    box = np.full(3, edge)
    positions = packed.positions_nm  # whole molecules

    # brief relaxation with the default formulation so that every mode starts from a liquid
    context = make_context(create_aa_system(molecule, n_molecules, box), threads, seed=1)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
    context.setVelocitiesToTemperature(TEMPERATURE_K, 1)
    context.getIntegrator().step(200)
    state = context.getState(getPositions=True, getVelocities=True)
    positions = state.getPositions(asNumpy=True)
    velocities = state.getVelocities(asNumpy=True)
    del context

    def build(mode: str) -> openmm.System:
        if mode != REFERENCE_MODE:
            return create_aa_system(molecule, n_molecules, box, combining=mode)
        system = create_aa_system(molecule, n_molecules, box, combining="correction")
        for index in reversed(range(system.getNumForces())):
            if system.getForce(index).getName() == "lj":
                system.removeForce(index)
        return system

    modes = (*COMBINING_MODES, REFERENCE_MODE)
    agreement = {}
    reference = None
    for mode in modes:
        ctx = openmm.Context(
            build(mode),
            openmm.VerletIntegrator(TIMESTEP_PS),
            openmm.Platform.getPlatformByName("Reference"),
        )
        ctx.setPositions(positions)
        st = ctx.getState(getEnergy=True, getForces=True)
        energy = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        forces = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        if reference is None:
            reference = (energy, forces)
        agreement[mode] = {
            "potential_energy_kJ_mol": energy,
            "energy_diff_vs_custom_kJ_mol": None,
            "max_force_diff_vs_custom_kJ_mol_nm": None,
            "_forces": forces,
        }
        del ctx
    custom = agreement["custom"]
    for entry in agreement.values():
        entry["energy_diff_vs_custom_kJ_mol"] = (
            entry["potential_energy_kJ_mol"] - custom["potential_energy_kJ_mol"]
        )
        entry["max_force_diff_vs_custom_kJ_mol_nm"] = float(
            np.abs(entry["_forces"] - custom["_forces"]).max()
        )
    for entry in agreement.values():
        del entry["_forces"]

    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode in modes:
            ctx = make_context(build(mode), threads, seed=2)
            ctx.setPositions(positions)
            ctx.setVelocities(velocities)
            integrator = ctx.getIntegrator()
            integrator.step(warmup)
            ctx.getState(getEnergy=True)  # synchronise before timing
            start = time.perf_counter()
            integrator.step(steps)
            ctx.getState(getEnergy=True)
            elapsed = time.perf_counter() - start
            timings[mode].append(steps * TIMESTEP_PS * 1.0e-3 / elapsed * 86400.0)
            del ctx

    best = {mode: float(np.max(v)) for mode, v in timings.items()}
    median = {mode: float(np.median(v)) for mode, v in timings.items()}
    fastest = max(COMBINING_MODES, key=best.get)
    return {
        "molecule": molecule.name,
        "n_molecules": n_molecules,
        "n_atoms": n_molecules * molecule.n_atoms,
        "box_nm": float(edge),
        "density_g_cm3": density,
        "steps_per_round": steps,
        "rounds": rounds,
        "ns_per_day_best": best,
        "ns_per_day_median": median,
        "ns_per_day_rounds": timings,
        "speedup_vs_custom_best": {m: v / best["custom"] for m, v in best.items()},
        "fastest_exact": fastest,
        "agreement_reference_platform": agreement,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--molecules",
        default="3-methylpentane:300,ethylbenzene:150",
        help="comma-separated name:steps (timed steps per mode and round)",
    )
    parser.add_argument("--n-molecules", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=25, help="untimed steps per context")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_start = os.getloadavg()[0]
    systems = []
    for item in args.molecules.split(","):
        name, _, steps = item.partition(":")
        result = run_molecule(
            name, args.n_molecules, int(steps or 300), args.warmup, args.rounds, args.threads
        )
        systems.append(result)
        for mode, value in result["ns_per_day_best"].items():
            print(
                f"{result['molecule']:>16s} {mode:>22s}: best {value:7.2f} ns/day, "
                f"median {result['ns_per_day_median'][mode]:7.2f}"
            )
    output = {
        "description": (
            "ns/day of Langevin MD (2 fs, HBond constraints, PME, cutoff 1.0 nm, dispersion "
            "correction, 298.15 K) on the OpenMM CPU platform for each exact geometric-"
            f"combining mode of create_aa_system, plus '{REFERENCE_MODE}' (NonbondedForce "
            "with Lorentz-Berthelot mixing only: NOT exact, the speed limit for comparison). "
            "'best' is the fastest round (least disturbed by other load), 'median' the median."
        ),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            **describe_machine(),
            "openmm_version": openmm.__version__,
            "openmm_cpu_threads": args.threads,
            "load_average_1min_at_start": load_start,
            "load_average_1min_at_end": os.getloadavg()[0],
        },
        "settings": {"cutoff_nm": 1.0, "timestep_ps": TIMESTEP_PS, "warmup_steps": args.warmup},
        "systems": systems,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=2) + "\n")
    print(f"written {args.output}")


if __name__ == "__main__":
    main()
