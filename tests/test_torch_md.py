"""Torch energy models, neighbour lists, torch MD and the model-MD workflow (tiny systems)."""

from __future__ import annotations

import csv
import json
import math
import platform
import resource
from pathlib import Path

import numpy as np
import openmm
import pytest
import torch

from cgforge.engines.cg_engine import CGSystem, OpenMMEngine, run_cg_md
from cgforge.engines.cg_system import create_cg_system, lattice_positions
from cgforge.engines.lammps_md import LammpsEngine
from cgforge.engines.protocol import THERMO_COLUMNS, MDProtocol
from cgforge.engines.torch_cg import TorchEngine
from cgforge.engines.torch_md import TorchMD, retain_freed_memory
from cgforge.errors import InputError, SimulationError
from cgforge.methods.gnn import (
    NeighborCache,
    build_model,
    full_pairs,
    load_model,
    neighbor_pairs,
    save_model,
    use_neighbor_cache,
)
from cgforge.methods.ibi import rdf_noise
from cgforge.observables.rdf import RDFResult
from cgforge.potentials import TabulatedPotential
from cgforge.potentials.neural.pair import LennardJonesModel, TabulatedPairModel
from cgforge.units import AMU_NM3_TO_G_CM3, KB_KJ_MOL_K
from cgforge.workflows.gnn_md import is_training_state, simulate_model, transferability_table

EPS = 0.996  # kJ/mol
SIGMA = 0.34  # nm
CUTOFF = 0.85  # nm
MASS = 40.0  # amu
RHO = 12.7  # beads / nm³
T = 180.0  # K
N = 100
BOX = (N / RHO) ** (1.0 / 3.0)  # 1.99 nm
DENSITY = RHO * MASS * AMU_NM3_TO_G_CM3  # g/cm³
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: one intra-op thread is fastest, also on a machine shared with other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lj_table() -> TabulatedPotential:
    table = TabulatedPotential.lj(EPS, SIGMA, np.arange(0.2, CUTOFF + 1e-9, 0.002))
    return table.smooth_cutoff(0.1)


@pytest.fixture(scope="module")
def table_model() -> TabulatedPairModel:
    return TabulatedPairModel.from_potential(lj_table())


def liquid(seed: int = 0, n: int = N, box: float = BOX) -> np.ndarray:
    return lattice_positions(n, box, seed)


def engine(model, seed=0, **kw) -> TorchMD:
    settings = dict(timestep_fs=5.0, temperature_K=T, seed=seed, device="cpu")
    settings.update(kw)
    return TorchMD(model, liquid(seed), BOX, MASS, **settings)


# ---------------------------------------------------------------------- neighbour lists
def _reference_pairs(x: np.ndarray, box: np.ndarray, cutoff: float) -> set[tuple[int, int]]:
    pairs = set()
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            d = x[j] - x[i]
            d -= box * np.round(d / box)
            if np.dot(d, d) < cutoff * cutoff:
                pairs.add((i, j))
    return pairs


@pytest.mark.parametrize("seed", [0, 1])
def test_neighbor_pairs_match_direct_minimum_image(seed):
    rng = np.random.default_rng(seed)
    box = np.array([3.1, 3.4, 3.9])
    n = 90
    x = rng.uniform(0.0, 1.0, (n, 3)) * box
    x[:10] = x[:10] * 0.02  # beads near a corner: their pairs cross the boundaries
    x[10:20] = box - x[10:20] * 0.02
    x[20:40] += box * rng.integers(-3, 4, (20, 3))  # unwrapped: several box lengths away
    cutoff = 1.0
    expected = _reference_pairs(x, box, cutoff)
    assert any(abs(x[i] - x[j]).max() > box.min() / 2 for i, j in expected)  # via the boundary
    pos = torch.tensor(x, dtype=F64)
    b = torch.tensor(box, dtype=F64)
    results = {m: neighbor_pairs(pos, b, cutoff, method=m) for m in ("brute", "cell", "auto")}
    for i, j, r in results.values():
        assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected
        assert bool(torch.all(i < j))
        assert torch.all(torch.linalg.norm(r, dim=1) < cutoff)
        d = x[j.numpy()] - x[i.numpy()]
        assert np.allclose(r.numpy(), d - box * np.round(d / box), atol=1e-12)
    ib, jb, rb = results["brute"]
    ic, jc, rc = results["cell"]
    assert torch.equal(ib, ic) and torch.equal(jb, jc) and torch.equal(rb, rc)
    fi, _, fr = full_pairs(pos, b, cutoff)
    assert len(fi) == 2 * len(ib) and torch.equal(fr[len(ib) :], -fr[: len(ib)])
    assert torch.equal(fi[len(ib) :], jb)


def test_cell_list_equals_brute_force_for_a_larger_box():
    rng = np.random.default_rng(3)
    box = np.array([4.2, 4.5, 5.0])
    x = torch.tensor(rng.uniform(-2, 2, (700, 3)) * box, dtype=F64)
    b = torch.tensor(box, dtype=F64)
    ib, jb, rb = neighbor_pairs(x, b, 1.2, method="brute")
    ic, jc, rc = neighbor_pairs(x, b, 1.2, method="cell")  # 3-4 cells per edge
    assert len(ib) > 1000
    assert torch.equal(ib, ic) and torch.equal(jb, jc) and torch.equal(rb, rc)


def test_neighbor_cache_gives_fresh_results_and_gradients():
    rng = np.random.default_rng(5)
    box = torch.full((3,), 3.0, dtype=F64)
    x = torch.tensor(rng.uniform(0, 3, (120, 3)), dtype=F64)
    cache = NeighborCache(skin_nm=0.2)
    for step in range(12):
        x = x + torch.tensor(rng.normal(0, 0.015, x.shape))  # up to > skin/2 over the steps
        pos = x.clone().requires_grad_()
        with use_neighbor_cache(cache):
            i, j, r = neighbor_pairs(pos, box, 1.1)
        i0, j0, r0 = neighbor_pairs(x, box, 1.1)
        assert torch.equal(i, i0) and torch.equal(j, j0) and torch.equal(r.detach(), r0)
        (r**2).sum().backward()  # d/dx_j of |r_ij|² = 2 r_ij: the gradient reaches positions
        assert pos.grad is not None and float(pos.grad.abs().sum()) > 0, step
    assert 1 < cache.builds < cache.calls


def test_verlet_list_forces_equal_fresh_ones_and_rebuild_past_half_the_skin(table_model):
    box = torch.full((3,), BOX, dtype=F64)
    x0 = torch.tensor(liquid(3), dtype=F64)
    rng = np.random.default_rng(8)
    unit = rng.normal(size=x0.shape)
    unit = torch.tensor(unit / np.linalg.norm(unit, axis=1, keepdims=True), dtype=F64)
    cache = NeighborCache(skin_nm=0.1)
    with use_neighbor_cache(cache):
        table_model.energy_forces_virial(x0, box)
    assert cache.builds == 1
    # every bead moves 0.049 nm < skin/2: the list is reused, the forces are the fresh ones
    for moved, builds in ((0.049, 1), (0.051, 2)):
        x = x0 + moved * unit
        with use_neighbor_cache(cache):
            energy, forces, virial = table_model.energy_forces_virial(x, box)
        assert cache.builds == builds, moved  # past skin/2 the list is built again
        fresh = table_model.energy_forces_virial(x, box)
        assert torch.allclose(forces, fresh[1], rtol=1e-12, atol=1e-12)
        assert float(energy) == pytest.approx(float(fresh[0]), rel=1e-12)
        assert float(virial) == pytest.approx(float(fresh[2]), rel=1e-12)
    # pairs entered the cutoff between the build and the reuse: the list held them (skin)
    x = x0 + 0.049 * unit
    pairs_0 = set(zip(*(t.tolist() for t in neighbor_pairs(x0, box, CUTOFF)[:2]), strict=True))
    pairs_1 = set(zip(*(t.tolist() for t in neighbor_pairs(x, box, CUTOFF)[:2]), strict=True))
    assert pairs_1 - pairs_0


def test_md_with_a_verlet_list_follows_md_with_a_search_every_step(table_model):
    cached = engine(table_model, seed=4)
    fresh = engine(table_model, seed=4, neighbor_skin_nm=0.0)
    a = cached.run(60, sample_interval=20)
    b = fresh.run(60, sample_interval=20)
    assert a.neighbor_builds < 20 and b.neighbor_builds == 60
    assert np.allclose(a.trajectory.positions_nm, b.trajectory.positions_nm, rtol=0, atol=1e-9)
    for column in ("potential_kJ_mol", "pressure_bar", "temperature_K"):
        assert np.allclose(a.thermo[column], b.thermo[column], rtol=1e-9), column


def test_cutoff_longer_than_half_box_is_refused():
    x = torch.zeros((4, 3), dtype=F64)
    with pytest.raises(InputError, match="half the shortest box edge"):
        neighbor_pairs(x, torch.tensor([3.0, 3.0, 1.5], dtype=F64), 0.8)
    with pytest.raises(InputError, match="positive"):
        neighbor_pairs(x, torch.tensor([3.0, 3.0, 3.0], dtype=F64), -1.0)


# ---------------------------------------------------------------------- models
def test_pair_model_forces_and_virial_are_derivatives_of_the_energy(table_model):
    x = torch.tensor(liquid(2), dtype=F64)
    box = torch.full((3,), BOX, dtype=F64)
    energy, forces, virial = table_model.energy_forces_virial(x, box)
    e2, f2 = table_model.energy_and_forces(x, box)
    assert float(energy) == float(e2) and torch.equal(forces, f2)
    h = 1e-6
    for bead, axis in [(0, 0), (17, 1), (63, 2), (99, 0)]:
        xp, xm = x.clone(), x.clone()
        xp[bead, axis] += h
        xm[bead, axis] -= h
        fd = -(float(table_model(xp, box)) - float(table_model(xm, box))) / (2 * h)
        assert fd == pytest.approx(float(forces[bead, axis]), rel=1e-6, abs=1e-6)
    # virial: -dE/d(eps) under uniform scaling equals the pair sum of r_ij . f_ij
    _, _, r = neighbor_pairs(x, box, table_model.cutoff_nm)
    d = torch.linalg.norm(r, dim=1).numpy()
    pair_sum = float(np.sum(d * lj_table().force(d)))
    assert float(virial) == pytest.approx(pair_sum, rel=1e-9)
    fd_virial = -(
        float(table_model(x * (1 + h), box * (1 + h)))
        - float(table_model(x * (1 - h), box * (1 - h)))
    ) / (2 * h)
    assert float(virial) == pytest.approx(fd_virial, rel=1e-5)


def test_pair_table_model_reproduces_openmm_energy_and_forces(table_model):
    pos = liquid(4)
    system = create_cg_system(lj_table(), N, BOX, MASS)
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(pos)
    state = context.getState(getEnergy=True, getForces=True)
    e_mm = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    f_mm = np.asarray(
        state.getForces(asNumpy=True).value_in_unit(
            openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
        )
    )
    md = TorchMD(table_model, pos, BOX, MASS, timestep_fs=5.0, temperature_K=T, device="cpu")
    assert md.potential_kj_mol == pytest.approx(e_mm, rel=1e-6)
    f = md.forces_kj_mol_nm.numpy()
    assert np.abs(f - f_mm).max() < 1e-4 * np.abs(f_mm).max()


def test_analytic_lj_model_agrees_with_the_table():
    lj = build_model("lj", epsilon_kj_mol=EPS, sigma_nm=SIGMA, cutoff_nm=CUTOFF)
    r = torch.linspace(0.3, 0.8, 50, dtype=F64)
    table = TabulatedPairModel.from_potential(
        TabulatedPotential.lj(EPS, SIGMA, np.arange(0.2, CUTOFF + 1e-9, 0.001))
    )
    assert torch.allclose(lj.pair_energy(r), table.pair_energy(r), atol=1e-5)
    assert float(lj.pair_energy(torch.tensor(CUTOFF, dtype=F64))) == 0.0


def test_save_load_round_trip_and_foreign_files(tmp_path, table_model):
    x = torch.tensor(liquid(1), dtype=F64)
    box = torch.full((3,), BOX, dtype=F64)
    meta = {"cutoff_nm": CUTOFF, "bead_mass_amu": MASS, "molecule": "argon", "units": "nm kJ/mol"}
    path = save_model(table_model, tmp_path / "model.pt", meta)
    loaded, got = load_model(path)
    assert isinstance(loaded, TabulatedPairModel) and got == meta
    assert loaded.dtype == F64 and loaded.cutoff_nm == table_model.cutoff_nm
    assert float(loaded(x, box)) == float(table_model(x, box))
    lj = LennardJonesModel(EPS, SIGMA, CUTOFF).float()
    lj_back, _ = load_model(save_model(lj, tmp_path / "lj.pt", {}))
    assert lj_back.dtype == torch.float32 and lj_back.hyperparameters() == lj.hyperparameters()

    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("not a model\n")
    with pytest.raises(InputError, match="not a cgforge model"):
        load_model(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a cgforge model"):
        load_model(tmp_path / "other.pt")
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(InputError, match="version 99"):
        load_model(tmp_path / "future.pt")
    with pytest.raises(InputError, match="plain JSON"):
        save_model(table_model, tmp_path / "bad.pt", {"array": np.zeros(2)})
    with pytest.raises(InputError, match="unknown energy model"):
        build_model("no-such-model")


# ---------------------------------------------------------------------- dynamics
def test_nve_conserves_energy(table_model):
    md = engine(table_model, timestep_fs=2.0, thermostat="none", seed=3)
    result = md.run(300, sample_interval=10)
    e = result.thermo["total_kJ_mol"]
    kinetic = result.thermo["kinetic_kJ_mol"]
    # total energy constant to 1e-3 of the kinetic energy (its fluctuations are ~10 %)
    assert np.ptp(e) < 1e-3 * kinetic.mean()
    assert np.ptp(kinetic) > 50 * np.ptp(e)
    assert np.array_equal(result.thermo["conserved_kJ_mol"], e)
    momentum = (md.masses_amu[:, None] * md.velocities_nm_ps).sum(0)
    assert float(momentum.abs().max()) < 1e-9
    assert result.trajectory.n_frames == 31 and result.neighbor_builds < 300


def test_nvt_bussi_holds_the_temperature(table_model):
    md = engine(table_model, tau_ps=0.05, seed=7, temperature_K=240.0)
    result = md.run(400, sample_interval=2)
    t = result.thermo["temperature_K"][50:]
    # mean within 6 % (instantaneous T fluctuates by sqrt(2/297) = 8 % per sample)
    assert abs(t.mean() - 240.0) < 0.06 * 240.0
    assert 0.03 < t.std() / 240.0 < 0.15
    # the conserved energy (total minus the thermostat's work) drifts far less than the total
    c = result.thermo["conserved_kJ_mol"]
    assert np.ptp(c) < 0.2 * np.ptp(result.thermo["total_kJ_mol"])
    assert md.n_dof == 3 * N - 3
    k = result.thermo["kinetic_kJ_mol"]
    assert np.allclose(result.thermo["temperature_K"], 2 * k / (md.n_dof * KB_KJ_MOL_K))


def lj_pair_force(r: np.ndarray) -> np.ndarray:
    """−dU/dr of Lennard-Jones (kJ/mol/nm; positive = repulsive)."""
    sr6 = (SIGMA / r) ** 6
    return 24.0 * EPS * (2.0 * sr6 * sr6 - sr6) / r


def test_virial_and_pressure_of_isolated_pairs_match_the_analytic_sum():
    """27 dimers 3 nm apart in a 9 nm box (no pair between dimers within the cutoff); their
    separations span the repulsive wall, the minimum and the attractive tail, and one dimer
    straddles the periodic boundary. W = Σ r·F(r) (F = −dU/dr), P = (2K + W)/(3V): both are
    known exactly, so a wrong sign, a missing pair or a lost minimum image shows."""
    rng = np.random.default_rng(5)
    edge = 9.0
    sites = (np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * 3
    sites[0] = [0.1, 4.5, 4.5]  # its partner lies across the x = 0 face
    r = 0.30 + 0.52 * np.linspace(0.0, 1.0, 27) ** 1.5  # denser on the wall
    direction = rng.normal(size=(27, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    direction[0] = [-1.0, 0.0, 0.0]
    pos = np.concatenate([sites, (sites + r[:, None] * direction) % edge])
    virial = float(np.sum(r * lj_pair_force(r)))
    assert np.sum(r < 2 ** (1 / 6) * SIGMA) >= 5 and np.sum(r > 2 ** (1 / 6) * SIGMA) >= 5
    vel = rng.normal(scale=0.2, size=pos.shape)
    kinetic = 0.5 * MASS * float(np.sum(vel**2))
    for model in (
        build_model("lj", epsilon_kj_mol=EPS, sigma_nm=SIGMA, cutoff_nm=CUTOFF),
        TabulatedPairModel.from_potential(
            TabulatedPotential.lj(EPS, SIGMA, np.arange(0.2, CUTOFF + 1e-9, 0.0005))
        ),
    ):
        md = TorchMD(
            model,
            pos,
            edge,
            MASS,
            timestep_fs=5.0,
            thermostat="none",
            velocities_nm_ps=vel,
            device="cpu",
        )
        tol = 1e-9 if isinstance(model, LennardJonesModel) else 2e-3  # table: spline of U
        assert md.virial_kj_mol == pytest.approx(virial, rel=tol), type(model).__name__
        pressure = (2.0 * kinetic + virial) / (3.0 * edge**3) * 16.6054  # bar per kJ/mol/nm³
        assert md.kinetic_energy() == pytest.approx(kinetic, rel=1e-12)
        assert md.pressure_bar() == pytest.approx(pressure, rel=max(tol, 1e-5))


def test_engine_pressure_follows_the_volume_derivative_of_the_energy_during_a_run():
    """After 30 steps of the 100-bead liquid, the engine's pressure equals 2K/(3V) − dU/dV with
    dU/dV from a central finite difference of the energy under a uniform scaling of positions
    and box: the virial is that of the current configuration, not of the start."""
    model = build_model("lj", epsilon_kj_mol=EPS, sigma_nm=SIGMA, cutoff_nm=CUTOFF)
    md = engine(model)
    start_virial = md.virial_kj_mol
    md.run(30, sample_interval=10)
    pos = md.positions_nm.clone()
    box = md.box_nm.clone()
    h = 1e-5

    def energy(scale: float) -> float:
        return float(model(pos * scale, box * scale))

    volume = BOX**3
    d_energy_d_volume = (energy(1 + h) - energy(1 - h)) / (volume * ((1 + h) ** 3 - (1 - h) ** 3))
    assert abs(d_energy_d_volume) * volume > 30.0, "the test needs a configuration with a virial"
    assert abs(md.virial_kj_mol - start_virial) > 1e-3 * abs(start_virial), "beads did not move"
    expected = (2.0 * md.kinetic_energy() / (3.0 * volume) - d_energy_d_volume) * 16.6054
    assert md.pressure_bar() == pytest.approx(expected, rel=1e-5)


def test_blow_up_is_reported_with_the_step():
    model = build_model("lj", epsilon_kj_mol=EPS, sigma_nm=SIGMA, cutoff_nm=CUTOFF)
    pos = liquid(0)
    pos[1] = pos[0] + [0.1, 0.0, 0.0]  # deep overlap: |F| ~ 1e7 kJ/mol/nm
    with pytest.raises(SimulationError, match=r"step 0 .*smaller time step.*repulsive"):
        TorchMD(model, pos, BOX, MASS, timestep_fs=5.0, temperature_K=T, device="cpu")
    md = engine(model, timestep_fs=60.0)  # far too long a time step: beads collide
    with pytest.raises(SimulationError, match=r"blew up at step [1-9]\d*"):
        md.run(200, sample_interval=10)


def test_interrupted_run_resumes_to_identical_results(tmp_path, table_model):
    steps = dict(n_steps=120, sample_interval=10, checkpoint_interval=30, record_forces=True)
    full = engine(table_model, seed=11).run(**steps, checkpoint_dir=tmp_path / "full")

    class Killed(Exception):
        pass

    def kill(md, step):
        if step == 70:
            raise Killed

    first = engine(table_model, seed=11)
    with pytest.raises(Killed):
        first.run(**steps, checkpoint_dir=tmp_path / "cut", callback=kill)
    second = engine(table_model, seed=11)  # a new process would build the same engine
    resumed = second.run(**steps, checkpoint_dir=tmp_path / "cut")
    assert resumed.resumed_from_step == 60
    assert np.array_equal(resumed.trajectory.positions_nm, full.trajectory.positions_nm)
    assert np.array_equal(resumed.trajectory.forces_kj_mol_nm, full.trajectory.forces_kj_mol_nm)
    for column, values in full.thermo.items():
        assert np.array_equal(resumed.thermo[column], values), column
    again = engine(table_model, seed=11).run(**steps, checkpoint_dir=tmp_path / "cut")
    assert np.array_equal(again.trajectory.positions_nm, full.trajectory.positions_nm)
    with pytest.raises(InputError, match="another run"):
        engine(table_model, seed=12).run(**steps, checkpoint_dir=tmp_path / "cut")


# ---------------------------------------------------------------------- CG-engine interface
def test_neural_model_runs_through_the_cg_engine_interface(tmp_path):
    model = build_model("schnet", cutoff_nm=CUTOFF, width=4, n_interactions=1).double()
    system = CGSystem(model, N, BOX, MASS, label="the model m.pt")
    p = MDProtocol(
        temperature_K=T,
        timestep_fs=5.0,
        equilibration_ps=0.1,
        production_ps=0.2,
        sample_interval_ps=0.05,
        thermo_interval_ps=0.05,
        engine="torch",
    )
    result = run_cg_md(system, p, tmp_path / "md", engine=TorchEngine(device="cpu"))
    assert tuple(result.thermo) == THERMO_COLUMNS
    assert np.allclose(result.times_ps, [0.05, 0.1, 0.15, 0.2])
    assert result.bead_positions_nm.shape == (4, N, 3)
    assert result.conserved_kJ_mol is not None
    assert result.conserved_kJ_mol.shape == result.thermo["t_ps"].shape
    assert np.allclose(result.thermo["volume_nm3"], BOX**3)
    assert result.platform == "torch (cpu)"
    # the engine ran the model itself: its energy of a production frame is the thermo's
    x = torch.tensor(result.bead_positions_nm[0] % BOX, dtype=F64)
    with torch.no_grad():
        energy = float(model(x, torch.full((3,), BOX, dtype=F64)))
    prod = result.thermo["stage"] == 1
    assert energy == pytest.approx(result.thermo["potential_kJ_mol"][prod][0], rel=1e-9)
    for table_engine in (OpenMMEngine(), LammpsEngine()):
        with pytest.raises(InputError, match=r"the model m\.pt is a neural model.*engine='torch'"):
            table_engine.run(system, p, tmp_path / table_engine.name)
        assert not (tmp_path / table_engine.name).exists()
    with pytest.raises(InputError, match="TabulatedPotential or a torch energy model"):
        CGSystem(object(), N, BOX, MASS)
    with pytest.raises(InputError, match="cutoff"):
        CGSystem(model, 8, 1.0, MASS)


# ---------------------------------------------------------------------- workflow
def test_simulate_model_and_transferability_table(tmp_path, table_model):
    model_path = save_model(
        table_model,
        tmp_path / "lj.pt",
        {
            "bead_mass_amu": MASS,
            "molecule": "argon",
            "cutoff_nm": table_model.cutoff_nm,
            "training_state_points": [{"temperature_K": T, "density_g_cm3": DENSITY}],
        },
    )
    settings = dict(
        n_beads=N, production_ps=8.0, equilibration_ps=2.0, timestep_fs=10.0, device="cpu"
    )
    summary = simulate_model(model_path, tmp_path / "ref", sample_interval_ps=0.1, **settings)
    assert summary["temperature_K"] == T and summary["density_g_cm3"] == pytest.approx(DENSITY)
    assert summary["trained_on"] is True and summary["rdf_deviation"] is None
    assert abs(summary["temperature_measured_K"] - T) < 0.1 * T
    assert summary["diffusion_m2_s"] > 0
    # virial pressure: OpenMM NPT runs of the same smoothed table hold this density at 285 bar
    # (tests/test_cg.py)
    assert abs(summary["pressure_bar"] - 285.0) < 4.0 * summary["pressure_err_bar"] + 10.0
    for name in ("rdf.csv", "msd.csv", "thermo.csv", "cg_trajectory.npz", "summary.json"):
        assert (tmp_path / "ref" / name).is_file()
    header = (tmp_path / "ref" / "thermo.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == THERMO_COLUMNS  # the columns of every CG engine
    assert summary["engine"] == "torch" and summary["device"] == "cpu"
    assert summary["ns_per_day"] > 0 and summary["steps_per_s"] > 0
    assert math.isfinite(summary["conserved_energy_drift_kj_mol_ps"])
    again = simulate_model(model_path, tmp_path / "ref", sample_interval_ps=0.1, **settings)
    assert again == json.loads((tmp_path / "ref" / "summary.json").read_text())

    # the model against its own run (another seed) at the same state point
    rows = transferability_table(
        model_path, [tmp_path / "ref"], tmp_path / "tt", seed=5, **settings
    )
    with open(tmp_path / "tt" / "transferability.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(rows) == len(table) == 1
    for column in (
        "temperature_K",
        "density_g_cm3",
        "trained_on",
        "rdf_deviation",
        "density_error",
        "pressure_bar",
        "acceleration_factor",
    ):
        assert column in table[0]
    assert table[0]["trained_on"] == "true"
    # the same model at the same state point: the RDF deviation is statistical noise only
    ref_rdf = RDFResult.from_csv(tmp_path / "ref" / "rdf.csv")
    run_rdf = RDFResult.from_csv(Path(rows[0]["run_dir"]) / "rdf.csv")
    assert rows[0]["rdf_deviation"] < 1.5 * rdf_noise(run_rdf, ref_rdf, CUTOFF + 0.001)
    assert rows[0]["density_error"] == pytest.approx(0.0, abs=1e-9)
    assert 0.5 < rows[0]["acceleration_factor"] < 2.0
    meta = {"training_state_points": [{"temperature_K": T, "density_g_cm3": DENSITY}]}
    assert is_training_state(T + 0.1, DENSITY, meta)
    assert not is_training_state(T + 20, DENSITY, meta)
    assert not is_training_state(T, 1.05 * DENSITY, meta)
    with pytest.raises(InputError, match="comes from each reference"):
        transferability_table(model_path, [tmp_path / "ref"], tmp_path / "x", temperature_K=T)


@pytest.mark.skipif(
    not (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"),
    reason="malloc tuning applies to glibc only",
)
def test_cpu_engine_keeps_freed_memory_and_steps_without_page_faults():
    torch.manual_seed(0)
    model = build_model(
        "schnet", cutoff_nm=CUTOFF, prior_sigma_nm=0.3, prior_epsilon_kj_mol=1.0
    ).float()
    md = engine(model, seed=2)  # a CPU engine tunes malloc once per process
    assert retain_freed_memory() and retain_freed_memory()
    md.run(10, sample_interval=10)  # the heap grows to the step's peak once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    md.run(40, sample_interval=20)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # glibc's defaults: about 2,000 page faults per step here (autograd intermediates of ~1 MB
    # each are mapped afresh every step); with freed memory kept, next to none
    assert faults < 40 * 50, faults
