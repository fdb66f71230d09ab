"""CG liquids simulated with a saved torch energy model, and its transferability table.

``simulate_model``
    A model file (:func:`cgforge.potentials.neural.base.save_model`) → a
    :class:`~cgforge.engines.cg_engine.CGSystem` (N beads on a jittered lattice in a cubic box
    at a given density) and an :class:`~cgforge.engines.protocol.MDProtocol` run by
    :func:`~cgforge.engines.cg_engine.run_cg_md` on the torch engine
    (:class:`~cgforge.engines.torch_cg.TorchEngine`, :class:`~cgforge.engines.torch_md.TorchMD`
    underneath): NVT equilibration at the box's fixed volume and an NVT (Bussi, a global
    thermostat) or NVE production; or, for ``npt``, NPT equilibration (Bussi thermostat and the
    engine's Monte Carlo barostat) at a pressure (default: the reference's barostat pressure)
    and an NPT production from the mean volume of its second half → the same observables as
    every other CG run of cgforge (:func:`cgforge.liquid_analysis.analyze`: RDF, MSD, D,
    density; pressure and temperature mean ± error; the drift of the torch engine's conserved
    energy) and, with an all-atom reference
    directory, the same comparison as ``cgforge cg`` (``rdf_deviation``, ``rdf_r2``,
    ``acceleration_factor`` = D_CG / D_AA, ``density_error``) plus the pressure difference.
    Files: ``rdf.csv``, ``msd.csv``, ``thermo.csv`` (both stages, the columns of every CG
    engine: :data:`~cgforge.engines.protocol.THERMO_COLUMNS`), ``cg_trajectory.npz``,
    ``observables.png`` and ``summary.json`` (written last, with provenance). The output is a
    :class:`~cgforge.rundir.RunDirectory`: a killed run resumes from the engine's last
    checkpoint; a finished one returns its summary.

``transferability_table``
    Runs a model at the state point (temperature and density) of each reference directory and
    writes ``transferability.csv`` (:data:`TABLE_COLUMNS`: ``model``, ``model_kind``,
    ``engine``, ``ensemble``, the state point, the comparison with the reference), marking
    those the model was trained on (``trained_on``: the ``training_state_points`` of its
    metadata, or those the caller gives) and flagging as ``extrapolated`` those whose
    temperature or density lies outside the trained range ([min, max] over the training state
    points). The model (:func:`load_transfer_model`) is either a neural model (a
    ``cgforge fm train`` output; torch engine: an NVT row at the reference density and, on
    request, an NPT row at the reference's barostat pressure under the engine's Monte Carlo
    barostat) or a pair-potential table (``cgforge ibi``, ``cgforge fm linear`` or any table
    file; :func:`simulate_table` on the CG engine, LAMMPS by default). For both kinds the NVT
    row's pressure is the model's at the AA density and the NPT row's ``density_error`` is the
    model's at the AA pressure (the mean density of the NPT production, as ``cgforge cg``
    measures it); training state points of a table come from its run directory
    (:func:`table_metadata`).
    References of another molecule than the model's (metadata ``molecule`` against the
    reference's ``molecule``) are refused before any MD unless ``allow_other_molecules``. A
    state point whose run blows up (:class:`~cgforge.errors.SimulationError`, non-finite
    energies) gets a row with status ``failed`` and the reason; the other state points still
    run.

In NVT and NVE the torch engine's box is fixed: the density is an input, not a result, and
``density_error`` is (ρ_run − ρ_ref)/ρ_ref, zero when the run uses the reference's density (so
in every NVT row). In NPT the density is the model's. How far the model is from the
reference's equation of state shows in the pressure columns of NVT rows (``pressure_bar``
against ``reference_pressure_bar``) and in the density error of NPT rows.

Defaults: the bead mass comes from the model metadata (``bead_mass_amu``) or the reference; the
temperature and density from the reference or, without one, the model's first training state
point; the number of beads from the reference (its molecule count).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.engines.cg_engine import CGSystem, resolve_engine_name, run_cg_md
from cgforge.engines.protocol import MDProtocol, ProgressCallback, write_thermo_csv
from cgforge.engines.torch_cg import TorchEngine
from cgforge.engines.torch_md import DEFAULT_BAROSTAT_FREQUENCY, DEFAULT_TAU_PS, select_device
from cgforge.errors import InputError, SimulationError, require_positive
from cgforge.fileio import sha256_file, write_text
from cgforge.liquid_analysis import analyze, write_results
from cgforge.observables import mean_with_error
from cgforge.potentials.io import FORMATS as POTENTIAL_FORMATS
from cgforge.potentials.io import guess_format, read_potential
from cgforge.potentials.neural.base import load_model
from cgforge.potentials.table import TabulatedPotential
from cgforge.provenance import collect
from cgforge.rundir import RunDirectory
from cgforge.trajectory import CGTrajectory
from cgforge.workflows.cg import (
    DEFAULT_CG_TIMESTEP_FS,
    AAReference,
    _comparison,
    _produce,
    analyse_cg_result,
    beads_for_reference,
    box_from_density,
    load_reference,
)

#: Default NVT equilibration and production lengths, ps.
DEFAULT_EQUILIBRATION_PS = 20.0
DEFAULT_PRODUCTION_PS = 200.0
#: Default interval between samples, ps.
DEFAULT_SAMPLE_INTERVAL_PS = 0.5
#: Production ensembles: ``nvt`` (Bussi thermostat), ``nve`` or ``npt`` (Bussi thermostat and
#: the torch engine's Monte Carlo barostat).
PRODUCTION_ENSEMBLES = ("nvt", "nve", "npt")
#: A reference state point matches a training state point within these tolerances.
TRAINED_ON_TEMPERATURE_K = 0.5
TRAINED_ON_DENSITY_REL = 5.0e-3
#: Columns of ``transferability.csv`` (units in the names; errors are relative unless named).
#: ``density_g_cm3`` is the state point's (the reference's) density, ``cg_density_g_cm3`` the
#: run's: the same in NVT, the NPT mean under the barostat.
TABLE_COLUMNS = (
    "model",
    "model_kind",
    "engine",
    "ensemble",
    "state",
    "temperature_K",
    "density_g_cm3",
    "status",
    "trained_on",
    "extrapolated",
    "rdf_deviation",
    "rdf_r2",
    "density_error",
    "cg_density_g_cm3",
    "density_drift",
    "pressure_bar",
    "pressure_err_bar",
    "reference_pressure_bar",
    "pressure_error_bar",
    "diffusion_m2_s",
    "reference_diffusion_m2_s",
    "acceleration_factor",
    "acceleration_factor_err",
    "temperature_measured_K",
    "wall_s",
    "reference_dir",
    "run_dir",
    "notes",
)
#: Columns of ``transferability.csv`` taken from each run's summary: the measured ones, from
#: ``rdf_deviation`` to ``wall_s``, except the CG density (filled per ensemble).
_SUMMARY_COLUMNS = tuple(
    c
    for c in TABLE_COLUMNS[TABLE_COLUMNS.index("rdf_deviation") : TABLE_COLUMNS.index("wall_s") + 1]
    if c not in ("cg_density_g_cm3", "density_drift")
)
#: An NPT row whose density changes by more than this fraction between the first and the last
#: quarter of its production is flagged: its mean density is not an equilibrium value.
DENSITY_DRIFT_LIMIT = 0.05
#: ``status`` of a table row: the run finished, or it blew up.
STATUS_OK = "ok"
STATUS_FAILED = "failed"
#: ``status`` that tables written before the torch engine had a barostat gave the NPT rows of
#: neural models (not run); such a row counts as missing, and a rerun runs it.
STATUS_NOT_RUN = "not run"
#: ``model_kind`` of a transferability row: a tabulated pair potential or a torch model.
MODEL_KINDS = ("table", "neural")
#: Ensembles of a table model's rows: NVT at the reference density, NPT at its pressure.
TABLE_ENSEMBLES = ("nvt", "npt")


def training_state_points(metadata: dict[str, Any]) -> list[dict[str, float]]:
    """The ``training_state_points`` of a model's metadata as ``{temperature_K, density_g_cm3}``.

    Entries without a finite temperature and density are skipped; other keys (e.g.
    ``reference_dir``) are kept.
    """
    points = metadata.get("training_state_points") or []
    result: list[dict[str, Any]] = []
    if not isinstance(points, list):
        return result
    for point in points:
        if not isinstance(point, dict):
            continue
        try:
            t = float(point["temperature_K"])
            rho = float(point["density_g_cm3"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(t) and math.isfinite(rho):
            result.append({**point, "temperature_K": t, "density_g_cm3": rho})
    return result


def is_training_state(
    temperature_K: float,
    density_g_cm3: float,
    metadata: dict[str, Any],
    reference_dir: str | Path | None = None,
) -> bool:
    """Whether (T, ρ), or the reference directory, is one of the model's training state points.

    A point matches when its ``reference_dir`` (or ``source``, the all-atom run it was trained
    on) resolves to the same directory, or when T agrees
    within :data:`TRAINED_ON_TEMPERATURE_K` and ρ within :data:`TRAINED_ON_DENSITY_REL`.
    """
    here = None if reference_dir is None else Path(reference_dir).resolve()
    for point in training_state_points(metadata):
        for key in ("reference_dir", "source"):
            ref = point.get(key)
            if here is not None and isinstance(ref, str) and Path(ref).resolve() == here:
                return True
        if (
            abs(point["temperature_K"] - temperature_K) <= TRAINED_ON_TEMPERATURE_K
            and abs(point["density_g_cm3"] - density_g_cm3)
            <= TRAINED_ON_DENSITY_REL * density_g_cm3
        ):
            return True
    return False


def training_range(metadata: dict[str, Any]) -> dict[str, tuple[float, float]] | None:
    """The trained range ``{"temperature_K": (min, max), "density_g_cm3": (min, max)}`` over the
    model's ``training_state_points``; None when the metadata lists none."""
    points = training_state_points(metadata)
    if not points:
        return None
    return {
        key: (min(p[key] for p in points), max(p[key] for p in points))
        for key in ("temperature_K", "density_g_cm3")
    }


def extrapolation_notes(
    temperature_K: float, density_g_cm3: float, metadata: dict[str, Any]
) -> list[str] | None:
    """Why (T, ρ) lies outside the model's trained range (empty when inside; the tolerances of
    :func:`is_training_state` widen the range); None when the metadata lists no state points."""
    trained = training_range(metadata)
    if trained is None:
        return None
    notes = []
    t_lo, t_hi = trained["temperature_K"]
    if not t_lo - TRAINED_ON_TEMPERATURE_K <= temperature_K <= t_hi + TRAINED_ON_TEMPERATURE_K:
        notes.append(
            f"temperature {temperature_K:g} K outside the trained range [{t_lo:g}, {t_hi:g}] K"
        )
    r_lo, r_hi = trained["density_g_cm3"]
    tol = TRAINED_ON_DENSITY_REL * density_g_cm3
    if not r_lo - tol <= density_g_cm3 <= r_hi + tol:
        notes.append(
            f"density {density_g_cm3:.4g} g/cm3 outside the trained range "
            f"[{r_lo:.4g}, {r_hi:.4g}] g/cm3"
        )
    return notes


def _same_molecule(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _steps(time_ps: float, dt_ps: float, interval: int, what: str) -> int:
    """Steps covering ``time_ps``, rounded up to a whole number of sample intervals."""
    steps = max(1, math.ceil(time_ps / dt_ps / interval - 1e-9)) * interval
    if steps <= 0:
        raise InputError(f"{what} is too short for one sample")
    return steps


def simulate_model(
    model_path: str | Path,
    out: str | Path,
    *,
    n_beads: int | None = None,
    temperature_K: float | None = None,
    density_g_cm3: float | None = None,
    bead_mass_amu: float | None = None,
    production_ps: float = DEFAULT_PRODUCTION_PS,
    equilibration_ps: float = DEFAULT_EQUILIBRATION_PS,
    timestep_fs: float = DEFAULT_CG_TIMESTEP_FS,
    sample_interval_ps: float = DEFAULT_SAMPLE_INTERVAL_PS,
    production_ensemble: str = "nvt",
    tau_ps: float = DEFAULT_TAU_PS,
    reference_dir: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    pressure_bar: float | None = None,
    barostat_interval: int = DEFAULT_BAROSTAT_FREQUENCY,
) -> dict[str, Any]:
    """Simulate a one-bead CG liquid with the saved model at ``model_path``; return the summary.

    Parameters (units: K, g/cm³, amu, ps, fs, bar): see the module docstring for defaults. The
    start box holds ``n_beads`` at ``density_g_cm3``. Under ``nvt`` and ``nve`` the run keeps
    that density: ``equilibration_ps`` with the Bussi thermostat (coupling time ``tau_ps``),
    then ``production_ps`` under ``production_ensemble`` (``nvt``: the same global thermostat,
    ``nve``: Newtonian). Under ``npt`` both stages add the torch engine's Monte Carlo barostat
    at ``pressure_bar`` (default: the reference's barostat pressure, else 1 bar; a volume move
    every ``barostat_interval`` steps) and production starts from the mean volume of the second
    half of equilibration; the density, its error and the RDF then come from the production's
    own boxes (:func:`cgforge.workflows.cg.analyse_cg_result`, as for tables). Sampled every
    ``sample_interval_ps``. Rerunning into the same ``out`` resumes (checkpoints in its work
    directory); a finished run returns its summary.
    """
    path = Path(model_path)
    model, metadata = load_model(path)
    reference: AAReference | None = None if reference_dir is None else load_reference(reference_dir)
    points = training_state_points(metadata)
    if bead_mass_amu is None:
        bead_mass_amu = metadata.get("bead_mass_amu")
        if bead_mass_amu is None and reference is not None:
            bead_mass_amu = reference.bead_mass_amu
        if bead_mass_amu is None:
            raise InputError(
                "the bead mass is unknown: the model metadata has no bead_mass_amu; give "
                "bead_mass_amu (amu) or reference_dir (its bead mass)",
                parameters=("bead_mass_amu", "reference_dir"),
            )
    mass = require_positive(bead_mass_amu, "bead mass (amu)")
    if temperature_K is None:
        if reference is not None:
            temperature_K = reference.temperature_K
        elif points:
            temperature_K = points[0]["temperature_K"]
        else:
            raise InputError(
                "give temperature_K (K) or reference_dir to take it from",
                parameters=("temperature_K", "reference_dir"),
            )
    temperature = require_positive(temperature_K, "temperature (K)")
    if density_g_cm3 is None:
        if reference is not None:
            density_g_cm3 = reference.density_g_cm3
        elif metadata.get("density_g_cm3") is not None:
            density_g_cm3 = metadata["density_g_cm3"]
        elif points:
            density_g_cm3 = points[0]["density_g_cm3"]
        else:
            raise InputError(
                "give density_g_cm3 (g/cm3) or reference_dir to take it from",
                parameters=("density_g_cm3", "reference_dir"),
            )
    density = require_positive(density_g_cm3, "density (g/cm3)")
    if n_beads is None:
        if reference is None:
            raise InputError(
                "give n_beads or reference_dir (its molecule count)",
                parameters=("n_beads", "reference_dir"),
            )
        n_beads = reference.n_molecules
    if isinstance(n_beads, bool) or int(n_beads) != n_beads or int(n_beads) < 2:
        raise InputError(f"the number of beads must be an integer >= 2, got {n_beads!r}")
    n = int(n_beads)
    box = box_from_density(n, mass, density)
    if model.cutoff_nm > 0.5 * float(box[0]):
        needed = math.ceil(n * (2.0 * model.cutoff_nm / float(box[0])) ** 3)
        raise InputError(
            f"{n} beads at {density:g} g/cm3 make a box of {box[0]:.3g} nm, shorter than twice "
            f"the model's cutoff ({model.cutoff_nm:g} nm); use at least {needed} beads"
        )
    if production_ensemble not in PRODUCTION_ENSEMBLES:
        raise InputError(
            f"unknown production ensemble {production_ensemble!r}; use one of "
            f"{PRODUCTION_ENSEMBLES}"
        )
    npt = production_ensemble == "npt"
    if not npt and pressure_bar is not None:
        raise InputError(
            f"pressure_bar sets the barostat of an npt run; the {production_ensemble} run keeps "
            "its density (give production_ensemble='npt' or leave pressure_bar out)",
            parameters=("pressure_bar", "production_ensemble"),
        )
    if npt:
        if pressure_bar is None:
            pressure_bar = 1.0 if reference is None else reference.barostat_pressure_bar
        target_pressure = float(pressure_bar)
        if isinstance(pressure_bar, bool) or not (
            math.isfinite(target_pressure) and target_pressure >= 0.0
        ):
            raise InputError(
                f"pressure_bar must be a finite pressure >= 0 bar, got {pressure_bar!r}",
                parameters="pressure_bar",
            )
        if isinstance(barostat_interval, bool) or int(barostat_interval) != barostat_interval:
            raise InputError(
                f"barostat_interval must be a whole number of steps, got {barostat_interval!r}",
                parameters="barostat_interval",
            )
        if int(barostat_interval) < 1:
            raise InputError(
                f"barostat_interval must be >= 1 step, got {barostat_interval!r}",
                parameters="barostat_interval",
            )
    dt_ps = require_positive(timestep_fs, "time step (fs)") * 1e-3
    tau = require_positive(tau_ps, "thermostat coupling time tau (ps)")
    interval = max(1, round(require_positive(sample_interval_ps, "sample interval (ps)") / dt_ps))
    n_eq = _steps(
        require_positive(equilibration_ps, "equilibration (ps)"), dt_ps, interval, "equilibration"
    )
    n_prod = _steps(
        require_positive(production_ps, "production (ps)"), dt_ps, interval, "production"
    )
    chosen = select_device(device)
    barostat: dict[str, Any] = {}
    if npt:
        barostat = {"pressure_bar": target_pressure, "barostat_interval": int(barostat_interval)}
    protocol = MDProtocol(
        **barostat,
        temperature_K=temperature,
        timestep_fs=float(timestep_fs),
        minimize=False,
        equilibration_ps=n_eq * dt_ps,
        production_ps=n_prod * dt_ps,
        sample_interval_ps=interval * dt_ps,
        thermo_interval_ps=interval * dt_ps,
        production_ensemble=production_ensemble,
        thermostat_collision_per_ps=1.0 / tau,
        checkpoint_interval_ps=10 * interval * dt_ps,
        seed=int(seed),
        engine="torch",
    )
    system = CGSystem(model, n, box, mass, label=f"the model {path.name}")
    config = {
        "model_file": str(path.resolve()),
        "model_sha256": sha256_file(path),
        "model_name": model.model_name,
        "bead_mass_amu": mass,
        "n_beads": n,
        "temperature_K": temperature,
        "density_g_cm3": density,
        "box_nm": box.tolist(),
        "timestep_fs": float(timestep_fs),
        "equilibration_steps": n_eq,
        "production_steps": n_prod,
        "sample_interval_steps": interval,
        "production_ensemble": production_ensemble,
        "tau_ps": tau,
        "seed": int(seed),
        "reference_dir": None if reference is None else str(reference.path),
        "reference_sha256": None if reference is None else reference.fingerprint(),
        **barostat,  # npt only: nvt and nve configurations are those of earlier versions
    }
    rundir = RunDirectory(out, config, overwrite=overwrite)
    if rundir.prepare() == "complete":
        return rundir.read_summary()

    result = run_cg_md(
        system, protocol, rundir.work, progress=progress, engine=TorchEngine(device=str(chosen))
    )
    if npt:  # the density series and per-frame boxes of the NPT production, as for tables
        traj, analysis, _ = analyse_cg_result(result, reference)
    else:
        traj = CGTrajectory(
            positions_nm=result.bead_positions_nm,
            box_nm=np.tile(result.box_nm, (len(result.times_ps), 1)),
            times_ps=result.times_ps,
            masses_amu=result.bead_masses_amu,
        )
        kwargs: dict[str, Any] = {}
        if reference is not None:
            width = float(reference.rdf.bin_width_nm)
            top = min(float(reference.rdf.r_max_nm), 0.5 * float(np.min(box)))
            kwargs = {"rdf_bin_nm": width, "rdf_r_max_nm": math.floor(top / width + 1e-9) * width}
        analysis = analyze(traj, **kwargs)
    name = str(metadata.get("molecule") or (reference.molecule if reference else path.stem))
    write_results(rundir.path, analysis, traj, title=f"{name}: CG model {model.model_name}")
    write_thermo_csv(rundir.path / "thermo.csv", result.thermo)
    prod = result.thermo["stage"] == 1
    pressure, pressure_err = mean_with_error(result.thermo["pressure_bar"][prod])
    t_meas, t_err = mean_with_error(result.thermo["temperature_K"][prod])
    drift = _conserved_drift(result.thermo["t_ps"], result.conserved_kJ_mol, prod)
    speed = (
        result.ns_per_day if math.isfinite(result.ns_per_day) and result.ns_per_day > 0 else None
    )
    comparison = _comparison(analysis, reference, model.cutoff_nm)
    ref_p = None if reference is None else reference.pressure_bar
    notes = []
    if reference is not None and abs(temperature - reference.temperature_K) > 1e-6:
        notes.append(
            f"run temperature {temperature} K differs from the reference's "
            f"{reference.temperature_K} K; the comparison mixes two state points"
        )
    summary: dict[str, Any] = {
        "molecule": name,
        "source": "cgforge torch MD",
        "model": f"one bead per molecule, torch energy model '{model.model_name}'",
        "model_file": str(path.resolve()),
        "model_name": model.model_name,
        "model_metadata": metadata,
        "trained_on": is_training_state(temperature, density, metadata, reference_dir),
        "temperature_K": temperature,
        "temperature_measured_K": t_meas,
        "temperature_err_K": t_err,
        "pressure_bar": pressure,
        "pressure_err_bar": pressure_err,
        "reference_pressure_bar": ref_p,
        "pressure_error_bar": None if ref_p is None else pressure - ref_p,
        "density_source": "NPT production" if npt else "fixed box (NVT at the given density)",
        **analysis.summary_fields(),
        **comparison,
        "n_beads": n,
        "cutoff_nm": model.cutoff_nm,
        "timestep_fs": float(timestep_fs),
        "equilibration_ps": n_eq * dt_ps,
        "production_ps": n_prod * dt_ps,
        "production_ensemble": production_ensemble,
        "thermostat": "Bussi stochastic velocity rescaling"
        if production_ensemble in ("nvt", "npt")
        else None,
        "tau_ps": tau,
        **(
            {
                "pressure_target_bar": target_pressure,
                "barostat": "Monte Carlo, isotropic (torch engine)",
                "barostat_interval_steps": int(barostat_interval),
                "start_density_g_cm3": density,
                "npt_volume_nm3": result.npt_volume_nm3,
                "barostat_moves": result.barostat,
            }
            if npt
            else {}
        ),
        "conserved_energy_drift_kj_mol_ps": drift,
        "engine": protocol.engine,
        "device": str(chosen),
        "steps_per_s": None if speed is None else speed / (dt_ps * 1e-3 * 86400.0),
        "ns_per_day": speed,
        "wall_s": result.wall_s,
        "notes": notes,
        "files": {
            "rdf": "rdf.csv",
            "msd": "msd.csv",
            "thermo": "thermo.csv",
            "cg_trajectory": "cg_trajectory.npz",
            "plot": "observables.png",
        },
        "provenance": collect({**config, "device": str(chosen)}, seed=int(seed)),
    }
    rundir.write_summary(summary)
    rundir.clean_work()
    return summary


def _conserved_drift(
    t_ps: np.ndarray, conserved_kJ_mol: np.ndarray | None, rows: np.ndarray
) -> float:
    """Slope of the conserved energy over the thermo ``rows`` (a mask), kJ/mol/ps; 0 with one
    sample. Conserved: the total energy minus the energy the thermostat put in."""
    if conserved_kJ_mol is None:
        raise SimulationError("the torch engine returned no conserved energy")
    t, e = np.asarray(t_ps)[rows], np.asarray(conserved_kJ_mol)[rows]
    return float(np.polyfit(t, e, 1)[0]) if len(e) > 1 else 0.0


def _state_dir_name(k: int, reference: AAReference, ensemble: str | None = None) -> str:
    name = f"state_{k:02d}_{reference.temperature_K:g}K_{reference.density_g_cm3:.4g}gcm3"
    return name if ensemble is None else f"{name}_{ensemble}"


# ====================================================================== models of the table
@dataclass(frozen=True)
class TransferModel:
    """A model of the transferability table: a tabulated pair potential or a torch model.

    ``path``: the table or model file; ``kind``: one of :data:`MODEL_KINDS`; ``name``: its
    label in the table (its run directory's name, else the file's stem); ``metadata``: a neural
    model's own, or what a table's run directory records (:func:`table_metadata`), with the
    ``training_state_points`` given by the caller where there are any; ``potential``: the
    table (None for a neural model).
    """

    path: Path
    kind: str
    name: str
    metadata: dict[str, Any]
    potential: TabulatedPotential | None = None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def reference_state_point(reference_dir: str | Path) -> dict[str, Any]:
    """A training state point from a reference directory (or a shipped reference's name):
    ``temperature_K``, ``density_g_cm3``, ``molecule`` and ``reference_dir``."""
    reference = load_reference(reference_dir)
    return {
        "temperature_K": reference.temperature_K,
        "density_g_cm3": reference.density_g_cm3,
        "molecule": reference.molecule,
        "reference_dir": str(reference.path),
    }


def table_metadata(potential_file: str | Path) -> dict[str, Any]:
    """What the run directory of a pair-potential table records about its training.

    Read from ``summary.json`` beside the table: a ``cgforge fm linear`` run gives its
    ``state_points`` (each with its all-atom run as ``source``), a ``cgforge ibi`` run its
    reference (temperature, the reference's density, ``reference_dir``); both give the
    ``molecule`` and ``bead_mass_amu``. Without a readable summary of either kind the result
    has no ``training_state_points`` (``training`` says why).
    """
    path = Path(potential_file)
    metadata: dict[str, Any] = {"training": "unknown: no cgforge ibi / fm linear summary.json"}
    summary_path = path.parent / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return metadata
    if not isinstance(summary, dict):
        return metadata
    if summary.get("source") == "cgforge fm linear":
        points = [
            {
                "temperature_K": p.get("temperature_K"),
                "density_g_cm3": p.get("density_g_cm3"),
                "molecule": p.get("molecule"),
                "source": p.get("source"),
            }
            for p in summary.get("state_points") or []
            if isinstance(p, dict)
        ]
        metadata.update(training="linear force matching (cgforge fm linear)")
    elif summary.get("ibi_iteration_kept") is not None or summary.get("iterations") is not None:
        points = [
            {
                "temperature_K": summary.get("temperature_K"),
                "density_g_cm3": summary.get("reference_density_g_cm3"),
                "reference_dir": summary.get("reference_dir"),
            }
        ]
        metadata.update(training="iterative Boltzmann inversion (cgforge ibi)")
    else:
        return metadata
    molecule = summary.get("molecule")
    if isinstance(molecule, str):
        metadata["molecule"] = re.sub(r"\s*\(CG[^)]*\)\s*$", "", molecule)
    if summary.get("bead_mass_amu") is not None:
        metadata["bead_mass_amu"] = summary["bead_mass_amu"]
    metadata["training_state_points"] = points
    metadata["training_run"] = str(path.parent.resolve())
    return metadata


def load_transfer_model(
    model: str | Path,
    *,
    trained_at: Sequence[str | Path] | None = None,
    name: str | None = None,
) -> TransferModel:
    """The model behind ``model``: a ``cgforge fm train`` directory or model file (neural), or
    a pair-potential table (any format of :mod:`cgforge.potentials.io`) or a run directory
    holding ``potential.csv`` (``cgforge ibi``, ``cgforge fm linear``, ``cgforge cg``).

    ``trained_at`` (reference directories) replaces the training state points the model or its
    run directory records. Raises InputError (one line) for a missing path, a file of another
    kind, or a table that cannot be read.
    """
    path = Path(model)
    if path.is_dir():
        candidates = [path / "model.pt", path / "potential.csv"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise InputError(
                f"{path} holds neither model.pt (cgforge fm train) nor potential.csv (cgforge "
                "ibi, fm linear or cg); give a model file or a pair-potential table"
            )
        file = found[0]
    elif path.is_file():
        file = path
    else:
        raise InputError(
            f"model {path} not found; give a `cgforge fm train` output, a model file or a "
            "pair-potential table"
        )
    if name is None:
        name = file.parent.name if file.name in ("model.pt", "potential.csv") else file.stem
    potential: TabulatedPotential | None = None
    if file.suffix.lower() == ".pt" or _is_torch_archive(file):
        kind = "neural"
        _, metadata = load_model(file)
        metadata = dict(metadata)
    else:
        kind = "table"
        try:
            guess_format(file)
        except InputError:
            raise InputError(
                f"unknown model file kind {file}: give a cgforge model (.pt, cgforge fm train) "
                f"or a pair-potential table ({', '.join(sorted(POTENTIAL_FORMATS))})"
            ) from None
        try:
            potential = read_potential(file)
        except InputError as exc:
            raise InputError(f"{file} holds no readable pair potential: {_one_line(exc)}") from None
        metadata = table_metadata(file)
        metadata.setdefault("cutoff_nm", potential.cutoff_nm)
    if trained_at is not None:
        metadata["training_state_points"] = [reference_state_point(d) for d in trained_at]
        metadata["training"] = "given by the caller (trained_at)"
    return TransferModel(file.resolve(), kind, str(name), metadata, potential)


def _is_torch_archive(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


# ====================================================================== table runs
def simulate_table(
    potential_path: str | Path,
    out: str | Path,
    *,
    reference_dir: str | Path,
    ensemble: str = "nvt",
    n_beads: int | None = None,
    bead_mass_amu: float | None = None,
    production_ps: float = DEFAULT_PRODUCTION_PS,
    equilibration_ps: float = DEFAULT_EQUILIBRATION_PS,
    timestep_fs: float = DEFAULT_CG_TIMESTEP_FS,
    sample_interval_ps: float = DEFAULT_SAMPLE_INTERVAL_PS,
    engine: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """A pair-potential table at a reference's state point on a CG engine; return the summary.

    ``nvt``: a box at the reference's density (``n_beads``, default its molecule count or more
    where the cutoff needs a larger box), ``equilibration_ps`` of Nosé–Hoover NVT from the
    minimised lattice (discarded), then ``production_ps`` of NVT from its last configuration:
    ``pressure_bar`` is the model's pressure at the AA density and ``density_error`` zero.
    ``npt``: the engine's NPT equilibration at the reference's barostat pressure, then an
    ``npt`` production (LAMMPS, OpenMM and torch): ``density_error`` is the model's density
    error at the target pressure. Both at the reference's temperature on ``engine`` (``auto``:
    LAMMPS on CPUs), compared with the reference as ``cgforge cg`` does (:func:`_produce` of
    :mod:`cgforge.workflows.cg`). Resumable; a finished run returns its summary.
    """
    path = Path(potential_path)
    potential = read_potential(path)
    reference = load_reference(reference_dir)
    if ensemble not in TABLE_ENSEMBLES:
        raise InputError(f"unknown ensemble {ensemble!r}; use one of {', '.join(TABLE_ENSEMBLES)}")
    engine_name = resolve_engine_name(engine)
    mass = require_positive(
        reference.bead_mass_amu if bead_mass_amu is None else bead_mass_amu, "bead mass (amu)"
    )
    n = beads_for_reference(reference, potential.cutoff_nm) if n_beads is None else n_beads
    if isinstance(n, bool) or int(n) != n or int(n) < 2:
        raise InputError(f"the number of beads must be an integer >= 2, got {n!r}")
    n = int(n)
    box = box_from_density(n, mass, reference.density_g_cm3)
    equilibration = float(equilibration_ps)
    if not (math.isfinite(equilibration) and equilibration >= 0):
        raise InputError(f"equilibration (ps) must be >= 0, got {equilibration_ps!r}")
    if ensemble == "npt" and equilibration <= 0:
        raise InputError("the npt row needs an NPT equilibration (equilibration_ps > 0)")
    sample = require_positive(sample_interval_ps, "sample interval (ps)")
    base: dict[str, Any] = {
        "temperature_K": reference.temperature_K,
        "pressure_bar": reference.barostat_pressure_bar,
        "timestep_fs": float(timestep_fs),
        "sample_interval_ps": sample,
        "thermo_interval_ps": sample,
        "save_particles": False,
        "seed": int(seed),
        "engine": engine_name,
    }
    pre: MDProtocol | None = None
    if ensemble == "nvt":
        if equilibration > 0:
            pre = MDProtocol(
                **base, minimize=True, equilibration_ps=0.0, production_ps=equilibration
            )
        protocol = MDProtocol(
            **base,
            minimize=pre is None,
            equilibration_ps=0.0,
            production_ps=require_positive(production_ps, "production (ps)"),
        )
    else:
        protocol = MDProtocol(
            **base,
            equilibration_ps=equilibration,
            production_ps=require_positive(production_ps, "production (ps)"),
            production_ensemble="npt",
        )
    config = {
        "potential_file": str(path.resolve()),
        "potential_sha256": sha256_file(path),
        "ensemble": ensemble,
        "mass_amu": mass,
        "n_beads": n,
        "box_nm": box.tolist(),
        "nvt_equilibration": None if pre is None else pre.to_dict(),
        "protocol": protocol.to_dict(),
        "reference_dir": str(reference.path),
        "reference_sha256": reference.fingerprint(),
    }
    rundir = RunDirectory(out, config, overwrite=overwrite)
    if rundir.prepare() == "complete":
        return rundir.read_summary()
    label = f"the table {path}"
    positions = None
    if pre is not None:
        system = CGSystem(potential, n, box, mass, label=label)
        settled = run_cg_md(system, pre, rundir.work / "nvt_equilibration", progress=progress)
        last = np.asarray(settled.bead_positions_nm[-1], dtype=float)
        positions = last - box * np.floor(last / box)
    ensemble_words = (
        "NVT at the reference density" if ensemble == "nvt" else "NPT at the reference pressure"
    )
    return _produce(
        rundir,
        potential,
        name=f"{reference.molecule} (CG table {path.parent.name or path.stem})",
        mass_amu=mass,
        n_beads=n,
        box_nm=box,
        protocol=protocol,
        reference=reference,
        extra={
            "n_beads": n,
            "potential_source": str(path.resolve()),
            "ensemble": ensemble,
            "ensemble_description": ensemble_words,
            "nvt_equilibration_ps": None if pre is None else pre.production_ps,
            "reference_pressure_bar": reference.pressure_bar,
        },
        notes=[],
        config=config,
        progress=progress,
        positions_nm=positions,
    )


# ====================================================================== the table
#: Keyword arguments of :func:`simulate_table` that ``transferability_table`` passes on to
#: table runs (the others of ``md_settings`` are the torch engine's: device, tau_ps, ...).
_TABLE_SETTINGS = frozenset(
    {
        "n_beads",
        "bead_mass_amu",
        "production_ps",
        "equilibration_ps",
        "timestep_fs",
        "sample_interval_ps",
        "seed",
        "overwrite",
        "progress",
    }
)
#: Keyword arguments of :func:`simulate_model` only (neural rows).
_NEURAL_SETTINGS = frozenset({"device", "tau_ps", "production_ensemble", "barostat_interval"})


def transferability_table(
    model_path: str | Path,
    reference_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    allow_other_molecules: bool = False,
    trained_at: Sequence[str | Path] | None = None,
    model_name: str | None = None,
    engine: str = "auto",
    ensembles: Sequence[str] | None = None,
    **md_settings: Any,
) -> list[dict[str, Any]]:
    """Run the model at every reference's state point; write ``out/transferability.csv``.

    ``model_path``: anything :func:`load_transfer_model` reads. A neural model runs on the
    torch engine (:func:`simulate_model`): a row at the reference's density in its
    ``production_ensemble`` (``nvt`` unless ``md_settings`` say otherwise; it stands for
    ``nvt`` in ``ensembles``) and, when ``ensembles`` names ``npt``, an NPT row at the
    reference's barostat pressure (the torch engine's Monte Carlo barostat). A table runs on
    the CG engine ``engine`` (:func:`simulate_table`), one row per reference and ensemble
    (``nvt``: at the reference density, ``npt``: at its barostat pressure). ``ensembles`` (of
    ``nvt``, ``npt``): None runs both for tables and the density row alone for neural models
    (their NPT row only on request). Runs go to ``out/state_NN_<T>K_<rho>gcm3`` (``_nvt``/``_npt`` for tables, no
    suffix for a neural model's NVT row and ``_npt`` for its NPT row; resumable).
    ``md_settings`` are keyword arguments of :func:`simulate_model` or
    :func:`simulate_table` other than the state point; each kind takes those it knows.
    ``trained_at`` (reference directories) gives the training state points where the model
    or its run directory records none (or replaces them). Returns the rows
    (:data:`TABLE_COLUMNS`).

    References of another molecule than the model's ``molecule`` raise InputError before any
    MD unless ``allow_other_molecules`` (then the row's note says so). A state point outside
    the trained temperature or density range runs, with ``extrapolated`` true and a note. A
    run that blows up gives a row with ``status`` ``failed`` and the reason in ``notes`` (its
    other columns empty); the remaining state points still run.
    """
    if not reference_dirs:
        raise InputError("give at least one reference directory (a state point to test)")
    for key in ("temperature_K", "density_g_cm3", "reference_dir"):
        if key in md_settings:
            raise InputError(
                f"{key} comes from each reference directory; remove it from the MD settings"
            )
    unknown = sorted(set(md_settings) - _TABLE_SETTINGS - _NEURAL_SETTINGS)
    if unknown:
        raise InputError(f"unknown MD setting(s) {', '.join(unknown)} for the transferability")
    bad = [] if ensembles is None else [e for e in ensembles if e not in TABLE_ENSEMBLES]
    if bad or (ensembles is not None and not ensembles):
        raise InputError(f"ensembles must be among {', '.join(TABLE_ENSEMBLES)}, got {bad}")
    model = load_transfer_model(model_path, trained_at=trained_at, name=model_name)
    metadata = model.metadata
    references = [load_reference(d) for d in reference_dirs]
    trained_molecule = metadata.get("molecule")
    trained_molecule = None if trained_molecule is None else str(trained_molecule)
    others = [
        r
        for r in references
        if trained_molecule is not None and not _same_molecule(r.molecule, trained_molecule)
    ]
    if others and not allow_other_molecules:
        listed = ", ".join(f"{r.path} ({r.molecule})" for r in others)
        raise InputError(
            f"the model was trained on {trained_molecule} but the reference(s) {listed} hold "
            "another molecule; give references of the same molecule or pass "
            "allow_other_molecules=True to test it on other molecules",
            parameters="allow_other_molecules",
        )
    if model.kind == "table":
        engine_name = resolve_engine_name(engine)
        settings = {k: v for k, v in md_settings.items() if k in _TABLE_SETTINGS}
        wanted = TABLE_ENSEMBLES if ensembles is None else ensembles
        runs = [(e, engine_name) for e in TABLE_ENSEMBLES if e in wanted]
    else:
        settings = dict(md_settings)
        neural_ensemble = str(md_settings.get("production_ensemble", "nvt"))
        if neural_ensemble == "npt":
            runs = [("npt", "torch")]
        else:  # the row at the reference density (nvt or nve), then the NPT row on request
            runs = [(neural_ensemble, "torch")] if ensembles is None or "nvt" in ensembles else []
            if ensembles is not None and "npt" in ensembles:
                runs.append(("npt", "torch"))
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for k, reference in enumerate(references):
        t, rho = reference.temperature_K, reference.density_g_cm3
        notes: list[str] = []
        if trained_molecule is None:
            notes.append("the model metadata names no molecule; the molecule was not checked")
        elif not _same_molecule(reference.molecule, trained_molecule):
            notes.append(
                f"reference molecule {reference.molecule} differs from the model's "
                f"training molecule {trained_molecule}"
            )
        outside = extrapolation_notes(t, rho, metadata)
        if outside is None:
            notes.append("the model metadata lists no training state points")
        elif outside:
            notes.append("extrapolated: " + " and ".join(outside))
        for ensemble, engine_used in runs:
            if model.kind == "table" or ensemble == "npt":
                run_dir = root / _state_dir_name(k, reference, ensemble)
            else:
                run_dir = root / _state_dir_name(k, reference)
            row = _row(model, reference, ensemble, engine_used, metadata, outside, run_dir)
            row_notes = list(notes)
            _run_row(model, reference, run_dir, ensemble, settings, row, row_notes)
            row["notes"] = "; ".join(row_notes)
            rows.append(row)
            write_text(root / "transferability.csv", table_csv(rows))  # each row as it comes
    return rows


def _row(
    model: TransferModel,
    reference: AAReference,
    ensemble: str,
    engine: str,
    metadata: dict[str, Any],
    outside: list[str] | None,
    run_dir: Path,
) -> dict[str, Any]:
    """A table row before its run: the model, the state point and the trained/extrapolated
    flags."""
    t, rho = reference.temperature_K, reference.density_g_cm3
    row: dict[str, Any] = dict.fromkeys(TABLE_COLUMNS)
    row.update(
        {
            "model": model.name,
            "model_kind": model.kind,
            "engine": engine,
            "ensemble": ensemble,
            "state": reference.path.name,
            "temperature_K": t,
            "density_g_cm3": rho,
            "status": STATUS_OK,
            "trained_on": is_training_state(t, rho, metadata, reference.path),
            "extrapolated": None if outside is None else bool(outside),
            "reference_dir": str(reference.path),
            "run_dir": str(run_dir.resolve()),
        }
    )
    return row


def _run_row(
    model: TransferModel,
    reference: AAReference,
    run_dir: Path,
    ensemble: str,
    settings: dict[str, Any],
    row: dict[str, Any],
    notes: list[str],
) -> None:
    """Run one row's MD and fill ``row`` from its summary (``failed`` and the reason in
    ``notes`` when it blows up)."""
    t, rho = reference.temperature_K, reference.density_g_cm3
    try:
        if model.kind == "table":
            summary = simulate_table(
                model.path,
                run_dir,
                reference_dir=reference.path,
                ensemble=ensemble,
                engine=row["engine"],
                **settings,
            )
        else:
            neural = dict(settings)
            if ensemble == "npt":  # at the reference's pressure, from a box at its density
                neural.update(
                    production_ensemble="npt", pressure_bar=reference.barostat_pressure_bar
                )
            else:
                neural.pop("barostat_interval", None)
            summary = simulate_model(
                model.path,
                run_dir,
                temperature_K=t,
                density_g_cm3=rho,
                reference_dir=reference.path,
                **neural,
            )
        blown = _non_finite(summary)
        if blown:
            raise SimulationError(f"the run gave non-finite {', '.join(blown)}")
    except SimulationError as exc:
        row["status"] = STATUS_FAILED
        notes.append(f"failed: {_one_line(exc)}")
        return
    row.update({c: summary.get(c) for c in _SUMMARY_COLUMNS})
    row["cg_density_g_cm3"] = summary.get("density_g_cm3")
    if ensemble == "npt":
        drift = production_density_drift(run_dir / "thermo.csv")
        row["density_drift"] = drift
        if drift is not None and abs(drift) > DENSITY_DRIFT_LIMIT:
            notes.append(
                f"not stationary: the density changes by {drift:+.0%} from the first to the last "
                "quarter of the production; its mean is no equilibrium density (lengthen the "
                "run, or the model has no stable liquid at this pressure)"
            )
    p, p_ref = row.get("pressure_bar"), row.get("reference_pressure_bar")
    if row.get("pressure_error_bar") is None and _is_number(p) and _is_number(p_ref):
        row["pressure_error_bar"] = float(p) - float(p_ref)
    model_notes = [str(n) for n in summary.get("notes") or [] if model.kind == "table"]
    notes.extend(model_notes)


def production_density_drift(thermo_csv: Path) -> float | None:
    """(ρ_last − ρ_first) / ρ̄ of a run's production thermo rows (``thermo.csv``): the mean
    densities of its last and first quarters against the production mean; None without a
    file or with fewer than 8 production rows."""
    if not thermo_csv.is_file():
        return None
    with open(thermo_csv, encoding="utf-8") as handle:  # write_thermo_csv: stages by name
        rho = np.array(
            [
                float(r["density_g_cm3"])
                for r in csv.DictReader(handle)
                if r["stage"] == "production"
            ]
        )
    if rho.size < 8 or not np.all(np.isfinite(rho)):
        return None
    quarter = rho.size // 4
    return float((rho[-quarter:].mean() - rho[:quarter].mean()) / rho.mean())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _non_finite(summary: dict[str, Any]) -> list[str]:
    """Names of the energy-derived results of a run's summary that are not finite numbers."""
    names = ("pressure_bar", "temperature_measured_K", "conserved_energy_drift_kj_mol_ps")
    bad = []
    for name in names:
        value = summary.get(name)
        if isinstance(value, int | float) and not math.isfinite(value):
            bad.append(name)
    return bad


def table_csv(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] = TABLE_COLUMNS,
    *,
    digits: int = 8,
    header: str = "",
) -> str:
    """Rows of a transferability table as CSV text: ``columns`` in order, empty cells for
    missing values, booleans as ``true``/``false``, floats to ``digits`` significant digits;
    ``header`` (a comment line, ``#`` included) goes first when given."""
    buffer = io.StringIO()
    if header:
        buffer.write(header.rstrip("\n") + "\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("")
            elif isinstance(value, bool):
                cells.append("true" if value else "false")
            elif isinstance(value, float):
                cells.append(f"{value:.{digits}g}")
            else:
                cells.append(str(value))
        writer.writerow(cells)
    return buffer.getvalue()
