"""k-fold ensembles of small PyTorch MLPs, standardisation, learning curves and an input domain.

Every network model of :mod:`cgforge.methods.mobility` is an :class:`Ensemble`: ``folds``
multilayer perceptrons (SiLU activations), member *i* trained on every fold but *i* and
early-stopped on fold *i* (the weights of the epoch with the lowest validation loss are kept;
training stops after ``patience`` epochs without improvement). Predictions are the member mean;
the member standard deviation is the reported uncertainty.

* Inputs and outputs are standardised per column with the training set's mean and standard
  deviation (floored, so constant columns stay finite); the statistics are part of the model.
* Outputs of more than :data:`MIN_OUTPUTS_FOR_BASIS` columns (potentials on a grid) are
  predicted as coefficients of a fixed basis: the leading right-singular vectors of the member's
  standardised training targets that hold ``output_variance`` of their energy. The networks then
  produce only shapes seen in the data, which keeps predicted potentials smooth.
* Losses are mean squared errors in standardised units (1.0 ≈ predicting the mean).
* Folds are drawn by group (:func:`group_folds`): records that share a potential (a stage-A
  record and its stage-B copies) never sit on both sides of a split.
* Seeded and deterministic on CPU for a fixed number of torch threads: member *i* initialises
  and shuffles with ``seed + i`` without touching torch's global random state.

:class:`InputDomain` flags inputs unlike the training data (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError, check_settings

if TYPE_CHECKING:
    from cgforge.methods.mobility.model_io import LoadedModel

__all__ = [
    "Ensemble",
    "EnsembleTrainConfig",
    "FitReport",
    "InputDomain",
    "Standardizer",
    "group_folds",
]

#: (label, done, total) — e.g. ("member 2/5", epoch, max_epochs).
TrainProgress = Callable[[str, int, int], None]
#: Output width from which a basis of output shapes is used.
MIN_OUTPUTS_FOR_BASIS = 8


@dataclass(frozen=True)
class EnsembleTrainConfig:
    """Hyperparameters of an ensemble (see the module docstring).

    ``hidden``: widths of the hidden layers; ``learning_rate`` of Adam; ``weight_decay`` (L2);
    ``batch_size``; ``max_epochs`` and early-stopping ``patience`` (epochs); ``output_variance``
    kept by the output basis; ``learning_curve``: training-set fractions of the learning curve
    (empty: none; 1.0 reuses the ensemble's members).
    """

    folds: int = 5
    hidden: tuple[int, ...] = (128, 128)
    learning_rate: float = 1.0e-3
    weight_decay: float = 1.0e-6
    batch_size: int = 32
    max_epochs: int = 2000
    patience: int = 100
    seed: int = 0
    output_variance: float = 0.99999
    learning_curve: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "learning_curve", tuple(float(f) for f in self.learning_curve))
        checks = {
            "folds": isinstance(self.folds, int) and self.folds >= 2,
            "hidden": len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
            "learning_rate": math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "weight_decay": math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
            "max_epochs": isinstance(self.max_epochs, int) and self.max_epochs >= 1,
            "patience": isinstance(self.patience, int) and self.patience >= 1,
            "seed": isinstance(self.seed, int) and self.seed >= 0,
            "output_variance": 0.0 < self.output_variance <= 1.0,
            "learning_curve": all(0.0 < f <= 1.0 for f in self.learning_curve),
        }
        check_settings(self, checks, "training")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hidden"] = list(self.hidden)
        data["learning_curve"] = list(self.learning_curve)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleTrainConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Standardizer:
    """Per-column affine map z = (x − mean) / scale, scale = max(std, floor)."""

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]

    @classmethod
    def fit(cls, x: NDArray[np.float64], floor: float | NDArray[np.float64]) -> Standardizer:
        x = np.asarray(x, dtype=np.float64)
        return cls(x.mean(axis=0), np.maximum(x.std(axis=0), floor))

    def forward(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale

    def inverse(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(z, dtype=np.float64) * self.scale + self.mean


def group_folds(groups: Sequence[str], folds: int, seed: int) -> NDArray[np.int64]:
    """Fold index (0 … folds−1) of every sample; all samples of one group share a fold.

    Groups are shuffled with ``seed`` and each goes to the fold with the fewest samples so far,
    which balances fold sizes.
    """
    names = sorted(set(groups))
    if len(names) < folds:
        raise InputError(
            f"{len(names)} independent potentials cannot fill {folds} folds; use fewer folds "
            "or a larger database"
        )
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    counts = {name: 0 for name in names}
    for g in groups:
        counts[g] += 1
    sizes = np.zeros(folds, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for name in order:
        f = int(np.argmin(sizes))
        fold_of[name] = f
        sizes[f] += counts[name]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


# ---------------------------------------------------------------------- torch parts
def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a declared dependency of the ml extra
        raise InputError(
            "the learned models need PyTorch; install cgforge with the ml extra "
            "(pip install 'cgforge[ml]')"
        ) from None
    return torch


def _mlp(n_in: int, hidden: Sequence[int], n_coef: int, basis: NDArray[np.float64] | None):
    torch = _torch()
    nn = torch.nn

    class MLP(nn.Module):
        """Dense SiLU network; outputs ``coefficients @ basis`` when a basis is given."""

        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = n_in
            for h in hidden:
                layers += [nn.Linear(width, h), nn.SiLU()]
                width = h
            layers.append(nn.Linear(width, n_coef))
            self.net = nn.Sequential(*layers)
            if basis is not None:
                self.register_buffer("basis", torch.as_tensor(basis, dtype=torch.float32))
            else:
                self.basis = None

        def forward(self, x):
            out = self.net(x)
            return out if self.basis is None else out @ self.basis

    return MLP()


def _output_basis(y: NDArray[np.float64], variance: float) -> NDArray[np.float64] | None:
    """Leading right-singular vectors of ``y`` holding ``variance`` of its energy (or None)."""
    if y.shape[1] < MIN_OUTPUTS_FOR_BASIS or variance >= 1.0:
        return None
    _, s, vt = np.linalg.svd(y, full_matrices=False)
    energy = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
    k = int(np.searchsorted(energy, variance) + 1)
    return vt[: min(k, vt.shape[0])]


def _snapshot(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class MemberResult:
    """One trained member: its network, training history and losses (standardised MSE)."""

    model: Any
    history: list[tuple[int, float, float]]
    best_epoch: int
    initial_val_loss: float
    best_val_loss: float
    train_loss: float
    n_train: int
    n_val: int


def _train_member(
    x_tr: NDArray[np.float64],
    y_tr: NDArray[np.float64],
    x_va: NDArray[np.float64],
    y_va: NDArray[np.float64],
    config: EnsembleTrainConfig,
    seed: int,
    label: str,
    progress: TrainProgress | None,
) -> MemberResult:
    torch = _torch()
    basis = _output_basis(y_tr, config.output_variance)
    n_coef = y_tr.shape[1] if basis is None else basis.shape[0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _mlp(x_tr.shape[1], config.hidden, n_coef, basis)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x_tr, dtype=torch.float32)
    yt = torch.as_tensor(y_tr, dtype=torch.float32)
    xv = torch.as_tensor(x_va, dtype=torch.float32)
    yv = torch.as_tensor(y_va, dtype=torch.float32)
    opt = torch.optim.Adam(
        model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        foreach=False,  # faster for small tensors, and one code path on every machine
    )
    loss_fn = torch.nn.MSELoss()

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            value = float(loss_fn(model(xv), yv))
        model.train()
        return value

    initial = val_loss()
    best, best_epoch, best_state, wait = initial, 0, _snapshot(model), 0
    history: list[tuple[int, float, float]] = [(0, math.nan, initial)]
    n = xt.shape[0]
    batch = min(config.batch_size, n)
    for epoch in range(1, config.max_epochs + 1):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch):
            idx = perm[start : start + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        current = val_loss()
        history.append((epoch, total / n, current))
        if current < best * (1.0 - 1e-4):
            best, best_epoch, best_state, wait = current, epoch, _snapshot(model), 0
        else:
            wait += 1
        if progress is not None and (epoch % 10 == 0 or epoch == config.max_epochs):
            progress(label, epoch, config.max_epochs)
        if wait >= config.patience:
            break
    if progress is not None:
        progress(label, config.max_epochs, config.max_epochs)
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        train_loss = float(loss_fn(model(xt), yt))
    return MemberResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        initial_val_loss=initial,
        best_val_loss=best,
        train_loss=train_loss,
        n_train=int(x_tr.shape[0]),
        n_val=int(x_va.shape[0]),
    )


@dataclass
class FitReport:
    """What training an ensemble measured (losses are standardised MSE).

    ``members``: per fold ``{fold, n_train, n_val, best_epoch, epochs, initial_val_loss,
    val_loss, train_loss, baseline_val_loss}`` (baseline: predicting the fold's training mean);
    ``oof``: out-of-fold predictions (de-standardised) of every sample; ``learning_curve``: rows
    ``{fraction, n_train, val_loss_mean, val_loss_std, baseline_val_loss}``; ``history``: rows
    ``(member, epoch, train_loss, val_loss)``.
    """

    members: list[dict[str, Any]]
    oof: NDArray[np.float64]
    learning_curve: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[int, int, float, float]] = field(default_factory=list)

    @property
    def val_loss(self) -> float:
        return float(np.mean([m["val_loss"] for m in self.members]))

    @property
    def baseline_val_loss(self) -> float:
        return float(np.mean([m["baseline_val_loss"] for m in self.members]))

    @property
    def initial_val_loss(self) -> float:
        return float(np.mean([m["initial_val_loss"] for m in self.members]))

    def summary(self) -> dict[str, Any]:
        return {
            "val_loss": self.val_loss,
            "baseline_val_loss": self.baseline_val_loss,
            "initial_val_loss": self.initial_val_loss,
            "members": self.members,
            "learning_curve": self.learning_curve,
        }


class Ensemble:
    """A trained k-fold ensemble with its input and output standardisation."""

    def __init__(
        self,
        members: list[Any],
        x_std: Standardizer,
        y_std: Standardizer,
        config: EnsembleTrainConfig,
    ) -> None:
        self.members = members
        self.x_std = x_std
        self.y_std = y_std
        self.config = config

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        x: NDArray[np.float64],
        y: NDArray[np.float64],
        groups: Sequence[str],
        config: EnsembleTrainConfig,
        *,
        x_floor: float | NDArray[np.float64],
        y_floor: float | NDArray[np.float64],
        progress: TrainProgress | None = None,
    ) -> tuple[Ensemble, FitReport]:
        """Train ``config.folds`` members on ``x`` (n, p) → ``y`` (n, q); returns the
        ensemble and a :class:`FitReport` (with the learning curve if configured)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise InputError("training data hold non-finite values; check the database records")
        x_std = Standardizer.fit(x, x_floor)
        y_std = Standardizer.fit(y, y_floor)
        zx, zy = x_std.forward(x), y_std.forward(y)
        fold = group_folds(groups, config.folds, config.seed)
        members, rows, history = [], [], []
        oof = np.zeros_like(y)
        curve_fractions = sorted(set(config.learning_curve))
        curve: dict[float, list[tuple[int, float]]] = {f: [] for f in curve_fractions}
        baselines = []
        for i in range(config.folds):
            tr, va = np.flatnonzero(fold != i), np.flatnonzero(fold == i)
            label = f"member {i + 1}/{config.folds}"
            result = _train_member(
                zx[tr], zy[tr], zx[va], zy[va], config, config.seed + i, label, progress
            )
            baseline = float(np.mean((zy[va] - zy[tr].mean(axis=0)) ** 2))
            baselines.append(baseline)
            members.append(result.model)
            history += [(i, e, tl, vl) for e, tl, vl in result.history]
            rows.append(
                {
                    "fold": i,
                    "n_train": result.n_train,
                    "n_val": result.n_val,
                    "best_epoch": result.best_epoch,
                    "epochs": result.history[-1][0],
                    "initial_val_loss": result.initial_val_loss,
                    "val_loss": result.best_val_loss,
                    "train_loss": result.train_loss,
                    "baseline_val_loss": baseline,
                }
            )
            oof[va] = y_std.inverse(_run(result.model, zx[va]))
            for f in curve_fractions:
                if f >= 1.0:
                    curve[f].append((result.n_train, result.best_val_loss))
                    continue
                rng = np.random.default_rng(config.seed + 1000 * i + round(1000 * f))
                n_sub = max(4, round(f * tr.size))
                sub = np.sort(rng.choice(tr, size=min(n_sub, tr.size), replace=False))
                part = _train_member(
                    zx[sub],
                    zy[sub],
                    zx[va],
                    zy[va],
                    config,
                    config.seed + i,
                    f"{label}, {f:.0%} of data",
                    progress,
                )
                curve[f].append((part.n_train, part.best_val_loss))
        learning_curve = [
            {
                "fraction": f,
                "n_train": float(np.mean([n for n, _ in curve[f]])),
                "val_loss_mean": float(np.mean([v for _, v in curve[f]])),
                "val_loss_std": float(np.std([v for _, v in curve[f]])),
                "baseline_val_loss": float(np.mean(baselines)),
            }
            for f in curve_fractions
        ]
        report = FitReport(members=rows, oof=oof, learning_curve=learning_curve, history=history)
        return cls(members, x_std, y_std, config), report

    # ------------------------------------------------------------------ prediction
    def predict_members(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """De-standardised predictions of every member, (members, n, q)."""
        z = self.x_std.forward(np.atleast_2d(np.asarray(x, dtype=np.float64)))
        return np.stack([self.y_std.inverse(_run(m, z)) for m in self.members])

    def predict(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Member mean and standard deviation, each (n, q), in the units of the targets."""
        every = self.predict_members(x)
        return every.mean(axis=0), every.std(axis=0)

    # ------------------------------------------------------------------ persistence
    def state(self) -> tuple[dict[str, NDArray[np.float64]], list[dict[str, Any]], dict[str, Any]]:
        """``(arrays, member state dicts, manifest entry)`` for :mod:`model_io`."""
        arrays = {
            "x_mean": self.x_std.mean,
            "x_scale": self.x_std.scale,
            "y_mean": self.y_std.mean,
            "y_scale": self.y_std.scale,
        }
        meta = {
            "n_inputs": int(self.x_std.mean.size),
            "n_outputs": int(self.y_std.mean.size),
            "hidden": list(self.config.hidden),
            "members": [
                {"n_coefficients": int(_n_coef(m)), "has_basis": m.basis is not None}
                for m in self.members
            ],
        }
        return arrays, [m.state_dict() for m in self.members], meta

    @classmethod
    def from_state(
        cls,
        arrays: dict[str, NDArray[np.float64]],
        states: list[dict[str, Any]],
        meta: dict[str, Any],
        config: EnsembleTrainConfig,
    ) -> Ensemble:
        """Rebuild an ensemble from :meth:`state` (raises InputError on a mismatch)."""
        try:
            x_std = Standardizer(arrays["x_mean"], arrays["x_scale"])
            y_std = Standardizer(arrays["y_mean"], arrays["y_scale"])
            n_in, n_out = int(meta["n_inputs"]), int(meta["n_outputs"])
            infos = meta["members"]
        except KeyError as exc:
            raise InputError(f"the model lacks {exc}; retrain it") from None
        if x_std.mean.size != n_in or y_std.mean.size != n_out or len(infos) != len(states):
            raise InputError("the model's arrays do not match its manifest; retrain it")
        members = []
        for info, state in zip(infos, states, strict=True):
            basis = np.zeros((info["n_coefficients"], n_out)) if info["has_basis"] else None
            n_coef = info["n_coefficients"] if info["has_basis"] else n_out
            model = _mlp(n_in, meta["hidden"], n_coef, basis)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise InputError(f"the model's weights do not fit its manifest ({exc})") from None
            model.eval()
            members.append(model)
        return cls(members, x_std, y_std, config)

    @classmethod
    def from_model(cls, loaded: LoadedModel) -> Ensemble:
        """The ensemble of a model directory read with
        :func:`~cgforge.methods.mobility.model_io.load_model_files`: its member weights and
        arrays, with the manifest's ``hyperparameters`` and ``network`` entries."""
        config = EnsembleTrainConfig.from_dict(loaded.manifest["hyperparameters"])
        return cls.from_state(loaded.arrays, loaded.members, loaded.manifest["network"], config)


def _n_coef(model: Any) -> int:
    return int(model.net[-1].out_features)


def _run(model: Any, z: NDArray[np.float64]) -> NDArray[np.float64]:
    torch = _torch()
    with torch.no_grad():
        return model(torch.as_tensor(z, dtype=torch.float32)).numpy().astype(np.float64)


# ---------------------------------------------------------------------- input domain
@dataclass(frozen=True)
class InputDomain:
    """Where the (standardised) training inputs lie, to flag inputs far outside it.

    Two statistics of a standardised input z, with the mean z̄, principal axes v_k and
    variances λ_k of the training inputs that hold ``variance`` (default 99 %) of their variance
    (y = z − z̄):

    * the Mahalanobis distance in that subspace, d = √Σ_k (y·v_k)² / λ_k;
    * the residual off it, q = |y − Σ_k (y·v_k) v_k|² / p (p features).

    Each limit is ``factor`` (default 1.25) times the largest value of a *held-out* training
    record: for every fold the axes are fitted on the other folds and the fold's records are
    scored. An input beyond either limit is out of distribution: training records themselves
    pass by construction up to the factor, and an input as far from the data as the farthest
    held-out record, times 1.25, is flagged.
    """

    center: NDArray[np.float64]
    components: NDArray[np.float64]
    variances: NDArray[np.float64]
    mahalanobis_limit: float
    residual_limit: float

    @staticmethod
    def _axes(
        z: NDArray[np.float64], variance: float
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        center = z.mean(axis=0)
        centred = z - center
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        lam = s**2 / max(z.shape[0] - 1, 1)
        share = np.cumsum(lam) / max(float(np.sum(lam)), 1e-300)
        k = int(np.searchsorted(share, variance) + 1)
        k = max(1, min(k, int(np.count_nonzero(lam > 1e-12 * max(lam[0], 1e-300)))))
        return center, vt[:k], lam[:k]

    @staticmethod
    def _score(
        z: NDArray[np.float64],
        center: NDArray[np.float64],
        comps: NDArray[np.float64],
        lam: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        z = z - center
        proj = z @ comps.T
        d = np.sqrt(np.sum(proj**2 / lam, axis=1))
        resid = z - proj @ comps
        return d, np.sum(resid**2, axis=1) / z.shape[1]

    @classmethod
    def fit(
        cls,
        z: NDArray[np.float64],
        fold: NDArray[np.int64],
        *,
        variance: float = 0.99,
        factor: float = 1.25,
    ) -> InputDomain:
        """Fit on standardised training inputs ``z`` (n, p) with their fold indices."""
        d_out, q_out = [], []
        for f in np.unique(fold):
            inner, outer = fold != f, fold == f
            center, comps, lam = cls._axes(z[inner], variance)
            d, q = cls._score(z[outer], center, comps, lam)
            d_out.append(d)
            q_out.append(q)
        center, comps, lam = cls._axes(z, variance)
        return cls(
            center=center,
            components=comps,
            variances=lam,
            mahalanobis_limit=factor * float(np.max(np.concatenate(d_out))),
            residual_limit=factor * float(np.max(np.concatenate(q_out))),
        )

    def scores(self, z: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mahalanobis distances and residuals of standardised inputs (n, p)."""
        return self._score(np.atleast_2d(z), self.center, self.components, self.variances)

    def reasons(self, z: NDArray[np.float64]) -> list[str]:
        """Why one standardised input lies outside the domain (empty if it does not)."""
        d, q = self.scores(z)
        out = []
        if d[0] > self.mahalanobis_limit:
            out.append(
                f"input is far from the training data along its principal axes (Mahalanobis "
                f"distance {d[0]:.3g} > limit {self.mahalanobis_limit:.3g})"
            )
        if q[0] > self.residual_limit:
            out.append(
                f"input has a shape the training data do not span (residual {q[0]:.3g} > "
                f"limit {self.residual_limit:.3g})"
            )
        return out

    def to_arrays(self, prefix: str = "ood_") -> dict[str, NDArray[np.float64]]:
        return {
            f"{prefix}center": self.center,
            f"{prefix}components": self.components,
            f"{prefix}variances": self.variances,
            f"{prefix}limits": np.array([self.mahalanobis_limit, self.residual_limit]),
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, NDArray[np.float64]], prefix: str = "ood_"
    ) -> InputDomain:
        try:
            limits = arrays[f"{prefix}limits"]
            return cls(
                center=arrays[f"{prefix}center"],
                components=arrays[f"{prefix}components"],
                variances=arrays[f"{prefix}variances"],
                mahalanobis_limit=float(limits[0]),
                residual_limit=float(limits[1]),
            )
        except KeyError as exc:
            raise InputError(f"the model lacks its input-domain array {exc}; retrain it") from None
