"""All-atom MD speed: ns/day of OPLS-AA 3-methylpentane at 100, 216 and 500 molecules.

Same settings as production runs: PME, 1.0 nm cutoff, HBond constraints, 2 fs, exact geometric
combining rules, Nosé–Hoover NVT. Prints a table and writes ``benchmarks/results/aa_md.json``.

    python benchmarks/aa_md.py                      # CPU (and CUDA where present)
    python benchmarks/aa_md.py --sizes 100 --steps 500 --platform cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import openmm

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.builder import pack_liquid
from cgforge.engines.md import select_platform
from cgforge.engines.openmm_system import create_aa_system
from cgforge.molecules import load_molecule

RESULTS = Path(__file__).parent / "results" / "aa_md.json"


def measure(n_molecules: int, steps: int, platform_name: str) -> dict:
    molecule = load_molecule("3-methylpentane")
    packed = pack_liquid(molecule, n_molecules, 0.62, seed=1)
    box = np.full(3, packed.box_nm)
    cutoff = min(1.0, 0.45 * packed.box_nm)
    system = create_aa_system(molecule, n_molecules, box, cutoff_nm=cutoff)
    integrator = openmm.NoseHooverIntegrator(298.15, 1.0, 0.002)
    platform, properties = select_platform(platform_name)
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(packed.positions_nm)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
    context.setVelocitiesToTemperature(298.15, 1)
    integrator.step(max(50, steps // 10))  # warm-up
    context.getState(getEnergy=True)
    tic = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)
    elapsed = time.perf_counter() - tic
    ns_day = steps * 0.002e-3 / elapsed * 86400.0
    return {
        "n_molecules": n_molecules,
        "n_atoms": system.getNumParticles(),
        "platform": platform.getName(),
        "cutoff_nm": cutoff,
        "steps": steps,
        "seconds": elapsed,
        "ns_per_day": ns_day,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 216, 500])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--platform", default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = [measure(n, args.steps, args.platform) for n in args.sizes]
    print(f"{'molecules':>10} {'atoms':>7} {'platform':>9} {'ns/day':>9}")
    for row in rows:
        print(
            f"{row['n_molecules']:>10} {row['n_atoms']:>7} {row['platform']:>9} {row['ns_per_day']:>9.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"benchmark": "aa_md", "machine": describe_machine(), "results": rows}, indent=2)
        + "\n"
    )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
