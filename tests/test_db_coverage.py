"""``cgforge db coverage``: coverage of all-atom references by a mobility model, the database's
input cloud, the sampling advice, and the command's files and one-line errors.

Tiny data: a synthetic database (:mod:`cgforge.database.synthetic`; a ground truth for
the learning machinery, not physics) and a small ensemble trained on it. The references are
hand-written reference folders (summary.json + rdf.csv) holding a training record's inputs
(inside the cloud) and the same record with D a thousand times smaller (outside).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cgforge.cli.main import main
from cgforge.database.learning import read_records
from cgforge.database.synthetic import build_synthetic_database
from cgforge.methods.mobility import EnsembleTrainConfig
from cgforge.workflows.coverage import coverage, first_peak, input_cloud, sampling_advice
from cgforge.workflows.train import train_mobility

torch = pytest.importorskip("torch")

CONFIG = EnsembleTrainConfig(
    folds=2,
    hidden=(32,),
    learning_rate=3e-3,
    batch_size=128,
    max_epochs=150,
    patience=30,
    seed=0,
    learning_curve=(1.0,),
)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("coverage")


@pytest.fixture(scope="module")
def tiny(root) -> tuple[Path, Path]:
    """(database, model): 12 stage-A records and one stage-B copy of each."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        info = build_synthetic_database(root / "tiny.db", n_a=12, n_b_per_a=1, seed=5)
        model = root / "model"
        train_mobility(info["path"], model, CONFIG)
    finally:
        torch.set_num_threads(before)
    return Path(info["path"]), model


def _reference(folder: Path, name: str, mass: float, d: float, t: float, r, g) -> Path:
    folder.mkdir(parents=True)
    summary = {
        "molecule": name,
        "n_molecules": 200,
        "temperature_K": t,
        "density_g_cm3": 0.8,
        "diffusion_m2_s": d,
        "diffusion_err_m2_s": 0.05 * d,
        "bead_mass_amu": mass,
        "box_nm": [4.0, 4.0, 4.0],
        "pressure_bar": 1.0,
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    rows = "\n".join(f"{a:.6f},{b:.6f}" for a, b in zip(r, g, strict=True))
    (folder / "rdf.csv").write_text("r_nm,g\n" + rows + "\n")
    return folder


@pytest.fixture(scope="module")
def references(root, tiny) -> tuple[Path, Path]:
    records = read_records(tiny[0], ("A",))
    i = int(np.argsort(records.d_cg)[len(records) // 2])  # a mid-range record
    args = (records.mass_amu[i], records.d_cg[i], records.temperature_K[i])
    r, g = records.grids.rdf_r_nm, records.g_cg[i]
    inside = _reference(root / "inside", "inside", args[0], args[1], args[2], r, g)
    slow = args[1] * 1e-3
    outside = _reference(root / "outside", "outside", args[0], slow, args[2], r, g)
    return inside, outside


def test_reference_inside_the_cloud_is_covered_outside_is_not(tiny, references):
    _, model = tiny
    inside, outside = references
    assert coverage(model, [inside])["coverage"] == 1.0
    result = coverage(model, [outside])
    assert result["coverage"] == 0.0 and result["n_covered"] == 0
    (row,) = result["liquids"]
    assert row["out_of_distribution"] and row["error"] is None
    assert any(
        reason.startswith("D ") and "training range" in reason for reason in row["ood_reasons"]
    )
    both = coverage(model, [inside, outside])
    assert both["coverage"] == 0.5 and [r["liquid"] for r in both["liquids"]] == [
        "inside",
        "outside",
    ]


def test_unpredictable_reference_counts_as_not_covered(tiny, references, root):
    _, model = tiny
    broken = root / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text(json.dumps({"molecule": "x"}))
    result = coverage(model, [broken, references[0]])
    assert result["coverage"] == 0.5
    row = result["liquids"][0]
    assert row["out_of_distribution"] and "rdf.csv is missing" in row["error"]


def test_cloud_and_advice(tiny, references):
    db, model = tiny
    cloud = input_cloud(db)
    rows = cloud["records"]
    assert cloud["summary"]["n_records"] == len(rows) == 24
    assert all(r["peak_height"] > 1.0 and r["diffusion_m2_s"] > 0 for r in rows)
    d_min = cloud["summary"]["diffusion_m2_s"][0]
    liquids = coverage(model, list(references))["liquids"]
    advice = sampling_advice(cloud, liquids)
    slow = liquids[1]["diffusion_m2_s"]
    assert advice["d_factor_below_database_min"][1] == pytest.approx(d_min / slow)
    assert advice["statements"][0].startswith("D: 1 of 2 liquids have D_AA")
    assert any(s.startswith("Structure:") for s in advice["statements"])


def test_first_peak_is_the_highest_point():
    r = np.linspace(0.0, 1.5, 151)
    g = 1.0 + 1.2 * np.exp(-(((r - 0.5) / 0.05) ** 2)) * (r > 0.3) - (r < 0.3)
    height, position = first_peak(r, g)
    assert height == pytest.approx(2.2) and position == pytest.approx(0.5)


def test_command_writes_table_json_and_figure(tiny, root, capsys):
    db, model = tiny
    out = root / "cli"
    assert main(["db", "coverage", "--db", str(db), "--model", str(model), "--out", str(out)]) == 0
    printed = capsys.readouterr().err
    assert "coverage:" in printed and "records, D_CG" in printed
    saved = json.loads((out / "coverage.json").read_text())
    assert saved["database"] == str(db) and len(saved["records"]) == 24
    assert saved["n_references"] == len(saved["liquids"])
    assert (out / "coverage.png").stat().st_size > 10_000


def test_command_errors_are_one_line(tiny, root, capsys):
    db, _ = tiny
    missing = root / "missing.sqlite"
    assert main(["db", "coverage", "--db", str(missing), "--out", str(root / "x")]) == 2
    printed = capsys.readouterr().err.strip()
    assert printed.startswith("error: there is no file at") and str(missing.name) in printed
    assert "give --db, the path" in printed  # the library's parameter 'database' as the flag
    assert len(printed.splitlines()) == 1 and not (root / "x").exists()
    no_model = root / "no_model"
    assert main(["db", "coverage", "--db", str(db), "--model", str(no_model)]) == 2
    printed = capsys.readouterr().err.strip()
    assert printed.startswith("error:") and "no_model" in printed
    assert len(printed.splitlines()) == 1
