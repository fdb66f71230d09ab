"""Learned CG models: datasets, k-fold network ensembles, model files, prediction, CLI.

The databases here are *synthetic ground truth for the learning machinery, not physics data*
(:mod:`cgforge.database.synthetic`): Mie pair potentials with random σ, ε and
exponent, g(r) from the HNC closure of the Ornstein–Zernike equation (or its low-density limit
exp(−βU) where only speed matters), D from an Enskog-like model D ∝ m^−½ exp(−2ε/kT)/(ρσ²),
and an acceleration factor that is a known smooth function of the synthetic parameters. The
CG runs use the argon-like tiny settings of test_cg.py scaled to these beads: 125 beads,
10 fs steps, a few ps, CPU platform.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cgforge.cli.train import register
from cgforge.database.learning import read_records
from cgforge.database.stages import database_grids, learning_grids
from cgforge.database.store import Database
from cgforge.database.synthetic import (
    MOLECULAR_MASS_AMU,
    PARAMETER_NAMES,
    build_synthetic_database,
    hnc_rdf,
    mie_table,
    synthetic_diffusion_m2_s,
    truth_from_parameters,
)
from cgforge.errors import InputError, SimulationError
from cgforge.grids import LearningGrids
from cgforge.methods.mobility import (
    AccelerationModel,
    EnsembleTrainConfig,
    MobilityModel,
    ParamsModel,
    find_pairs,
)
from cgforge.potentials.io import read_potential, write_csv
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows import predict as predict_workflow
from cgforge.workflows.aa import default_protocol
from cgforge.workflows.cg import run_cg
from cgforge.workflows.predict import predict_potential, run_predict
from cgforge.workflows.train import (
    train_acceleration,
    train_mobility,
    train_params_to_potential,
)

torch = pytest.importorskip("torch")

T = 300.0
GRIDS = LearningGrids()
#: Small, fast ensembles: 3 members, full-batch Adam.
CONFIG = EnsembleTrainConfig(
    folds=3,
    hidden=(48, 48),
    learning_rate=3e-3,
    batch_size=128,
    max_epochs=400,
    patience=40,
    seed=0,
    learning_curve=(0.5, 1.0),
)
#: A training-like record: the middle of every synthetic range.
MIDDLE = truth_from_parameters(np.full(len(PARAMETER_NAMES), 0.5))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mobility")


@pytest.fixture(scope="module")
def synthetic_db(root) -> Path:
    """24 stage-A records (HNC g(r)) and one stage-B copy of each: 48 usable records."""
    info = build_synthetic_database(root / "synthetic.db", n_a=24, n_b_per_a=1, seed=3)
    assert info["n_a"] == 24 and info["n_b"] == 24
    return info["path"]


@pytest.fixture(scope="module")
def mobility_model(root, synthetic_db) -> tuple[Path, dict]:
    out = root / "mobility_model"
    return out, train_mobility(synthetic_db, out, CONFIG)


def middle_record() -> tuple[np.ndarray, np.ndarray, float]:
    """g on the rdf grid, U on the potential grid and D_CG of the mid-range liquid (not in the
    database)."""
    table = mie_table(MIDDLE.sigma_nm, MIDDLE.epsilon_kj_mol, MIDDLE.exponent, GRIDS)
    r, g = hnc_rdf(table, MIDDLE.number_density_nm3, T)
    g_grid = np.interp(GRIDS.rdf_r_nm, r, g, left=0.0, right=1.0)
    u = np.asarray(table.extend_repulsive(0.1).energy(GRIDS.potential_r_nm))
    return g_grid, u, synthetic_diffusion_m2_s(MOLECULAR_MASS_AMU, MIDDLE, T)


# ---------------------------------------------------------------------- training
def test_training_reduces_validation_loss_and_beats_the_mean(mobility_model):
    """Every member ends well below its starting validation loss, and the ensemble's held-out
    loss is below a third of the loss of predicting the training mean (measured: 0.14 vs
    1.12 standardised MSE; out-of-fold R² of U 0.97, RMSE 0.67 vs 3.97 kJ/mol)."""
    out, manifest = mobility_model
    metrics = manifest["metrics"]
    for member in metrics["members"]:
        assert member["val_loss"] < 0.5 * member["initial_val_loss"]
        assert member["n_val"] > 0 and member["best_epoch"] > 0
    assert metrics["val_loss"] < metrics["baseline_val_loss"] / 3.0
    assert metrics["r2"] > 0.8
    assert metrics["rmse_kj_mol"] < 0.5 * metrics["baseline_rmse_kj_mol"]
    # a learning curve over training-set size, as a table and a figure
    rows = np.genfromtxt(out / "learning_curve.csv", delimiter=",", names=True)
    assert list(rows["fraction"]) == [0.5, 1.0]
    assert rows["n_train"][0] < rows["n_train"][1] == pytest.approx(32.0)
    assert np.all(rows["val_loss_mean"] < rows["baseline_val_loss"])
    assert (out / "learning_curve.png").stat().st_size > 1000
    history = np.genfromtxt(out / "training_history.csv", delimiter=",", names=True)
    assert set(history["member"]) == {0.0, 1.0, 2.0}


def test_model_directory_layout(mobility_model):
    out, _ = mobility_model
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["format"] == "cgforge-learned-model" and manifest["format_version"] == 1
    assert manifest["kind"] == "mobility" and manifest["cgforge_version"]
    assert manifest["grids"] == GRIDS.to_dict()
    assert manifest["hyperparameters"]["folds"] == 3
    data = manifest["training_data"]
    assert data["n_stage_a"] == 24 and data["n_stage_b"] == 24 and data["n_groups"] == 24
    assert 20.0 <= data["mass_amu"][0] < data["mass_amu"][1] <= 200.0
    assert {"weights.pt", "arrays.npz", "learning_curve.csv"} <= {p.name for p in out.iterdir()}
    assert not list(out.parent.glob(".mobility_model.staging-*"))  # staging folder renamed


def test_prediction_is_close_to_the_truth_and_in_distribution(mobility_model):
    """A liquid from the middle of the ranges, not in the database: its predicted U is within
    a few tenths of a kJ/mol of the truth (measured RMSE 0.45 kJ/mol over the structural
    range, against a well depth of 1.26 kJ/mol), the band is finite and the input is not
    flagged."""
    out, _ = mobility_model
    g, u_true, d = middle_record()
    p = predict_potential(
        out, mass_amu=MOLECULAR_MASS_AMU, diffusion_m2_s=d, rdf=(GRIDS.rdf_r_nm, g)
    )
    assert not p.out_of_distribution, p.ood_reasons
    truth = np.interp(p.r_nm, GRIDS.potential_r_nm, u_true)
    assert np.sqrt(np.mean((p.u_kj_mol - truth) ** 2)) < 0.6
    assert np.all(np.isfinite(p.u_std_kj_mol)) and p.u_std_kj_mol.max() > 0
    assert p.r_nm.shape == p.u_kj_mol.shape == p.u_std_kj_mol.shape
    # the table: a C¹ wall below the structural range, zero U and F at the cutoff
    table = p.potential
    assert table.r_min_nm == 0.0 and table.cutoff_nm == pytest.approx(1.0)
    assert table.energy(table.cutoff_nm) == pytest.approx(0.0, abs=1e-9)
    assert table.force(table.cutoff_nm) == pytest.approx(0.0, abs=1e-6)
    wall = table.r_nm[table.r_nm < p.start_nm]
    assert np.all(np.diff(table.energy(wall)) < 0) and np.all(table.force(wall) > 0)
    match = table.wall_below_nm
    below, above = match - 1e-6, match + 1e-6
    assert table.energy(below) == pytest.approx(table.energy(above), abs=1e-3)
    assert table.force(below) == pytest.approx(table.force(above), rel=1e-2)


def test_out_of_distribution_inputs_are_flagged(mobility_model):
    out, _ = mobility_model
    g, _, d = middle_record()
    heavy = predict_potential(out, mass_amu=2000.0, diffusion_m2_s=d, rdf=(GRIDS.rdf_r_nm, g))
    assert heavy.out_of_distribution
    assert any("bead mass 2000 amu is outside" in r for r in heavy.ood_reasons)
    # a liquid of much larger beads: its g(r) has a shape the training data never had
    big = mie_table(0.8, 1.4, 12.0, GRIDS)
    r, g_big = hnc_rdf(big, 0.65 / 0.8**3, T)
    far = predict_potential(out, mass_amu=MOLECULAR_MASS_AMU, diffusion_m2_s=d, rdf=(r, g_big))
    assert far.out_of_distribution
    assert any("Mahalanobis" in x or "do not span" in x for x in far.ood_reasons)
    with pytest.raises(InputError, match="positive"):
        predict_potential(out, mass_amu=-1.0, diffusion_m2_s=d, rdf=(GRIDS.rdf_r_nm, g))
    with pytest.raises(InputError, match="never exceeds"):
        predict_potential(out, mass_amu=80.0, diffusion_m2_s=d, rdf=(GRIDS.rdf_r_nm, 0 * g))


def test_fixed_seed_gives_identical_predictions(synthetic_db, root):
    config = EnsembleTrainConfig(
        folds=2, hidden=(16,), max_epochs=25, patience=25, batch_size=16, learning_curve=()
    )
    g, _, d = middle_record()
    predictions = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        train_mobility(
            synthetic_db,
            root / f"seeded_{name}",
            EnsembleTrainConfig(**{**config.to_dict(), "seed": seed}),
        )
        p = predict_potential(
            root / f"seeded_{name}", mass_amu=90.0, diffusion_m2_s=d, rdf=(GRIDS.rdf_r_nm, g)
        )
        predictions.append(np.concatenate([p.u_kj_mol, p.u_std_kj_mol]))
    assert np.array_equal(predictions[0], predictions[1])
    assert not np.allclose(predictions[0], predictions[2])


# ---------------------------------------------------------------------- model files
def test_models_of_another_version_grid_or_kind_are_refused(mobility_model, root):
    out, _ = mobility_model
    other = LearningGrids(rdf_r_nm=np.linspace(0.005, 1.995, 200))
    with pytest.raises(InputError, match="other learning grids"):
        MobilityModel.load(out, grids=other)
    assert MobilityModel.load(out, grids=GRIDS).cutoff_nm == pytest.approx(1.0)
    with pytest.raises(InputError, match="is a 'mobility' model"):
        ParamsModel.load(out)
    old = root / "old_version"
    shutil.copytree(out, old)
    manifest = json.loads((old / "model.json").read_text())
    manifest["format_version"] = 99
    (old / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"format version 99.*retrain it with 'cgforge train"):
        MobilityModel.load(old)
    with pytest.raises(InputError, match="not a cgforge model directory"):
        MobilityModel.load(root)
    with pytest.raises(InputError, match="exists and is not empty"):
        train_mobility(root / "synthetic.db", out, CONFIG)


def test_stage_selection_trains_on_the_chosen_records_only(synthetic_db, root):
    """``stages`` picks record kinds: stage A alone is 24 of the 48 records, in the manifest."""
    config = EnsembleTrainConfig(
        folds=2, hidden=(16,), max_epochs=5, patience=5, batch_size=16, learning_curve=()
    )
    manifest = train_mobility(synthetic_db, root / "stage_a_only", config, stages=["a"])
    data = manifest["training_data"]
    assert (data["n_records"], data["n_stage_a"], data["n_stage_b"]) == (24, 24, 0)
    for bad in ([], ["A", "D"]):
        with pytest.raises(InputError, match="stages must be a non-empty selection of A, B, C"):
            train_mobility(synthetic_db, root / "never_staged", config, stages=bad)
    assert not (root / "never_staged").exists()


def _copy_records(source: Path, target: Path, n: int) -> None:
    """The first ``n`` done records of ``source`` (any stage) into a new database."""
    with Database.open(source, readonly=True) as src, Database.init(target, src.grids) as dst:
        for record in list(src.iter_done())[:n]:
            key = dst.add_pending(record.spec)
            dst.claim(worker="copy")
            dst.complete(
                key,
                record.scalars,
                {k: (a.data, a.unit, a.grid_name) for k, a in record.arrays.items()},
                record.provenance,
            )


def test_too_small_database_is_refused(synthetic_db, root):
    small = root / "small.db"
    _copy_records(synthetic_db, small, 9)
    with pytest.raises(
        InputError,
        match=r"has 9 usable records; training needs at least 20 — generate more with "
        r"cgforge db generate",
    ):
        train_mobility(small, root / "never", CONFIG)
    assert not (root / "never").exists()


# ---------------------------------------------------------------------- CG engine
@pytest.fixture(scope="module")
def reference_dir(root) -> Path:
    """A CG run of the mid-range Mie liquid, standing in for an all-atom reference (every CG
    run directory satisfies the reference contract)."""
    table = mie_table(MIDDLE.sigma_nm, MIDDLE.epsilon_kj_mol, MIDDLE.exponent, GRIDS)
    path = write_csv(root / "mie.csv", table)
    density = MIDDLE.number_density_nm3 * MOLECULAR_MASS_AMU * AMU_NM3_TO_G_CM3
    protocol = default_protocol(
        0.0, 6.0, temperature_K=T, timestep_fs=10.0, platform="cpu", seed=2, save_particles=False
    )
    out = root / "reference"
    run_cg(
        path,
        mass_amu=MOLECULAR_MASS_AMU,
        n_beads=125,
        protocol=protocol,
        out=out,
        density_g_cm3=density,
    )
    return out


TINY_MD = {"n_beads": 125, "equilibration_ps": 0.0, "production_ps": 6.0, "timestep_fs": 10.0}


def test_predicted_table_runs_in_the_cg_engine(mobility_model, reference_dir, root):
    model, _ = mobility_model
    out = root / "predict"
    summary = run_predict(reference_dir, model, out, platform="cpu", seed=1, **TINY_MD)
    assert summary["status"] == "ok" and summary["reason"] is None
    table = read_potential(out / "predicted_potential.csv")
    assert table.cutoff_nm == pytest.approx(1.0) and table.r_min_nm == 0.0
    band = np.genfromtxt(out / "predicted_potential_uncertainty.csv", delimiter=",", names=True)
    assert band.dtype.names == ("r_nm", "U_kJ_mol", "U_std_kJ_mol")
    cg = json.loads((out / "cg" / "summary.json").read_text())
    assert cg["n_molecules"] == 125 and cg["reference_dir"] == str(reference_dir.resolve())
    assert 1e-10 < summary["cg"]["diffusion_m2_s"] < 1e-6
    assert summary["acceleration_factor"] == pytest.approx(cg["acceleration_factor"])
    assert (out / "report.html").stat().st_size > 10_000
    saved = json.loads((out / "summary.json").read_text())
    assert saved["status"] == "ok" and saved["files"]["report"] == "report.html"


def test_blown_up_prediction_is_reported_and_not_kept(
    mobility_model, reference_dir, root, monkeypatch
):
    model, _ = mobility_model

    def blow_up(*args, **kwargs):
        raise SimulationError("energy is NaN at step 40: the system blew up")

    monkeypatch.setattr(predict_workflow, "run_cg", blow_up)
    out = root / "predict_failed"
    summary = run_predict(reference_dir, model, out, platform="cpu", **TINY_MD)
    assert summary["status"] == "failed" and "blew up" in summary["reason"]
    assert not (out / "predicted_potential.csv").exists()
    assert (out / "rejected_potential.csv").is_file() and not (out / "report.html").exists()
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(reference_dir),
            "--model",
            str(model),
            "--out",
            str(root / "cli_failed"),
            "--beads",
            "125",
            "--equilibrate",
            "0ps",
            "--production",
            "6ps",
            "--timestep",
            "10fs",
            "--platform",
            "cpu",
            "--quiet",
        ],
    )
    assert result.exit_code == 1


def test_reference_without_d_or_rdf_is_refused(mobility_model, reference_dir, root):
    model, _ = mobility_model
    no_rdf = root / "ref_no_rdf"
    shutil.copytree(reference_dir, no_rdf)
    (no_rdf / "rdf.csv").unlink()
    with pytest.raises(InputError, match=r"rdf\.csv is missing"):
        run_predict(no_rdf, model, root / "x", run_md=False)
    no_d = root / "ref_no_d"
    shutil.copytree(reference_dir, no_d)
    summary = json.loads((no_d / "summary.json").read_text())
    summary["diffusion_m2_s"] = None
    (no_d / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="diffusion_m2_s"):
        run_predict(no_d, model, root / "y", run_md=False)


def test_cli_trains_and_predicts_without_md(synthetic_db, reference_dir, root):
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    model = root / "cli_model"
    result = runner.invoke(
        app,
        [
            "train",
            "mobility",
            str(synthetic_db),
            "--out",
            str(model),
            "--folds",
            "2",
            "--epochs",
            "20",
            "--hidden",
            "16",
            "--no-learning-curve",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((model / "model.json").read_text())["hyperparameters"]["max_epochs"] == 20
    # training again into the same directory replaces the model only with --overwrite
    args = ["train", "mobility", str(synthetic_db), "--out", str(model), "--folds", "2"]
    args += ["--epochs", "10", "--hidden", "16", "--no-learning-curve", "--quiet"]
    refused = runner.invoke(app, args)
    assert isinstance(refused.exception, InputError)
    assert "pass overwrite=True" in str(refused.exception)  # cgforge's main shows --overwrite
    assert refused.exception.parameters == ("out", "overwrite")
    command = runner.invoke(app, [*args, "--overwrite"])
    assert command.exit_code == 0, command.output
    assert json.loads((model / "model.json").read_text())["hyperparameters"]["max_epochs"] == 10
    assert sorted(p.name for p in root.glob(".cli_model*")) == []
    out = root / "cli_predict"
    result = runner.invoke(
        app, ["predict", str(reference_dir), "--model", str(model), "--out", str(out), "--no-md"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "predicted" and summary["cg"] is None
    assert (out / "predicted_potential.csv").is_file() and (out / "prediction.png").is_file()


# ---------------------------------------------------------------------- seed-001 models
def _hand_made_database(path: Path) -> None:
    """Seven stage-A records with chosen D_AA and D_CG (m²/s); r5 is at 350 K, r4 another
    molecule."""
    rows = [  # (molecule, T, D_AA, D_CG)
        ("hexane", 300.0, 1.0e-9, 3.0e-9),
        ("hexane", 300.0, 2.0e-9, 1.05e-9),
        ("hexane", 300.0, 3.1e-9, 2.1e-9),
        ("hexane", 300.0, 1.5e-9, 1.5e-9),
        ("octane", 300.0, 1.0e-9, 1.0e-9),
        ("hexane", 350.0, 2.0e-9, 1.0e-9),
        ("hexane", 300.0, 1.0e-9, 1.2e-9),
    ]
    g = 1.0 - np.exp(-((GRIDS.rdf_r_nm / 0.45) ** 12))
    r = GRIDS.potential_r_nm
    u = 4.0 * ((0.4 / r) ** 12 - (0.4 / r) ** 6)
    with Database.init(path, database_grids()) as db:
        for i, (molecule, temperature, d_aa, d_cg) in enumerate(rows):
            key = db.add_pending(
                {"stage": "A", "molecule": molecule, "draw_seed": i, "temperature_K": temperature}
            )
            db.claim()
            db.complete(
                key,
                {
                    "mass_amu": 86.18,
                    "temperature_K": temperature,
                    "diffusion_aa_m2_s": d_aa,
                    "diffusion_cg_m2_s": d_cg,
                    "acceleration_factor": d_cg / d_aa,
                    "cutoff_nm": 1.2,
                },
                {
                    "parameters": (np.array([0.1 * i, 1.0]), "mixed", None),
                    "g_cg": (g, "1", "rdf"),
                    "potential": (u, "kJ/mol", "potential"),
                },
                {"parameter_names": ["bond:CT-CT:length_nm", "bond:CT-CT:k_kj_mol_nm2"]},
            )


def test_pairs_of_a_hand_made_database(root):
    path = root / "pairs.db"
    _hand_made_database(path)
    records = read_records(path, ("A",))
    assert len(records) == 7
    pairs = find_pairs(
        records.d_aa,
        records.d_cg,
        tolerance=0.1,
        molecules=records.molecules,
        temperature_K=records.temperature_K,
    )
    # D_CG(1) is 5 % from D_AA(0) and D_AA(6); D_CG(2) 5 % from D_AA(1); D_CG(0) 3 % from
    # D_AA(2); 3 and 4 match themselves; 5 is at another temperature, 4 another molecule,
    # D_CG(6) is 20 % from D_AA(0) and D_AA(6)
    assert pairs == [(0, 1), (1, 2), (2, 0), (3, 3), (4, 4), (6, 1)]
    # the tolerance is relative (the unit of D does not matter) and widens the match
    assert (
        find_pairs(
            1e6 * records.d_aa,
            1e6 * records.d_cg,
            tolerance=0.1,
            molecules=records.molecules,
            temperature_K=records.temperature_K,
        )
        == pairs
    )
    loose = find_pairs(records.d_aa, records.d_cg, tolerance=0.3)
    assert {(0, 6), (6, 6), (0, 4), (4, 1)} <= set(loose) and (0, 6) not in pairs
    with pytest.raises(InputError, match="several molecules"):
        train_params_to_potential(path, root / "p", CONFIG)
    with pytest.raises(InputError, match="has 6 stage-A records of hexane"):
        train_params_to_potential(path, root / "p", CONFIG, molecule="hexane")


def test_parameters_to_potential_networks(synthetic_db, root):
    """ibi: the synthetic parameters fix σ, ε and n, so held-out potentials are predicted well
    (measured out-of-fold R² 0.95, RMSE 0.90 kJ/mol; 0.58 kJ/mol for the mid-range liquid);
    pairs: trained on exactly the pairs find_pairs gives."""
    config = EnsembleTrainConfig(**{**CONFIG.to_dict(), "learning_curve": ()})
    manifest = train_params_to_potential(synthetic_db, root / "ibi_model", config)
    metrics = manifest["metrics"]
    assert metrics["val_loss"] < metrics["baseline_val_loss"] / 2.0 and metrics["r2"] > 0.7
    assert metrics["onset_mae_nm"] < 0.02
    model = ParamsModel.load(root / "ibi_model")
    p = model.predict(dict(zip(PARAMETER_NAMES, np.full(6, 0.5), strict=True)))
    assert not p.out_of_distribution, p.ood_reasons
    _, u_true, _ = middle_record()
    truth = np.interp(p.r_nm, GRIDS.potential_r_nm, u_true)
    assert np.sqrt(np.mean((p.u_kj_mol - truth) ** 2)) < 1.0
    assert p.potential.r_min_nm == 0.0
    far = model.predict(np.array([0.5, 0.5, 0.5, 0.5, 0.5, 4.0]))
    assert far.out_of_distribution and "synthetic:friction_b:u" in far.ood_reasons[0]
    with pytest.raises(InputError, match="missing synthetic:sigma:u"):
        model.predict({"synthetic:epsilon:u": 0.5})

    records = read_records(synthetic_db, ("A",))
    expected = find_pairs(
        records.d_aa,
        records.d_cg,
        tolerance=0.2,
        molecules=records.molecules,
        temperature_K=records.temperature_K,
    )
    quick = EnsembleTrainConfig(**{**config.to_dict(), "max_epochs": 100})
    pairs = train_params_to_potential(
        synthetic_db, root / "pairs_model", quick, target="pairs", tolerance=0.2
    )
    assert pairs["kind"] == "pairs" and pairs["pairs"]["n_pairs"] == len(expected) >= 20
    assert pairs["pairs"]["keys"][0] == [records.keys[expected[0][0]], records.keys[expected[0][1]]]
    assert pairs["metrics"]["val_loss"] < pairs["metrics"]["initial_val_loss"]
    assert ParamsModel.load(root / "pairs_model").loaded.kind == "pairs"


def test_acceleration_predictors_beat_the_mean(root):
    """60 stage-A records (dilute-limit g: only parameters and D_AA matter here), 12 held out:
    the random forest and the network both beat predicting the training mean (measured test
    R² 0.95 for the forest, 0.998 for the network; MAE 0.08 and 0.013 against 0.44)."""
    pytest.importorskip("sklearn")
    info = build_synthetic_database(
        root / "acceleration.db", n_a=60, n_b_per_a=0, seed=11, rdf_model="dilute"
    )
    config = EnsembleTrainConfig(
        folds=3,
        hidden=(32, 32),
        learning_rate=3e-3,
        batch_size=128,
        max_epochs=300,
        patience=60,
        learning_curve=(),
    )
    manifest = train_acceleration(info["path"], root / "acceleration_model", config, n_trees=60)
    test = manifest["metrics"]["test"]
    assert manifest["training_data"]["n_test"] == 12
    for name in ("random_forest", "network"):
        assert test[name]["r2"] > 0.6, test
        assert test[name]["mae"] < 0.5 * test["mean"]["mae"], test
    model = AccelerationModel.load(root / "acceleration_model")
    truth = truth_from_parameters(np.full(6, 0.5))
    d_aa = synthetic_diffusion_m2_s(MOLECULAR_MASS_AMU, truth, T) / truth.acceleration_factor
    predicted = model.predict(np.full(6, 0.5), d_aa)
    assert not predicted["out_of_distribution"]
    for name in ("random_forest", "network"):
        assert predicted[name] == pytest.approx(truth.acceleration_factor, rel=0.25)


def test_synthetic_database_obeys_its_ground_truth(synthetic_db):
    """Stage-B records keep the parent's potential, and D_CG scales as m^−½ at fixed U."""
    with Database.open(synthetic_db, readonly=True) as db:
        grids = learning_grids(db)
        parents = {r.key: r for r in db.iter_done("A")}
        for child in db.iter_done("B"):
            parent = parents[child.parent_key]
            assert np.array_equal(child.arrays["potential"].data, parent.arrays["potential"].data)
            ratio = child.scalars["diffusion_cg_m2_s"] / parent.scalars["diffusion_cg_m2_s"]
            assert ratio == pytest.approx(
                np.sqrt(parent.scalars["mass_amu"] / child.scalars["mass_amu"]), rel=1e-12
            )
    assert grids == GRIDS
