"""How each kind of database record is simulated: the stage runners of ``cgforge db generate``.

The records' specifications, settings and grids are the store's
(:mod:`cgforge.database.stages`); this module runs them.

Stage A (one force field)
    A built-in molecule with bonded parameters drawn at random
    (:func:`cgforge.molecules.randomize.randomize_molecule`, seed ``draw_seed``) → all-atom
    liquid (:func:`cgforge.workflows.aa.run_aa`) → IBI one-bead potential and CG production at
    the molecular mass (:func:`cgforge.workflows.cg.run_ibi_from_reference`):
    :func:`run_stage_a`.

Stage B (one bead mass)
    The stage-A record's CG potential, as stored on the potential learning grid, simulated as a
    one-bead liquid of another bead mass (:func:`cgforge.workflows.cg.run_cg`): the same
    Hamiltonian with other dynamics, so D_CG(m) is learnt at fixed structure:
    :func:`run_stage_b`.

Stage C (one perturbed potential, one bead mass)
    The stage-A record's CG potential perturbed by the trade-off basis
    (:class:`cgforge.methods.tradeoff.TradeoffBasis` on the parent's g(r):
    :func:`perturbed_potential`), simulated like a stage-B record (:func:`run_stage_c`) and
    stored with its own potential. A run that is no diffusive liquid is refused
    (:func:`liquid_state_problem`: frozen, non-diffusive, crystalline, evaporated, or at an
    absurd pressure).

Each runner returns the scalars, arrays and provenance that
:meth:`cgforge.database.store.Database.complete` stores (their names are listed in
:mod:`cgforge.database.stages`). A simulation that cannot finish (unstable parameters, a
system that is no liquid, an empty RDF) raises :class:`StageFailure`, whose reason the caller
records with :meth:`cgforge.database.store.Database.fail`. Stage A also refuses an all-atom
system whose NPT density still drifts at the end of equilibration (:func:`check_equilibrated`):
a liquid still compacting or evaporating has no equilibrium g(r) or D to learn from, so IBI is
not attempted.

Stage-A equilibration (the spec's ``equilibration`` entry,
:data:`~cgforge.database.stages.STAGE_A_EQUILIBRATION`)
    Randomised bonded parameters can put a molecule far from its OPLS-AA conformer and
    density. A record whose spec has ``"prerelax": true`` relaxes one molecule in vacuum with
    its drawn parameters and packs the liquid from the relaxed conformer at the density its
    relaxed volume suggests (:mod:`cgforge.engines.prerelax`); its NPT equilibration starts
    at the preset's ``aa_equilibration_ps`` and doubles until the density stops drifting
    (:func:`density_drift_check`), up to ``max_equilibration_factor`` times that length
    (:func:`equilibrate_aa`). Each try is a fresh run from the packed box in
    ``aa_eq<ps>ps``; a try that blows up is repeated at half the time step (down to 1 fs).
    The record keeps the accepted length (``aa_equilibration_ps``), the time step
    (``aa_timestep_fs``), the number of tries (``equilibration_attempts``), whether the
    density settled (``density_settled``) and the drift. Specs without the entry
    (records made before it existed) run one equilibration from the unrelaxed conformer in
    ``aa``, as they were made, so their keys and results stay valid.

CPU threads of the CG engine (``threads`` of each runner: ``cgforge db generate --threads``)
    An execution setting, not part of a record's identity: it goes into the CG protocol and
    IBI settings (``cg_threads``: LAMMPS's OPENMP package, torch's intra-op threads, OpenMM's
    CPU ``Threads``), never into the spec or key. A record whose CG run directory (``cg``)
    already holds a run resumes it with the threads that run was started with
    (:func:`resumed_cg_threads`): its configuration, which names them, would otherwise be
    refused as another run's. The threads the CG run used are kept in the record's
    provenance (``cg_threads``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.database.stages import (
    POTENTIAL_GRID,
    RDF_GRID,
    check_perturbation,
    stage_a_equilibration,
    stage_settings,
)
from cgforge.database.store import Record
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import CGForgeError, InputError, SimulationError
from cgforge.grids import LearningGrids, resample_potential, resample_rdf
from cgforge.methods.ibi import IBIConfig
from cgforge.molecules.randomize import ParameterRanges
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.table import TabulatedPotential

__all__ = [
    "MAX_DENSITY_DRIFT",
    "MIN_TIMESTEP_FS",
    "SETTLED_DRIFT",
    "STAGE_C_MAX_PEAK",
    "STAGE_C_MAX_PRESSURE_OFFSET_BAR",
    "STAGE_C_MIN_DENSITY_FRACTION",
    "STAGE_C_MIN_DIFFUSION_M2_S",
    "STAGE_C_MIN_FIRST_MINIMUM",
    "STAGE_C_MIN_MSD_SLOPE",
    "STAGE_C_MIN_RMS_DISPLACEMENT_NM",
    "StageFailure",
    "check_equilibrated",
    "density_drift_check",
    "equilibrate_aa",
    "liquid_state_problem",
    "natural_density_fluctuation",
    "parent_potential",
    "perturbation_coefficients",
    "perturbed_potential",
    "resumed_cg_threads",
    "run_stage_a",
    "run_stage_b",
    "run_stage_c",
    "stage_b_beads",
]

#: Largest accepted relative change of the NPT density between the third and the fourth quarter
#: of the all-atom equilibration (beyond 3 standard errors as well).
MAX_DENSITY_DRIFT = 0.02
#: Isothermal compressibility (1/Pa) of a compressible organic liquid (n-pentane: 2.2e-9, n-hexane:
#: 1.7e-9): an upper bound of the natural density fluctuation sqrt(kB T κ_T / V) of a small box.
LIQUID_COMPRESSIBILITY_PER_PA = 2.0e-9
#: A drift is also accepted within this many natural density fluctuations of the box: in a box of
#: 40 molecules (about 9 nm³) one frame's density fluctuates by 3 %, so 2 % says nothing there.
DRIFT_FLUCTUATIONS = 3.0
_KB_J_K = 1.380649e-23
#: Relative density change between the last two quarters of equilibration below which
#: :func:`equilibrate_aa` stops extending (or 3 standard errors): half of stage A's gate
#: (the shipped references use 0.5 %); a stretched 2,3,4-trimethylpentane still expanding
#: by 1.3 % per quarter after 10 ps had not reached the density another start reached.
SETTLED_DRIFT = 0.01
#: Smallest all-atom time step (fs) :func:`equilibrate_aa` halves to after a blow-up.
MIN_TIMESTEP_FS = 1.0


#: Stage-C liquid-state gates (:func:`liquid_state_problem`). D_CG below this (m²/s) is a
#: frozen system: a third of the slowest real liquids' ~3e-10 m²/s that stage C aims at.
STAGE_C_MIN_DIFFUSION_M2_S = 1.0e-10
#: Root-mean-square displacement (nm) over the longest MSD lag below which beads only rattle
#: in their cages (a solid's vibration amplitude is ~0.05 nm).
STAGE_C_MIN_RMS_DISPLACEMENT_NM = 0.1
#: Log-log slope of the MSD in its fit window below which the motion is not diffusive (1 for
#: diffusion, → 0 on a caged plateau).
STAGE_C_MIN_MSD_SLOPE = 0.5
#: g(r) first-peak height above which the structure is crystalline (dense liquids: 2.5–3.5).
STAGE_C_MAX_PEAK = 5.0
#: g(r) first minimum below which the shells are separated as in a crystal (liquids: ≥ 0.3).
STAGE_C_MIN_FIRST_MINIMUM = 0.1
#: Largest |mean production pressure − barostat pressure| (bar) of a liquid: beyond it the
#: NPT equilibration did not reach a state at that pressure (small boxes fluctuate by ~100s).
STAGE_C_MAX_PRESSURE_OFFSET_BAR = 2000.0
#: Smallest number density relative to the parent's: below it the liquid evaporated/cavitated.
STAGE_C_MIN_DENSITY_FRACTION = 0.5


def natural_density_fluctuation(volume_nm3: float, temperature_K: float) -> float:
    """Relative standard deviation of the NPT density of a liquid box of ``volume_nm3`` (nm³)
    at ``temperature_K`` (K): sqrt(kB T κ_T / V) with κ_T = :data:`LIQUID_COMPRESSIBILITY_PER_PA`.
    """
    if not (volume_nm3 > 0 and temperature_K > 0):
        raise InputError(
            f"volume ({volume_nm3} nm3) and temperature ({temperature_K} K) must be positive"
        )
    variance = _KB_J_K * temperature_K * LIQUID_COMPRESSIBILITY_PER_PA / (volume_nm3 * 1e-27)
    return math.sqrt(variance)


class StageFailure(CGForgeError):
    """A record's simulation could not finish; ``reason`` is the one-line cause to store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ====================================================================== stage A
def check_equilibrated(
    thermo_csv: str | Path,
    max_relative_drift: float = MAX_DENSITY_DRIFT,
    temperature_K: float | None = None,
) -> dict[str, float]:
    """Refuse (:class:`StageFailure`) an all-atom run whose NPT density still drifts
    (:func:`density_drift_check`); returns the drift numbers of an accepted run."""
    check = density_drift_check(thermo_csv, max_relative_drift, temperature_K)
    if not check.pop("converged"):
        raise StageFailure(
            str(check["problem"]) + "; lengthen aa_equilibration_ps or narrow the ranges"
        )
    return check


def density_drift_check(
    thermo_csv: str | Path,
    max_relative_drift: float = MAX_DENSITY_DRIFT,
    temperature_K: float | None = None,
) -> dict[str, Any]:
    """Whether the NPT density of an all-atom run's equilibration has stopped drifting.

    The density series of the ``equilibration`` stage of ``thermo_csv`` is split into quarters;
    the change from the third to the fourth quarter must be within 3 of its standard errors, or
    within the tolerance: the larger of ``max_relative_drift`` and :data:`DRIFT_FLUCTUATIONS`
    natural density fluctuations of the box (:func:`natural_density_fluctuation` of the mean
    ``volume_nm3`` at ``temperature_K``, the mean ``temperature_K`` column when None; without a
    volume column, ``max_relative_drift``). A small box's density wanders by more than 2 % on
    its own, so its drift is judged against what it can resolve. Returns ``{"density_drift":
    relative change, "density_drift_err": its error, "density_drift_tolerance": the
    tolerance, "converged": bool}`` and, when not converged, ``"problem"`` (one line); a series
    too short to judge (under 8 samples) gives ``{"converged": True}``. An unreadable file
    raises :class:`StageFailure`.
    """
    from cgforge.observables.thermo import drift, read_stage_columns

    path = Path(thermo_csv)
    try:
        every = read_stage_columns(path)
        eq = read_stage_columns(path, "equilibration")
        rho = eq["density_g_cm3"]
        volume = eq.get("volume_nm3")
        if temperature_K is None and "temperature_K" in every:
            temperature_K = float(np.mean(every["temperature_K"]))
    except (OSError, ValueError, IndexError, KeyError) as exc:
        raise StageFailure(f"cannot read the NPT density of {path}: {exc}") from exc
    if rho.size < 8:
        return {"converged": True}  # too short to judge (e.g. a run without NPT)
    change, err = drift(rho)
    mean = float(rho[rho.size // 2 :].mean())
    relative, relative_err = change / mean, err / mean
    tolerance = max_relative_drift
    if volume is not None and temperature_K is not None and temperature_K > 0:
        fluctuation = natural_density_fluctuation(
            float(volume[volume.size // 2 :].mean()), temperature_K
        )
        tolerance = max(tolerance, DRIFT_FLUCTUATIONS * fluctuation)
    out: dict[str, Any] = {
        "density_drift": relative,
        "density_drift_err": relative_err,
        "density_drift_tolerance": tolerance,
        "converged": True,
    }
    if abs(relative) > tolerance and abs(change) > 3.0 * err:
        trend = "compacting" if change > 0 else "expanding (evaporating)"
        out["converged"] = False
        out["problem"] = (
            f"all-atom NPT density still {trend}: {relative:+.1%} ± {relative_err:.1%} "
            f"between the last two quarters of equilibration (around {mean:.3f} g/cm3, "
            f"tolerance {tolerance:.1%}); not an equilibrated liquid"
        )
    return out


def equilibrate_aa(
    make_config: Callable[[float], Any],
    workdir: str | Path,
    equilibration_ps: float,
    max_equilibration_ps: float,
    *,
    temperature_K: float,
    max_relative_drift: float = MAX_DENSITY_DRIFT,
    settled_drift: float = SETTLED_DRIFT,
    min_timestep_fs: float = MIN_TIMESTEP_FS,
) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """All-atom MD whose NPT equilibration doubles until the density stops drifting.

    ``make_config(ps)`` gives the :class:`~cgforge.workflows.aa.AAConfig` of a run with ``ps``
    of equilibration; each try runs (or resumes) in ``workdir/aa_eq<ps>ps`` from the packed
    box, starting at ``equilibration_ps`` and doubling while the density has not settled and
    the doubled length stays within ``max_equilibration_ps``.

    Settled: the change between the last two quarters of equilibration is within
    ``settled_drift`` or 3 of its standard errors. That is stricter than stage A's gate
    (:func:`density_drift_check` with ``max_relative_drift``, which also allows 3 natural
    density fluctuations of the box, ~5 % at 64 molecules), so a small box keeps equilibrating while it still visibly
    drifts; at the cap a run that passes the gate is accepted unsettled (``"density_settled":
    false``), one that does not raises :class:`StageFailure`. Returns the accepted run's
    folder, its summary and ``{"aa_equilibration_ps", "equilibration_attempts",
    "density_settled", "density_drift", "density_drift_err", "density_drift_tolerance"}``;
    the run's own :class:`InputError` passes through.

    A try that blows up (:class:`SimulationError`: LINCS or NaN) is repeated with half the
    time step, down to ``min_timestep_fs``, in ``aa_eq<ps>ps_dt<fs>fs``, and later tries keep
    that step (``aa_timestep_fs`` in the returned dict): shrunk, stiff draws (C–C 1.1 Å with
    K 750 kcal/mol/Å², C–H 0.9 Å) vibrate too fast for 2 fs. A blow-up at the smallest step
    raises :class:`SimulationError`.
    """
    from cgforge.workflows.aa import run_aa

    if not 0 < equilibration_ps <= max_equilibration_ps:
        raise InputError(
            f"equilibration ({equilibration_ps} ps) must be positive and within its cap "
            f"({max_equilibration_ps} ps)"
        )
    work = Path(workdir)
    length, attempts = float(equilibration_ps), 0
    timestep = None
    while True:
        config = make_config(length)
        timestep = config.protocol.timestep_fs if timestep is None else timestep
        if timestep != config.protocol.timestep_fs:
            protocol = dataclasses.replace(config.protocol, timestep_fs=timestep)
            config = dataclasses.replace(config, protocol=protocol)
            out = work / f"aa_eq{length:g}ps_dt{timestep:g}fs"
        else:
            out = work / f"aa_eq{length:g}ps"
        attempts += 1
        try:
            summary = run_aa(config, out)
        except SimulationError:
            if timestep / 2.0 < min_timestep_fs * (1.0 - 1e-9):
                raise
            timestep /= 2.0
            continue
        check = density_drift_check(out / "thermo.csv", max_relative_drift, temperature_K)
        converged = bool(check.pop("converged"))
        problem = check.pop("problem", None)
        drift, err = check.get("density_drift", 0.0), check.get("density_drift_err", 0.0)
        settled = converged and (abs(drift) <= settled_drift or abs(drift) <= 3.0 * err)
        at_cap = 2.0 * length > max_equilibration_ps * (1.0 + 1e-9)
        if settled or (converged and at_cap):
            return (
                out,
                summary,
                {
                    "aa_equilibration_ps": length,
                    "aa_timestep_fs": timestep,
                    "equilibration_attempts": attempts,
                    "density_settled": settled,
                    **check,
                },
            )
        if at_cap:
            raise StageFailure(
                f"{problem} after {length:g} ps of NPT ({attempts} tries, cap "
                f"{max_equilibration_ps:g} ps); raise max_equilibration_factor or narrow the "
                "ranges"
            )
        length *= 2.0


def resumed_cg_threads(run_dir: str | Path, threads: int) -> int:
    """The CPU threads a record's CG run in ``run_dir`` is to use: those of the run already
    there (the ``protocol.cg_threads`` of its stored configuration; 1 where the protocol leaves
    it out), else ``threads``.

    A run directory's configuration includes ``cg_threads`` other than 1
    (:meth:`~cgforge.engines.protocol.MDProtocol.to_dict`), so a record interrupted and resumed with
    another ``--threads`` would otherwise be refused as another run's
    (:class:`~cgforge.rundir.RunDirectory`)."""
    from cgforge.engines.protocol import check_cg_threads
    from cgforge.rundir import WORK

    marker = Path(run_dir) / WORK / "config.json"
    if not marker.is_file():
        return check_cg_threads(threads)
    try:
        stored = json.loads(marker.read_text(encoding="utf-8"))
        value = stored["config"]["protocol"].get("cg_threads", 1)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return check_cg_threads(threads)  # unreadable: the run directory says why when run
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def _finite_positive(summary: Mapping[str, Any], key: str, what: str) -> float:
    value = summary.get(key)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise StageFailure(f"{what}: {key} = {value!r} is not a positive number")
    return number


def run_stage_a(
    spec: Mapping[str, Any],
    workdir: str | Path,
    grids: LearningGrids,
    *,
    platform: str = "auto",
    engine: str = "openmm",
    cg_engine: str = "auto",
    threads: int = 1,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, str, str | None]], dict[str, Any]]:
    """Simulate a stage-A record in ``workdir`` (resumable); returns ``(scalars, arrays,
    provenance)`` for :meth:`~cgforge.database.store.Database.complete`. ``engine`` runs the all-atom MD, ``cg_engine``
    the IBI iterations and the CG production (:mod:`cgforge.engines.cg_engine`) on
    ``threads`` CPU threads (``cg_threads``; :func:`resumed_cg_threads`). The all-atom
    engine's threads are the process's (``OPENMM_CPU_THREADS``, ``OMP_NUM_THREADS``).

    Raises :class:`StageFailure` when the AA or CG simulation fails or gives no usable result.
    """
    from cgforge.molecules import load_molecule
    from cgforge.molecules.randomize import draw_parameters, parameter_vector
    from cgforge.workflows.aa import AAConfig, default_protocol, run_aa
    from cgforge.workflows.cg import load_reference, run_ibi_from_reference

    if spec.get("stage") != "A":
        raise InputError(f"run_stage_a needs a stage-A spec, got stage {spec.get('stage')!r}")
    settings = stage_settings(spec["settings"])
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    seed = int(spec.get("seed", 0))
    ranges = ParameterRanges.from_dict(spec.get("ranges") or {})

    def protocol_with(equilibration_ps: float) -> MDProtocol:
        return default_protocol(
            equilibration_ps,
            settings["aa_production_ps"],
            temperature_K=float(spec["temperature_K"]),
            pressure_bar=float(spec.get("pressure_bar", 1.0)),
            platform=platform,
            seed=seed,
            save_particles=False,
        )

    aa_config = AAConfig(
        molecule=spec["molecule"],
        n_molecules=settings["n_molecules"],
        protocol=protocol_with(settings["aa_equilibration_ps"]),
        engine=engine,
        randomize={"seed": int(spec["draw_seed"]), "ranges": ranges.to_dict()},
    )
    equilibrate = stage_a_equilibration(spec.get("equilibration"))

    def config_with(equilibration_ps: float) -> AAConfig:
        return dataclasses.replace(
            aa_config,
            protocol=protocol_with(equilibration_ps),
            prerelax=bool(equilibrate["prerelax"]),
        )

    ibi_config = IBIConfig(
        **settings["ibi"],
        platform=platform,
        seed=seed,
        engine=cg_engine,
        cg_threads=resumed_cg_threads(work / "cg", threads),
    )
    molecule = load_molecule(spec["molecule"], seed=seed)
    names, features = parameter_vector(
        molecule, draw_parameters(molecule, ranges, int(spec["draw_seed"]))
    )
    try:
        if equilibrate is None:  # records made before the equilibration entry existed
            aa_dir = work / "aa"
            aa = run_aa(aa_config, aa_dir)
            equilibration = check_equilibrated(
                aa_dir / "thermo.csv", temperature_K=float(spec["temperature_K"])
            )
        else:
            start = float(settings["aa_equilibration_ps"])
            aa_dir, aa, equilibration = equilibrate_aa(
                config_with,
                work,
                start,
                start * equilibrate["max_equilibration_factor"],
                temperature_K=float(spec["temperature_K"]),
            )
        cg = run_ibi_from_reference(
            aa_dir,
            work / "cg",
            ibi_config,
            n_beads=settings["cg_beads"],
            equilibration_ps=settings["cg_equilibration_ps"],
            production_ps=settings["cg_production_ps"],
        )
        reference = load_reference(aa_dir)
        g_cg = RDFResult.from_csv(work / "cg" / "rdf.csv")
        from cgforge.potentials.io import read_potential

        potential = read_potential(work / "cg" / "potential.csv")
    except (SimulationError, InputError) as exc:
        raise StageFailure(f"{type(exc).__name__}: {exc}") from exc
    d_aa = _finite_positive(aa, "diffusion_m2_s", "all-atom run")
    d_cg = _finite_positive(cg, "diffusion_m2_s", "CG run")
    scalars: dict[str, Any] = {
        "mass_amu": _finite_positive(aa, "bead_mass_amu", "all-atom run"),
        "temperature_K": float(spec["temperature_K"]),
        "density_g_cm3": _finite_positive(aa, "density_g_cm3", "all-atom run"),
        "diffusion_aa_m2_s": d_aa,
        "diffusion_cg_m2_s": d_cg,
        "acceleration_factor": d_cg / d_aa,
        "rdf_deviation": _finite_positive(cg, "rdf_deviation", "CG run"),
        "density_cg_g_cm3": cg.get("density_g_cm3"),
        "pressure_bar": aa.get("pressure_bar"),
        "cutoff_nm": float(potential.cutoff_nm),
        "rdf_r2": cg.get("rdf_r2"),
        "converged": bool(cg.get("converged")),
        "iterations": cg.get("iterations"),
        **equilibration,
    }
    g_aa = resample_rdf(reference.rdf, grids)
    g_cg_grid = resample_rdf(g_cg, grids)
    arrays = {
        "parameters": (np.asarray(features, dtype=np.float64), "mixed", None),
        "g_aa": (g_aa.g, "1", RDF_GRID),
        "g_cg": (g_cg_grid.g, "1", RDF_GRID),
        "potential": (resample_potential(potential, grids), "kJ/mol", POTENTIAL_GRID),
    }
    provenance = {
        "parameter_names": list(names),
        "aa": aa.get("provenance"),
        "cg": cg.get("provenance"),
        "platform": aa.get("platform"),
        "engine": aa.get("engine"),
        "prerelax": aa.get("prerelax"),
        "cg_threads": cg.get("cg_threads", ibi_config.cg_threads),
        "rdf_beyond_data": {"g_aa": g_aa.extended, "g_cg": g_cg_grid.extended},
        "workdir": str(work.resolve()),
    }
    return scalars, arrays, provenance


# ====================================================================== stage B
def parent_potential(parent: Record, grids: LearningGrids) -> TabulatedPotential:
    """The parent's CG potential rebuilt from its stored ``potential`` array (kJ/mol) on the
    potential grid, cut at its ``cutoff_nm`` and continued to r = 0 by a repulsive wall."""
    if "potential" not in parent.arrays:
        raise InputError(f"record {parent.key} has no stored potential; it is not a done A")
    u = np.asarray(parent.arrays["potential"].data, dtype=np.float64)
    r = grids.potential_r_nm
    cutoff = float(parent.scalars.get("cutoff_nm") or r[-1])
    inside = r <= cutoff + 1e-9
    if np.count_nonzero(inside) < 4:
        raise InputError(f"record {parent.key}: its cutoff {cutoff} nm leaves no potential table")
    table = TabulatedPotential(r[inside], u[inside], cutoff_nm=float(r[inside][-1]))
    repulsive = np.flatnonzero(table.f_kj_mol_nm[:-1] > 0.0)
    if repulsive.size == 0:
        raise StageFailure(f"the potential of record {parent.key} has no repulsive core")
    return table.extend_repulsive(0.0, match_at_nm=float(table.r_nm[int(repulsive[0])]))


def stage_b_beads(settings: Mapping[str, Any], cutoff_nm: float, molecules_per_amu: float) -> int:
    """Beads of a stage-B run: the settings' ``cg_beads``, or the fewest that keep the parent's
    ``cutoff_nm`` within :data:`~cgforge.engines.cg_system.CUTOFF_BOX_FRACTION` of the box edge
    at the parent's number density (``molecules_per_amu`` = its density in g/cm³ over its
    molecular mass in amu), whichever is larger: more beads cost little, a box too small for
    the cutoff fails."""
    from cgforge.engines.cg_system import beads_for_cutoff
    from cgforge.units import AMU_NM3_TO_G_CM3

    number_density = molecules_per_amu / AMU_NM3_TO_G_CM3  # beads per nm³
    return max(int(settings["cg_beads"]), beads_for_cutoff(cutoff_nm, number_density))


def run_stage_b(
    spec: Mapping[str, Any],
    parent_record: Record,
    workdir: str | Path,
    grids: LearningGrids,
    *,
    platform: str = "auto",
    cg_engine: str = "auto",
    threads: int = 1,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, str, str | None]], dict[str, Any]]:
    """CG MD of the parent's potential at ``spec["mass_amu"]`` in ``workdir`` (resumable);
    returns ``(scalars, arrays, provenance)`` for :meth:`~cgforge.database.store.Database.complete`. ``cg_engine``
    names the CG engine (:mod:`cgforge.engines.cg_engine`), ``threads`` its CPU threads
    (the protocol's ``cg_threads``; :func:`resumed_cg_threads`).

    The start box has the parent's number density (its AA density × m_B / m_A) and the
    settings' ``cg_beads``, or more where the parent's cutoff needs a larger box
    (:func:`~cgforge.engines.cg_system.beads_for_cutoff`); NPT equilibration at the parent's
    pressure, then production. The time step is the IBI one, scaled by √(m_B / m_A) for
    lighter beads (same stability in reduced units).
    """
    if spec.get("stage") != "B":
        raise InputError(f"run_stage_b needs a stage-B spec, got stage {spec.get('stage')!r}")
    _check_parent(spec, parent_record, "run_stage_b")
    potential = parent_potential(parent_record, grids)
    cg, g_cg, run = _run_cg_record(
        spec,
        parent_record,
        potential,
        Path(workdir),
        table_name="parent_potential.csv",
        what=f"cgforge database record {parent_record.key}, potential grid",
        platform=platform,
        cg_engine=cg_engine,
        threads=threads,
    )
    return _cg_record(spec, parent_record, potential, cg, g_cg, run, grids, Path(workdir))


def _cg_record(
    spec: Mapping[str, Any],
    parent_record: Record,
    potential: TabulatedPotential,
    cg: Mapping[str, Any],
    g_cg: RDFResult,
    run: Mapping[str, Any],
    grids: LearningGrids,
    work: Path,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, str, str | None]], dict[str, Any]]:
    """The ``(scalars, arrays, provenance)`` every CG record (stages B and C) holds: its run's
    measurements and settings, its g(r) and potential on the learning grids, and where it
    came from. Raises :class:`StageFailure` where the density or D is not finite and positive."""
    scalars: dict[str, Any] = {
        "mass_amu": run["mass_amu"],
        "temperature_K": float(spec["temperature_K"]),
        "density_g_cm3": _finite_positive(cg, "density_g_cm3", "CG run"),
        "diffusion_cg_m2_s": _finite_positive(cg, "diffusion_m2_s", "CG run"),
        "parent_mass_amu": run["parent_mass_amu"],
        "pressure_bar": cg.get("pressure_bar"),
        "timestep_fs": run["timestep_fs"],
        "cutoff_nm": float(potential.cutoff_nm),
        "n_beads": run["n_beads"],
    }
    g = resample_rdf(g_cg, grids)
    arrays = {
        "g_cg": (g.g, "1", RDF_GRID),
        "potential": (resample_potential(potential, grids), "kJ/mol", POTENTIAL_GRID),
    }
    provenance = {
        "parent_key": parent_record.key,
        "cg": cg.get("provenance"),
        "platform": cg.get("platform"),
        "cg_threads": cg.get("cg_threads", run.get("cg_threads")),
        "rdf_beyond_data": {"g_cg": g.extended},
        "workdir": str(work.resolve()),
    }
    return scalars, arrays, provenance


def _check_parent(spec: Mapping[str, Any], parent_record: Record, runner: str) -> None:
    if parent_record.key != spec.get("parent_key") or parent_record.state != "done":
        raise InputError(
            f"{runner} needs the done parent record {spec.get('parent_key')}, got "
            f"{parent_record.key} ({parent_record.state})"
        )


def _run_cg_record(
    spec: Mapping[str, Any],
    parent_record: Record,
    potential: TabulatedPotential,
    work: Path,
    *,
    table_name: str,
    what: str,
    platform: str,
    cg_engine: str,
    threads: int = 1,
    timestep_limit_fs: float = math.inf,
) -> tuple[dict[str, Any], RDFResult, dict[str, Any]]:
    """CG MD of ``potential`` at ``spec["mass_amu"]`` for stages B and C (see
    :func:`run_stage_b`) on ``threads`` CPU threads (:func:`resumed_cg_threads`): returns the
    run's summary, its g(r) and ``{"mass_amu", "parent_mass_amu", "timestep_fs", "n_beads",
    "cg_threads"}``. The time step is also kept within ``timestep_limit_fs``. A failed run
    raises :class:`StageFailure`."""
    from cgforge.potentials.io import write_csv
    from cgforge.workflows.aa import default_protocol
    from cgforge.workflows.cg import run_cg

    settings = stage_settings(spec["settings"])
    work.mkdir(parents=True, exist_ok=True)
    mass = float(spec["mass_amu"])
    parent_mass = float(parent_record.scalars["mass_amu"])
    parent_density = float(parent_record.scalars["density_g_cm3"])
    n_beads = stage_b_beads(settings, potential.cutoff_nm, parent_density / parent_mass)
    table_path = write_csv(work / table_name, potential, provenance=what)
    ibi = IBIConfig(**settings["ibi"])
    timestep = min(ibi.timestep_fs * min(1.0, math.sqrt(mass / parent_mass)), timestep_limit_fs)
    protocol = default_protocol(
        settings["cg_equilibration_ps"],
        settings["cg_production_ps"],
        temperature_K=float(spec["temperature_K"]),
        pressure_bar=float(parent_record.spec.get("pressure_bar", 1.0)),
        timestep_fs=timestep,
        platform=platform,
        seed=int(spec.get("seed", 0)),
        save_particles=False,
        engine=cg_engine,
        cg_threads=resumed_cg_threads(work / "cg", threads),
    )
    try:
        cg = run_cg(
            table_path,
            mass_amu=mass,
            n_beads=n_beads,
            protocol=protocol,
            out=work / "cg",
            density_g_cm3=parent_density * mass / parent_mass,
        )
        g_cg = RDFResult.from_csv(work / "cg" / "rdf.csv")
    except (SimulationError, InputError) as exc:
        raise StageFailure(f"{type(exc).__name__}: {exc}") from exc
    run = {
        "mass_amu": mass,
        "parent_mass_amu": parent_mass,
        "timestep_fs": timestep,
        "n_beads": n_beads,
        "cg_threads": protocol.cg_threads,
    }
    return cg, g_cg, run


# ====================================================================== stage C
def _target_rdf(parent: Record, grids: LearningGrids) -> RDFResult:
    """The parent's g(r) on the rdf grid (its all-atom ``g_aa``, else its ``g_cg``)."""
    name = "g_aa" if "g_aa" in parent.arrays else "g_cg"
    if name not in parent.arrays:
        raise InputError(f"record {parent.key} has no g_aa or g_cg array; it is not a done A")
    r = grids.rdf_r_nm
    g = np.asarray(parent.arrays[name].data, dtype=np.float64)
    width = float(r[1] - r[0])
    return RDFResult(r, g, np.zeros_like(g), 0, float(r[-1]) + 0.5 * width, width)


def _smooth(values: np.ndarray, points: int = 5) -> np.ndarray:
    kernel = np.ones(points) / points
    padded = np.pad(values, points // 2, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def perturbation_coefficients(
    perturbation: Mapping[str, Any], basis: Any, target: RDFResult
) -> np.ndarray:
    """Coefficients (c₀, c₁…c_K) of a stage-C perturbation on ``basis`` (a
    :class:`~cgforge.methods.tradeoff.TradeoffBasis`) for the parent's g(r) ``target``.

    With r_p the first peak of g (its largest value inside the cutoff, g smoothed over 5
    points) and r_m its first minimum (the smallest g between r_p and min(1.8 r_p, cutoff)),
    bump k at centre rₖ gets −depth·exp(−(rₖ − r_p)²/2h²) + barrier·exp(−(rₖ − r_m)²/2h²) +
    jitterₖ (h: the bump width; kT units), and c₀ is the ``scale``: the well deepens around the
    first shell and a barrier rises behind it.
    """
    p = check_perturbation(perturbation)
    centres = np.asarray(basis.centres_nm, dtype=np.float64)
    if len(centres) != p["n_basis"]:
        raise InputError(f"the basis has {len(centres)} bumps but the perturbation {p['n_basis']}")
    r = np.asarray(target.r_nm, dtype=np.float64)
    g = _smooth(np.asarray(target.g, dtype=np.float64))
    cutoff = float(basis.start.cutoff_nm)
    inside = np.flatnonzero((r >= basis.r_core_nm) & (r <= cutoff))
    if inside.size < 3:
        raise StageFailure(
            f"the parent's g(r) has fewer than 3 points between its core "
            f"({basis.r_core_nm:.3f} nm) and the cutoff ({cutoff:.3f} nm)"
        )
    peak = int(inside[np.argmax(g[inside])])
    r_peak = float(r[peak])
    after = np.flatnonzero((r > r_peak) & (r <= min(1.8 * r_peak, cutoff)))
    r_min = float(r[after[np.argmin(g[after])]]) if after.size else min(1.4 * r_peak, cutoff)
    h = float(basis.width_nm)
    well = np.exp(-0.5 * ((centres - r_peak) / h) ** 2)
    barrier = np.exp(-0.5 * ((centres - r_min) / h) ** 2)
    bumps = -p["depth_kT"] * well + p["barrier_kT"] * barrier + np.asarray(p["jitter_kT"])
    return np.concatenate([[p["scale"]], bumps])


def perturbed_potential(
    parent: Record, perturbation: Mapping[str, Any], grids: LearningGrids, temperature_K: float
) -> tuple[TabulatedPotential, np.ndarray, dict[str, Any]]:
    """The stage-C potential of ``parent`` (its :func:`parent_potential` U₀ perturbed by the
    trade-off basis, bumps of height kT at ``temperature_K``): returns the table, its
    coefficients (:func:`perturbation_coefficients`) and the basis description."""
    from cgforge.methods.tradeoff import TradeoffBasis, core_radius
    from cgforge.units import kT

    p = check_perturbation(perturbation)
    start = parent_potential(parent, grids)
    target = _target_rdf(parent, grids)
    try:
        basis = TradeoffBasis(
            start, core_radius(target, p["core_g"]), p["n_basis"], kT(temperature_K)
        )
    except InputError as exc:
        raise StageFailure(f"no trade-off basis for record {parent.key}: {exc}") from exc
    coefficients = perturbation_coefficients(p, basis, target)
    return basis.potential(coefficients), coefficients, basis.to_dict()


def liquid_state_problem(
    summary: Mapping[str, Any],
    g: RDFResult,
    msd_nm2: np.ndarray,
    *,
    pressure_target_bar: float,
    number_density_fraction: float,
) -> str | None:
    """Why a stage-C run is no diffusive liquid, or None: D_CG below
    :data:`STAGE_C_MIN_DIFFUSION_M2_S` (frozen), an rms displacement at the longest MSD lag
    below :data:`STAGE_C_MIN_RMS_DISPLACEMENT_NM` (caged), an MSD log-log slope below
    :data:`STAGE_C_MIN_MSD_SLOPE` (non-diffusive), a first peak of g above
    :data:`STAGE_C_MAX_PEAK` or a first minimum below :data:`STAGE_C_MIN_FIRST_MINIMUM`
    (crystalline), a number density below :data:`STAGE_C_MIN_DENSITY_FRACTION` of the
    parent's (``number_density_fraction``; evaporated), or a mean pressure further than
    :data:`STAGE_C_MAX_PRESSURE_OFFSET_BAR` from the barostat's ``pressure_target_bar``."""
    d = float(summary.get("diffusion_m2_s") or math.nan)
    if math.isfinite(d) and d < STAGE_C_MIN_DIFFUSION_M2_S:
        return f"frozen: D_CG {d:.3g} m2/s is below the floor {STAGE_C_MIN_DIFFUSION_M2_S:.3g} m2/s"
    msd = np.asarray(msd_nm2, dtype=np.float64)
    if msd.size and math.isfinite(float(msd[-1])):
        rms = math.sqrt(max(float(msd[-1]), 0.0))
        if rms < STAGE_C_MIN_RMS_DISPLACEMENT_NM:
            return (
                f"frozen: the beads moved {rms:.3f} nm rms over the longest MSD lag (below "
                f"{STAGE_C_MIN_RMS_DISPLACEMENT_NM} nm: caged, not diffusing)"
            )
    slope = summary.get("msd_loglog_slope")
    if isinstance(slope, int | float) and math.isfinite(slope) and slope < STAGE_C_MIN_MSD_SLOPE:
        return (
            f"non-diffusive MSD: log-log slope {slope:.2f} in the fit window (below "
            f"{STAGE_C_MIN_MSD_SLOPE}; diffusion has 1)"
        )
    values = np.asarray(g.g, dtype=np.float64)
    r = np.asarray(g.r_nm, dtype=np.float64)
    if values.size >= 3 and np.all(np.isfinite(values)):
        smooth = _smooth(values, 3)
        peak = int(np.argmax(smooth))
        after = np.flatnonzero((r > r[peak]) & (r <= 1.8 * r[peak]))
        first_min = float(smooth[after].min()) if after.size else math.nan
        if smooth[peak] > STAGE_C_MAX_PEAK or first_min < STAGE_C_MIN_FIRST_MINIMUM:
            return (
                f"crystalline g(r): first peak {smooth[peak]:.2f} (liquid ≤ {STAGE_C_MAX_PEAK:g}),"
                f" first minimum {first_min:.2f} (liquid ≥ {STAGE_C_MIN_FIRST_MINIMUM:g})"
            )
    if number_density_fraction < STAGE_C_MIN_DENSITY_FRACTION:
        return (
            f"evaporated: number density {number_density_fraction:.2f} of the parent's (below "
            f"{STAGE_C_MIN_DENSITY_FRACTION:g})"
        )
    pressure = summary.get("pressure_bar")
    if isinstance(pressure, int | float) and math.isfinite(pressure):
        offset = float(pressure) - pressure_target_bar
        if abs(offset) > STAGE_C_MAX_PRESSURE_OFFSET_BAR:
            return (
                f"no liquid at {pressure_target_bar:g} bar: mean pressure {pressure:.0f} bar "
                f"(more than {STAGE_C_MAX_PRESSURE_OFFSET_BAR:.0f} bar off)"
            )
    return None


def run_stage_c(
    spec: Mapping[str, Any],
    parent_record: Record,
    workdir: str | Path,
    grids: LearningGrids,
    *,
    platform: str = "auto",
    cg_engine: str = "auto",
    threads: int = 1,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, str, str | None]], dict[str, Any]]:
    """CG MD of the parent's potential perturbed as ``spec["perturbation"]`` says
    (:func:`perturbed_potential`) at ``spec["mass_amu"]`` in ``workdir`` (resumable), run as
    stage B runs its records (:func:`run_stage_b`, ``threads`` included; the time step also
    within the perturbed potential's :func:`~cgforge.engines.cg_system.timestep_limit_fs`);
    returns ``(scalars, arrays, provenance)`` for
    :meth:`~cgforge.database.store.Database.complete`.

    Stored: the scalars of a stage-B record, the perturbation (``perturbation_coefficients``,
    ``depth_kT``, ``barrier_kT``), the parent's D (``parent_diffusion_aa_m2_s``,
    ``parent_diffusion_cg_m2_s`` at the parent's mass) and two ratios estimated at the parent's
    mass by D ∝ m^-1/2 (exact for a fixed potential): ``acceleration_at_parent_mass`` =
    D_C(m_A)/D_AA and ``mobility_vs_parent`` = D_C(m_A)/D_CG,A (< 1: slower than the parent's
    IBI potential). The ``acceleration_factor`` column (D_CG/D_AA at the same mass) is filled
    only when the bead mass is the parent's (within 0.5 %). Arrays: ``g_cg`` and the record's
    own ``potential``. A run that is no diffusive liquid raises :class:`StageFailure` with
    :func:`liquid_state_problem`'s reason.
    """
    from cgforge.engines.cg_system import timestep_limit_fs
    from cgforge.observables.msd import MSDResult

    if spec.get("stage") != "C":
        raise InputError(f"run_stage_c needs a stage-C spec, got stage {spec.get('stage')!r}")
    _check_parent(spec, parent_record, "run_stage_c")
    work = Path(workdir)
    temperature = float(spec["temperature_K"])
    mass = float(spec["mass_amu"])
    try:
        potential, coefficients, basis = perturbed_potential(
            parent_record, spec["perturbation"], grids, temperature
        )
    except InputError as exc:
        raise StageFailure(f"InputError: {exc}") from exc
    limit = timestep_limit_fs(potential, mass, temperature)
    cg, g_cg, run = _run_cg_record(
        spec,
        parent_record,
        potential,
        work,
        table_name="perturbed_potential.csv",
        what=f"cgforge database stage C: record {parent_record.key} perturbed",
        platform=platform,
        cg_engine=cg_engine,
        threads=threads,
        timestep_limit_fs=math.floor(limit * 10.0) / 10.0,
    )
    scalars, arrays, provenance = _cg_record(
        spec, parent_record, potential, cg, g_cg, run, grids, work
    )
    d_cg, density = scalars["diffusion_cg_m2_s"], scalars["density_g_cm3"]
    parent_mass = run["parent_mass_amu"]
    parent_density = float(
        parent_record.scalars.get("density_cg_g_cm3") or parent_record.scalars["density_g_cm3"]
    )
    fraction = (density / mass) / (parent_density / parent_mass)
    try:
        msd = MSDResult.from_csv(work / "cg" / "msd.csv").msd_nm2
    except (OSError, ValueError, KeyError) as exc:
        raise StageFailure(f"cannot read the MSD of the CG run: {exc}") from exc
    problem = liquid_state_problem(
        cg,
        g_cg,
        msd,
        pressure_target_bar=float(parent_record.spec.get("pressure_bar", 1.0)),
        number_density_fraction=fraction,
    )
    if problem is not None:
        raise StageFailure(problem)
    d_at_parent_mass = d_cg * math.sqrt(mass / parent_mass)
    perturbation = check_perturbation(spec["perturbation"])
    scalars.update(
        msd_loglog_slope=cg.get("msd_loglog_slope"),
        number_density_vs_parent=fraction,
        perturbation_coefficients=[float(c) for c in coefficients],
        depth_kT=perturbation["depth_kT"],
        barrier_kT=perturbation["barrier_kT"],
    )
    d_aa = parent_record.scalars.get("diffusion_aa_m2_s")
    d_parent = parent_record.scalars.get("diffusion_cg_m2_s")
    if isinstance(d_aa, int | float) and d_aa > 0:
        scalars["parent_diffusion_aa_m2_s"] = float(d_aa)
        scalars["acceleration_at_parent_mass"] = d_at_parent_mass / float(d_aa)
        if abs(mass - parent_mass) <= 0.005 * parent_mass:
            scalars["acceleration_factor"] = d_cg / float(d_aa)
    if isinstance(d_parent, int | float) and d_parent > 0:
        scalars["parent_diffusion_cg_m2_s"] = float(d_parent)
        scalars["mobility_vs_parent"] = d_at_parent_mass / float(d_parent)
    provenance["basis"] = basis
    return scalars, arrays, provenance
