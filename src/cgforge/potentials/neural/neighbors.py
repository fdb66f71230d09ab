"""Neighbour pairs of beads in an orthorhombic periodic box, for torch energy models.

:func:`neighbor_pairs` returns each pair once (i < j) whose minimum-image distance is below a
cutoff, with the separation vectors r_ij = x_j − x_i (nm) under the minimum image.
:func:`full_pairs` returns both directions (i ≠ j), the form message-passing networks use.

Which pairs are in the list is decided without gradients; the separation vectors are then
recomputed from ``positions_nm`` and ``box_nm`` with differentiable operations, so the
gradient of anything built from r_ij flows back to the positions *and* to the box edges
(the latter is what gives the virial, see :meth:`cgforge.potentials.neural.base.EnergyModel.
energy_forces_virial`). Positions may be unwrapped (any number of box lengths away).

Two search methods give the same pairs in the same order (sorted by i, then j):

``brute``
    all pairs, processed in row blocks to bound memory; best for small systems.
``cell``
    a cell list with cells at least one cutoff wide (a half shell of 14 cells per bead); its cost
    grows linearly with the number of beads. Needs at least 3 cells along every edge;
    otherwise the brute-force search is used.

``method="auto"`` picks the cell list from :data:`CELL_LIST_MIN_BEADS` beads on.
The cutoff may not exceed half the shortest box edge (the minimum image would then miss
pairs); that raises :class:`~cgforge.errors.InputError`.

Verlet lists for molecular dynamics: inside ``with use_neighbor_cache(NeighborCache(skin))``
every call of :func:`neighbor_pairs` reuses a candidate list built with ``cutoff + skin`` until
some bead has moved more than ``skin / 2`` since it was built. The result (pairs, order,
vectors) is the same as without the cache; only the search is skipped. Models need no change.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from cgforge.errors import InputError

#: From this many beads ``method="auto"`` uses the cell list.
CELL_LIST_MIN_BEADS = 256
#: Most (pair candidates) held at once by the brute-force search (bounds its memory).
_BRUTE_BLOCK_ELEMENTS = 4_000_000

_METHODS = ("auto", "brute", "cell")
#: Cell offsets searched from each bead's cell: its own and 13 of the 26 neighbours.
_HALF_SHELL = [(0, 0, 0)] + [
    (a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1) if (a, b, c) > (0, 0, 0)
]


def _check(
    positions_nm: Tensor, box_nm: Tensor, cutoff_nm: float, method: str
) -> tuple[float, ...]:
    """Refuse bad input; return the box edges (nm) as Python floats (one host transfer)."""
    if positions_nm.ndim != 2 or positions_nm.shape[1] != 3:
        raise InputError(f"positions must have shape (N, 3) in nm, got {tuple(positions_nm.shape)}")
    if box_nm.shape != (3,):
        raise InputError(
            f"box must hold the 3 edge lengths of an orthorhombic box in nm, "
            f"got shape {tuple(box_nm.shape)}"
        )
    if method not in _METHODS:
        raise InputError(f"unknown neighbour search method {method!r}; use one of {_METHODS}")
    edges = tuple(box_nm.detach().tolist())
    if not all(math.isfinite(e) and e > 0.0 for e in edges):
        raise InputError(f"box edges must be positive finite lengths in nm, got {list(edges)}")
    cutoff = float(cutoff_nm)
    if not (math.isfinite(cutoff) and cutoff > 0.0):
        raise InputError(f"cutoff must be a positive distance in nm, got {cutoff_nm}")
    shortest = min(edges)
    if cutoff > 0.5 * shortest * (1.0 + 1.0e-12):
        raise InputError(
            f"cutoff {cutoff:.4g} nm exceeds half the shortest box edge ({0.5 * shortest:.4g} "
            f"nm of {shortest:.4g} nm); "
            f"use a box with all edges >= {2.0 * cutoff:.4g} nm (more beads) or a shorter cutoff"
        )
    return edges


def _minimum_image(d: Tensor, box: Tensor) -> Tensor:
    """Minimum-image separation of ``d`` (…, 3) in an orthorhombic box (differentiable)."""
    return d - box * torch.round(d / box)


def _pair_vectors(pos: Tensor, i: Tensor, j: Tensor, box: Tensor) -> Tensor:
    """Minimum-image r_ij = x_j − x_i (P, 3) of the pairs (i, j) (differentiable)."""
    return _minimum_image(pos.index_select(0, j) - pos.index_select(0, i), box)


def _brute(pos: Tensor, box: Tensor, cutoff: float) -> tuple[Tensor, Tensor]:
    """All pairs i < j within the cutoff, sorted by (i, j); no gradients."""
    n = pos.shape[0]
    device = pos.device
    block = max(1, _BRUTE_BLOCK_ELEMENTS // max(n, 1))
    idx_i: list[Tensor] = []
    idx_j: list[Tensor] = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = _minimum_image(pos[None, :, :] - pos[start:stop, None, :], box)
        dist = torch.linalg.vector_norm(d, dim=-1)
        rows = torch.arange(start, stop, device=device)[:, None]
        cols = torch.arange(n, device=device)[None, :]
        mask = (dist < cutoff) & (cols > rows)
        bi, bj = torch.nonzero(mask, as_tuple=True)
        idx_i.append(bi + start)
        idx_j.append(bj)
    if not idx_i:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty.clone()
    return torch.cat(idx_i), torch.cat(idx_j)


def _cell(pos: Tensor, box: Tensor, cutoff: float) -> tuple[Tensor, Tensor] | None:
    """Pairs i < j within the cutoff from a cell list, sorted by (i, j); None if < 3 cells."""
    device = pos.device
    n = pos.shape[0]
    n_cells = torch.floor(box / cutoff).to(torch.long)
    if bool(torch.any(n_cells < 3)):
        return None
    frac = pos / box
    frac = frac - torch.floor(frac)
    c3 = torch.minimum((frac * n_cells).to(torch.long), n_cells - 1).clamp_(min=0)
    stride = torch.stack([n_cells[1] * n_cells[2], n_cells[2], torch.ones_like(n_cells[2])])
    cid = (c3 * stride).sum(-1)
    total = int(torch.prod(n_cells))
    order = torch.argsort(cid, stable=True)
    counts = torch.bincount(cid, minlength=total)
    starts = torch.cumsum(counts, 0) - counts
    max_count = int(counts.max())
    # the own cell and the 13 neighbour cells of a half shell: with >= 3 cells per edge every
    # unordered pair of neighbouring cells is visited exactly once
    shifts = torch.tensor(_HALF_SHELL, dtype=torch.long, device=device)
    neigh = torch.remainder(c3[:, None, :] + shifts[None, :, :], n_cells)  # (N, 14, 3)
    ncid = (neigh * stride).sum(-1)  # (N, 14)
    slot = torch.arange(max_count, device=device)
    valid = slot[None, None, :] < counts[ncid][:, :, None]  # (N, 14, K)
    where = (starts[ncid][:, :, None] + slot[None, None, :]).clamp_(max=max(n - 1, 0))
    cand_j = order[where]
    cand_i = torch.arange(n, device=device)[:, None, None].expand_as(cand_j)
    own = torch.zeros(len(_HALF_SHELL), dtype=torch.bool, device=device)
    own[0] = True
    keep = valid & ((cand_j > cand_i) | ~own[None, :, None])
    a = cand_i[keep]
    b = cand_j[keep]
    i, j = torch.minimum(a, b), torch.maximum(a, b)
    close = torch.linalg.vector_norm(_pair_vectors(pos, i, j, box), dim=-1) < cutoff
    i, j = i[close], j[close]
    key = torch.argsort(i * n + j)
    return i[key], j[key]


def neighbor_pairs(
    positions_nm: Tensor,
    box_nm: Tensor,
    cutoff_nm: float,
    *,
    method: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs i < j closer than ``cutoff_nm`` under the minimum image of an orthorhombic box.

    Parameters
    ----------
    positions_nm:
        Bead positions (N, 3) in nm, wrapped or unwrapped.
    box_nm:
        Box edge lengths (3,) in nm.
    cutoff_nm:
        Pair cutoff in nm (strict: pairs at exactly the cutoff are left out); at most half
        the shortest box edge.
    method:
        ``"auto"``, ``"brute"`` or ``"cell"`` (see the module docstring); all give the same
        result.

    Returns
    -------
    (i, j, r_ij):
        Long tensors (P,) of bead indices with i < j, sorted by (i, j), and the minimum-image
        separations r_ij = x_j − x_i (P, 3) in nm, differentiable w.r.t. ``positions_nm``
        and ``box_nm``.
    """
    edges = _check(positions_nm, box_nm, cutoff_nm, method)
    box = box_nm.to(dtype=positions_nm.dtype, device=positions_nm.device)
    cache = _ACTIVE_CACHE.get()
    if cache is not None:
        return cache.pairs(positions_nm, box, float(cutoff_nm), method, box_edges_nm=edges)
    i, j = _search(positions_nm.detach(), box.detach(), float(cutoff_nm), method)
    return i, j, _pair_vectors(positions_nm, i, j, box)


@torch.no_grad()
def _search(pos: Tensor, box: Tensor, cutoff: float, method: str) -> tuple[Tensor, Tensor]:
    pairs = None
    if method == "cell" or (method == "auto" and pos.shape[0] >= CELL_LIST_MIN_BEADS):
        pairs = _cell(pos, box, cutoff)
    if pairs is None:
        pairs = _brute(pos, box, cutoff)
    return pairs


@dataclass
class _CacheEntry:
    reference_nm: Tensor
    i: Tensor
    j: Tensor
    half_skin_nm: float


class NeighborCache:
    """Verlet neighbour lists: candidates within ``cutoff + skin_nm``, reused while valid.

    One entry is kept per (cutoff, number of beads, box, dtype, device), so models that ask
    for several cutoffs each get their own list. A list is rebuilt when any bead has moved
    more than half the skin since it was built (or the box changed: a new box gets its own
    list, :meth:`retain_box` drops those of other boxes). The skin is reduced
    where ``cutoff + skin`` would exceed half the shortest box edge. ``builds`` counts
    searches, ``calls`` requests.
    """

    def __init__(self, skin_nm: float = 0.1) -> None:
        skin = float(skin_nm)
        if not (math.isfinite(skin) and skin >= 0.0):
            raise InputError(f"neighbour-list skin must be a length >= 0 nm, got {skin_nm}")
        self.skin_nm = skin
        self.builds = 0
        self.calls = 0
        self._entries: dict[tuple, _CacheEntry] = {}

    def clear(self) -> None:
        """Forget all lists (the next request searches again)."""
        self._entries.clear()

    def retain_box(self, box_nm: Tensor) -> None:
        """Forget the lists of every box but ``box_nm`` (as the model receives it: its dtype).

        A barostat changes the box: a list built for an earlier box, or for a trial box that
        was rejected, is never asked for again and would only hold memory.
        """
        keep = tuple(box_nm.detach().tolist())
        for key in [k for k in self._entries if k[2] != keep]:
            del self._entries[key]

    def pairs(
        self,
        positions_nm: Tensor,
        box_nm: Tensor,
        cutoff_nm: float,
        method: str = "auto",
        *,
        box_edges_nm: tuple[float, ...] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Same result as :func:`neighbor_pairs` (inputs already checked; ``box_edges_nm``:
        the box edges as floats when the caller has them, saving a transfer to the host)."""
        self.calls += 1
        pos = positions_nm.detach()
        box_key = tuple(box_nm.detach().tolist()) if box_edges_nm is None else tuple(box_edges_nm)
        key = (cutoff_nm, pos.shape[0], box_key, pos.dtype, pos.device)
        entry = self._entries.get(key)
        with torch.no_grad():
            if entry is not None and entry.half_skin_nm > 0.0:
                moved = torch.linalg.vector_norm(pos - entry.reference_nm, dim=-1).max()
                if float(moved) > entry.half_skin_nm:
                    entry = None
            elif entry is not None:
                entry = None
            if entry is None:
                skin = max(0.0, min(self.skin_nm, 0.5 * min(box_key) - cutoff_nm))
                i, j = _search(pos, box_nm.detach(), cutoff_nm + skin, method)
                entry = _CacheEntry(pos.clone(), i, j, 0.5 * skin)
                self._entries[key] = entry
                self.builds += 1
            i, j = entry.i, entry.j
            if entry.half_skin_nm > 0.0:
                d = torch.linalg.vector_norm(_pair_vectors(pos, i, j, box_nm.detach()), dim=-1)
                index = torch.nonzero(d < cutoff_nm, as_tuple=True)[0]
                i, j = i[index], j[index]
        # the same differentiable expression as a fresh search: identical values and gradients
        return i, j, _pair_vectors(positions_nm, i, j, box_nm)


_ACTIVE_CACHE: contextvars.ContextVar[NeighborCache | None] = contextvars.ContextVar(
    "cgforge_neighbor_cache", default=None
)


@contextlib.contextmanager
def use_neighbor_cache(cache: NeighborCache | None) -> Iterator[NeighborCache | None]:
    """Make :func:`neighbor_pairs` use ``cache`` (a Verlet list) inside the ``with`` block."""
    token = _ACTIVE_CACHE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE_CACHE.reset(token)


def full_pairs(
    positions_nm: Tensor,
    box_nm: Tensor,
    cutoff_nm: float,
    *,
    method: str = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """Both directions of every pair within the cutoff: (i, j, r_ij) for all i ≠ j.

    The first P entries are the half list of :func:`neighbor_pairs`, the next P the same
    pairs reversed (i and j swapped, r_ij negated). r_ij = x_j − x_i in nm, differentiable.
    """
    i, j, r_ij = neighbor_pairs(positions_nm, box_nm, cutoff_nm, method=method)
    return torch.cat([i, j]), torch.cat([j, i]), torch.cat([r_ij, -r_ij])
