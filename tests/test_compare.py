"""Time rescaling and the comparison of CG methods on one reference.

The "all-atom" reference is the argon-like supercritical Lennard-Jones liquid of the CG tests
(ε = 0.996 kJ/mol, σ = 0.34 nm, 40 amu, tapered at 0.85 nm, ρ = 12.7 nm⁻³, 180 K, 285 bar)
run under Langevin dynamics with γ = 5/ps: its structure is that of the LJ potential and its
diffusion about 4× slower than Newtonian dynamics with that potential, like an all-atom liquid
and its IBI model. CPU platform.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cgforge.errors import InputError, SimulationError
from cgforge.methods.ibi import IBIConfig
from cgforge.methods.rescale import TimeRescaling, acceleration_factor, rescale_diffusion
from cgforge.observables import MSD, fit_diffusion
from cgforge.potentials import TabulatedPotential, read_csv, write_csv
from cgforge.trajectory import CGTrajectory
from cgforge.units import AMU_NM3_TO_G_CM3
from cgforge.workflows import compare as compare_module
from cgforge.workflows.aa import default_protocol
from cgforge.workflows.cg import run_cg
from cgforge.workflows.compare import (
    COLUMNS,
    COMPARE_PRESETS,
    CompareSettings,
    FrictionConfig,
    parse_methods,
    run_compare,
)

EPS, SIGMA, CUTOFF = 0.996, 0.34, 0.85  # kJ/mol, nm, nm
MASS, T, P = 40.0, 180.0, 285.0  # amu, K, bar
N = 125
DENSITY = 12.7 * MASS * AMU_NM3_TO_G_CM3  # g/cm³
GAMMA_REFERENCE = 5.0  # 1/ps

SETTINGS = CompareSettings(
    name="lj-test",
    n_beads=N,
    ibi=IBIConfig(
        max_iterations=2,
        rdf_tolerance=1e-4,
        cutoff_nm=CUTOFF,
        timestep_fs=10.0,
        equilibration_ps=2.0,
        production_ps=6.0,
        sample_interval_ps=0.2,
    ),
    cg_equilibration_ps=4.0,
    cg_production_ps=12.0,
    friction=FrictionConfig(max_evaluations=3, tolerance=0.1),
)


# ---------------------------------------------------------------------- rescaling (no MD)
def test_rescaling_arithmetic_and_error_propagation():
    alpha, err = acceleration_factor(8.0e-9, 4.0e-10, 2.0e-9, 1.0e-10)
    assert alpha == pytest.approx(4.0)
    assert err == pytest.approx(4.0 * math.hypot(0.05, 0.05))
    # independent errors add in quadrature
    d, d_err = rescale_diffusion(8.0e-9, 4.0e-10, 4.0, 0.4)
    assert d == pytest.approx(2.0e-9) and d_err == pytest.approx(2.0e-9 * math.hypot(0.05, 0.1))
    # α measured on the same D: D/α is D_AA with D_AA's error (the D_CG errors cancel)
    scaling = TimeRescaling.measured(8.0e-9, 4.0e-10, 2.0e-9, 1.0e-10)
    d, d_err = scaling.diffusion(8.0e-9, 4.0e-10, same_measurement=True)
    assert d == pytest.approx(2.0e-9) and d_err == pytest.approx(1.0e-10)
    assert scaling.source == "measured"
    np.testing.assert_allclose(scaling.times_ps([0.0, 1.5]), [0.0, 6.0])
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(InputError, match="alpha"):
            TimeRescaling(bad)
    with pytest.raises(InputError, match="error of alpha"):
        TimeRescaling(2.0, -0.1)


def test_rescaled_msd_and_trajectory_give_d_over_alpha():
    """Brownian walkers: the fit of the rescaled MSD is exactly D/α, on the same lag indices;
    the rescaled trajectory has the same frames at α times the times."""
    rng = np.random.default_rng(4)
    steps = rng.normal(0.0, 0.05, size=(400, 64, 3))
    traj = CGTrajectory(
        np.cumsum(steps, axis=0), np.full(3, 5.0), np.arange(400) * 0.5, np.ones(64)
    )
    msd = MSD().compute(traj)
    scaling = TimeRescaling(3.0, 0.3)
    d = fit_diffusion(msd)
    d_rescaled = fit_diffusion(scaling.msd(msd))
    assert d_rescaled.diffusion_nm2_ps == pytest.approx(d.diffusion_nm2_ps / 3.0, rel=1e-10)
    assert d_rescaled.fit_start_ps == pytest.approx(3.0 * d.fit_start_ps)
    slow = scaling.trajectory(traj)
    np.testing.assert_array_equal(slow.positions_nm, traj.positions_nm)
    np.testing.assert_allclose(slow.times_ps, 3.0 * traj.times_ps)
    from_traj = fit_diffusion(MSD().compute(slow))
    assert from_traj.diffusion_nm2_ps == pytest.approx(d.diffusion_nm2_ps / 3.0, rel=1e-10)


# ---------------------------------------------------------------------- comparison
def test_methods_and_presets():
    assert parse_methods("rescale, IBI") == ("ibi", "rescale")
    with pytest.raises(InputError, match="unknown method"):
        parse_methods("ibi,magic")
    with pytest.raises(InputError, match="at least one"):
        parse_methods("")
    assert {"tiny", "quick", "standard"} <= set(COMPARE_PRESETS)
    assert COMPARE_PRESETS["standard"].cg_production_ps > COMPARE_PRESETS["tiny"].cg_production_ps


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lj")
    pot = root / "lj.csv"
    grid = np.arange(0.2, CUTOFF + 1e-9, 0.002)
    write_csv(pot, TabulatedPotential.lj(EPS, SIGMA, grid).smooth_cutoff(0.1))
    protocol = default_protocol(
        5.0,
        20.0,
        temperature_K=T,
        pressure_bar=P,
        timestep_fs=10.0,
        platform="cpu",
        seed=1,
        save_particles=False,
        production_ensemble="langevin",
        production_friction_per_ps=GAMMA_REFERENCE,
    )
    out = root / "ref"
    run_cg(pot, mass_amu=MASS, n_beads=N, protocol=protocol, out=out, density_g_cm3=DENSITY)
    return out


def _fake_predictor(monkeypatch, make_potential) -> None:
    """Stand in for the trained mobility model: ``make_potential()`` is the prediction."""

    def predict_potential(model_dir, *, mass_amu, diffusion_m2_s, rdf, **_):
        assert mass_amu == pytest.approx(MASS) and diffusion_m2_s > 0 and len(rdf.g) > 10
        return types.SimpleNamespace(
            potential=make_potential(), out_of_distribution=True, ood_reasons=("test model",)
        )

    module = types.ModuleType("cgforge.workflows.predict")
    module.predict_potential = predict_potential
    module.load_mobility_model = lambda model_dir: None  # run_compare's check before any run
    monkeypatch.setitem(sys.modules, "cgforge.workflows.predict", module)


@pytest.fixture(scope="module")
def comparison(reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _fake_predictor(monkeypatch, lambda: read_csv(out / "ibi" / "potential.csv"))
        result = run_compare(
            reference, out, preset=SETTINGS, model_dir=reference, seed=2, platform="cpu"
        )
    return out, result


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        return {row["method"]: row for row in reader}


def test_compare_writes_a_row_per_method(comparison, reference):
    out, result = comparison
    rows = _rows(out / "comparison.csv")
    assert list(rows) == ["ibi", "ml", "friction", "rescale"]
    assert all(row["status"] == "ok" for row in rows.values()), rows
    ref = json.loads((reference / "summary.json").read_text())
    num = {m: {k: float(v) for k, v in r.items() if _is_number(v)} for m, r in rows.items()}
    ibi, ml, friction, rescale = (num[m] for m in ("ibi", "ml", "friction", "rescale"))
    for row in num.values():
        assert row["d_aa_m2_s"] == pytest.approx(ref["diffusion_m2_s"])
    # IBI keeps the structure and is several times too fast (the reference has friction)
    assert ibi["rdf_r2"] > 0.95 and abs(ibi["density_error"]) < 0.08
    assert ibi["acceleration_factor"] > 2.0
    # the "predicted" potential is the IBI one: same structure and mobility within errors
    tol = 3.0 * math.hypot(ibi["acceleration_factor_err"], ml["acceleration_factor_err"])
    assert abs(ml["acceleration_factor"] - ibi["acceleration_factor"]) < max(tol, 0.1 * 4)
    assert "training data" in rows["ml"]["notes"]
    assert (out / "ml" / "predicted_potential.csv").is_file()
    # friction: structure kept, D matched within the fit's criterion, γ near the reference's
    assert friction["rdf_r2"] > 0.95
    crit = max(
        2.0 * math.hypot(friction["d_cg_err_m2_s"], ref["diffusion_err_m2_s"]),
        0.1 * ref["diffusion_m2_s"],
    )
    assert abs(friction["d_cg_m2_s"] - ref["diffusion_m2_s"]) <= crit
    assert 1.5 < friction["friction_per_ps"] < 15.0
    # rescale: the IBI run's structure, D_AA by construction, α = IBI's acceleration factor
    assert rescale["alpha"] == pytest.approx(ibi["acceleration_factor"])
    assert rescale["acceleration_factor"] == 1.0
    assert rescale["d_cg_m2_s"] == pytest.approx(ref["diffusion_m2_s"])
    assert rescale["rdf_r2"] == ibi["rdf_r2"]
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()
    assert all(f"<tr><th>{m}</th>" in page for m in rows)
    assert page.count("<tr><th>") == len(rows) + 1 and "data:image/png;base64," in page
    stored = json.loads((out / "comparison.json").read_text())
    assert [r["method"] for r in stored["rows"]] == list(rows)
    # a second call finds every method finished and gives the same table
    again = run_compare(
        reference, out, methods="ibi,friction,rescale", preset=SETTINGS, seed=2, platform="cpu"
    )
    assert [r["d_cg_m2_s"] for r in again["rows"]] == [
        r["d_cg_m2_s"] for r in result["rows"] if r["method"] != "ml"
    ]


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def test_a_failing_method_gets_a_failure_row(comparison, reference, tmp_path, monkeypatch):
    """A predicted potential whose cutoff does not fit the box fails; the others go on."""
    out, _ = comparison
    shutil.copytree(out / "ibi", tmp_path / "cmp" / "ibi")
    wide = np.arange(0.2, 1.6, 0.002)
    _fake_predictor(monkeypatch, lambda: TabulatedPotential.lj(EPS, SIGMA, wide))
    result = run_compare(
        reference,
        tmp_path / "cmp",
        methods=("ibi", "ml", "rescale"),
        preset=SETTINGS,
        model_dir=reference,
        seed=2,
        platform="cpu",
    )
    rows = _rows(tmp_path / "cmp" / "comparison.csv")
    assert rows["ml"]["status"] == "failed" and "box" in rows["ml"]["notes"]
    assert rows["ml"]["acceleration_factor"] == ""
    assert rows["ibi"]["status"] == rows["rescale"]["status"] == "ok"
    assert [r["status"] for r in result["rows"]] == ["ok", "failed", "ok"]


def test_methods_that_need_a_failed_ibi_fail_with_its_reason(reference, tmp_path, monkeypatch):
    def blow_up(*args, **kwargs):
        raise SimulationError("the simulation blew up in production at step 10")

    monkeypatch.setattr(compare_module, "run_ibi_from_reference", blow_up)
    result = run_compare(
        reference, tmp_path / "cmp", methods="ibi,friction,rescale", preset=SETTINGS, platform="cpu"
    )
    rows = _rows(tmp_path / "cmp" / "comparison.csv")
    assert all(row["status"] == "failed" for row in rows.values())
    assert "blew up" in rows["ibi"]["notes"]
    assert rows["friction"]["notes"].startswith("needs the IBI run, which failed")
    assert len(result["rows"]) == 3 and (tmp_path / "cmp" / "comparison.png").is_file()


def test_compare_input_checks(reference, tmp_path):
    with pytest.raises(InputError, match="not found"):  # without a model: the shipped one
        run_compare(
            reference, tmp_path / "a", methods="ml", preset=SETTINGS, model_dir=tmp_path / "none"
        )
    with pytest.raises(InputError, match="unknown preset"):
        run_compare(reference, tmp_path / "a", methods="ibi", preset="huge")
    with pytest.raises(InputError, match="not found"):
        run_compare(tmp_path / "missing", tmp_path / "a", methods="ibi", preset=SETTINGS)
    assert not (tmp_path / "a").exists()


def test_cli_compare(comparison, reference, monkeypatch):
    """The command on the finished comparison (a registered test preset): table and files."""
    from cgforge.cli.compare import register

    out, _ = comparison
    monkeypatch.setitem(COMPARE_PRESETS, SETTINGS.name, SETTINGS)
    app = typer.Typer()
    register(app)
    args = [str(reference), "--methods", "ibi,friction,rescale", "--out", str(out)]
    args += ["--preset", SETTINGS.name, "--seed", "2", "--platform", "cpu", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert list(_rows(out / "comparison.csv")) == ["ibi", "friction", "rescale"]
    bad = CliRunner().invoke(app, [str(reference), "--methods", "magic", "--out", str(out)])
    assert isinstance(bad.exception, InputError)
