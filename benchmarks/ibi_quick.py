"""The quick preset's IBI on its own target: before and after, and a check of the noise floor.

The target is the quick preset's all-atom reference of a liquid (100 molecules, 30 ps NPT +
60 ps NVT, frames every ``aa_sample_interval_ps`` of the preset; ``--reference``, or
``--make-reference DIR`` runs it first: ~6 min with GROMACS on two busy cores). On it IBI runs twice, on the CG engine ``auto`` picks:

* ``before``: the quick preset's IBI settings before this benchmark (300 beads, 5 + 30 ps per
  iteration, 0.006 nm bins, Savitzky–Golay window 5, at most 10 iterations);
* ``after``: :data:`cgforge.presets.PRESETS` ``["quick"]`` as it stands.

Reported per run: iterations, seconds per iteration, IBI wall time, the kept iteration's RDF
deviation ε on its own bins and both runs scored on the coarser bins (the finer RDF merged
exactly), the noise floor of independent samples (:func:`~cgforge.methods.ibi.rdf_noise`) and
the target's share (:func:`~cgforge.methods.ibi.target_noise_floor`), the kept potential's
roughness (RMS of U about a 0.1 nm cubic Savitzky–Golay fit, in kT, over the well and beyond)
and the number of extrema of its force there, its time-step limit
(:func:`~cgforge.engines.cg_system.timestep_limit_fs`). Then the kept ``after`` potential runs
``--replicas`` more times from independent starts: ε between replicas against ``rdf_noise``
of the same pairs checks the noise estimate. Writes ``benchmarks/results/ibi_quick.json``.

    python benchmarks/ibi_quick.py --reference runs/3mp-quick/aa        # ~3 min
    python benchmarks/ibi_quick.py --make-reference /tmp/q3mp/aa        # + the AA run
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import savgol_filter

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.engines.cg_engine import CGSystem, resolve_engine_name, run_cg_md
from cgforge.engines.cg_system import timestep_limit_fs
from cgforge.fileio import write_json
from cgforge.methods.ibi import (
    IBIConfig,
    rdf_deviation,
    rdf_noise,
    rebin_rdf,
    run_ibi,
    target_noise_floor,
)
from cgforge.observables import RDF
from cgforge.potentials import TabulatedPotential
from cgforge.presets import PRESETS
from cgforge.trajectory import CGTrajectory
from cgforge.units import kT
from cgforge.workflows.aa import AAConfig, default_protocol, run_aa
from cgforge.workflows.cg import AAReference, box_from_density, load_reference

RESULTS = Path(__file__).parent / "results" / "ibi_quick.json"
#: The quick preset's IBI before this benchmark: 300 beads, 10 iterations of 5 + 30 ps.
BEFORE_BEADS = 300
BEFORE = IBIConfig(max_iterations=10, equilibration_ps=5.0, production_ps=30.0)


def roughness(pot: TabulatedPotential, temperature_K: float) -> tuple[float, int]:
    """(RMS of U about a 0.1 nm cubic Savitzky–Golay fit / kT, extrema of F) from 0.1 nm
    inside the well's minimum to 0.1 nm inside the cutoff, on a 0.002 nm grid."""
    start = float(pot.r_nm[np.argmin(pot.u_kj_mol)]) - 0.1
    grid = np.arange(max(start, pot.wall_below_nm or pot.r_min_nm), pot.cutoff_nm - 0.1, 0.002)
    u = np.asarray(pot.energy(grid))
    rms = float(np.sqrt(np.mean((u - savgol_filter(u, 51, 3)) ** 2))) / kT(temperature_K)
    force = -np.gradient(u, grid)
    return rms, int(np.sum(np.diff(np.sign(np.diff(force))) != 0))


def run_one(
    name: str, ref: AAReference, beads: int, config: IBIConfig, root: Path
) -> dict[str, Any]:
    box = box_from_density(beads, ref.bead_mass_amu, ref.density_g_cm3)
    tic = time.perf_counter()
    result = run_ibi(
        ref.rdf,
        temperature_K=ref.temperature_K,
        n_beads=beads,
        box_nm=box,
        mass_amu=ref.bead_mass_amu,
        pressure_target_bar=ref.pressure_bar,
        pressure_target_err_bar=ref.pressure_err_bar,
        config=config,
        workdir=root / name,
    )
    wall = time.perf_counter() - tic
    kept = next(r for r in result.history if r.iteration == result.best_iteration)
    rc = float(result.potential.cutoff_nm) + 0.5 * float(result.target.bin_width_nm)
    rough, extrema = roughness(result.potential, ref.temperature_K)
    print(f"{name}: {result.iterations} iterations, {wall:.0f} s; {result.reason}", flush=True)
    return {
        "n_beads": beads,
        "ibi_config": config.to_dict(),
        "bin_width_nm": float(result.target.bin_width_nm),
        "iterations": result.iterations,
        "converged": result.converged,
        "reason": result.reason,
        "wall_s": wall,
        "s_per_iteration": wall / result.iterations,
        "kept_iteration": result.best_iteration,
        "rdf_deviation": kept.rdf_deviation,
        "rdf_noise": kept.rdf_noise,
        "target_noise_floor": target_noise_floor(result.target, rc),
        "pressure_bar": kept.pressure_bar,
        "temperature_K": kept.temperature_K,
        "roughness_kT": rough,
        "force_extrema": extrema,
        "timestep_limit_fs": timestep_limit_fs(
            result.potential, ref.bead_mass_amu, ref.temperature_K
        ),
        "history": [
            {"iteration": r.iteration, "rdf_deviation": r.rdf_deviation, "rdf_noise": r.rdf_noise}
            for r in result.history
        ],
        "_rdf": result.rdf,
        "_potential": result.potential,
        "_cutoff": rc,
    }


def replica_check(
    ref: AAReference, run: dict[str, Any], config: IBIConfig, replicas: int, root: Path
) -> dict[str, Any]:
    """ε between independent runs of one potential against rdf_noise of the same pairs."""
    beads, width = run["n_beads"], run["bin_width_nm"]
    box = box_from_density(beads, ref.bead_mass_amu, ref.density_g_cm3)
    r_max = math.floor(min(0.5 * float(box[0]), float(ref.rdf.r_max_nm)) / width + 1e-9) * width
    rdfs = []
    for k in range(replicas):
        protocol = replace(config, seed=1000 + 17 * k).protocol(ref.temperature_K, 0)
        system = CGSystem(run["_potential"], beads, box, ref.bead_mass_amu)
        md = run_cg_md(system, protocol, root / f"replica_{k}")
        keep = md.times_ps >= config.equilibration_ps - 1e-9
        traj = CGTrajectory(
            md.bead_positions_nm[keep], md.box_nm, md.times_ps[keep], md.bead_masses_amu
        )
        rdfs.append(RDF(r_max_nm=r_max, bin_width_nm=width).compute(traj))
    pairs = list(itertools.combinations(range(replicas), 2))
    eps = [rdf_deviation(rdfs[a], rdfs[b], run["_cutoff"]) for a, b in pairs]
    noise = [rdf_noise(rdfs[a], rdfs[b], run["_cutoff"]) for a, b in pairs]
    return {
        "replicas": replicas,
        "pairs": len(pairs),
        "mean_rdf_deviation": float(np.mean(eps)),
        "mean_rdf_noise": float(np.mean(noise)),
        "noise_over_deviation": float(np.mean(noise) / np.mean(eps)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="the quick preset's AA reference")
    parser.add_argument("--make-reference", type=Path, help="run the AA reference into DIR")
    parser.add_argument(
        "--before-reference",
        type=Path,
        help="the reference of the 'before' run (default --reference): the same AA run "
        "sampled as the preset did before (frames every 0.6 ps)",
    )
    parser.add_argument("--molecule", default="3-methylpentane")
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--engine", default="auto", help="CG engine (recorded)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    engine = resolve_engine_name(args.engine)
    quick = PRESETS["quick"]
    if args.make_reference is not None:
        sampling: dict[str, float] = {}
        if quick.aa_sample_interval_ps is not None:
            sampling["sample_interval_ps"] = quick.aa_sample_interval_ps
        protocol = default_protocol(quick.aa_equilibration_ps, quick.aa_production_ps, **sampling)
        config = AAConfig(molecule=args.molecule, n_molecules=quick.n_molecules, protocol=protocol)
        run_aa(config, args.make_reference)
        args.reference = args.make_reference
    if args.reference is None:
        parser.error("give --reference or --make-reference")
    ref = load_reference(args.reference)
    before_ref = ref if args.before_reference is None else load_reference(args.before_reference)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="cgforge-ibi-quick-"))
    root = root if args.workdir is None else args.workdir
    runs = {
        "before": run_one("before", before_ref, BEFORE_BEADS, replace(BEFORE, engine=engine), root),
        "after": run_one("after", ref, quick.cg_beads, replace(quick.ibi, engine=engine), root),
    }
    coarse = max(runs.values(), key=lambda r: r["bin_width_nm"])
    for run in runs.values():  # both scored on the coarser bins, against both targets
        rdf = rebin_rdf(run["_rdf"], coarse["bin_width_nm"])
        for label, target_ref in (("before", before_ref), ("after", ref)):
            target = rebin_rdf(target_ref.rdf, coarse["bin_width_nm"])
            key = f"rdf_deviation_common_bins_vs_{label}_target"
            run[key] = rdf_deviation(rdf, target, coarse["_cutoff"])
    check = replica_check(
        ref, runs["after"], replace(quick.ibi, engine=engine), args.replicas, root
    )
    print(json.dumps(check), flush=True)
    for run in runs.values():
        for key in [k for k in run if k.startswith("_")]:
            del run[key]
    write_json(
        args.out,
        {
            "benchmark": "ibi_quick",
            "machine": describe_machine(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "before_reference": None
            if args.before_reference is None
            else str(args.before_reference),
            "reference": {
                "molecule": ref.molecule,
                "n_molecules": ref.n_molecules,
                "rdf_bin_width_nm": float(ref.rdf.bin_width_nm),
                "pressure_bar": ref.pressure_bar,
                "pressure_err_bar": ref.pressure_err_bar,
            },
            "engine": engine,
            "common_bin_width_nm": coarse["bin_width_nm"],
            "runs": runs,
            "noise_check": check,
        },
    )
    print(f"written {args.out}")
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
