"""Green–Kubo viscosity against a process with a known stress autocorrelation."""

from __future__ import annotations

import numpy as np
import pytest

from cgforge.errors import InputError
from cgforge.observables.viscosity import green_kubo_viscosity

KB = 1.380649e-23


def _ornstein_uhlenbeck(n: int, dt: float, tau: float, sigma: float, rng) -> np.ndarray:
    """Exact OU samples: ⟨x(0)x(t)⟩ = σ² exp(−t/τ), so ∫₀^∞ = σ² τ."""
    a = np.exp(-dt / tau)
    noise = rng.normal(0.0, sigma * np.sqrt(1 - a * a), n)
    x = np.empty(n)
    x[0] = rng.normal(0.0, sigma)
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    return x


def test_green_kubo_recovers_the_integral_of_a_known_autocorrelation():
    rng = np.random.default_rng(7)
    dt, tau, sigma, n = 0.004, 0.3, 150.0, 200_000  # ps, ps, bar
    t = np.arange(n) * dt
    components = np.array([_ornstein_uhlenbeck(n, dt, tau, sigma, rng) for _ in range(3)])
    volume, temperature = 40.0, 298.15
    result = green_kubo_viscosity(t, components, volume, temperature)
    exact = volume * 1e-27 / (KB * temperature) * (sigma * 1e5) ** 2 * tau * 1e-12
    assert result.viscosity_err_Pa_s > 0
    assert abs(result.viscosity_Pa_s - exact) < 4 * result.viscosity_err_Pa_s + 0.05 * exact
    # a 3× longer correlation time is a 3× larger viscosity: the estimator is not a constant
    slow = np.array([_ornstein_uhlenbeck(n, dt, 3 * tau, sigma, rng) for _ in range(3)])
    ratio = green_kubo_viscosity(t, slow, volume, temperature).viscosity_Pa_s / exact
    assert 2.4 < ratio < 3.6


def test_green_kubo_refuses_series_too_short_for_the_plateau():
    t = np.arange(1000) * 0.004
    with pytest.raises(InputError, match="too short"):
        green_kubo_viscosity(t, np.zeros((3, 1000)), 40.0, 298.15)
    with pytest.raises(InputError, match="NaN"):
        green_kubo_viscosity(t, np.full((3, 1000), np.nan), 40.0, 298.15)
