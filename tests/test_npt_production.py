"""NPT production (``production_ensemble="npt"``): tiny LJ bead liquids, a few ps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cgforge.engines.cg_engine import CGSystem, run_cg_md
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import InputError
from cgforge.observables import mean_with_error
from cgforge.potentials import TabulatedPotential
from cgforge.workflows.cg import analyse_cg_result

MASS = 86.18
DENSITY_NM3 = 4.6  # beads per nm³, the liquid of tests/test_lammps_engine.py


def lj_table(cutoff: float = 1.1) -> TabulatedPotential:
    n = round((cutoff - 0.3) / 0.005)
    grid = np.linspace(0.3, cutoff, n + 1)
    return TabulatedPotential.lj(3.5, 0.55, grid).smooth_cutoff(0.1)


def liquid(n: int) -> CGSystem:
    return CGSystem(lj_table(), n, (n / DENSITY_NM3) ** (1.0 / 3.0), MASS)


def protocol(engine: str, **overrides) -> MDProtocol:
    settings = dict(
        temperature_K=298.15,
        timestep_fs=5.0,
        equilibration_ps=20.0,
        production_ps=20.0,
        sample_interval_ps=0.5,
        thermo_interval_ps=0.1,
        checkpoint_interval_ps=5.0,
        platform="cpu",
        seed=7,
        save_particles=False,
        production_ensemble="npt",
        engine=engine,
    )
    settings.update(overrides)
    return MDProtocol(**settings)


def _engine_or_skip(engine: str) -> None:
    if engine == "lammps":
        pytest.importorskip("lammps")


def _check_npt_production(result, p: MDProtocol) -> None:
    th = result.thermo
    prod, eq = th["stage"] == 1, th["stage"] == 0
    volume = th["volume_nm3"][prod]
    assert volume.std() > 1e-3 * volume.mean()  # the barostat acts in production
    # every sample carries its box; box_nm is their mean
    boxes = result.frame_box_nm
    assert boxes.shape == (len(result.times_ps), 3)
    assert np.ptp(boxes[:, 0]) > 0
    assert np.allclose(result.box_nm, boxes.mean(axis=0))
    # the production samples the equilibration's NPT ensemble: same mean density. The density
    # of ~100 beads wanders slowly, so block errors are too small: 3 % of slack on top
    rho_eq, err_eq = mean_with_error(th["density_g_cm3"][eq][eq.sum() // 2 :])
    rho_prod, err_prod = mean_with_error(th["density_g_cm3"][prod])
    assert abs(rho_prod - rho_eq) < 4.0 * math.hypot(err_eq, err_prod) + 0.03 * rho_eq, (
        rho_eq,
        rho_prod,
    )
    # and holds the target pressure on average. A few blocks of a 20 ps run underestimate the
    # error of a mean whose volume wanders slowly, so a tenth of the instantaneous pressure's
    # spread (tens of bar for ~100 beads) is added: a barostat aiming at the wrong pressure by
    # hundreds of bar still fails
    samples = th["pressure_bar"][prod]
    pressure, pressure_err = mean_with_error(samples)
    slack = 5.0 * pressure_err + 0.1 * float(np.std(samples)) + 5.0
    assert abs(pressure - p.pressure_bar) < slack, (pressure, pressure_err, float(np.std(samples)))
    # the analysis uses the production's own boxes for the density
    traj, analysis, series = analyse_cg_result(result, None)
    assert np.array_equal(traj.box_nm, boxes)
    assert analysis.density_g_cm3 == pytest.approx(rho_prod)
    assert series is not None and len(series) == prod.sum()
    assert analysis.diffusion.diffusion_nm2_ps > 0


def test_lammps_npt_production_samples_the_npt_ensemble(tmp_path):
    _engine_or_skip("lammps")
    p = protocol("lammps", equilibration_ps=40.0, production_ps=40.0)
    _check_npt_production(run_cg_md(liquid(150), p, tmp_path), p)


def test_openmm_npt_production_samples_the_npt_ensemble(tmp_path):
    p = protocol("openmm")
    _check_npt_production(run_cg_md(liquid(100), p, tmp_path), p)


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one intra-op thread is fastest, also on a machine shared with other jobs."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_torch_npt_production_samples_the_npt_ensemble(tmp_path, one_torch_thread):
    """TorchMD's Monte Carlo barostat in both stages; production from the mean NPT volume."""
    from cgforge.engines.torch_cg import TorchEngine

    p = protocol("torch")
    result = run_cg_md(liquid(100), p, tmp_path, engine=TorchEngine(device="cpu"))
    _check_npt_production(result, p)
    eq = result.thermo["stage"] == 0
    volumes = result.thermo["volume_nm3"][eq]
    assert result.npt_volume_nm3 == pytest.approx(volumes[len(volumes) // 2 :].mean(), rel=1e-12)
    assert result.platform == "torch (cpu)"


def test_killed_torch_npt_production_resumes_bitwise(tmp_path, one_torch_thread):
    """A torch run killed in an NPT production resumes from its checkpoints (CPU, float64): the
    same boxes and positions as an uninterrupted run, the production started at the same mean
    equilibration volume."""
    from cgforge.engines.torch_cg import TorchEngine

    p = protocol(
        "torch",
        equilibration_ps=1.0,
        production_ps=2.0,
        checkpoint_interval_ps=0.5,
        barostat_interval=5,
    )
    engine = TorchEngine(device="cpu")
    whole = run_cg_md(liquid(100), p, tmp_path / "whole", engine=engine)
    assert np.ptp(whole.frame_box_nm[:, 0]) > 0

    class Killed(Exception):
        pass

    def kill(stage: str, done: int, total: int, speed: float) -> None:
        if stage == "production" and done >= 300:  # 1.5 ps into production
            raise Killed

    with pytest.raises(Killed):
        run_cg_md(liquid(100), p, tmp_path / "killed", progress=kill, engine=engine)
    resumed = run_cg_md(liquid(100), p, tmp_path / "killed", engine=engine)
    assert np.array_equal(resumed.frame_box_nm, whole.frame_box_nm)
    assert np.array_equal(resumed.bead_positions_nm, whole.bead_positions_nm)
    assert resumed.npt_volume_nm3 == whole.npt_volume_nm3
    for column, values in whole.thermo.items():
        assert np.array_equal(resumed.thermo[column], values), column


def test_all_atom_runs_refuse_npt_production():
    from cgforge.workflows.aa import AAConfig

    with pytest.raises(InputError, match="npt"):
        AAConfig(molecule="3-methylpentane", protocol=MDProtocol(production_ensemble="npt"))


@pytest.mark.parametrize("engine", ["lammps", "openmm"])
def test_killed_npt_production_resumes(tmp_path, engine):
    _engine_or_skip(engine)
    # OpenMM's CPU platform sums forces in a thread-dependent order: compare on Reference
    platform = "reference" if engine == "openmm" else "cpu"
    p = protocol(
        engine,
        equilibration_ps=2.0,
        production_ps=6.0,
        checkpoint_interval_ps=1.0,
        platform=platform,
    )
    whole = run_cg_md(liquid(100), p, tmp_path / "whole")

    class Killed(Exception):
        pass

    def kill(stage: str, done: int, total: int, speed: float) -> None:
        if stage == "production" and done >= 700:  # 3.5 ps into production
            raise Killed

    with pytest.raises(Killed):
        run_cg_md(liquid(100), p, tmp_path / "killed", progress=kill)
    assert '"production"' in (tmp_path / "killed" / "state.json").read_text()
    resumed = run_cg_md(liquid(100), p, tmp_path / "killed")
    assert np.array_equal(resumed.times_ps, whole.times_ps)
    assert resumed.frame_box_nm.shape == whole.frame_box_nm.shape
    before = resumed.times_ps <= 3.0 + 1e-9
    assert np.array_equal(resumed.bead_positions_nm[before], whole.bead_positions_nm[before])
    assert np.array_equal(resumed.frame_box_nm[before], whole.frame_box_nm[before])
    # the resumed part continues the trajectory and the box without a jump
    jump = np.abs(np.diff(resumed.bead_positions_nm, axis=0)).max()
    assert jump < 0.25 * resumed.box_nm.min()
    assert np.abs(np.diff(resumed.frame_box_nm[:, 0])).max() < 0.05 * resumed.box_nm[0]


def test_cg_workflow_reports_the_npt_production_density(tmp_path):
    pytest.importorskip("lammps")
    from cgforge.potentials.io import write_csv
    from cgforge.workflows.cg import run_cg

    table = write_csv(tmp_path / "lj.csv", lj_table())
    p = protocol("lammps", equilibration_ps=4.0, production_ps=4.0)
    box = (150 / DENSITY_NM3) ** (1.0 / 3.0)
    summary = run_cg(
        table, mass_amu=MASS, n_beads=150, protocol=p, out=tmp_path / "run", box_nm=box
    )
    assert summary["density_source"] == "NPT production"
    assert summary["production_ensemble"] == "npt"
    thermo = np.genfromtxt(
        tmp_path / "run" / "thermo.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    prod = thermo["stage"].astype(str) == "production"
    rho, err = mean_with_error(thermo["density_g_cm3"][prod])
    assert summary["density_g_cm3"] == pytest.approx(rho, rel=1e-6)
    assert summary["density_err_g_cm3"] == pytest.approx(err, rel=1e-3)
    assert np.ptp(thermo["volume_nm3"][prod]) > 0
