"""Mobility network: training time per epoch, full training wall time, prediction latency.

Data: a synthetic database (:mod:`cgforge.database.synthetic`: Mie potentials, HNC g(r),
an Enskog-like D; a ground truth for the learning machinery, not physics data) of ``--n-a``
stage-A records and ``--b-per-a`` stage-B copies of each, on the default learning grids (150 RDF
and 241 potential points; 152 inputs).

Measured:

* ``epoch_ms``: one epoch (mini-batches of ``--batch`` over the training records of one fold,
  then the validation loss) of one member with the default architecture, timed over
  ``--epochs`` epochs with early stopping off;
* ``train_s``: ``train_mobility`` end to end with the default hyperparameters (k-fold ensemble,
  early stopping, the learning curve unless ``--no-learning-curve``), with the held-out
  accuracy it reports;
* ``load_ms`` (reading a model directory) and ``predict_ms`` (one ``predict_potential`` call on a
  cached model: features, ensemble, OOD check, simulation-ready table), median of ``--repeat``.

Torch runs on ``--threads`` CPU threads. Prints a table and writes
``benchmarks/results/mobility_train.json`` with the machine and its load average.

    python benchmarks/mobility_train.py                      # 40 A + 80 B records, 5 folds
    python benchmarks/mobility_train.py --n-a 24 --b-per-a 1 --no-learning-curve
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.database.learning import load_mobility_data
from cgforge.database.synthetic import build_synthetic_database
from cgforge.fileio import write_json
from cgforge.methods.mobility.dataset import mobility_feature_floor
from cgforge.methods.mobility.network import EnsembleTrainConfig, Standardizer, _train_member
from cgforge.methods.mobility.potential_from_mobility import MobilityModel
from cgforge.workflows.predict import predict_potential
from cgforge.workflows.train import train_mobility

RESULTS = Path(__file__).parent / "results" / "mobility_train.json"


def time_epochs(data, config: EnsembleTrainConfig, epochs: int) -> float:
    """Milliseconds per epoch of one member on 4/5 of the records (early stopping off)."""
    x, y = data.x, data.targets.u_kj_mol
    zx = Standardizer.fit(x, mobility_feature_floor(data.records.grids.n_rdf)).forward(x)
    zy = Standardizer.fit(y, 1e-3 * float(np.max(np.std(y, axis=0)))).forward(y)
    n_val = max(1, len(x) // 5)
    fixed = EnsembleTrainConfig(
        **{**config.to_dict(), "max_epochs": epochs, "patience": epochs + 1}
    )
    _train_member(zx[n_val:], zy[n_val:], zx[:n_val], zy[:n_val], fixed, 0, "warm-up", None)
    start = time.perf_counter()
    _train_member(zx[n_val:], zy[n_val:], zx[:n_val], zy[:n_val], fixed, 0, "timed", None)
    return 1e3 * (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-a", type=int, default=40, help="stage-A records")
    parser.add_argument("--b-per-a", type=int, default=2, help="stage-B records per A")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=100, help="epochs of the epoch timing")
    parser.add_argument("--repeat", type=int, default=20, help="timed predictions")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--no-learning-curve", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    config = EnsembleTrainConfig(
        folds=args.folds,
        batch_size=args.batch,
        learning_curve=() if args.no_learning_curve else EnsembleTrainConfig().learning_curve,
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        build_synthetic_database(root / "synthetic.db", n_a=args.n_a, n_b_per_a=args.b_per_a)
        build_s = time.perf_counter() - start
        data = load_mobility_data(root / "synthetic.db", args.folds)
        epoch_ms = time_epochs(data, config, args.epochs)
        print(
            f"{len(data.records)} records, {data.x.shape[1]} inputs, "
            f"{data.targets.u_kj_mol.shape[1]} outputs: {epoch_ms:.2f} ms/epoch",
            flush=True,
        )
        start = time.perf_counter()
        manifest = train_mobility(root / "synthetic.db", root / "model", config)
        train_s = time.perf_counter() - start
        metrics = manifest["metrics"]
        epochs = sum(m["epochs"] for m in metrics["members"])
        loads = []
        for _ in range(5):
            start = time.perf_counter()
            MobilityModel.load(root / "model")
            loads.append(1e3 * (time.perf_counter() - start))
        g = data.records.g_cg[0]
        rdf = (data.records.grids.rdf_r_nm, g)
        mass, d = float(data.records.mass_amu[0]), float(data.records.d_cg[0])
        predict_potential(root / "model", mass_amu=mass, diffusion_m2_s=d, rdf=rdf)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            predict_potential(root / "model", mass_amu=mass, diffusion_m2_s=d, rdf=rdf)
            times.append(1e3 * (time.perf_counter() - start))
    load_after = os.getloadavg()
    row = {
        "n_records": len(data.records),
        "n_inputs": int(data.x.shape[1]),
        "n_outputs": int(data.targets.u_kj_mol.shape[1]),
        "database_build_s": build_s,
        "epoch_ms": epoch_ms,
        "train_s": train_s,
        "member_epochs": epochs,
        "learning_curve": [
            {k: r[k] for k in ("n_train", "val_loss_mean", "baseline_val_loss")}
            for r in metrics["learning_curve"]
        ],
        "val_loss": metrics["val_loss"],
        "baseline_val_loss": metrics["baseline_val_loss"],
        "rmse_kj_mol": metrics["rmse_kj_mol"],
        "baseline_rmse_kj_mol": metrics["baseline_rmse_kj_mol"],
        "r2": metrics["r2"],
        "load_ms": statistics.median(loads),
        "predict_ms": statistics.median(times),
    }
    for key, value in row.items():
        if not isinstance(value, list):
            print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    write_json(
        args.out,
        {
            "benchmark": "mobility_train",
            "machine": describe_machine(),
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            "torch_threads": args.threads,
            "config": config.to_dict(),
            "database": {"n_a": args.n_a, "b_per_a": args.b_per_a, "rdf_model": "hnc"},
            "results": [row],
        },
    )
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
