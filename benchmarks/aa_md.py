"""All-atom MD speed: ns/day of OPLS-AA 3-methylpentane at 100, 216 and 500 molecules,
OpenMM and GROMACS side by side.

Same system and settings for both engines, as in production runs: PME, 1.0 nm cutoff (LJ
truncated, long-range correction), HBond constraints, 2 fs, exact geometric combining rules,
Nosé–Hoover NVT after a minimisation. OpenMM times ``integrator.step`` after a warm-up; GROMACS
reports its own ns/day with the counters reset half-way (``mdrun -resethway``: start-up and PME
tuning excluded). Both use every core this process may use. The load average (other users of the
machine) is recorded before and after every measurement. Prints a table and writes
``benchmarks/results/aa_md.json``.

    python benchmarks/aa_md.py                                  # both engines, 100/216/500
    python benchmarks/aa_md.py --sizes 100 --steps 500 --gmx-steps 2000 --engines openmm
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openmm

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.engines.gromacs import (
    GromacsSystem,
    default_threads,
    gmx_version,
    mdp_settings,
    performance_ns_per_day,
    run_gmx,
    write_gro,
    write_mdp,
)
from cgforge.engines.openmm_md import select_platform
from cgforge.engines.openmm_system import create_aa_system
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import SimulationError
from cgforge.molecules import load_molecule
from cgforge.packing import pack_liquid

RESULTS = Path(__file__).parent / "results" / "aa_md.json"
MOLECULE = "3-methylpentane"
TEMPERATURE_K = 298.15
TIMESTEP_PS = 0.002


def _system(n_molecules: int):
    molecule = load_molecule(MOLECULE)
    packed = pack_liquid(molecule, n_molecules, 0.62, seed=1)
    box = np.full(3, packed.box_nm)
    positions = packed.positions_nm  # whole molecules
    cutoff = min(1.0, 0.45 * packed.box_nm)
    return molecule, positions, box, cutoff


def _load() -> float:
    return os.getloadavg()[0]


def measure_openmm(n_molecules: int, steps: int, platform_name: str) -> dict:
    molecule, positions, box, cutoff = _system(n_molecules)
    system = create_aa_system(molecule, n_molecules, box, cutoff_nm=cutoff)
    integrator = openmm.NoseHooverIntegrator(TEMPERATURE_K, 1.0, TIMESTEP_PS)
    platform, properties = select_platform(platform_name)
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
    context.setVelocitiesToTemperature(TEMPERATURE_K, 1)
    integrator.step(max(50, steps // 10))  # warm-up
    context.getState(getEnergy=True)
    load_before = _load()
    tic = time.perf_counter()
    integrator.step(steps)
    context.getState(getEnergy=True)
    elapsed = time.perf_counter() - tic
    return {
        "engine": "openmm",
        "platform": f"OpenMM {openmm.__version__} {platform.getName()}",
        "n_atoms": system.getNumParticles(),
        "cutoff_nm": cutoff,
        "steps": steps,
        "seconds": elapsed,
        "ns_per_day": steps * TIMESTEP_PS * 1e-3 / elapsed * 86400.0,
        "load_before": load_before,
        "load_after": _load(),
    }


def measure_gromacs(n_molecules: int, steps: int, threads: int) -> dict:
    molecule, positions, box, cutoff = _system(n_molecules)
    protocol = MDProtocol(
        temperature_K=TEMPERATURE_K,
        timestep_fs=TIMESTEP_PS * 1e3,
        production_ps=steps * TIMESTEP_PS,
        thermo_interval_ps=0.2,
        sample_interval_ps=steps * TIMESTEP_PS,
    )
    with tempfile.TemporaryDirectory(prefix="cgforge-bench-") as tmp:
        work = Path(tmp)
        system = GromacsSystem.from_molecule(molecule, n_molecules, work / "system.top")
        write_gro(system.topology, positions, box, work / "start.gro", decimals=5)
        write_mdp(work / "min.mdp", mdp_settings("minimize", protocol, cutoff, n_steps=500))
        run_gmx(
            ["grompp", "-f", "min.mdp", "-c", "start.gro", "-p", "system.top", "-o", "min.tpr"],
            work,
            what="grompp",
        )
        run_gmx(
            ["mdrun", "-deffnm", "min", "-ntmpi", "1", "-ntomp", str(threads)],
            work,
            what="mdrun",
            error=SimulationError,
        )
        settings = mdp_settings("production", protocol, cutoff, n_steps=steps)
        settings.update(
            {"gen-vel": "yes", "gen-temp": TEMPERATURE_K, "gen-seed": 1, "nstxout": 0, "nstfout": 0}
        )
        write_mdp(work / "md.mdp", settings)
        run_gmx(
            ["grompp", "-f", "md.mdp", "-c", "min.gro", "-p", "system.top", "-o", "md.tpr"],
            work,
            what="grompp",
        )
        load_before = _load()
        tic = time.perf_counter()
        run_gmx(
            [
                "mdrun",
                "-deffnm",
                "md",
                "-ntmpi",
                "1",
                "-ntomp",
                str(threads),
                "-resethway",
                "-noconfout",
            ],
            work,
            what="mdrun",
            error=SimulationError,
        )
        elapsed = time.perf_counter() - tic
        ns_day = performance_ns_per_day(work / "md.log")
    return {
        "engine": "gromacs",
        "platform": f"GROMACS {gmx_version()} CPU, {threads} OpenMP threads",
        "n_atoms": n_molecules * molecule.n_atoms,
        "cutoff_nm": cutoff,
        "steps": steps,
        "seconds": elapsed,
        "ns_per_day": ns_day,
        "load_before": load_before,
        "load_after": _load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 216, 500])
    parser.add_argument("--steps", type=int, default=1000, help="OpenMM steps")
    parser.add_argument("--gmx-steps", type=int, default=5000, help="GROMACS steps")
    parser.add_argument("--platform", default="auto", help="OpenMM platform")
    parser.add_argument("--threads", type=int, default=default_threads(), help="GROMACS threads")
    parser.add_argument("--engines", nargs="+", default=["openmm", "gromacs"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if "gromacs" in args.engines and shutil.which("gmx") is None:
        print("gmx is not on the PATH: GROMACS is left out", file=sys.stderr)
        args.engines = [e for e in args.engines if e != "gromacs"]
    load_start = os.getloadavg()
    rows = []
    for n in args.sizes:
        row: dict = {"n_molecules": n}
        if "openmm" in args.engines:
            row["openmm"] = measure_openmm(n, args.steps, args.platform)
        if "gromacs" in args.engines:
            row["gromacs"] = measure_gromacs(n, args.gmx_steps, args.threads)
        if "openmm" in row and "gromacs" in row:
            row["gromacs_over_openmm"] = row["gromacs"]["ns_per_day"] / row["openmm"]["ns_per_day"]
        row["n_atoms"] = next(row[e]["n_atoms"] for e in args.engines if e in row)
        rows.append(row)
    print(
        f"{'molecules':>10} {'atoms':>7} {'OpenMM ns/day':>14} {'GROMACS ns/day':>15} "
        f"{'ratio':>7} {'load':>10}"
    )
    for row in rows:
        omm = row.get("openmm", {}).get("ns_per_day", float("nan"))
        gmx = row.get("gromacs", {}).get("ns_per_day", float("nan"))
        loads = [
            row[e][k]
            for e in ("openmm", "gromacs")
            if e in row
            for k in ("load_before", "load_after")
        ]
        print(
            f"{row['n_molecules']:>10} {row['n_atoms']:>7} {omm:>14.2f} {gmx:>15.2f} "
            f"{gmx / omm:>7.2f} {min(loads):>4.1f}-{max(loads):<4.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": "aa_md",
        "system": f"OPLS-AA {MOLECULE}, PME, cutoff min(1.0 nm, 0.45 box), HBond constraints, "
        "2 fs, Nose-Hoover NVT",
        "machine": describe_machine(),
        "load_average_1_5_15_min": {"start": load_start, "end": os.getloadavg()},
        "note": "the machine is shared: load averages above its core count mean other jobs "
        "ran at the same time and both engines were slowed",
        "results": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
