"""Training the learned CG models of :mod:`cgforge.methods.mobility` from a database file.

Each entry point reads the usable records of a force-field database
(:func:`cgforge.database.learning.read_records`) and hands them to the method that trains and
writes the model directory; this is what ``cgforge train mobility|params|acceleration`` runs.
The output directory is checked before the database is read, so a clash is reported first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cgforge.database.learning import read_records
from cgforge.database.store import Database
from cgforge.errors import InputError
from cgforge.methods.mobility.acceleration import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_TREES,
    fit_acceleration,
)
from cgforge.methods.mobility.model_io import check_output_dir
from cgforge.methods.mobility.network import EnsembleTrainConfig, TrainProgress
from cgforge.methods.mobility.params import DEFAULT_PAIR_TOLERANCE, fit_params_to_potential
from cgforge.methods.mobility.potential_from_mobility import fit_mobility

__all__ = ["MOBILITY_STAGES", "train_acceleration", "train_mobility", "train_params_to_potential"]

#: Record kinds the mobility network can learn from: stage A (IBI potentials at the molecular
#: mass), B (the same potentials at other bead masses), C (perturbed potentials).
MOBILITY_STAGES: tuple[str, ...] = ("A", "B", "C")


def train_mobility(
    database: str | Path | Database,
    out: str | Path,
    config: EnsembleTrainConfig | None = None,
    *,
    overwrite: bool = False,
    progress: TrainProgress | None = None,
    stages: Sequence[str] = MOBILITY_STAGES,
) -> dict[str, Any]:
    """Train the mobility network on the stage-A, -B and -C records of ``database`` (stage C
    with its own perturbed potentials) and write the model directory ``out``; returns the
    manifest (:func:`~cgforge.methods.mobility.potential_from_mobility.fit_mobility`).

    ``stages`` selects the record kinds (e.g. ``("A", "C")`` leaves out the stage-B records,
    one potential at many masses); the manifest's training data counts each stage."""
    requested = {str(x).strip().upper() for x in stages}
    chosen = tuple(x for x in MOBILITY_STAGES if x in requested)  # database order
    if not chosen or requested - set(MOBILITY_STAGES):
        raise InputError(
            f"stages must be a non-empty selection of {', '.join(MOBILITY_STAGES)}, got "
            f"{', '.join(map(str, stages)) or 'none'}",
            parameters="stages",
        )
    check_output_dir(out, overwrite=overwrite)
    records = read_records(database, chosen)
    return fit_mobility(records, out, config, overwrite=overwrite, progress=progress)


def train_params_to_potential(
    database: str | Path | Database,
    out: str | Path,
    config: EnsembleTrainConfig | None = None,
    *,
    molecule: str | None = None,
    target: str = "ibi",
    tolerance: float = DEFAULT_PAIR_TOLERANCE,
    overwrite: bool = False,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train a parameters → potential network on the stage-A records of ``molecule`` in
    ``database`` and write the model directory ``out``; returns the manifest
    (:func:`~cgforge.methods.mobility.params.fit_params_to_potential`)."""
    check_output_dir(out, overwrite=overwrite)
    records = read_records(database, ("A",))
    return fit_params_to_potential(
        records,
        out,
        config,
        molecule=molecule,
        target=target,
        tolerance=tolerance,
        overwrite=overwrite,
        progress=progress,
    )


def train_acceleration(
    database: str | Path | Database,
    out: str | Path,
    config: EnsembleTrainConfig | None = None,
    *,
    molecule: str | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    n_trees: int = DEFAULT_TREES,
    overwrite: bool = False,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train the acceleration-factor models on the stage-A records of ``molecule`` in
    ``database`` and write the model directory ``out``; returns the manifest
    (:func:`~cgforge.methods.mobility.acceleration.fit_acceleration`)."""
    check_output_dir(out, overwrite=overwrite)
    records = read_records(database, ("A",))
    return fit_acceleration(
        records,
        out,
        config,
        molecule=molecule,
        test_fraction=test_fraction,
        n_trees=n_trees,
        overwrite=overwrite,
        progress=progress,
    )
