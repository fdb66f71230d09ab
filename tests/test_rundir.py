import json
from pathlib import Path

import pytest

from cgforge.errors import InputError
from cgforge.rundir import RunDirectory, config_hash


def test_hash_normalises_numbers_and_key_order():
    assert config_hash({"T": 300, "n": {"a": 1, "b": 2.0}}) == config_hash(
        {"n": {"b": 2, "a": 1.0}, "T": 300.0}
    )
    assert config_hash({"T": 300}) != config_hash({"T": 300.1})


def test_lifecycle_new_resume_complete(tmp_path):
    out = tmp_path / "run"
    assert RunDirectory(out, {"x": 1}).prepare() == "new"
    assert RunDirectory(out, {"x": 1}).prepare() == "resume"
    RunDirectory(out, {"x": 1}).write_summary({"done": True})
    assert RunDirectory(out, {"x": 1}).prepare() == "complete"


def test_other_configuration_is_refused_with_the_difference(tmp_path):
    out = tmp_path / "run"
    first = RunDirectory(out, {"protocol": {"production_ps": 10.0}, "seed": 1})
    first.prepare()
    (first.work / "production-0.chk").write_bytes(b"progress")
    with pytest.raises(InputError, match=r"differs in: protocol\.production_ps"):
        RunDirectory(out, {"protocol": {"production_ps": 20.0}, "seed": 1}).prepare()
    assert (
        RunDirectory(
            out, {"protocol": {"production_ps": 20.0}, "seed": 1}, overwrite=True
        ).prepare()
        == "new"
    )


def test_foreign_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a cgforge run directory"):
        RunDirectory(tmp_path, {"x": 1}).prepare()
    assert (tmp_path / "notes.txt").exists()


@pytest.mark.parametrize("left", [[], [".config.json.k2j3x.tmp"]])
def test_a_run_killed_before_its_configuration_was_written_starts_afresh(tmp_path, left):
    """A process killed between creating ``.cgforge/`` and writing its configuration (a
    database worker killed as its record starts) leaves a folder the same command takes."""
    out = tmp_path / "run"
    (out / ".cgforge").mkdir(parents=True)
    for name in left:
        (out / ".cgforge" / name).write_text('{"hash": "ab')  # cut short by the kill
    assert RunDirectory(out, {"x": 1}).prepare() == "new"
    assert json.loads((out / ".cgforge" / "config.json").read_text())["config"] == {"x": 1}
    assert RunDirectory(out, {"x": 1}).prepare() == "resume"


def test_a_cgforge_folder_with_other_files_is_still_refused(tmp_path):
    out = tmp_path / "run"
    (out / ".cgforge").mkdir(parents=True)
    (out / ".cgforge" / "production-0.chk").write_bytes(b"progress")
    with pytest.raises(InputError, match="not a cgforge run directory"):
        RunDirectory(out, {"x": 1}).prepare()


def test_a_run_that_wrote_only_its_configuration_gives_way_to_another(tmp_path):
    """A run that failed on its input (an unknown molecule) left only its configuration: the
    corrected command takes the directory; one with results or checkpoints is refused."""
    out = tmp_path / "run"
    RunDirectory(out, {"molecule": "unobtainium"}).prepare()
    assert RunDirectory(out, {"molecule": "hexane"}).prepare() == "new"
    assert "hexane" in (out / ".cgforge" / "config.json").read_text()
    (out / "rdf.csv").write_text("r_nm,g\n")
    with pytest.raises(InputError, match="another configuration"):
        RunDirectory(out, {"molecule": "benzene"}).prepare()


@pytest.mark.parametrize("parent_kind", ["file", "proc"])
def test_an_out_that_cannot_be_created_is_one_input_error(tmp_path, parent_kind):
    if parent_kind == "file":
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "run"
    else:
        out = Path("/proc/cgforge-run")
    with pytest.raises(InputError, match=r"cannot create the run directory out .*writable"):
        RunDirectory(out, {"x": 1}).prepare()
