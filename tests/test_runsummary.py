"""The shared reader of run summaries and the typed all-atom reference (cgforge.runsummary)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cgforge.errors import InputError
from cgforge.rundir import RunDirectory
from cgforge.runsummary import (
    REFERENCE_KEYS,
    SUMMARY,
    ReferenceSummary,
    read_json_object,
    read_summary,
)
from cgforge.workflows.cg import AAReference, load_reference

SUMMARY_DATA = {
    "molecule": "benzene",
    "source": "cgforge aa",
    "temperature_K": 298.15,
    "pressure_target_bar": 1.0,
    "pressure_bar": 12.5,
    "pressure_err_bar": 40.0,
    "n_molecules": 216,
    "bead_mass_amu": 78.11,
    "box_nm": [3.2, 3.2, 3.2],
    "density_g_cm3": 0.87,
    "density_err_g_cm3": 0.002,
    "diffusion_m2_s": 2.0e-9,
    "diffusion_err_m2_s": 1.0e-10,
    "notes": ["a note"],
    "files": {"rdf": "rdf.csv"},
}


def _run(tmp_path: Path, summary: object, name: str = "run") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    text = summary if isinstance(summary, str) else json.dumps(summary)
    (folder / SUMMARY).write_text(text)
    return folder


def _one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------- read_summary
def test_read_summary_returns_the_object(tmp_path):
    run = _run(tmp_path, SUMMARY_DATA)
    assert read_summary(run) == SUMMARY_DATA
    assert read_summary(run, required=REFERENCE_KEYS) == SUMMARY_DATA
    assert RunDirectory(run, {}).read_summary() == SUMMARY_DATA


def test_a_missing_directory_or_summary_names_the_directory_and_the_command(tmp_path):
    with pytest.raises(InputError, match="not found") as exc:
        read_summary(tmp_path / "nowhere", what="all-atom run", command="'cgforge aa'")
    assert "nowhere" in _one_line(exc) and "'cgforge aa'" in _one_line(exc)
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(InputError, match=r"summary\.json is missing") as exc:
        read_summary(tmp_path / "unfinished", what="all-atom run", command="'cgforge aa'")
    message = _one_line(exc)
    assert "unfinished is not a finished all-atom run" in message
    assert "rerun 'cgforge aa' into the same directory" in message
    with pytest.raises(InputError, match="rerun the command that made it"):
        read_summary(tmp_path / "unfinished")


def test_a_summary_that_is_not_json_or_not_an_object_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"summary\.json is not valid JSON .*rerun the CG run"):
        read_summary(_run(tmp_path, "{not json", "a"), what="CG run")
    with pytest.raises(InputError, match="does not hold a JSON object; rerun the run") as exc:
        read_summary(_run(tmp_path, [1, 2], "b"))
    _one_line(exc)
    with pytest.raises(InputError, match="does not hold a JSON object; reinstall cgforge"):
        read_json_object(_run(tmp_path, "3", "c") / SUMMARY, fix="reinstall cgforge")


def test_a_summary_lacking_required_keys_names_them(tmp_path):
    run = _run(tmp_path, {**SUMMARY_DATA, "molecule": None, "n_molecules": None})
    with pytest.raises(
        InputError, match="lacks molecule, n_molecules; it is not a cgforge all"
    ) as e:
        read_summary(run, what="all-atom run", required=("molecule", "n_molecules"), hint="x")
    assert _one_line(e).endswith("all-atom run summary (x)")


# ---------------------------------------------------------------------- ReferenceSummary
def test_reference_summary_is_typed_and_round_trips(tmp_path):
    ref = ReferenceSummary.from_dir(_run(tmp_path, SUMMARY_DATA))
    assert ref.molecule == "benzene" and ref.n_molecules == 216
    assert isinstance(ref.n_molecules, int) and isinstance(ref.temperature_K, float)
    assert ref.box_edges_nm == (3.2, 3.2, 3.2)
    np.testing.assert_array_equal(ref.box_nm, [3.2, 3.2, 3.2])
    assert ref.barostat_pressure_bar == 1.0 and ref.pressure_err_bar == 40.0
    assert ref.extra["notes"] == ["a note"] and ref.extra["source"] == "cgforge aa"
    assert ref.path == (tmp_path / "run").resolve()
    assert math.isclose(ref.number_density_nm3, 0.87 / (78.11 * 1.66053906660e-3), rel_tol=1e-6)
    # to_json -> from_dir gives the same reference; to_dict holds every key of the file
    again = ReferenceSummary.from_dir(_run(tmp_path, ref.to_json(), "copy"))
    assert again == ref and again.path != ref.path
    assert ref.to_dict() == SUMMARY_DATA
    assert json.loads(ref.to_json()) == ref.to_dict()
    with pytest.raises(AttributeError):
        ref.temperature_K = 300.0  # type: ignore[misc]


def test_reference_summary_defaults_for_optional_keys(tmp_path):
    summary = {k: v for k, v in SUMMARY_DATA.items() if k in REFERENCE_KEYS}
    summary["box_nm"] = 3.0  # a cubic box given by its edge
    summary["density_err_g_cm3"] = None
    ref = ReferenceSummary.from_dir(_run(tmp_path, summary))
    assert ref.box_edges_nm == (3.0, 3.0, 3.0)
    assert ref.density_err_g_cm3 == 0.0 and ref.pressure_err_bar == 0.0
    assert ref.pressure_target_bar is None and ref.barostat_pressure_bar == 12.5
    assert ref.extra == {}
    assert ReferenceSummary.from_dir(_run(tmp_path, ref.to_json(), "copy")) == ref


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pressure_bar": None}, "lacks pressure_bar; it is not a cgforge reference run summary"),
        ({"temperature_K": "hot"}, "temperature_K = 'hot' is not a finite number"),
        ({"diffusion_m2_s": [1]}, r"diffusion_m2_s = \[1\] is not a finite number"),
        ({"density_g_cm3": float("nan")}, "density_g_cm3 = nan is not a finite number"),
        ({"n_molecules": 0}, "n_molecules = 0 must be positive"),
        ({"bead_mass_amu": -1.0}, r"bead_mass_amu = -1\.0 must be positive"),
        ({"box_nm": [1.0, 2.0]}, "box must be a number or three edge lengths"),
        ({"box_nm": "big"}, "box must be a number or three edge lengths"),
        ({"box_nm": [1.0, -2.0, 1.0]}, "box edges must be positive"),
    ],
)
def test_reference_summary_refuses_bad_values(tmp_path, change, message):
    with pytest.raises(InputError, match=message) as exc:
        ReferenceSummary.from_dir(_run(tmp_path, {**SUMMARY_DATA, **change}))
    _one_line(exc)


def test_reference_summary_names_the_missing_file_and_the_command(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(InputError, match=r"summary\.json is missing") as exc:
        ReferenceSummary.from_dir(tmp_path / "half")
    assert "not a finished reference run (rerun 'cgforge aa'" in _one_line(exc)


# ---------------------------------------------------------------------- AAReference
def test_aa_reference_is_the_typed_summary_with_its_rdf(tmp_path):
    shipped = load_reference("benzene")
    assert isinstance(shipped, AAReference) and isinstance(shipped, ReferenceSummary)
    assert shipped.summary == json.loads((shipped.path / SUMMARY).read_text())
    copy = _run(tmp_path, shipped.to_json(), "benzene")
    (copy / "rdf.csv").write_bytes((shipped.path / "rdf.csv").read_bytes())
    again = load_reference(copy)
    assert again == shipped and again.path == copy.resolve()
    np.testing.assert_array_equal(again.rdf.g, shipped.rdf.g)
    assert again.reference_fields() == shipped.reference_fields() | {"path": copy.resolve()}
    (copy / "rdf.csv").unlink()
    with pytest.raises(InputError, match=r"rdf\.csv is missing: .* not a finished reference run"):
        AAReference.from_dir(copy)
    (copy / SUMMARY).write_text(json.dumps({"molecule": "x"}))  # a missing file is named first
    with pytest.raises(InputError, match=r"rdf\.csv is missing"):
        AAReference.from_dir(copy)
