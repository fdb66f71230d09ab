"""The all-atom → one-bead-per-molecule map, in pure numpy.

Every molecule becomes one bead at its centre of mass; the bead force is the sum of the atomic
forces of the molecule. Atoms are assigned to molecules by a *molecule index*: an integer array
of length ``n_atoms`` whose values are ``0 … n_molecules-1`` (each value used at least once;
the atoms of one molecule need not be contiguous).

Shapes: positions and forces are ``(n_atoms, 3)`` for one frame or ``(n_frames, n_atoms, 3)``
for many; boxes are orthorhombic edge lengths ``(3,)`` or ``(n_frames, 3)``. Units are those
of cgforge (nm, kJ/mol/nm, amu) but every function here is unit-agnostic as long as positions
and boxes share a unit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cgforge.errors import InputError

__all__ = [
    "center_of_mass",
    "first_atoms",
    "make_whole",
    "map_forces",
    "molecule_index",
    "molecule_sizes",
    "unwrap_in_time",
]


def molecule_index(n_molecules: int, atoms_per_molecule: int | Sequence[int]) -> np.ndarray:
    """Molecule index for molecules stored one after another.

    ``atoms_per_molecule`` is one count for identical molecules or one count per molecule.
    Returns an ``int64`` array of length ``n_atoms``.
    """
    if int(n_molecules) != n_molecules or n_molecules < 1:
        raise InputError(f"n_molecules must be a positive integer, got {n_molecules!r}")
    counts = np.atleast_1d(np.asarray(atoms_per_molecule))
    if counts.ndim != 1 or counts.dtype.kind not in "iu":
        raise InputError("atoms_per_molecule must be an integer or a sequence of integers")
    if counts.size == 1:
        counts = np.full(int(n_molecules), int(counts[0]))
    if counts.size != n_molecules:
        raise InputError(
            f"atoms_per_molecule has {counts.size} entries for {n_molecules} molecules; "
            "give one count, or one per molecule"
        )
    if np.any(counts < 1):
        raise InputError("every molecule needs at least one atom (atoms_per_molecule >= 1)")
    return np.repeat(np.arange(int(n_molecules), dtype=np.int64), counts)


def _check_index(mol_index: np.ndarray, n_atoms: int | None = None) -> tuple[np.ndarray, int]:
    """Validate a molecule index; return it as int64 and the number of molecules."""
    idx = np.asarray(mol_index)
    if idx.ndim != 1 or idx.size == 0:
        raise InputError(
            "molecule_index must be a non-empty 1-D integer array (one entry per atom)"
        )
    if idx.dtype.kind not in "iu":
        if idx.dtype.kind == "f" and np.all(np.isfinite(idx)) and np.all(idx == np.round(idx)):
            idx = idx.astype(np.int64)
        else:
            raise InputError("molecule_index must hold integers")
    idx = idx.astype(np.int64, copy=False)
    if n_atoms is not None and idx.size != n_atoms:
        raise InputError(
            f"molecule_index has {idx.size} entries but the positions hold {n_atoms} atoms"
        )
    if idx.min() < 0:
        raise InputError("molecule_index must be non-negative")
    n_mol = int(idx.max()) + 1
    if np.bincount(idx, minlength=n_mol).min() == 0:
        raise InputError("molecule_index skips a molecule number; use consecutive numbers 0..M-1")
    return idx, n_mol


def molecule_sizes(mol_index: np.ndarray) -> np.ndarray:
    """Number of atoms of each molecule, ``(n_molecules,)``."""
    idx, n_mol = _check_index(mol_index)
    return np.bincount(idx, minlength=n_mol)


def first_atoms(mol_index: np.ndarray) -> np.ndarray:
    """Index of the first (lowest-numbered) atom of each molecule, ``(n_molecules,)``."""
    idx, n_mol = _check_index(mol_index)
    first = np.full(n_mol, idx.size, dtype=np.int64)
    np.minimum.at(first, idx, np.arange(idx.size, dtype=np.int64))
    return first


def _check_coords(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim not in (2, 3) or arr.shape[-1] != 3:
        raise InputError(
            f"{what} must have shape (n_atoms, 3) or (n_frames, n_atoms, 3), got {arr.shape}"
        )
    return arr


def _check_box(box: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Box as an array broadcastable against ``coords`` (inserting the atom axis)."""
    b = np.asarray(box, dtype=np.float64)
    if coords.ndim == 2:
        if b.shape != (3,):
            raise InputError(f"box must have shape (3,) for one frame, got {b.shape}")
        out = b[None, :]
    else:
        n_frames = coords.shape[0]
        if b.shape == (3,):
            b = np.broadcast_to(b, (n_frames, 3))
        if b.shape != (n_frames, 3):
            raise InputError(f"box must have shape (3,) or ({n_frames}, 3), got {b.shape}")
        out = b[:, None, :]
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise InputError("box edge lengths must be finite and positive")
    return out


def _segment_sum(values: np.ndarray, idx: np.ndarray, n_mol: int) -> np.ndarray:
    """Sum ``values[..., atom, :]`` over the atoms of each molecule (axis -2)."""
    if np.all(idx[1:] >= idx[:-1]):
        ordered = values
        sorted_idx = idx
    else:
        order = np.argsort(idx, kind="stable")
        ordered = values[..., order, :]
        sorted_idx = idx[order]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    out = np.add.reduceat(ordered, starts, axis=-2)
    if out.shape[-2] != n_mol:  # cannot happen after _check_index; guards future edits
        raise InputError("molecule_index is inconsistent with the number of molecules")
    return out


def center_of_mass(positions: np.ndarray, masses: np.ndarray, mol_index: np.ndarray) -> np.ndarray:
    """Centre of mass of every molecule.

    ``positions`` ``(A, 3)`` or ``(F, A, 3)`` (molecules must already be whole, see
    :func:`make_whole`), ``masses`` ``(A,)`` in amu. Returns ``(M, 3)`` or ``(F, M, 3)``
    in the unit of ``positions``.
    """
    pos = _check_coords(positions, "positions")
    n_atoms = pos.shape[-2]
    idx, n_mol = _check_index(mol_index, n_atoms)
    m = np.asarray(masses, dtype=np.float64)
    if m.shape != (n_atoms,):
        raise InputError(f"masses must have shape ({n_atoms},), got {m.shape}")
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise InputError("atomic masses must be finite and positive (amu)")
    mol_mass = np.bincount(idx, weights=m, minlength=n_mol)
    weights = (m / mol_mass[idx])[:, None]
    return _segment_sum(pos * weights, idx, n_mol)


def make_whole(positions: np.ndarray, box: np.ndarray, mol_index: np.ndarray) -> np.ndarray:
    """Make every molecule whole by the minimum image relative to its first atom.

    Each atom is moved by whole box vectors to lie within half a box edge (per axis) of the
    first atom of its molecule; the first atom stays where it is. This is exact for
    molecules that span less than half the box in every direction. ``box`` is ``(3,)`` or
    ``(F, 3)`` orthorhombic edge lengths in the unit of ``positions``.
    """
    pos = _check_coords(positions, "positions")
    idx, _ = _check_index(mol_index, pos.shape[-2])
    b = _check_box(box, pos)
    ref = pos[..., first_atoms(idx)[idx], :]
    d = pos - ref
    d -= b * np.round(d / b)
    return ref + d


def map_forces(forces: np.ndarray, mol_index: np.ndarray) -> np.ndarray:
    """Bead forces: the sum of the atomic forces of each molecule, ``(M, 3)`` or ``(F, M, 3)``."""
    f = _check_coords(forces, "forces")
    idx, n_mol = _check_index(mol_index, f.shape[-2])
    return _segment_sum(f, idx, n_mol)


def unwrap_in_time(positions: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Continuous-in-time positions from periodic ones.

    Between frames ``i`` and ``i+1`` the displacement is reduced to its minimum image in the
    box of frame ``i+1`` and accumulated, starting from frame 0 as given. This recovers the
    true trajectory when no particle moves more than half a box edge between stored frames,
    also for a fluctuating (NPT) box. ``positions`` ``(F, N, 3)``, ``box`` ``(3,)`` or
    ``(F, 3)``.
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise InputError(f"positions must have shape (n_frames, n, 3), got {pos.shape}")
    b = _check_box(box, pos)
    if pos.shape[0] < 2:
        return pos.copy()
    step = np.diff(pos, axis=0)
    b_next = b[1:]
    step -= b_next * np.round(step / b_next)
    out = np.empty_like(pos)
    out[0] = pos[0]
    np.cumsum(step, axis=0, out=out[1:])
    out[1:] += pos[0]
    return out
