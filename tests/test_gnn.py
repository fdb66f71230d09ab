"""GNN force fields (SchNet, HIP-NN-TS): exact forces, symmetries, learning, prior, training
machinery, studies and the ``cgforge fm`` commands.

The learning data are the exact forces of a 64-bead Lennard-Jones liquid (argon-like:
ε = 0.996 kJ/mol, σ = 0.34 nm, 40 amu, 20 nm⁻³, 120 K) sampled with OpenMM: a pair fluid, so
the best pair force field reproduces the forces (noise floor ≈ 0) and a network must get far
below the loss of predicting zero force.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import openmm
import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from _systems import lj_fluid
from cgforge.cli.fm import register
from cgforge.errors import InputError
from cgforge.methods.force_data import ForceDataset, StatePoint
from cgforge.methods.gnn.prior import PairPrior, fit_prior, nearest_neighbour_distances
from cgforge.methods.gnn.train import TrainConfig, fit
from cgforge.potentials.neural.base import build_model, load_model, save_model
from cgforge.trajectory import CGTrajectory
from cgforge.units import AMU_NM3_TO_G_CM3, KJ_MOL_NM3_TO_BAR, kT
from cgforge.workflows.gnn_study import run_study
from cgforge.workflows.gnn_train import train_model

MODELS = ("schnet", "hipnn")
T = 120.0  # K
MASS = 40.0  # amu
CUTOFF = 0.7  # nm, below half the 1.47 nm box
TINY = {"cutoff_nm": CUTOFF, "width": 8, "n_interactions": 1}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lj_frames(n_frames: int = 40, every: int = 20, seed: int = 1) -> ForceDataset:
    system, _, positions, box = lj_fluid(n_side=4)
    integrator = openmm.LangevinMiddleIntegrator(T, 5.0, 0.005)
    integrator.setRandomNumberSeed(seed)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": "1"})
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 100)
    context.setVelocitiesToTemperature(T, seed)
    integrator.step(400)
    pos, forces, times = [], [], []
    for _ in range(n_frames):
        integrator.step(every)
        state = context.getState(getPositions=True, getForces=True)
        pos.append(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
        forces.append(
            state.getForces(asNumpy=True).value_in_unit(
                openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
            )
        )
        times.append(state.getTime().value_in_unit(openmm.unit.picosecond))
    n = len(positions)
    density = n / float(np.prod(box)) * MASS * AMU_NM3_TO_G_CM3
    return ForceDataset(
        positions_nm=np.array(pos),
        box_nm=np.tile(box, (n_frames, 1)),
        forces_kj_mol_nm=np.array(forces),
        times_ps=np.array(times),
        masses_amu=np.full(n, MASS),
        state=StatePoint("argon", T, density, n, "lj-test"),
    )


@pytest.fixture(scope="module")
def lj_data() -> ForceDataset:
    return _lj_frames()


def _write_run_dir(path: Path, ds: ForceDataset, *, forces: bool = True) -> Path:
    """An all-atom-like run directory (summary.json + cg_trajectory.npz) from a dataset."""
    path.mkdir(parents=True)
    traj = ds.to_trajectory()
    if not forces:
        traj = CGTrajectory(traj.positions_nm, traj.box_nm, traj.times_ps, traj.masses_amu)
    traj.save(path / "cg_trajectory.npz")
    summary = {
        "molecule": "argon",
        "n_molecules": ds.n_beads,
        "temperature_K": T,
        "density_g_cm3": ds.state.density_g_cm3,
        "bead_mass_amu": MASS,
        "box_nm": ds.box_nm[0].tolist(),
        "pressure_bar": 500.0,
        "has_forces": forces,
    }
    (path / "summary.json").write_text(json.dumps(summary))
    return path


@pytest.fixture(scope="module")
def lj_run_dir(lj_data, tmp_path_factory) -> Path:
    return _write_run_dir(tmp_path_factory.mktemp("aa") / "run", lj_data.select(slice(0, 20)))


def _cluster(n: int = 10, seed: int = 3) -> np.ndarray:
    """Beads at least 0.3 nm apart inside a 0.55 nm sphere (float64, nm)."""
    rng = np.random.default_rng(seed)
    points: list[np.ndarray] = []
    while len(points) < n:
        p = rng.uniform(-0.55, 0.55, 3)
        if np.linalg.norm(p) < 0.55 and all(np.linalg.norm(p - q) > 0.3 for q in points):
            points.append(p)
    return np.array(points)


def _model(name: str, **extra) -> torch.nn.Module:
    torch.manual_seed(0)
    hp = {"cutoff_nm": 0.9, "width": 8, "n_interactions": 2, "energy_scale_kj_mol": 2.5}
    hp.update({"prior_sigma_nm": 0.3, "prior_epsilon_kj_mol": 1.0, **extra})
    return build_model(name, **hp).double()


# ----------------------------------------------------------------- exactness, symmetry
@pytest.mark.parametrize(
    ("name", "extra"), [("schnet", {}), ("hipnn", {}), ("hipnn", {"l_max": 1})]
)
def test_forces_are_minus_energy_gradient(name, extra):
    model = _model(name, **extra)
    box = torch.tensor([2.0, 2.1, 1.9], dtype=torch.float64)
    pos = torch.tensor(_cluster(12) + 1.0, dtype=torch.float64)
    pos[0] += torch.tensor([0.95, 0.0, 0.0], dtype=torch.float64)  # a pair across the boundary
    _, forces = model.energy_and_forces(pos, box)
    h = 1.0e-6
    numeric = torch.zeros_like(pos)
    with torch.no_grad():
        for k in range(pos.shape[0]):
            for c in range(3):
                plus, minus = pos.clone(), pos.clone()
                plus[k, c] += h
                minus[k, c] -= h
                numeric[k, c] = -(model(plus, box) - model(minus, box)) / (2 * h)
    scale = float(forces.abs().max())
    assert scale > 1.0
    assert torch.allclose(forces, numeric, atol=1e-6 * scale, rtol=0)
    assert torch.allclose(forces.sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-9 * scale)


@pytest.mark.parametrize("name", MODELS)
def test_energy_invariance(name):
    """Translation (through the boundary), rotation, permutation, periodic images."""
    model = _model(name)
    box = torch.full((3,), 4.0, dtype=torch.float64)  # no periodic image within the cutoff
    x = _cluster(10) + 2.0
    pos = torch.tensor(x, dtype=torch.float64)
    energy, forces = model.energy_and_forces(pos, box)
    angle = 0.7
    axis = np.array([1.0, 2.0, -0.5]) / np.linalg.norm([1.0, 2.0, -0.5])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
    centre = x.mean(0)
    rotated = torch.tensor((x - centre) @ rot.T + centre, dtype=torch.float64)
    e_rot, f_rot = model.energy_and_forces(rotated, box)
    assert float(e_rot) == pytest.approx(float(energy), rel=1e-12, abs=1e-10)
    assert torch.allclose(f_rot, forces @ torch.tensor(rot.T), atol=1e-9)
    shifted = pos + torch.tensor([1.7, -2.9, 3.3], dtype=torch.float64)
    assert float(model(shifted, box).detach()) == pytest.approx(float(energy), rel=1e-12)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    e_perm, f_perm = model.energy_and_forces(pos[perm], box)
    assert float(e_perm) == pytest.approx(float(energy), rel=1e-12)
    assert torch.allclose(f_perm, forces[perm], atol=1e-10)
    imaged = pos.clone()
    imaged[3] += torch.tensor([4.0, -8.0, 0.0], dtype=torch.float64)
    assert float(model(imaged, box).detach()) == pytest.approx(float(energy), rel=1e-12)


# ----------------------------------------------------------------- learning
@pytest.fixture(scope="module")
def trained(lj_data, tmp_path_factory) -> dict[str, dict]:
    """Both networks trained on the LJ forces (40 frames: 32 training, 8 validation; 160
    optimiser steps)."""
    root = tmp_path_factory.mktemp("trained")
    results = {}
    for name in MODELS:
        results[name] = train_model(
            [lj_data],
            root / name,
            model=name,
            hyperparameters={"cutoff_nm": CUTOFF, "width": 16, "n_interactions": 1},
            epochs=10,
            batch_frames=2,
            lr=5.0e-3,
            seed=0,
            n_blocks=5,
        )
        results[name]["dir"] = root / name
    return results


@pytest.mark.parametrize("name", MODELS)
def test_gnn_learns_pair_forces(trained, name):
    summary = trained[name]
    floor = summary["noise_floor"]
    zero = floor["zero_force_val_loss"]  # ⟨|F|²⟩ ≈ 7000 (kJ/mol/nm)²
    assert zero > 3000.0
    # the LJ liquid is a pair fluid: the pair MS-CG bound is (nearly) zero
    assert floor["pair_fm_val_loss"] < 1e-3 * zero
    # the network gets its validation loss below 2.5 % of predicting zero force (reached:
    # about 0.6 % SchNet, 0.9 % HIP-NN-TS)
    assert summary["best_val_loss"] < 0.025 * zero
    history = json.loads((summary["dir"] / "summary.json").read_text())
    assert history["epochs_run"] == 10
    lines = (summary["dir"] / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_loss,val_loss,lr"
    first = [float(v) for v in lines[1].split(",")]
    assert first[2] > 5 * summary["best_val_loss"]  # it learned during training
    _, metadata = load_model(summary["dir"] / "model.pt")
    assert metadata["cutoff_nm"] == CUTOFF
    assert metadata["bead_mass_amu"] == MASS
    assert metadata["training_state_points"][0]["temperature_K"] == T
    assert len(metadata["loss_history"]) == 10
    assert (summary["dir"] / "loss.png").stat().st_size > 1000


@pytest.mark.parametrize("name", MODELS)
def test_prior_prevents_collapse(trained, lj_data, name):
    """A trained model's energy of a bead pair rises steeply below the sampled distances."""
    prior = trained[name]["prior"]
    nearest = nearest_neighbour_distances(lj_data.positions_nm, lj_data.box_nm)
    assert prior["sigma_nm"] == pytest.approx(np.quantile(nearest, 1e-3), rel=0.05)
    assert 0.25 < prior["sigma_nm"] < 0.34  # below the LJ diameter, above overlap
    assert prior["epsilon_kj_mol"] == pytest.approx(kT(T))
    model, _ = load_model(trained[name]["dir"] / "model.pt")
    model = model.double()
    sigma, kt = prior["sigma_nm"], kT(T)
    box = torch.full((3,), 3.0, dtype=torch.float64)

    def dimer(r: float) -> tuple[float, float]:
        pos = torch.tensor([[1.0, 1.0, 1.0], [1.0 + r, 1.0, 1.0]], dtype=torch.float64)
        energy, forces = model.energy_and_forces(pos, box)
        return float(energy), float(forces[1, 0])  # > 0: pushed apart

    e_contact, _ = dimer(sigma)
    e_half, f_half = dimer(0.5 * sigma)
    assert e_half - e_contact > 500 * kt
    assert f_half > 1000 * kt / sigma
    energies = [dimer(r)[0] for r in np.linspace(0.3 * sigma, 0.8 * sigma, 8)]
    assert all(a > b for a, b in itertools.pairwise(energies))
    # the same architecture without the prior stays bounded at short range
    bare = _model(name, prior_sigma_nm=None, prior_epsilon_kj_mol=None)
    pos = torch.tensor([[1.0, 1.0, 1.0], [1.0 + 0.5 * sigma, 1.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        prior_module = PairPrior(sigma, kt, 12.0, CUTOFF)
        wall = float(prior_module(torch.tensor([0.5 * sigma], dtype=torch.float64)))
        assert abs(float(bare(pos, box))) < 0.01 * wall


def test_fit_prior_quantile():
    rng = np.random.default_rng(0)
    box = np.full(3, 2.0)
    positions = rng.uniform(0, 2.0, (5, 100, 3))
    prior = fit_prior([(positions, np.tile(box, (5, 1)))], 300.0, quantile=0.01)
    nearest = nearest_neighbour_distances(positions, box)
    assert np.mean(nearest < prior.sigma_nm) == pytest.approx(0.01, abs=0.003)
    with pytest.raises(InputError, match="quantile"):
        fit_prior([(positions, box)], 300.0, quantile=0.7)


# ----------------------------------------------------------------- training machinery
def test_resume_after_kill_matches_uninterrupted(lj_data, tmp_path):
    data = lj_data.select(slice(0, 12))
    settings = dict(
        model="schnet",
        hyperparameters=TINY,
        epochs=4,
        batch_frames=3,
        lr=2.0e-3,
        seed=5,
        n_blocks=4,
        dtype="float64",
    )
    straight = train_model([data], tmp_path / "straight", **settings)

    def kill(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model([data], tmp_path / "resumed", on_epoch=kill, **settings)
    assert (tmp_path / "resumed" / ".cgforge" / "checkpoint.pt").is_file()
    assert not (tmp_path / "resumed" / "summary.json").exists()
    epochs_seen = []
    resumed = train_model(
        [data], tmp_path / "resumed", on_epoch=lambda r: epochs_seen.append(r["epoch"]), **settings
    )
    assert epochs_seen == [3, 4]
    a, _ = load_model(tmp_path / "straight" / "model.pt")
    b, _ = load_model(tmp_path / "resumed" / "model.pt")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert (tmp_path / "straight" / "history.csv").read_text() == (
        tmp_path / "resumed" / "history.csv"
    ).read_text()
    assert resumed["best_val_loss"] == straight["best_val_loss"]
    # a finished run is returned, not retrained
    assert (
        train_model([data], tmp_path / "resumed", **settings)["best_val_loss"]
        == (straight["best_val_loss"])
    )


def test_fit_trains_in_memory_and_resumes_from_the_callback_state(lj_data, tmp_path, monkeypatch):
    """The pure training writes no files; resuming from the state its callback received after
    epoch 1 repeats the uninterrupted training exactly."""
    monkeypatch.chdir(tmp_path)
    data = lj_data.select(slice(0, 12))
    config = TrainConfig(
        model="schnet",
        hyperparameters=TINY,
        epochs=3,
        batch_frames=3,
        lr=2.0e-3,
        seed=5,
        n_blocks=4,
        dtype="float64",
    )
    states: list[dict] = []
    straight = fit([data], config, on_epoch=states.append)
    assert [s["epoch"] for s in states] == [1, 2, 3]
    assert [s["history"][-1]["epoch"] for s in states] == [1, 2, 3]
    assert len(straight.history) == 3 and straight.best_val_loss is not None
    assert straight.n_frames_train + straight.n_frames_validation == 12
    # the states are copies: the one of epoch 1 kept its weights while training went on
    assert not all(
        torch.equal(states[0]["model"][k], states[2]["model"][k]) for k in states[0]["model"]
    )
    seen: list[int] = []
    resumed = fit([data], config, state=states[0], on_epoch=lambda s: seen.append(s["epoch"]))
    assert seen == [2, 3]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    columns = ("epoch", "train_loss", "val_loss", "lr")
    assert [{k: h[k] for k in columns} for h in resumed.history] == [
        {k: h[k] for k in columns} for h in straight.history
    ]
    assert (resumed.best_epoch, resumed.best_val_loss) == (
        straight.best_epoch,
        straight.best_val_loss,
    )
    # a state of the last epoch trains no further
    finished = fit([data], config, state=states[-1], on_epoch=lambda s: seen.append(s["epoch"]))
    assert seen == [2, 3] and finished.best_val_loss == straight.best_val_loss
    assert list(tmp_path.iterdir()) == []


def test_study_two_combinations(lj_data, tmp_path):
    grid = {"model": "schnet", "width": [4, 8], "n_interactions": 1, "cutoff_nm": CUTOFF}
    grid.update(epochs=1, batch_frames=4, n_blocks=4)
    data = [lj_data.select(slice(0, 8))]
    calls = []
    summary = run_study(data, grid, tmp_path / "study", on_combination=lambda *a: calls.append(a))
    assert len(calls) == 2 and summary["varied"] == ["width"]
    lines = (tmp_path / "study" / "study.csv").read_text().splitlines()
    assert len(lines) == 3
    header = lines[0].split(",")
    for column in ("width", "best_val_loss", "noise_floor", "n_parameters", "train_seconds"):
        assert column in header
    rows = summary["results"]
    assert rows[0]["n_parameters"] < rows[1]["n_parameters"]
    assert all(r["best_val_loss"] > r["noise_floor"] for r in rows)
    # interrupted study: finished combinations are not retrained
    (tmp_path / "study" / "summary.json").unlink()
    model_file = tmp_path / "study" / "runs" / rows[0]["combination"] / "model.pt"
    stamp = model_file.stat().st_mtime_ns
    again = run_study(data, grid, tmp_path / "study")
    assert model_file.stat().st_mtime_ns == stamp
    assert [r["best_val_loss"] for r in again["results"]] == [r["best_val_loss"] for r in rows]
    with pytest.raises(InputError, match="another configuration"):
        run_study(data, {**grid, "width": [4, 16]}, tmp_path / "study")


# ----------------------------------------------------------------- command line, bad input
def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


def test_cli_train_study_simulate(lj_run_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    app = _app()
    result = runner.invoke(app, ["fm", "--help"])
    assert result.exit_code == 0
    for command in ("linear", "train", "simulate", "transfer", "study"):
        assert command in result.output
    out = tmp_path / "hip"
    args = ["fm", "train", str(lj_run_dir), "--model", "hipnn", "--out", str(out)]
    args += ["--epochs", "2", "--cutoff", str(CUTOFF), "--width", "8", "--interactions", "1"]
    args += ["--pressure-weight", "1e-4", "--device", "cpu", "--quiet", "--blocks", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hyperparameters"]["width"] == 8
    # the virial term sees the same pressure as the model's virial
    pressure = summary["pressure"][0]
    assert pressure["aa_pressure_bar"] == pytest.approx(500.0)
    box = json.loads((lj_run_dir / "summary.json").read_text())["box_nm"]
    area = (float(np.prod(box)) / 64) ** (2.0 / 3.0)
    expected = (pressure["model_pressure_bar"] - 500.0) / KJ_MOL_NM3_TO_BAR * area
    assert summary["val_pressure_residual_kj_mol_nm"] == pytest.approx(expected, rel=1e-3)

    grid = tmp_path / "grid.yaml"
    spec = {"model": ["schnet", "hipnn"], "width": 4, "n_interactions": 1, "cutoff_nm": CUTOFF}
    grid.write_text(yaml.safe_dump({**spec, "epochs": 1, "n_blocks": 4}))
    args = ["fm", "study", str(lj_run_dir), "--grid", str(grid), "--out", str(tmp_path / "st")]
    result = runner.invoke(app, [*args, "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "st" / "study.csv").read_text().splitlines()) == 3

    run = tmp_path / "md"
    args = ["fm", "simulate", str(out), "--beads", "64", "--temperature", str(T)]
    args += ["--production", "0.5ps", "--equilibrate", "0.1ps", "--sample-every", "0.05ps"]
    args += ["--out", str(run)]
    result = runner.invoke(app, [*args, "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (run / "summary.json").is_file()
    result = runner.invoke(app, [*args[:-2], "--production", "1", "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, InputError) and "no unit" in str(result.exception)
    args = ["fm", "transfer", str(tmp_path / "nothing"), "--references", str(lj_run_dir)]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "tr")])
    assert isinstance(result.exception, InputError) and "not found" in str(result.exception)
    calls = []
    monkeypatch.setattr(
        "cgforge.workflows.gnn_md.transferability_table",
        lambda model, refs, out, **kw: calls.append((model, refs, kw)) or [],
    )
    args = ["fm", "transfer", str(out), "--references", "a", "b", "c", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--production", "2ns", "--quiet"])
    assert result.exit_code == 0, result.output
    model, refs, settings = calls[0]
    # the training directory goes to the workflow as given: it resolves model.pt (a neural
    # model) or potential.csv (a table model) itself
    assert model == out and [r.name for r in refs] == ["a", "b", "c"]
    assert settings["production_ps"] == 2000.0


def test_bad_input(lj_data, tmp_path):
    no_forces = _write_run_dir(tmp_path / "noforces", lj_data.select(slice(0, 6)), forces=False)
    with pytest.raises(InputError, match="no mapped forces"):
        train_model([no_forces], tmp_path / "out")
    with pytest.raises(InputError, match="half the smallest box edge"):
        train_model([lj_data], tmp_path / "out2", hyperparameters={"cutoff_nm": 1.0})
    model = _model("schnet")
    path = save_model(model, tmp_path / "m.pt", {"cutoff_nm": 0.9})
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, path)
    with pytest.raises(InputError, match="version 99"):
        load_model(path)
    with pytest.raises(InputError, match="unknown training option"):
        train_model([lj_data], tmp_path / "out3", epochs_total=3)
