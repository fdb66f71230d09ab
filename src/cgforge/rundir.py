"""Run directories: one output folder per run, resumable, never half-written.

A run directory holds the user-facing results and a hidden ``.cgforge/`` folder with the resolved
configuration, checkpoints and sample chunks. ``summary.json`` is written last and marks a complete
run; a directory without it is an unfinished run that the same command resumes. A directory that
holds a run of another configuration is refused rather than mixed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from cgforge.errors import InputError
from cgforge.fileio import is_unfinished_write, write_json
from cgforge.provenance import normalised_json
from cgforge.runsummary import SUMMARY, read_summary

WORK = ".cgforge"
#: The run's resolved configuration in :data:`WORK`: it marks a cgforge run directory.
CONFIG = "config.json"


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(normalised_json(config).encode()).hexdigest()[:16]


class RunDirectory:
    """The output directory of one run (``out``; ``--out`` on the command line)."""

    def __init__(
        self, path: str | Path, config: dict[str, Any], *, overwrite: bool = False
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.hash = config_hash(config)
        self.overwrite = overwrite

    @property
    def work(self) -> Path:
        return self.path / WORK

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    def prepare(self) -> str:
        """Create or reopen the directory. Returns ``"new"``, ``"resume"`` or ``"complete"``."""
        marker = self.work / CONFIG
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"out {self.path} is a file; give a directory path", parameters="out")
        if self.path.exists() and any(self.path.iterdir()) and not self._killed_at_birth():
            if not marker.exists():
                raise InputError(
                    f"out {self.path} exists and is not a cgforge run directory; choose a new path",
                    parameters="out",
                )
            stored = json.loads(marker.read_text())
            if self.overwrite or (stored.get("hash") != self.hash and self._nothing_done()):
                shutil.rmtree(self.path)  # nothing done: a run that failed before it began
            elif stored.get("hash") != self.hash:
                changed = _differences(stored.get("config", {}), self.config)
                raise InputError(
                    f"out {self.path} holds a run with another configuration (differs in: "
                    f"{', '.join(changed) or 'unknown'}); use another out or pass overwrite=True",
                    parameters=("out", "overwrite"),
                )
            elif self.summary_path.exists():
                return "complete"
            else:
                return "resume"
        try:
            self.work.mkdir(parents=True, exist_ok=True)
            write_json(marker, {"hash": self.hash, "config": self.config})
        except OSError as exc:
            raise InputError(
                f"cannot create the run directory out {self.path}: "
                f"{exc.strerror or exc}; give a writable directory path",
                parameters="out",
            ) from exc
        return "new"

    def _killed_at_birth(self) -> bool:
        """True when the directory holds only a ``.cgforge/`` folder without a configuration
        (at most the temporary file of one being written): a run killed between creating its
        folder and writing its configuration, which the same command starts afresh."""
        if {p.name for p in self.path.iterdir()} != {WORK} or not self.work.is_dir():
            return False
        return all(p.is_file() and is_unfinished_write(p, CONFIG) for p in self.work.iterdir())

    def _nothing_done(self) -> bool:
        """True when the directory holds only the configuration of a run that wrote nothing
        else (one that failed on its input): a corrected command may take the directory."""
        outside = {p.name for p in self.path.iterdir()}
        inside = {p.name for p in self.work.iterdir()} if self.work.is_dir() else set()
        return outside == {WORK} and inside == {CONFIG}

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        """The summary of the finished run (:func:`cgforge.runsummary.read_summary`)."""
        return read_summary(self.path)

    def clean_work(self, keep: tuple[str, ...] = (CONFIG,)) -> None:
        """Remove checkpoints and chunks of a finished run (the results hold what they held)."""
        for item in self.work.iterdir():
            if item.name in keep:
                continue
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    changed: list[str] = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _differences(a, b, f"{prefix}{key}.")
        elif normalised_json(a) != normalised_json(b):
            changed.append(prefix + key)
    return changed
