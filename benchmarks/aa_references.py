"""Build (or resume) the all-atom references of the eight liquids and ship them as package data.

Each liquid runs :func:`cgforge.workflows.references.build_reference` in
``runs/references/<liquid>/`` (GROMACS on CPUs; resumes from its checkpoints when the same command
is given again) and, once finished, is copied into ``src/cgforge/data/references/<liquid>/``
(``summary.json``, ``rdf.csv``, ``msd.csv``, ``thermo_summary.json``; no trajectories), with
the Green–Kubo viscosity of a further NVT run and the Yeh–Hummer corrected D. A liquid
whose run fails is reported with its reason and the others go on.

    python benchmarks/aa_references.py                       # all eight, one after the other
    OMP_NUM_THREADS=1 python benchmarks/aa_references.py benzene neopentane   # one lane

``--viscosity-only`` adds the viscosity to references shipped without one: a fresh run of the
liquid (the same settings and drift criterion, a short production) gives the equilibrated
start of the Green–Kubo run, and the Yeh–Hummer correction is applied to the *shipped* D and
box edge; nothing else of the shipped reference changes. References that already hold a
viscosity are left alone unless ``--overwrite`` is given (e.g. a longer ``--viscosity-ps``: each
length has its own Green–Kubo run folder, ``viscosity-<ps>ps``).
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
    add_viscosity,
    build_reference,
    measure_viscosity,
    ship_reference,
    slug,
)

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / "runs" / "references"
SHIPPED = ROOT / "src" / "cgforge" / "data" / "references"


#: Measured self-diffusion coefficients (m²/s) at 298.15 K, with their sources.
EXPERIMENTAL_D: dict[str, tuple[float, str]] = {
    "benzene": (
        2.207e-9,
        "M. Holz, S. R. Heil, A. Sacco, Phys. Chem. Chem. Phys. 2, 4740 (2000), PFG NMR",
    ),
}


#: What a reader should know about a liquid's agreement with experiment.
NOTES: dict[str, str] = {
    "neopentane": (
        "neopentane is simulated as the saturated liquid at 298.15 K and 1.7 bar, 15.5 K above "
        "its normal boiling point: a highly compressible liquid, where a small excess in the "
        "force field's cohesion becomes a large density excess. OPLS-AA with this typing "
        "(quaternary carbon CT with charge 0, methyl CT -0.18, HC +0.06; geometric combining) "
        "gives +8 %; the linear and singly branched alkanes and the aromatics stay within a "
        "few percent. The excess is the force field's, not tuned away: CG models are judged "
        "against the all-atom model, not against experiment."
    ),
}


def _fmt(value: float | None, scale: float, spec: str) -> str:
    return "–" if value is None else format(value * scale, spec)


def write_report(path: Path) -> None:
    """The shipped references against experiment, as the data folder's README."""
    from cgforge.molecules.library import get_builtin
    from cgforge.workflows.references import shipped_references

    lines = [
        "# Shipped all-atom references",
        "",
        "OPLS-AA liquids at 298.15 K (neopentane at its saturation pressure, 1.7 bar), built and",
        "shipped by `python benchmarks/aa_references.py` (GROMACS, 2 fs, PME, h-bond",
        "constraints; NPT equilibration judged by the density-drift criterion of",
        "`cgforge.workflows.references.equilibration_drift`, then Nosé–Hoover NVT production at",
        "the mean NPT volume; D from the centre-of-mass MSD). Each folder holds `summary.json`",
        "(settings, provenance, the exact command, the equilibration check, the viscosity run),",
        "`rdf.csv`, `msd.csv` and `thermo_summary.json`; trajectories are not shipped.",
        "",
        "D_PBC is measured in the periodic box of edge L; D_YH adds the Yeh–Hummer correction",
        "ξ k_B T / (6π η L) with the model's own Green–Kubo viscosity η: a 100 ps Nosé–Hoover",
        "NVT run writing the pressure tensor every 2 steps, started from the shipped run's",
        "production start, or, where the reference was shipped without it, from a fresh run of",
        "the same liquid with the same settings and drift criterion (`--viscosity-only`; its",
        "density and equilibration check are kept under `reference.viscosity.start_run`). The",
        "Green–Kubo error is the spread of 4 blocks and is itself uncertain by about its own",
        "size. CG models are compared with D_PBC at the same bead count, so the finite-size",
        "effect cancels in D_CG/D_AA.",
        "",
        "| liquid | N | L nm | ρ g/cm³ | ρ exp. | Δρ | D_PBC 1e-9 m²/s | η mPa·s | D_YH 1e-9 m²/s "
        "| D exp. | drift |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in shipped_references():
        exp = get_builtin(s["molecule"]).density_g_cm3
        ref = s.get("reference", {})
        visc = ref.get("viscosity") or {}
        check = ref.get("equilibration_check", {})
        d_exp = EXPERIMENTAL_D.get(s["molecule"])
        eta = visc.get("viscosity_Pa_s")
        eta_err = visc.get("viscosity_err_Pa_s")
        lines.append(
            f"| {s['molecule']} | {s['n_molecules']} | {s['box_nm'][0]:.3f} "
            f"| {s['density_g_cm3']:.4f} ± {s['density_err_g_cm3']:.4f} | {exp:.4f} "
            f"| {s['density_g_cm3'] / exp - 1:+.1%} "
            f"| {s['diffusion_m2_s'] * 1e9:.3f} ± {s['diffusion_err_m2_s'] * 1e9:.3f} "
            f"| {_fmt(eta, 1e3, '.3f')} ± {_fmt(eta_err, 1e3, '.3f')} "
            f"| {_fmt(visc.get('diffusion_yeh_hummer_m2_s'), 1e9, '.3f')} ± "
            f"{_fmt(visc.get('diffusion_yeh_hummer_err_m2_s'), 1e9, '.3f')} "
            f"| {_fmt(d_exp[0] if d_exp else None, 1e9, '.3f')} "
            f"| {check.get('density_drift', float('nan')):+.2%} after "
            f"{check.get('equilibration_ps', float('nan')):g} ps |"
        )
    notes = [
        f"- {text}"
        for name, text in NOTES.items()
        if name in {x["molecule"] for x in shipped_references()}
    ]
    if notes:
        lines += ["", "Notes:", "", *notes]
    lines += ["", "Experimental sources:", ""]
    lines += [
        "- densities: `cgforge.molecules.library` (TRC Thermodynamic Tables – Hydrocarbons, "
        "API RP 44, 298.15 K; neopentane saturated liquid)",
        *[f"- D of {name}: {src}" for name, (_, src) in EXPERIMENTAL_D.items()],
        "",
    ]
    path.write_text("\n".join(lines))


def add_missing_viscosities(args: argparse.Namespace) -> int:
    """The ``--viscosity-only`` mode: one fresh short run per liquid, its Green–Kubo viscosity
    written into the shipped reference; the others go on when one fails."""
    from cgforge.runsummary import read_summary

    if args.viscosity_ps <= 0:
        print("--viscosity-only needs a positive --viscosity-ps", file=sys.stderr)
        return 2
    settings = ReferenceSettings(
        n_molecules=args.molecules, production_ps=args.production_ps, save_forces=False
    )
    failed = 0
    for name in args.liquids:
        folder = SHIPPED / slug(name)
        if not (folder / "summary.json").exists():
            print(f"== {name}: no shipped reference; build it first (without --viscosity-only)")
            failed += 1
            continue
        shipped = read_summary(folder, what="shipped reference", command="'aa_references.py'")
        before = (shipped.get("reference") or {}).get("viscosity") or {}
        if before and not args.overwrite:
            print(
                f"== {name}: the shipped reference has its viscosity (--overwrite replaces it)",
                flush=True,
            )
            continue
        if shipped["n_molecules"] != settings.n_molecules:
            print(
                f"== {name}: shipped with {shipped['n_molecules']} molecules; give "
                f"--molecules {shipped['n_molecules']}",
                flush=True,
            )
            failed += 1
            continue
        tic = time.perf_counter()
        print(f"== {name} (viscosity only)", flush=True)
        try:
            run_dir, summary = build_reference(
                name, args.workdir / "viscosity-starts", settings, engine="gromacs"
            )
            viscosity = measure_viscosity(
                run_dir,
                run_dir.parent / f"viscosity-{args.viscosity_ps:g}ps",
                production_ps=args.viscosity_ps,
                reference=shipped,
            )
        except CGForgeError as exc:
            print(f"   failed: {exc}", flush=True)
            failed += 1
            continue
        command = (
            "python benchmarks/aa_references.py --viscosity-only --production-ps "
            f"{args.production_ps:g} --viscosity-ps {args.viscosity_ps:g} "
            + ("--overwrite " if args.overwrite else "")
            + shlex.quote(name)
        )
        replaced = {
            k: before[k] for k in ("viscosity_Pa_s", "viscosity_err_Pa_s", "run_ps") if k in before
        }
        add_viscosity(
            folder,
            viscosity,
            command=command,
            replaces=replaced or None,
            start_run={
                "settings": settings.__dict__,
                "equilibration_check": summary["equilibration_check"],
                "density_g_cm3": summary["density_g_cm3"],
                "density_err_g_cm3": summary["density_err_g_cm3"],
                "provenance": summary.get("provenance"),
            },
        )
        print(
            f"   viscosity {viscosity['viscosity_Pa_s'] * 1e3:.3f} ± "
            f"{viscosity['viscosity_err_Pa_s'] * 1e3:.3f} mPa s (start density "
            f"{summary['density_g_cm3']:.4f}, shipped {shipped['density_g_cm3']:.4f}), "
            f"D (Yeh-Hummer) {viscosity['diffusion_yeh_hummer_m2_s']:.3e} m2/s "
            f"in {time.perf_counter() - tic:.0f} s",
            flush=True,
        )
        write_report(SHIPPED / "README.md")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("liquids", nargs="*", default=[n for n, _ in LIQUIDS])
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--engine", default="auto", help="auto, gromacs or openmm")
    parser.add_argument("--molecules", type=int, default=ReferenceSettings.n_molecules)
    parser.add_argument("--production-ps", type=float, default=ReferenceSettings.production_ps)
    parser.add_argument("--no-ship", action="store_true", help="build only")
    parser.add_argument(
        "--report", action="store_true", help="only rewrite the shipped references' README"
    )
    parser.add_argument(
        "--viscosity-ps", type=float, default=200.0, help="Green-Kubo NVT run (0: none)"
    )
    parser.add_argument(
        "--viscosity-only",
        action="store_true",
        help="only add the viscosity to shipped references that lack one (a fresh short run)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="with --viscosity-only: replace a shipped viscosity (e.g. by a longer run)",
    )
    args = parser.parse_args()
    if args.report:
        write_report(SHIPPED / "README.md")
        return 0
    if args.viscosity_only:
        return add_missing_viscosities(args)
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
    if not args.no_ship:
        write_report(SHIPPED / "README.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
