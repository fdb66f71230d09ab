"""Run state files: a missing one starts fresh, a damaged one is refused in one line."""

from __future__ import annotations

import pytest

from cgforge.errors import InputError
from cgforge.fileio import read_state, write_json


def test_read_state_fresh_stored_and_corrupt(tmp_path):
    path = tmp_path / "state.json"
    assert read_state(path, {"stage": "minimize"}) == {"stage": "minimize"}
    write_json(path, {"stage": "production", "step": 40})
    assert read_state(path, {"stage": "minimize"}) == {"stage": "production", "step": 40}
    path.write_text('{"stage": "prod')  # a write cut short
    with pytest.raises(InputError, match="corrupt; remove the directory"):
        read_state(path, {})
