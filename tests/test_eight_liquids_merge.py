"""Merging result files of ``benchmarks/eight_liquids.py`` (``--merge A B``): liquid-level
``--replace``, method-level ``--replace-methods`` and the refusal of a liquid given twice.

Small synthetic result files; nothing is simulated.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "eight_liquids.py"
SETTINGS = {"name": "benchmark", "n_beads": None}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("eight_liquids_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def _row(method: str, factor: float) -> dict:
    return {"method": method, "status": "ok", "acceleration_factor": factor, "notes": ""}


def _record(liquid: str, rows: list[dict], wall_s: float = 10.0) -> dict:
    return {"liquid": liquid, "status": "done", "rows": rows, "wall_s": wall_s}


def _result_file(path: Path, records: list[dict], model: str, settings=SETTINGS) -> Path:
    part = {
        "command": f"eight_liquids.py --out {path.name}",
        "compare_settings": settings,
        "model": model,
        "load_average_before": [0.5, 0.5, 0.5],
        "load_average_after": [1.0, 1.0, 1.0],
        "liquids": records,
    }
    path.write_text(json.dumps(part))
    return path


def _methods(result: dict, liquid: str) -> dict[str, dict]:
    record = next(r for r in result["liquids"] if r["liquid"] == liquid)
    return {row["method"]: row for row in record["rows"]}


@pytest.fixture
def files(tmp_path):
    """A: benzene (ibi, ml, friction) and neopentane (ibi, ml); B: benzene's ml and ibi rows
    rerun (another model) and mesitylene, which A lacks."""
    a = _result_file(
        tmp_path / "a.json",
        [
            _record("benzene", [_row("ibi", 2.0), _row("ml", 1.5), _row("friction", 1.0)]),
            _record("neopentane", [_row("ibi", 3.0), _row("ml", 2.5)]),
        ],
        model="old-model",
    )
    b = _result_file(
        tmp_path / "b.json",
        [
            _record("benzene", [_row("ml", 1.1), _row("ibi", 9.9)], wall_s=99.0),
            _record("mesitylene", [_row("ibi", 4.0), _row("ml", 3.5)]),
        ],
        model="new-model",
    )
    return a, b


def test_replace_methods_swaps_only_the_named_methods_rows(bench, files, tmp_path):
    a, b = files
    out = tmp_path / "merged.json"
    bench.merge([a, b], out, replace_methods=["ml"])
    result = json.loads(out.read_text())
    benzene = _methods(result, "benzene")
    # the other methods' rows are A's, in A's order; only ml comes from B, naming its source
    assert list(benzene) == ["ibi", "ml", "friction"]
    assert benzene["ibi"]["acceleration_factor"] == 2.0  # B's ibi row is not taken
    assert benzene["friction"]["acceleration_factor"] == 1.0
    assert benzene["ml"]["acceleration_factor"] == 1.1
    assert benzene["ml"]["source"] == str(b) and benzene["ml"]["model"] == "new-model"
    assert "source" not in benzene["ibi"]
    record = next(r for r in result["liquids"] if r["liquid"] == "benzene")
    assert record["wall_s"] == 10.0  # the rest of the liquid's record is A's
    # a liquid of one file only is taken whole; the order is that of LIQUIDS
    assert _methods(result, "neopentane")["ml"]["acceleration_factor"] == 2.5
    assert _methods(result, "mesitylene")["ml"]["acceleration_factor"] == 3.5
    assert [r["liquid"] for r in result["liquids"]] == ["benzene", "neopentane", "mesitylene"]
    assert result["merged_from"] == [str(a), str(b)]
    table = {(r["liquid"], r["method"]): r["acceleration_factor"] for r in result["table"]}
    assert table[("benzene", "ml")] == 1.1 and table[("benzene", "ibi")] == 2.0
    assert out.with_suffix(".csv").is_file() and out.with_suffix(".png").is_file()


def test_replace_methods_adds_a_method_the_earlier_file_lacks(bench, files, tmp_path):
    a, _ = files
    c = _result_file(
        tmp_path / "c.json", [_record("neopentane", [_row("rescale", 1.0)])], model="m"
    )
    out = tmp_path / "merged.json"
    bench.merge([a, c], out, replace_methods=["rescale"])
    neopentane = _methods(json.loads(out.read_text()), "neopentane")
    assert list(neopentane) == ["ibi", "ml", "rescale"]


def test_replace_swaps_whole_liquids(bench, files, tmp_path):
    a, b = files
    out = tmp_path / "merged.json"
    bench.merge([a, b], out, replace=True)
    result = json.loads(out.read_text())
    benzene = _methods(result, "benzene")
    assert list(benzene) == ["ml", "ibi"]  # B's record, friction row and all
    assert benzene["ibi"]["acceleration_factor"] == 9.9
    record = next(r for r in result["liquids"] if r["liquid"] == "benzene")
    assert record["wall_s"] == 99.0
    assert _methods(result, "neopentane")["ibi"]["acceleration_factor"] == 3.0


def test_a_liquid_in_two_files_is_refused_without_replace(bench, files, tmp_path, capsys):
    a, b = files
    out = tmp_path / "merged.json"
    with pytest.raises(SystemExit) as info:
        bench.merge([a, b], out)
    message = str(info.value)
    assert "benzene appears in more than one file" in message and "--replace" in message
    assert not out.exists() and not out.with_suffix(".csv").exists()


def test_files_of_other_cg_settings_are_refused(bench, files, tmp_path):
    a, _ = files
    other = _result_file(
        tmp_path / "other.json",
        [_record("mesitylene", [_row("ibi", 4.0)])],
        model="m",
        settings={"name": "quick"},
    )
    with pytest.raises(SystemExit, match="different CG settings"):
        bench.merge([a, other], tmp_path / "merged.json")


def test_replace_methods_with_failed_records(bench, files, tmp_path):
    """An earlier failed liquid takes the later record whole; a later failed one changes
    nothing (failed records have no rows)."""
    a, _ = files
    failed = {"liquid": "benzene", "status": "failed", "reason": "all-atom reference: boom"}
    f = _result_file(tmp_path / "f.json", [failed], model="m")
    out = tmp_path / "merged.json"
    bench.merge([a, f], out, replace_methods=["ml"])
    assert _methods(json.loads(out.read_text()), "benzene")["ml"]["acceleration_factor"] == 1.5
    bench.merge([f, a], out, replace_methods=["ml"])
    benzene = _methods(json.loads(out.read_text()), "benzene")
    assert (
        list(benzene) == ["ibi", "ml", "friction"] and benzene["ibi"]["acceleration_factor"] == 2.0
    )
