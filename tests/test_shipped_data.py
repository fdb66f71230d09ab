"""The database and the mobility model that ship with cgforge.

``data/ffdb-cpu-quick.sqlite`` (made by ``cgforge db generate``, see ``data/README.md``) must
open, report its contents and obey the physics every database must obey: at a fixed potential,
D_CG ∝ m^-1/2 across the stage-B masses of each stage-A potential. The shipped mobility model
must load without training and predict a usable table for the inputs it was trained on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from cgforge.cli.main import main
from cgforge.database.stages import learning_grids
from cgforge.database.store import READABLE_VERSIONS, SCHEMA_VERSION, Database

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DB = ROOT / "data" / "ffdb-cpu-quick.sqlite"


@pytest.fixture(scope="module")
def db():
    if not SHIPPED_DB.is_file():
        pytest.fail(f"the shipped database {SHIPPED_DB} is missing")
    with Database.open(SHIPPED_DB, readonly=True) as database:
        yield database


def test_shipped_database_opens_and_holds_both_stages(db):
    counts = db.counts()
    assert counts["A"]["done"] >= 3 and counts["B"]["done"] >= 20
    # read as it is (schema 1, stages A and B); the next generation into it migrates it
    assert db.meta["schema_version"] in (*READABLE_VERSIONS, SCHEMA_VERSION)
    grids = learning_grids(db)
    for record in db.iter_done("A"):
        assert record.arrays["potential"].data.shape == (grids.n_potential,)
        assert record.arrays["g_aa"].data.shape == (grids.n_rdf,)
        assert 0.5 < record.scalars["density_g_cm3"] < 1.0  # equilibrated liquids only
        assert record.scalars["acceleration_factor"] > 1.0  # IBI models run fast
        assert record.provenance and record.provenance["parameter_names"]
    assert main(["db", "status", str(SHIPPED_DB)]) == 0  # a reader; the file stays unchanged


def test_stored_diffusion_scales_as_inverse_square_root_of_the_mass(db):
    """Per stage-A potential, log D_CG against log m has slope −1/2 (Newtonian dynamics at a
    fixed potential); the fitted common slope must be within 0.15 of it."""
    by_parent: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for record in db.iter_done("B"):
        by_parent[record.parent_key].append(
            (math.log(record.scalars["mass_amu"]), math.log(record.scalars["diffusion_cg_m2_s"]))
        )
    groups = [np.array(points) for points in by_parent.values() if len(points) >= 3]
    assert len(groups) >= 2
    # common slope with one intercept per potential: centre each group, then one regression
    x = np.concatenate([g[:, 0] - g[:, 0].mean() for g in groups])
    y = np.concatenate([g[:, 1] - g[:, 1].mean() for g in groups])
    slope = float(x @ y / (x @ x))
    assert slope == pytest.approx(-0.5, abs=0.15)


def test_shipped_mobility_model_predicts_without_training(db):
    from cgforge.methods.mobility.model_io import SHIPPED_MOBILITY_MODEL, resolve_model_dir
    from cgforge.workflows.predict import predict_potential

    assert resolve_model_dir(None) == SHIPPED_MOBILITY_MODEL
    assert (SHIPPED_MOBILITY_MODEL / "MODEL_CARD.md").is_file()
    grids = learning_grids(db)
    record = next(iter(db.iter_done("A")))
    prediction = predict_potential(
        None,
        mass_amu=record.scalars["mass_amu"],
        diffusion_m2_s=record.scalars["diffusion_aa_m2_s"],
        rdf=(grids.rdf_r_nm, record.arrays["g_aa"].data),
        temperature_K=record.scalars["temperature_K"],
    )
    table = prediction.potential
    assert np.all(np.isfinite(table.u_kj_mol))
    assert table.u_kj_mol[0] > 10.0  # a repulsive core
    assert np.all(np.isfinite(prediction.u_std_kj_mol))
