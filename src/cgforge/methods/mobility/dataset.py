"""Learning data from a cgforge force-field database (:mod:`cgforge.database`).

The store layer reads the records (:func:`cgforge.database.learning.read_records` → a
:class:`RecordSet` of arrays); this module works on those arrays only and imports nothing of
the database.

Records
    Done stage-A, -B and -C records (:func:`cgforge.database.learning.read_records`). A
    record is usable when it has a
    CG RDF ``g_cg`` on the ``rdf`` grid and a ``potential`` on the ``potential`` grid, a
    positive bead mass and CG diffusion coefficient, finite values, and a g(r) that rises above
    :data:`G_STRUCTURAL`; others are skipped and counted by reason. Stage-A records also carry
    the bonded ``parameters`` (names in their provenance), D_AA and the acceleration factor.
    Records that share a potential (a stage-A record and its stage-B copies), and the
    stage-C records perturbed from it, form a *group*, kept on one side of every
    train/validation split.

Structural range and the short-range part of the targets
    Below the first r where a record's g(r) exceeds :data:`G_STRUCTURAL` (0.05; its *onset*,
    taken on the potential grid with g interpolated linearly) the stored potential is the
    steep repulsive wall that IBI adds where the liquid never goes: values up to 10⁴ kJ/mol that
    carry no information and would swamp a regression. The targets are therefore U on the
    potential grid from the smallest onset of the training records to their largest cutoff, and
    *below a record's own onset* its C¹ linear continuation U(r_on) + F(r_on)·(r_on − r) (F the
    force of the first grid step at the onset, at least 0): bounded, smooth and learnable. A
    predicted table uses only the part from the onset on (the input g's onset for mobility
    models, the predicted onset for parameter models) and is continued to r = 0 by the r⁻¹²
    wall of :meth:`~cgforge.potentials.table.TabulatedPotential.extend_repulsive`, joined with
    continuous U and F (see :mod:`cgforge.methods.mobility.prediction`).

Mobility inputs (:func:`mobility_features`)
    log₁₀(m / amu), log₁₀(D / (m²/s)) and g(r) on the ``rdf`` grid. Stage A contributes its CG
    RDF and D_CG at the molecular mass, stage B the same potential's RDF and D_CG at another
    bead mass, stage C the RDF and D_CG of its own perturbed potential (target: that
    potential) at a random bead mass.

Pairs (:func:`find_pairs`)
    Stage-A records i, j of one molecule and temperature (within 0.5 K) with
    |D_CG,j − D_AA,i| ≤ ``tolerance`` · D_AA,i (default 10 %, about the statistical error of a
    short MD estimate of D): the potential of j moves CG beads as fast as i's atoms move, so
    the parameters of i → the potential of j is a dynamics-preserving target. i = j is a pair
    when a record's own IBI model is not accelerated.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError
from cgforge.grids import LearningGrids

__all__ = [
    "G_STRUCTURAL",
    "MIN_RECORDS",
    "PAIR_TEMPERATURE_TOLERANCE_K",
    "MobilityData",
    "ParameterData",
    "PotentialTargets",
    "RecordSet",
    "check_size",
    "find_pairs",
    "minimum_records",
    "mobility_data",
    "mobility_features",
    "onset_index",
    "parameter_data",
]

#: g(r) above which a distance belongs to the structural range.
G_STRUCTURAL = 0.05
#: Fewest usable records any model trains on.
MIN_RECORDS = 20
#: Records of a pair must have temperatures this close, K.
PAIR_TEMPERATURE_TOLERANCE_K = 0.5
#: Standardisation floors of the mobility inputs: log10 mass and D (decades), g (1).
LOG_FEATURE_FLOOR = 0.01
RDF_FEATURE_FLOOR = 0.02


def minimum_records(folds: int) -> int:
    """Fewest usable records for ``folds``-fold training: max(20, 4 per fold)."""
    return max(MIN_RECORDS, 4 * int(folds))


def check_size(n_usable: int, needed: int, source: Any, what: str = "usable records") -> None:
    """Raise the database-too-small InputError when ``n_usable < needed``."""
    if n_usable < needed:
        raise InputError(
            f"database {source} has {n_usable} {what}; training needs at least {needed} — "
            "generate more with cgforge db generate"
        )


def onset_index(g_rdf: NDArray[np.float64], grids: LearningGrids) -> int | None:
    """Index on the potential grid of the first point where g (linear in r) exceeds
    :data:`G_STRUCTURAL`; 0 if it does so below the grid, None if never."""
    g = np.interp(grids.potential_r_nm, grids.rdf_r_nm, g_rdf)
    above = np.flatnonzero(g > G_STRUCTURAL)
    return int(above[0]) if above.size else None


@dataclass(frozen=True)
class RecordSet:
    """Usable records as arrays (n records). Units: amu, m²/s, K, nm, kJ/mol.

    ``d_aa`` and ``acceleration`` are NaN for stage-B and -C records; ``parameters`` is None
    there.
    """

    grids: LearningGrids
    source: str
    keys: list[str]
    stages: list[str]
    molecules: list[str]
    groups: list[str]
    temperature_K: NDArray[np.float64]
    mass_amu: NDArray[np.float64]
    d_cg: NDArray[np.float64]
    d_aa: NDArray[np.float64]
    acceleration: NDArray[np.float64]
    g_cg: NDArray[np.float64]
    potential: NDArray[np.float64]
    cutoff_nm: NDArray[np.float64]
    onset: NDArray[np.int64]
    parameters: list[NDArray[np.float64] | None]
    parameter_names: list[tuple[str, ...] | None]
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, index: Sequence[int] | NDArray[np.int64]) -> RecordSet:
        idx = [int(i) for i in index]
        arrays = {
            name: getattr(self, name)[idx]
            for name in (
                "temperature_K",
                "mass_amu",
                "d_cg",
                "d_aa",
                "acceleration",
                "g_cg",
                "potential",
                "cutoff_nm",
                "onset",
            )
        }
        lists = {
            name: [getattr(self, name)[i] for i in idx]
            for name in ("keys", "stages", "molecules", "groups", "parameters", "parameter_names")
        }
        return RecordSet(
            grids=self.grids, source=self.source, skipped=dict(self.skipped), **arrays, **lists
        )

    def summary(self) -> dict[str, Any]:
        """Plain-data description of the records for the model manifest."""

        def span(values: NDArray[np.float64]) -> list[float] | None:
            finite = values[np.isfinite(values)]
            return [float(finite.min()), float(finite.max())] if finite.size else None

        return {
            "database": self.source,
            "n_records": len(self),
            "n_stage_a": self.stages.count("A"),
            "n_stage_b": self.stages.count("B"),
            "n_stage_c": self.stages.count("C"),
            "n_groups": len(set(self.groups)),
            "molecules": dict(Counter(self.molecules)),
            "mass_amu": span(self.mass_amu),
            "diffusion_cg_m2_s": span(self.d_cg),
            "diffusion_aa_m2_s": span(self.d_aa),
            "temperature_K": span(self.temperature_K),
            "cutoff_nm": span(self.cutoff_nm),
            "skipped": dict(self.skipped),
        }


# ---------------------------------------------------------------------- potential targets
@dataclass(frozen=True)
class PotentialTargets:
    """U(r) targets on the output grid ``r_nm`` (a slice ``[start, stop)`` of the potential
    grid, nm): ``u_kj_mol`` (n, q) with the C¹ continuation below each record's onset
    ``onset_nm`` (n,), and the records' cutoffs ``cutoff_nm`` (n,)."""

    r_nm: NDArray[np.float64]
    start: int
    u_kj_mol: NDArray[np.float64]
    onset_nm: NDArray[np.float64]
    cutoff_nm: NDArray[np.float64]

    @classmethod
    def from_records(cls, records: RecordSet) -> PotentialTargets:
        r = records.grids.potential_r_nm
        start = int(records.onset.min())
        stop = int(np.searchsorted(r, float(records.cutoff_nm.max()) + 1e-9))
        u = np.array(records.potential[:, start:stop], dtype=np.float64)
        step = float(r[1] - r[0])
        for row, on in zip(u, records.onset - start, strict=True):
            if on > 0:
                force = max(-(row[on + 1] - row[on]) / step, 0.0)
                row[:on] = row[on] + force * (r[start + on] - r[start : start + on])
        return cls(
            r_nm=np.array(r[start:stop]),
            start=start,
            u_kj_mol=u,
            onset_nm=np.array(r[records.onset]),
            cutoff_nm=np.array(records.cutoff_nm),
        )


def mobility_features(
    mass_amu: NDArray[np.float64] | float,
    diffusion_m2_s: NDArray[np.float64] | float,
    g: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Inputs of the mobility network, (n, 2 + n_rdf): log₁₀ m/amu, log₁₀ D/(m²/s), g(r)."""
    m = np.atleast_1d(np.asarray(mass_amu, dtype=np.float64))
    d = np.atleast_1d(np.asarray(diffusion_m2_s, dtype=np.float64))
    g = np.atleast_2d(np.asarray(g, dtype=np.float64))
    return np.column_stack([np.log10(m), np.log10(d), g])


def mobility_feature_floor(n_rdf: int) -> NDArray[np.float64]:
    """Standardisation floors of :func:`mobility_features` columns."""
    return np.concatenate(
        [[LOG_FEATURE_FLOOR, LOG_FEATURE_FLOOR], np.full(n_rdf, RDF_FEATURE_FLOOR)]
    )


@dataclass(frozen=True)
class MobilityData:
    """Inputs and targets of the mobility network from stage-A and stage-B records."""

    records: RecordSet
    targets: PotentialTargets

    @property
    def x(self) -> NDArray[np.float64]:
        return mobility_features(self.records.mass_amu, self.records.d_cg, self.records.g_cg)


def mobility_data(records: RecordSet, folds: int) -> MobilityData:
    """Usable stage-A and stage-B records as mobility data; refuses a database too small for
    ``folds``-fold training."""
    check_size(len(records), minimum_records(folds), records.source)
    if len(set(records.groups)) < folds:
        check_size(
            len(set(records.groups)), folds, records.source, "independent potentials (stage-A)"
        )
    return MobilityData(records=records, targets=PotentialTargets.from_records(records))


# ---------------------------------------------------------------------- parameter models
@dataclass(frozen=True)
class ParameterData:
    """Stage-A records of one molecule with their parameter vectors (n, p)."""

    molecule: str
    names: tuple[str, ...]
    records: RecordSet
    parameters: NDArray[np.float64]


def parameter_data(
    records: RecordSet, molecule: str | None = None, *, needed: int = MIN_RECORDS
) -> ParameterData:
    """Usable stage-A records (``records``) of ``molecule`` (the only one, if None) with
    parameters."""
    with_params = [i for i, p in enumerate(records.parameters) if p is not None]
    molecules = sorted({records.molecules[i] for i in with_params})
    if molecule is None:
        if len(molecules) > 1:
            raise InputError(
                f"database {records.source} holds several molecules ({', '.join(molecules)}); "
                "their parameter vectors differ, so choose one with molecule",
                parameters="molecule",
            )
        if not molecules:
            check_size(0, needed, records.source, "stage-A records with parameters")
        molecule = molecules[0]
    elif molecule not in molecules:
        raise InputError(
            f"database {records.source} has no stage-A records of '{molecule}' with parameters; "
            f"it holds {', '.join(molecules) or 'none'}"
        )
    chosen = [i for i in with_params if records.molecules[i] == molecule]
    names = records.parameter_names[chosen[0]]
    same = [i for i in chosen if records.parameter_names[i] == names]
    subset = records.take(same)
    if len(same) < len(chosen):
        skipped = dict(subset.skipped)
        skipped["other parameter names"] = len(chosen) - len(same)
        subset = RecordSet(**{**subset.__dict__, "skipped": skipped})
    check_size(len(subset), needed, records.source, f"stage-A records of {molecule}")
    params = np.array([subset.parameters[i] for i in range(len(subset))], dtype=np.float64)
    return ParameterData(molecule=molecule, names=tuple(names), records=subset, parameters=params)


def find_pairs(
    d_aa: NDArray[np.float64],
    d_cg: NDArray[np.float64],
    *,
    tolerance: float = 0.1,
    molecules: Sequence[str] | None = None,
    temperature_K: NDArray[np.float64] | None = None,
) -> list[tuple[int, int]]:
    """Pairs (i, j) with |D_CG[j] − D_AA[i]| ≤ tolerance · D_AA[i], same molecule and
    temperature (see the module docstring); sorted by i, then j. D in any one unit."""
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise InputError(f"pair tolerance must be a positive fraction, got {tolerance!r}")
    d_aa = np.asarray(d_aa, dtype=np.float64)
    d_cg = np.asarray(d_cg, dtype=np.float64)
    n = d_aa.size
    mols = list(molecules) if molecules is not None else [""] * n
    temps = np.zeros(n) if temperature_K is None else np.asarray(temperature_K, dtype=float)
    pairs = []
    for i in range(n):
        if not (np.isfinite(d_aa[i]) and d_aa[i] > 0):
            continue
        close = np.abs(d_cg - d_aa[i]) <= tolerance * d_aa[i]
        for j in np.flatnonzero(close):
            if mols[j] == mols[i] and abs(temps[j] - temps[i]) <= PAIR_TEMPERATURE_TOLERANCE_K:
                pairs.append((i, int(j)))
    return pairs
