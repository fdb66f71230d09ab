"""Run state files: a missing one starts fresh, a damaged one is refused in one line; file
hashes for provenance."""

from __future__ import annotations

import hashlib

import pytest

from cgforge.errors import InputError
from cgforge.fileio import read_state, sha256_file, write_json


def test_read_state_fresh_stored_and_corrupt(tmp_path):
    path = tmp_path / "state.json"
    assert read_state(path, {"stage": "minimize"}) == {"stage": "minimize"}
    write_json(path, {"stage": "production", "step": 40})
    assert read_state(path, {"stage": "minimize"}) == {"stage": "production", "step": 40}
    path.write_text('{"stage": "prod')  # a write cut short
    with pytest.raises(InputError, match="corrupt; remove the directory"):
        read_state(path, {})


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 5000  # over one 1 MiB chunk
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == sha256_file(path)
