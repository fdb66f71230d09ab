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
    RunDirectory(out, {"protocol": {"production_ps": 10.0}, "seed": 1}).prepare()
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
