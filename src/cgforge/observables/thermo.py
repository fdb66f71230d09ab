"""Time series of scalar observables (density, energy, pressure) and their statistical errors.

The standard error of the mean of a correlated series is, by default, ``std · sqrt(g/n)`` with
the statistical inefficiency ``g = 1 + 2 Σ (1 − t/n) C(t)`` (integrated autocorrelation, summed
to the first non-positive C(t), as in pymbar). Automated blocking (Flyvbjerg & Petersen,
J. Chem. Phys. 91, 461 (1989), stopping rule of Jonsson, Phys. Rev. E 98, 043304 (2018)) is the
alternative ``method="blocking"``; it is less accurate for strongly correlated, short series.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats

from cgforge.errors import InputError
from cgforge.fileio import write_columns_csv
from cgforge.trajectory import CGTrajectory

__all__ = [
    "TimeSeries",
    "block_standard_error",
    "density_series",
    "drift",
    "mean_with_error",
    "read_stage_columns",
    "statistical_inefficiency",
]


def _as_series(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).ravel()
    if arr.size == 0:
        raise InputError("the time series is empty")
    if not np.all(np.isfinite(arr)):
        raise InputError("the time series holds NaN or infinite values")
    return arr


def block_standard_error(x: np.ndarray) -> float:
    """Standard error of the mean of a correlated series by automated blocking.

    Neighbouring samples are averaged pairwise, level after level (an odd sample out is
    dropped from the start); the first level whose remaining lag-1 correlations are
    insignificant (Jonsson's M-test at 99 %) gives the error. Returns NaN for fewer than
    2 samples and the naive uncorrelated error for fewer than 4. Blocking is biased low when
    the correlation time is not much shorter than the series (about −25 % at τ ≈ n/50);
    :func:`statistical_inefficiency` does better then.
    """
    arr = _as_series(x)
    n = arr.size
    if n < 2:
        return float("nan")
    if n < 4 or np.ptp(arr) == 0:
        return float(arr.std(ddof=1) / np.sqrt(n))
    mu = arr.mean()
    y = arr
    var_level: list[float] = []
    lag1_level: list[float] = []
    size_level: list[int] = []
    while y.size >= 2:
        m = y.size
        dev = y - mu
        lag1_level.append(float(dev[:-1] @ dev[1:]) / m)
        var_level.append(float(dev @ dev) / (m - 1))
        size_level.append(m)
        if m % 2:
            y = y[1:]
        y = 0.5 * (y[0::2] + y[1::2])
    s = np.array(var_level)
    gamma = np.array(lag1_level)
    sizes = np.array(size_level, dtype=np.float64)
    d = s.size
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(s > 0, (gamma / s) ** 2, 0.0) * sizes
    big_m = np.cumsum(terms[::-1])[::-1]
    # M_j is chi-squared with d - j degrees of freedom when levels j.. are uncorrelated
    q = stats.chi2.ppf(0.99, df=np.arange(d, 0, -1))
    below = np.flatnonzero(big_m < q)
    k = int(below[0]) if below.size else d - 1
    return float(np.sqrt(s[k] / sizes[k]))


def statistical_inefficiency(x: np.ndarray) -> float:
    """Statistical inefficiency g = 1 + 2 Σ_t (1 − t/N) C(t) (≥ 1), summed until C(t) ≤ 0.

    ``N/g`` is the number of effectively independent samples.
    """
    arr = _as_series(x)
    n = arr.size
    if n < 3 or np.ptp(arr) == 0:
        return 1.0
    dev = arr - arr.mean()
    n_fft = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(dev, n=n_fft)
    acov = np.fft.irfft(spec * spec.conj(), n=n_fft)[:n] / (n - np.arange(n))
    corr = acov / acov[0]
    nonpositive = np.flatnonzero(corr[1 : n - 1] <= 0)
    t_stop = int(nonpositive[0]) + 1 if nonpositive.size else n - 1
    t = np.arange(1, t_stop)
    g = 1.0 + 2.0 * float(np.sum(corr[t] * (1.0 - t / n)))
    return max(1.0, g)


def mean_with_error(
    x: np.ndarray, method: Literal["inefficiency", "blocking"] = "inefficiency"
) -> tuple[float, float]:
    """Mean of a series and the standard error of that mean (same unit as ``x``).

    ``"inefficiency"`` (default): ``std · sqrt(g / n)`` with the statistical inefficiency g;
    ``"blocking"``: :func:`block_standard_error`. On AR(1) test series with correlation time
    ~20 samples and n = 1000 the first is within 2 % of the true error, blocking 25 % low.
    """
    arr = _as_series(x)
    if method == "blocking":
        return float(arr.mean()), block_standard_error(arr)
    if method == "inefficiency":
        if arr.size < 2:
            return float(arr.mean()), float("nan")
        g = statistical_inefficiency(arr)
        return float(arr.mean()), float(arr.std(ddof=1) * np.sqrt(g / arr.size))
    raise InputError(f"method must be 'blocking' or 'inefficiency', got {method!r}")


def read_stage_columns(path: str | Path, stage: str | None = None) -> dict[str, np.ndarray]:
    """The numeric columns of a ``thermo.csv`` (header ``t_ps,stage,...``), restricted to the
    rows of one ``stage`` (``"equilibration"``, ``"production"``; None: every row). Raises
    OSError or ValueError for a file that cannot be read as such."""
    with Path(path).open() as handle:
        header = handle.readline().strip().split(",")
        rows = [line.strip().split(",") for line in handle if line.strip()]
    where = header.index("stage")
    if stage is not None:
        rows = [r for r in rows if r[where] == stage]
    return {
        name: np.array([float(r[i]) for r in rows], dtype=np.float64)
        for i, name in enumerate(header)
        if i != where
    }


def drift(x: np.ndarray) -> tuple[float, float]:
    """Change of a series' mean from its third to its fourth quarter, and that change's
    standard error (same unit as ``x``; each quarter's error from :func:`mean_with_error`).

    An equilibrated series has a drift within a few errors of zero; a series still relaxing
    (a liquid compacting or evaporating under a barostat) does not.
    """
    arr = _as_series(x)
    if arr.size < 8:
        raise InputError(f"a drift needs at least 8 samples, got {arr.size}")
    n = arr.size
    third, fourth = arr[n // 2 : 3 * n // 4], arr[3 * n // 4 :]
    m3, e3 = mean_with_error(third)
    m4, e4 = mean_with_error(fourth)
    return m4 - m3, float(np.hypot(e3, e4))


@dataclass(frozen=True, eq=False)
class TimeSeries:
    """A scalar observable sampled in time.

    ``times_ps`` (ps), ``values`` and ``column``: the CSV column name, which carries the unit
    (``"density_g_cm3"``, ``"U_kJ_mol"``).
    """

    times_ps: np.ndarray
    values: np.ndarray
    column: str = "value"

    def __post_init__(self) -> None:
        t = np.asarray(self.times_ps, dtype=np.float64)
        v = np.asarray(self.values, dtype=np.float64)
        if t.ndim != 1 or v.shape != t.shape or t.size == 0:
            raise InputError(
                f"times_ps and values must be 1-D of equal length, got {t.shape}, {v.shape}"
            )
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise InputError(f"time series '{self.column}' holds NaN or infinite values")
        object.__setattr__(self, "times_ps", t)
        object.__setattr__(self, "values", v)

    def __len__(self) -> int:
        return int(self.values.size)

    @property
    def mean(self) -> float:
        """Mean of the values."""
        return float(self.values.mean())

    @property
    def std(self) -> float:
        """Standard deviation of the values (fluctuation size, not the error of the mean)."""
        return float(self.values.std(ddof=1)) if self.values.size > 1 else 0.0

    @property
    def sem(self) -> float:
        """Standard error of the mean (statistical-inefficiency method)."""
        return mean_with_error(self.values)[1]

    @property
    def statistical_inefficiency(self) -> float:
        """Statistical inefficiency g (samples per independent sample)."""
        return statistical_inefficiency(self.values)

    def mean_with_error(
        self, method: Literal["inefficiency", "blocking"] = "inefficiency"
    ) -> tuple[float, float]:
        """``(mean, standard error of the mean)``."""
        return mean_with_error(self.values, method)

    def after(self, t_ps: float) -> TimeSeries:
        """The part of the series at times ``>= t_ps`` (e.g. to drop equilibration)."""
        keep = self.times_ps >= t_ps
        if not np.any(keep):
            raise InputError(f"no samples of '{self.column}' after {t_ps:g} ps")
        return TimeSeries(self.times_ps[keep], self.values[keep], self.column)

    def to_csv(self, path: str | Path) -> Path:
        """Write ``t_ps,<column>`` and return the path."""
        return write_columns_csv(path, ("t_ps", self.column), (self.times_ps, self.values))


def density_series(traj: CGTrajectory) -> TimeSeries:
    """Mass density per frame in g/cm³ as a :class:`TimeSeries` (column ``density_g_cm3``)."""
    if not isinstance(traj, CGTrajectory):
        raise InputError(f"density_series expects a CGTrajectory, got {type(traj).__name__}")
    return TimeSeries(np.asarray(traj.times_ps), traj.density_g_cm3, "density_g_cm3")
