"""Linear force matching (MS-CG): mapped-force data, the B-spline basis, the streaming normal
equations, recovery of a known pair force, the ``run_linear_fm`` workflow and ``cgforge fm linear``.

The reference system is an argon-like Lennard-Jones liquid (ε = 0.996 kJ/mol, σ = 0.34 nm,
40 amu, 125 beads at 20 nm⁻³, ρσ³ ≈ 0.79, T = 150 K, kT ≈ 1.25 ε) simulated with OpenMM's
Reference platform. Its forces are exact pair forces (LJ truncated at 0.8 nm), so MS-CG must
recover the LJ force up to spline and sampling error.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import openmm
import pytest
import typer
from scipy.interpolate import BSpline
from typer.testing import CliRunner

from _systems import lj_fluid
from cgforge.cli.fm_linear import register
from cgforge.engines.cg_system import create_cg_system, lattice_positions
from cgforge.errors import InputError
from cgforge.methods.force_data import (
    ForceDataset,
    StatePoint,
    load_force_data,
    load_force_dataset,
    time_block_split,
)
from cgforge.methods.force_matching import (
    BSplineBasis,
    ForceMatchingAccumulator,
    frame_design_matrix,
    frame_residuals,
)
from cgforge.potentials.io import read_csv
from cgforge.trajectory import CGTrajectory
from cgforge.workflows.fm_linear import run_linear_fm

EPS = 0.996  # kJ/mol
SIGMA = 0.34  # nm
CUTOFF = 0.8  # nm, the LJ cutoff of lj_fluid (box 1.84 nm)
MASS = 40.0  # amu
T = 150.0  # K
N_SIDE = 5  # 125 beads
RHO = 20.0  # beads / nm³
DT_PS = 0.004
EVERY = 10
N_FRAMES = 40


def lj_f(r: np.ndarray) -> np.ndarray:
    sr6 = (SIGMA / r) ** 6
    return 24.0 * EPS * (2.0 * sr6 * sr6 - sr6) / r


def lj_u(r: np.ndarray) -> np.ndarray:
    sr6 = (SIGMA / r) ** 6
    return 4.0 * EPS * (sr6 * sr6 - sr6)


def simulate_lj(n_frames: int, every: int, seed: int = 7) -> dict:
    """Positions and exact LJ forces of the small liquid, ``every`` steps of 4 fs apart."""
    system, _, positions, box = lj_fluid(n_side=N_SIDE, density_nm3=RHO, cutoff_nm=CUTOFF)
    integrator = openmm.LangevinMiddleIntegrator(T, 5.0, DT_PS)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, 100)
    context.setVelocitiesToTemperature(T, seed)
    integrator.step(300)
    pos, forces = [], []
    for _ in range(n_frames):
        integrator.step(every)
        state = context.getState(getPositions=True, getForces=True)
        pos.append(state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
        forces.append(
            state.getForces(asNumpy=True).value_in_unit(
                openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
            )
        )
    return {
        "positions": np.array(pos),
        "forces": np.array(forces),
        "box": np.asarray(box, dtype=float),
        "times": DT_PS * every * (1 + np.arange(n_frames)),
    }


@pytest.fixture(scope="module")
def lj_data() -> dict:
    """40 frames, 0.04 ps apart."""
    return simulate_lj(N_FRAMES, EVERY)


def _state(source: str = "test", molecule: str = "LJ") -> StatePoint:
    density = RHO * MASS * 1.66053906660e-3
    return StatePoint(molecule, T, density, N_SIDE**3, source)


def _dataset(data: dict, frames: slice | None = None) -> ForceDataset:
    key = slice(None) if frames is None else frames
    n = data["positions"].shape[1]
    return ForceDataset(
        positions_nm=data["positions"][key],
        box_nm=np.tile(data["box"], (data["positions"][key].shape[0], 1)),
        forces_kj_mol_nm=data["forces"][key],
        times_ps=data["times"][key],
        masses_amu=np.full(n, MASS),
        state=_state(),
    )


def write_run_dir(
    path: Path,
    data: dict,
    *,
    forces: bool = True,
    molecule: str = "LJ",
    summary_extra: dict | None = None,
) -> Path:
    """A directory with the files of a `cgforge aa --forces` run that force matching reads."""
    path.mkdir(parents=True)
    n_frames, n = data["positions"].shape[:2]
    traj = CGTrajectory(
        positions_nm=data["positions"],
        box_nm=np.tile(data["box"], (n_frames, 1)),
        times_ps=data["times"],
        masses_amu=np.full(n, MASS),
        forces_kj_mol_nm=data["forces"] if forces else None,
    )
    traj.save(path / "cg_trajectory.npz")
    summary = {
        "molecule": molecule,
        "source": "cgforge aa",
        "n_molecules": n,
        "temperature_K": T,
        "density_g_cm3": float(traj.density_g_cm3.mean()),
        "bead_mass_amu": MASS,
        "box_nm": data["box"].tolist(),
        "has_forces": forces,
        **(summary_extra or {}),
    }
    (path / "summary.json").write_text(json.dumps(summary))
    return path


# ---------------------------------------------------------------------- basis
def test_basis_is_scipy_cubic_bspline_and_a_partition_of_unity():
    basis = BSplineBasis(0.25, 0.8, 12)
    r = np.concatenate([np.linspace(0.25, 0.8, 301), basis.knots_nm])
    mine = basis.design_matrix(r)
    ref = BSpline.design_matrix(r, basis.knot_vector_nm, 3).toarray()
    assert mine.shape == (r.size, basis.n_basis) == ref.shape
    np.testing.assert_allclose(mine, ref, atol=1e-14)
    np.testing.assert_allclose(mine.sum(axis=1), 1.0, atol=1e-14)
    c = np.random.default_rng(0).normal(size=basis.n_basis)
    np.testing.assert_allclose(basis.spline(c)(r), mine @ c, atol=1e-12)
    with pytest.raises(InputError, match="knots"):
        BSplineBasis(0.25, 0.8, 1)
    with pytest.raises(InputError, match="r_min < r_cut"):
        BSplineBasis(0.8, 0.25, 10)


def test_design_matrix_predicts_the_pair_forces_of_a_spline():
    """G c is the force Σ_J f(r_IJ) r̂_IJ of the pair force f = Σ c_k B_k, by direct summation."""
    rng = np.random.default_rng(3)
    box = np.array([2.0, 2.2, 2.4])
    pos = rng.uniform(-1.0, 3.0, size=(30, 3))  # any periodic image
    basis = BSplineBasis(0.05, 0.9, 8)
    c = rng.normal(size=basis.n_basis)
    g, f_rows, r = frame_design_matrix(basis, (pos, box, np.zeros_like(pos)))
    assert not f_rows.any() and r.max() < 0.9
    spline = basis.spline(c)
    expected = np.zeros_like(pos)
    for i in range(30):
        for j in range(30):
            if i == j:
                continue
            d = pos[i] - pos[j]
            d -= box * np.round(d / box)
            dist = np.linalg.norm(d)
            if dist < 0.9:
                expected[i] += spline(max(dist, 0.05)) * d / dist
    np.testing.assert_allclose((g @ c).reshape(3, -1).T, expected, atol=1e-10)


# ---------------------------------------------------------------------- accumulator
def test_merged_accumulators_equal_one_over_all_frames(lj_data):
    ds = _dataset(lj_data)
    basis = BSplineBasis(0.25, CUTOFF, 30)
    whole = ForceMatchingAccumulator(basis).update_dataset(ds)
    first = ForceMatchingAccumulator(basis).update_dataset(ds, range(0, 13))
    second = ForceMatchingAccumulator(basis).update_dataset(ds, range(13, N_FRAMES))
    merged = first.copy().merge(second)
    assert merged.n_frames == whole.n_frames == N_FRAMES
    assert merged.n_pairs == whole.n_pairs
    np.testing.assert_array_equal(merged.pair_histogram, whole.pair_histogram)
    np.testing.assert_allclose(merged.gtg, whole.gtg, rtol=1e-10, atol=1e-10 * whole.gtg.max())
    np.testing.assert_allclose(merged.gtf, whole.gtf, rtol=1e-10, atol=1e-10 * abs(whole.gtf).max())
    assert merged.ftf == pytest.approx(whole.ftf, rel=1e-10)
    a, b = merged.solve(1e-5), whole.solve(1e-5)
    np.testing.assert_allclose(a.coefficients, b.coefficients, rtol=1e-8, atol=1e-8)
    assert first.n_frames == 13  # copy() left it alone
    with pytest.raises(InputError, match="different bases"):
        first.merge(ForceMatchingAccumulator(BSplineBasis(0.25, CUTOFF, 31)))


def test_ms_cg_recovers_the_lennard_jones_force_and_potential(lj_data):
    ds = _dataset(lj_data)
    basis = BSplineBasis(0.25, CUTOFF, 41)  # knots every 0.01375 nm
    result = ForceMatchingAccumulator(basis).update_dataset(ds).solve(1e-5)
    # sampled range: from the first 0.002 nm bin holding 100 pairs (about 0.33 nm) to the cutoff
    assert 0.30 < result.sampled_from_nm < 0.34
    r = np.linspace(result.sampled_from_nm, CUTOFF, 400)
    true_f = lj_f(r)
    scale = np.abs(true_f).max()  # ≈ 140 kJ/mol/nm at the start of the sampled range
    # the force within 0.5 % of its largest value over the whole sampled range ...
    assert np.abs(result.force(r) - true_f).max() < 0.005 * scale
    # ... and within 0.05 kJ/mol/nm (0.5 % of the well depth force) beyond the core
    outer = r > 0.36
    assert np.abs(result.force(r[outer]) - true_f[outer]).max() < 0.05
    # U integrated from the cutoff matches the LJ shifted to zero there within 0.005 kJ/mol
    assert np.abs(result.energy(r) - (lj_u(r) - lj_u(CUTOFF))).max() < 0.005
    assert result.energy(CUTOFF) == pytest.approx(0.0, abs=1e-12)
    assert result.force(CUTOFF + 0.01) == 0.0
    # the forces are exact pair forces: the model explains essentially all their variance
    assert result.explained_variance > 0.9999
    per_frame = frame_residuals(result, ds)
    rms, explained = per_frame.total()
    assert rms == pytest.approx(result.rms_residual_kj_mol_nm, rel=1e-6)
    assert explained == pytest.approx(result.explained_variance, abs=1e-9)
    assert per_frame.rms_residual_kj_mol_nm.shape == (N_FRAMES,)


def test_solve_refuses_undetermined_or_empty_systems(lj_data):
    ds = _dataset(lj_data, slice(0, 3))
    basis = BSplineBasis(0.05, CUTOFF, 40)  # nothing below ~0.29 nm
    acc = ForceMatchingAccumulator(basis)
    with pytest.raises(InputError, match="no frames"):
        acc.solve()
    acc.update_dataset(ds)
    with pytest.raises(InputError, match="no pair samples between"):
        acc.solve(0.0)
    smooth = acc.solve(1e-4)  # the smoothness penalty continues f into the empty range
    assert np.all(np.isfinite(smooth.coefficients))
    with pytest.raises(InputError, match="penalty"):
        acc.solve(1e-4, penalty="lasso")
    with pytest.raises(InputError, match="regularisation"):
        acc.solve(-1.0)


# ---------------------------------------------------------------------- splitting
def test_time_block_split_gives_whole_disjoint_blocks():
    train, val = time_block_split(103, 10, 0.3, seed=4)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(103))
    assert np.intersect1d(train, val).size == 0
    blocks = np.array_split(np.arange(103), 10)
    held = [b for b in blocks if np.isin(b, val).all()]
    assert len(held) == 3 and sum(b.size for b in held) == val.size  # whole blocks only
    again = time_block_split(103, 10, 0.3, seed=4)
    assert np.array_equal(again[1], val)
    train0, val0 = time_block_split(50, 5, 0.0)
    assert val0.size == 0 and np.array_equal(train0, np.arange(50))
    assert time_block_split(10, 5, 0.95)[1].size == 8  # at least one block stays for training
    with pytest.raises(InputError, match="time blocks"):
        time_block_split(3, 5, 0.2)
    with pytest.raises(InputError, match="validation fraction"):
        time_block_split(30, 5, 1.0)


# ---------------------------------------------------------------------- loading
def test_load_force_data_reads_run_directories(lj_data, tmp_path):
    a = write_run_dir(tmp_path / "a", lj_data)
    b = write_run_dir(tmp_path / "b", lj_data, summary_extra={"temperature_K": 180.0})
    datasets = load_force_data([a, b], start=4, stride=3, single_molecule=True)
    assert len(datasets) == 2
    ds = datasets[0]
    assert ds.n_frames == len(range(4, N_FRAMES, 3)) and ds.n_beads == N_SIDE**3
    np.testing.assert_array_equal(ds.forces_kj_mol_nm[1], lj_data["forces"][7])
    np.testing.assert_array_equal(ds.times_ps, lj_data["times"][4::3])
    assert ds.state.molecule == "LJ" and ds.state.source == str(a.resolve())
    assert datasets[1].state.temperature_K == 180.0
    assert ds.state.density_g_cm3 == pytest.approx(RHO * MASS * 1.66053906660e-3, rel=1e-6)


def test_load_force_data_errors_name_the_problem(lj_data, tmp_path):
    no_forces = write_run_dir(tmp_path / "noforces", lj_data, forces=False)
    with pytest.raises(
        InputError, match=r"rerun an all-atom run \(run_aa, cgforge aa\) with save_f"
    ):
        load_force_dataset(no_forces)
    # a summary that claims forces over a trajectory without them
    liar = write_run_dir(tmp_path / "liar", lj_data, forces=False)
    summary = json.loads((liar / "summary.json").read_text())
    (liar / "summary.json").write_text(json.dumps({**summary, "has_forces": True}))
    with pytest.raises(InputError, match="holds no mapped forces"):
        load_force_dataset(liar)
    with pytest.raises(InputError, match="not found"):
        load_force_dataset(tmp_path / "nowhere")
    missing = write_run_dir(tmp_path / "nosummary", lj_data)
    (missing / "summary.json").unlink()
    with pytest.raises(InputError, match=r"summary\.json is missing"):
        load_force_dataset(missing)
    garbage = write_run_dir(tmp_path / "garbage", lj_data)
    (garbage / "cg_trajectory.npz").write_bytes(b"not a trajectory")
    with pytest.raises(InputError, match=r"cg_trajectory\.npz"):
        load_force_dataset(garbage)
    truncated = write_run_dir(tmp_path / "truncated", lj_data)
    raw = (truncated / "cg_trajectory.npz").read_bytes()
    (truncated / "cg_trajectory.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cg_trajectory\.npz"):
        load_force_dataset(truncated)
    bad_json = write_run_dir(tmp_path / "badjson", lj_data)
    (bad_json / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_force_dataset(bad_json)
    other = write_run_dir(tmp_path / "other", lj_data, summary_extra={"n_molecules": 99})
    with pytest.raises(InputError, match="99 molecules"):
        load_force_dataset(other)
    good = write_run_dir(tmp_path / "good", lj_data)
    methane = write_run_dir(tmp_path / "methane", lj_data, molecule="methane")
    assert len(load_force_data([good, methane])) == 2  # allowed unless one molecule is required
    with pytest.raises(InputError, match="different molecules"):
        load_force_data([good, methane], single_molecule=True)
    with pytest.raises(InputError, match="no frames selected"):
        load_force_dataset(good, start=N_FRAMES)
    with pytest.raises(InputError, match="given twice"):
        load_force_data([good, good])
    assert zipfile.is_zipfile(good / "cg_trajectory.npz")


# ---------------------------------------------------------------------- workflow
def test_run_linear_fm_writes_a_simulatable_potential(lj_data, tmp_path):
    run = write_run_dir(tmp_path / "aa", lj_data)
    out = tmp_path / "fm"
    summary = run_linear_fm(
        [run], out, cutoff_nm=CUTOFF, n_knots=41, regularisation=1e-5, n_blocks=4, seed=1
    )
    for name in ("potential.csv", "force_table.csv", "residuals.csv", "fit.json", "fm.png"):
        assert (out / name).stat().st_size > 0, name
    assert summary["molecule"] == "LJ" and summary["n_molecules"] == N_SIDE**3
    assert summary["n_frames_train"] == 30 and summary["n_frames_validation"] == 10
    assert summary["cutoff_nm"] == CUTOFF and summary["n_knots"] == 41
    assert summary["r_min_nm"] < summary["sampled_from_nm"]
    assert summary["validation_explained_variance"] > 0.9999  # held-out frames, same physics
    assert summary["provenance"]["config"]["basis"]["n_knots"] == 41
    assert summary["validation_runs"] is None

    table = read_csv(out / "potential.csv")
    assert table.r_min_nm == 0.0 and table.cutoff_nm == pytest.approx(CUTOFF)
    assert table.wall_below_nm == pytest.approx(summary["wall_below_nm"])
    assert table.wall_below_nm >= summary["sampled_from_nm"] - 1e-9
    # inside the sampled range and below the 0.1 nm taper the table is the fitted LJ
    r = np.linspace(table.wall_below_nm, CUTOFF - 0.1, 200)
    assert np.abs(np.asarray(table.force(r)) - lj_f(r)).max() < 0.01 * np.abs(lj_f(r)).max()
    du = np.asarray(table.energy(r)) - lj_u(r)
    assert np.ptp(du) < 0.02  # equal up to the constant shift of the taper (kJ/mol)
    assert table.force(CUTOFF) == pytest.approx(0.0, abs=1e-9)
    # below the data: a monotone repulsive wall down to r = 0
    core = np.linspace(0.0, table.wall_below_nm, 50)
    assert np.all(np.diff(np.asarray(table.energy(core))) < 0.0)
    assert np.all(np.asarray(table.force(core)) > 0.0)
    # cgforge's CG engine takes it: finite energy of 125 beads on a jittered lattice
    box = lj_data["box"]
    system = create_cg_system(table, N_SIDE**3, box, MASS)
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(lattice_positions(N_SIDE**3, box, seed=2))
    energy = context.getState(getEnergy=True).getPotentialEnergy()
    assert np.isfinite(energy.value_in_unit(openmm.unit.kilojoule_per_mole))

    force_table = np.loadtxt(out / "force_table.csv", delimiter=",", skiprows=1)
    assert (out / "force_table.csv").read_text().splitlines()[0] == "r_nm,F_kJ_mol_nm"
    inner = force_table[:, 0] > summary["sampled_from_nm"]
    np.testing.assert_allclose(
        force_table[inner, 1], lj_f(force_table[inner, 0]), atol=0.01 * 150.0
    )
    residuals = np.loadtxt(out / "residuals.csv", delimiter=",", skiprows=1)
    assert residuals.shape == (N_FRAMES, 6) and residuals[:, 3].sum() == 10
    fit = json.loads((out / "fit.json").read_text())
    assert len(fit["coefficients_kj_mol_nm"]) == 43

    # rerunning a finished run returns its summary; another configuration is refused
    again = run_linear_fm(
        [run], out, cutoff_nm=CUTOFF, n_knots=41, regularisation=1e-5, n_blocks=4, seed=1
    )
    assert again == json.loads((out / "summary.json").read_text())
    with pytest.raises(InputError, match="another configuration"):
        run_linear_fm([run], out, cutoff_nm=CUTOFF, n_knots=30)


def test_run_linear_fm_rejects_bad_settings(lj_data, tmp_path):
    run = write_run_dir(tmp_path / "aa", lj_data)
    with pytest.raises(InputError, match="half the smallest box edge"):
        run_linear_fm([run], tmp_path / "a", cutoff_nm=1.0)
    with pytest.raises(InputError, match="penalty"):
        run_linear_fm([run], tmp_path / "b", penalty="l1")
    with pytest.raises(InputError, match="regularisation"):
        run_linear_fm([run], tmp_path / "c", regularisation=-1)
    with pytest.raises(InputError, match="r_min"):
        run_linear_fm([run], tmp_path / "d", cutoff_nm=0.5, r_min_nm=0.6)


# ---------------------------------------------------------------------- command line
def _app() -> typer.Typer:
    fm = typer.Typer()
    register(fm)
    app = typer.Typer()
    app.add_typer(fm, name="fm")
    return app


def test_cli_fm_linear(lj_data, tmp_path):
    run = write_run_dir(tmp_path / "aa", lj_data)
    out = tmp_path / "fm"
    result = CliRunner().invoke(
        _app(),
        [
            "fm",
            "linear",
            str(run),
            "--out",
            str(out),
            "--cutoff",
            "0.8",
            "--knots",
            "30",
            "--regularisation",
            "1e-5",
            "--no-validate",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_knots"] == 30 and summary["regularisation"] == 1e-5
    assert summary["source"] == "cgforge fm linear"
    assert "explained" in result.output

    no_forces = write_run_dir(tmp_path / "noforces", lj_data, forces=False)
    bad = CliRunner().invoke(
        _app(), ["fm", "linear", str(no_forces), "--out", str(tmp_path / "x"), "--quiet"]
    )
    assert bad.exit_code != 0
    assert isinstance(bad.exception, InputError)
    message = str(bad.exception)  # the library names the parameter, the CLI shows its flag
    assert "\n" not in message and "save_forces=True" in message and "--" not in message
    from cgforge.cli.options import with_flags

    assert "cgforge aa) with --forces" in with_flags(bad.exception, "fm")


# ---------------------------------------------------------------------- CG validation (slow)
def write_reference_dir(path: Path, data: dict) -> Path:
    """A run directory that also satisfies the reference contract (rdf.csv, msd.csv, D, P)."""
    from cgforge.liquid_analysis import analyze, write_results
    from cgforge.methods.force_matching import minimum_image_pairs
    from cgforge.units import KJ_MOL_NM3_TO_BAR, kT

    write_run_dir(path, data)
    traj = CGTrajectory.load(path / "cg_trajectory.npz")
    analysis = analyze(traj)
    write_results(path, analysis, traj, title="LJ reference")
    volume = float(np.prod(data["box"]))
    virial = []
    for pos in data["positions"]:
        _, _, _, r = minimum_image_pairs(pos, data["box"], CUTOFF)
        virial.append(np.sum(r * lj_f(r)) / (3.0 * volume))
    pressure = (traj.n_beads * kT(T) / volume + float(np.mean(virial))) * KJ_MOL_NM3_TO_BAR
    summary = json.loads((path / "summary.json").read_text())
    summary.update(analysis.summary_fields())
    summary.update({"pressure_bar": pressure, "pressure_target_bar": pressure})
    (path / "summary.json").write_text(json.dumps(summary))
    return path


@pytest.mark.slow
def test_validation_run_of_the_fitted_potential_reproduces_the_reference(tmp_path):
    """CG MD with the MS-CG potential at the reference's pressure: same g(r) and density.

    The reference samples 400 frames over 40 ps so that its g(r) is smooth enough to compare.
    """
    reference = write_reference_dir(tmp_path / "aa", simulate_lj(400, 25))
    summary = run_linear_fm(
        [reference],
        tmp_path / "fm",
        cutoff_nm=CUTOFF,
        n_knots=41,
        regularisation=1e-5,
        validate=True,
        validation_equilibration_ps=20.0,
        validation_production_ps=40.0,
        validation_timestep_fs=4.0,
        platform="cpu",
    )
    (run,) = summary["validation_runs"]
    assert (tmp_path / "fm" / run["dir"] / "summary.json").is_file()
    assert run["rdf_deviation"] < 0.04
    assert abs(run["density_error"]) < 0.03
