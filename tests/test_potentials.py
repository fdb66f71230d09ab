"""Tabulated pair potentials: accuracy, cutoff smoothing, wall, validation, file formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import openmm
import pytest

from cgforge.errors import InputError
from cgforge.potentials import (
    TabulatedPotential,
    get_format,
    guess_format,
    lammps_pair_commands,
    read_csv,
    read_gromacs_xvg,
    read_lammps,
    read_potential,
    read_votca,
    write_csv,
    write_gromacs_xvg,
    write_lammps,
    write_potential,
    write_votca,
)
from cgforge.potentials import io as pio
from cgforge.units import ANGSTROM_TO_NM, KCAL_TO_KJ

EPS = 1.0  # kJ/mol
SIGMA = 0.34  # nm


def lj_u(r: np.ndarray) -> np.ndarray:
    sr6 = (SIGMA / r) ** 6
    return 4.0 * EPS * (sr6 * sr6 - sr6)


def lj_f(r: np.ndarray) -> np.ndarray:
    sr6 = (SIGMA / r) ** 6
    return 24.0 * EPS * (2.0 * sr6 * sr6 - sr6) / r


@pytest.fixture()
def lj_table() -> TabulatedPotential:
    return TabulatedPotential.lj(EPS, SIGMA, np.linspace(0.30, 1.20, 901))


def off_grid(lo: float, hi: float, n: int = 400, seed: int = 1) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).uniform(lo, hi, n))


# ---------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("dr", [0.0005, 0.001, 0.002])
def test_tabulated_lj_reproduces_analytic_lj(dr: float) -> None:
    """Well region 0.95σ–2.5σ: |ΔU|, |ΔF| ≤ 1e-4 of the analytic value or of ε (ε/σ for F).

    Measured worst cases at dr = 0.002 nm: 6e-7 (U) and 3.4e-5 (F).
    """
    grid = np.arange(0.28, 1.5 + dr / 2, dr)
    for table in (
        TabulatedPotential.lj(EPS, SIGMA, grid),  # analytic forces as node slopes
        TabulatedPotential.from_function(lj_u, grid),  # forces from a spline of U only
    ):
        r = off_grid(0.95 * SIGMA, 2.5 * SIGMA)
        u_err = np.abs(table.energy(r) - lj_u(r))
        f_err = np.abs(table.force(r) - lj_f(r))
        assert np.all(u_err <= 1e-4 * np.maximum(np.abs(lj_u(r)), EPS))
        assert np.all(f_err <= 1e-4 * np.maximum(np.abs(lj_f(r)), EPS / SIGMA))
    # the minimum sits at 2^(1/6) σ with depth −ε
    fine = TabulatedPotential.lj(EPS, SIGMA, np.arange(0.3, 1.2, 0.001))
    r_min = 2 ** (1 / 6) * SIGMA
    assert fine.energy(r_min) == pytest.approx(-EPS, rel=1e-6)
    assert abs(fine.force(r_min)) < 1e-5


def test_force_is_minus_derivative_of_energy() -> None:
    """Holds everywhere (not only at nodes), also for noisy data and for given forces."""
    rng = np.random.default_rng(7)
    grid = np.linspace(0.3, 1.2, 451)
    noisy = TabulatedPotential(grid, lj_u(grid) + rng.normal(0, 0.05, grid.size))
    given = TabulatedPotential(
        grid, lj_u(grid), force_kj_mol_nm=lj_f(grid) * (1 + rng.normal(0, 0.01, grid.size))
    )
    h = 1e-6
    r = off_grid(0.31, 1.19)
    for table in (noisy, given):
        numeric = -(table.energy(r + h) - table.energy(r - h)) / (2 * h)
        assert np.allclose(table.force(r), numeric, rtol=1e-5, atol=1e-4)
    # with forces given, the node values are used exactly
    assert np.allclose(given.force(grid[5:-5]), given.f_kj_mol_nm[5:-5], rtol=1e-12)


def test_outside_range_behaviour(lj_table: TabulatedPotential) -> None:
    cut = TabulatedPotential.lj(EPS, SIGMA, np.linspace(0.3, 1.2, 901), cutoff_nm=1.0)
    assert cut.energy(1.0) == pytest.approx(lj_u(np.array(1.0)), rel=1e-9)
    assert cut.energy(1.05) == 0.0 and cut.force(1.05) == 0.0
    assert lj_table.energy(5.0) == 0.0
    with pytest.raises(InputError, match="extend_repulsive"):
        lj_table.energy(0.25)
    assert isinstance(lj_table.energy(0.4), float)
    assert lj_table.energy(np.array([[0.4, 0.5]])).shape == (1, 2)


def test_immutable_and_resample(lj_table: TabulatedPotential) -> None:
    with pytest.raises(ValueError):
        lj_table.u_kj_mol[0] = 0.0
    with pytest.raises(AttributeError):
        lj_table.cutoff_nm = 2.0  # type: ignore[misc]
    coarse = lj_table.resample(np.linspace(0.35, 1.0, 326))
    assert coarse.r_min_nm == pytest.approx(0.35) and coarse.cutoff_nm == pytest.approx(1.0)
    r = off_grid(0.36, 0.99)
    assert np.allclose(coarse.energy(r), lj_u(r), rtol=1e-3, atol=1e-4)
    # a grid reaching past the cutoff gets zeros there
    beyond = lj_table.truncate(1.0).resample(np.linspace(0.3, 1.5, 601))
    assert beyond.cutoff_nm == pytest.approx(1.0) and beyond.energy(1.3) == 0.0


def test_grid_within_tolerance_is_snapped() -> None:
    grid = np.linspace(0.3, 1.0, 71)
    jitter = grid + 1e-7 * np.sin(np.arange(71))  # printing round-off, 1e-5 of dr
    table = TabulatedPotential(jitter, lj_u(grid))
    steps = np.diff(table.r_nm)
    assert np.ptp(steps) < 1e-14 and steps[0] == pytest.approx(0.01, rel=1e-5)


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("r", "u", "pattern"),
    [
        ([], [], "empty"),
        ([0.3, 0.31, 0.32], [1.0, 0.5, 0.2], "3 rows"),
        ([0.3, 0.31, 0.31, 0.33, 0.34], [1, 0.5, 0.4, 0.2, 0.1], "row 3.*does not increase"),
        ([0.3, 0.31, 0.32, 0.33, 0.32], [1, 0.5, 0.4, 0.2, 0.1], "row 5.*does not increase"),
        ([0.3, 0.31, 0.32, 0.33, 0.34], [1, np.nan, 0.4, 0.2, 0.1], "row 2.*not a finite"),
        ([0.3, 0.31, 0.32, 0.33, 0.34], [1, 0.5, 0.4, np.inf, 0.1], "row 4.*not a finite"),
        ([0.3, 0.31, 0.32, 0.35, 0.36, 0.37], [1, 0.5, 0.4, 0.2, 0.1, 0], "gap.*row 3.*row 4"),
        ([0.3, 0.31, 0.32, 0.3312, 0.34, 0.35], [1, 0.5, 0.4, 0.2, 0.1, 0], "row 4.*even"),
        ([-0.01, 0.0, 0.01, 0.02], [1, 0.5, 0.4, 0.2], "row 1.*negative"),
    ],
)
def test_bad_tables_raise_input_error_naming_row(r: list, u: list, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        TabulatedPotential(r, u)


def test_bad_arguments() -> None:
    grid = np.linspace(0.3, 1.0, 71)
    with pytest.raises(InputError, match="differ in length"):
        TabulatedPotential(grid, lj_u(grid)[:-1])
    with pytest.raises(InputError, match="cutoff"):
        TabulatedPotential(grid, lj_u(grid), cutoff_nm=1.5)
    with pytest.raises(InputError, match=r"row 3.*F"):
        TabulatedPotential(grid, lj_u(grid), force_kj_mol_nm=np.r_[1, 1, np.nan, lj_f(grid[3:])])


def test_from_partial_drops_undefined_core_and_rejects_interior_gaps() -> None:
    grid = np.linspace(0.2, 1.0, 81)
    u = lj_u(grid)
    u[:8] = np.inf  # g(r) = 0 -> -kT ln 0
    table = TabulatedPotential.from_partial(grid, u)
    assert table.r_min_nm == pytest.approx(grid[8]) and len(table) == 73
    u[40] = np.nan
    with pytest.raises(InputError, match="row 41"):
        TabulatedPotential.from_partial(grid, u)


def test_from_nonuniform_interpolates_onto_uniform_grid() -> None:
    r = np.sqrt(np.linspace(0.3**2, 1.2**2, 800))  # uniform in r^2, like LAMMPS RSQ
    table = TabulatedPotential.from_nonuniform(r, lj_u(r), force_kj_mol_nm=lj_f(r))
    assert np.allclose(np.diff(table.r_nm), table.dr_nm)
    x = off_grid(0.32, 1.19)
    assert np.allclose(table.energy(x), lj_u(x), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- cutoff smoothing
def test_smooth_cutoff_goes_to_zero_continuously(lj_table: TabulatedPotential) -> None:
    rc, width = 1.0, 0.15
    smooth = lj_table.smooth_cutoff(width, cutoff_nm=rc)
    assert smooth.r_max_nm == pytest.approx(rc) and smooth.cutoff_nm == pytest.approx(rc)
    assert smooth.energy(rc) == pytest.approx(0.0, abs=1e-12)
    assert smooth.force(rc) == pytest.approx(0.0, abs=1e-12)
    # continuous: values just inside the cutoff approach 0 (F ~ (rc - r)^2 for the quintic)
    for d in (1e-3, 1e-4):
        assert abs(smooth.energy(rc - d)) < 1e-2 * d
        assert abs(smooth.force(rc - d)) < 50 * d**2 + 1e-9
    # no jumps anywhere: successive samples on a 1e-5 nm grid change by O(F dr)
    r = np.arange(0.35, rc, 1e-5)
    assert np.max(np.abs(np.diff(smooth.energy(r)))) < 1e-5 * np.max(np.abs(smooth.force(r)))
    # below the switching region forces are untouched and energies shifted by -U(rc)
    inner = off_grid(0.33, rc - width - 0.01)
    assert np.allclose(smooth.force(inner), lj_table.force(inner), rtol=1e-9, atol=1e-9)
    shift = -float(lj_u(np.array(rc)))
    assert np.allclose(smooth.energy(inner), lj_table.energy(inner) + shift, atol=1e-9)
    # a cutoff between grid points is honoured exactly
    off = lj_table.smooth_cutoff(0.1, cutoff_nm=0.9995)
    assert off.r_max_nm == pytest.approx(0.9995)
    assert off.energy(0.9995) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="width"):
        lj_table.smooth_cutoff(0.0)


# ---------------------------------------------------------------------- repulsive wall
def test_extend_repulsive_is_monotone_and_continuous() -> None:
    grid = np.linspace(0.32, 1.2, 881)  # starts where IBI data would end
    table = TabulatedPotential.lj(EPS, SIGMA, grid)
    wall = table.extend_repulsive(0.2)
    rm = 0.32
    assert wall.r_min_nm == pytest.approx(0.2) and wall.wall_below_nm == pytest.approx(rm)
    assert np.allclose(wall.u_kj_mol[wall.r_nm >= rm - 1e-12], table.u_kj_mol)  # data kept
    r = np.linspace(0.2, rm, 4001)
    u, f = wall.energy(r), wall.force(r)
    assert np.all(np.diff(u) < 0) and np.all(f > 0)  # rises towards r -> 0
    for d in (1e-4, 1e-6):
        assert wall.energy(rm - d) == pytest.approx(wall.energy(rm + d), abs=2 * d * f[-1])
        assert wall.force(rm - d) == pytest.approx(wall.force(rm + d), rel=1e-2)
    assert wall.energy(rm) == pytest.approx(table.energy(rm), rel=1e-12)
    assert wall.force(rm) == pytest.approx(table.force(rm), rel=1e-12)


def test_extend_repulsive_to_zero_is_capped_and_finite(lj_table: TabulatedPotential) -> None:
    cap = 5.0e3
    wall = lj_table.extend_repulsive(0.0, cap_kj_mol=cap)
    r = np.linspace(0.0, 0.3, 3001)
    u, f = wall.energy(r), wall.force(r)
    assert np.all(np.isfinite(u)) and np.all(np.diff(u) < 0) and np.all(f > 0)
    # beyond the cap the wall continues linearly: constant force, U(0) finite
    r_cap = r[u > cap][-1]
    linear = r < r_cap - 2 * wall.dr_nm  # away from the grid interval holding the cap point
    assert np.ptp(f[linear]) < 1e-9 * f[0]
    assert u[0] == pytest.approx(cap + f[0] * r_cap, rel=1e-2)
    # off-grid r_min: table resampled to start exactly there
    odd = lj_table.extend_repulsive(0.2345)
    assert odd.r_min_nm == pytest.approx(0.2345)
    assert odd.energy(0.31) == pytest.approx(lj_u(np.array(0.31)), rel=1e-4)


def test_extend_repulsive_refuses_attractive_join_and_accepts_match_point() -> None:
    past_minimum = TabulatedPotential.lj(EPS, SIGMA, np.linspace(0.40, 1.2, 801))
    with pytest.raises(InputError, match="no repulsive region"):
        past_minimum.extend_repulsive(0.2)
    grid = np.linspace(0.33, 1.2, 871)
    u = lj_u(grid)
    u[:10] = u[10] + 2.0 * (grid[:10] - grid[10])  # noisy first points: F = -2 < 0
    noisy = TabulatedPotential(grid, u)
    assert noisy.f_kj_mol_nm[0] < 0
    first_repulsive = float(grid[np.argmax(noisy.f_kj_mol_nm > 0)])
    with pytest.raises(InputError, match=f"match_at_nm={first_repulsive:.6g}"):
        noisy.extend_repulsive(0.2)
    joined = noisy.extend_repulsive(0.2, match_at_nm=first_repulsive)
    assert joined.wall_below_nm == pytest.approx(first_repulsive)
    r = np.linspace(0.2, first_repulsive, 500)
    assert np.all(np.diff(joined.energy(r)) < 0) and np.all(joined.force(r) > 0)
    with pytest.raises(InputError, match="not a grid point"):
        noisy.extend_repulsive(0.2, match_at_nm=0.3305)


# ---------------------------------------------------------------------- smoothing, OpenMM
def test_smoothed_reduces_noise_and_keeps_consistency() -> None:
    rng = np.random.default_rng(3)
    grid = np.linspace(0.36, 1.2, 841)
    noisy = TabulatedPotential(grid, lj_u(grid) + rng.normal(0, 0.02, grid.size))
    smooth = noisy.smoothed(21)
    well = (grid > 0.38) & (grid < 1.15)
    before = np.sqrt(np.mean((noisy.u_kj_mol - lj_u(grid))[well] ** 2))
    after = np.sqrt(np.mean((smooth.u_kj_mol - lj_u(grid))[well] ** 2))
    assert after < 0.4 * before
    with pytest.raises(InputError, match="odd"):
        noisy.smoothed(20)


def test_openmm_function_reproduces_table_in_openmm(lj_table: TabulatedPotential) -> None:
    smooth = lj_table.smooth_cutoff(0.2)
    tab = smooth.openmm_function()
    assert tab.min_nm == 0.0 and tab.max_nm == pytest.approx(1.2) and tab.values[-1] == 0.0
    assert tab.energy_shift_kj_mol == pytest.approx(0.0, abs=1e-12)
    assert tab.spacing_nm == pytest.approx(0.001)
    system = openmm.System()
    for _ in range(2):
        system.addParticle(50.0)
    force = openmm.CustomNonbondedForce(tab.expression)
    force.addTabulatedFunction(tab.function_name, tab.continuous1d())
    force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    force.setCutoffDistance(tab.max_nm)
    force.addParticle([])
    force.addParticle([])
    system.addForce(force)
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    unit = openmm.unit
    for r in (0.25, 0.33, 0.3817, 0.55, 0.9, 1.1):
        context.setPositions([openmm.Vec3(0, 0, 0), openmm.Vec3(r, 0, 0)] * unit.nanometer)
        state = context.getState(getEnergy=True, getForces=True)
        e = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        fx = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        expected_u = smooth.extend_repulsive(0.0).energy(r)
        expected_f = smooth.extend_repulsive(0.0).force(r)
        assert e == pytest.approx(expected_u, rel=1e-4, abs=1e-5)
        assert fx[1][0] == pytest.approx(expected_f, rel=1e-3, abs=1e-3)


# ---------------------------------------------------------------------- file formats
@pytest.fixture()
def smooth_lj(lj_table: TabulatedPotential) -> TabulatedPotential:
    return lj_table.smooth_cutoff(0.2)


@pytest.mark.parametrize(
    ("fmt", "filename", "u_tol", "f_tol"),
    [
        ("csv", "pot.csv", 1e-9, 1e-7),
        ("lammps", "pot.table", 1e-9, 1e-7),
        ("votca", "pot.pot", 1e-6, 1e-3),  # F re-derived from U by a spline
        ("gromacs", "table_CG_CG.xvg", 1e-5, 1e-2),  # resampled to 0.002 nm
    ],
)
def test_round_trip(
    tmp_path: Path,
    smooth_lj: TabulatedPotential,
    fmt: str,
    filename: str,
    u_tol: float,
    f_tol: float,
) -> None:
    path = tmp_path / filename
    assert guess_format(path).name == fmt
    write_potential(path, smooth_lj, provenance="test LJ eps=1 sigma=0.34")
    back = read_potential(path)
    assert back.cutoff_nm == pytest.approx(smooth_lj.cutoff_nm)
    r = off_grid(0.301, 1.25)
    assert np.allclose(back.energy(r), smooth_lj.energy(r), rtol=0, atol=u_tol)
    assert np.allclose(back.force(r), smooth_lj.force(r), rtol=0, atol=f_tol)
    assert "# provenance: test LJ eps=1 sigma=0.34" in path.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_csv_without_force_column_and_row_errors(tmp_path: Path) -> None:
    grid = np.linspace(0.3, 1.0, 71)
    lines = ["# cutoff_nm: 0.95", "r_nm,U_kJ_mol"] + [
        f"{r:.6f},{u:.10f}" for r, u in zip(grid, lj_u(grid), strict=True)
    ]
    path = tmp_path / "u.csv"
    path.write_text("\n".join(lines) + "\n")
    table = read_csv(path)
    assert table.cutoff_nm == pytest.approx(0.95)
    assert table.force(0.5) == pytest.approx(lj_f(np.array(0.5)), rel=1e-3)
    lines[7] = "0.305,nan"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"u.csv line 8"):
        read_csv(path)
    path.write_text("r_A,U_kcal_mol\n3.0,1.0\n")
    with pytest.raises(InputError, match="r_nm,U_kJ_mol"):
        read_csv(path)


def test_lammps_units_and_snippet(tmp_path: Path, lj_table: TabulatedPotential) -> None:
    path = tmp_path / "cg.table"
    write_lammps(path, lj_table, keyword="CG_CG")
    text = path.read_text()
    assert "UNITS: real" in text and "\nCG_CG\nN 901 R 3 12 FPRIME" in text
    row = next(line.split() for line in text.splitlines() if line.startswith("41 "))
    # r = σ = 0.34 nm = 3.4 Å: U = 0, F = 24 ε/σ kJ/mol/nm = 24/0.34/4.184/10 kcal/mol/Å
    assert float(row[1]) == pytest.approx(3.4)
    assert float(row[2]) == pytest.approx(0.0, abs=1e-9)
    assert float(row[3]) == pytest.approx(24 / 0.34 / 4.184 / 10, rel=1e-9)
    assert float(row[3]) == pytest.approx(1.6870993, rel=1e-7)
    snippet = lammps_pair_commands(path, lj_table, keyword="CG_CG")
    assert "pair_style table linear 901" in snippet
    assert f"pair_coeff 1 1 {path} CG_CG 12\n" in snippet
    # with a wall down to r = 0, the r = 0 row is left out (LAMMPS needs rlo > 0)
    write_lammps(path, lj_table, extend_to_nm=0.0)
    text = path.read_text()
    assert "\nN 1200 R 0.01 12 " in text  # first row r = dr = 0.01 Å
    assert "pair_style table linear 1200" in lammps_pair_commands(path, lj_table, extend_to_nm=0.0)
    back = read_lammps(path)
    assert back.wall_below_nm == pytest.approx(0.3)
    assert back.energy(0.35) == pytest.approx(lj_u(np.array(0.35)), rel=1e-9)


def test_lammps_reads_documented_layout_and_sections(tmp_path: Path) -> None:
    """A hand-written file as in the LAMMPS docs: two sections, no R, uneven r, no UNITS."""
    r_a = np.r_[np.linspace(3.0, 4.0, 21), np.linspace(4.1, 10.0, 60)]
    r_nm = r_a * ANGSTROM_TO_NM
    e = lj_u(r_nm) / KCAL_TO_KJ
    f = lj_f(r_nm) / KCAL_TO_KJ * ANGSTROM_TO_NM
    body = "\n".join(
        f"{i} {r:.6f} {ei:.10g} {fi:.10g}"
        for i, (r, ei, fi) in enumerate(zip(r_a, e, f, strict=True), 1)
    )
    text = (
        "# my tables\n\nOTHER\nN 2\n\n1 1.0 0.0 0.0\n2 2.0 0.0 0.0\n\n"
        f"LJ_CG  extra words\nN {r_a.size}\n\n{body}\n"
    )
    path = tmp_path / "hand.table"
    path.write_text(text)
    table = read_lammps(path, keyword="LJ_CG")
    x = off_grid(0.31, 0.99)
    assert np.allclose(table.energy(x), lj_u(x), rtol=1e-3, atol=1e-4)
    with pytest.raises(InputError, match=r"no section 'NOPE'.*OTHER, LJ_CG"):
        read_lammps(path, keyword="NOPE")
    path.write_text("# DATE: 2024-01-01 UNITS: metal\n\nX\nN 4 R 1 4\n\n1 1 0 0\n")
    with pytest.raises(InputError, match="units 'metal'"):
        read_lammps(path)
    path.write_text("X\nN 5 R 3 7\n\n1 3 1 1\n2 4 1 1\n4 5 1 1\n")
    with pytest.raises(InputError, match=r"hand.table line 6.*index"):
        read_lammps(path)


def test_gromacs_layout(tmp_path: Path, smooth_lj: TabulatedPotential) -> None:
    path = tmp_path / "table_CG_CG.xvg"
    write_gromacs_xvg(path, smooth_lj)
    rows = np.loadtxt(path, comments=("#", "@"))
    assert rows.shape[1] == 7
    assert rows[0, 0] == 0.0 and np.allclose(np.diff(rows[:, 0]), 0.002)
    assert rows[-1, 0] == pytest.approx(1.2 + 1.0)  # rc + table-extension
    assert np.all(rows[:, 1:5] == 0.0)  # Coulomb and dispersion columns empty
    i = round(0.5 / 0.002)
    assert rows[i, 5] == pytest.approx(smooth_lj.energy(0.5), rel=1e-9)
    assert rows[i, 6] == pytest.approx(smooth_lj.force(0.5), rel=1e-9)
    assert np.all(rows[rows[:, 0] > 1.2 + 1e-9, 5:] == 0.0)
    assert np.all(np.isfinite(rows)) and np.all(np.diff(rows[rows[:, 0] < 0.3, 5]) < 0)
    back = read_gromacs_xvg(path)
    assert back.r_min_nm == 0.0 and back.wall_below_nm == pytest.approx(0.3)
    g_path = tmp_path / "table_g.xvg"
    write_gromacs_xvg(g_path, smooth_lj, column="g", table_extension_nm=0.5)
    with pytest.raises(InputError, match="column='g'"):
        read_gromacs_xvg(g_path)
    assert read_gromacs_xvg(g_path, column="g").energy(0.5) == pytest.approx(
        smooth_lj.energy(0.5), rel=1e-6
    )


def test_votca_flags_and_force_column(tmp_path: Path, lj_table: TabulatedPotential) -> None:
    wall = lj_table.truncate(1.0).extend_repulsive(0.25)
    path = tmp_path / "CG-CG.pot"
    write_votca(path, wall)
    data_rows = [line.split() for line in path.read_text().splitlines() if line[0] != "#"]
    assert all(len(row) == 3 for row in data_rows)
    flags = [row[2] for row in data_rows]
    assert flags[:50] == ["o"] * 50 and set(flags[50:]) == {"i"}
    back = read_votca(path)
    assert back.wall_below_nm == pytest.approx(0.3) and back.cutoff_nm == pytest.approx(1.0)
    write_votca(path, wall, with_force=True)
    forced = read_votca(path)
    assert np.allclose(forced.f_kj_mol_nm, wall.f_kj_mol_nm, rtol=1e-9)
    # VOTCA-style input: undefined core rows ('u') are dropped, no metadata needed
    grid = np.linspace(0.2, 1.0, 81)
    lines = [
        f"{r:.4f} {'0' if r < 0.3 else f'{lj_u(np.array(r)):.8f}'} {'u' if r < 0.3 else 'i'}"
        for r in grid
    ]
    path.write_text("\n".join(lines) + "\n")
    table = read_votca(path)
    assert table.r_min_nm == pytest.approx(0.3) and table.cutoff_nm == pytest.approx(1.0)
    lines[50] = lines[50][:-1] + "u"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"CG-CG.pot line 51.*undefined"):
        read_votca(path)


def test_write_is_atomic(
    tmp_path: Path, smooth_lj: TabulatedPotential, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pot.csv"
    write_csv(path, smooth_lj)
    before = path.read_bytes()

    def interrupted(src: str, dst: str) -> None:
        raise OSError("killed before the rename")

    monkeypatch.setattr(pio.os, "replace", interrupted)
    with pytest.raises(OSError, match="killed"):
        write_csv(path, smooth_lj.shifted(1.0))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["pot.csv"]  # temp file cleaned up
    with pytest.raises(InputError, match="does not exist"):
        write_csv(tmp_path / "missing" / "pot.csv", smooth_lj)


def test_registry_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="csv, gromacs, lammps, votca"):
        get_format("pdb")
    with pytest.raises(InputError, match="suffix"):
        guess_format(tmp_path / "pot.dat")
    assert read_potential.__doc__ and get_format("LAMMPS").name == "lammps"
    with pytest.raises(InputError, match="not found"):
        read_potential(tmp_path / "nothing.csv")
