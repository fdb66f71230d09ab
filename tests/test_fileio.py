"""Run state files: a missing one starts fresh, a damaged one is refused in one line; file
hashes for provenance."""

from __future__ import annotations

import hashlib
import os

import pytest

from cgforge.errors import InputError
from cgforge.fileio import read_state, sha256_file, write_columns_csv, write_json, write_text


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


def test_write_text_keeps_permission_bits_and_writes_columns(tmp_path):
    path = tmp_path / "table.txt"
    write_text(path, "one\n")
    os.chmod(path, 0o600)
    assert write_text(path, "two \u00b2\n") == path
    assert path.read_text(encoding="utf-8") == "two \u00b2\n"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    csv = write_columns_csv(tmp_path / "sub" / "g.csv", ("r_nm", "g"), ([0.1, 0.2], [0.0, 1.5]))
    assert csv.read_text() == "r_nm,g\n0.1,0\n0.2,1.5\n"
