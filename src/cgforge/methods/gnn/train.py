"""Force-matching training of torch energy models (SchNet, HIP-NN-TS) on mapped forces.

**Loss.** For a batch of frames the force-matching loss is the mean over beads of the squared
error of the force vector,

    L_F = (1 / Σ N) Σ_frames Σ_I |F_I^model − F_I^mapped|²      in (kJ/mol/nm)²,

with F^model = −∇E (autograd). Its minimum over *all* functions of the CG coordinates is the
**noise floor** σ² = ⟨|F^mapped − F^PMF|²⟩: mapped forces scatter around the mean force F^PMF
because the atomistic degrees of freedom they average over are not fixed by the CG
configuration. The loss of any model is σ² + ⟨|F^model − F^PMF|²⟩.

**Noise-floor estimate.** No model-free estimator of σ² exists for a single trajectory (two
frames never share a CG configuration). cgforge reports the validation loss of the best
*pair* force field, the linear MS-CG fit of :mod:`cgforge.methods.force_matching` on the same
training frames and cutoff (cubic B-splines, default smoothness regulariser), evaluated on the
same validation frames (:func:`pair_noise_floor`). By the decomposition above it is an **upper
bound** on σ², tight when the PMF of the liquid is pairwise additive; a network that reaches it
has learned everything a pair force can say, and the margin by which it goes below measures
the many-body content it found. The zero-force loss ⟨|F^mapped|²⟩ is reported too (what
predicting nothing costs).

**Pressure (virial) term** (``pressure_weight > 0``). Force matching fixes the forces but not the
volume dependence of the PMF, so a CG model may have the wrong pressure. The optional term
matches the batch mean of the model's instantaneous pressure,

    P = (N k_B T + W / 3) / V,    W = −dE/dε of a uniform scaling x → (1+ε)x, L → (1+ε)L,

to the all-atom mean pressure ⟨P_AA⟩ of the state point (``pressure_bar`` of :func:`fit`); the
residual is made a force by multiplying with the area per bead (V/N)^{2/3}, and
L = L_F + w ((⟨P⟩_batch − P_AA)(V/N)^{2/3})². Being the square of a batch mean, the term also
penalises the pressure fluctuation over a batch by Var(P)/B (B frames). An energy-matching
term is not offered: the CG potential is a free energy (PMF) whose value is not in the
all-atom data, only its gradient is.

**Procedure** (:func:`fit`). Each data set (state point) is split into training and
validation frames by whole time blocks (:func:`split_frames`,
:func:`~cgforge.methods.force_data.time_block_split`); one model is trained on the training
frames of all state points. The repulsive prior (:mod:`cgforge.methods.gnn.prior`) is set from
the training frames; the network energy scale is k_B T of the coldest state point. Adam, a
learning-rate schedule (``"plateau"``: ReduceLROnPlateau on the validation objective;
``"cosine"``: cosine annealing over the epochs), early stopping after
``early_stopping_patience`` epochs without improvement; the model with the best validation
objective is kept.

**Determinism and resuming.** The model is initialised from ``torch.manual_seed(seed)`` and the
frame order of epoch e is drawn from ``numpy.random.default_rng([seed, e])``, so a training is
deterministic on the CPU. After every epoch :func:`fit` hands its callback the training state
(model, optimiser, scheduler, history, best model, epochs without improvement, epoch: a copy
the caller may keep); :func:`fit` given that state continues after that epoch and repeats the
uninterrupted training exactly.

Training works in memory and writes no files: the run directory of a training (``model.pt``,
``history.csv``, ``loss.png``, ``summary.json``, the per-epoch checkpoint) is
:func:`cgforge.workflows.gnn_train.train_model`.

Units: nm, ps, kJ/mol, K, amu, bar.
"""

from __future__ import annotations

import copy
import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cgforge.engines.torch_md import retain_freed_memory, select_device
from cgforge.errors import InputError
from cgforge.methods.force_data import ForceDataset, time_block_split
from cgforge.methods.gnn.prior import nearest_neighbour_distances, prior_from_distances
from cgforge.potentials.neural.base import EnergyModel, build_model
from cgforge.units import KJ_MOL_NM3_TO_BAR, kT

__all__ = [
    "DTYPES",
    "LOSS_UNITS",
    "LR_SCHEDULES",
    "FitCallback",
    "FitResult",
    "TrainConfig",
    "fit",
    "pair_noise_floor",
    "split_frames",
    "training_cutoff",
]

#: Learning-rate schedules.
LR_SCHEDULES = ("plateau", "cosine")
#: Floating-point types of training.
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Loss units written beside every loss value.
LOSS_UNITS = "(kJ/mol/nm)^2 per bead (mean of |F_model - F_mapped|^2)"

#: Called by :func:`fit` after every epoch with the training state to resume from (a copy).
FitCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one force-matching training (see the module docstring).

    ``model`` registry name; ``hyperparameters`` its constructor arguments (the prior, the
    energy scale and, for HIP-NN, the shortest sensitivity distance are filled in from the
    data unless given); ``epochs``; ``batch_frames`` frames per optimiser step; ``lr`` initial
    learning rate; ``lr_schedule`` ``"plateau"`` or ``"cosine"``; ``lr_factor`` /
    ``lr_patience`` / ``min_lr`` of the plateau schedule; ``early_stopping_patience`` epochs;
    ``validation_fraction`` and ``n_blocks`` of the time-block split; ``pressure_weight`` w of
    the virial term (0: off); ``prior`` on/off, ``prior_quantile``, ``prior_exponent``;
    ``dtype`` ``"float32"`` or ``"float64"``; ``seed``.
    """

    model: str = "schnet"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_frames: int = 4
    lr: float = 1.0e-3
    lr_schedule: str = "plateau"
    lr_factor: float = 0.5
    lr_patience: int = 5
    min_lr: float = 1.0e-5
    early_stopping_patience: int = 20
    validation_fraction: float = 0.2
    n_blocks: int = 10
    pressure_weight: float = 0.0
    prior: bool = True
    prior_quantile: float = 1.0e-3
    prior_exponent: float = 12.0
    dtype: str = "float32"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_frames", "lr_patience", "early_stopping_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"learning rate must be positive, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(
                f"unknown learning-rate schedule {self.lr_schedule!r}; use one of {LR_SCHEDULES}"
            )
        if not 0.0 < self.lr_factor < 1.0:
            raise InputError(f"lr_factor must lie in (0, 1), got {self.lr_factor}")
        if not (math.isfinite(self.pressure_weight) and self.pressure_weight >= 0):
            raise InputError(f"pressure weight must be >= 0, got {self.pressure_weight}")
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if not isinstance(self.hyperparameters, dict):
            raise InputError("hyperparameters must be a mapping of name to value")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ====================================================================== data
@dataclass
class _Data:
    """One state point on the training device."""

    positions: Tensor  # (F, N, 3) nm
    box: Tensor  # (F, 3) nm
    forces: Tensor  # (F, N, 3) kJ/mol/nm
    kt_kj_mol: float
    pressure_target: float | None  # kJ/mol/nm³
    train: np.ndarray
    val: np.ndarray


def _datasets(datasets: ForceDataset | Sequence[ForceDataset]) -> list[ForceDataset]:
    items = [datasets] if isinstance(datasets, ForceDataset) else list(datasets)
    if not items:
        raise InputError("no training data given; give at least one data set with forces")
    if not all(isinstance(d, ForceDataset) for d in items):
        raise InputError(
            "give training data as ForceDataset objects (load run directories with "
            "cgforge.methods.force_data.load_force_data)"
        )
    return items


def training_cutoff(datasets: ForceDataset | Sequence[ForceDataset], config: TrainConfig) -> float:
    """The model cutoff (nm) of a training: ``cutoff_nm`` of the hyperparameters, by default
    1 nm or just inside half the smallest box edge of the data (to 0.01 nm below).

    Raises InputError for a cutoff that is not positive or exceeds half the smallest box edge.
    """
    sets = _datasets(datasets)
    half_box = min(0.5 * float(np.min(ds.box_nm)) for ds in sets)
    # default: 1 nm, or just inside half the box (to 0.01 nm below; float32 boxes round)
    default_cutoff = math.floor(min(1.0, 0.98 * half_box) / 0.01 + 1e-9) * 0.01
    cutoff = float(config.hyperparameters.get("cutoff_nm", default_cutoff))
    if not 0 < cutoff <= half_box * (1 + 1e-12):
        raise InputError(
            f"cutoff_nm {cutoff:g} must be positive and at most half the smallest box edge "
            f"of the runs ({half_box:.4g} nm); use cutoff_nm {default_cutoff:.2f} or shorter",
            parameters="cutoff_nm",
        )
    return cutoff


def split_frames(
    datasets: ForceDataset | Sequence[ForceDataset], config: TrainConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training frames, validation frames) of each data set: whole time blocks, drawn with
    the seed of the configuration (the split :func:`fit` uses)."""
    return [_split(ds, config, k) for k, ds in enumerate(_datasets(datasets))]


def _split(ds: ForceDataset, config: TrainConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    if config.validation_fraction == 0.0:
        return np.arange(ds.n_frames), np.empty(0, dtype=np.int64)
    n_blocks = min(config.n_blocks, ds.n_frames)
    if n_blocks < 2:
        raise InputError(
            f"{ds.state.source}: {ds.n_frames} frame(s) cannot be split into training and "
            "validation blocks; give more frames or validation_fraction=0"
        )
    return time_block_split(ds.n_frames, n_blocks, config.validation_fraction, config.seed + index)


# ====================================================================== losses
def _batch_terms(
    model: EnergyModel,
    data: Sequence[_Data],
    batch: Sequence[tuple[int, int]],
    *,
    with_pressure: bool,
    create_graph: bool,
) -> tuple[Tensor, int, Tensor | None, int]:
    """Σ|ΔF|² over the batch, its number of beads, Σ pressure residual × area, frames."""
    positions, scales, energies, refs = [], [], [], []
    for d, k in batch:
        pos = data[d].positions[k].detach().clone().requires_grad_(True)
        box = data[d].box[k]
        positions.append(pos)
        if with_pressure:
            eps = torch.zeros((), dtype=pos.dtype, device=pos.device, requires_grad=True)
            scales.append(eps)
            energies.append(model(pos * (1.0 + eps), box * (1.0 + eps)))
        else:
            energies.append(model(pos, box))
        refs.append(data[d].forces[k])
    total = torch.stack(energies).sum()
    grads = torch.autograd.grad(total, positions + scales, create_graph=create_graph)
    sq = sum(((-g - f) ** 2).sum() for g, f in zip(grads[: len(positions)], refs, strict=True))
    n_beads = sum(int(p.shape[0]) for p in positions)
    if not with_pressure:
        return sq, n_beads, None, 0
    residual = torch.zeros((), dtype=total.dtype, device=total.device)
    counted = 0
    for (d, k), pos, grad_eps in zip(batch, positions, grads[len(positions) :], strict=True):
        target = data[d].pressure_target
        if target is None:
            continue
        n = pos.shape[0]
        volume = torch.prod(data[d].box[k])
        virial = -grad_eps
        pressure = (n * data[d].kt_kj_mol + virial / 3.0) / volume
        residual = residual + (pressure - target) * (volume / n) ** (2.0 / 3.0)
        counted += 1
    return sq, n_beads, residual, counted


def _evaluate(
    model: EnergyModel, data: Sequence[_Data], which: str, with_pressure: bool
) -> tuple[float, float | None]:
    """(force loss, pressure residual × area) over all ``which`` frames; NaN if none."""
    sq_total, n_total, res_total, frames = 0.0, 0, 0.0, 0
    for d, item in enumerate(data):
        for k in getattr(item, which):
            sq, n, res, counted = _batch_terms(
                model, data, [(d, int(k))], with_pressure=with_pressure, create_graph=False
            )
            sq_total += float(sq)
            n_total += n
            if res is not None and counted:
                res_total += float(res)
                frames += counted
    loss = sq_total / n_total if n_total else math.nan
    pressure = res_total / frames if frames else None
    return loss, pressure


def _objective(force: float, pressure: float | None, weight: float) -> float:
    if weight > 0 and pressure is not None:
        return force + weight * pressure * pressure
    return force


# ====================================================================== noise floor
def pair_noise_floor(
    datasets: Sequence[ForceDataset],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    cutoff_nm: float,
) -> dict[str, Any]:
    """Loss of the best linear pair force field (MS-CG) on the same frames: the noise-floor
    upper bound of the module docstring.

    The pair force is fitted on the training frames with the defaults of
    :mod:`cgforge.methods.force_matching` (cubic B-splines about 0.02 nm apart from the
    closest training pair to ``cutoff_nm``, smoothness regulariser) and its per-bead squared
    error is evaluated on the validation frames (the training frames when there are none).
    Returns ``{"pair_fm_train_loss", "pair_fm_val_loss", "zero_force_val_loss", ...}`` in
    (kJ/mol/nm)².
    """
    from cgforge.methods.force_matching import (
        DEFAULT_KNOT_SPACING_NM,
        DEFAULT_REGULARISATION,
        BSplineBasis,
        ForceMatchingAccumulator,
        frame_residuals,
    )

    closest = min(
        float(nearest_neighbour_distances(ds.positions_nm[tr], ds.box_nm[tr]).min())
        for ds, (tr, _) in zip(datasets, splits, strict=True)
    )
    r_min = max(0.0, math.floor(closest / 0.01) * 0.01)
    n_knots = max(math.ceil((cutoff_nm - r_min) / DEFAULT_KNOT_SPACING_NM - 1e-9), 3) + 1
    basis = BSplineBasis(r_min, cutoff_nm, n_knots)
    acc = ForceMatchingAccumulator(basis)
    for ds, (tr, _) in zip(datasets, splits, strict=True):
        acc.update_dataset(ds, tr)
    result = acc.solve(DEFAULT_REGULARISATION, min_pair_samples=1)

    def pooled(which: int) -> tuple[float, float]:
        res = zero = 0.0
        n = 0
        for ds, split in zip(datasets, splits, strict=True):
            frames = split[which] if split[which].size else split[0]
            sub = ds.select(frames)
            res += float(frame_residuals(result, sub).residual_sum.sum())
            zero += float(np.sum(sub.forces_kj_mol_nm**2))
            n += sub.n_frames * sub.n_beads
        return res / n, zero / n

    train_loss, zero_train = pooled(0)
    val_loss, zero_val = pooled(1)
    return {
        "estimator": "validation loss of the best linear pair force field (MS-CG, "
        "cubic B-splines) fitted on the training frames: an upper bound on the noise floor",
        "pair_fm_train_loss": train_loss,
        "pair_fm_val_loss": val_loss,
        "zero_force_train_loss": zero_train,
        "zero_force_val_loss": zero_val,
        "basis": basis.to_dict(),
        "units": LOSS_UNITS,
    }


# ====================================================================== helpers
def _fill_hyperparameters(
    config: TrainConfig,
    datasets: Sequence[ForceDataset],
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    cutoff: float,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Hyperparameters with the data-derived entries the model accepts; and the prior.

    Data-derived (unless given): the prior (σ, ε, n; :mod:`~cgforge.methods.gnn.prior`), the
    energy scale k_B T of the coldest state point and, for models with sensitivity functions,
    their shortest distance (the same nearest-neighbour quantile as the prior's σ).
    """
    hp = dict(config.hyperparameters)
    hp["cutoff_nm"] = cutoff
    accepted = set(inspect.signature(type(build_model(config.model)).__init__).parameters)
    t_min = min(ds.state.temperature_K for ds in datasets)
    nearest = np.concatenate(
        [
            nearest_neighbour_distances(ds.positions_nm[tr], ds.box_nm[tr])
            for ds, (tr, _) in zip(datasets, splits, strict=True)
        ]
    )
    prior_info = None
    if not config.prior:
        hp.pop("prior_sigma_nm", None)
        hp.pop("prior_epsilon_kj_mol", None)
    elif "prior_sigma_nm" in accepted and hp.get("prior_sigma_nm") is None:
        prior = prior_from_distances(
            nearest, t_min, quantile=config.prior_quantile, exponent=config.prior_exponent
        )
        hp.update(
            prior_sigma_nm=prior.sigma_nm,
            prior_epsilon_kj_mol=prior.epsilon_kj_mol,
            prior_exponent=prior.exponent,
        )
        prior_info = prior.to_dict()
    if "energy_scale_kj_mol" in accepted:
        hp.setdefault("energy_scale_kj_mol", kT(t_min))
    if "sensitivity_min_nm" in accepted and "sensitivity_min_nm" not in hp:
        closest = float(np.quantile(nearest, config.prior_quantile))
        hp["sensitivity_min_nm"] = min(closest, 0.5 * cutoff)
    return hp, prior_info


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs, eta_min=config.min_lr
        )
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
    )


# ====================================================================== training
@dataclass
class FitResult:
    """A finished training (:func:`fit`).

    ``model``: the network with the weights of its best epoch, in eval mode, on the training
    device; ``history``: one record per epoch (``epoch``, ``train_loss`` — the force loss
    averaged over the epoch's steps —, ``val_loss``, ``lr`` — the epoch's learning rate —,
    ``val_pressure_residual_kj_mol_nm``, ``train_seconds``, ``seconds``), those of a resumed
    state included; ``best_epoch``; ``stopped_early``; the force losses of the best model on
    the training and validation frames (``best_val_loss`` None without validation frames) and
    its pressure residual × area on the validation frames; ``model_pressures``: per state
    point, the model's mean virial pressure and the all-atom one (bar); ``prior``: the prior
    set from the data (None when off or given); ``cutoff_nm``; ``splits``: (training,
    validation) frame indices per data set; ``device``. Losses in (kJ/mol/nm)² per bead.
    """

    model: EnergyModel
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    best_train_loss: float
    best_val_loss: float | None
    val_pressure_residual_kj_mol_nm: float | None
    model_pressures: list[dict[str, Any]]
    prior: dict[str, Any] | None
    cutoff_nm: float
    splits: list[tuple[np.ndarray, np.ndarray]]
    device: torch.device

    @property
    def n_frames_train(self) -> int:
        return int(sum(tr.size for tr, _ in self.splits))

    @property
    def n_frames_validation(self) -> int:
        return int(sum(va.size for _, va in self.splits))


def fit(
    datasets: ForceDataset | Sequence[ForceDataset],
    config: TrainConfig,
    *,
    device: str | torch.device = "cpu",
    pressure_bar: Sequence[float | None] | None = None,
    state: dict[str, Any] | None = None,
    on_epoch: FitCallback | None = None,
) -> FitResult:
    """Train one energy model on the mapped forces of one or more state points, in memory.

    Parameters
    ----------
    datasets
        One :class:`~cgforge.methods.force_data.ForceDataset` per state point.
    config
        The training settings (:class:`TrainConfig`).
    device
        ``"cpu"``, ``"cuda"``, ``"auto"`` or a torch device.
    pressure_bar
        The all-atom mean pressure (bar) of each data set, None where unknown; needed for at
        least one state point when ``config.pressure_weight > 0``.
    state
        A training state that ``on_epoch`` received: training continues after its epoch (a
        state of the last epoch, or of an early stop, trains no further).
    on_epoch
        Called after every epoch with the training state (a copy: ``model``, ``optimizer``,
        ``scheduler`` state dicts, ``history`` — the epoch's record last —, ``best``,
        ``bad_epochs``, ``epoch``); what it raises ends the training.

    Writes no files. Returns the trained model and its history (:class:`FitResult`).
    """
    sets = _datasets(datasets)
    dev = select_device(device)
    if dev.type == "cpu":
        retain_freed_memory()  # each step's autograd buffers are reused, not page-faulted in
    cutoff = training_cutoff(sets, config)
    splits = split_frames(sets, config)
    targets = [None] * len(sets) if pressure_bar is None else list(pressure_bar)
    if len(targets) != len(sets):
        raise InputError(
            f"{len(targets)} pressure(s) given for {len(sets)} data set(s); give one per data set"
        )
    if config.pressure_weight > 0 and all(p is None for p in targets):
        raise InputError(
            "pressure matching needs the all-atom mean pressure (pressure_bar in the run's "
            "summary.json) of at least one state point; train without the pressure weight"
        )
    hp, prior_info = _fill_hyperparameters(config, sets, splits, cutoff)

    torch_dtype = DTYPES[config.dtype]
    data = [
        _Data(
            positions=torch.tensor(np.asarray(ds.positions_nm), dtype=torch_dtype, device=dev),
            box=torch.tensor(np.asarray(ds.box_nm), dtype=torch_dtype, device=dev),
            forces=torch.tensor(np.asarray(ds.forces_kj_mol_nm), dtype=torch_dtype, device=dev),
            kt_kj_mol=kT(ds.state.temperature_K),
            pressure_target=None if p is None else float(p) / KJ_MOL_NM3_TO_BAR,
            train=tr,
            val=va,
        )
        for ds, (tr, va), p in zip(sets, splits, targets, strict=True)
    ]
    with_pressure = config.pressure_weight > 0
    torch.manual_seed(config.seed)
    net = build_model(config.model, **hp).to(device=dev, dtype=torch_dtype)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    scheduler = _make_scheduler(optimizer, config)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"objective": math.inf, "epoch": 0, "state": None}
    bad_epochs = 0
    start_epoch = 1
    if state is not None:
        state = copy.deepcopy(state)  # the optimiser would update the caller's tensors
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = list(state["history"])
        best = state["best"]
        bad_epochs = int(state["bad_epochs"])
        start_epoch = int(state["epoch"]) + 1
    stopped_early = bool(history) and bad_epochs >= config.early_stopping_patience
    train_items = [(d, int(k)) for d, item in enumerate(data) for k in item.train]
    has_val = any(item.val.size for item in data)

    for epoch in range(start_epoch, config.epochs + 1):
        if stopped_early:
            break
        tic = time.perf_counter()
        net.train()
        order = np.random.default_rng([config.seed, epoch]).permutation(len(train_items))
        sq_sum, bead_sum = 0.0, 0
        for start in range(0, len(order), config.batch_frames):
            batch = [train_items[i] for i in order[start : start + config.batch_frames]]
            sq, n_beads, residual, counted = _batch_terms(
                net, data, batch, with_pressure=with_pressure, create_graph=True
            )
            loss = sq / n_beads
            if residual is not None and counted:
                loss = loss + config.pressure_weight * (residual / counted) ** 2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sq_sum += float(sq.detach())
            bead_sum += n_beads
            if not math.isfinite(float(loss.detach())):
                raise InputError(
                    f"the training loss became {float(loss.detach())} in epoch {epoch}; lower "
                    "the learning rate (lr) or keep the prior on"
                )
        net.eval()
        train_seconds = time.perf_counter() - tic
        train_loss = sq_sum / bead_sum
        val_loss, val_pressure = _evaluate(net, data, "val", with_pressure)
        monitored = (
            _objective(val_loss, val_pressure, config.pressure_weight) if has_val else train_loss
        )
        lr_now = optimizer.param_groups[0]["lr"]
        if config.lr_schedule == "plateau":
            scheduler.step(monitored)
        else:
            scheduler.step()
        if monitored < best["objective"]:
            best = {
                "objective": monitored,
                "epoch": epoch,
                "state": {k: v.detach().clone() for k, v in net.state_dict().items()},
            }
            bad_epochs = 0
        else:
            bad_epochs += 1
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "lr": lr_now,
                "val_pressure_residual_kj_mol_nm": val_pressure,
                "train_seconds": train_seconds,
                "seconds": time.perf_counter() - tic,
            }
        )
        if on_epoch is not None:
            on_epoch(
                copy.deepcopy(
                    {
                        "model": net.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "history": history,
                        "best": best,
                        "bad_epochs": bad_epochs,
                        "epoch": epoch,
                    }
                )
            )
        if bad_epochs >= config.early_stopping_patience:
            stopped_early = True

    if best["state"] is not None:
        net.load_state_dict(best["state"])
    net.eval()
    best_val, best_pressure = _evaluate(net, data, "val", True)
    best_train, _ = _evaluate(net, data, "train", False)
    return FitResult(
        model=net,
        history=history,
        best_epoch=int(best["epoch"]),
        stopped_early=stopped_early,
        best_train_loss=best_train,
        best_val_loss=best_val if has_val else None,
        val_pressure_residual_kj_mol_nm=best_pressure,
        model_pressures=_model_pressures(net, data, sets),
        prior=prior_info,
        cutoff_nm=cutoff,
        splits=splits,
        device=dev,
    )


def _model_pressures(
    net: EnergyModel, data: Sequence[_Data], sets: Sequence[ForceDataset]
) -> list[dict[str, Any]]:
    """Mean instantaneous virial pressure of the model on each state point's frames, bar."""
    rows = []
    for item, ds in zip(data, sets, strict=True):
        frames = item.val if item.val.size else item.train
        values = []
        for k in frames:
            box = item.box[int(k)]
            _, _, virial = net.energy_forces_virial(item.positions[int(k)], box)
            volume = float(torch.prod(box))
            n = item.positions.shape[1]
            values.append((n * item.kt_kj_mol + float(virial) / 3.0) / volume * KJ_MOL_NM3_TO_BAR)
        target = None if item.pressure_target is None else item.pressure_target * KJ_MOL_NM3_TO_BAR
        rows.append(
            {
                "temperature_K": ds.state.temperature_K,
                "density_g_cm3": ds.state.density_g_cm3,
                "model_pressure_bar": float(np.mean(values)),
                "aa_pressure_bar": target,
            }
        )
    return rows
