"""CG MD speed: steps/s of a one-bead liquid with a tabulated pair potential on each CG engine.

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

The same table on the other CG engines (:mod:`cgforge.engines.cg_engine`):

* ``lammps``: cgforge's LAMMPS path (:class:`cgforge.engines.lammps_md.LammpsRunner`), the
  production stage as every CG run has it: thermo every 0.1 ps, positions gathered every 1 ps,
  checkpoint at the end; steps/s between its first and last progress report;
* ``lammps_plain``: a plain LAMMPS input of the same system (same table file, same neighbour
  settings, ``fix nvt``, thermo every 20 steps, one ``run``): what cgforge's path is measured
  against (its Python overhead);
* ``torch``: :class:`cgforge.engines.torch_md.TorchMD` with the table as a float64 pair model.

CPU variants run with 1 and 2 threads (``--threads``): OpenMM's ``Threads``, LAMMPS's OPENMP
package (``-sf omp``), torch's intra-op threads. ``ratios`` in the JSON give, per size and
thread count, LAMMPS / OpenMM table, cgforge LAMMPS / plain LAMMPS and torch / OpenMM table.
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
from cgforge.engines.cg_engine import CGSystem
from cgforge.engines.cg_system import create_cg_system, lattice_positions
from cgforge.engines.openmm_md import select_platform
from cgforge.engines.protocol import MDProtocol
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
OPENMM_VARIANTS = ("table", "custom_analytic", "nonbonded")
ENGINE_VARIANTS = ("lammps", "lammps_plain", "torch")
VARIANTS = OPENMM_VARIANTS + ENGINE_VARIANTS


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
        raise InputError(
            f"unknown OpenMM variant {variant!r}; choose one of {', '.join(OPENMM_VARIANTS)}"
        )
    force.setCutoffDistance(CUTOFF_NM)
    force.setUseSwitchingFunction(True)
    force.setSwitchingDistance(CUTOFF_NM - SWITCH_WIDTH_NM)
    system.addForce(force)
    return system


def measure(
    variant: str, n: int, steps: int, platform_name: str, dr_nm: float, threads: int = 0
) -> dict:
    """Steps/s of ``steps`` NVT steps after minimisation and a short warm-up (OpenMM;
    ``threads`` > 0 sets the CPU platform's thread count)."""
    box = (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)
    system = build_system(variant, n, box, dr_nm)
    integrator = openmm.NoseHooverIntegrator(TEMPERATURE_K, 1.0, TIMESTEP_PS)
    platform, properties = select_platform(platform_name)
    if threads > 0 and platform.getName() == "CPU":
        properties = {**properties, "Threads": str(threads)}
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


def _engine_row(variant: str, n: int, box: float, threads: int, steps: int, seconds: float) -> dict:
    steps_per_s = steps / seconds
    return {
        "variant": variant,
        "n_beads": n,
        "box_nm": box,
        "platform": "CPU",
        "threads": str(threads),
        "steps": steps,
        "seconds": seconds,
        "steps_per_s": steps_per_s,
        "ns_per_day": steps_per_s * TIMESTEP_PS * 86400.0 / 1000.0,
    }


def measure_lammps(n: int, steps: int, threads: int, dr_nm: float, workdir: Path) -> dict:
    """cgforge's LAMMPS path: the production stage of a run at the start box."""
    from cgforge.engines.lammps_md import LammpsRunner

    box = (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)
    system = CGSystem(lj_table(dr_nm), n, box, MASS_AMU)
    protocol = MDProtocol(
        temperature_K=TEMPERATURE_K,
        timestep_fs=TIMESTEP_PS * 1e3,
        equilibration_ps=0.0,
        production_ps=steps * TIMESTEP_PS,
        sample_interval_ps=1.0,
        thermo_interval_ps=0.1,
        checkpoint_interval_ps=steps * TIMESTEP_PS,
        save_particles=False,
        engine="lammps",
        seed=1,
    )
    marks: list[tuple[float, int]] = []

    def progress(stage: str, done: int, total: int, speed: float) -> None:
        if stage == "production":
            marks.append((time.perf_counter(), done))

    LammpsRunner(system, protocol, workdir, progress=progress, threads=threads).run()
    start = next(m for m in marks if m[1] >= steps // 10)  # after set-up and warm-up
    end = marks[-1]
    return _engine_row("lammps", n, box, threads, end[1] - start[1], end[0] - start[0])


def measure_lammps_plain(n: int, steps: int, threads: int, dr_nm: float, workdir: Path) -> dict:
    """A plain LAMMPS input of the same system, timed over one ``run``."""
    from cgforge.engines.lammps_lib import Lammps
    from cgforge.engines.lammps_md import NEIGHBOR_SKIN_A, write_pair_table

    box = (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)
    edge_a = box * 10.0
    xyz_a = lattice_positions(n, box, seed=1) * 10.0
    workdir.mkdir(parents=True, exist_ok=True)
    with Lammps(threads=threads) as lmp:
        lmp.commands(
            [
                "units real",
                "atom_style atomic",
                "atom_modify map array",
                f"region b block 0 {edge_a} 0 {edge_a} 0 {edge_a}",
                "create_box 1 b",
                f"mass 1 {MASS_AMU}",
            ]
        )
        lmp.handle.create_atoms(n, list(range(1, n + 1)), [1] * n, xyz_a.ravel().tolist())
        lmp.commands(write_pair_table(lj_table(dr_nm), workdir / "plain.table"))
        lmp.commands(
            [
                f"neighbor {NEIGHBOR_SKIN_A} bin",
                "neigh_modify every 1 delay 0 check yes",
                f"timestep {TIMESTEP_PS * 1e3}",
                "minimize 1.0e-8 1.0e-6 2000 20000",
                "reset_timestep 0",
                f"velocity all create {TEMPERATURE_K} 4 mom yes rot no dist gaussian",
                f"fix nvt all nvt temp {TEMPERATURE_K} {TEMPERATURE_K} 1000",
                "thermo 20",
                f"run {max(20, steps // 10)}",
            ]
        )
        tic = time.perf_counter()
        lmp.command(f"run {steps}")
        seconds = time.perf_counter() - tic
    return _engine_row("lammps_plain", n, box, threads, steps, seconds)


def measure_torch(n: int, steps: int, threads: int, dr_nm: float) -> dict:
    """TorchMD with the table as a float64 pair model on the CPU."""
    import torch

    from cgforge.engines.torch_md import TorchMD
    from cgforge.potentials.neural.pair import TabulatedPairModel

    torch.set_num_threads(threads)
    box = (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)
    engine = TorchMD(
        TabulatedPairModel.from_potential(lj_table(dr_nm)),
        lattice_positions(n, box, seed=1),
        box,
        MASS_AMU,
        timestep_fs=TIMESTEP_PS * 1e3,
        temperature_K=TEMPERATURE_K,
        seed=1,
        device="cpu",
    )
    warm = max(10, steps // 5)
    engine.run(warm, sample_interval=warm)
    result = engine.run(steps, sample_interval=steps)
    return _engine_row("torch", n, box, threads, steps, result.wall_s)


def ratios(rows: list[dict]) -> list[dict]:
    """Per size and CPU thread count: LAMMPS / OpenMM table, LAMMPS / plain LAMMPS, torch /
    OpenMM table (steps/s ratios)."""
    speed = {
        (r["variant"], r["n_beads"], str(r["threads"])): r["steps_per_s"]
        for r in rows
        if r["platform"] == "CPU"
    }
    out = []
    for n, threads in sorted({(k[1], k[2]) for k in speed}):

        def get(variant: str, n: int = n, threads: str = threads) -> float:
            return speed.get((variant, n, threads), math.nan)

        out.append(
            {
                "n_beads": n,
                "threads": threads,
                "lammps_over_openmm_table": get("lammps") / get("table"),
                "lammps_over_plain_lammps": get("lammps") / get("lammps_plain"),
                "torch_over_openmm_table": get("torch") / get("table"),
            }
        )
    return out


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
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to time"
    )
    parser.add_argument(
        "--lammps-steps", type=int, default=3000, help="timed LAMMPS steps at 1000 beads"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    platforms = available_platforms(args.platforms)
    load_before = os.getloadavg()
    rows = []

    def report(row: dict) -> None:
        rows.append(row)
        print(
            f"  {row['platform']:>5} {row['n_beads']:>6} {row['variant']:>16} "
            f"{row['threads'] or '-':>3} threads: {row['steps_per_s']:8.1f} steps/s",
            flush=True,
        )

    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        for n in args.sizes:
            steps = max(args.min_steps, round(args.steps * 1000 / n))
            lammps_steps = max(args.min_steps, round(args.lammps_steps * 1000 / n))
            for platform_name in platforms:
                cpu = platform_name.lower() == "cpu"
                for threads in args.threads if cpu else [0]:
                    for variant in args.variants:
                        if variant in OPENMM_VARIANTS:
                            report(
                                measure(variant, n, steps, platform_name, args.table_dr, threads)
                            )
                        elif not cpu:
                            continue
                        elif variant == "lammps":
                            work = Path(scratch) / f"lammps-{n}-{threads}"
                            report(measure_lammps(n, lammps_steps, threads, args.table_dr, work))
                        elif variant == "lammps_plain":
                            work = Path(scratch) / f"plain-{n}-{threads}"
                            report(
                                measure_lammps_plain(n, lammps_steps, threads, args.table_dr, work)
                            )
                        else:
                            report(measure_torch(n, steps, threads, args.table_dr))
    load_after = os.getloadavg()
    tables = {
        (r["platform"], r["n_beads"], str(r["threads"])): r["steps_per_s"]
        for r in rows
        if r["variant"] == "table"
    }
    for row in rows:
        row["speed_vs_table"] = row["steps_per_s"] / tables.get(
            (row["platform"], row["n_beads"], str(row["threads"])), math.nan
        )
    print(
        f"\n{'platform':>8} {'beads':>6} {'variant':>16} {'thr':>4} {'steps/s':>9} "
        f"{'ns/day':>8} {'x table':>8}"
    )
    for row in rows:
        print(
            f"{row['platform']:>8} {row['n_beads']:>6} {row['variant']:>16} "
            f"{row['threads'] or '-':>4} {row['steps_per_s']:>9.1f} {row['ns_per_day']:>8.1f} "
            f"{row['speed_vs_table']:>8.2f}"
        )
    summary = ratios(rows)
    for r in summary:
        print(
            f"{r['n_beads']:>6} beads, {r['threads']} thread(s): LAMMPS / OpenMM "
            f"{r['lammps_over_openmm_table']:.1f}x, cgforge LAMMPS / plain LAMMPS "
            f"{r['lammps_over_plain_lammps']:.2f}, torch / OpenMM {r['torch_over_openmm_table']:.2f}"
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
        "ratios": summary,
        "targets": {
            "lammps_over_openmm_table_at_1000_beads": 20.0,
            "lammps_over_plain_lammps": 0.8,
        },
    }
    write_json(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
