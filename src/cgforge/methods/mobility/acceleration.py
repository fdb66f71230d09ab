"""Acceleration-factor predictors: (bonded parameters, D_AA) → A = D_CG / D_AA of the IBI model.

With a predicted A, a structure-preserving CG model (IBI, or the ``params-to-potential``
network) can be given the all-atom dynamics by rescaling its time, t_AA = A · t_CG, the
strategy the data suggest while no pair potential preserves structure and dynamics at once.

Two predictors are trained on the stage-A records of **one molecule** (its parameter vectors
name its bonded types):

* a random forest (scikit-learn ``RandomForestRegressor``, ``n_trees`` trees, leaves of at least
  2 records, seeded);
* a k-fold network ensemble (:class:`~cgforge.methods.mobility.network.Ensemble`).

Inputs: the parameter vector (cgforge units) and log₁₀(D_AA / (m²/s)); target: log₁₀ A
(positive by construction, relative errors weighted alike). A random ``test_fraction`` (20 %)
of the records is held out before training; R² and the mean absolute error of A on it, for
both predictors and for predicting the training mean, go into the manifest and summary. The
saved predictors are the ones those metrics describe (trained on the other 80 %).

``forest.pkl`` is a pickle: load model directories only from sources you trust.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError
from cgforge.grids import LearningGrids
from cgforge.methods.mobility.dataset import (
    RecordSet,
    check_size,
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
    group_folds,
)
from cgforge.methods.mobility.params import parameter_floor, parameter_vector_from
from cgforge.provenance import collect

__all__ = [
    "KIND",
    "AccelerationModel",
    "acceleration_features",
    "fit_acceleration",
    "regression_metrics",
]

KIND = "acceleration"
FOREST = "forest.pkl"
#: Default share of records held out as the test set.
DEFAULT_TEST_FRACTION = 0.2
#: Default number of trees of the random forest.
DEFAULT_TREES = 300


def _sklearn_forest():
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        raise InputError(
            "the acceleration models need scikit-learn, which is not installed; "
            "pip install scikit-learn"
        ) from None
    return RandomForestRegressor


def acceleration_features(
    parameters: NDArray[np.float64], diffusion_aa_m2_s: NDArray[np.float64] | float
) -> NDArray[np.float64]:
    """Inputs (n, p + 1): the parameter vectors and log₁₀ D_AA/(m²/s)."""
    p = np.atleast_2d(np.asarray(parameters, dtype=np.float64))
    d = np.atleast_1d(np.asarray(diffusion_aa_m2_s, dtype=np.float64))
    return np.column_stack([p, np.log10(d)])


def regression_metrics(true: NDArray[np.float64], predicted: NDArray[np.float64]) -> dict:
    """R² (1 − SSE/SST about the mean of ``true``) and mean absolute error."""
    true = np.asarray(true, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    sst = float(np.sum((true - true.mean()) ** 2))
    sse = float(np.sum((true - predicted) ** 2))
    return {
        "r2": 1.0 - sse / sst if sst > 0 else math.nan,
        "mae": float(np.mean(np.abs(true - predicted))),
    }


def fit_acceleration(
    records: RecordSet,
    out: str | Path,
    config: EnsembleTrainConfig | None = None,
    *,
    molecule: str | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    n_trees: int = DEFAULT_TREES,
    overwrite: bool = False,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train the random forest and the network on the stage-A records of ``molecule`` among
    ``records`` (read with :func:`cgforge.database.learning.read_records`) and write the model
    directory ``out``; returns the manifest with the test-set metrics."""
    config = EnsembleTrainConfig(learning_curve=()) if config is None else config
    check_output_dir(out, overwrite=overwrite)
    if not 0.0 < test_fraction < 0.5:
        raise InputError(f"test fraction must lie in (0, 0.5), got {test_fraction!r}")
    if isinstance(n_trees, bool) or int(n_trees) != n_trees or n_trees < 1:
        raise InputError(f"number of trees must be a positive integer, got {n_trees!r}")
    forest_class = _sklearn_forest()
    needed = minimum_records(config.folds)
    data = parameter_data(records, molecule, needed=needed)
    records = data.records
    ok = np.flatnonzero(np.isfinite(records.d_aa) & np.isfinite(records.acceleration))
    check_size(ok.size, needed, records.source, f"stage-A records of {data.molecule} with D_AA")
    x = acceleration_features(data.parameters[ok], records.d_aa[ok])
    a = records.acceleration[ok]
    y = np.log10(a)
    keys = [records.keys[i] for i in ok]
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(ok.size)
    n_test = max(2, round(test_fraction * ok.size))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])

    forest = forest_class(
        n_estimators=int(n_trees), min_samples_leaf=2, random_state=config.seed, n_jobs=1
    )
    forest.fit(x[train], y[train])
    floor = np.append(parameter_floor(x[:, :-1]), 0.01)
    ensemble, report = Ensemble.fit(
        x[train],
        y[train],
        [keys[i] for i in train],
        config,
        x_floor=floor,
        y_floor=1e-3,
        progress=progress,
    )
    fold = group_folds([keys[i] for i in train], config.folds, config.seed)
    domain = InputDomain.fit(ensemble.x_std.forward(x[train]), fold)
    nn_mean, _ = ensemble.predict(x[test])
    predictions = {
        "random_forest": 10.0 ** forest.predict(x[test]),
        "network": 10.0 ** nn_mean[:, 0],
        "mean": np.full(test.size, float(np.mean(a[train]))),
    }
    test_metrics = {name: regression_metrics(a[test], p) for name, p in predictions.items()}
    arrays, states, network = ensemble.state()
    import sklearn

    manifest: dict[str, Any] = {
        "kind": KIND,
        "molecule": data.molecule,
        "grids": records.grids.to_dict(),
        "hyperparameters": config.to_dict(),
        "network": network,
        "forest": {
            "n_trees": int(n_trees),
            "min_samples_leaf": 2,
            "sklearn_version": sklearn.__version__,
        },
        "features": {
            "parameter_names": list(data.names),
            "columns": [*data.names, "log10_diffusion_aa_m2_s"],
        },
        "targets": {"quantity": "log10 of the acceleration factor D_CG/D_AA"},
        "ood": {
            "mahalanobis_limit": domain.mahalanobis_limit,
            "residual_limit": domain.residual_limit,
        },
        "training_data": {
            **records.summary(),
            "n_train": int(train.size),
            "n_test": int(test.size),
            "test_keys": [keys[i] for i in test],
            "acceleration_factor": [float(a.min()), float(a.max())],
        },
        "metrics": {"test": test_metrics, "network_folds": report.summary()},
        "provenance": collect(
            {
                "database": str(records.source),
                "molecule": data.molecule,
                "test_fraction": test_fraction,
                "n_trees": int(n_trees),
                "config": config.to_dict(),
            },
            seed=config.seed,
        ),
    }

    def write_forest(folder: Path) -> dict[str, str]:
        with open(folder / FOREST, "wb") as handle:
            pickle.dump(forest, handle, protocol=pickle.HIGHEST_PROTOCOL)
        return {"forest": FOREST}

    write_trained_model(
        out,
        manifest,
        report,
        arrays={
            **arrays,
            **domain.to_arrays(),
            "x_min": x[train].min(axis=0),
            "x_max": x[train].max(axis=0),
        },
        members=states,
        overwrite=overwrite,
        extra_files=write_forest,
    )
    return manifest


@dataclass
class AccelerationModel:
    """A loaded acceleration model: random forest and network ensemble."""

    loaded: LoadedModel
    forest: Any
    ensemble: Ensemble
    domain: InputDomain
    names: tuple[str, ...]

    @classmethod
    def load(cls, model_dir: str | Path, grids: LearningGrids | None = None) -> AccelerationModel:
        loaded = load_model_files(model_dir, kind=KIND, grids=grids)
        manifest = loaded.manifest
        _sklearn_forest()
        path = loaded.path / manifest["files"].get("forest", FOREST)
        if not path.is_file():
            raise InputError(f"model {loaded.path} lacks {path.name}; retrain it")
        with open(path, "rb") as handle:
            forest = pickle.load(handle)  # trusted model directories only (module docstring)
        ensemble = Ensemble.from_model(loaded)
        names = tuple(manifest["features"]["parameter_names"])
        if ensemble.x_std.mean.size != len(names) + 1:
            raise InputError(f"model {loaded.path} does not match its manifest; retrain it")
        return cls(
            loaded=loaded,
            forest=forest,
            ensemble=ensemble,
            domain=InputDomain.from_arrays(loaded.arrays),
            names=names,
        )

    def predict(
        self,
        parameters: Mapping[str, float] | Sequence[float] | NDArray[np.float64],
        diffusion_aa_m2_s: float,
    ) -> dict[str, Any]:
        """Acceleration factor D_CG/D_AA of one parameter vector and D_AA (m²/s):
        ``{"random_forest", "network", "network_log10_std", "out_of_distribution",
        "ood_reasons"}``."""
        d = float(diffusion_aa_m2_s)
        if not (math.isfinite(d) and d > 0):
            raise InputError(f"D_AA must be a positive number in m²/s, got {diffusion_aa_m2_s!r}")
        x = acceleration_features(parameter_vector_from(parameters, self.names)[None, :], d)
        mean, std = self.ensemble.predict(x)
        lo, hi = self.loaded.arrays["x_min"], self.loaded.arrays["x_max"]
        pad = 0.1 * (hi - lo)
        columns = [*self.names, "log10 D_AA"]
        reasons = [
            f"{columns[i]} = {x[0, i]:.4g} is outside the training range {lo[i]:.4g}–{hi[i]:.4g}"
            for i in np.flatnonzero((x[0] < lo - pad - 1e-12) | (x[0] > hi + pad + 1e-12))
        ]
        reasons += self.domain.reasons(self.ensemble.x_std.forward(x))
        return {
            "random_forest": float(10.0 ** self.forest.predict(x)[0]),
            "network": float(10.0 ** mean[0, 0]),
            "network_log10_std": float(std[0, 0]),
            "out_of_distribution": bool(reasons),
            "ood_reasons": reasons,
        }
