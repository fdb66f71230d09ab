"""`cgforge run`: AA → IBI → CG → report on a tiny preset; presets and bad input."""

from __future__ import annotations

import json

import pytest

from cgforge.errors import InputError
from cgforge.presets import PRESETS, get_preset
from cgforge.workflows.run import run_pipeline

#: 40 molecules, ps-long runs, one IBI iteration: the shipped check preset.
TINY = PRESETS["tiny"]


def test_pipeline_writes_report_and_summary(tmp_path):
    out = tmp_path / "3mp"
    summary = run_pipeline("3-methylpentane", out, preset=TINY, platform="cpu")
    stored = json.loads((out / "summary.json").read_text())
    assert stored["molecule"] == summary["molecule"] == "3-methylpentane"
    assert stored["iterations"] >= 1
    assert stored["acceleration_factor"] > 0
    assert 0 <= stored["rdf_deviation"] < 1
    assert stored["aa"]["diffusion_m2_s"] > 0 and stored["cg"]["diffusion_m2_s"] > 0
    page = (out / "report.html").read_text()
    for fragment in ("Structure", "acceleration factor", "data:image/png;base64", "IBI"):
        assert fragment in page
    assert page.count("<img") == 4  # RDF, MSD, potential, IBI convergence
    for stage in ("aa", "cg"):
        assert (out / stage / "summary.json").exists()
    # a second call finds every stage complete and gives the same numbers
    again = run_pipeline("3-methylpentane", out, preset=TINY, platform="cpu")
    assert again["acceleration_factor"] == summary["acceleration_factor"]


def test_presets_scale_from_desktop_to_cluster():
    quick, standard = PRESETS["quick"], PRESETS["standard"]
    assert standard.n_molecules >= 500 and standard.aa_production_ps >= 1000
    assert quick.n_molecules < standard.n_molecules
    assert quick.aa_production_ps < standard.aa_production_ps
    with pytest.raises(InputError, match="unknown preset"):
        get_preset("huge")
