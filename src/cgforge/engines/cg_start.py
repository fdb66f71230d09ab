"""Start configurations of CG runs read from structure files (GRO, PDB, LAMMPS data, ...).

Every atom (particle) of the file is one bead; the file's orthorhombic periodic box becomes
the run's start box. Files are read with MDAnalysis (any format it reads by extension; LAMMPS
data files of ``atom_style atomic``, ``.data``/``.lmp``, are read as ``id type x y z``).
Positions are returned in nm.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError

_LAMMPS_DATA = (".data", ".lmp", ".lammps-data")


@dataclass(frozen=True)
class StartConfiguration:
    """Bead positions (n, 3) and box edges (3,), nm, read from ``path``."""

    path: Path
    positions_nm: NDArray[np.float64]
    box_nm: NDArray[np.float64]

    @property
    def n_beads(self) -> int:
        return int(self.positions_nm.shape[0])


def read_start_configuration(path: str | Path) -> StartConfiguration:
    """Read a CG start configuration (one bead per particle) and its box.

    Raises
    ------
    InputError
        Missing or unreadable file, fewer than 2 particles, no orthorhombic box, non-finite
        coordinates.
    """
    import MDAnalysis as mda

    file = Path(path)
    if not file.is_file():
        raise InputError(f"start configuration {file} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if file.suffix.lower() in _LAMMPS_DATA:
                try:
                    universe = mda.Universe(str(file), format="DATA", atom_style="id type x y z")
                except Exception:
                    universe = mda.Universe(str(file), format="DATA")
            else:
                universe = mda.Universe(str(file))
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot read the start configuration {file} ({message}); give a GRO, PDB or LAMMPS "
            "data file"
        ) from exc
    xyz = np.asarray(universe.atoms.positions, dtype=np.float64) * 0.1  # Å -> nm
    if xyz.shape[0] < 2:
        raise InputError(f"{file} holds {xyz.shape[0]} particle(s); a CG run needs at least 2")
    if not np.all(np.isfinite(xyz)):
        raise InputError(f"{file} holds non-finite coordinates")
    dims = universe.dimensions
    if dims is None or not np.all(np.isfinite(dims[:3])) or not np.all(dims[:3] > 0):
        raise InputError(f"{file} has no periodic box; give a file with box dimensions")
    if not np.allclose(dims[3:], 90.0, atol=1e-3):
        raise InputError(
            f"{file} has a triclinic box {dims.tolist()}; cgforge needs a rectangular one"
        )
    return StartConfiguration(
        path=file.resolve(), positions_nm=xyz, box_nm=np.asarray(dims[:3], dtype=np.float64) * 0.1
    )
