"""Provenance recorded beside every result: configuration, seeds, versions, git revision, host."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import cgforge

_PACKAGES = (
    "numpy",
    "scipy",
    "openmm",
    "rdkit",
    "MDAnalysis",
    "packmol",
    "torch",
    "dask",
    "distributed",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of cgforge and the packages its results depend on (None if absent)."""
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "cgforge": cgforge.__version__,
    }
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> dict[str, Any] | None:
    """Git commit of the cgforge source tree (and whether it had local changes), if it is a checkout."""
    source = Path(cgforge.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(status.strip())}


def collect(config: dict[str, Any], *, seed: int | None = None) -> dict[str, Any]:
    """The provenance block written into every ``summary.json``."""
    return {
        "cgforge_version": cgforge.__version__,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "seed": seed,
        "config": config,
        "versions": package_versions(),
        "git": git_revision(),
        "host": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": _cpu_count(),
        },
    }


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()


def normalised_json(data: Any) -> str:
    """Canonical JSON of a configuration: sorted keys, floats normalised, so 300 and 300.0 agree."""

    def norm(value: Any) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float):
            as_float = float(value)
            return int(as_float) if as_float.is_integer() else repr(as_float)
        if isinstance(value, dict):
            return {str(k): norm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        return str(value)

    return json.dumps(norm(data), sort_keys=True, separators=(",", ":"))
