"""Reading learning data out of a force-field database: the store side of
:mod:`cgforge.methods.mobility`.

:func:`read_records` turns the usable done records of a database into the
:class:`~cgforge.methods.mobility.dataset.RecordSet` arrays that the learning methods work on
(which records are usable is described in :mod:`cgforge.methods.mobility.dataset`);
:func:`load_mobility_data` and :func:`load_parameter_data` read and select in one call.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.database.stages import POTENTIAL_GRID, RDF_GRID, learning_grids
from cgforge.database.store import Database, Record
from cgforge.grids import LearningGrids
from cgforge.methods.mobility.dataset import (
    G_STRUCTURAL,
    MIN_RECORDS,
    MobilityData,
    ParameterData,
    RecordSet,
    mobility_data,
    onset_index,
    parameter_data,
)

__all__ = ["load_mobility_data", "load_parameter_data", "read_records"]


def _open(database: str | Path | Database) -> tuple[Database, bool]:
    if isinstance(database, Database):
        return database, False
    return Database.open(database, readonly=True), True


def _positive_or_nan(scalars: dict[str, Any], name: str) -> float:
    """``scalars[name]`` as a finite positive float, else NaN (the record is then skipped)."""
    try:
        value = float(scalars.get(name))
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) and value > 0 else math.nan


def _usable(record: Record, grids: LearningGrids) -> tuple[dict[str, Any] | None, str]:
    """The learning fields of one record, or (None, reason it is skipped)."""
    arrays = record.arrays
    for name, grid, n in (
        ("g_cg", RDF_GRID, grids.n_rdf),
        ("potential", POTENTIAL_GRID, grids.n_potential),
    ):
        item = arrays.get(name)
        if item is None:
            return None, f"no {name} array"
        if item.grid_name != grid or item.data.shape != (n,):
            return None, f"{name} not on the '{grid}' grid"
        if not np.all(np.isfinite(item.data)):
            return None, f"non-finite {name}"
    mass = _positive_or_nan(record.scalars, "mass_amu")
    d_cg = _positive_or_nan(record.scalars, "diffusion_cg_m2_s")
    temperature = _positive_or_nan(record.scalars, "temperature_K")
    if not (math.isfinite(mass) and math.isfinite(d_cg) and math.isfinite(temperature)):
        return None, "no positive mass, D_CG or temperature"
    g = np.asarray(arrays["g_cg"].data, dtype=np.float64)
    onset = onset_index(g, grids)
    if onset is None:
        return None, f"g_cg never exceeds {G_STRUCTURAL}"
    cutoff = _positive_or_nan(record.scalars, "cutoff_nm")
    if not math.isfinite(cutoff):
        cutoff = float(grids.potential_r_nm[-1])
    cutoff = min(cutoff, float(grids.potential_r_nm[-1]))
    if cutoff <= grids.potential_r_nm[onset] + 0.05:
        return None, "cutoff not beyond the structural onset"
    fields: dict[str, Any] = {
        "mass": mass,
        "d_cg": d_cg,
        "temperature": temperature,
        "g": g,
        "u": np.asarray(arrays["potential"].data, dtype=np.float64),
        "cutoff": cutoff,
        "onset": onset,
        "d_aa": math.nan,
        "acceleration": math.nan,
        "parameters": None,
        "names": None,
    }
    if record.stage == "A":
        fields["d_aa"] = _positive_or_nan(record.scalars, "diffusion_aa_m2_s")
        if math.isfinite(fields["d_aa"]):
            factor = _positive_or_nan(record.scalars, "acceleration_factor")
            fields["acceleration"] = factor if math.isfinite(factor) else d_cg / fields["d_aa"]
        params = arrays.get("parameters")
        names = (record.provenance or {}).get("parameter_names")
        if params is not None and names is not None:
            values = np.asarray(params.data, dtype=np.float64)
            if values.shape == (len(names),) and np.all(np.isfinite(values)):
                fields["parameters"] = values
                fields["names"] = tuple(str(n) for n in names)
    return fields, ""


def read_records(
    database: str | Path | Database, stages: Sequence[str] = ("A", "B", "C")
) -> RecordSet:
    """The usable done records of ``stages`` (see the module docstring), in database order.

    Every record brings the ``potential`` array stored with it: stage A its IBI potential,
    stage B its parent's (the same Hamiltonian), stage C its own perturbed potential. A
    record's group is its stage-A family (a stage-A record's key, else its parent's), so a
    perturbed potential stays on its parent's side of every train/validation split."""
    db, close = _open(database)
    try:
        grids = learning_grids(db)
        rows: list[tuple[Record, dict[str, Any]]] = []
        skipped: Counter[str] = Counter()
        for stage in stages:
            for record in db.iter_done(stage):
                fields, reason = _usable(record, grids)
                if fields is None:
                    skipped[reason] += 1
                    continue
                rows.append((record, fields))
        source = str(db.path)
    finally:
        if close:
            db.close()
    n_rdf, n_pot = grids.n_rdf, grids.n_potential

    def column(name: str) -> NDArray[np.float64]:
        return np.array([f[name] for _, f in rows], dtype=np.float64)

    return RecordSet(
        grids=grids,
        source=source,
        keys=[r.key for r, _ in rows],
        stages=[r.stage for r, _ in rows],
        molecules=[str(r.molecule) for r, _ in rows],
        groups=[r.key if r.stage == "A" else str(r.parent_key) for r, _ in rows],
        temperature_K=column("temperature"),
        mass_amu=column("mass"),
        d_cg=column("d_cg"),
        d_aa=column("d_aa"),
        acceleration=column("acceleration"),
        g_cg=np.array([f["g"] for _, f in rows]).reshape(-1, n_rdf),
        potential=np.array([f["u"] for _, f in rows]).reshape(-1, n_pot),
        cutoff_nm=column("cutoff"),
        onset=np.array([f["onset"] for _, f in rows], dtype=np.int64),
        parameters=[f["parameters"] for _, f in rows],
        parameter_names=[f["names"] for _, f in rows],
        skipped=dict(skipped),
    )


def load_mobility_data(database: str | Path | Database, folds: int) -> MobilityData:
    """Usable stage-A, -B and -C records of ``database`` as mobility data
    (:func:`~cgforge.methods.mobility.dataset.mobility_data`); stage-C records carry their own
    perturbed potentials as targets."""
    return mobility_data(read_records(database, ("A", "B", "C")), folds)


def load_parameter_data(
    database: str | Path | Database, molecule: str | None = None, *, needed: int = MIN_RECORDS
) -> ParameterData:
    """Usable stage-A records of ``molecule`` in ``database`` with parameters
    (:func:`~cgforge.methods.mobility.dataset.parameter_data`); stages B and C carry no
    parameters of their own and are not read."""
    return parameter_data(read_records(database, ("A",)), molecule, needed=needed)
