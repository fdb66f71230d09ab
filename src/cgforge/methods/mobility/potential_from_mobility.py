"""The mobility network: (bead mass, D, g(r)) → a CG pair potential U(r).

Trained on every usable stage-A and stage-B record of a database
(:func:`~cgforge.methods.mobility.dataset.mobility_data`): the inputs are the bead mass,
the CG diffusion coefficient and the CG RDF a potential produced, the target is that potential.
Used on an all-atom reference (its bead mass, its D_AA and its centre-of-mass g(r)) it predicts a
potential that should give the CG beads the all-atom mobility at close to the all-atom
structure: the trade-off that no pair potential at the true mass can avoid when IBI
accelerates the dynamics.

The model is a k-fold :class:`~cgforge.methods.mobility.network.Ensemble`; its spread is the
uncertainty band. A prediction is flagged out of distribution (``Prediction.ood_reasons``) when

* the bead mass or D lies outside the training range widened by :data:`RANGE_MARGIN` of its
  span in log₁₀ (at least 0.02 decades), or the temperature (when given) outside the training
  temperatures ± max(5 K, 10 % of their span);
* the input's g(r) becomes non-zero below the smallest onset of the training data;
* the standardised input lies outside the :class:`~cgforge.methods.mobility.network.InputDomain`
  of the training inputs (Mahalanobis distance or off-subspace residual beyond 1.25 × the
  largest held-out training value).

The predicted table is cut at the model's cutoff: the largest potential-grid point not beyond
the median cutoff of the training records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError
from cgforge.grids import LearningGrids, resample_rdf
from cgforge.methods.mobility.dataset import (
    G_STRUCTURAL,
    PotentialTargets,
    RecordSet,
    mobility_data,
    mobility_feature_floor,
    mobility_features,
    onset_index,
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
    FitReport,
    InputDomain,
    TrainProgress,
    group_folds,
)
from cgforge.methods.mobility.prediction import Prediction, simulation_table
from cgforge.provenance import collect

__all__ = [
    "KIND",
    "RANGE_MARGIN",
    "MobilityModel",
    "fit_mobility",
    "fit_potential_ensemble",
    "model_cutoff_nm",
    "potential_metrics",
    "range_reasons",
]

KIND = "mobility"
#: Fraction of the training span (log₁₀) by which mass and D may exceed it before a flag.
RANGE_MARGIN = 0.1
#: Relative output standardisation floor (of the largest output standard deviation).
OUTPUT_FLOOR = 1.0e-3


def model_cutoff_nm(cutoffs: NDArray[np.float64], grid: NDArray[np.float64]) -> float:
    """Largest grid point not beyond the median of ``cutoffs`` (nm)."""
    median = float(np.median(cutoffs))
    return float(grid[max(int(np.searchsorted(grid, median + 1e-9)) - 1, 0)])


def potential_metrics(
    predicted: NDArray[np.float64],
    targets: PotentialTargets,
    fold: NDArray[np.int64],
) -> dict[str, float]:
    """Out-of-fold accuracy over each record's structural range (r ≥ its onset), kJ/mol.

    ``rmse_kj_mol`` of the ensemble's held-out predictions, ``baseline_rmse_kj_mol`` of
    predicting the mean potential of the other folds, ``r2`` = 1 − SSE/SSE(baseline) and
    ``mae_kj_mol``.
    """
    mask = targets.r_nm[None, :] >= targets.onset_nm[:, None] - 1e-9
    y = targets.u_kj_mol
    base = np.zeros_like(y)
    for f in np.unique(fold):
        base[fold == f] = y[fold != f].mean(axis=0)
    err = (predicted - y)[mask]
    err_base = (base - y)[mask]
    sse, sse_base = float(np.sum(err**2)), float(np.sum(err_base**2))
    return {
        "rmse_kj_mol": math.sqrt(sse / err.size),
        "mae_kj_mol": float(np.mean(np.abs(err))),
        "baseline_rmse_kj_mol": math.sqrt(sse_base / err.size),
        "r2": 1.0 - sse / sse_base if sse_base > 0 else math.nan,
    }


def fit_potential_ensemble(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    groups: list[str],
    config: EnsembleTrainConfig,
    *,
    x_floor: float | NDArray[np.float64],
    progress: TrainProgress | None,
) -> tuple[Ensemble, FitReport, InputDomain, NDArray[np.int64]]:
    """Train an ensemble on potential targets and fit its input domain; returns
    ``(ensemble, report, domain, fold index of every record)``."""
    y_floor = OUTPUT_FLOOR * max(float(np.max(np.std(y, axis=0))), 1e-9)
    ensemble, report = Ensemble.fit(
        x, y, groups, config, x_floor=x_floor, y_floor=y_floor, progress=progress
    )
    fold = group_folds(groups, config.folds, config.seed)
    domain = InputDomain.fit(ensemble.x_std.forward(x), fold)
    return ensemble, report, domain, fold


def fit_mobility(
    records: RecordSet,
    out: str | Path,
    config: EnsembleTrainConfig | None = None,
    *,
    overwrite: bool = False,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train the mobility network on ``records`` (read from a database with
    :func:`cgforge.database.learning.read_records`; :func:`cgforge.workflows.train.train_mobility`
    reads and trains in one call) and write the model directory ``out``.

    Returns the manifest (see :mod:`cgforge.methods.mobility.model_io` for the layout) with the
    training summary: validation losses (standardised MSE) of every member, the loss of
    predicting the mean, the learning curve and out-of-fold potential errors in kJ/mol.
    """
    config = EnsembleTrainConfig() if config is None else config
    check_output_dir(out, overwrite=overwrite)
    data = mobility_data(records, config.folds)
    records, targets = data.records, data.targets  # the usable ones
    ensemble, report, domain, fold = fit_potential_ensemble(
        data.x,
        targets.u_kj_mol,
        records.groups,
        config,
        x_floor=mobility_feature_floor(records.grids.n_rdf),
        progress=progress,
    )
    arrays, states, network = ensemble.state()
    grid = records.grids.potential_r_nm
    manifest: dict[str, Any] = {
        "kind": KIND,
        "grids": records.grids.to_dict(),
        "hyperparameters": config.to_dict(),
        "network": network,
        "features": {
            "columns": ["log10_mass_amu", "log10_diffusion_m2_s", "g(r) on the rdf grid"],
            "rdf": "g_cg of the record (stage A: at the molecular mass; stage B: other mass)",
            "diffusion": "diffusion_cg_m2_s",
        },
        "targets": {
            "quantity": "U(r) in kJ/mol on the potential grid",
            "output_start_index": targets.start,
            "output_r_nm": [float(targets.r_nm[0]), float(targets.r_nm[-1])],
            "g_structural": G_STRUCTURAL,
            "below_onset": "C1 linear continuation from the onset (see dataset docstring)",
            "cutoff_nm": model_cutoff_nm(records.cutoff_nm, grid),
        },
        "ood": {
            "range_margin_log10": RANGE_MARGIN,
            "mahalanobis_limit": domain.mahalanobis_limit,
            "residual_limit": domain.residual_limit,
            "n_components": int(domain.components.shape[0]),
        },
        "training_data": records.summary(),
        "metrics": {**report.summary(), **potential_metrics(report.oof, targets, fold)},
        "provenance": collect(
            {"database": records.source, "config": config.to_dict()}, seed=config.seed
        ),
    }
    write_trained_model(
        out,
        manifest,
        report,
        arrays={**arrays, **domain.to_arrays(), "output_r_nm": targets.r_nm},
        members=states,
        overwrite=overwrite,
    )
    return manifest


def _span(value: Any) -> tuple[float, float] | None:
    if not value or len(value) != 2:
        return None
    return float(value[0]), float(value[1])


def range_reasons(
    name: str, value: float, span: tuple[float, float] | None, unit: str, *, log: bool
) -> list[str]:
    """A reason when ``value`` lies outside ``span`` widened by :data:`RANGE_MARGIN`."""
    if span is None or not math.isfinite(value):
        return []
    lo, hi = span
    if log:
        a, b, v = math.log10(lo), math.log10(hi), math.log10(value)
        pad = max(RANGE_MARGIN * (b - a), 0.02)
    else:
        a, b, v = lo, hi, value
        pad = max(RANGE_MARGIN * (b - a), 5.0)
    if a - pad <= v <= b + pad:
        return []
    return [f"{name} {value:.4g} {unit} is outside the training range {lo:.4g}–{hi:.4g} {unit}"]


@dataclass
class MobilityModel:
    """A loaded mobility model (use :meth:`load`)."""

    loaded: LoadedModel
    ensemble: Ensemble
    domain: InputDomain
    output_r_nm: NDArray[np.float64]
    cutoff_nm: float

    @classmethod
    def load(cls, model_dir: str | Path, grids: LearningGrids | None = None) -> MobilityModel:
        """Read a mobility model directory (checks format, version, kind and, if given, grids)."""
        loaded = load_model_files(model_dir, kind=KIND, grids=grids)
        manifest = loaded.manifest
        ensemble = Ensemble.from_model(loaded)
        grids_model = loaded.grids
        r_out = np.asarray(loaded.arrays.get("output_r_nm", []), dtype=np.float64)
        start = int(manifest["targets"]["output_start_index"])
        expected = grids_model.potential_r_nm[start : start + r_out.size]
        if (
            ensemble.x_std.mean.size != 2 + grids_model.n_rdf
            or r_out.size != ensemble.y_std.mean.size
            or not np.allclose(r_out, expected, atol=1e-9)
        ):
            raise InputError(
                f"model {loaded.path} does not match its own learning grids; retrain it"
            )
        return cls(
            loaded=loaded,
            ensemble=ensemble,
            domain=InputDomain.from_arrays(loaded.arrays),
            output_r_nm=r_out,
            cutoff_nm=float(manifest["targets"]["cutoff_nm"]),
        )

    @property
    def grids(self) -> LearningGrids:
        return self.loaded.grids

    @property
    def training_data(self) -> dict[str, Any]:
        return self.loaded.manifest.get("training_data", {})

    def predict(
        self,
        mass_amu: float,
        diffusion_m2_s: float,
        rdf: Any,
        *,
        temperature_K: float | None = None,
    ) -> Prediction:
        """Predict U(r) for a bead mass (amu), a diffusion coefficient (m²/s) and an RDF
        (:class:`~cgforge.observables.rdf.RDFResult` or ``(r_nm, g)``); see the module
        docstring for the table and the out-of-distribution flag."""
        mass, diffusion = float(mass_amu), float(diffusion_m2_s)
        if not (math.isfinite(mass) and mass > 0):
            raise InputError(f"bead mass must be a positive number of amu, got {mass_amu!r}")
        if not (math.isfinite(diffusion) and diffusion > 0):
            raise InputError(
                f"diffusion coefficient must be a positive number in m²/s, got {diffusion_m2_s!r}"
            )
        resampled = resample_rdf(rdf, self.grids)
        g = resampled.g
        onset = onset_index(g, self.grids)
        if onset is None:
            raise InputError(
                f"the RDF never exceeds g = {G_STRUCTURAL}; give the g(r) of a liquid (r in nm)"
            )
        x = mobility_features(mass, diffusion, g[None, :])
        mean, std = self.ensemble.predict(x)
        data = self.training_data
        reasons = [
            *range_reasons("bead mass", mass, _span(data.get("mass_amu")), "amu", log=True),
            *range_reasons("D", diffusion, _span(data.get("diffusion_cg_m2_s")), "m²/s", log=True),
        ]
        if temperature_K is not None:
            reasons += range_reasons(
                "temperature",
                float(temperature_K),
                _span(data.get("temperature_K")),
                "K",
                log=False,
            )
        start_index = int(self.loaded.manifest["targets"]["output_start_index"])
        if onset < start_index:
            reasons.append(
                f"g(r) exceeds {G_STRUCTURAL} from {self.grids.potential_r_nm[onset]:.3f} nm on, "
                f"below the training data's smallest onset {self.output_r_nm[0]:.3f} nm"
            )
        reasons += self.domain.reasons(self.ensemble.x_std.forward(x))
        start_nm = float(self.grids.potential_r_nm[max(onset, start_index)])
        potential = simulation_table(self.output_r_nm, mean[0], start_nm, self.cutoff_nm)
        keep = (self.output_r_nm >= start_nm - 1e-9) & (self.output_r_nm <= self.cutoff_nm + 1e-9)
        return Prediction(
            potential=potential,
            r_nm=self.output_r_nm[keep],
            u_kj_mol=mean[0][keep],
            u_std_kj_mol=std[0][keep],
            start_nm=start_nm,
            out_of_distribution=bool(reasons),
            ood_reasons=tuple(reasons),
            inputs={
                "mass_amu": mass,
                "diffusion_m2_s": diffusion,
                "temperature_K": None if temperature_K is None else float(temperature_K),
                "rdf_onset_nm": float(self.grids.potential_r_nm[onset]),
                "rdf_beyond_data": bool(resampled.extended),
            },
            model={
                "kind": KIND,
                "path": str(self.loaded.path),
                "format_version": self.loaded.manifest["format_version"],
                "members": len(self.ensemble.members),
            },
        )
