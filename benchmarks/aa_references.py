"""Build (or resume) the all-atom references of the eight liquids and ship them as package data.

Each liquid runs :func:`cgforge.workflows.references.build_reference` in
``runs/references/<liquid>/`` (GROMACS on CPUs; resumes from its checkpoints when the same command
is given again) and, once finished, is copied into ``src/cgforge/data/references/<liquid>/``
(``summary.json``, ``rdf.csv``, ``msd.csv``, ``thermo_summary.json``; no trajectories), with
the Green–Kubo viscosity of a further NVT run and the Yeh–Hummer corrected D. A liquid
whose run fails is reported with its reason and the others go on.

    python benchmarks/aa_references.py                       # all eight, one after the other
    OMP_NUM_THREADS=1 python benchmarks/aa_references.py benzene neopentane   # one lane
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from cgforge.errors import CGForgeError
from cgforge.workflows.references import (
    LIQUIDS,
    ReferenceSettings,
    build_reference,
    measure_viscosity,
    ship_reference,
    slug,
)

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / "runs" / "references"
SHIPPED = ROOT / "src" / "cgforge" / "data" / "references"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("liquids", nargs="*", default=[n for n, _ in LIQUIDS])
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--engine", default="auto", help="auto, gromacs or openmm")
    parser.add_argument("--molecules", type=int, default=ReferenceSettings.n_molecules)
    parser.add_argument("--production-ps", type=float, default=ReferenceSettings.production_ps)
    parser.add_argument("--no-ship", action="store_true", help="build only")
    parser.add_argument(
        "--viscosity-ps", type=float, default=200.0, help="Green-Kubo NVT run (0: none)"
    )
    args = parser.parse_args()
    settings = ReferenceSettings(n_molecules=args.molecules, production_ps=args.production_ps)
    failed = 0
    for name in args.liquids:
        tic = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            run_dir, summary = build_reference(name, args.workdir, settings, engine=args.engine)
        except CGForgeError as exc:
            print(f"   failed: {exc}", flush=True)
            failed += 1
            continue
        check = summary["equilibration_check"]
        print(
            f"   done in {time.perf_counter() - tic:.0f} s: density {summary['density_g_cm3']:.4f}"
            f" g/cm3, D {summary['diffusion_m2_s']:.3e} ± {summary['diffusion_err_m2_s']:.1e}"
            f" m2/s, drift {check['density_drift']:+.2%} ({'ok' if check['converged'] else 'NOT converged'})",
            flush=True,
        )
        viscosity = None
        if args.viscosity_ps > 0:
            try:
                viscosity = measure_viscosity(
                    run_dir, run_dir.parent / "viscosity", production_ps=args.viscosity_ps
                )
            except CGForgeError as exc:
                print(f"   viscosity failed: {exc}", flush=True)
            else:
                print(
                    f"   viscosity {viscosity['viscosity_Pa_s'] * 1e3:.3f} ± "
                    f"{viscosity['viscosity_err_Pa_s'] * 1e3:.3f} mPa s, D (Yeh-Hummer) "
                    f"{viscosity['diffusion_yeh_hummer_m2_s']:.3e} m2/s",
                    flush=True,
                )
        if not args.no_ship:
            command = "python benchmarks/aa_references.py " + shlex.quote(name)
            ship_reference(
                run_dir,
                SHIPPED / slug(name),
                extra={
                    "equilibration_check": check,
                    "settings": settings.__dict__,
                    "command": command,
                    "viscosity": viscosity,
                },
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
