"""The Monte Carlo barostat of the torch MD engine (``TorchMD(pressure_bar=...)``): the ideal
gas's volume distribution, a repulsive liquid's equation of state, bitwise resume, the version-1
checkpoints of constant-volume runs, the box limit and bad input.

Tiny systems: 20 ideal-gas beads, 100 WCA beads, the 100-bead LJ table liquid of
``tests/test_torch_md.py``; a few thousand steps each on one thread.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cgforge.engines.cg_system import lattice_positions
from cgforge.engines.torch_md import TorchMD
from cgforge.errors import InputError, SimulationError
from cgforge.methods.gnn import build_model
from cgforge.observables import mean_with_error
from cgforge.potentials import TabulatedPotential
from cgforge.potentials.neural.base import EnergyModel
from cgforge.potentials.neural.pair import TabulatedPairModel
from cgforge.units import KB_KJ_MOL_K, KJ_MOL_NM3_TO_BAR

MASS = 40.0  # amu
T = 180.0  # K


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ZeroModel(EnergyModel):
    """U = 0 everywhere: an ideal gas (the energy still depends on the inputs, for autograd)."""

    def __init__(self, cutoff_nm: float = 0.2) -> None:
        super().__init__()
        self.cutoff_nm = cutoff_nm

    def forward(self, positions_nm: torch.Tensor, box_nm: torch.Tensor) -> torch.Tensor:
        return 0.0 * (positions_nm.sum() + box_nm.sum())

    def hyperparameters(self) -> dict:
        return {"cutoff_nm": self.cutoff_nm}


def wca() -> EnergyModel:
    """Lennard-Jones cut and shifted at its minimum: purely repulsive."""
    return build_model("lj", epsilon_kj_mol=0.996, sigma_nm=0.34, cutoff_nm=0.34 * 2 ** (1 / 6))


def lj_table_model() -> TabulatedPairModel:
    table = TabulatedPotential.lj(0.996, 0.34, np.arange(0.2, 0.85 + 1e-9, 0.002))
    return TabulatedPairModel.from_potential(table.smooth_cutoff(0.1))


# ---------------------------------------------------------------------- ideal gas
def test_ideal_gas_samples_the_npt_volume_distribution():
    """Zero energy: the barostat alone sets p(V) ∝ V^N exp(−PV/kT), whose mean is
    (N + 1) kT / P and variance (N + 1) (kT/P)². 20,000 moves (one per step) pin <V> to ~0.1
    kT/P, so that the mean tells N + 1 (right) from N (the count of a move uniform in V
    misapplied to ln V moves) by ~9 standard errors; the test asserts 5."""
    n, pressure = 20, 100.0
    kt_over_p = KB_KJ_MOL_K * 300.0 / (pressure / KJ_MOL_NM3_TO_BAR)  # nm³
    expected = (n + 1) * kt_over_p
    edge = expected ** (1.0 / 3.0)
    x = np.random.default_rng(0).uniform(0.0, edge, (n, 3))
    md = TorchMD(
        ZeroModel(),
        x,
        edge,
        MASS,
        timestep_fs=10.0,
        temperature_K=300.0,
        seed=1,
        device="cpu",
        pressure_bar=pressure,
        barostat_frequency=1,
    )
    result = md.run(20_000, sample_interval=2)
    volume = result.thermo["volume_nm3"][1:]
    mean, err = mean_with_error(volume)
    assert err < 0.2 * kt_over_p, "too few samples to tell N + 1 from N"
    assert abs(mean - expected) < 5.0 * err, (mean, expected, err)
    assert abs(volume.var() / ((n + 1) * kt_over_p**2) - 1.0) < 0.2
    stats = result.barostat
    assert stats["attempts"] == 20_000 and stats["pressure_bar"] == pressure
    assert 0.25 <= stats["acceptance"] <= 0.9
    # every sample carries its (cubic) box; the thermo volume and density are that box's
    boxes = result.trajectory.box_nm
    assert np.allclose(np.prod(boxes, axis=1), result.thermo["volume_nm3"], rtol=1e-12)
    assert np.allclose(boxes[:, 0], boxes[:, 2]) and np.ptp(boxes[:, 0]) > 0.2 * edge
    assert np.allclose(result.trajectory.density_g_cm3, result.thermo["density_g_cm3"])


# ---------------------------------------------------------------------- a liquid
def test_repulsive_liquid_holds_its_equation_of_state_under_the_barostat():
    """100 WCA beads: NVT at 17.8 beads/nm³ gives a pressure P0; NPT at P0 started 10 %
    below that density must come back to it, and its mean virial pressure must be P0."""
    n, rho0 = 100, 17.8
    settings = dict(timestep_fs=10.0, temperature_K=T, tau_ps=0.1, device="cpu")
    edge = (n / rho0) ** (1.0 / 3.0)
    nvt = TorchMD(wca(), lattice_positions(n, edge, 1), edge, MASS, seed=1, **settings)
    nvt.run(500, sample_interval=5)
    p0, p0_err = mean_with_error(nvt.run(3000, sample_interval=5).thermo["pressure_bar"])

    start = (n / (0.9 * rho0)) ** (1.0 / 3.0)
    npt = TorchMD(
        wca(),
        lattice_positions(n, start, 2),
        start,
        MASS,
        seed=2,
        pressure_bar=p0,
        barostat_frequency=10,
        **settings,
    )
    settle = npt.run(1000, sample_interval=5)
    assert settle.thermo["volume_nm3"][0] == pytest.approx(n / (0.9 * rho0))
    prod = npt.run(5000, sample_interval=5)
    rho, rho_err = mean_with_error(n / prod.thermo["volume_nm3"])
    pressure, pressure_err = mean_with_error(prod.thermo["pressure_bar"])
    assert abs(rho - rho0) < 4.0 * rho_err + 0.02 * rho0, (rho, rho_err, rho0)
    assert abs(pressure - p0) < 4.0 * math.hypot(pressure_err, p0_err) + 0.03 * p0, (
        pressure,
        pressure_err,
        p0,
        p0_err,
    )
    assert abs(prod.thermo["temperature_K"].mean() - T) < 0.03 * T
    assert prod.barostat["attempts"] == 600 and 0.2 < prod.barostat["acceptance"] < 0.9
    # the conserved energy books the barostat's energy jumps: it drifts far less than the total
    assert np.ptp(prod.thermo["conserved_kJ_mol"]) < 0.5 * np.ptp(prod.thermo["total_kJ_mol"])


# ---------------------------------------------------------------------- checkpoints
def _npt_engine(seed: int = 11, **kw) -> TorchMD:
    model = lj_table_model()
    edge = (100 / 12.7) ** (1.0 / 3.0)
    settings = dict(
        timestep_fs=5.0,
        temperature_K=T,
        seed=seed,
        device="cpu",
        pressure_bar=285.0,
        barostat_frequency=3,
    )
    settings.update(kw)
    return TorchMD(model, lattice_positions(100, edge, seed), edge, MASS, **settings)


class Killed(Exception):
    pass


def _kill_at(step_to_kill: int):
    def kill(md: TorchMD, step: int) -> None:
        if step == step_to_kill:
            raise Killed

    return kill


def test_interrupted_npt_run_resumes_to_identical_results(tmp_path):
    steps = dict(n_steps=120, sample_interval=10, checkpoint_interval=30, record_forces=True)
    full = _npt_engine().run(**steps, checkpoint_dir=tmp_path / "full")
    volume = full.thermo["volume_nm3"]
    assert len(np.unique(volume[7:])) > 2, "the box must change after the checkpoint at step 60"
    with pytest.raises(Killed):
        _npt_engine().run(**steps, checkpoint_dir=tmp_path / "cut", callback=_kill_at(70))
    resumed = _npt_engine().run(**steps, checkpoint_dir=tmp_path / "cut")
    assert resumed.resumed_from_step == 60
    assert np.array_equal(resumed.trajectory.positions_nm, full.trajectory.positions_nm)
    assert np.array_equal(resumed.trajectory.forces_kj_mol_nm, full.trajectory.forces_kj_mol_nm)
    assert np.array_equal(resumed.trajectory.box_nm, full.trajectory.box_nm)
    for column, values in full.thermo.items():
        assert np.array_equal(resumed.thermo[column], values), column
    assert resumed.barostat == full.barostat
    # a run with another pressure or frequency, or without the barostat, is another run
    for other in (dict(pressure_bar=300.0), dict(barostat_frequency=4), dict(pressure_bar=None)):
        with pytest.raises(InputError, match="another run"):
            _npt_engine(**other).run(**steps, checkpoint_dir=tmp_path / "cut")


def test_version_1_checkpoints_of_constant_volume_runs_are_read(tmp_path):
    """A checkpoint written before the barostat (version 1: no box in the state, no boxes and
    no volume column in the chunks, no barostat entries in the signature) resumes an NVT run
    bitwise."""
    steps = dict(n_steps=60, sample_interval=10, checkpoint_interval=20)
    nvt = dict(pressure_bar=None)
    full = _npt_engine(**nvt).run(**steps)
    with pytest.raises(Killed):
        _npt_engine(**nvt).run(**steps, checkpoint_dir=tmp_path, callback=_kill_at(30))
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["version"] == 2
    del state["box_nm"], state["barostat"]
    del state["signature"]["pressure_bar"], state["signature"]["barostat_frequency"]
    state["version"] = 1
    torch.save(state, tmp_path / "state.pt")
    for path in tmp_path.glob("samples_*.npz"):
        with np.load(path) as data:
            chunk = {k: data[k] for k in data.files if k != "box_nm"}
        chunk["thermo"] = chunk["thermo"][:, :-1]  # no volume column
        np.savez(path, **chunk)
    resumed = _npt_engine(**nvt).run(**steps, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 20
    assert np.array_equal(resumed.trajectory.positions_nm, full.trajectory.positions_nm)
    assert np.array_equal(resumed.trajectory.box_nm, full.trajectory.box_nm)
    for column, values in full.thermo.items():
        assert np.array_equal(resumed.thermo[column], values), column
    state["version"] = 7
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(InputError, match=r"checkpoint version 7.*reads 1 and 2"):
        _npt_engine(**nvt).run(**steps, checkpoint_dir=tmp_path)


# ---------------------------------------------------------------------- limits and bad input
def test_a_box_shrinking_below_twice_the_cutoff_is_a_simulation_error():
    """An ideal gas at 100 times the pressure of its box: the box collapses, and the first
    trial box shorter than twice the cutoff stops the run with the fix."""
    n = 20
    edge = ((n + 1) * KB_KJ_MOL_K * 300.0 / (100.0 / KJ_MOL_NM3_TO_BAR)) ** (1.0 / 3.0)
    x = np.random.default_rng(0).uniform(0.0, edge, (n, 3))
    md = TorchMD(
        ZeroModel(cutoff_nm=0.4 * edge),
        x,
        edge,
        MASS,
        timestep_fs=10.0,
        temperature_K=300.0,
        device="cpu",
        pressure_bar=1.0e4,
        barostat_frequency=1,
    )
    with pytest.raises(SimulationError, match="shorter than twice the model's cutoff") as err:
        md.run(2000, sample_interval=10)
    assert "more beads" in str(err.value) and "\n" not in str(err.value)
    assert md.box_nm.min() >= 0.8 * edge  # the box was left at its last accepted size


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(pressure_bar=-1.0), "pressure must be a finite pressure >= 0 bar"),
        (dict(pressure_bar=math.nan), "pressure must be a finite pressure >= 0 bar"),
        (dict(pressure_bar=1.0, barostat_frequency=-5), "barostat frequency .* >= 1"),
        (dict(pressure_bar=1.0, barostat_frequency=0), "barostat frequency .* >= 1"),
        (dict(pressure_bar=1.0, barostat_frequency=2.5), "barostat frequency"),
        (dict(pressure_bar=1.0, thermostat="none"), "barostat needs a temperature"),
    ],
)
def test_bad_barostat_settings_are_one_line_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match) as err:
        _npt_engine(**kwargs)
    assert "\n" not in str(err.value)
