"""Atomic file writing: a file either holds its complete new content or its old content.

Every result file in cgforge goes through these helpers, so a run killed mid-write never leaves a
half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_TEMP_SUFFIX = ".tmp"


def _temp_prefix(name: str) -> str:
    return f".{name}."


def is_unfinished_write(path: str | Path, name: str) -> bool:
    """True for the temporary file that :func:`atomic_path` leaves beside a file ``name``
    when the process writing it is killed before the write completes."""
    tmp = Path(path).name
    return tmp.startswith(_temp_prefix(name)) and tmp.endswith(_TEMP_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=_temp_prefix(target.name), suffix=_TEMP_SUFFIX, dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # an existing file keeps its permission bits; a new one gets the umask's
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
    return Path(path)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_columns_csv(path: str | Path, header: Sequence[str], columns: Sequence[Any]) -> Path:
    """Write equal-length numeric columns as CSV with ``header`` (names carry units, e.g.
    ``r_nm``): RDFs, MSDs, learning curves. A potential table with its metadata is
    :func:`cgforge.potentials.io.write_csv`."""
    from cgforge.errors import InputError

    target = Path(path)
    rows = np.column_stack([np.asarray(c, dtype=float) for c in columns])
    lines = [",".join(header)] + [",".join(f"{v:.10g}" for v in row) for row in rows]
    try:
        write_text(target, "\n".join(lines) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write '{target}': {exc.strerror or exc}") from exc
    return target


def read_state(path: str | Path, fresh: dict[str, Any]) -> dict[str, Any]:
    """A run's JSON state file, or ``fresh`` where there is none yet; a damaged file is an
    InputError that says how to start again."""
    from cgforge.errors import InputError

    path = Path(path)
    if not path.exists():
        return fresh
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is corrupt; remove the directory and start again") from exc


def write_npz(path: str | Path, **arrays: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (provenance of inputs and results)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def check_creatable_dir(path: str | Path, what: str = "out") -> Path:
    """Refuse (:class:`~cgforge.errors.InputError`) a directory path that cannot be created or
    written, before any work: the nearest existing ancestor must be a directory in which a
    folder can be made (probed with an empty folder that is removed at once). ``what`` names the
    path in the message: the parameter that gave it (the command line shows its flag)."""
    from cgforge.errors import InputError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(f"{what} {target} is a file; give a directory path", parameters=what)
    ancestor = target if target.exists() else target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(
            f"cannot create {what} {target}: {ancestor} is a file, not a directory; give a "
            "writable directory path",
            parameters=what,
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".cgforge-probe-", dir=ancestor))
    except OSError as exc:
        raise InputError(
            f"cannot create {what} {target}: {exc.strerror or exc} in {ancestor}; give a "
            "writable directory path",
            parameters=what,
        ) from None
    return target
