"""GNN force-matching training speed: frames/s of SchNet and HIP-NN-TS on 1,000 beads.

System: the one-bead liquid of ``benchmarks/cg_md.py`` (a 3-methylpentane-like Lennard-Jones
liquid, ε = 2.5 kJ/mol, σ = 0.55 nm, 86.18 amu, 4.6 nm⁻³, 298.15 K; box edge 6.0 nm for
1,000 beads). OpenMM (CPU) samples frames with Langevin dynamics; their Lennard-Jones forces
stand in for mapped forces. Each model, with its default hyperparameters (cutoff 1.0 nm;
SchNet: width 64, 3 interactions, 32 Gaussians; HIP-NN-TS: width 64, 2 interaction blocks of
2 atom layers, 16 sensitivities, l_max = 2) plus the data-derived prior and energy scale, is
trained with :func:`cgforge.workflows.gnn_train.train_model` (float32, one frame per optimiser
step, force loss with create_graph double backward, Adam). The first epoch is a warm-up;
frames/s is taken from the training part of the following epochs (validation excluded).
Also timed: energy + forces of one frame without a graph (what MD costs per step).

Prints a table and writes ``benchmarks/results/gnn_train.json`` with the machine and its load
average before and after (other jobs may share the machine).

    python benchmarks/gnn_train.py                       # CPU (and CUDA when present)
    python benchmarks/gnn_train.py --beads 1000 --frames 6 --devices cpu --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openmm
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe_machine
from cgforge.engines.cg_system import lattice_positions
from cgforge.engines.torch_md import select_device
from cgforge.fileio import write_json
from cgforge.methods.force_data import ForceDataset, StatePoint
from cgforge.potentials.neural.base import load_model
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows.gnn_train import train_model

RESULTS = Path(__file__).parent / "results" / "gnn_train.json"

EPSILON_KJ_MOL = 2.5
SIGMA_NM = 0.55
MASS_AMU = 86.18
NUMBER_DENSITY_NM3 = 4.6
TEMPERATURE_K = 298.15
LJ_CUTOFF_NM = 1.4
MODELS = ("schnet", "hipnn")


def sample_frames(n_beads: int, n_frames: int, seed: int = 1) -> ForceDataset:
    """LJ liquid frames with forces from OpenMM (Langevin, 5 fs, 100 steps apart)."""
    box = (n_beads / NUMBER_DENSITY_NM3) ** (1.0 / 3.0)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(
        openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0), openmm.Vec3(0, 0, box)
    )
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(min(LJ_CUTOFF_NM, 0.49 * box))
    for _ in range(n_beads):
        system.addParticle(MASS_AMU)
        force.addParticle(0.0, SIGMA_NM, EPSILON_KJ_MOL)
    system.addForce(force)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K, 5.0, 0.005)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(lattice_positions(n_beads, box, seed=seed))
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
    context.setVelocitiesToTemperature(TEMPERATURE_K, seed)
    integrator.step(1000)
    positions, forces, times = [], [], []
    for _ in range(n_frames):
        integrator.step(100)
        state = context.getState(getPositions=True, getForces=True)
        positions.append(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
        forces.append(
            state.getForces(asNumpy=True).value_in_unit(
                openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
            )
        )
        times.append(state.getTime().value_in_unit(openmm.unit.picosecond))
    density = NUMBER_DENSITY_NM3 * MASS_AMU * AMU_NM3_TO_G_CM3
    return ForceDataset(
        positions_nm=np.array(positions),
        box_nm=np.full((n_frames, 3), box),
        forces_kj_mol_nm=np.array(forces),
        times_ps=np.array(times),
        masses_amu=np.full(n_beads, MASS_AMU),
        state=StatePoint("lj-benchmark", TEMPERATURE_K, density, n_beads, "benchmark"),
    )


def measure(model: str, data: ForceDataset, device: str, epochs: int) -> dict:
    """Training frames/s (epochs after the first) and inference time of one frame."""
    records: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        summary = train_model(
            [data],
            Path(tmp) / model,
            model=model,
            epochs=epochs,
            batch_frames=1,
            lr=1.0e-3,
            seed=0,
            device=device,
            validation_fraction=1.0 / data.n_frames,
            n_blocks=data.n_frames,
            on_epoch=records.append,
        )
        net, _ = load_model(Path(tmp) / model / "model.pt", map_location=select_device(device))
    timed = records[1:] if len(records) > 1 else records
    n_train = summary["n_frames_train"]
    seconds = sum(r["train_seconds"] for r in timed)
    dev = select_device(device)
    pos = torch.tensor(data.positions_nm[0], dtype=torch.float32, device=dev)
    box = torch.tensor(data.box_nm[0], dtype=torch.float32, device=dev)
    net.energy_and_forces(pos, box)  # warm-up
    repeats = 3
    if dev.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for _ in range(repeats):
        net.energy_and_forces(pos, box)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    inference = (time.perf_counter() - tic) / repeats
    return {
        "model": model,
        "device": summary["device"],
        "torch_threads": torch.get_num_threads(),
        "n_beads": data.n_beads,
        "hyperparameters": summary["hyperparameters"],
        "n_parameters": summary["n_parameters"],
        "train_frames_timed": n_train * len(timed),
        "train_seconds": seconds,
        "train_frames_per_s": n_train * len(timed) / seconds,
        "train_seconds_per_frame": seconds / (n_train * len(timed)),
        "inference_seconds_per_frame": inference,
        "final_train_loss": records[-1]["train_loss"],
        "zero_force_loss": summary["noise_floor"]["zero_force_train_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beads", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=6, help="frames sampled (one validates)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs (the first is warm-up)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    load_before = os.getloadavg()
    tic = time.perf_counter()
    data = sample_frames(args.beads, args.frames)
    print(
        f"sampled {args.frames} frames of {args.beads} beads in {time.perf_counter() - tic:.1f} s"
    )
    rows = []
    for device in devices:
        for model in args.models:
            rows.append(measure(model, data, device, args.epochs))
            row = rows[-1]
            print(
                f"  {row['device']:>6} {model:>7}: {row['train_frames_per_s']:8.3f} frames/s "
                f"training, {row['inference_seconds_per_frame'] * 1e3:8.1f} ms/frame forces",
                flush=True,
            )
    load_after = os.getloadavg()
    print(
        f"\n{'device':>8} {'model':>7} {'params':>8} {'train fr/s':>11} {'s/frame':>8} "
        f"{'forces ms':>10}"
    )
    for row in rows:
        print(
            f"{row['device']:>8} {row['model']:>7} {row['n_parameters']:>8} "
            f"{row['train_frames_per_s']:>11.3f} {row['train_seconds_per_frame']:>8.3f} "
            f"{row['inference_seconds_per_frame'] * 1e3:>10.1f}"
        )
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    result = {
        "benchmark": "gnn_train",
        "machine": describe_machine(),
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "devices_not_present": sorted(set(args.devices) - set(devices)),
        "system": {
            "epsilon_kj_mol": EPSILON_KJ_MOL,
            "sigma_nm": SIGMA_NM,
            "mass_amu": MASS_AMU,
            "number_density_nm3": NUMBER_DENSITY_NM3,
            "temperature_K": TEMPERATURE_K,
            "n_beads": args.beads,
            "frames": args.frames,
            "epochs": args.epochs,
            "batch_frames": 1,
            "dtype": "float32",
        },
        "results": rows,
    }
    write_json(args.out, result)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
