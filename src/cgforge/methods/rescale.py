"""Time rescaling: the simplest way to report CG dynamics on the all-atom clock.

A one-bead CG model whose potential reproduces the all-atom structure (IBI) moves faster than
the molecules it represents: its self-diffusion coefficient is D_CG = α D_AA with an
acceleration factor α > 1 (typically 3–10 for hydrocarbon liquids). Time rescaling keeps the
model and its trajectory as they are and relabels time:

    t_phys = α t_CG,    D_rescaled = D_CG / α,    MSD_rescaled(t_phys) = MSD_CG(t_phys / α),

i.e. a CG trajectory of duration t_CG stands for α t_CG of all-atom time, and every lag-time
axis (MSD, correlation functions) is stretched by α. The rescaled MSD fitted with
:func:`~cgforge.observables.fit_diffusion` gives exactly D_CG / α.

α comes either from a measurement (D_CG of the IBI run over D_AA of the reference,
:meth:`TimeRescaling.measured`) or from a prediction (any estimate with its error).

What it preserves: every static property of the CG model (RDF, density, pressure, energies)
exactly, since the configurations are untouched; with a measured α, the long-time diffusion of
the run it was measured on. What it does not do: it is not a model of the dynamics. One
factor stretches all time scales alike, while the missing friction of a CG model does not
(ballistic and caging times, velocity correlations and collective relaxations do not scale by
the same α); α depends on the state point and the molecule and has to be measured or
predicted for each; and with a measured α the agreement of D with D_AA holds by construction,
which makes it a calibration, not a test.

Errors (standard errors, first-order propagation): α = D_CG / D_AA has
(σ_α/α)² = (σ_CG/D_CG)² + (σ_AA/D_AA)². D_rescaled = D/α with independent errors has
(σ/D_rescaled)² = (σ_D/D)² + (σ_α/α)²; when α was measured on the same D (``same_measurement``)
the D_CG errors cancel and (σ/D_rescaled)² = (σ_α/α)² − (σ_D/D)² = (σ_AA/D_AA)².

Units: times in ps; D and its error in any one unit (cgforge summaries use m²/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cgforge.errors import InputError, require_positive
from cgforge.observables.msd import MSDResult
from cgforge.trajectory import CGTrajectory

__all__ = ["TimeRescaling", "acceleration_factor", "rescale_diffusion"]


def _error(value: float | None, what: str) -> float:
    if value is None:
        return 0.0
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise InputError(f"{what} must be a non-negative number, got {value!r}")
    return number


def acceleration_factor(
    d_cg: float, d_cg_err: float | None, d_aa: float, d_aa_err: float | None
) -> tuple[float, float]:
    """α = D_CG / D_AA and its standard error (both D in the same unit)."""
    cg = require_positive(d_cg, "D_CG")
    aa = require_positive(d_aa, "D_AA")
    alpha = cg / aa
    rel = math.hypot(_error(d_cg_err, "D_CG error") / cg, _error(d_aa_err, "D_AA error") / aa)
    return alpha, alpha * rel


def rescale_diffusion(
    d: float,
    d_err: float | None,
    alpha: float,
    alpha_err: float | None,
    *,
    same_measurement: bool = False,
) -> tuple[float, float]:
    """D / α and its standard error (see the module docstring).

    ``same_measurement``: α was measured as D / D_AA from this very D, so D's own error cancels
    (the result is D_AA with D_AA's error).
    """
    value = require_positive(d, "D")
    a = require_positive(alpha, "the acceleration factor alpha")
    rel_d = _error(d_err, "D error") / value
    rel_a = _error(alpha_err, "alpha error") / a
    if same_measurement:
        rel2 = max(0.0, rel_a * rel_a - rel_d * rel_d)
    else:
        rel2 = rel_d * rel_d + rel_a * rel_a
    result = value / a
    return result, result * math.sqrt(rel2)


@dataclass(frozen=True)
class TimeRescaling:
    """The time axis of a CG model stretched by ``alpha`` (± ``alpha_err``).

    ``source`` says where α came from (``"measured"``, ``"predicted"`` or ``"given"``).
    """

    alpha: float
    alpha_err: float = 0.0
    source: str = "given"

    def __post_init__(self) -> None:
        require_positive(self.alpha, "the acceleration factor alpha")
        _error(self.alpha_err, "the error of alpha")

    @classmethod
    def measured(
        cls, d_cg: float, d_cg_err: float | None, d_aa: float, d_aa_err: float | None
    ) -> TimeRescaling:
        """α from a CG and an all-atom diffusion coefficient (same unit)."""
        alpha, err = acceleration_factor(d_cg, d_cg_err, d_aa, d_aa_err)
        return cls(alpha, err, "measured")

    def times_ps(self, t_cg_ps: np.ndarray) -> np.ndarray:
        """All-atom-equivalent times α t of CG times (ps)."""
        return np.asarray(t_cg_ps, dtype=float) * self.alpha

    def diffusion(
        self, d: float, d_err: float | None, *, same_measurement: bool = False
    ) -> tuple[float, float]:
        """D / α with its error; see :func:`rescale_diffusion`."""
        return rescale_diffusion(
            d, d_err, self.alpha, self.alpha_err, same_measurement=same_measurement
        )

    def msd(self, msd: MSDResult) -> MSDResult:
        """The MSD on the rescaled lag-time axis (t → α t; MSD values unchanged)."""
        return MSDResult(
            t_ps=self.times_ps(msd.t_ps),
            msd_nm2=np.asarray(msd.msd_nm2, dtype=float),
            n_origins=msd.n_origins,
            msd_blocks_nm2=msd.msd_blocks_nm2,
            n_beads=msd.n_beads,
        )

    def trajectory(self, traj: CGTrajectory) -> CGTrajectory:
        """The same frames with frame times α t (ps); positions, boxes and forces unchanged."""
        return CGTrajectory(
            positions_nm=traj.positions_nm,
            box_nm=traj.box_nm,
            times_ps=self.times_ps(traj.times_ps),
            masses_amu=traj.masses_amu,
            forces_kj_mol_nm=traj.forces_kj_mol_nm,
        )
