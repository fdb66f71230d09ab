"""Time rescaling by a predicted acceleration factor: an acceleration model trained on one
molecule's randomised stage-A records predicts α for that molecule's real liquid from its own
OPLS-AA bonded parameters and D_AA (``cgforge compare --alpha-model``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cgforge.database.stages import database_grids
from cgforge.database.store import Database
from cgforge.errors import InputError
from cgforge.grids import LearningGrids
from cgforge.methods.mobility import EnsembleTrainConfig
from cgforge.molecules.build import load_molecule
from cgforge.molecules.randomize import ParameterRanges, draw_parameters, parameter_vector
from cgforge.workflows.cg import load_reference
from cgforge.workflows.predict import predicted_acceleration
from cgforge.workflows.train import train_acceleration

pytest.importorskip("torch")
pytest.importorskip("sklearn")

MOLECULE = "3-methylpentane"
GRIDS = LearningGrids()
#: Ranges around the OPLS-AA parameters of 3-methylpentane (each inside its range).
RANGES = ParameterRanges(
    bond_k_kcal_mol_A2=(250.0, 350.0),
    bond_cc_r0_A=(1.43, 1.63),
    bond_ch_r0_A=(1.04, 1.14),
    angle_k_kcal_mol_rad2=(30.0, 65.0),
    angle_theta0_deg=(106.0, 114.0),
    dihedral_v_kcal_mol=(-2.0, 2.0),
)


def true_alpha(values: np.ndarray, reference_values: np.ndarray) -> float:
    """A smooth known acceleration factor: 4 at the OPLS-AA parameters, rising with the
    first C–C bond length (the first entry of the vector) by 40 % per 0.01 nm."""
    return 4.0 * math.exp(33.6 * (values[0] - reference_values[0]))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An acceleration model of 3-methylpentane trained on 40 hand-made stage-A records whose
    parameters are real draws for that molecule and whose α follows :func:`true_alpha`."""
    root = tmp_path_factory.mktemp("alpha")
    molecule = load_molecule(MOLECULE)
    names, opls = parameter_vector(molecule)
    d_aa = load_reference(MOLECULE).diffusion_m2_s
    g = 1.0 - np.exp(-((GRIDS.rdf_r_nm / 0.45) ** 12))
    r = GRIDS.potential_r_nm
    u = 4.0 * ((0.5 / r) ** 12 - (0.5 / r) ** 6)
    path = root / "a.db"
    rng = np.random.default_rng(3)
    with Database.init(path, database_grids()) as db:
        for i in range(40):
            _, values = parameter_vector(molecule, draw_parameters(molecule, RANGES, i))
            d = d_aa * float(rng.uniform(0.6, 1.6))
            alpha = true_alpha(values, opls)
            key = db.add_pending(
                {"stage": "A", "molecule": MOLECULE, "draw_seed": i, "temperature_K": 298.15}
            )
            db.claim()
            db.complete(
                key,
                {
                    "mass_amu": 86.18,
                    "temperature_K": 298.15,
                    "diffusion_aa_m2_s": d,
                    "diffusion_cg_m2_s": alpha * d,
                    "acceleration_factor": alpha,
                    "cutoff_nm": 1.2,
                },
                {
                    "parameters": (values, "mixed", None),
                    "g_cg": (g, "1", "rdf"),
                    "potential": (u, "kJ/mol", "potential"),
                },
                {"parameter_names": list(names)},
            )
    config = EnsembleTrainConfig(
        folds=2, hidden=(32, 32), learning_rate=3e-3, max_epochs=400, patience=80,
        learning_curve=(),
    )  # fmt: skip
    train_acceleration(path, root / "model", config, molecule=MOLECULE, n_trees=50)
    return root / "model"


def test_the_real_liquid_gets_the_alpha_of_its_own_parameters(model_dir):
    """The OPLS-AA parameters lie inside the draws' range: the prediction is near the α the
    records follow there (4; the draws span about 2.9–5.6), with a positive spread."""
    reference = load_reference(MOLECULE)
    out = predicted_acceleration(model_dir, reference)
    assert out["alpha"] == pytest.approx(4.0, rel=0.3), out
    assert out["random_forest"] == pytest.approx(4.0, rel=0.3), out
    assert 0.0 < out["alpha_err"] < out["alpha"]


def test_a_model_of_another_molecule_is_refused_with_its_name(model_dir):
    with pytest.raises(InputError, match=r"trained on 3-methylpentane, not ethylbenzene"):
        predicted_acceleration(model_dir, load_reference("ethylbenzene"))


def test_compare_refuses_a_wrong_alpha_model_before_any_work(model_dir, tmp_path, capsys):
    from cgforge.cli.main import main

    out = tmp_path / "cmp"
    args = ["compare", "ethylbenzene", "--out", str(out), "--methods", "rescale", "--quiet"]
    assert main([*args, "--alpha-model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert "trained on 3-methylpentane, not ethylbenzene" in err
    assert main([*args, "--alpha-model", str(model_dir), "--alpha", "3"]) == 2
    assert "give --alpha or --alpha-model, not both" in capsys.readouterr().err
    assert not out.exists()
