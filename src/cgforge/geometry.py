"""Periodic geometry of bead positions in an orthorhombic box (nm).

One place for the minimum-image pair search (a periodic k-d tree) that the RDF, linear force
matching and the neural-network prior use: :func:`wrap_positions`, :func:`minimum_image_pairs`
(all pairs within a cutoff) and :func:`nearest_distances` (each bead's nearest neighbour);
:func:`box_edges` checks a box given as one edge or three.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from cgforge.errors import InputError

__all__ = ["box_edges", "minimum_image_pairs", "nearest_distances", "wrap_positions"]


def box_edges(box_nm: float | ArrayLike) -> NDArray[np.float64]:
    """Orthorhombic box edges (3,) in nm from a number (cubic box) or three edges."""
    try:
        box = np.array(box_nm, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"box must be a number or three edge lengths in nm, got {box_nm!r}"
        ) from exc
    if box.ndim == 0:
        box = np.full(3, float(box))
    if box.shape != (3,):
        raise InputError(f"box must be a number or three edge lengths in nm, got shape {box.shape}")
    if not (np.all(np.isfinite(box)) and np.all(box > 0)):
        raise InputError(f"box edges must be positive lengths in nm, got {box.tolist()}")
    return box


def wrap_positions(positions_nm: ArrayLike, box_nm: ArrayLike) -> np.ndarray:
    """Positions put into the primary box ``[0, L)`` per axis (as the periodic tree needs)."""
    pos = np.asarray(positions_nm, dtype=np.float64)
    box = np.asarray(box_nm, dtype=np.float64)
    wrapped = pos - box * np.floor(pos / box)
    # a tiny negative coordinate wraps to exactly L in floating point; that is 0 again
    return np.where(wrapped >= box, wrapped - box, wrapped)


def _frame(positions_nm: ArrayLike, box_nm: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(positions_nm, dtype=np.float64)
    box = np.asarray(box_nm, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise InputError(f"positions must have shape (n_beads, 3), got {pos.shape}")
    if box.shape != (3,) or not np.all(box > 0):
        raise InputError(f"box must be three positive edge lengths in nm, got {box}")
    return pos, box


def minimum_image_pairs(
    positions_nm: ArrayLike, box_nm: ArrayLike, cutoff_nm: float, *, name: str = "cutoff"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All bead pairs closer than ``cutoff_nm`` under the minimum image (orthorhombic box).

    ``positions_nm`` ``(N, 3)`` (any image), ``box_nm`` ``(3,)`` edges. Returns ``(i, j, d, r)``:
    indices with i < j ``(P,)``, separation vectors d = r_i − r_j ``(P, 3)`` nm and distances
    ``(P,)`` nm. ``cutoff_nm`` may not exceed half the smallest box edge; ``name`` is what the
    caller calls it in that error (``"cutoff"``, ``"r_max"``).
    """
    pos, box = _frame(positions_nm, box_nm)
    half = 0.5 * float(box.min())
    if cutoff_nm > half * (1.0 + 1.0e-12):
        raise InputError(
            f"{name} {cutoff_nm:.4g} nm exceeds half the smallest box edge ({half:.4g} nm); "
            f"use a shorter {name} or a larger box"
        )
    wrapped = wrap_positions(pos, box)
    pairs = cKDTree(wrapped, boxsize=box).query_pairs(cutoff_nm, output_type="ndarray")
    pairs = pairs.reshape(-1, 2)
    i = pairs[:, 0].astype(np.int64)
    j = pairs[:, 1].astype(np.int64)
    d = wrapped[i] - wrapped[j]
    d -= box * np.round(d / box)
    r = np.sqrt(np.einsum("ij,ij->i", d, d))
    return i, j, d, r


def nearest_distances(positions_nm: ArrayLike, box_nm: ArrayLike) -> np.ndarray:
    """Minimum-image distance (nm) from each bead to its nearest other bead, ``(N,)``.

    ``positions_nm`` ``(N >= 2, 3)`` (any image), ``box_nm`` ``(3,)`` orthorhombic edges.
    """
    pos, box = _frame(positions_nm, box_nm)
    if pos.shape[0] < 2:
        raise InputError(f"a nearest neighbour needs at least 2 beads, got {pos.shape[0]}")
    wrapped = wrap_positions(pos, box)
    distances, _ = cKDTree(wrapped, boxsize=box).query(wrapped, k=2)
    return distances[:, 1]
