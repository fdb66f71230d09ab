"""Mean-squared displacement and self-diffusion coefficient of the beads.

:class:`MSD` averages ``|r_i(t0 + t) − r_i(t0)|²`` over all time origins ``t0`` and all beads
with the FFT algorithm (Kneller et al., Comput. Phys. Commun. 91, 191 (1995); Calandrini et
al., École thématique SFN 12, 201 (2011)), O(F log F) per bead, for evenly spaced frames of
unwrapped positions. :func:`fit_diffusion` turns the MSD into a diffusion coefficient by a
linear fit in the diffusive regime; :func:`yeh_hummer_correction` removes the finite-size
effect of periodic boundaries.

Units: times in ps, MSD in nm², D in nm²/ps (``×1e-6`` → m²/s via
:data:`cgforge.units.NM2_PS_TO_M2_S`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sp_fft

from cgforge import units
from cgforge.errors import InputError
from cgforge.fileio import write_columns_csv
from cgforge.observables.rdf import _read_csv
from cgforge.trajectory import CGTrajectory

__all__ = [
    "MSD",
    "YEH_HUMMER_XI",
    "DiffusionResult",
    "MSDResult",
    "fit_diffusion",
    "msd_direct",
    "msd_fft",
    "yeh_hummer_correction",
]

#: Madelung-like constant ξ of the Yeh–Hummer correction for a cubic lattice (dimensionless).
YEH_HUMMER_XI = 2.837297


def msd_fft(positions: np.ndarray) -> np.ndarray:
    """Per-particle MSD averaged over all time origins, by FFT.

    ``positions`` ``(F, N, D)`` unwrapped, evenly spaced in time. Returns ``(F, N)`` with
    ``out[m, i] = 1/(F−m) Σ_k |x_i(k+m) − x_i(k)|²`` (``out[0] = 0``).
    """
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim != 3:
        raise InputError(f"positions must have shape (n_frames, n, dim), got {x.shape}")
    n_frames = x.shape[0]
    n_origins = (n_frames - np.arange(n_frames)).astype(np.float64)[:, None]
    # S2: position autocorrelation summed over dimensions
    n_fft = sp_fft.next_fast_len(2 * n_frames, real=True)
    spec = sp_fft.rfft(x, n=n_fft, axis=0)
    acf = sp_fft.irfft(spec * spec.conj(), n=n_fft, axis=0)[:n_frames].sum(axis=-1)
    s2 = acf / n_origins
    # S1 = 1/(F−m) Σ_{k=0}^{F−m−1} (|x(k)|² + |x(k+m)|²), from prefix sums of |x|²
    sq = np.einsum("fnd,fnd->fn", x, x)
    prefix = np.concatenate([np.zeros((1, sq.shape[1])), np.cumsum(sq, axis=0)])
    total = prefix[-1]
    m = np.arange(n_frames)
    s1 = (total[None, :] - prefix[m] + prefix[n_frames - m]) / n_origins
    out = s1 - 2.0 * s2
    out[0] = 0.0
    return np.clip(out, 0.0, None)


def msd_direct(positions: np.ndarray) -> np.ndarray:
    """Same as :func:`msd_fft` by the direct O(F²) double loop over origins (for checks)."""
    x = np.asarray(positions, dtype=np.float64)
    n_frames = x.shape[0]
    out = np.zeros(x.shape[:2])
    for m in range(1, n_frames):
        d = x[m:] - x[:-m]
        out[m] = np.einsum("fnd,fnd->n", d, d) / (n_frames - m)
    return out


@dataclass(frozen=True, eq=False)
class MSDResult:
    """Mean-squared displacement of the beads versus lag time.

    ``t_ps`` lag times (ps, starting at 0), ``msd_nm2`` the MSD (nm²) averaged over beads and
    origins, ``n_origins`` time origins per lag, ``msd_blocks_nm2`` ``(n_blocks, F)`` the MSD
    of disjoint groups of beads (used for the error of D; ``None`` when unavailable),
    ``n_beads``.
    """

    t_ps: np.ndarray
    msd_nm2: np.ndarray
    n_origins: np.ndarray
    msd_blocks_nm2: np.ndarray | None = None
    n_beads: int = 0

    def to_csv(self, path: str | Path) -> Path:
        """Write ``t_ps,msd_nm2`` (one row per lag time) and return the path."""
        return write_columns_csv(path, ("t_ps", "msd_nm2"), (self.t_ps, self.msd_nm2))

    @classmethod
    def from_csv(cls, path: str | Path) -> MSDResult:
        """Read a file written by :meth:`to_csv` (bead blocks are not stored)."""
        cols = _read_csv(path, required=("t_ps", "msd_nm2"))
        t = cols["t_ps"]
        return cls(t, cols["msd_nm2"], (t.size - np.arange(t.size)).astype(np.int64))


class MSD:
    """Mean-squared displacement of the beads of a :class:`CGTrajectory`.

    ``n_bead_blocks``: beads are dealt round-robin into this many groups whose separate MSDs
    give the error of D in :func:`fit_diffusion`. ``remove_drift``: subtract the motion of
    the system's centre of mass first. ``max_memory_mb``: beads are processed in chunks so
    the FFT work arrays stay below this size.
    """

    def __init__(
        self, *, n_bead_blocks: int = 8, remove_drift: bool = False, max_memory_mb: float = 256.0
    ) -> None:
        if n_bead_blocks < 1:
            raise InputError(f"n_bead_blocks must be at least 1, got {n_bead_blocks}")
        self.n_bead_blocks = int(n_bead_blocks)
        self.remove_drift = bool(remove_drift)
        self.max_memory_mb = float(max_memory_mb)

    def compute(self, traj: CGTrajectory) -> MSDResult:
        """MSD of ``traj``; its frames must be evenly spaced in time."""
        if not isinstance(traj, CGTrajectory):
            raise InputError(f"MSD.compute expects a CGTrajectory, got {type(traj).__name__}")
        times = np.asarray(traj.times_ps)
        n_frames = traj.n_frames
        if n_frames < 2:
            raise InputError("an MSD needs at least two frames")
        steps = np.diff(times)
        dt = float(np.mean(steps))
        if not np.allclose(steps, dt, rtol=1e-4, atol=1e-9):
            raise InputError(
                "frames are not evenly spaced in time "
                f"(steps {steps.min():g}..{steps.max():g} ps);"
                " the MSD needs a constant output interval"
            )
        pos = np.asarray(traj.positions_nm)
        if self.remove_drift:
            m = np.asarray(traj.masses_amu)
            com = np.einsum("fnd,n->fd", pos, m) / m.sum()
            pos = pos - com[:, None, :]
        n_beads = traj.n_beads
        n_blocks = min(self.n_bead_blocks, n_beads)
        block_of_bead = np.arange(n_beads) % n_blocks
        block_sum = np.zeros((n_blocks, n_frames))
        bytes_per_bead = 3 * 16 * 2 * n_frames * 3  # complex spectrum + real work arrays
        chunk = max(1, int(self.max_memory_mb * 1e6 // bytes_per_bead))
        for lo in range(0, n_beads, chunk):
            per_bead = msd_fft(pos[:, lo : lo + chunk, :])
            owner = block_of_bead[lo : lo + chunk]
            for k in range(n_blocks):
                block_sum[k] += per_bead[:, owner == k].sum(axis=1)
        block_counts = np.bincount(block_of_bead, minlength=n_blocks)
        total = block_sum.sum(axis=0) / n_beads
        blocks = block_sum / block_counts[:, None] if n_blocks > 1 else None
        return MSDResult(
            t_ps=np.arange(n_frames) * dt,
            msd_nm2=total,
            n_origins=(n_frames - np.arange(n_frames)).astype(np.int64),
            msd_blocks_nm2=blocks,
            n_beads=n_beads,
        )


@dataclass(frozen=True)
class DiffusionResult:
    """Self-diffusion coefficient from a linear fit MSD = 2·dim·D·t + c.

    ``diffusion_nm2_ps`` and its standard error ``diffusion_err_nm2_ps`` (nm²/ps), the fit
    window ``fit_start_ps``..``fit_end_ps``, ``method`` (how window and error were found),
    ``slope_loglog`` (slope of log MSD vs log t over the window; 1 in the diffusive regime),
    ``n_points`` lag times in the fit and ``warning`` (empty when the fit looks sound).
    """

    diffusion_nm2_ps: float
    diffusion_err_nm2_ps: float
    fit_start_ps: float
    fit_end_ps: float
    method: str
    slope_loglog: float
    n_points: int = 0
    warning: str = ""

    @property
    def diffusion_m2_s(self) -> float:
        """D in m²/s."""
        return self.diffusion_nm2_ps * units.NM2_PS_TO_M2_S

    @property
    def diffusion_err_m2_s(self) -> float:
        """Standard error of D in m²/s."""
        return self.diffusion_err_nm2_ps * units.NM2_PS_TO_M2_S

    @property
    def ok(self) -> bool:
        """True when no warning was raised."""
        return not self.warning


def _log_grid(i_end: int) -> np.ndarray:
    """Lag indices on a logarithmic grid (~10 per decade) in ``[1, i_end]``."""
    num = max(3, int(10 * np.log10(max(i_end, 1))) + 2)
    grid = np.unique(np.round(np.geomspace(1, max(i_end, 1), num=num))).astype(np.int64)
    grid = grid[(grid >= 1) & (grid <= i_end)]
    return grid if grid.size >= 3 else np.arange(1, i_end + 1)


def _loglog_slope(t: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Local slope d ln y / d ln t on the grid (NaN where undefined)."""
    if grid.size < 2:
        return np.full(grid.size, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.gradient(np.log(y[grid]), np.log(t[grid]))


def _linear_fit(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and its ordinary-least-squares standard error (NaN with fewer than 3 points)."""
    if t.size == 1:
        return float(y[0] / t[0]), float("nan")
    coef, cov = np.polyfit(t, y, 1, cov=True) if t.size > 3 else (np.polyfit(t, y, 1), None)
    slope = float(coef[0])
    if cov is not None:
        return slope, float(np.sqrt(cov[0, 0]))
    if t.size == 3:
        resid = y - np.polyval(coef, t)
        s2 = float(resid @ resid) / (t.size - 2)
        return slope, math.sqrt(s2 / float(np.sum((t - t.mean()) ** 2)))
    return slope, float("nan")


def fit_diffusion(
    msd: MSDResult,
    *,
    t_min_ps: float | None = None,
    t_max_ps: float | None = None,
    dim: int = 3,
    slope_tolerance: float = 0.15,
    tail_fraction: float = 0.5,
) -> DiffusionResult:
    """Diffusion coefficient from the MSD by a linear fit in the diffusive regime.

    Window: ``t_max_ps`` defaults to ``tail_fraction`` (50 %) of the longest lag, where fewer
    than half the origins remain and the MSD gets noisy. ``t_min_ps`` defaults to the earliest
    lag from which the local log-log slope d ln MSD / d ln t (on a log grid, ~10 points per
    decade) stays within ``slope_tolerance`` of 1 up to ``t_max_ps``, the tolerance widened by
    twice the standard error of the slope over the bead blocks so that noise at long lags does
    not count (this skips the ballistic regime, slope 2, and a caging plateau, slope < 1).
    When no such regime exists (trajectory too short), the second half of the window in time
    is fitted and ``warning`` says so; the answer is then a rough estimate.

    The fit is ordinary least squares of MSD = 2·dim·D·t + c over all lags in the window.
    Error: the standard error of D over the bead blocks of the MSD (D fitted separately for
    each group of beads over the same window; the groups are statistically independent for
    diffusing particles, while successive MSD lags are strongly correlated, which makes the
    regression error of one fit far too small). Without bead blocks the regression standard
    error is reported and ``method`` says so.

    That error is the noise of one run over one window; it does not cover the window itself.
    The MSD of a dense liquid keeps bending upward for many picoseconds (the slow tail of the
    velocity autocorrelation: for the LJ liquid of the tests, D fitted over 0.5–1 ps is ~25 %
    below D over 8–12 ps), and the automatic start moves with the noise of the log-log slope,
    so two runs can be fitted over different stretches of the curve. To compare D between
    runs (a ratio, a mass or time-scale factor), give every run the same ``t_min_ps`` and
    ``t_max_ps`` (in units of its own time scale) and judge the difference by the scatter of
    independent runs.
    """
    t = np.asarray(msd.t_ps, dtype=np.float64)
    y = np.asarray(msd.msd_nm2, dtype=np.float64)
    if t.size < 2:
        raise InputError("fit_diffusion needs an MSD with at least two lag times (two frames)")
    if dim not in (1, 2, 3):
        raise InputError(f"dim must be 1, 2 or 3, got {dim}")
    warnings_: list[str] = []
    lags = np.arange(t.size)

    # ---- window end
    if t_max_ps is not None:
        if t_max_ps <= t[1]:
            raise InputError(f"t_max_ps={t_max_ps:g} ps is not beyond the first lag ({t[1]:g} ps)")
        i_end = int(np.searchsorted(t, t_max_ps, side="right") - 1)
    else:
        i_end = int(np.floor(tail_fraction * (t.size - 1)))
        if i_end < 2:
            i_end = t.size - 1
            warnings_.append("trajectory too short to drop the noisy MSD tail")
    positive = y[1 : i_end + 1] > 0
    if not np.all(positive):
        raise InputError(
            "the MSD is zero at a non-zero lag; are the beads moving (unwrapped positions)?"
        )

    # ---- window start
    auto_start = t_min_ps is None
    if not auto_start:
        i_start = int(np.searchsorted(t, t_min_ps, side="left"))
        i_start = max(i_start, 1)
        if i_end - i_start + 1 < 2:
            raise InputError(
                f"fit window {t_min_ps:g}..{t[i_end]:g} ps holds fewer than two lag times; widen it"
            )
    else:
        grid = _log_grid(i_end)
        beta = _loglog_slope(t, y, grid)
        # a deviation from slope 1 counts only when it is larger than the tolerance plus
        # twice its statistical error (spread of the slope over the bead blocks)
        beta_se = np.zeros_like(beta)
        if msd.msd_blocks_nm2 is not None and msd.msd_blocks_nm2.shape[0] >= 2:
            beta_blocks = np.array([_loglog_slope(t, b, grid) for b in msd.msd_blocks_nm2])
            beta_se = np.nan_to_num(
                np.std(beta_blocks, axis=0, ddof=1) / np.sqrt(beta_blocks.shape[0])
            )
        ok = np.abs(beta - 1.0) <= slope_tolerance + 2.0 * beta_se
        # earliest grid point from which the slope stays diffusive to the end of the window
        bad_after = np.flatnonzero(~ok)
        k0 = 0 if bad_after.size == 0 else int(bad_after[-1]) + 1
        if k0 <= grid.size - 2 and grid[k0] < i_end:
            i_start = int(grid[k0])
        else:
            i_start = max(1, i_end // 2)
            warnings_.append(
                "no diffusive regime found (log-log MSD slope never settles near 1); "
                "D is a rough estimate, run longer"
            )
        if i_end - i_start + 1 < 2:
            i_start = max(1, i_end - 1)
    sel = (lags >= i_start) & (lags <= i_end)
    t_fit, y_fit = t[sel], y[sel]
    if t_fit.size < 3:
        warnings_.append(f"only {t_fit.size} lag time(s) in the fit window")

    slope, slope_se = _linear_fit(t_fit, y_fit)
    diff = slope / (2.0 * dim)
    slope_loglog = (
        float(np.polyfit(np.log(t_fit), np.log(y_fit), 1)[0]) if t_fit.size > 1 else float("nan")
    )
    regime_flagged = any("diffusive regime" in w for w in warnings_)
    if (
        np.isfinite(slope_loglog)
        and abs(slope_loglog - 1.0) > slope_tolerance
        and not regime_flagged
    ):
        warnings_.append(f"MSD is not linear in the fit window (log-log slope {slope_loglog:.2f})")

    window = "auto window" if auto_start and t_max_ps is None else "user window"
    blocks = msd.msd_blocks_nm2
    if blocks is not None and blocks.shape[0] >= 2:
        d_blocks = np.array([_linear_fit(t_fit, b[sel])[0] for b in blocks]) / (2.0 * dim)
        err = float(np.std(d_blocks, ddof=1) / np.sqrt(d_blocks.size))
        method = f"OLS fit of MSD, {window}; error: std. error over {d_blocks.size} bead blocks"
    else:
        err = slope_se / (2.0 * dim)
        method = f"OLS fit of MSD, {window}; error: regression standard error (underestimates)"
    if not np.isfinite(err):
        warnings_.append("no error estimate possible")
    return DiffusionResult(
        diffusion_nm2_ps=float(diff),
        diffusion_err_nm2_ps=float(err),
        fit_start_ps=float(t_fit[0]),
        fit_end_ps=float(t_fit[-1]),
        method=method,
        slope_loglog=slope_loglog,
        n_points=int(t_fit.size),
        warning="; ".join(warnings_),
    )


def yeh_hummer_correction(
    D_nm2_ps: float, box_nm: float | np.ndarray, temperature_K: float, viscosity_Pa_s: float
) -> float:
    """Infinite-system diffusion coefficient from one measured in a periodic cubic box.

    D∞ = D_PBC + ξ k_B T / (6 π η L) with ξ = 2.837297 (Yeh & Hummer, J. Phys. Chem. B 108,
    15873 (2004)). ``D_nm2_ps`` in nm²/ps, ``box_nm`` the cubic edge L in nm (a number, the
    three edges, or per-frame edges ``(F, 3)``, averaged), ``temperature_K`` in K,
    ``viscosity_Pa_s`` the shear viscosity η in Pa·s. Returns D∞ in nm²/ps.
    """
    box = np.asarray(box_nm, dtype=np.float64)
    if box.ndim == 2:
        box = box.mean(axis=0)
    if not np.all(np.isfinite(box)) or np.any(box <= 0):
        raise InputError("box_nm must hold positive edge lengths (nm)")
    if box.ndim == 1 and box.max() > 1.01 * box.min():
        raise InputError(f"the Yeh-Hummer correction holds for cubic boxes; edges are {box} nm")
    edge = float(np.mean(box))
    if not (temperature_K > 0 and viscosity_Pa_s > 0):
        raise InputError("temperature_K and viscosity_Pa_s must be positive")
    # η in Pa·s → bar·ps (1 Pa = 1e-5 bar, 1 s = 1e12 ps) → kJ/mol/nm³·ps
    eta_internal = viscosity_Pa_s * 1.0e7 / units.KJ_MOL_NM3_TO_BAR
    return float(
        D_nm2_ps + YEH_HUMMER_XI * units.kT(temperature_K) / (6.0 * np.pi * eta_internal * edge)
    )
