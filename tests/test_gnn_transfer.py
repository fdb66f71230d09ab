"""Bad input in the transferability table of a torch CG model (``cgforge fm transfer``):
references of another molecule, state points outside the trained range, runs that blow up.

Tiny systems: an 80-bead Lennard-Jones (argon-like) model and hand-written reference
directories (summary.json + rdf.csv), runs of a fraction of a picosecond.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from cgforge.cli.fm import register
from cgforge.errors import InputError, SimulationError
from cgforge.observables import mean_with_error
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.neural.base import build_model, save_model
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows import gnn_md
from cgforge.workflows.gnn_md import extrapolation_notes, training_range, transferability_table

MASS = 40.0  # amu
T = 180.0  # K
N_BEADS = 80
DENSITY = 12.7 * MASS * AMU_NM3_TO_G_CM3  # g/cm³ (12.7 beads/nm³: box 1.85 nm for 80 beads)
TRAINED = [
    {"temperature_K": T, "density_g_cm3": DENSITY},
    {"temperature_K": 200.0, "density_g_cm3": 1.05 * DENSITY},
]
MD = dict(
    n_beads=N_BEADS,
    production_ps=0.4,
    equilibration_ps=0.1,
    timestep_fs=10.0,
    sample_interval_ps=0.05,
    device="cpu",
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    model = build_model("lj", epsilon_kj_mol=0.996, sigma_nm=0.34, cutoff_nm=0.85)
    metadata = {
        "bead_mass_amu": MASS,
        "molecule": "argon",
        "cutoff_nm": 0.85,
        "training_state_points": TRAINED,
    }
    return save_model(model, tmp_path_factory.mktemp("model") / "lj.pt", metadata)


def reference(path: Path, *, molecule: str = "argon", t: float = T, rho: float = DENSITY) -> Path:
    """A minimal all-atom reference directory at (t K, rho g/cm³)."""
    path.mkdir(parents=True)
    box = (N_BEADS * MASS * AMU_NM3_TO_G_CM3 / rho) ** (1.0 / 3.0)
    summary = {
        "molecule": molecule,
        "n_molecules": N_BEADS,
        "temperature_K": t,
        "density_g_cm3": rho,
        "diffusion_m2_s": 2.0e-9,
        "diffusion_err_m2_s": 1.0e-10,
        "bead_mass_amu": MASS,
        "box_nm": [box, box, box],
        "pressure_bar": 100.0,
    }
    (path / "summary.json").write_text(json.dumps(summary))
    r = np.arange(0.005, 0.9, 0.01)
    g = np.where(r < 0.32, 0.0, 1.0 + 0.5 * np.exp(-(((r - 0.38) / 0.04) ** 2)))
    RDFResult(r, g, np.full_like(r, 0.01), 0, 0.9, 0.01).to_csv(path / "rdf.csv")
    return path


def _csv(out: Path) -> list[dict[str, str]]:
    with open(out / "transferability.csv") as handle:
        return list(csv.DictReader(handle))


def test_references_of_another_molecule_are_refused_before_any_md(model_path, tmp_path):
    refs = [reference(tmp_path / "ar"), reference(tmp_path / "kr", molecule="krypton")]
    with pytest.raises(
        InputError, match=r"trained on argon.*kr \(krypton\).*allow_other_molecules=True"
    ) as err:
        transferability_table(model_path, refs, tmp_path / "tt", **MD)
    assert "\n" not in str(err.value)  # one line
    from cgforge.cli.options import with_flags

    assert "pass --allow-other-molecules to test it" in with_flags(err.value, "fm")
    assert not list((tmp_path / "tt").glob("state_*"))  # refused before any MD
    # explicitly allowed: it runs, and the row says that the molecule differs
    rows = transferability_table(
        model_path, refs[1:], tmp_path / "tt", allow_other_molecules=True, **MD
    )
    assert rows[0]["status"] == "ok" and "differs" in rows[0]["notes"]
    assert "krypton" in _csv(tmp_path / "tt")[0]["notes"]
    # the same molecule spelled with other capitals is the same molecule
    ok = transferability_table(
        model_path, [reference(tmp_path / "Ar", molecule=" Argon")], tmp_path / "t2", **MD
    )
    assert "differs" not in ok[0]["notes"]


def test_state_points_outside_the_trained_range_are_flagged(model_path, tmp_path):
    refs = [
        reference(tmp_path / "inside", t=190.0, rho=1.02 * DENSITY),  # inside both ranges
        reference(tmp_path / "hot", t=260.0),
        reference(tmp_path / "dense", rho=1.10 * DENSITY),
    ]
    rows = transferability_table(model_path, refs, tmp_path / "tt", **MD)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]  # extrapolated points still run
    assert [r["extrapolated"] for r in rows] == [False, True, True]
    assert [r["trained_on"] for r in rows] == [False, False, False]
    assert "temperature 260 K outside the trained range [180, 200] K" in rows[1]["notes"]
    assert "density" in rows[2]["notes"] and "temperature" not in rows[2]["notes"]
    table = _csv(tmp_path / "tt")
    assert [r["extrapolated"] for r in table] == ["false", "true", "true"]
    assert all(math.isfinite(float(r["pressure_bar"])) for r in table)
    meta = {"training_state_points": TRAINED}
    assert training_range(meta)["temperature_K"] == (180.0, 200.0)
    assert extrapolation_notes(T + 0.3, DENSITY, meta) == []  # within the trained_on tolerance
    assert extrapolation_notes(T, DENSITY, {}) is None  # no training state points: unknown


def test_a_run_that_blows_up_gives_a_failed_row_and_the_others_still_run(model_path, tmp_path):
    # at 10^6 K the beads move ~0.14 nm in the first 10 fs step: a blow-up (SimulationError)
    refs = [reference(tmp_path / "hot", t=1.0e6), reference(tmp_path / "ok")]
    rows = transferability_table(model_path, refs, tmp_path / "tt", **MD)
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert "failed: the simulation blew up at step" in rows[0]["notes"]
    assert rows[0]["extrapolated"] is True and rows[0]["pressure_bar"] is None
    assert rows[1]["pressure_bar"] is not None and rows[1]["notes"] == ""
    table = _csv(tmp_path / "tt")
    assert [r["status"] for r in table] == ["failed", "ok"]
    assert table[0]["pressure_bar"] == "" and "blew up" in table[0]["notes"]


def test_the_npt_row_of_a_neural_model_runs_under_the_barostat(model_path, tmp_path):
    """The NPT row runs (torch engine, Monte Carlo barostat at the reference's pressure) in its
    own run directory; its density is the NPT production's, measured as for tables."""
    rows = transferability_table(
        model_path,
        [reference(tmp_path / "ar")],
        tmp_path / "tt",
        ensembles=("nvt", "npt"),
        barostat_interval=2,
        **MD,
    )
    assert [(r["ensemble"], r["status"]) for r in rows] == [("nvt", "ok"), ("npt", "ok")]
    nvt, npt = rows
    assert nvt["density_error"] == pytest.approx(0.0, abs=1e-9)
    run = Path(npt["run_dir"])
    assert run.name.endswith("_npt") and run != Path(nvt["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["pressure_target_bar"] == 100.0 and summary["barostat_interval_steps"] == 2
    assert summary["density_source"] == "NPT production"
    assert isinstance(npt["density_drift"], float) and nvt["density_drift"] is None
    moves = summary["barostat_moves"]  # every 2nd step over equilibration and production
    assert moves["pressure_bar"] == 100.0 and moves["frequency_steps"] == 2
    steps = round(
        (summary["equilibration_ps"] + summary["production_ps"]) / (summary["timestep_fs"] * 1e-3)
    )
    assert moves["attempts"] == pytest.approx(steps / 2, abs=2)
    assert 0 < moves["accepted"] < moves["attempts"] and 0 < moves["acceptance"] < 1
    thermo = np.genfromtxt(run / "thermo.csv", delimiter=",", names=True, dtype=None)
    prod = thermo["stage"].astype(str) == "production"
    assert np.ptp(thermo["volume_nm3"][prod]) > 0  # the barostat acts in production
    # density and its error: the mean of the production's thermo rows, as for a table's NPT row
    rho, err = mean_with_error(thermo["density_g_cm3"][prod])
    assert summary["density_g_cm3"] == pytest.approx(rho, rel=1e-6)
    assert npt["cg_density_g_cm3"] == pytest.approx(rho, rel=1e-6)
    assert npt["density_error"] == pytest.approx(rho / DENSITY - 1.0, rel=1e-5)
    assert summary["density_err_g_cm3"] == pytest.approx(err, rel=1e-3)
    # every frame of the trajectory carries its own box
    with np.load(run / "cg_trajectory.npz") as data:
        boxes = data["box_nm"]
    assert boxes.shape[1] == 3 and np.ptp(boxes[:, 0]) > 0
    with pytest.raises(InputError, match="pressure_bar sets the barostat of an npt run"):
        gnn_md.simulate_model(model_path, tmp_path / "x", pressure_bar=1.0, n_beads=N_BEADS)
    with pytest.raises(InputError, match="barostat_interval must be >= 1"):
        gnn_md.simulate_model(
            model_path,
            tmp_path / "y",
            n_beads=N_BEADS,
            production_ensemble="npt",
            barostat_interval=0,
        )


def test_non_finite_results_are_a_failed_row(model_path, tmp_path, monkeypatch):
    calls = []

    def fake(model, run_dir, **kw):
        calls.append(kw["temperature_K"])
        if len(calls) == 1:
            return {"pressure_bar": math.nan, "temperature_measured_K": T}
        if len(calls) == 2:
            raise SimulationError("the simulation blew up at step 3: not finite")
        return {"pressure_bar": 1.0, "temperature_measured_K": T}

    monkeypatch.setattr(gnn_md, "simulate_model", fake)
    refs = [reference(tmp_path / name) for name in ("a", "b", "c")]
    rows = transferability_table(model_path, refs, tmp_path / "tt", **MD)
    assert len(calls) == 3
    assert [r["status"] for r in rows] == ["failed", "failed", "ok"]
    assert "non-finite pressure_bar" in rows[0]["notes"]
    assert "step 3" in rows[1]["notes"] and rows[2]["pressure_bar"] == 1.0


def test_cli_passes_allow_other_molecules(model_path, tmp_path, monkeypatch):
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    calls = []
    monkeypatch.setattr(
        "cgforge.workflows.gnn_md.transferability_table",
        lambda model, refs, out, **kw: calls.append(kw) or [],
    )
    args = ["fm", "transfer", str(model_path), "--references", "a", "--out", str(tmp_path)]
    runner = CliRunner()
    assert runner.invoke(app, [*args, "--quiet"]).exit_code == 0
    assert runner.invoke(app, [*args, "--quiet", "--allow-other-molecules"]).exit_code == 0
    assert [c["allow_other_molecules"] for c in calls] == [False, True]
    assert calls[0]["ensembles"] == ("nvt", "npt")  # the NPT row by default, neural or table
    assert runner.invoke(app, [*args, "--quiet", "--no-npt"]).exit_code == 0
    assert calls[-1]["ensembles"] == ("nvt",)


def test_production_density_drift_compares_the_last_and_first_quarters(tmp_path):
    """A production whose density falls linearly from 0.8 to 0.4 g/cm³ over 40 rows: the
    X
        equilibration rows before it do not count."""
    from cgforge.workflows.gnn_md import production_density_drift

    rho = np.linspace(0.8, 0.4, 40)
    lines = ["t_ps,stage,density_g_cm3"] + [f"{-i},equilibration,2.0" for i in range(5)]
    lines += [f"{i},production,{r:.10g}" for i, r in enumerate(rho)]
    path = tmp_path / "thermo.csv"
    path.write_text("\n".join(lines) + "\n")
    expected = (rho[-10:].mean() - rho[:10].mean()) / rho.mean()
    assert production_density_drift(path) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(-0.5128, abs=1e-3)
    path.write_text("t_ps,stage,density_g_cm3\n0,production,0.5\n")
    assert production_density_drift(path) is None  # too short to tell
    assert production_density_drift(tmp_path / "none.csv") is None
