"""All-atom references of the eight liquids: the drift criterion, shipping, lookup by name, and
the shipped references against experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cgforge.errors import InputError
from cgforge.molecules.library import get_builtin
from cgforge.workflows import references as refs
from cgforge.workflows.cg import load_reference


def _thermo(path: Path, density: np.ndarray) -> Path:
    lines = ["t_ps,stage,potential_kJ_mol,temperature_K,density_g_cm3,pressure_bar"]
    for i, rho in enumerate(density):
        lines.append(f"{i:.1f},equilibration,-1000.0,298.0,{rho:.6f},1.0")
    for i in range(20):
        lines.append(f"{len(density) + i:.1f},production,-1000.0,298.0,{density[-1]:.6f},1.0")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_drift_criterion_refuses_a_compacting_liquid_and_accepts_a_settled_one(tmp_path):
    rng = np.random.default_rng(0)
    compacting = np.linspace(0.60, 0.70, 200) + rng.normal(0, 0.002, 200)
    settled = 0.70 + rng.normal(0, 0.002, 200)
    bad = refs.equilibration_drift(_thermo(tmp_path / "a.csv", compacting))
    good = refs.equilibration_drift(_thermo(tmp_path / "b.csv", settled))
    assert not bad["converged"] and bad["density_drift"] > 0.02
    assert good["converged"] and abs(good["density_drift"]) < 0.005


def test_unknown_liquid_is_refused_with_the_list():
    with pytest.raises(InputError, match="benzene"):
        refs.liquid_pressure("toluene")
    with pytest.raises(InputError, match="cgforge references"):
        load_reference("unobtainium")


def test_build_ship_and_use_a_reference_by_name(tmp_path, monkeypatch):
    """A tiny benzene reference is built, shipped, listed, and read back by its name."""
    settings = refs.ReferenceSettings(
        n_molecules=40, equilibration_ps=10, max_equilibration_ps=20, production_ps=10
    )
    run_dir, summary = refs.build_reference("benzene", tmp_path / "runs", settings)
    assert summary["equilibration_check"]["equilibration_ps"] in (10, 20)
    viscosity = refs.measure_viscosity(run_dir, tmp_path / "visc", production_ps=60, discard_ps=4)
    assert viscosity["viscosity_Pa_s"] > 0
    assert viscosity["diffusion_yeh_hummer_m2_s"] > summary["diffusion_m2_s"]
    root = tmp_path / "shipped"
    monkeypatch.setattr(refs, "shipped_root", lambda: root)
    dest = refs.ship_reference(run_dir, root / "benzene", extra={"command": "test"})
    assert sorted(p.name for p in dest.iterdir()) == sorted(refs.SHIPPED_FILES)
    assert not any(p.name.endswith(".partial") for p in root.iterdir())
    shipped = json.loads((dest / "summary.json").read_text())
    assert shipped["reference"]["format"] == refs.REFERENCE_FORMAT
    thermo = json.loads((dest / "thermo_summary.json").read_text())
    assert 250 < thermo["temperature_K"]["mean"] < 350
    reference = load_reference("benzene")
    assert reference.path == dest
    assert reference.summary["n_molecules"] == 40
    # the viscosity of one run corrects another run's D: a box twice as large, half the shift
    other = {**shipped, "box_nm": [2 * x for x in shipped["box_nm"]], "diffusion_m2_s": 1e-9}
    moved = refs.measure_viscosity(run_dir, tmp_path / "visc", reference=other)
    assert moved["viscosity_Pa_s"] == viscosity["viscosity_Pa_s"]  # kept, not rerun
    assert moved["viscosity_run_box_nm"] == pytest.approx(viscosity["box_nm"])
    shift = viscosity["diffusion_yeh_hummer_m2_s"] - viscosity["diffusion_m2_s"]
    assert moved["diffusion_yeh_hummer_m2_s"] - 1e-9 == pytest.approx(shift / 2, rel=1e-9)
    with pytest.raises(InputError, match="same liquid"):
        refs.measure_viscosity(run_dir, tmp_path / "visc", reference={**other, "molecule": "x"})
    before = load_reference("benzene").fingerprint()
    refs.add_viscosity(dest, moved, command="test")
    assert load_reference("benzene").fingerprint() == before  # an annotation, not a new run
    kept = json.loads((dest / "summary.json").read_text())["reference"]
    assert kept["viscosity"]["command"] == "test" and kept["format"] == refs.REFERENCE_FORMAT
    assert kept["viscosity"]["diffusion_yeh_hummer_m2_s"] == moved["diffusion_yeh_hummer_m2_s"]
    # an older format is refused with a one-line reason
    shipped["reference"]["format"] = 0
    (dest / "summary.json").write_text(json.dumps(shipped))
    with pytest.raises(InputError, match="format"):
        load_reference("benzene")


def test_references_command_lists_what_is_shipped(tmp_path, monkeypatch):
    from cgforge.cli.main import main

    root = tmp_path / "shipped" / "benzene"
    root.mkdir(parents=True)
    summary = {
        "molecule": "benzene",
        "n_molecules": 216,
        "box_nm": [3.2, 3.2, 3.2],
        "temperature_K": 298.15,
        "pressure_target_bar": 1.0,
        "density_g_cm3": 0.87,
        "density_err_g_cm3": 0.001,
        "diffusion_m2_s": 2.0e-9,
        "diffusion_err_m2_s": 0.1e-9,
        "production_ps": 500.0,
        "reference": {"format": refs.REFERENCE_FORMAT},
    }
    (root / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(refs, "shipped_root", lambda: tmp_path / "shipped")
    assert main(["references", "--json"]) == 0
    assert [s["molecule"] for s in refs.shipped_references()] == ["benzene"]


SHIPPED = refs.shipped_references()
#: Relative density deviations from experiment that OPLS-AA itself makes, larger than the 5 %
#: of the other liquids: neopentane at 298.15 K is 15.5 K above its normal boiling point, a
#: highly compressible saturated liquid, and OPLS-AA gives it +8 % (see
#: src/cgforge/data/references/README.md). The bound still fails a run or typing regression.
KNOWN_DENSITY_DEVIATION = {"neopentane": 0.10}


@pytest.mark.skipif(not SHIPPED, reason="no shipped references in this checkout")
@pytest.mark.parametrize("summary", SHIPPED, ids=[s["molecule"] for s in SHIPPED])
def test_shipped_reference_matches_experimental_density(summary):
    """OPLS-AA hydrocarbon densities are within a few percent of experiment; the shipped runs
    are converged (drift criterion) and precise (density ±0.5 %, D ±10 %)."""
    experiment = get_builtin(summary["molecule"]).density_g_cm3
    tolerance = KNOWN_DENSITY_DEVIATION.get(summary["molecule"], 0.05)
    assert summary["density_g_cm3"] == pytest.approx(experiment, rel=tolerance)
    assert summary["density_err_g_cm3"] < 0.005 * summary["density_g_cm3"]
    assert summary["diffusion_err_m2_s"] < 0.10 * summary["diffusion_m2_s"]
    assert 1e-10 < summary["diffusion_m2_s"] < 1e-8
    assert summary["reference"]["equilibration_check"]["converged"]
    assert summary["n_molecules"] >= 216


@pytest.mark.skipif(
    not any(s["molecule"] == "benzene" for s in SHIPPED), reason="benzene is not shipped"
)
def test_a_short_ibi_and_friction_run_from_the_shipped_benzene_reproduces_its_row(tmp_path):
    """From the shipped reference alone: the IBI model keeps the structure and runs fast
    (benchmark row: R² 0.9982, D_CG/D_AA 2.51 ± 0.15; reruns of IBI on other machines gave up
    to 3.5), and the fitted friction brings D back to D_AA (row: 1.07 ± 0.07)."""
    from cgforge.workflows.compare import run_compare

    result = run_compare("benzene", tmp_path / "cmp", methods="ibi,friction", preset="tiny", seed=1)
    rows = {r["method"]: r for r in result["rows"]}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    ibi, friction = rows["ibi"], rows["friction"]
    assert ibi["rdf_r2"] > 0.98
    assert 1.8 < ibi["acceleration_factor"] < 5.0
    assert friction["rdf_r2"] > 0.98
    assert (
        abs(friction["acceleration_factor"] - 1.0) < 0.1 + 3 * friction["acceleration_factor_err"]
    )
