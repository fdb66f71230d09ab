"""Build (or resume) the all-atom state points of 3-methylpentane with mapped forces, and ship them.

Force matching's transferability table and GNN study (``cgforge fm``) need all-atom data with
mapped forces at several state points of one liquid: 3-methylpentane at 260, 298.15 and 340 K
(1 bar, NPT-equilibrated density) and at 298.15 K at a density 5 % above the equilibrium one
(NVT, after a discarded NVT relaxation). Each state point is one ``cgforge aa`` run in
``runs/fm_states/<label>/`` (GROMACS on CPUs; the same command resumes from its checkpoints),
216 molecules, 200 ps NPT equilibration, 500 ps production sampled every 0.5 ps.

A finished state point is shipped to ``benchmarks/data/fm_states/3-methylpentane/<label>/``:
``summary.json`` (with the exact command and the equilibration drift check), ``rdf.csv``,
``msd.csv``, ``thermo_summary.json`` and ``cg_trajectory.npz``: the mapped data (bead centres
and summed forces, stored as float32: 1e-7 relative precision, far below the force noise), so
that models can be trained in a later session without rerunning the all-atom MD. A shipped
folder is a run directory that :func:`cgforge.methods.force_data.load_force_dataset` and
``cgforge fm train/transfer`` read directly.

    OMP_NUM_THREADS=1 python benchmarks/fm_states.py 260K 340K   # one lane, two state points
    python benchmarks/fm_states.py --ship-only                     # ship what has finished
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cgforge.errors import CGForgeError
from cgforge.trajectory import CGTrajectory
from cgforge.workflows.references import equilibration_drift, ship_reference

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / "runs" / "fm_states"
SHIPPED = ROOT / "benchmarks" / "data" / "fm_states" / "3-methylpentane"
MOLECULE = "3-methylpentane"

#: The state points: label → the options of ``cgforge aa`` that set it.
STATES: dict[str, list[str]] = {
    "298K": ["--temperature", "298.15"],
    "260K": ["--temperature", "260"],
    "340K": ["--temperature", "340"],
    "298K-dense5": ["--temperature", "298.15", "--density-scale", "1.05"],
}
#: Options shared by every state point.
COMMON = [
    "--molecules",
    "216",
    "--equilibrate",
    "200ps",
    "--production",
    "500ps",
    "--sample-every",
    "0.5ps",
    "--forces",
    "--seed",
    "2026",
    "--engine",
    "gromacs",
    "--quiet",
]


def command(label: str, workdir: Path) -> list[str]:
    """The ``cgforge aa`` command of one state point."""
    return ["cgforge", "aa", MOLECULE, "--out", str(workdir / label), *COMMON, *STATES[label]]


def build(label: str, workdir: Path) -> Path:
    """Run (or resume) one state point; return its run directory."""
    out = workdir / label
    if (out / "summary.json").exists():
        return out
    exe = Path(sys.executable).with_name("cgforge")
    args = command(label, workdir)
    args[0] = str(exe) if exe.exists() else "cgforge"
    subprocess.run(args, check=True)
    return out


def ship(label: str, run: Path, dest_root: Path) -> Path:
    """Copy one finished state point's small files and its float32 mapped data."""
    check = equilibration_drift(run / "thermo.csv")
    extra = {
        "command": shlex.join(command(label, Path("runs/fm_states"))),
        "equilibration_check": check,
        "state_label": label,
        "mapped_data": "cg_trajectory.npz: bead centres (nm) and mapped forces (kJ/mol/nm), float32",
    }
    dest = ship_reference(run, dest_root / label, extra=extra)
    with np.load(run / "cg_trajectory.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if "forces_kj_mol_nm" not in arrays:
        raise CGForgeError(f"{run} has no mapped forces; it was not run with --forces")
    for name in ("positions_nm", "forces_kj_mol_nm"):
        arrays[name] = arrays[name].astype(np.float32)
    partial = dest / "cg_trajectory.partial.npz"
    np.savez_compressed(partial, **arrays)
    os.replace(partial, dest / "cg_trajectory.npz")
    CGTrajectory.load(dest / "cg_trajectory.npz")  # readable as shipped
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("states", nargs="*", help=f"labels (default: all): {', '.join(STATES)}")
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--dest", type=Path, default=SHIPPED)
    parser.add_argument("--ship-only", action="store_true", help="ship finished runs, run none")
    args = parser.parse_args()
    labels = args.states or list(STATES)
    unknown = [s for s in labels if s not in STATES]
    if unknown:
        parser.error(
            f"unknown state point(s) {', '.join(unknown)}; choose from {', '.join(STATES)}"
        )
    failed = 0
    for label in labels:
        tic = time.perf_counter()
        try:
            run = args.workdir / label
            if not args.ship_only:
                run = build(label, args.workdir)
            if not (run / "summary.json").exists():
                print(f"{label}: not finished ({run})")
                continue
            dest = ship(label, run, args.dest)
            summary = json.loads((dest / "summary.json").read_text())
            print(
                f"{label}: T {summary['temperature_K']:g} K, density "
                f"{summary['density_g_cm3']:.4f} g/cm3, D {summary['diffusion_m2_s']:.3e} m2/s, "
                f"pressure {summary['pressure_bar']:.0f} bar, shipped to {dest} "
                f"({time.perf_counter() - tic:.0f} s)"
            )
        except (CGForgeError, subprocess.CalledProcessError, OSError) as exc:
            failed += 1
            print(f"{label}: failed: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
