"""Radial distribution function of the beads (one species, centre-of-mass pairs).

For a frame with ``N`` beads in volume ``V`` the pair histogram ``n_k`` (each unordered pair
counted once, minimum-image distances) is normalised by the number of pairs an ideal gas of
the same ``N`` and ``V`` puts into the shell,

    g_k = n_k / [ N (N − 1) / 2 · (4/3) π (r_{k+1}³ − r_k³) / V ],

i.e. ``2 n_k / N`` pairs per bead divided by the density of the *other* beads
``(N − 1)/V`` and by the shell volume. With this normalisation an ideal gas gives g = 1
exactly at every N (``N/V`` instead of ``(N−1)/V`` would give ``1 − 1/N``). Frames are averaged
with equal weight, each with its own volume (NPT is fine).

``g_err`` is the standard error of the frame average from block averaging: the frames, in
order, are split into ``n_blocks`` contiguous blocks and the standard deviation of the block
means is divided by √n_blocks. With fewer than ``min_frames_for_blocks`` frames the counting
(Poisson) error of the histogram is reported instead, which ignores correlations.

Distances are in nm, densities in 1/nm³.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cgforge.errors import InputError
from cgforge.fileio import write_columns_csv
from cgforge.geometry import minimum_image_pairs
from cgforge.trajectory import CGTrajectory

__all__ = ["RDF", "RDFResult", "pair_distances"]


def pair_distances(positions_nm: np.ndarray, box_nm: np.ndarray, r_max_nm: float) -> np.ndarray:
    """Minimum-image distances (nm) of all unordered bead pairs closer than ``r_max_nm``.

    ``positions_nm`` ``(N, 3)`` (any image), ``box_nm`` ``(3,)`` orthorhombic edges;
    ``r_max_nm`` must not exceed half the smallest edge
    (:func:`cgforge.geometry.minimum_image_pairs`).
    """
    return minimum_image_pairs(positions_nm, box_nm, r_max_nm, name="r_max")[3]


@dataclass(frozen=True, eq=False)
class RDFResult:
    """A radial distribution function.

    Attributes: ``r_nm`` bin centres (nm), ``g`` and its standard error ``g_err``,
    ``n_frames`` frames averaged (0 when read from CSV, which does not store it),
    ``r_max_nm`` outer edge of the last bin, ``bin_width_nm``, ``density_nm3`` the mean
    bead number density N/V and ``neighbour_density_nm3`` the mean density of the *other*
    beads (N−1)/V that g is normalised with (1/nm³; both NaN when read from CSV).
    """

    r_nm: np.ndarray
    g: np.ndarray
    g_err: np.ndarray
    n_frames: int
    r_max_nm: float
    bin_width_nm: float
    density_nm3: float = float("nan")
    neighbour_density_nm3: float = float("nan")

    @property
    def r_edges_nm(self) -> np.ndarray:
        """Bin edges in nm, ``(n_bins + 1,)``."""
        return np.append(
            self.r_nm - 0.5 * self.bin_width_nm, self.r_nm[-1] + 0.5 * self.bin_width_nm
        )

    def coordination_number(self, r_cut_nm: float, density_nm3: float | None = None) -> float:
        """Mean number of neighbours within ``r_cut_nm``: ∫₀^rc 4πρ r² g(r) dr (histogram sum).

        ``density_nm3`` defaults to the stored neighbour density (N−1)/V, which makes this the
        exact mean neighbour count of the sampled frames. Bins are counted whole up to the one
        containing ``r_cut_nm`` and partially (by volume) for that one.
        """
        rho = self.neighbour_density_nm3 if density_nm3 is None else density_nm3
        if not np.isfinite(rho) or rho <= 0:
            raise InputError("coordination_number needs a positive bead density (density_nm3)")
        edges = self.r_edges_nm
        lo = edges[:-1]
        hi = np.clip(edges[1:], None, r_cut_nm)
        shell = 4.0 / 3.0 * np.pi * np.clip(hi**3 - lo**3, 0.0, None)
        return float(rho * np.sum(self.g * shell))

    def to_csv(self, path: str | Path) -> Path:
        """Write ``r_nm,g,g_err`` (one row per bin) and return the path."""
        return write_columns_csv(path, ("r_nm", "g", "g_err"), (self.r_nm, self.g, self.g_err))

    @classmethod
    def from_csv(cls, path: str | Path) -> RDFResult:
        """Read a file written by :meth:`to_csv` (``r_nm,g`` required, ``g_err`` optional)."""
        cols = _read_csv(path, required=("r_nm", "g"), optional=("g_err",))
        r = cols["r_nm"]
        if r.size < 1 or np.any(np.diff(r) <= 0):
            raise InputError(f"'{path}': r_nm must be increasing with at least one row")
        width = float(np.mean(np.diff(r))) if r.size > 1 else 2.0 * float(r[0])
        if r.size > 1 and not np.allclose(np.diff(r), width, rtol=1e-4, atol=1e-9):
            raise InputError(f"'{path}': r_nm is not evenly spaced; cannot infer the bin width")
        g_err = cols.get("g_err", np.full_like(r, np.nan))
        return cls(r, cols["g"], g_err, 0, float(r[-1] + 0.5 * width), width)


def _read_csv(
    path: str | Path, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV with a header line, by name."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file '{path}' not found")
    try:
        with path.open(newline="") as fh:
            rows = [row for row in csv.reader(fh) if row and not row[0].startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read '{path}': {exc}") from exc
    if not rows:
        raise InputError(f"'{path}' is empty")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"'{path}' lacks the column(s) {', '.join(missing)}; header is {header}")
    try:
        data = np.array([[float(v) for v in row] for row in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"'{path}' has a non-numeric value: {exc}") from exc
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] != len(header):
        raise InputError(f"'{path}' has no data rows or rows of unequal length")
    return {name: data[:, header.index(name)] for name in (*required, *optional) if name in header}


class RDF:
    """Streaming estimator of the bead–bead radial distribution function.

    Parameters (constructor) fix the histogram; data come in through :meth:`compute`,
    :meth:`update` or :meth:`update_frame`; estimators on different frame sets combine with
    :meth:`merge`; :meth:`result` finalises.

    ``r_max_nm``: outer radius in nm; ``None`` takes half the smallest box edge of the first
    data seen. It may not exceed half the smallest box edge of any frame. ``bin_width_nm``:
    histogram bin width in nm (``r_max`` is rounded down to a whole number of bins).
    ``n_blocks``: blocks for the error estimate.
    """

    def __init__(
        self,
        r_max_nm: float | None = None,
        bin_width_nm: float = 0.002,
        *,
        n_blocks: int = 10,
        min_frames_for_blocks: int = 5,
    ) -> None:
        if not (np.isfinite(bin_width_nm) and bin_width_nm > 0):
            raise InputError(f"bin_width_nm must be positive, got {bin_width_nm}")
        if r_max_nm is not None and not (np.isfinite(r_max_nm) and r_max_nm >= bin_width_nm):
            raise InputError(f"r_max_nm must be at least one bin width, got {r_max_nm}")
        if n_blocks < 2:
            raise InputError(f"n_blocks must be at least 2, got {n_blocks}")
        self.requested_r_max_nm = r_max_nm
        self.bin_width_nm = float(bin_width_nm)
        self.n_blocks = int(n_blocks)
        self.min_frames_for_blocks = max(int(min_frames_for_blocks), 2)
        self.reset()

    # --------------------------------------------------------------- state
    def reset(self) -> RDF:
        """Forget all frames (the bins chosen from ``r_max_nm=None`` are forgotten too)."""
        self._n_bins: int | None = None
        self._counts: list[np.ndarray] = []
        self._pair_norm: list[float] = []  # N(N-1)/(2V) per frame, 1/nm³
        self._density: list[float] = []
        self._neighbour_density: list[float] = []
        if self.requested_r_max_nm is not None:
            self._set_bins(self.requested_r_max_nm)
        return self

    def _set_bins(self, r_max_nm: float) -> None:
        n_bins = int(np.floor(r_max_nm / self.bin_width_nm + 1e-9))
        if n_bins < 1:
            raise InputError(
                f"r_max {r_max_nm:g} nm is smaller than one bin ({self.bin_width_nm} nm)"
            )
        self._n_bins = n_bins

    @property
    def r_max_nm(self) -> float | None:
        """Outer edge of the histogram in nm (``None`` until fixed by the first frame)."""
        return None if self._n_bins is None else self._n_bins * self.bin_width_nm

    @property
    def n_frames(self) -> int:
        """Frames accumulated so far."""
        return len(self._counts)

    # --------------------------------------------------------------- input
    def update_frame(self, positions_nm: np.ndarray, box_nm: np.ndarray) -> RDF:
        """Add one frame: bead positions ``(N, 3)`` in nm and box edges ``(3,)`` in nm."""
        box = np.asarray(box_nm, dtype=np.float64)
        pos = np.asarray(positions_nm, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[0] < 2:
            raise InputError("an RDF needs at least two beads per frame")
        if self._n_bins is None:
            self._set_bins(0.5 * float(box.min()))
        assert self._n_bins is not None
        r_max = self._n_bins * self.bin_width_nm
        dist = pair_distances(pos, box, r_max)
        idx = np.floor(dist / self.bin_width_nm).astype(np.int64)
        counts = np.bincount(idx[idx < self._n_bins], minlength=self._n_bins)
        n = pos.shape[0]
        volume = float(np.prod(box))
        self._counts.append(counts.astype(np.float64))
        self._pair_norm.append(n * (n - 1) / (2.0 * volume))
        self._density.append(n / volume)
        self._neighbour_density.append((n - 1) / volume)
        return self

    def update(self, traj: CGTrajectory) -> RDF:
        """Add every frame of a trajectory."""
        if not isinstance(traj, CGTrajectory):
            raise InputError(f"RDF.update expects a CGTrajectory, got {type(traj).__name__}")
        if self._n_bins is None:
            self._set_bins(0.5 * float(np.min(traj.box_nm)))
        assert self._n_bins is not None
        smallest = float(np.min(traj.box_nm))
        if self._n_bins * self.bin_width_nm > 0.5 * smallest * (1 + 1e-12):
            raise InputError(
                f"r_max {self._n_bins * self.bin_width_nm:g} nm exceeds half the smallest box "
                f"edge of the trajectory ({0.5 * smallest:g} nm); use a smaller r_max_nm"
            )
        for pos, box in zip(traj.positions_nm, traj.box_nm, strict=True):
            self.update_frame(pos, box)
        return self

    def compute(self, traj: CGTrajectory) -> RDFResult:
        """Reset, add every frame of ``traj`` and return the result."""
        self.reset()
        self.update(traj)
        return self.result()

    def merge(self, other: RDF) -> RDF:
        """Add the frames accumulated by ``other`` (same bins) to this estimator."""
        if not isinstance(other, RDF):
            raise InputError(f"can only merge another RDF, got {type(other).__name__}")
        if other.n_frames == 0:
            return self
        if self._n_bins is None and self.n_frames == 0:
            self._n_bins = other._n_bins
        if other._n_bins != self._n_bins or not np.isclose(other.bin_width_nm, self.bin_width_nm):
            raise InputError(
                "cannot merge RDFs with different bins; "
                "give both the same r_max_nm and bin_width_nm"
            )
        self._counts.extend(other._counts)
        self._pair_norm.extend(other._pair_norm)
        self._density.extend(other._density)
        self._neighbour_density.extend(other._neighbour_density)
        return self

    # --------------------------------------------------------------- output
    def result(self) -> RDFResult:
        """Average over the frames seen so far."""
        if self.n_frames == 0 or self._n_bins is None:
            raise InputError(
                "the RDF has no frames; call update() or compute() with a trajectory first"
            )
        width = self.bin_width_nm
        edges = np.arange(self._n_bins + 1) * width
        shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        counts = np.asarray(self._counts)  # (F, n_bins)
        norm = np.asarray(self._pair_norm)[:, None] * shell[None, :]
        g_frames = counts / norm
        g = g_frames.mean(axis=0)
        n_frames = counts.shape[0]
        if n_frames >= self.min_frames_for_blocks:
            n_blocks = min(self.n_blocks, n_frames)
            blocks = np.array([b.mean(axis=0) for b in np.array_split(g_frames, n_blocks)])
            g_err = blocks.std(axis=0, ddof=1) / np.sqrt(n_blocks)
        else:
            g_err = np.sqrt(np.sum(counts / norm**2, axis=0)) / n_frames
        return RDFResult(
            r_nm=0.5 * (edges[1:] + edges[:-1]),
            g=g,
            g_err=g_err,
            n_frames=n_frames,
            r_max_nm=float(edges[-1]),
            bin_width_nm=width,
            density_nm3=float(np.mean(self._density)),
            neighbour_density_nm3=float(np.mean(self._neighbour_density)),
        )
