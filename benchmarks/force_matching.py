"""Linear force matching speed: frames/s of the MS-CG accumulation (normal equations) on the CPU.

System: the one-bead liquid of ``benchmarks/cg_md.py`` (a 3-methylpentane-like Lennard-Jones
liquid, ε = 2.5 kJ/mol, σ = 0.55 nm, 86.18 amu, 4.6 nm⁻³, 298.15 K) with 1,000 beads by
default. Frames with positions and exact pair forces come from a short OpenMM run of the
tabulated LJ (:func:`cgforge.engines.cg_system.create_cg_system`, cutoff 1.4 nm); the
accumulation then uses the pair force cutoff 1.4 nm and knots every 0.02 nm from 0.3 nm
(57 knots, 59 coefficients), as ``cgforge fm linear`` does by default. Timed per frame:

* ``pairs``: the minimum-image pair search (``cKDTree``) alone;
* ``design``: pairs + B-spline values + the design matrix G (3N × n_basis);
* ``accumulate``: :meth:`ForceMatchingAccumulator.update` (design + GᵀG, GᵀF in float64);
* ``solve``: one regularised solve of the normal equations (per fit, not per frame).

Prints a table and writes ``benchmarks/results/force_matching.json`` (with the load average
before and after, since other jobs may share the machine).

    python benchmarks/force_matching.py                    # 1000 beads, 40 frames
    python benchmarks/force_matching.py --sizes 1000 4000 --frames 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import openmm

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cg_md import (
    CUTOFF_NM,
    MASS_AMU,
    NUMBER_DENSITY_NM3,
    TEMPERATURE_K,
    TIMESTEP_PS,
    lj_table,
)
from cgforge.engines.cg_system import create_cg_system, lattice_positions
from cgforge.engines.openmm_md import select_platform
from cgforge.fileio import write_json
from cgforge.methods.force_matching import (
    DEFAULT_KNOT_SPACING_NM,
    BSplineBasis,
    ForceMatchingAccumulator,
    frame_design_matrix,
    minimum_image_pairs,
)

RESULTS = Path(__file__).parent / "results" / "force_matching.json"
R_MIN_NM = 0.3


def make_frames(n: int, n_frames: int, every: int, platform_name: str) -> tuple[np.ndarray, ...]:
    """Positions ``(F, n, 3)`` nm, forces ``(F, n, 3)`` kJ/mol/nm and the box ``(3,)`` nm."""
    box = np.full(3, (n / NUMBER_DENSITY_NM3) ** (1.0 / 3.0))
    system = create_cg_system(lj_table(0.005), n, box, MASS_AMU)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K, 5.0, TIMESTEP_PS)
    integrator.setRandomNumberSeed(1)
    platform, properties = select_platform(platform_name)
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(lattice_positions(n, box, seed=1))
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 200)
    context.setVelocitiesToTemperature(TEMPERATURE_K, 1)
    integrator.step(200)
    pos, forces = [], []
    for _ in range(n_frames):
        integrator.step(every)
        state = context.getState(getPositions=True, getForces=True)
        pos.append(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
        forces.append(
            state.getForces(asNumpy=True).value_in_unit(
                openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
            )
        )
    return np.array(pos), np.array(forces), box


def _per_frame(fn, n_frames: int) -> float:
    """Seconds per frame of ``fn(k)`` over ``n_frames`` frames (after one warm-up call)."""
    fn(0)
    tic = time.perf_counter()
    for k in range(n_frames):
        fn(k)
    return (time.perf_counter() - tic) / n_frames


def measure(n: int, n_frames: int, every: int, platform_name: str) -> dict:
    pos, forces, box = make_frames(n, n_frames, every, platform_name)
    knots = round((CUTOFF_NM - R_MIN_NM) / DEFAULT_KNOT_SPACING_NM) + 1
    basis = BSplineBasis(R_MIN_NM, CUTOFF_NM, knots)
    n_pairs = minimum_image_pairs(pos[0], box, CUTOFF_NM)[3].size
    t_pairs = _per_frame(lambda k: minimum_image_pairs(pos[k], box, CUTOFF_NM), n_frames)
    t_design = _per_frame(lambda k: frame_design_matrix(basis, (pos[k], box, forces[k])), n_frames)
    acc = ForceMatchingAccumulator(basis)
    t_acc = _per_frame(lambda k: acc.update((pos[k], box, forces[k])), n_frames)
    tic = time.perf_counter()
    result = acc.solve()
    t_solve = time.perf_counter() - tic
    return {
        "n_beads": n,
        "frames_timed": n_frames,
        "pairs_per_frame": int(n_pairs),
        "n_knots": knots,
        "n_basis": basis.n_basis,
        "pairs_s_per_frame": t_pairs,
        "design_s_per_frame": t_design,
        "accumulate_s_per_frame": t_acc,
        "frames_per_s": 1.0 / t_acc,
        "solve_s": t_solve,
        "explained_variance": result.explained_variance,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--frames", type=int, default=40, help="frames timed per size")
    parser.add_argument("--every", type=int, default=20, help="MD steps between frames")
    parser.add_argument("--platform", default="cpu", help="OpenMM platform making the frames")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.frames, args.every, args.platform))
        row = rows[-1]
        print(f"  {n:>6} beads: {row['frames_per_s']:8.1f} frames/s", flush=True)
    load_after = os.getloadavg()
    print(
        f"\n{'beads':>6} {'pairs':>8} {'basis':>6} {'pairs ms':>9} {'design ms':>10} "
        f"{'update ms':>10} {'frames/s':>9} {'solve ms':>9}"
    )
    for r in rows:
        print(
            f"{r['n_beads']:>6} {r['pairs_per_frame']:>8} {r['n_basis']:>6} "
            f"{1e3 * r['pairs_s_per_frame']:>9.2f} {1e3 * r['design_s_per_frame']:>10.2f} "
            f"{1e3 * r['accumulate_s_per_frame']:>10.2f} {r['frames_per_s']:>9.1f} "
            f"{1e3 * r['solve_s']:>9.2f}"
        )
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    result = {
        "benchmark": "force_matching",
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "system": {
            "number_density_nm3": NUMBER_DENSITY_NM3,
            "mass_amu": MASS_AMU,
            "temperature_K": TEMPERATURE_K,
            "cutoff_nm": CUTOFF_NM,
            "r_min_nm": R_MIN_NM,
            "knot_spacing_nm": DEFAULT_KNOT_SPACING_NM,
            "frames_from": f"OpenMM Langevin run of the tabulated LJ on {args.platform}",
        },
        "results": rows,
    }
    write_json(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
