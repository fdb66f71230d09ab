"""Linear force matching (multiscale coarse-graining, MS-CG) of a one-bead pair force.

The method of Izvekov & Voth (J. Chem. Phys. 123, 134105 (2005)) and Noid et al. (J. Chem. Phys.
128, 244114 (2008)): the CG force on bead I is modelled as a sum of central pair forces,

    F_I = Σ_{J ≠ I} f(r_IJ) r̂_IJ,        r̂_IJ = (r_I − r_J) / r_IJ  (minimum image),

with f(r) > 0 repulsive, and f is chosen to minimise the squared difference to the mapped
all-atom forces over all beads and frames. The pair force is expanded in cubic B-splines on
uniform knots from ``r_min`` to the cutoff ``r_cut`` (:class:`BSplineBasis`), f(r) = Σ_k c_k B_k(r),
which makes the model linear in the coefficients: per frame F = G c with the design matrix G
``(3N, n_basis)``. :class:`ForceMatchingAccumulator` sums the normal equations GᵀG and GᵀF (and
FᵀF, Σ F and a pair-distance histogram) in float64 frame by frame (:meth:`~ForceMatchingAccumulator.
update`); accumulators of separate workers or trajectories add up exactly with
:meth:`~ForceMatchingAccumulator.merge`. :meth:`~ForceMatchingAccumulator.solve` returns a
:class:`LinearFMResult`: the force f(r), the potential U(r) = ∫_r^{r_cut} f dr' (U(r_cut) = 0),
tables for MD (:meth:`LinearFMResult.potential`, :meth:`LinearFMResult.simulation_potential`) and
the fit statistics.

Regularisation
    ``penalty="smoothness"`` (default) adds λ·s·‖D₂c‖² with D₂ the second-difference operator of
    the coefficients; ``penalty="tikhonov"`` adds λ·s·‖c‖². The scale s = tr(GᵀG)/n_basis makes λ
    dimensionless and independent of the number of frames. The smoothness penalty is the
    default because it penalises the curvature of f, not its size: where the data are sparse
    (the repulsive core, sampled by few pairs) it continues f smoothly from the sampled range,
    and straight lines cost nothing, while Tikhonov pulls the coefficients of poorly sampled
    knots towards f = 0, i.e. towards no repulsion at short range, and biases the strong
    core forces everywhere. λ = 0 is plain least squares (an error when some knot holds no
    samples).

Statistics
    The residual is reported as the root-mean-square deviation per force component (kJ/mol/nm)
    and the fraction of the mapped-force variance explained, 1 − Σ|F − Gc|² / Σ|F − F̄|² (F̄ the
    mean force vector of each frame, ≈ 0). Mapped forces of molecular liquids carry orientation-dependent and
    many-body parts that no pair force can represent, so the fraction stays well below 1 there
    (a noise floor set by the mapping, not by the fit); for a liquid that *is* a pair fluid it
    approaches 1. :func:`frame_residuals` gives the per-frame values.

The workflow of ``cgforge fm linear`` (all-atom run directories with mapped forces → fit →
files, optionally CG validation runs) is :func:`cgforge.workflows.fm_linear.run_linear_fm`.

Units: nm, kJ/mol, kJ/mol/nm, ps, K, amu.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import BSpline

from cgforge.engines.protocol import ProgressCallback
from cgforge.errors import InputError, SimulationError
from cgforge.geometry import minimum_image_pairs
from cgforge.methods.force_data import (
    ForceDataset,
    ForceFrame,
)
from cgforge.potentials.table import TabulatedPotential

__all__ = [
    "DEFAULT_CUTOFF_NM",
    "DEFAULT_KNOT_SPACING_NM",
    "DEFAULT_REGULARISATION",
    "PENALTIES",
    "BSplineBasis",
    "ForceMatchingAccumulator",
    "FrameResiduals",
    "LinearFMResult",
    "frame_design_matrix",
    "frame_residuals",
    "minimum_image_pairs",
    "serial_blas",
]

#: Default cutoff of the pair force, nm (shortened to half the smallest box edge).
DEFAULT_CUTOFF_NM = 1.4
#: Default knot spacing when no number of knots is given, nm.
DEFAULT_KNOT_SPACING_NM = 0.02
#: Default relative strength λ of the regulariser (see the module docstring).
DEFAULT_REGULARISATION = 1.0e-4
#: Regularisers of :meth:`ForceMatchingAccumulator.solve`.
PENALTIES = ("smoothness", "tikhonov")
#: Bin width of the pair-distance histogram kept by the accumulator, nm.
HISTOGRAM_BIN_NM = 0.002
#: Default number of pair distances a histogram bin needs to count as sampled.
DEFAULT_MIN_PAIR_SAMPLES = 100
#: Default spacing of the output tables, nm.
DEFAULT_TABLE_SPACING_NM = 0.002
#: Default width of the taper of the simulated table to zero at the cutoff, nm.
DEFAULT_SWITCH_WIDTH_NM = 0.1
#: Defaults of the time-block split into training and validation frames.
DEFAULT_VALIDATION_FRACTION = 0.2
DEFAULT_N_BLOCKS = 5


# ====================================================================== basis
@dataclass(frozen=True)
class BSplineBasis:
    """Cubic B-splines on ``n_knots`` uniform knots from ``r_min_nm`` to ``r_max_nm`` (nm).

    The knot vector is extended by three knots on each side, so the basis has
    ``n_knots + 2`` functions and spans every cubic spline with these breakpoints on
    [r_min, r_max]. At a distance r in interval i (between knots i and i+1, local
    coordinate u ∈ [0, 1)) the four non-zero functions are B_i … B_{i+3} with the uniform
    cubic B-spline values (1−u)³/6, (3u³ − 6u² + 4)/6, (−3u³ + 3u² + 3u + 1)/6, u³/6.
    Distances below r_min are evaluated at r_min (callers count them); r_max itself belongs
    to the last interval.
    """

    r_min_nm: float
    r_max_nm: float
    n_knots: int

    def __post_init__(self) -> None:
        lo, hi = float(self.r_min_nm), float(self.r_max_nm)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
            raise InputError(
                f"the force range needs 0 <= r_min < r_cut, got r_min = {self.r_min_nm} nm and "
                f"r_cut = {self.r_max_nm} nm"
            )
        n = self.n_knots
        if isinstance(n, bool) or int(n) != n or int(n) < 2:
            raise InputError(f"the number of knots must be an integer >= 2, got {n!r}")
        object.__setattr__(self, "r_min_nm", lo)
        object.__setattr__(self, "r_max_nm", hi)
        object.__setattr__(self, "n_knots", int(n))

    @property
    def n_intervals(self) -> int:
        """Number of knot intervals."""
        return self.n_knots - 1

    @property
    def n_basis(self) -> int:
        """Number of basis functions (coefficients)."""
        return self.n_knots + 2

    @property
    def spacing_nm(self) -> float:
        """Knot spacing h in nm."""
        return (self.r_max_nm - self.r_min_nm) / self.n_intervals

    @property
    def knots_nm(self) -> NDArray[np.float64]:
        """Breakpoints r_min … r_max, ``(n_knots,)`` nm."""
        return np.linspace(self.r_min_nm, self.r_max_nm, self.n_knots)

    @property
    def knot_vector_nm(self) -> NDArray[np.float64]:
        """Extended knot vector ``(n_basis + 4,)`` nm, as used by ``scipy.interpolate.BSpline``.

        The breakpoints are :attr:`knots_nm`, so r_min and r_max are exact: the spline, which
        is NaN outside them, is defined at the cutoff itself whatever the rounding of h."""
        t = self.r_min_nm + self.spacing_nm * np.arange(-3, self.n_knots + 3, dtype=np.float64)
        t[3 : 3 + self.n_knots] = self.knots_nm
        return t

    def values(self, r_nm: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """``(first, B)``: index of the first non-zero function ``(P,)`` and the four values
        ``(P, 4)`` of B_first … B_first+3 at each distance."""
        r = np.asarray(r_nm, dtype=np.float64).ravel()
        x = (r - self.r_min_nm) / self.spacing_nm
        first = np.clip(np.floor(x).astype(np.int64), 0, self.n_intervals - 1)
        u = np.clip(x - first, 0.0, 1.0)
        u2 = u * u
        u3 = u2 * u
        one = 1.0 - u
        b = np.empty((r.size, 4))
        b[:, 0] = one * one * one / 6.0
        b[:, 1] = (3.0 * u3 - 6.0 * u2 + 4.0) / 6.0
        b[:, 2] = (-3.0 * u3 + 3.0 * u2 + 3.0 * u + 1.0) / 6.0
        b[:, 3] = u3 / 6.0
        return first, b

    def design_matrix(self, r_nm: ArrayLike) -> NDArray[np.float64]:
        """Dense ``(P, n_basis)`` matrix of all basis functions at the distances."""
        first, b = self.values(r_nm)
        out = np.zeros((first.size, self.n_basis))
        rows = np.arange(first.size)[:, None]
        out[rows, first[:, None] + np.arange(4)] = b
        return out

    def spline(self, coefficients: ArrayLike) -> BSpline:
        """The spline Σ c_k B_k as ``scipy.interpolate.BSpline`` (NaN outside [r_min, r_max])."""
        c = np.asarray(coefficients, dtype=np.float64)
        if c.shape != (self.n_basis,):
            raise InputError(f"expected {self.n_basis} coefficients, got shape {c.shape}")
        return BSpline(self.knot_vector_nm, c, 3, extrapolate=False)

    def to_dict(self) -> dict[str, Any]:
        return {"r_min_nm": self.r_min_nm, "r_max_nm": self.r_max_nm, "n_knots": self.n_knots}


# ====================================================================== per frame
def _check_frame(frame: ForceFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.asarray(frame[0], dtype=np.float64)
    box = np.asarray(frame[1], dtype=np.float64)
    forces = np.asarray(frame[2], dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 2:
        raise InputError(f"a frame needs positions of shape (n_beads >= 2, 3), got {pos.shape}")
    if forces.shape != pos.shape:
        raise InputError(
            f"frame forces must have the shape of the positions {pos.shape}, got {forces.shape}"
        )
    return pos, box, forces


def frame_design_matrix(
    basis: BSplineBasis, frame: ForceFrame
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The linear system of one frame: ``(G, F, r)``.

    Rows are ordered by component, then bead: row α·N + I of ``G`` ``(3N, n_basis)`` holds
    Σ_J B_k(r_IJ) r̂_IJ,α over the pairs closer than the basis' r_max, and ``F`` ``(3N,)``
    holds the mapped force component F_I,α in kJ/mol/nm (the same order); ``r`` are the
    pair distances in nm.
    """
    pos, box, forces = _check_frame(frame)
    n, nb = pos.shape[0], basis.n_basis
    i, j, d, r = minimum_image_pairs(pos, box, basis.r_max_nm)
    if r.size and float(r.min()) <= 0.0:
        raise InputError("two beads sit on top of each other (distance 0); the frame is damaged")
    first, b = basis.values(r)
    unit = d / r[:, None]
    cols = first[:, None] + np.arange(4)
    rows_i = (i[:, None] * nb + cols).ravel()
    rows_j = (j[:, None] * nb + cols).ravel()
    g = np.empty((3, n * nb))
    for a in range(3):
        # bead I gets +f(r) r̂_IJ, bead J the opposite (Newton's third law)
        w = (b * unit[:, a : a + 1]).ravel()
        g[a] = np.bincount(rows_i, weights=w, minlength=n * nb)
        g[a] -= np.bincount(rows_j, weights=w, minlength=n * nb)
    return g.reshape(3 * n, nb), np.ascontiguousarray(forces.T).reshape(-1), r


_BLAS_CONTROLLER: list[Any] = []


@contextlib.contextmanager
def serial_blas() -> Iterator[None]:
    """Limit BLAS to one thread while the products of one frame are formed.

    The products GᵀG of one frame are small (3N × n_basis with n_basis ≈ 60): BLAS threads
    gain nothing on them and, on a machine whose cores are busy, cost ten times the serial
    time. Parallelism belongs to separate accumulators (:meth:`ForceMatchingAccumulator.merge`).
    Uses ``threadpoolctl`` when it is installed (its library scan is done once and cached);
    otherwise changes nothing.
    """
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # optional: without it BLAS keeps its own thread count
            _BLAS_CONTROLLER.append(None)
        else:
            _BLAS_CONTROLLER.append(ThreadpoolController())
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


# ====================================================================== accumulator
class ForceMatchingAccumulator:
    """Streaming normal equations of MS-CG for one :class:`BSplineBasis`.

    Holds, in float64: GᵀG ``(n_basis, n_basis)``, GᵀF ``(n_basis,)``, FᵀF, Σ_frames
    |Σ_I F_I|²/N (for the variance about each frame's mean force), the number of frames and force vectors, the number of
    pairs inside the cutoff and below r_min, and a histogram of pair distances (bins of
    :data:`HISTOGRAM_BIN_NM` from r_min). Every quantity is a sum over frames, so
    accumulators over disjoint frame sets :meth:`merge` into the accumulator of their union.
    """

    def __init__(self, basis: BSplineBasis) -> None:
        if not isinstance(basis, BSplineBasis):
            raise InputError(f"expected a BSplineBasis, got {type(basis).__name__}")
        self.basis = basis
        nb = basis.n_basis
        self.gtg = np.zeros((nb, nb))
        self.gtf = np.zeros(nb)
        self.ftf = 0.0
        self.centre_sum = 0.0
        self.n_frames = 0
        self.n_vectors = 0
        self.n_pairs = 0
        self.n_pairs_below_r_min = 0
        n_bins = math.ceil((basis.r_max_nm - basis.r_min_nm) / HISTOGRAM_BIN_NM - 1e-9)
        self.pair_histogram = np.zeros(max(n_bins, 1), dtype=np.int64)

    @property
    def histogram_edges_nm(self) -> NDArray[np.float64]:
        """Edges of the pair-distance histogram bins, nm (the last one may pass r_max)."""
        n = self.pair_histogram.size
        return self.basis.r_min_nm + HISTOGRAM_BIN_NM * np.arange(n + 1)

    def update(
        self, frame: ForceFrame | tuple[ArrayLike, ArrayLike, ArrayLike]
    ) -> ForceMatchingAccumulator:
        """Add one frame ``(positions_nm (N, 3), box_nm (3,), forces_kj_mol_nm (N, 3))``."""
        g, f, r = frame_design_matrix(self.basis, ForceFrame(*frame))
        with serial_blas():
            self.gtg += g.T @ g
            self.gtf += g.T @ f
        self.ftf += float(f @ f)
        total = f.reshape(3, -1).sum(axis=1)
        self.centre_sum += float(total @ total) / (f.size // 3)
        self.n_frames += 1
        self.n_vectors += f.size // 3
        self.n_pairs += int(r.size)
        below = r < self.basis.r_min_nm
        self.n_pairs_below_r_min += int(np.count_nonzero(below))
        idx = np.floor((r[~below] - self.basis.r_min_nm) / HISTOGRAM_BIN_NM).astype(np.int64)
        idx = np.minimum(idx, self.pair_histogram.size - 1)
        self.pair_histogram += np.bincount(idx, minlength=self.pair_histogram.size)
        return self

    def update_dataset(
        self,
        dataset: ForceDataset,
        frames: Sequence[int] | NDArray[np.int64] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> ForceMatchingAccumulator:
        """Add frames of a dataset (all by default); ``progress(stage, done, total, 0)``."""
        indices = np.arange(dataset.n_frames) if frames is None else np.asarray(frames, int)
        for done, k in enumerate(indices, start=1):
            self.update(dataset.frame(int(k)))
            if progress is not None:
                progress("force matching", done, int(indices.size), 0.0)
        return self

    def merge(self, other: ForceMatchingAccumulator) -> ForceMatchingAccumulator:
        """Add the sums of ``other`` (same basis) into this accumulator; returns self."""
        if not isinstance(other, ForceMatchingAccumulator):
            raise InputError(f"cannot merge a {type(other).__name__} into a force-matching sum")
        if other.basis != self.basis:
            raise InputError(
                f"cannot merge force-matching sums of different bases ({other.basis} and "
                f"{self.basis}); use the same cutoff, r_min and knots"
            )
        self.gtg += other.gtg
        self.gtf += other.gtf
        self.ftf += other.ftf
        self.centre_sum += other.centre_sum
        self.n_frames += other.n_frames
        self.n_vectors += other.n_vectors
        self.n_pairs += other.n_pairs
        self.n_pairs_below_r_min += other.n_pairs_below_r_min
        self.pair_histogram += other.pair_histogram
        return self

    def copy(self) -> ForceMatchingAccumulator:
        """An independent copy."""
        new = ForceMatchingAccumulator(self.basis)
        return new.merge(self)

    def variance_sum(self) -> float:
        """Σ|F − F̄|² over all force vectors, F̄ the mean force of each frame, (kJ/mol/nm)²."""
        return float(self.ftf - self.centre_sum)

    def residual_sum(self, coefficients: ArrayLike) -> float:
        """Σ|F − Gc|² over all accumulated frames for coefficients c, (kJ/mol/nm)²."""
        c = np.asarray(coefficients, dtype=np.float64)
        return float(max(self.ftf - 2.0 * c @ self.gtf + c @ self.gtg @ c, 0.0))

    def sampled_from_nm(self, min_pair_samples: int = DEFAULT_MIN_PAIR_SAMPLES) -> float | None:
        """Lower edge of the first histogram bin holding ``min_pair_samples`` pairs, nm (None
        when no bin holds that many)."""
        full = np.flatnonzero(self.pair_histogram >= int(min_pair_samples))
        return None if full.size == 0 else float(self.histogram_edges_nm[int(full[0])])

    def solve(
        self,
        regularisation: float = DEFAULT_REGULARISATION,
        *,
        penalty: str = "smoothness",
        min_pair_samples: int = DEFAULT_MIN_PAIR_SAMPLES,
    ) -> LinearFMResult:
        """Solve the regularised normal equations (GᵀG + λ s P) c = GᵀF.

        ``penalty``: ``"smoothness"`` (P = D₂ᵀD₂, second differences) or ``"tikhonov"``
        (P = I); s = tr(GᵀG)/n_basis; see the module docstring for why smoothness is the
        default. ``min_pair_samples`` sets where the sampled range starts
        (:meth:`sampled_from_nm`).
        """
        lam = float(regularisation)
        if not (math.isfinite(lam) and lam >= 0.0):
            raise InputError(f"regularisation must be a number >= 0, got {regularisation!r}")
        if penalty not in PENALTIES:
            raise InputError(f"unknown penalty {penalty!r}; choose one of {', '.join(PENALTIES)}")
        if self.n_frames == 0:
            raise InputError("no frames accumulated; add frames before solving")
        nb = self.basis.n_basis
        scale = float(np.trace(self.gtg)) / nb
        if scale <= 0.0:
            raise InputError(
                f"no bead pair lies closer than the cutoff {self.basis.r_max_nm:g} nm; "
                "use a longer cutoff"
            )
        empty = np.flatnonzero(np.diag(self.gtg) <= 1e-12 * scale)
        if lam == 0.0 and empty.size:
            knots = self.basis.knot_vector_nm
            lo, hi = knots[int(empty[0])], knots[int(empty[-1]) + 4]
            raise InputError(
                f"no pair samples between {max(lo, self.basis.r_min_nm):.3g} and "
                f"{min(hi, self.basis.r_max_nm):.3g} nm, so the fit is undetermined there; "
                "give a regularisation > 0, fewer knots or a larger r_min"
            )
        if penalty == "smoothness":
            d2 = np.diff(np.eye(nb), n=2, axis=0)
            pen = d2.T @ d2
        else:
            pen = np.eye(nb)
        matrix = self.gtg + lam * scale * pen
        try:
            factor = scipy.linalg.cho_factor(matrix, lower=False, check_finite=True)
            coeffs = scipy.linalg.cho_solve(factor, self.gtf)
        except (np.linalg.LinAlgError, ValueError) as exc:
            raise InputError(
                f"the force-matching equations are singular ({exc}); raise the regularisation "
                "or use fewer knots"
            ) from exc
        if not np.all(np.isfinite(coeffs)):
            raise InputError(
                "the force-matching solution is not finite; raise the regularisation or use "
                "fewer knots"
            )
        residual = self.residual_sum(coeffs)
        variance = self.variance_sum()
        n_comp = 3 * self.n_vectors
        return LinearFMResult(
            basis=self.basis,
            coefficients=coeffs,
            regularisation=lam,
            penalty=penalty,
            n_frames=self.n_frames,
            n_pairs=self.n_pairs,
            n_pairs_below_r_min=self.n_pairs_below_r_min,
            rms_residual_kj_mol_nm=math.sqrt(residual / n_comp),
            force_rms_kj_mol_nm=math.sqrt(max(variance, 0.0) / n_comp),
            explained_variance=1.0 - residual / variance if variance > 0 else float("nan"),
            sampled_from_nm=self.sampled_from_nm(min_pair_samples),
            min_pair_samples=int(min_pair_samples),
            pair_histogram=self.pair_histogram.copy(),
        )


# ====================================================================== result
@dataclass(frozen=True)
class FrameResiduals:
    """Per-frame fit quality of a force model on a dataset.

    ``times_ps`` ``(F,)``; ``residual_sum`` Σ_I |F_I − F_I^model|² and ``variance_sum``
    Σ_I |F_I − F̄|² per frame, (kJ/mol/nm)², F̄ the frame's mean force; ``n_vectors`` force
    vectors per frame.
    """

    times_ps: NDArray[np.float64]
    residual_sum: NDArray[np.float64]
    variance_sum: NDArray[np.float64]
    n_vectors: int

    @property
    def rms_residual_kj_mol_nm(self) -> NDArray[np.float64]:
        """Per-frame RMS residual per force component, kJ/mol/nm."""
        return np.sqrt(self.residual_sum / (3 * self.n_vectors))

    @property
    def explained_variance(self) -> NDArray[np.float64]:
        """Per-frame fraction of the mapped-force variance explained."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 - self.residual_sum / self.variance_sum

    def total(self, frames: ArrayLike | None = None) -> tuple[float, float]:
        """``(rms residual kJ/mol/nm, explained fraction)`` pooled over ``frames`` (all)."""
        idx = slice(None) if frames is None else np.asarray(frames, dtype=np.int64)
        res = np.asarray(self.residual_sum[idx])
        var = np.asarray(self.variance_sum[idx])
        if res.size == 0:
            return float("nan"), float("nan")
        rms = math.sqrt(float(res.sum()) / (3 * self.n_vectors * res.size))
        explained = 1.0 - float(res.sum()) / float(var.sum()) if var.sum() > 0 else float("nan")
        return rms, explained


@dataclass(frozen=True, eq=False)
class LinearFMResult:
    """A fitted MS-CG pair force and its training statistics.

    ``coefficients`` of :attr:`basis` (f in kJ/mol/nm); ``regularisation`` λ and ``penalty``;
    ``n_frames``, ``n_pairs`` (pairs inside the cutoff, all frames), ``n_pairs_below_r_min``;
    ``rms_residual_kj_mol_nm`` (RMS per component of F − Gc), ``force_rms_kj_mol_nm`` (RMS per
    component of F − F̄), ``explained_variance``; ``sampled_from_nm``: the start of the
    distance range with at least ``min_pair_samples`` pairs per 0.002 nm bin (None if no bin
    has that many);
    ``pair_histogram`` (bins of :data:`HISTOGRAM_BIN_NM` from r_min).
    """

    basis: BSplineBasis
    coefficients: NDArray[np.float64]
    regularisation: float
    penalty: str
    n_frames: int
    n_pairs: int
    n_pairs_below_r_min: int
    rms_residual_kj_mol_nm: float
    force_rms_kj_mol_nm: float
    explained_variance: float
    sampled_from_nm: float | None
    min_pair_samples: int
    pair_histogram: NDArray[np.int64]
    _spline: BSpline = field(init=False, repr=False)
    _integral: BSpline = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = np.array(self.coefficients, dtype=np.float64)
        c.setflags(write=False)
        object.__setattr__(self, "coefficients", c)
        spline = self.basis.spline(c)
        object.__setattr__(self, "_spline", spline)
        object.__setattr__(self, "_integral", spline.antiderivative())

    @property
    def cutoff_nm(self) -> float:
        """Cutoff of the pair force, nm."""
        return self.basis.r_max_nm

    @property
    def r_min_nm(self) -> float:
        """Start of the fitted range, nm."""
        return self.basis.r_min_nm

    def _distances(self, r_nm: ArrayLike) -> NDArray[np.float64]:
        r = np.atleast_1d(np.asarray(r_nm, dtype=np.float64))
        if r.size and not np.all(np.isfinite(r)):
            raise InputError("distances must be finite numbers")
        if r.size and float(r.min()) < self.r_min_nm - 1e-12:
            raise InputError(
                f"r = {float(r.min()):.4g} nm is below the fitted range (from {self.r_min_nm:.4g} "
                "nm); use simulation_potential() for a table with a repulsive wall"
            )
        return r

    def force(self, r_nm: ArrayLike) -> NDArray[np.float64] | float:
        """Pair force f(r) in kJ/mol/nm (positive = repulsive); zero beyond the cutoff."""
        r = self._distances(r_nm)
        inside = r <= self.cutoff_nm
        out = np.where(inside, self._spline(np.minimum(r, self.cutoff_nm)), 0.0)
        return float(out[0]) if np.ndim(r_nm) == 0 else out.reshape(np.shape(r_nm))

    def energy(self, r_nm: ArrayLike) -> NDArray[np.float64] | float:
        """U(r) = ∫_r^{r_cut} f dr' in kJ/mol (U(r_cut) = 0); zero beyond the cutoff."""
        r = self._distances(r_nm)
        rc = self.cutoff_nm
        inside = r <= rc
        top = float(self._integral(rc))
        out = np.where(inside, top - self._integral(np.minimum(r, rc)), 0.0)
        return float(out[0]) if np.ndim(r_nm) == 0 else out.reshape(np.shape(r_nm))

    def grid(
        self, spacing_nm: float = DEFAULT_TABLE_SPACING_NM, start_nm: float | None = None
    ) -> NDArray[np.float64]:
        """Uniform grid from ``start_nm`` (default r_min) to the cutoff, spacing ≤ ``spacing_nm``."""
        dr = float(spacing_nm)
        if not (math.isfinite(dr) and dr > 0):
            raise InputError(f"table spacing must be positive (nm), got {spacing_nm!r}")
        lo = self.r_min_nm if start_nm is None else float(start_nm)
        if not self.r_min_nm <= lo < self.cutoff_nm:
            raise InputError(
                f"table start {lo:.4g} nm lies outside the fitted range "
                f"({self.r_min_nm:.4g} to {self.cutoff_nm:.4g} nm)"
            )
        n = max(math.ceil((self.cutoff_nm - lo) / dr - 1e-9), 3)
        return np.linspace(lo, self.cutoff_nm, n + 1)

    def potential(
        self, spacing_nm: float = DEFAULT_TABLE_SPACING_NM, start_nm: float | None = None
    ) -> TabulatedPotential:
        """The fitted U and f on a uniform grid from ``start_nm`` (default r_min) to the cutoff
        (no wall, no taper; U(cutoff) = 0)."""
        r = self.grid(spacing_nm, start_nm)
        return TabulatedPotential(
            r, self.energy(r), force_kj_mol_nm=self.force(r), cutoff_nm=self.cutoff_nm
        )

    def simulation_potential(
        self,
        spacing_nm: float = DEFAULT_TABLE_SPACING_NM,
        switch_width_nm: float = DEFAULT_SWITCH_WIDTH_NM,
    ) -> TabulatedPotential:
        """The table to simulate: the fit from the sampled range to the cutoff, tapered to
        U = F = 0 at the cutoff over ``switch_width_nm`` (0: no taper; the fit already has
        U(cutoff) = 0) and continued to r = 0 by a repulsive wall
        (:meth:`TabulatedPotential.extend_repulsive`) joined at the first grid point from the
        start of the sampled range (:attr:`sampled_from_nm`) on where the force is repulsive.
        """
        if self.sampled_from_nm is None:
            raise InputError(
                f"no {HISTOGRAM_BIN_NM} nm distance bin holds {self.min_pair_samples} pair "
                "samples, so the sampled range is unknown; give more frames or lower "
                "min_pair_samples"
            )
        start = max(self.sampled_from_nm, self.r_min_nm)
        table = self.potential(spacing_nm, start_nm=start)
        width = float(switch_width_nm)
        if not (math.isfinite(width) and width >= 0.0):
            raise InputError(f"switch width must be >= 0 nm, got {switch_width_nm!r}")
        if width > 0.0:
            table = table.smooth_cutoff(min(width, 0.5 * (table.cutoff_nm - table.r_min_nm)))
        repulsive = np.flatnonzero(table.f_kj_mol_nm[:-1] > 0.0)
        if repulsive.size == 0:
            raise SimulationError(
                "the fitted pair force is nowhere repulsive in the sampled range, so no "
                "repulsive core can be joined to it; check the mapped forces or use more frames"
            )
        match = float(table.r_nm[int(repulsive[0])])
        return table.extend_repulsive(0.0, match_at_nm=match)

    def force_table(
        self, spacing_nm: float = DEFAULT_TABLE_SPACING_NM
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(r_nm, F_kJ_mol_nm)``: the fitted force on a uniform grid from r_min to the cutoff."""
        r = self.grid(spacing_nm)
        return r, np.asarray(self.force(r))

    def statistics(self) -> dict[str, Any]:
        """Training statistics as plain data."""
        return {
            "n_frames": self.n_frames,
            "n_pairs": self.n_pairs,
            "n_pairs_below_r_min": self.n_pairs_below_r_min,
            "rms_residual_kj_mol_nm": self.rms_residual_kj_mol_nm,
            "force_rms_kj_mol_nm": self.force_rms_kj_mol_nm,
            "explained_variance": self.explained_variance,
            "sampled_from_nm": self.sampled_from_nm,
            "min_pair_samples": self.min_pair_samples,
        }

    def to_dict(self) -> dict[str, Any]:
        """The fit (basis, coefficients, regulariser) and its statistics as plain data."""
        return {
            "basis": self.basis.to_dict(),
            "basis_kind": "cubic B-splines, uniform knots, knot vector extended by 3 each side",
            "coefficients_kj_mol_nm": self.coefficients.tolist(),
            "regularisation": self.regularisation,
            "penalty": self.penalty,
            **self.statistics(),
        }


def frame_residuals(result: LinearFMResult, dataset: ForceDataset) -> FrameResiduals:
    """Per-frame residual and variance of the fitted force on every frame of ``dataset``."""
    res = np.empty(dataset.n_frames)
    var = np.empty(dataset.n_frames)
    for k in range(dataset.n_frames):
        g, f, _ = frame_design_matrix(result.basis, dataset.frame(k))
        with serial_blas():
            diff = f - g @ result.coefficients
        res[k] = float(diff @ diff)
        vec = dataset.forces_kj_mol_nm[k]
        var[k] = float(np.sum((vec - vec.mean(axis=0)) ** 2))
    return FrameResiduals(
        times_ps=np.asarray(dataset.times_ps).copy(),
        residual_sum=res,
        variance_sum=var,
        n_vectors=dataset.n_beads,
    )


# ====================================================================== workflow
