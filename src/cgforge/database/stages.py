"""The two kinds of database record: their specifications, settings and grids.

Stage A (one force field)
    A built-in molecule with bonded parameters drawn at random
    (:func:`cgforge.molecules.randomize.randomize_molecule`, seed ``draw_seed``), simulated as
    an all-atom liquid, and its IBI one-bead potential with a CG production at the molecular
    mass (:func:`stage_a_spec`).

Stage B (one bead mass)
    The stage-A record's CG potential, as stored on the potential learning grid, simulated as a
    one-bead liquid of another bead mass (:func:`stage_b_spec`): the same Hamiltonian with
    other dynamics, so D_CG(m) is learnt at fixed structure.

Stage C (one perturbed potential, one bead mass)
    The stage-A record's CG potential U₀ perturbed by the trade-off basis of
    :class:`cgforge.methods.tradeoff.TradeoffBasis`, U = (1 + c₀) U₀ + Σₖ cₖ φₖ (bumps of height
    kT between the core of the parent's g(r) and its cutoff), with coefficients drawn to
    deepen the well around the first peak of the parent's g(r) and raise a barrier behind the
    first shell (the direction the trade-off search found slows a liquid; see
    :func:`draw_perturbation`), simulated as a one-bead liquid of a random bead mass
    (:func:`stage_c_spec`). Its potential is its own, stored with it.

A record's key is the hash of its specification (:func:`cgforge.database.store.spec_key`);
the specification holds the run settings (:func:`stage_settings`, by name from
:data:`STAGE_PRESETS`) and, for new stage-A records, the equilibration protocol
(:data:`STAGE_A_EQUILIBRATION`). The simulations that turn a specification into a record's
scalars and arrays are the workflows' (:mod:`cgforge.workflows.db_stages`); what they store:

* scalars in the store's columns: ``mass_amu``, ``temperature_K``, ``density_g_cm3`` (stage A:
  the all-atom NPT density; stage B: the CG NPT density), ``diffusion_aa_m2_s``,
  ``diffusion_cg_m2_s`` (m²/s), ``acceleration_factor`` (D_CG/D_AA) and ``rdf_deviation``,
  plus further JSON values (``cutoff_nm``, ``pressure_bar``, ``converged``, …);
* stage C adds ``perturbation_coefficients`` (c₀, c₁…c_K), ``depth_kT``,
  ``barrier_kT`` and mobility ratios against its parent
  (:func:`cgforge.workflows.db_stages.run_stage_c`);
* arrays: ``parameters`` (stage A; the bonded parameter vector in cgforge units, unit
  ``"mixed"``, entry names in the provenance's ``parameter_names``), ``g_aa`` (stage A) and
  ``g_cg`` on the ``rdf`` grid (unit ``"1"``), ``potential`` U(r) on the ``potential`` grid
  (unit ``"kJ/mol"``); the grids are the database's (:func:`database_grids`).

Stage-A equilibration (the spec's ``equilibration`` entry, :data:`STAGE_A_EQUILIBRATION`)
    A record whose spec has ``"prerelax": true`` relaxes one molecule in vacuum with its drawn
    parameters and packs the liquid from the relaxed conformer; its NPT equilibration starts
    at the preset's ``aa_equilibration_ps`` and doubles until the density stops drifting, up
    to ``max_equilibration_factor`` times that length
    (:func:`cgforge.workflows.db_stages.equilibrate_aa`). Specs without the entry (records
    made before it existed) run one equilibration from the unrelaxed conformer, as they were
    made, so their keys and results stay valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from cgforge.database.store import Database, Record
from cgforge.errors import InputError
from cgforge.grids import LearningGrids
from cgforge.methods.ibi import IBIConfig
from cgforge.molecules.randomize import ParameterRanges
from cgforge.presets import PRESETS, Preset

__all__ = [
    "POTENTIAL_GRID",
    "RDF_GRID",
    "STAGE_A_EQUILIBRATION",
    "STAGE_C_BARRIER_FRACTION",
    "STAGE_C_BASIS",
    "STAGE_C_DEPTH_KT",
    "STAGE_C_JITTER_FRACTION",
    "STAGE_C_SCALE",
    "STAGE_PRESETS",
    "check_perturbation",
    "database_grids",
    "draw_perturbation",
    "learning_grids",
    "stage_a_equilibration",
    "stage_a_spec",
    "stage_b_spec",
    "stage_c_spec",
    "stage_settings",
]


#: Names of the database grids the arrays of both stages live on.
RDF_GRID = "rdf"
POTENTIAL_GRID = "potential"

#: IBIConfig fields that do not change the physics of a record and stay out of its spec.
_RUNTIME_IBI_FIELDS = ("platform", "seed", "keep_md", "engine", "cg_threads")
_SETTING_KEYS = (
    "name",
    "n_molecules",
    "aa_equilibration_ps",
    "aa_production_ps",
    "cg_beads",
    "ibi",
    "cg_equilibration_ps",
    "cg_production_ps",
)


#: Equilibration of new stage-A records (their spec's ``equilibration`` entry): vacuum
#: pre-relaxation, and NPT equilibration doubled until the density stops drifting, up to
#: ``max_equilibration_factor`` × the preset's ``aa_equilibration_ps``.
STAGE_A_EQUILIBRATION: Mapping[str, Any] = {"prerelax": True, "max_equilibration_factor": 8.0}


def database_grids(grids: LearningGrids | None = None) -> dict[str, dict[str, Any]]:
    """The learning grids as :meth:`Database.init` takes them (``rdf`` and ``potential``, nm)."""
    grids = LearningGrids() if grids is None else grids
    return {
        RDF_GRID: {"values": grids.rdf_r_nm.tolist(), "unit": "nm"},
        POTENTIAL_GRID: {"values": grids.potential_r_nm.tolist(), "unit": "nm"},
    }


def learning_grids(db: Database) -> LearningGrids:
    """The :class:`LearningGrids` of a database made with :func:`database_grids`."""
    missing = [g for g in (RDF_GRID, POTENTIAL_GRID) if g not in db.grids]
    if missing or any(db.grids[g]["unit"] != "nm" for g in (RDF_GRID, POTENTIAL_GRID)):
        raise InputError(
            f"database '{db.path}' has no '{RDF_GRID}' and '{POTENTIAL_GRID}' grids in nm; "
            "create it with cgforge db init"
        )
    return LearningGrids(
        rdf_r_nm=db.grids[RDF_GRID]["values"], potential_r_nm=db.grids[POTENTIAL_GRID]["values"]
    )


def stage_settings(preset: str | Mapping[str, Any] | Preset) -> dict[str, Any]:
    """Plain-data run settings of a preset: a name of :data:`STAGE_PRESETS`, a
    :class:`cgforge.presets.Preset` or a settings dict (checked and completed).

    The IBI settings leave out platform, seed, keep_md, engine and cg_threads (runtime
    choices, not physics).
    """
    if isinstance(preset, str):
        if preset not in STAGE_PRESETS:
            raise InputError(
                f"unknown stage preset '{preset}'; choose one of {', '.join(STAGE_PRESETS)}"
            )
        return STAGE_PRESETS[preset]
    if isinstance(preset, Mapping):
        data = dict(preset)
    else:
        data = {k: getattr(preset, k) for k in _SETTING_KEYS if hasattr(preset, k)}
    missing = [k for k in _SETTING_KEYS if k not in data]
    if missing:
        raise InputError(f"stage settings lack {', '.join(missing)}; give a full preset")
    ibi = data["ibi"]
    ibi = ibi.to_dict() if isinstance(ibi, IBIConfig) else dict(ibi)
    known = {f.name for f in fields(IBIConfig)}
    unknown = sorted(set(ibi) - known)
    if unknown:
        raise InputError(f"unknown IBI setting(s) {', '.join(unknown)} in the stage settings")
    full = IBIConfig(**ibi).to_dict()  # validates; every setting enters the record's spec
    data["ibi"] = {k: v for k, v in full.items() if k not in _RUNTIME_IBI_FIELDS}
    return {k: data[k] for k in _SETTING_KEYS}


#: Stage settings by name, from :data:`cgforge.presets.PRESETS`: ``tiny`` (tests: 40
#: molecules, ps runs, one IBI iteration), ``quick`` and ``standard``.
STAGE_PRESETS: dict[str, dict[str, Any]] = {
    name: stage_settings(preset) for name, preset in PRESETS.items()
}


# ====================================================================== specifications
def stage_a_equilibration(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The checked ``equilibration`` entry of a stage-A spec (None: the original protocol)."""
    if value is None:
        return None
    data = dict(value)
    unknown = sorted(set(data) - set(STAGE_A_EQUILIBRATION))
    if unknown:
        raise InputError(
            f"unknown stage-A equilibration setting(s) {', '.join(unknown)}; known: "
            f"{', '.join(STAGE_A_EQUILIBRATION)}"
        )
    data = {**STAGE_A_EQUILIBRATION, **data}
    factor = data["max_equilibration_factor"]
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor >= 1:
        raise InputError(
            f"max_equilibration_factor must be a number >= 1, got {factor!r}; 1 allows no "
            "extension of the equilibration"
        )
    if not isinstance(data["prerelax"], bool):
        raise InputError(f"prerelax must be true or false, got {data['prerelax']!r}")
    return {"prerelax": data["prerelax"], "max_equilibration_factor": float(factor)}


def stage_a_spec(
    molecule: str,
    draw_seed: int,
    ranges: ParameterRanges | Mapping[str, Any] | None,
    preset_settings: str | Mapping[str, Any] | Any,
    *,
    temperature_K: float = 298.15,
    pressure_bar: float = 1.0,
    seed: int = 0,
    equilibration: Mapping[str, Any] | None = STAGE_A_EQUILIBRATION,
) -> dict[str, Any]:
    """Specification of a stage-A record (its key is :func:`cgforge.database.store.spec_key`).

    ``draw_seed`` draws the bonded parameters from ``ranges`` (default ranges if None);
    ``seed`` seeds conformer, packing and velocities; ``preset_settings`` is a name of
    :data:`STAGE_PRESETS`, a preset or a settings dict. Temperature in K, pressure in bar.
    ``equilibration``: pre-relaxation and the cap of the equilibration (keys of
    :data:`STAGE_A_EQUILIBRATION`); None gives the original protocol (one equilibration of
    the preset's length from the unrelaxed conformer) and the specs of records made with it.
    """
    if ranges is None:
        ranges = ParameterRanges()
    elif not isinstance(ranges, ParameterRanges):
        ranges = ParameterRanges.from_dict(ranges)
    for name, value in (("draw_seed", draw_seed), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    if not (math.isfinite(temperature_K) and temperature_K > 0):
        raise InputError(f"temperature must be positive (K), got {temperature_K!r}")
    spec = {
        "stage": "A",
        "molecule": str(molecule),
        "parent_key": None,
        "draw_seed": draw_seed,
        "ranges": ranges.to_dict(),
        "temperature_K": float(temperature_K),
        "pressure_bar": float(pressure_bar),
        "seed": seed,
        "settings": stage_settings(preset_settings),
    }
    checked = stage_a_equilibration(equilibration)
    if checked is not None:
        spec["equilibration"] = checked
    return spec


def stage_b_spec(
    parent: Record | str,
    mass_amu: float,
    seed: int,
    preset_settings: str | Mapping[str, Any] | Any,
    *,
    molecule: str | None = None,
    temperature_K: float | None = None,
) -> dict[str, Any]:
    """Specification of a stage-B record: the CG potential of stage-A record ``parent`` (a
    :class:`Record`, or its key with ``molecule`` and ``temperature_K`` given) at bead mass
    ``mass_amu`` (amu). Only the CG settings of ``preset_settings`` are used.
    """
    if isinstance(parent, Record):
        if parent.stage != "A":
            raise InputError(f"record {parent.key} is stage {parent.stage}; stage B needs an A")
        parent_key = parent.key
        molecule = parent.molecule if molecule is None else molecule
        if temperature_K is None:
            temperature_K = parent.spec.get("temperature_K")
    else:
        parent_key = str(parent)
    if not molecule or temperature_K is None:
        raise InputError("stage_b_spec needs the parent's molecule and temperature_K")
    mass = float(mass_amu)
    if not (math.isfinite(mass) and mass > 0):
        raise InputError(f"bead mass must be positive (amu), got {mass_amu!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return {
        "stage": "B",
        "molecule": str(molecule),
        "parent_key": parent_key,
        "mass_amu": mass,
        "temperature_K": float(temperature_K),
        "seed": seed,
        "settings": stage_settings(preset_settings),
    }


# ====================================================================== stage C
#: The trade-off basis of stage C: ``n_basis`` bumps φₖ between the core of the parent's g(r)
#: (where g first exceeds ``core_g``) and its cutoff, as :mod:`cgforge.methods.tradeoff` uses.
STAGE_C_BASIS: Mapping[str, Any] = {"n_basis": 6, "core_g": 0.05}
#: Depth (kT at the record's temperature) added to the potential around the first peak of the
#: parent's g(r): uniform in this range. ln D falls roughly linearly with it, so a uniform
#: depth spreads the records evenly in ln D. Measured on the five stage-A potentials of
#: ``data/ffdb-cpu-quick.sqlite`` (quick preset, 600 beads, 20 + 100 ps, masses 20–200 amu):
#: depth 0.5 kT gave D_CG 4e-9 m²/s (0.75 × the parent's IBI mobility at equal mass), 1.4 kT
#: 1.4–3.9e-9, 1.9–2.4 kT 2.5–5e-10 and 2.6–3 kT 1.1–2.5e-10 (60–80× slower than the parent):
#: with depths up to 2 kT the same ten draws gave 4.2e-10–5.0e-9 (all liquid): the records
#: reach from the stage-B D_CG range (5e-9–2e-8) down to the slowest real liquids' D without
#: piling up at the frozen floor.
STAGE_C_DEPTH_KT = (0.0, 2.0)
#: Height of the barrier behind the first shell (at the first minimum of the parent's g(r)),
#: as a fraction of the depth: uniform in this range.
STAGE_C_BARRIER_FRACTION = (0.25, 1.0)
#: The scale c₀ of the whole potential (U₀ → (1 + c₀) U₀): uniform in this range.
STAGE_C_SCALE = (-0.1, 0.1)
#: Every bump coefficient gets an independent uniform jitter of ± this fraction of the depth,
#: so that records of one parent and depth differ in shape.
STAGE_C_JITTER_FRACTION = 0.1


def draw_perturbation(seed: int) -> dict[str, Any]:
    """A stage-C perturbation drawn with ``seed`` (the ``perturbation`` entry of
    :func:`stage_c_spec`): ``depth_kT`` uniform in :data:`STAGE_C_DEPTH_KT`, ``barrier_kT`` =
    depth × a fraction uniform in :data:`STAGE_C_BARRIER_FRACTION`, ``scale`` uniform in
    :data:`STAGE_C_SCALE`, ``jitter_kT`` (one per bump) uniform in ± depth ×
    :data:`STAGE_C_JITTER_FRACTION`, plus the basis (:data:`STAGE_C_BASIS`); values rounded to
    4 decimals so that specifications stay readable."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"perturbation seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    depth = float(rng.uniform(*STAGE_C_DEPTH_KT))
    barrier = depth * float(rng.uniform(*STAGE_C_BARRIER_FRACTION))
    scale = float(rng.uniform(*STAGE_C_SCALE))
    n = int(STAGE_C_BASIS["n_basis"])
    jitter = rng.uniform(-1.0, 1.0, n) * depth * STAGE_C_JITTER_FRACTION
    return check_perturbation(
        {
            "depth_kT": round(depth, 4),
            "barrier_kT": round(barrier, 4),
            "scale": round(scale, 4),
            "jitter_kT": [round(float(x), 4) for x in jitter],
            **STAGE_C_BASIS,
        }
    )


def check_perturbation(value: Mapping[str, Any]) -> dict[str, Any]:
    """The checked ``perturbation`` entry of a stage-C spec (see :func:`draw_perturbation`):
    finite ``depth_kT`` and ``barrier_kT`` (kT; negative values make a shallower well or a
    dip), ``scale`` in (−1, 1), ``jitter_kT`` one finite number per bump, ``n_basis`` 1–20
    and ``core_g`` in (0, 1)."""
    if not isinstance(value, Mapping):
        raise InputError("a stage-C perturbation must be a dict (see draw_perturbation)")
    known = ("depth_kT", "barrier_kT", "scale", "jitter_kT", "n_basis", "core_g")
    data = {**STAGE_C_BASIS, "scale": 0.0, **dict(value)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(
            f"unknown stage-C perturbation key(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    n = data["n_basis"]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 20:
        raise InputError(f"perturbation n_basis must be an integer 1-20, got {n!r}")
    data.setdefault("jitter_kT", [0.0] * n)
    numbers = {k: data.get(k) for k in ("depth_kT", "barrier_kT", "scale", "core_g")}
    jitter = data["jitter_kT"]
    if not isinstance(jitter, Sequence) or isinstance(jitter, str) or len(jitter) != n:
        raise InputError(f"perturbation jitter_kT must be {n} numbers (one per bump)")
    for name, number in [*numbers.items(), *(("jitter_kT", x) for x in jitter)]:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InputError(f"perturbation {name} must be a number, got {number!r}")
        if not math.isfinite(number):
            raise InputError(f"perturbation {name} must be finite, got {number!r}")
    if not -1.0 < numbers["scale"] < 1.0:
        raise InputError(f"perturbation scale must lie in (-1, 1), got {numbers['scale']!r}")
    if not 0.0 < numbers["core_g"] < 1.0:
        raise InputError(f"perturbation core_g must lie in (0, 1), got {numbers['core_g']!r}")
    return {
        "depth_kT": float(numbers["depth_kT"]),
        "barrier_kT": float(numbers["barrier_kT"]),
        "scale": float(numbers["scale"]),
        "jitter_kT": [float(x) for x in jitter],
        "n_basis": n,
        "core_g": float(numbers["core_g"]),
    }


def stage_c_spec(
    parent: Record,
    mass_amu: float,
    seed: int,
    preset_settings: str | Mapping[str, Any] | Any,
    perturbation: Mapping[str, Any],
) -> dict[str, Any]:
    """Specification of a stage-C record: the CG potential of the done stage-A record
    ``parent`` perturbed as ``perturbation`` says (:func:`draw_perturbation`,
    :func:`check_perturbation`), at bead mass ``mass_amu`` (amu). Only the CG settings of
    ``preset_settings`` are used (those of stage B)."""
    if not isinstance(parent, Record) or parent.stage != "A":
        raise InputError("stage C perturbs a stage-A record; give one as parent")
    spec = stage_b_spec(parent, mass_amu, seed, preset_settings)
    spec["stage"] = "C"
    spec["perturbation"] = check_perturbation(perturbation)
    return spec
