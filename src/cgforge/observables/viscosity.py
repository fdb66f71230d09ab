"""Shear viscosity from the pressure tensor by Green–Kubo.

η = V / (k_B T) ∫₀^∞ ⟨P_αβ(0) P_αβ(t)⟩ dt, averaged over the three off-diagonal components
(xy, xz, yz) of an equilibrium NVT (or NVE) run. The stress autocorrelation of a small-molecule
liquid decays within a few ps; its running integral then fluctuates around a plateau, whose mean
over a window ``plateau_ps`` is the estimate. The error is the standard error over independent
time blocks of the series (each block integrated on its own).

Units: pressures in bar, volume in nm³, times in ps, temperature in K; viscosity in Pa·s
(1 mPa·s = 1 cP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cgforge.errors import InputError

__all__ = ["ViscosityResult", "green_kubo_viscosity"]

_KB_J_K = 1.380649e-23
_BAR_TO_PA = 1.0e5
_NM3_TO_M3 = 1.0e-27
_PS_TO_S = 1.0e-12


@dataclass(frozen=True, eq=False)
class ViscosityResult:
    """Green–Kubo viscosity (Pa·s) with its block error, and the running integral behind it."""

    viscosity_Pa_s: float
    viscosity_err_Pa_s: float
    lag_ps: np.ndarray
    running_integral_Pa_s: np.ndarray
    plateau_ps: tuple[float, float]
    n_blocks: int


def _acf(x: np.ndarray, n_lags: int) -> np.ndarray:
    """Autocorrelation ⟨x(0)x(t)⟩ over all time origins (FFT), lags 0..n_lags-1."""
    n = x.size
    f = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n_lags]
    return acf / (n - np.arange(n_lags))


def _running_integral(components: np.ndarray, dt_ps: float, n_lags: int) -> np.ndarray:
    """∫₀^t of the component-averaged stress autocorrelation (bar² ps), trapezoidal."""
    acf = np.mean([_acf(c - c.mean(), n_lags) for c in components], axis=0)
    integral = np.concatenate(([0.0], np.cumsum(0.5 * (acf[1:] + acf[:-1]) * dt_ps)))
    return integral


def green_kubo_viscosity(
    times_ps: np.ndarray,
    off_diagonal_bar: np.ndarray,
    volume_nm3: float,
    temperature_K: float,
    *,
    plateau_ps: tuple[float, float] = (2.0, 6.0),
    n_blocks: int = 4,
) -> ViscosityResult:
    """Shear viscosity from off-diagonal pressure components.

    ``off_diagonal_bar``: shape (k, n), k ≥ 1 components (P_xy, P_xz, P_yz) sampled at the
    uniform times ``times_ps``. The plateau window must lie inside a block.
    """
    t = np.asarray(times_ps, dtype=float)
    p = np.atleast_2d(np.asarray(off_diagonal_bar, dtype=float))
    if t.ndim != 1 or p.shape[1] != t.size or t.size < 16:
        raise InputError(
            f"pressure components of shape {p.shape} do not match {t.size} times (need ≥ 16)"
        )
    if not np.all(np.isfinite(p)):
        raise InputError("the pressure tensor holds NaN or infinite values")
    dt = float(np.median(np.diff(t)))
    if dt <= 0 or not np.allclose(np.diff(t), dt, rtol=1e-3, atol=1e-9):
        raise InputError("the pressure tensor must be sampled at uniform, increasing times")
    if not (volume_nm3 > 0 and temperature_K > 0):
        raise InputError("volume_nm3 and temperature_K must be positive")
    t_a, t_b = plateau_ps
    if not 0 <= t_a < t_b:
        raise InputError(f"plateau_ps must be an increasing pair, got {plateau_ps}")
    if n_blocks < 2:
        raise InputError(f"n_blocks must be at least 2, got {n_blocks}")
    block = t.size // n_blocks
    n_lags = round(t_b / dt) + 1
    if n_lags > block // 2:
        raise InputError(
            f"blocks of {block * dt:.1f} ps are too short for a plateau up to {t_b} ps; "
            "run longer or use fewer blocks"
        )
    scale = volume_nm3 * _NM3_TO_M3 / (_KB_J_K * temperature_K) * _BAR_TO_PA**2 * _PS_TO_S
    lag = np.arange(n_lags) * dt
    window = (lag >= t_a) & (lag <= t_b)
    estimates = []
    for b in range(n_blocks):
        part = p[:, b * block : (b + 1) * block]
        estimates.append(float(_running_integral(part, dt, n_lags)[window].mean() * scale))
    whole = _running_integral(p, dt, n_lags) * scale
    return ViscosityResult(
        viscosity_Pa_s=float(whole[window].mean()),
        viscosity_err_Pa_s=float(np.std(estimates, ddof=1) / np.sqrt(n_blocks)),
        lag_ps=lag,
        running_integral_Pa_s=whole,
        plateau_ps=(float(t_a), float(t_b)),
        n_blocks=n_blocks,
    )
