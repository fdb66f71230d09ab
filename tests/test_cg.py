"""One-bead CG systems with a tabulated potential and the ``cgforge cg`` workflow.

The model liquid is argon-like Lennard-Jones (ε = 0.996 kJ/mol, σ = 0.34 nm, 40 amu) in a
supercritical, fast-diffusing state (ρ = 12.7 nm⁻³, T = 180 K, P ≈ 285 bar), CPU platform.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import openmm
import pytest
import typer
from typer.testing import CliRunner

from cgforge.cli.cg import register
from cgforge.engines.cg_system import cg_topology, create_cg_system, lattice_positions
from cgforge.engines.openmm_md import MDRunner
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import InputError
from cgforge.observables import MSD, fit_diffusion
from cgforge.potentials import TabulatedPotential, write_csv
from cgforge.trajectory import CGTrajectory
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows.aa import default_protocol
from cgforge.workflows.cg import load_reference, run_cg

EPS = 0.996  # kJ/mol
SIGMA = 0.34  # nm
CUTOFF = 0.85  # nm
MASS = 40.0  # amu
RHO = 12.7  # beads / nm³
T = 180.0  # K
P = 285.0  # bar, the LJ pressure at RHO, T with this cutoff
N = 216
DENSITY = RHO * MASS * AMU_NM3_TO_G_CM3  # g/cm³


def lj_u(r: np.ndarray) -> np.ndarray:
    sr6 = (SIGMA / r) ** 6
    return 4.0 * EPS * (sr6 * sr6 - sr6)


def lj_f(r: np.ndarray) -> np.ndarray:
    sr6 = (SIGMA / r) ** 6
    return 24.0 * EPS * (2.0 * sr6 * sr6 - sr6) / r


def lj_table(smooth: bool = True) -> TabulatedPotential:
    table = TabulatedPotential.lj(EPS, SIGMA, np.arange(0.2, CUTOFF + 1e-9, 0.002))
    return table.smooth_cutoff(0.1) if smooth else table


def protocol(**overrides) -> MDProtocol:
    settings = dict(temperature_K=T, pressure_bar=P, timestep_fs=10.0, platform="cpu", seed=1)
    settings.update(overrides)
    eq = settings.pop("equilibration_ps", 10.0)
    prod = settings.pop("production_ps", 20.0)
    return default_protocol(eq, prod, save_particles=False, **settings)


@pytest.fixture(scope="module")
def lj_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pot") / "lj.csv"
    write_csv(path, lj_table())
    return path


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory, lj_csv) -> Path:
    """A CG run of the LJ liquid; its directory satisfies the reference contract."""
    out = tmp_path_factory.mktemp("ref") / "ref"
    run_cg(lj_csv, mass_amu=MASS, n_beads=N, protocol=protocol(), out=out, density_g_cm3=DENSITY)
    return out


# ---------------------------------------------------------------------- system
def test_tabulated_lj_gives_analytic_lj_energy_and_forces():
    """Random configuration, 216 beads: energy within 1e-5 relative, forces within 1e-4 of the
    largest force (analytic truncated LJ, shifted to U(rc) = 0, minimum image, numpy)."""
    box = (N / 20.0) ** (1.0 / 3.0)
    pos = lattice_positions(N, box, seed=7, jitter_fraction=0.1)
    system = create_cg_system(lj_table(smooth=False), N, box, MASS)
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU")
    )
    context.setPositions(pos)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(
        openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
    )

    d = pos[:, None, :] - pos[None, :, :]
    d -= box * np.round(d / box)
    r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
    np.fill_diagonal(r, np.inf)
    within = r < CUTOFF
    assert r.min() > 0.2, "configuration reaches into the wall; the comparison needs LJ pairs"
    e_ref = 0.5 * np.sum(np.where(within, lj_u(np.where(within, r, 1.0)) - lj_u(CUTOFF), 0.0))
    f_mag = np.where(within, lj_f(np.where(within, r, 1.0)), 0.0)
    f_ref = np.einsum("ij,ijk->ik", f_mag / np.where(within, r, 1.0), d)
    assert energy == pytest.approx(e_ref, rel=1e-5)
    assert np.abs(forces - f_ref).max() < 1e-4 * np.abs(f_ref).max()


def test_system_layout_and_lattice():
    system = create_cg_system(lj_table(), 125, 2.5, MASS)
    kinds = {type(f).__name__: f for f in system.getForces()}
    assert set(kinds) == {"CustomNonbondedForce", "CMMotionRemover"}
    nb = kinds["CustomNonbondedForce"]
    assert nb.getNonbondedMethod() == openmm.CustomNonbondedForce.CutoffPeriodic
    assert nb.getCutoffDistance().value_in_unit(openmm.unit.nanometer) == pytest.approx(CUTOFF)
    assert not nb.getUseLongRangeCorrection() and not nb.getUseSwitchingFunction()
    assert system.getNumParticles() == 125
    assert system.getParticleMass(3).value_in_unit(openmm.unit.dalton) == MASS
    assert cg_topology(125, 2.5).getNumAtoms() == 125
    box = np.array([2.0, 3.0, 4.0])
    pos = lattice_positions(100, box, seed=3)
    assert pos.shape == (100, 3) and np.all(pos >= 0) and np.all(pos < box)
    d = pos[:, None] - pos[None]
    d -= box * np.round(d / box)
    r = np.sqrt((d**2).sum(-1)) + np.eye(100) * 10
    assert r.min() > 0.5 * (np.prod(box) / 100) ** (1 / 3), "lattice sites overlap"
    np.testing.assert_array_equal(pos, lattice_positions(100, box, seed=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(mass_amu=0.0), "mass must be positive"),
        (dict(mass_amu=-4.0), "mass must be positive"),
        (dict(box_nm=1.6), "exceeds half the smallest box edge"),
        (dict(box_nm=[3.0, 3.0, 1.5]), "exceeds half the smallest box edge"),
        (dict(n_beads=1), "at least|>= 2"),
    ],
)
def test_create_cg_system_rejects_bad_input(kwargs, message):
    args = dict(n_beads=100, box_nm=3.0, mass_amu=MASS) | kwargs
    with pytest.raises(InputError, match=message):
        create_cg_system(lj_table(), **args)


# ---------------------------------------------------------------------- dynamics
def _diffusion_at(mass: float, seed: int, tmp: Path) -> tuple[float, float, float]:
    """D (nm²/ps), its within-run error and the mean temperature (K) of one run of ``mass``.

    Everything with a time scale scales with s = sqrt(mass / 40 amu): time step, Nosé–Hoover
    collision frequency (∝ 1/s), run length, sampling interval and the fixed MSD fit window. The
    dynamics of the two masses are then the same in reduced time t/s (from one start and one
    velocity seed they follow one path: 2e-6 nm apart after 2 ps × s), so D·s has one expected
    value. The window must correspond too: the MSD of this liquid is still bending up in it (D
    from 0.5–1 ps is ~25 % below D from 8–12 ps). The thermostat keeps every run at T; in NVE
    the random start kinetic energy spreads the mean temperatures of runs over 168–203 K. Each
    run starts from its own configuration (a Langevin melt of a jittered lattice) and its own
    velocities."""
    box = (N / RHO) ** (1.0 / 3.0)
    s = math.sqrt(mass / MASS)
    melt = MDProtocol(
        temperature_K=T,
        timestep_fs=10.0,
        equilibration_ps=0.0,
        production_ps=4.0,
        sample_interval_ps=4.0,
        thermo_interval_ps=4.0,
        production_ensemble="langevin",
        production_friction_per_ps=5.0,
        save_particles=False,
        platform="cpu",
        seed=seed,
    )
    start = MDRunner(
        create_cg_system(lj_table(), N, box, MASS),
        cg_topology(N, box),
        lattice_positions(N, box, seed),
        np.full(3, box),
        np.arange(N),
        melt,
        tmp / f"melt-{mass:g}-{seed}",
    ).run()
    proto = MDProtocol(
        temperature_K=T,
        timestep_fs=10.0 * s,
        minimize=False,
        equilibration_ps=0.0,
        production_ps=12.0 * s,
        sample_interval_ps=0.1 * s,
        thermo_interval_ps=1.0 * s,  # the mean temperature only; each row costs a pressure
        production_ensemble="nvt",
        thermostat_collision_per_ps=1.0 / s,
        save_particles=False,
        platform="cpu",
        seed=seed + 1,
    )
    result = MDRunner(
        create_cg_system(lj_table(), N, box, mass),
        cg_topology(N, box),
        start.bead_positions_nm[-1] % box,
        np.full(3, box),
        np.arange(N),
        proto,
        tmp / f"run-{mass:g}-{seed}",
    ).run()
    traj = CGTrajectory(
        result.bead_positions_nm, result.box_nm, result.times_ps, result.bead_masses_amu
    )
    d = fit_diffusion(MSD().compute(traj), t_min_ps=2.0 * s, t_max_ps=6.0 * s)
    temperature = float(np.mean(result.thermo["temperature_K"][result.thermo["stage"] == 1]))
    return d.diffusion_nm2_ps, d.diffusion_err_nm2_ps, temperature


def test_diffusion_scales_as_inverse_square_root_of_mass(tmp_path):
    """Same potential and temperature, masses 40 and 160 amu: D ∝ m^α with α = −1/2.

    Five independent runs per mass (own start, own seeds; see :func:`_diffusion_at`). The error
    of each mass's mean D is the larger of the scatter between its runs and their propagated
    within-run (bead-block) errors; α = ln(D₄₀/D₁₆₀)/ln(40/160) must lie within 6 of its
    errors of −1/2, and those errors must be small enough that m⁰ (α = 0) and m⁻¹ (α = −1)
    would fail. Measured in 7 repetitions with other seeds: α = −0.44 … −0.55 (D ratio
    1.84–2.15), error 0.027–0.036, deviations up to 2.0 errors (rms 1.3); with the 160 amu
    beads given 40 amu (m⁰), α = 0.01 ± 0.03. The run-to-run scatter of D is 5–8 %, up to
    1.5 × the within-run error. The earlier two-run test (one shared start, an automatic fit
    window per run) gave ratios 1.6–2.6 against its own ±0.13–0.25."""
    means, errors = {}, {}
    for mass in (40.0, 160.0):
        runs = np.array([_diffusion_at(mass, 10 * k + int(mass), tmp_path) for k in range(5)])
        d, d_err, temps = runs.T
        assert np.mean(temps) == pytest.approx(T, rel=0.02), f"{mass} amu: T = {temps}"
        means[mass] = float(np.mean(d))
        scatter = float(np.std(d, ddof=1)) / math.sqrt(d.size)
        errors[mass] = max(scatter, float(np.sqrt(np.sum(d_err**2))) / d.size)
    ratio = means[40.0] / means[160.0]
    alpha = math.log(ratio) / math.log(40.0 / 160.0)
    alpha_err = math.hypot(errors[40.0] / means[40.0], errors[160.0] / means[160.0]) / math.log(4)
    message = f"alpha {alpha:.3f} +- {alpha_err:.3f} (D ratio {ratio:.3f})"
    assert 6.0 * alpha_err < 0.45, f"too noisy to tell m^-1/2 from m^0 or m^-1: {message}"
    assert abs(alpha + 0.5) < 6.0 * alpha_err, message


# ---------------------------------------------------------------------- workflow
def test_cg_run_writes_reference_contract(reference_dir):
    summary = json.loads((reference_dir / "summary.json").read_text())
    ref = load_reference(reference_dir)  # the CG run directory is a valid reference
    assert ref.n_molecules == N and ref.bead_mass_amu == pytest.approx(MASS)
    for name in ("potential.csv", "rdf.csv", "msd.csv", "thermo.csv", "observables.png"):
        assert (reference_dir / name).is_file(), name
    # NPT at the LJ pressure of the start density keeps the density
    assert summary["density_g_cm3"] == pytest.approx(DENSITY, rel=0.05)
    assert summary["acceleration_factor"] is None and summary["rdf_deviation"] is None
    assert 1e-9 < summary["diffusion_m2_s"] < 1e-7
    assert summary["temperature_measured_K"] == pytest.approx(T, rel=0.05)


def test_cg_against_itself_as_reference(tmp_path, lj_csv, reference_dir):
    """The same model with another seed reproduces the reference within its errors."""
    summary = run_cg(
        lj_csv,
        mass_amu=None,
        n_beads=None,
        protocol=protocol(seed=2),
        out=tmp_path / "cg",
        reference_dir=reference_dir,
    )
    assert summary["n_molecules"] == N and summary["bead_mass_amu"] == pytest.approx(MASS)
    assert summary["acceleration_factor"] == pytest.approx(
        1.0, abs=max(4 * summary["acceleration_factor_err"], 0.1)
    )
    assert summary["rdf_r2"] > 0.98
    assert summary["rdf_deviation"] < 0.06
    # the supercritical state is very compressible: with 216 beads the volume fluctuates by
    # ~7 % per sample, so the mean over the second half of a 10 ps NPT stage is good to ~3 %
    assert abs(summary["density_error"]) < 0.06
    # a finished run directory returns its summary without running again
    again = run_cg(
        lj_csv,
        mass_amu=None,
        n_beads=None,
        protocol=protocol(seed=2),
        out=tmp_path / "cg",
        reference_dir=reference_dir,
    )
    assert again == json.loads((tmp_path / "cg" / "summary.json").read_text())


def test_cli_cg_command(tmp_path, lj_csv):
    app = typer.Typer()
    register(app)
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app,
        [
            "cg",
            str(lj_csv),
            "--mass",
            "40",
            "--beads",
            "125",
            "--density",
            f"{DENSITY}",
            "--equilibrate",
            "0ps",
            "--production",
            "2ps",
            "--temperature",
            "180",
            "--timestep",
            "10fs",
            "--platform",
            "cpu",
            "--quiet",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_molecules"] == 125 and summary["production_ps"] == pytest.approx(2.0)
    # no NPT stage: the box holds the requested density
    assert summary["density_g_cm3"] == pytest.approx(DENSITY, rel=1e-6)


# ---------------------------------------------------------------------- bad input
def test_run_cg_bad_input(tmp_path, lj_csv):
    proto = protocol()
    with pytest.raises(InputError, match="mass"):
        run_cg(
            lj_csv,
            mass_amu=0.0,
            n_beads=N,
            protocol=proto,
            out=tmp_path / "a",
            density_g_cm3=DENSITY,
        )
    with pytest.raises(InputError, match="half the smallest box edge"):
        run_cg(lj_csv, mass_amu=MASS, n_beads=N, protocol=proto, out=tmp_path / "b", box_nm=1.5)
    with pytest.raises(InputError, match=r"density_g_cm3 .*or box_nm"):
        run_cg(lj_csv, mass_amu=MASS, n_beads=N, protocol=proto, out=tmp_path / "c")
    with pytest.raises(InputError, match="not found"):
        run_cg(
            tmp_path / "none.csv",
            mass_amu=MASS,
            n_beads=N,
            protocol=proto,
            out=tmp_path / "d",
            density_g_cm3=DENSITY,
        )
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_reference_directory_checks(tmp_path, reference_dir):
    with pytest.raises(InputError, match="not found"):
        load_reference(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(reference_dir, broken)
    (broken / "rdf.csv").unlink()
    with pytest.raises(InputError, match=r"rdf\.csv is missing"):
        load_reference(broken)
    shutil.copy(reference_dir / "rdf.csv", broken / "rdf.csv")
    summary = json.loads((broken / "summary.json").read_text())
    del summary["pressure_bar"], summary["bead_mass_amu"]
    (broken / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="lacks bead_mass_amu, pressure_bar"):
        load_reference(broken)
    shutil.copy(reference_dir / "summary.json", broken / "summary.json")
    (broken / "rdf.csv").write_text("r_nm,g,g_err\n")
    with pytest.raises(InputError, match=r"no data rows|empty"):
        load_reference(broken)
    rows = "\n".join(f"{0.001 + 0.002 * i},0,0" for i in range(50))
    (broken / "rdf.csv").write_text("r_nm,g,g_err\n" + rows + "\n")
    with pytest.raises(InputError, match="empty RDF"):
        load_reference(broken)


def test_summary_notes_a_time_step_beyond_the_potentials_limit(tmp_path, lj_csv, reference_dir):
    """The LJ reference (40 amu, 10 fs; limit 22 fs) has no such note; the same table with
    8 amu beads (limit 22·√(8/40) = 9.9 fs) at 10 fs has one."""
    notes = json.loads((reference_dir / "summary.json").read_text())["notes"]
    assert not any("exceeds" in note for note in notes)
    light = run_cg(
        lj_csv,
        mass_amu=8.0,
        n_beads=N,
        protocol=protocol(equilibration_ps=2.0, production_ps=4.0),
        out=tmp_path / "light",
        density_g_cm3=DENSITY / 5.0,
    )
    assert any("timestep_limit_fs" in note for note in light["notes"]), light["notes"]
