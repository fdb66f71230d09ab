"""GNN force-matching training in a run directory: ``cgforge fm train``.

:func:`train_model` trains one energy model (SchNet, HIP-NN-TS) with
:func:`cgforge.methods.gnn.train.fit` on the mapped forces of one or more all-atom state
points and owns its run directory (:class:`~cgforge.rundir.RunDirectory`; the configuration
hash covers the training settings, the cutoff and a fingerprint of every data set). After
every epoch the training state is checkpointed atomically into ``OUT/.cgforge/checkpoint.pt``;
the same call after a kill continues from there and repeats the uninterrupted training
exactly (see the determinism contract of :mod:`cgforge.methods.gnn.train`), and the call on a
finished run returns its summary. The all-atom mean pressure of each state point, the target
of the optional virial term, is ``pressure_bar`` of the all-atom run's ``summary.json``.

Files in ``OUT``: ``model.pt`` (:func:`~cgforge.potentials.neural.base.save_model`; metadata:
cutoff, bead mass, molecule, training state points, loss history, noise floor, units),
``history.csv`` (``epoch,train_loss,val_loss,lr``: the force losses L_F in (kJ/mol/nm)² — the
training loss averaged over the epoch's steps — and the epoch's learning rate), ``loss.png``
(the losses against the pair-MS-CG noise-floor bound,
:func:`~cgforge.methods.gnn.train.pair_noise_floor`) and ``summary.json`` (written last, with
provenance).

Units: nm, ps, kJ/mol, K, amu, bar.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cgforge.engines.torch_md import select_device
from cgforge.errors import InputError
from cgforge.fileio import atomic_path, write_columns_csv
from cgforge.methods.force_data import ForceDataset, load_force_data
from cgforge.methods.gnn.train import (
    LOSS_UNITS,
    TrainConfig,
    fit,
    pair_noise_floor,
    split_frames,
    training_cutoff,
)
from cgforge.potentials.neural.base import save_model
from cgforge.provenance import collect
from cgforge.rundir import RunDirectory

__all__ = ["CHECKPOINT", "EpochCallback", "train_model"]

#: Name of the checkpoint inside the run directory's work folder.
CHECKPOINT = "checkpoint.pt"

#: Called with each epoch's record after its checkpoint is written.
EpochCallback = Callable[[dict[str, Any]], None]


def _as_datasets(datasets: Any) -> list[ForceDataset]:
    if isinstance(datasets, ForceDataset):
        return [datasets]
    if isinstance(datasets, str | Path):
        return load_force_data(datasets)
    items = list(datasets)
    if not items:
        raise InputError("no training data given; name at least one all-atom run with forces")
    if all(isinstance(d, ForceDataset) for d in items):
        return items
    if all(isinstance(d, str | Path) for d in items):
        return load_force_data(items)
    raise InputError("give training data as ForceDataset objects or all-atom run directories")


def _fingerprint(ds: ForceDataset) -> dict[str, Any]:
    digest = hashlib.sha256()
    for arr in (ds.positions_nm, ds.box_nm, ds.forces_kj_mol_nm):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return {
        **ds.state.to_dict(),
        "n_frames": ds.n_frames,
        "sha256": digest.hexdigest()[:16],
    }


def _aa_pressure_bar(ds: ForceDataset) -> float | None:
    """Mean all-atom pressure (bar) from the run's summary.json, or None."""
    path = Path(ds.state.source) / "summary.json"
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get("pressure_bar")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _plot(path: Path, history: list[dict[str, Any]], floor: dict[str, Any], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(epochs, [h["train_loss"] for h in history], "b-", label="training")
    val = [h["val_loss"] for h in history]
    if any(math.isfinite(v) for v in val):
        ax.semilogy(epochs, val, "r-", label="validation")
    ax.axhline(
        floor["pair_fm_val_loss"], color="k", ls="--", lw=1, label="pair MS-CG (floor bound)"
    )
    ax.axhline(floor["zero_force_val_loss"], color="grey", ls=":", lw=1, label="zero force")
    ax.set(xlabel="epoch", ylabel="force loss / (kJ mol⁻¹ nm⁻¹)²", title=title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def train_model(
    datasets: ForceDataset | Sequence[ForceDataset] | str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    model: str = "schnet",
    hyperparameters: dict[str, Any] | None = None,
    epochs: int = 100,
    batch_frames: int = 4,
    lr: float = 1.0e-3,
    seed: int = 0,
    device: str = "cpu",
    lr_schedule: str = "plateau",
    early_stopping_patience: int = 20,
    validation_fraction: float = 0.2,
    n_blocks: int = 10,
    pressure_weight: float = 0.0,
    prior: bool = True,
    dtype: str = "float32",
    overwrite: bool = False,
    on_epoch: EpochCallback | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train one energy model on the mapped forces of one or more state points in ``out``.

    Parameters
    ----------
    datasets
        :class:`~cgforge.methods.force_data.ForceDataset` objects or all-atom run directories
        with forces (:func:`~cgforge.methods.force_data.load_force_data`), one per state point.
    out
        Run directory; rerunning the same call resumes an interrupted training from its last
        epoch, or returns the summary of a finished one.
    model, hyperparameters
        Registry name (``"schnet"``, ``"hipnn"``) and constructor arguments (``cutoff_nm``
        defaults to min(1.0 nm, half the smallest box edge)).
    epochs, batch_frames, lr, seed, device
        Training length, frames per step, initial learning rate, seed (model initialisation,
        frame order, split), ``"cpu"``/``"cuda"``/``"auto"``.
    lr_schedule, early_stopping_patience, validation_fraction, n_blocks, pressure_weight,
    prior, dtype, **options
        Fields of :class:`~cgforge.methods.gnn.train.TrainConfig`.
    on_epoch
        Called with each epoch's record after its checkpoint is written.

    Returns the summary (also ``OUT/summary.json``).
    """
    sets = _as_datasets(datasets)
    try:
        config = TrainConfig(
            model=model,
            hyperparameters=dict(hyperparameters or {}),
            epochs=epochs,
            batch_frames=batch_frames,
            lr=lr,
            seed=seed,
            lr_schedule=lr_schedule,
            early_stopping_patience=early_stopping_patience,
            validation_fraction=validation_fraction,
            n_blocks=n_blocks,
            pressure_weight=pressure_weight,
            prior=prior,
            dtype=dtype,
            **options,
        )
    except TypeError as exc:
        raise InputError(f"unknown training option: {exc}") from exc
    dev = select_device(device)
    cutoff = training_cutoff(sets, config)
    run_config = {
        "method": "GNN force matching",
        "training": config.to_dict(),
        "cutoff_nm": cutoff,
        "data": [_fingerprint(ds) for ds in sets],
    }
    rundir = RunDirectory(out, run_config, overwrite=overwrite)
    if rundir.prepare() == "complete":
        return rundir.read_summary()
    out_path = rundir.path

    pressures = [_aa_pressure_bar(ds) for ds in sets]
    floor = pair_noise_floor(sets, split_frames(sets, config), cutoff)
    checkpoint_path = rundir.work / CHECKPOINT
    state = None
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=dev, weights_only=True)

    def checkpoint(epoch_state: dict[str, Any]) -> None:
        _save_checkpoint(checkpoint_path, epoch_state)
        if on_epoch is not None:
            on_epoch(dict(epoch_state["history"][-1]))

    result = fit(sets, config, device=dev, pressure_bar=pressures, state=state, on_epoch=checkpoint)
    net, history = result.model, result.history

    molecule = sets[0].state.molecule
    masses = np.concatenate([np.asarray(ds.masses_amu) for ds in sets])
    n_params = int(sum(p.numel() for p in net.parameters()))
    train_seconds = float(sum(h["train_seconds"] for h in history))
    n_train_frames = result.n_frames_train
    best_train, best_val = result.best_train_loss, result.best_val_loss
    state_points = [
        {
            "temperature_K": ds.state.temperature_K,
            "density_g_cm3": ds.state.density_g_cm3,
            "n_molecules": ds.state.n_molecules,
            "molecule": ds.state.molecule,
            "source": ds.state.source,
        }
        for ds in sets
    ]
    loss_history = [{k: h[k] for k in ("epoch", "train_loss", "val_loss", "lr")} for h in history]
    metadata = {
        "cutoff_nm": cutoff,
        "bead_mass_amu": float(masses.mean()),
        "molecule": molecule,
        "training_state_points": state_points,
        "loss_history": loss_history,
        "best_epoch": result.best_epoch,
        "best_val_loss": best_val,
        "noise_floor": floor,
        "prior": result.prior,
        "units": {
            "length": "nm",
            "energy": "kJ/mol",
            "force": "kJ/mol/nm",
            "mass": "amu",
            "temperature": "K",
            "loss": LOSS_UNITS,
        },
    }
    save_model(net, out_path / "model.pt", metadata)
    write_columns_csv(
        out_path / "history.csv",
        ("epoch", "train_loss", "val_loss", "lr"),
        (
            [h["epoch"] for h in history],
            [h["train_loss"] for h in history],
            [h["val_loss"] for h in history],
            [h["lr"] for h in history],
        ),
    )
    _plot(out_path / "loss.png", history, floor, f"{molecule}: {config.model} force matching")
    summary = {
        "molecule": molecule,
        "source": "cgforge fm train",
        "method": f"force matching, {config.model}",
        "model": config.model,
        "hyperparameters": net.hyperparameters(),
        "n_parameters": n_params,
        "state_points": state_points,
        "n_frames_train": n_train_frames,
        "n_frames_validation": result.n_frames_validation,
        "epochs_run": len(history),
        "stopped_early": result.stopped_early,
        "best_epoch": result.best_epoch,
        "best_train_loss": best_train,
        "best_val_loss": best_val,
        "best_val_rms_force_error_kj_mol_nm": (
            None if best_val is None else math.sqrt(best_val / 3.0)
        ),
        "noise_floor": floor,
        # the floor is measured on validation frames (training frames without them)
        "loss_over_floor": (
            (best_train if best_val is None else best_val) / floor["pair_fm_val_loss"]
            if floor["pair_fm_val_loss"] > 0
            else None
        ),
        "val_pressure_residual_kj_mol_nm": result.val_pressure_residual_kj_mol_nm,
        "pressure": result.model_pressures,
        "prior": result.prior,
        "train_seconds": train_seconds,
        "train_frames_per_second": (
            n_train_frames * len(history) / train_seconds if train_seconds > 0 else None
        ),
        "device": str(dev),
        "loss_units": LOSS_UNITS,
        "files": {"model": "model.pt", "history": "history.csv", "plot": "loss.png"},
        "provenance": collect(run_config, seed=config.seed),
    }
    rundir.write_summary(summary)
    rundir.clean_work()
    return summary
