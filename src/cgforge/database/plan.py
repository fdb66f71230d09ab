"""Deterministic generation plans: which stage-A, -B and -C records a generation asks for.

A plan is a pure function of its arguments (and, for stage B, of which stage-A records are
done), so running ``cgforge db generate`` again with the same arguments asks for the same
records: their keys (:func:`cgforge.database.store.spec_key`) are equal, nothing is added twice,
and a killed generation resumes with exactly the records it would have made.

Seeds
    Every random choice of plan entry ``k`` comes from :class:`numpy.random.SeedSequence` of
    ``(seed, purpose, k)``: the bonded-parameter draw of stage-A entry ``k``
    (:data:`PURPOSE_DRAW`), its MD seed (:data:`PURPOSE_MD_A`), the bead mass of stage-B entry
    ``j`` (:data:`PURPOSE_MASS`) and its MD seed (:data:`PURPOSE_MD_B`), and the
    perturbation, bead mass and MD seed of stage-C entry ``i`` (:data:`PURPOSE_PERTURBATION`,
    :data:`PURPOSE_MASS_C`, :data:`PURPOSE_MD_C`). Entries are
    independent of each other, so asking for more runs later extends a plan without changing
    its first entries.

Stage A
    Entry ``k`` simulates ``molecules[k % len(molecules)]`` (round robin, so every molecule
    gets a share of any number of runs).

Stage B
    Entry ``j`` takes the ``(j % P)``-th done stage-A parent (parents in stage-A plan order,
    then by key for parents outside the plan) and a bead mass drawn uniformly from
    ``mass_range_amu``; masses are rounded to 0.01 amu so specifications stay readable.
    Round robin gives every parent the same number of masses, which the per-potential
    D ∝ m^-1/2 check and the mobility network both want. The plan depends on the set of done
    parents: after more stage-A records finish, the same arguments plan new stage-B entries
    for them (records already made stay).

Stage C
    Entry ``i`` takes the ``(i % P)``-th done stage-A parent (same order as stage B), a
    perturbation drawn by :func:`cgforge.database.stages.draw_perturbation` and a bead mass
    drawn uniformly from ``mass_range_amu`` (rounded to 0.01 amu), as stage B draws it.

Work directories
    A record's simulation files live in :func:`record_workdir`, next to the database file, so
    a record that is run again (after a kill or a worker crash) resumes from its checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.database.stages import draw_perturbation, stage_a_spec, stage_b_spec, stage_c_spec
from cgforge.database.store import Record
from cgforge.errors import InputError
from cgforge.molecules.randomize import ParameterRanges

__all__ = [
    "DEFAULT_MASS_RANGE_AMU",
    "PURPOSE_DRAW",
    "PURPOSE_MASS",
    "PURPOSE_MASS_C",
    "PURPOSE_MD_A",
    "PURPOSE_MD_B",
    "PURPOSE_MD_C",
    "PURPOSE_PERTURBATION",
    "derived_seed",
    "mass_range",
    "order_parents",
    "plan_stage_a",
    "plan_stage_b",
    "plan_stage_c",
    "record_workdir",
]

#: Bead masses of the stage-B scan (amu), the range of the seed papers.
DEFAULT_MASS_RANGE_AMU = (20.0, 200.0)

PURPOSE_DRAW = 0
PURPOSE_MD_A = 1
PURPOSE_MASS = 2
PURPOSE_MD_B = 3
PURPOSE_PERTURBATION = 4
PURPOSE_MASS_C = 5
PURPOSE_MD_C = 6


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise InputError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def derived_seed(seed: int, purpose: int, index: int) -> int:
    """A 31-bit seed for plan entry ``index`` and one ``purpose`` (see the module docstring)."""
    seed = _count(seed, "seed")
    state = np.random.SeedSequence([seed, int(purpose), _count(index, "index")])
    return int(state.generate_state(1, dtype=np.uint32)[0] >> 1)


def mass_range(value: Sequence[float] | None) -> tuple[float, float]:
    """A validated ``(low, high)`` bead-mass range in amu: finite, ``0 < low <= high``."""
    if value is None:
        return DEFAULT_MASS_RANGE_AMU
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"mass range must be two numbers (amu), got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low <= 0:
        raise InputError(
            f"mass range {low:g}–{high:g} amu is outside (0, ∞); give positive masses in "
            "mass_range_amu, e.g. 20 and 200",
            parameters="mass_range_amu",
        )
    if low > high:
        raise InputError(f"mass range {low:g}–{high:g} amu is inverted; give the lower mass first")
    return low, high


def plan_stage_a(
    molecules: Sequence[str],
    n_runs: int,
    *,
    seed: int = 0,
    ranges: ParameterRanges | Mapping[str, Any] | None = None,
    preset: str | Mapping[str, Any] | Any = "quick",
    temperature_K: float = 298.15,
    pressure_bar: float = 1.0,
) -> list[dict[str, Any]]:
    """Specifications of stage-A entries ``0 .. n_runs-1`` (see the module docstring).

    Molecule names are checked against the library (or parsed as SMILES) before anything is
    planned, so an unknown name fails at once with the loader's message.
    """
    from cgforge.molecules import load_molecule

    names = [str(m).strip() for m in molecules]
    if not names or any(not m for m in names):
        raise InputError(
            "give at least one molecule in molecules, e.g. '3-methylpentane'",
            parameters="molecules",
        )
    n = _count(n_runs, "the number of stage-A runs")
    for name in dict.fromkeys(names):
        load_molecule(name)
    if ranges is not None and not isinstance(ranges, ParameterRanges):
        ranges = ParameterRanges.from_dict(ranges)
    return [
        stage_a_spec(
            names[k % len(names)],
            derived_seed(seed, PURPOSE_DRAW, k),
            ranges,
            preset,
            temperature_K=temperature_K,
            pressure_bar=pressure_bar,
            seed=derived_seed(seed, PURPOSE_MD_A, k),
        )
        for k in range(n)
    ]


def order_parents(
    parents: Iterable[Record], stage_a_plan: Sequence[Mapping[str, Any]] = ()
) -> list[Record]:
    """Done stage-A records in plan order, then (outside the plan) by key."""
    from cgforge.database.store import spec_key

    position = {spec_key(s): i for i, s in enumerate(stage_a_plan)}
    done = [p for p in parents if p.stage == "A" and p.state == "done"]
    return sorted(done, key=lambda p: (position.get(p.key, len(position)), p.key))


def _child_draws(
    parents: Sequence[Record],
    n_runs: int,
    seed: int,
    mass_range_amu: Sequence[float] | None,
    *,
    stage: str,
    purpose_mass: int,
    no_parents: str,
    parameters: str | tuple[str, ...] = (),
) -> list[tuple[int, Record, float]]:
    """``(index, parent, mass)`` of entries ``0 .. n_runs-1`` of a stage (B or C) that runs
    the potentials of ``parents``, the prologue both plans share: the checks (``n_runs``,
    then the mass range, then an :class:`InputError` of ``no_parents`` and ``parameters``
    when entries are asked for and no parent is done), the round-robin parent
    ``parents[index % P]`` and the bead mass drawn uniformly from the mass range with
    ``derived_seed(seed, purpose_mass, index)``, rounded to 0.01 amu."""
    n = _count(n_runs, f"the number of stage-{stage} runs")
    low, high = mass_range(mass_range_amu)
    if n and not parents:
        raise InputError(no_parents, parameters=parameters)
    draws = []
    for index in range(n):
        rng = np.random.default_rng(derived_seed(seed, purpose_mass, index))
        mass = round(float(rng.uniform(low, high)), 2)
        draws.append((index, parents[index % len(parents)], mass))
    return draws


def plan_stage_b(
    parents: Sequence[Record],
    n_runs: int,
    *,
    seed: int = 0,
    mass_range_amu: Sequence[float] | None = None,
    preset: str | Mapping[str, Any] | Any = "quick",
) -> list[dict[str, Any]]:
    """Specifications of stage-B entries ``0 .. n_runs-1`` over ``parents`` (done stage-A
    records, already in the order :func:`order_parents` gives)."""
    draws = _child_draws(
        parents,
        n_runs,
        seed,
        mass_range_amu,
        stage="B",
        purpose_mass=PURPOSE_MASS,
        no_parents="stage B needs done stage-A records; none are done yet (generate stage A first)",
    )
    return [
        stage_b_spec(parent, mass, derived_seed(seed, PURPOSE_MD_B, j), preset)
        for j, parent, mass in draws
    ]


def plan_stage_c(
    parents: Sequence[Record],
    n_runs: int,
    *,
    seed: int = 0,
    mass_range_amu: Sequence[float] | None = None,
    preset: str | Mapping[str, Any] | Any = "quick",
) -> list[dict[str, Any]]:
    """Specifications of stage-C entries ``0 .. n_runs-1`` over ``parents`` (done stage-A
    records in the order :func:`order_parents` gives): perturbed potentials at random masses."""
    draws = _child_draws(
        parents,
        n_runs,
        seed,
        mass_range_amu,
        stage="C",
        purpose_mass=PURPOSE_MASS_C,
        no_parents="stage C perturbs done stage-A records; none are done yet (generate "
        "stage A first)",
        parameters="perturbed_runs",
    )
    return [
        stage_c_spec(
            parent,
            mass,
            derived_seed(seed, PURPOSE_MD_C, i),
            preset,
            draw_perturbation(derived_seed(seed, PURPOSE_PERTURBATION, i)),
        )
        for i, parent, mass in draws
    ]


def record_workdir(database: str | Path, key: str) -> Path:
    """Work directory of record ``key``: ``<database>.work/<first 16 hex digits of key>``."""
    path = Path(database)
    return path.with_name(path.name + ".work") / str(key)[:16]
