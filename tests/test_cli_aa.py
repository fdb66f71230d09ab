"""End-to-end: `cgforge aa` writes the output contract; `cgforge analyze` agrees; bad input is one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cgforge.cli.main import main

CONTRACT_KEYS = (
    "molecule",
    "n_molecules",
    "temperature_K",
    "density_g_cm3",
    "diffusion_m2_s",
    "diffusion_err_m2_s",
    "bead_mass_amu",
    "box_nm",
    "provenance",
)


@pytest.fixture(scope="module")
def aa_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("aa") / "3mp"
    code = main(
        [
            "aa",
            "3-methylpentane",
            "--molecules",
            "27",
            "--equilibrate",
            "1ps",
            "--production",
            "2ps",
            "--out",
            str(out),
            "--quiet",
            "--platform",
            "cpu",
        ]
    )
    assert code == 0
    return out


def test_aa_writes_the_contract(aa_run):
    summary = json.loads((aa_run / "summary.json").read_text())
    for key in CONTRACT_KEYS:
        assert key in summary, key
    assert summary["molecule"] == "3-methylpentane"
    assert summary["n_molecules"] == 27
    assert summary["bead_mass_amu"] == pytest.approx(86.175, abs=0.02)  # C6H14
    assert 0.3 < summary["density_g_cm3"] < 1.0
    assert summary["diffusion_m2_s"] > 0 and np.isfinite(summary["diffusion_err_m2_s"])
    prov = summary["provenance"]
    assert prov["seed"] == 0 and prov["versions"]["openmm"] and prov["config"]["n_molecules"] == 27
    assert (aa_run / "rdf.csv").read_text().splitlines()[0].startswith("r_nm,g")
    assert (aa_run / "msd.csv").read_text().splitlines()[0] == "t_ps,msd_nm2"
    for name in (
        "topology.pdb",
        "trajectory.dcd",
        "observables.png",
        "thermo.csv",
        "system.xml",
        "cg_trajectory.npz",
    ):
        assert (aa_run / name).stat().st_size > 0, name
    # the box in the summary holds 27 molecules at the reported density (within the NPT fluctuation)
    volume = float(np.prod(summary["box_nm"]))
    implied = 27 * summary["bead_mass_amu"] * 1.66053906660e-3 / volume
    assert implied == pytest.approx(summary["density_g_cm3"], rel=0.05)


def test_rerun_of_a_finished_run_returns_its_summary(aa_run):
    before = (aa_run / "summary.json").read_text()
    assert (
        main(
            [
                "aa",
                "3-methylpentane",
                "--molecules",
                "27",
                "--equilibrate",
                "1ps",
                "--production",
                "2ps",
                "--out",
                str(aa_run),
                "--quiet",
                "--platform",
                "cpu",
            ]
        )
        == 0
    )
    assert (aa_run / "summary.json").read_text() == before


def test_analyze_agrees_with_aa(aa_run, tmp_path):
    out = tmp_path / "ref"
    assert (
        main(
            [
                "analyze",
                "--topology",
                str(aa_run / "topology.pdb"),
                "--trajectory",
                str(aa_run / "trajectory.dcd"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    a = json.loads((aa_run / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    for key in CONTRACT_KEYS:
        assert key in b, key
    assert b["n_molecules"] == a["n_molecules"]
    assert b["bead_mass_amu"] == pytest.approx(a["bead_mass_amu"], rel=1e-4)
    assert b["diffusion_m2_s"] == pytest.approx(a["diffusion_m2_s"], rel=1e-3)
    assert b["density_g_cm3"] == pytest.approx(a["density_g_cm3"], rel=0.05)
    g_a = np.loadtxt(aa_run / "rdf.csv", delimiter=",", skiprows=1)
    g_b = np.loadtxt(out / "rdf.csv", delimiter=",", skiprows=1)
    # trajectory.dcd holds float32 coordinates: a pair on a bin edge may move to the next bin,
    # so a few bins may differ, but pair counts (g weighted by r^2) are conserved
    changed = np.abs(g_b[:, 1] - g_a[:, 1]) > 1e-3
    assert changed.sum() <= 6, f"{changed.sum()} RDF bins differ"
    weight = g_a[:, 0] ** 2
    assert np.sum(g_b[:, 1] * weight) == pytest.approx(np.sum(g_a[:, 1] * weight), rel=1e-3)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["aa", "unobtainium", "--molecules", "27"], "unknown molecule"),
        (["aa", "C(", "--molecules", "27"], "unknown molecule"),
        (["aa", "CCO", "--molecules", "27"], "OPLS-AA"),
        (["aa", "3-methylpentane", "--production", "-2ps"], "must be positive"),
        (["aa", "3-methylpentane", "--production", "2"], "no unit"),
        (["aa", "3-methylpentane", "--molecules", "8", "--pack-density", "9"], "density"),
        (["aa", "--topology", "missing.top", "--coordinates", "missing.gro"], "not found"),
        (["aa", "3-methylpentane", "--density-scale", "0"], "--density-scale must be a factor"),
        (["aa", "3-methylpentane", "--density-scale", "1.6"], "within 0.5-1.5, got 1.6"),
        (
            ["aa", "3-methylpentane", "--density-scale", "1.05", "--density", "0.7"],
            "give --density-scale or --density, not both",
        ),
        (
            ["aa", "3-methylpentane", "--density-scale", "1.05", "--ensemble", "npt"],
            "use --ensemble nvt, nve or langevin",
        ),
        (
            ["aa", "3-methylpentane", "--density", "0.7", "--equilibrate", "0ps"],
            "--density needs an NPT equilibration (--equilibrate > 0)",
        ),
        (["aa", "3-methylpentane", "--density-relax", "-1ps"], "--density-relax must be"),
        (["analyze", "--topology", "missing.gro", "--trajectory", "missing.xtc"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, fragment):
    out = tmp_path / "out"
    code = main([*args, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "Traceback" not in err
    assert not (out / "summary.json").exists()


def test_mismatched_trajectory_is_refused(aa_run, tmp_path, capsys):
    import MDAnalysis as mda

    # a trajectory of a different system: 5 atoms
    pdb = tmp_path / "five.pdb"
    universe = mda.Universe.empty(5, trajectory=True)
    universe.add_TopologyAttr("names", ["C"] * 5)
    universe.atoms.positions = np.random.default_rng(0).random((5, 3)) * 10
    universe.dimensions = [10, 10, 10, 90, 90, 90]
    universe.atoms.write(str(pdb))
    code = main(
        [
            "analyze",
            "--topology",
            str(pdb),
            "--trajectory",
            str(aa_run / "trajectory.dcd"),
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_console_script_reports_version():
    result = subprocess.run(
        [sys.executable, "-m", "cgforge.cli.main", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "cgforge" in result.stdout
