"""All-atom references of the eight benchmark liquids: build, judge, ship and look up.

The liquids of the mobility-preserving CG study (2,3,4-trimethylpentane, 3-ethylhexane,
3-methylpentane, benzene, ethylbenzene, neopentane, mesitylene, 2,3-dimethylbutane) at 298.15 K
under OPLS-AA. Neopentane boils at 282.6 K at 1 atm, so its reference is the liquid at its
saturation pressure at 298.15 K, 1.7 bar (the state of the library's experimental density).

:func:`build_reference` runs :func:`cgforge.workflows.aa.run_aa` and judges the NPT
equilibration by a drift criterion (:func:`equilibration_drift`): the density's change between
the last two quarters of equilibration must be within :data:`MAX_REFERENCE_DRIFT` of the density
or within 3 of its standard errors. A run that fails is repeated with twice the equilibration,
up to ``max_equilibration_ps``, and the criterion's numbers go into the shipped summary.

:func:`ship_reference` copies the small files of a finished run (``summary.json``, ``rdf.csv``,
``msd.csv``, ``thermo_summary.json``) into the package data folder ``cgforge/data/references``;
trajectories stay behind. :func:`shipped_references` lists them and :func:`resolve_reference`
turns a name (``benzene``) into the directory of a shipped reference.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.errors import InputError, SimulationError
from cgforge.fileio import write_json
from cgforge.runsummary import SUMMARY, read_json_object, read_summary

#: Reference temperature, K.
TEMPERATURE_K = 298.15
#: (built-in name, pressure in bar) of the eight liquids.
LIQUIDS: tuple[tuple[str, float], ...] = (
    ("2,3,4-trimethylpentane", 1.0),
    ("3-ethylhexane", 1.0),
    ("3-methylpentane", 1.0),
    ("benzene", 1.0),
    ("ethylbenzene", 1.0),
    ("neopentane", 1.7),  # saturation pressure at 298.15 K; a gas at 1 bar
    ("mesitylene", 1.0),
    ("2,3-dimethylbutane", 1.0),
)
#: Largest relative density change between the last two quarters of NPT equilibration.
MAX_REFERENCE_DRIFT = 0.005
#: Format of a shipped reference folder; readers refuse other versions.
REFERENCE_FORMAT = 1
#: Files of a shipped reference.
SHIPPED_FILES = ("summary.json", "rdf.csv", "msd.csv", "thermo_summary.json")


def slug(name: str) -> str:
    """Folder name of a liquid (``2,3,4-trimethylpentane`` → ``234-trimethylpentane``)."""
    return name.replace(",", "").replace(" ", "-")


@dataclass(frozen=True)
class ReferenceSettings:
    """Size and lengths of a reference run (times in ps)."""

    n_molecules: int = 216
    equilibration_ps: float = 200.0
    max_equilibration_ps: float = 1000.0
    production_ps: float = 500.0
    sample_interval_ps: float = 0.5
    save_forces: bool = True
    seed: int = 2026

    def __post_init__(self) -> None:
        if self.n_molecules < 2:
            raise InputError(f"n_molecules must be at least 2, got {self.n_molecules}")
        if not 0 < self.equilibration_ps <= self.max_equilibration_ps:
            raise InputError(
                "equilibration_ps must be positive and at most max_equilibration_ps, got "
                f"{self.equilibration_ps} and {self.max_equilibration_ps}"
            )
        if self.production_ps <= 0 or self.sample_interval_ps <= 0:
            raise InputError("production_ps and sample_interval_ps must be positive")


def liquid_pressure(name: str) -> float:
    """Pressure (bar) of one of the eight liquids; an unknown name lists them."""
    pressures = dict(LIQUIDS)
    if name not in pressures:
        raise InputError(
            f"'{name}' is not one of the eight reference liquids; use one of "
            + ", ".join(n for n, _ in LIQUIDS)
        )
    return pressures[name]


def equilibration_drift(
    thermo_csv: str | Path, max_relative_drift: float = MAX_REFERENCE_DRIFT
) -> dict[str, Any]:
    """The NPT density drift of a run's equilibration and whether it passes the criterion.

    Returns ``density_drift`` (relative change of the mean density from the third to the fourth
    quarter of equilibration), ``density_drift_err`` (its standard error), the criterion and
    ``converged``: within ``max_relative_drift`` or within 3 standard errors.
    """
    from cgforge.observables.thermo import drift, read_stage_columns

    path = Path(thermo_csv)
    rho = read_stage_columns(path, "equilibration")["density_g_cm3"]
    if rho.size < 8:
        raise SimulationError(
            f"{path} has {rho.size} equilibration density samples; a drift needs at least 8"
        )
    change, err = drift(rho)
    mean = float(rho[rho.size // 2 :].mean())
    relative, relative_err = change / mean, err / mean
    return {
        "density_drift": relative,
        "density_drift_err": relative_err,
        "criterion": f"|drift| <= {max_relative_drift:g} or <= 3 standard errors",
        "converged": bool(abs(relative) <= max_relative_drift or abs(change) <= 3.0 * err),
    }


def build_reference(
    name: str,
    workdir: str | Path,
    settings: ReferenceSettings = ReferenceSettings(),
    *,
    engine: str = "auto",
    progress: Any = None,
) -> tuple[Path, dict[str, Any]]:
    """Run (or resume) one liquid's reference in ``workdir/<slug>/eq<ps>``; return its folder
    and summary. Equilibration doubles until the drift criterion holds, up to the cap."""
    from cgforge.workflows.aa import AAConfig, default_protocol, run_aa

    pressure = liquid_pressure(name)
    equilibration = settings.equilibration_ps
    while True:
        protocol = default_protocol(
            equilibration,
            settings.production_ps,
            temperature_K=TEMPERATURE_K,
            pressure_bar=pressure,
            sample_interval_ps=settings.sample_interval_ps,
            save_forces=settings.save_forces,
            seed=settings.seed,
        )
        config = AAConfig(
            molecule=name, n_molecules=settings.n_molecules, protocol=protocol, engine=engine
        )
        out = Path(workdir) / slug(name) / f"eq{equilibration:g}ps"
        summary = run_aa(config, out, progress=progress)
        check = equilibration_drift(out / "thermo.csv")
        check["equilibration_ps"] = equilibration
        if check["converged"] or equilibration * 2 > settings.max_equilibration_ps:
            summary["equilibration_check"] = check
            return out, summary
        equilibration *= 2


def measure_viscosity(
    run_dir: str | Path,
    workdir: str | Path,
    *,
    production_ps: float = 200.0,
    discard_ps: float = 10.0,
    threads: int | None = None,
    seed: int = 2026,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Shear viscosity of a finished GROMACS reference by Green–Kubo, and its Yeh–Hummer D.

    An NVT (Nosé–Hoover) run of ``production_ps`` from the reference's production start
    (``system.gro``, ``system.top``) writes the pressure tensor every 2 steps; the first
    ``discard_ps`` are dropped and :func:`cgforge.observables.viscosity.green_kubo_viscosity`
    integrates the rest. Returns ``viscosity_Pa_s`` (± err), the plateau window, and the
    finite-size corrected ``diffusion_yeh_hummer_m2_s`` (± the propagated error) of the box
    edge ``box_nm``. Resumes from its checkpoint; the result is kept in ``viscosity.json``.

    ``reference`` (the summary of another run of the same liquid, e.g. a shipped reference)
    makes the correction apply to that run's D and box edge instead of ``run_dir``'s: the
    viscosity then comes from a separate, equally equilibrated run, and its own box is kept
    as ``viscosity_run_box_nm``.
    """
    from cgforge.engines.gromacs import default_threads, read_energy_file, run_gmx, write_mdp
    from cgforge.engines.gromacs import mdp_settings as gromacs_mdp
    from cgforge.engines.protocol import MDProtocol
    from cgforge.observables.viscosity import green_kubo_viscosity

    run = Path(run_dir)
    work = Path(workdir)
    done = work / "viscosity.json"
    summary = read_summary(run, what="all-atom run", command="'cgforge aa'")
    if reference is not None and reference.get("molecule") != summary.get("molecule"):
        raise InputError(
            f"the viscosity run is of {summary.get('molecule')!r} but the reference is of "
            f"{reference.get('molecule')!r}; give the reference of the same liquid",
            parameters="reference",
        )
    if done.exists():  # the Green–Kubo result is kept; the correction follows the arguments
        kept = json.loads(done.read_text())
        return _yeh_hummer(kept, summary, reference)
    if summary.get("engine") != "gromacs" or not (run / "system.top").exists():
        raise InputError(f"{run} is not a GROMACS reference (system.top is missing)")
    work.mkdir(parents=True, exist_ok=True)
    temperature = float(summary["temperature_K"])
    protocol = MDProtocol(
        temperature_K=temperature,
        equilibration_ps=0.0,
        production_ps=production_ps,
        production_ensemble="nvt",
        seed=seed,
    )
    settings = gromacs_mdp(
        "production", protocol, float(summary["cutoff_nm"]), n_steps=protocol.steps(production_ps)
    )
    settings.update(
        {
            "gen-vel": "yes",
            "gen-temp": temperature,
            "gen-seed": seed,
            "nstcalcenergy": 2,
            "nstenergy": 2,
            "nstxout": 0,
            "nstvout": 0,
            "nstfout": 0,
        }
    )
    for name in ("system.top", "system.gro"):
        shutil.copyfile(run / name, work / name)
    if not (work / "visc.tpr").exists():
        write_mdp(work / "visc.mdp", settings)
        run_gmx(
            [
                "grompp",
                "-f",
                "visc.mdp",
                "-c",
                "system.gro",
                "-p",
                "system.top",
                "-o",
                ".visc.tpr",
                "-po",
                "visc-out.mdp",
                "-maxwarn",
                "0",
            ],
            work,
            what="grompp (viscosity)",
        )
        (work / ".visc.tpr").replace(work / "visc.tpr")
    run_gmx(
        [
            "mdrun",
            "-deffnm",
            "visc",
            "-ntmpi",
            "1",
            "-ntomp",
            str(threads or default_threads()),
            "-cpt",
            "5",
            "-cpi",
            "visc.cpt",
            "-cpo",
            "visc.cpt",
        ],
        work,
        what="mdrun (viscosity)",
        error=SimulationError,
    )
    data = read_energy_file(work / "visc.edr", ["Pres-XY", "Pres-XZ", "Pres-YZ"])
    keep = data["Time"] >= discard_ps
    box = [float(v) for v in (work / "system.gro").read_text().splitlines()[-1].split()[:3]]
    result = green_kubo_viscosity(
        data["Time"][keep],
        np.array([data[k][keep] for k in ("Pres-XY", "Pres-XZ", "Pres-YZ")]),
        float(np.prod(box)),
        temperature,
    )
    out = {
        "viscosity_Pa_s": result.viscosity_Pa_s,
        "viscosity_err_Pa_s": result.viscosity_err_Pa_s,
        "method": "Green-Kubo, off-diagonal pressure tensor, NVT (Nose-Hoover)",
        "run_ps": production_ps,
        "discard_ps": discard_ps,
        "plateau_ps": list(result.plateau_ps),
        "n_blocks": result.n_blocks,
        "box_nm": box,
    }
    write_json(done, out)  # the run's own result; the correction is applied on return
    return _yeh_hummer(out, summary, reference)


def _yeh_hummer(
    viscosity: dict[str, Any], run: dict[str, Any], reference: dict[str, Any] | None
) -> dict[str, Any]:
    """``viscosity`` (a Green–Kubo result of :func:`measure_viscosity`) with the Yeh–Hummer
    corrected D of the viscosity ``run``'s summary, or of a separate ``reference`` (its D and
    box edge; the viscosity run's own box is then kept as ``viscosity_run_box_nm``)."""
    from cgforge.observables.msd import yeh_hummer_correction

    out = {k: v for k, v in viscosity.items() if not k.startswith("diffusion_")}
    run_box = out.pop("viscosity_run_box_nm", out["box_nm"])
    out["box_nm"] = run_box
    summary = run
    if reference is not None:
        summary = reference
        out["box_nm"] = [float(v) for v in reference["box_nm"]]
        out["viscosity_run_box_nm"] = run_box
    box = out["box_nm"]
    d = float(summary["diffusion_m2_s"])
    d_err = float(summary["diffusion_err_m2_s"])
    eta, eta_err = float(out["viscosity_Pa_s"]), float(out["viscosity_err_Pa_s"])
    d_yh = yeh_hummer_correction(d * 1e6, box, float(summary["temperature_K"]), eta) * 1e-6
    correction = d_yh - d
    correction_err = correction * eta_err / eta  # the correction scales as 1/η
    out["diffusion_m2_s"] = d
    out["diffusion_yeh_hummer_m2_s"] = d_yh
    out["diffusion_yeh_hummer_err_m2_s"] = float(np.hypot(d_err, correction_err))
    return out


def thermo_summary(thermo_csv: str | Path) -> dict[str, Any]:
    """Means and standard errors (block averages) of a run's production thermo columns."""
    from cgforge.observables.thermo import mean_with_error, read_stage_columns

    path = Path(thermo_csv)
    columns = read_stage_columns(path, "production")
    out: dict[str, Any] = {"source": path.name, "stage": "production"}
    for column, values in list(columns.items())[1:]:  # the first column is the time
        if values.size >= 8 and np.all(np.isfinite(values)):
            mean, err = mean_with_error(values)
            out[column] = {"mean": mean, "err": err}
    return out


def ship_reference(
    run_dir: str | Path, dest: str | Path, *, extra: dict[str, Any] | None = None
) -> Path:
    """Copy a finished run's small files into ``dest`` (a shipped reference folder).

    ``extra`` (e.g. the equilibration check, the exact command) is added to the summary under
    ``reference``. Files are staged and the folder swapped in whole, so an interrupted copy
    never leaves a folder that looks complete.
    """
    run = Path(run_dir)
    summary = read_summary(run, what="all-atom run", command="'cgforge aa'")
    summary["reference"] = {"format": REFERENCE_FORMAT, **(extra or {})}
    dest = Path(dest)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("rdf.csv", "msd.csv"):
        shutil.copyfile(run / name, staging / name)
    write_json(staging / "thermo_summary.json", thermo_summary(run / "thermo.csv"))
    write_json(staging / "summary.json", summary)
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return dest


def add_viscosity(dest: str | Path, viscosity: dict[str, Any], **provenance: Any) -> Path:
    """Write a viscosity result (of :func:`measure_viscosity`) into a shipped reference's
    summary under ``reference.viscosity``, with ``provenance`` (e.g. the command and the
    separate run's equilibration check) beside it; the summary is replaced atomically."""
    folder = Path(dest)
    summary = read_summary(folder, what="shipped reference", command="'aa_references.py'")
    summary.setdefault("reference", {})["viscosity"] = {**viscosity, **provenance}
    write_json(folder / SUMMARY, summary)
    return folder


def shipped_root() -> Path:
    """Folder of the shipped references inside the installed package."""
    return Path(str(resources.files("cgforge") / "data" / "references"))


def shipped_references() -> list[dict[str, Any]]:
    """Summaries of the shipped references, in the order of :data:`LIQUIDS`."""
    root = shipped_root()
    found = []
    for name, _ in LIQUIDS:
        path = root / slug(name) / "summary.json"
        if path.exists():
            summary = read_json_object(path, fix="reinstall cgforge")
            summary["path"] = str(path.parent)
            found.append(summary)
    return found


def is_reference_name(value: str) -> bool:
    """Whether ``value`` names one of the eight liquids (or its folder name)."""
    return any(value in (name, slug(name)) for name, _ in LIQUIDS)


def resolve_reference(value: str | Path) -> Path:
    """A reference directory from a path or the name of a shipped reference.

    An existing directory is returned as it is; a liquid name (or its folder name) gives the
    shipped folder; anything else is an error listing the shipped names.
    """
    path = Path(value)
    if path.is_dir():
        return path
    root = shipped_root()
    for name, _ in LIQUIDS:
        if str(value) in (name, slug(name)):
            folder = root / slug(name)
            if not (folder / "summary.json").exists():
                break
            fmt = read_json_object(folder / SUMMARY, fix="reinstall cgforge").get("reference", {})
            if fmt.get("format") != REFERENCE_FORMAT:
                raise InputError(
                    f"shipped reference {name} has format {fmt.get('format')!r}, this cgforge "
                    f"reads format {REFERENCE_FORMAT}; reinstall cgforge"
                )
            return folder
    names = [s["molecule"] for s in shipped_references()]
    raise InputError(
        f"'{value}' is neither a reference directory nor a shipped reference; shipped: "
        + (", ".join(names) if names else "none")
    )
