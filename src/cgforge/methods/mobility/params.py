"""Networks from all-atom bonded parameters to a CG potential (structure- or dynamics-preserving).

Two targets, both from the stage-A records of **one molecule** (parameter vectors of different
molecules name different bonded types, so each molecule gets its own model; the vector's entry
names are stored and checked):

``ibi`` (kind ``params-to-potential``)
    parameters of record i → the IBI potential of record i. Reproduces the all-atom structure;
    the dynamics keep the IBI acceleration.

``pairs`` (kind ``pairs``)
    parameters of record i → the potential of a record j whose CG diffusion coefficient equals
    the all-atom one of i (:func:`~cgforge.methods.mobility.dataset.find_pairs`, relative
    tolerance 10 % by default). Beads of that potential at the molecular mass move as fast as
    i's molecules: a dynamics-preserving model at the cost of some structure.

The outputs are the potential targets of :class:`~cgforge.methods.mobility.dataset.
PotentialTargets` plus one more column, the structural onset (nm), so that a prediction knows
where its learned part starts; below it the r⁻¹² wall takes over
(:func:`~cgforge.methods.mobility.prediction.simulation_table`). A prediction is flagged out of
distribution when a parameter lies outside its training range widened by 10 % of the span, or
the standardised vector lies outside the
:class:`~cgforge.methods.mobility.network.InputDomain` of the training vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError
from cgforge.grids import LearningGrids
from cgforge.methods.mobility.dataset import (
    PotentialTargets,
    RecordSet,
    check_size,
    find_pairs,
    minimum_records,
    parameter_data,
)
from cgforge.methods.mobility.model_io import (
    LoadedModel,
    check_output_dir,
    load_model_files,
    write_trained_model,
)
from cgforge.methods.mobility.network import (
    Ensemble,
    EnsembleTrainConfig,
    InputDomain,
    TrainProgress,
)
from cgforge.methods.mobility.potential_from_mobility import (
    RANGE_MARGIN,
    fit_potential_ensemble,
    model_cutoff_nm,
    potential_metrics,
)
from cgforge.methods.mobility.prediction import Prediction, simulation_table
from cgforge.provenance import collect

__all__ = [
    "TARGETS",
    "ParamsModel",
    "fit_params_to_potential",
    "parameter_floor",
    "parameter_vector_from",
]

#: Target name → model kind.
TARGETS = {"ibi": "params-to-potential", "pairs": "pairs"}
#: Default relative tolerance of D matching in the pairs dataset.
DEFAULT_PAIR_TOLERANCE = 0.1


def parameter_floor(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Standardisation floor of parameter columns: 10⁻⁶ of their magnitude (constant columns
    stay constant; any deviation from them is flagged as out of distribution)."""
    return np.maximum(1e-6 * np.abs(np.asarray(x)).mean(axis=0), 1e-12)


def parameter_vector_from(
    parameters: Mapping[str, float] | Sequence[float] | NDArray[np.float64],
    names: Sequence[str],
) -> NDArray[np.float64]:
    """A parameter vector in the order of ``names``, from a name → value mapping or a
    sequence of that length (values in cgforge units, as in the database)."""
    if isinstance(parameters, Mapping):
        missing = [n for n in names if n not in parameters]
        extra = sorted(set(parameters) - set(names))
        if missing or extra:
            raise InputError(
                "the parameters do not match the model's: "
                + (f"missing {', '.join(missing[:5])}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unknown {', '.join(extra[:5])}" if extra else "")
                + " (build them with cgforge.molecules.randomize.parameter_vector)"
            )
        values = np.array([float(parameters[n]) for n in names], dtype=np.float64)
    else:
        values = np.asarray(parameters, dtype=np.float64).reshape(-1)
        if values.size != len(names):
            raise InputError(
                f"the model takes {len(names)} parameters, got {values.size}; build them with "
                "cgforge.molecules.randomize.parameter_vector for the model's molecule"
            )
    if not np.all(np.isfinite(values)):
        raise InputError("the parameter vector holds non-finite values")
    return values


def fit_params_to_potential(
    records: RecordSet,
    out: str | Path,
    config: EnsembleTrainConfig | None = None,
    *,
    molecule: str | None = None,
    target: str = "ibi",
    tolerance: float = DEFAULT_PAIR_TOLERANCE,
    overwrite: bool = False,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train a parameters → potential network (``target`` ``"ibi"`` or ``"pairs"``, see the
    module docstring) on the stage-A records of ``molecule`` among ``records`` (read with
    :func:`cgforge.database.learning.read_records`) and write the model to ``out``.

    Returns the manifest with out-of-fold metrics (RMSE of U in kJ/mol over the structural
    range, mean absolute error of the onset in nm) and, for pairs, the pairs used.
    """
    if target not in TARGETS:
        raise InputError(f"unknown target '{target}'; choose one of {', '.join(TARGETS)}")
    config = EnsembleTrainConfig() if config is None else config
    check_output_dir(out, overwrite=overwrite)
    needed = minimum_records(config.folds)
    data = parameter_data(records, molecule, needed=needed)
    records = data.records
    pairs: list[tuple[int, int]] = []
    if target == "ibi":
        inputs, chosen, groups = data.parameters, records, list(records.keys)
    else:
        pairs = find_pairs(
            records.d_aa,
            records.d_cg,
            tolerance=tolerance,
            molecules=records.molecules,
            temperature_K=records.temperature_K,
        )
        check_size(
            len(pairs),
            needed,
            records.source,
            f"pairs of stage-A records of {data.molecule} whose D_AA and D_CG agree within "
            f"{tolerance:.0%}",
        )
        i_idx = [i for i, _ in pairs]
        inputs = data.parameters[i_idx]
        chosen = records.take([j for _, j in pairs])
        groups = [records.keys[i] for i in i_idx]
    targets = PotentialTargets.from_records(chosen)
    outputs = np.column_stack([targets.u_kj_mol, targets.onset_nm])
    ensemble, report, domain, fold = fit_potential_ensemble(
        inputs,
        outputs,
        groups,
        config,
        x_floor=parameter_floor(inputs),
        progress=progress,
    )
    metrics = potential_metrics(report.oof[:, :-1], targets, fold)
    metrics["onset_mae_nm"] = float(np.mean(np.abs(report.oof[:, -1] - targets.onset_nm)))
    arrays, states, network = ensemble.state()
    kind = TARGETS[target]
    manifest: dict[str, Any] = {
        "kind": kind,
        "molecule": data.molecule,
        "grids": records.grids.to_dict(),
        "hyperparameters": config.to_dict(),
        "network": network,
        "features": {"parameter_names": list(data.names), "units": "cgforge (nm, rad, kJ/mol)"},
        "targets": {
            "quantity": "U(r) in kJ/mol on the potential grid, then the structural onset in nm",
            "target": target,
            "output_start_index": targets.start,
            "output_r_nm": [float(targets.r_nm[0]), float(targets.r_nm[-1])],
            "cutoff_nm": model_cutoff_nm(chosen.cutoff_nm, records.grids.potential_r_nm),
        },
        "ood": {
            "range_margin": RANGE_MARGIN,
            "mahalanobis_limit": domain.mahalanobis_limit,
            "residual_limit": domain.residual_limit,
        },
        "training_data": records.summary(),
        "metrics": {**report.summary(), **metrics},
        "provenance": collect(
            {
                "database": str(records.source),
                "molecule": data.molecule,
                "target": target,
                "tolerance": tolerance if target == "pairs" else None,
                "config": config.to_dict(),
            },
            seed=config.seed,
        ),
    }
    if target == "pairs":
        manifest["pairs"] = {
            "tolerance": tolerance,
            "n_pairs": len(pairs),
            "keys": [[records.keys[i], records.keys[j]] for i, j in pairs],
        }
    write_trained_model(
        out,
        manifest,
        report,
        arrays={
            **arrays,
            **domain.to_arrays(),
            "output_r_nm": targets.r_nm,
            "x_min": inputs.min(axis=0),
            "x_max": inputs.max(axis=0),
        },
        members=states,
        overwrite=overwrite,
    )
    return manifest


@dataclass
class ParamsModel:
    """A loaded parameters → potential model (kind ``params-to-potential`` or ``pairs``)."""

    loaded: LoadedModel
    ensemble: Ensemble
    domain: InputDomain
    names: tuple[str, ...]
    output_r_nm: NDArray[np.float64]
    cutoff_nm: float

    @classmethod
    def load(cls, model_dir: str | Path, grids: LearningGrids | None = None) -> ParamsModel:
        loaded = load_model_files(model_dir, kind=tuple(TARGETS.values()), grids=grids)
        manifest = loaded.manifest
        ensemble = Ensemble.from_model(loaded)
        names = tuple(manifest["features"]["parameter_names"])
        r_out = np.asarray(loaded.arrays["output_r_nm"], dtype=np.float64)
        if ensemble.x_std.mean.size != len(names) or ensemble.y_std.mean.size != r_out.size + 1:
            raise InputError(f"model {loaded.path} does not match its manifest; retrain it")
        return cls(
            loaded=loaded,
            ensemble=ensemble,
            domain=InputDomain.from_arrays(loaded.arrays),
            names=names,
            output_r_nm=r_out,
            cutoff_nm=float(manifest["targets"]["cutoff_nm"]),
        )

    @property
    def molecule(self) -> str:
        return str(self.loaded.manifest["molecule"])

    def predict(
        self, parameters: Mapping[str, float] | Sequence[float] | NDArray[np.float64]
    ) -> Prediction:
        """Predict the potential of one parameter vector (a name → value mapping or a vector
        in the model's order, cgforge units)."""
        x = parameter_vector_from(parameters, self.names)
        mean, std = self.ensemble.predict(x[None, :])
        u, u_std, onset = mean[0, :-1], std[0, :-1], float(mean[0, -1])
        reasons: list[str] = []
        lo, hi = self.loaded.arrays["x_min"], self.loaded.arrays["x_max"]
        pad = RANGE_MARGIN * (hi - lo)
        outside = np.flatnonzero((x < lo - pad - 1e-12) | (x > hi + pad + 1e-12))
        for i in outside[:5]:
            reasons.append(
                f"parameter {self.names[i]} = {x[i]:.4g} is outside the training range "
                f"{lo[i]:.4g}–{hi[i]:.4g}"
            )
        if outside.size > 5:
            reasons.append(f"… and {outside.size - 5} more parameters outside their range")
        reasons += self.domain.reasons(self.ensemble.x_std.forward(x[None, :]))
        r = self.output_r_nm
        start = int(np.clip(np.searchsorted(r, onset - 1e-9), 0, r.size - 1))
        start_nm = float(r[start])
        potential = simulation_table(r, u, start_nm, self.cutoff_nm)
        keep = (r >= start_nm - 1e-9) & (r <= self.cutoff_nm + 1e-9)
        return Prediction(
            potential=potential,
            r_nm=r[keep],
            u_kj_mol=u[keep],
            u_std_kj_mol=u_std[keep],
            start_nm=start_nm,
            out_of_distribution=bool(reasons),
            ood_reasons=tuple(reasons),
            inputs={
                "molecule": self.molecule,
                "parameters": dict(zip(self.names, x.tolist(), strict=True)),
            },
            model={
                "kind": self.loaded.kind,
                "path": str(self.loaded.path),
                "format_version": self.loaded.manifest["format_version"],
                "members": len(self.ensemble.members),
                "predicted_onset_nm": onset if math.isfinite(onset) else None,
            },
        )
