"""Repulsive pair prior for neural CG potentials, set from the training data.

A network trained by force matching only knows the forces where the data went. Bead pairs of a
liquid never come closer than a contact distance, so below it the network is unconstrained and
typically flat or attractive: in MD the beads then collapse onto each other (the known failure of
DeePCG-style models). Both neural models of cgforge therefore add a fixed, non-trainable pair
prior

    U_prior(r) = ε [(σ/r)^n − (σ/r_c)^n + n (σ/r_c)^n (r/r_c − 1)]    for r < r_c, else 0,

a power-law wall shifted so that its energy *and* force vanish at the model cutoff ``r_c``
(the shift terms are of order (σ/r_c)^n ≈ 1e-6 ε and change nothing in practice). The network
learns the difference between the mapped forces and the prior's forces. :class:`NetworkWithPrior`
is the base class that adds the prior to a network's per-bead energies.

How the parameters come from the data (:func:`fit_prior`):

* ``σ`` is a low quantile (default 0.1 %) of the **nearest-neighbour** distances of all beads in
  all (sampled) training frames, i.e. a contact distance that almost no bead in the data goes
  below. A quantile rather than the minimum makes σ robust against one odd frame.
* ``ε = k_B T`` of the coldest training state point: at r = σ the prior costs one k_B T and
  exerts ``n k_B T / σ``, comparable to the mapped forces there, so it disturbs the fit little;
  with ``n = 12`` it grows to 4096 k_B T at r = σ/2, which no thermal collision reaches.

Units: nm, kJ/mol, K.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cgforge.errors import InputError
from cgforge.geometry import nearest_distances
from cgforge.potentials.neural.base import EnergyModel
from cgforge.potentials.neural.neighbors import neighbor_pairs
from cgforge.units import kT

__all__ = [
    "NetworkWithPrior",
    "PairPrior",
    "PriorParameters",
    "check_common",
    "fit_prior",
    "make_prior",
    "nearest_neighbour_distances",
    "prior_from_distances",
]

#: Default quantile of the nearest-neighbour distances that sets σ.
DEFAULT_QUANTILE = 1.0e-3
#: Default exponent n of the wall.
DEFAULT_EXPONENT = 12.0
#: Most frames per data set used to measure nearest-neighbour distances (evenly spaced).
MAX_FRAMES = 200


@dataclass(frozen=True)
class PriorParameters:
    """Parameters of the repulsive prior and where they came from.

    ``sigma_nm`` wall position (nm), ``epsilon_kj_mol`` its energy at r = σ (kJ/mol),
    ``exponent`` the power n; ``quantile`` and ``n_distances`` record how σ was measured,
    ``temperature_K`` the temperature that set ε.
    """

    sigma_nm: float
    epsilon_kj_mol: float
    exponent: float = DEFAULT_EXPONENT
    quantile: float = DEFAULT_QUANTILE
    n_distances: int = 0
    temperature_K: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nearest_neighbour_distances(
    positions_nm: np.ndarray, box_nm: np.ndarray, *, max_frames: int = MAX_FRAMES
) -> np.ndarray:
    """Minimum-image nearest-neighbour distance (nm) of every bead in up to ``max_frames`` frames.

    ``positions_nm`` ``(F, N, 3)`` (any image), ``box_nm`` ``(F, 3)`` or ``(3,)`` orthorhombic
    edges. Frames are taken evenly spaced. Returns a flat array of length ``F' × N``.
    """
    pos = np.asarray(positions_nm, dtype=np.float64)
    if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[1] < 2:
        raise InputError(f"positions must have shape (n_frames, n_beads >= 2, 3), got {pos.shape}")
    box = np.broadcast_to(np.asarray(box_nm, dtype=np.float64), (pos.shape[0], 3))
    frames = np.unique(np.linspace(0, pos.shape[0] - 1, min(max_frames, pos.shape[0])).round())
    out = []
    for f in frames.astype(int):
        out.append(nearest_distances(pos[f], box[f]))
    return np.concatenate(out)


def fit_prior(
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    temperature_K: float,
    *,
    quantile: float = DEFAULT_QUANTILE,
    exponent: float = DEFAULT_EXPONENT,
) -> PriorParameters:
    """Prior parameters from training frames: σ a low quantile of nearest-neighbour distances.

    ``frames`` yields ``(positions_nm (F, N, 3), box_nm (F, 3))`` per data set;
    ``temperature_K`` sets ε = k_B T (pass the coldest state point's temperature).
    """
    distances = [nearest_neighbour_distances(pos, box) for pos, box in frames]
    if not distances:
        raise InputError("no training frames to set the prior from")
    return prior_from_distances(
        np.concatenate(distances), temperature_K, quantile=quantile, exponent=exponent
    )


def prior_from_distances(
    nearest_nm: np.ndarray,
    temperature_K: float,
    *,
    quantile: float = DEFAULT_QUANTILE,
    exponent: float = DEFAULT_EXPONENT,
) -> PriorParameters:
    """Prior parameters from nearest-neighbour distances (nm) already measured
    (:func:`nearest_neighbour_distances`); see :func:`fit_prior`."""
    if not 0.0 < quantile < 0.5:
        raise InputError(f"prior quantile must lie in (0, 0.5), got {quantile}")
    if not exponent > 2.0:
        raise InputError(
            f"prior exponent must exceed 2 (a wall, not a long-range tail), got {exponent}"
        )
    if not temperature_K > 0:
        raise InputError(f"temperature must be positive, got {temperature_K} K")
    d = np.asarray(nearest_nm, dtype=np.float64).ravel()
    if d.size == 0:
        raise InputError("no nearest-neighbour distances to set the prior from")
    sigma = float(np.quantile(d, quantile))
    if not sigma > 0:
        raise InputError("training frames hold overlapping beads (zero distance); check the data")
    return PriorParameters(
        sigma_nm=sigma,
        epsilon_kj_mol=kT(temperature_K),
        exponent=float(exponent),
        quantile=float(quantile),
        n_distances=int(d.size),
        temperature_K=float(temperature_K),
    )


class PairPrior(torch.nn.Module):
    """The shifted power-law wall as a torch module (no trainable parameters).

    ``forward(r_nm)`` maps pair distances ``(P,)`` in nm to pair energies ``(P,)`` in kJ/mol
    (zero at and beyond ``cutoff_nm``).
    """

    def __init__(
        self, sigma_nm: float, epsilon_kj_mol: float, exponent: float, cutoff_nm: float
    ) -> None:
        super().__init__()
        if not (sigma_nm > 0 and epsilon_kj_mol > 0 and exponent > 2 and cutoff_nm > sigma_nm):
            raise InputError(
                f"prior needs 0 < sigma ({sigma_nm} nm) < cutoff ({cutoff_nm} nm), "
                f"epsilon > 0 ({epsilon_kj_mol} kJ/mol) and exponent > 2 ({exponent})"
            )
        self.sigma_nm = float(sigma_nm)
        self.epsilon_kj_mol = float(epsilon_kj_mol)
        self.exponent = float(exponent)
        self.cutoff_nm = float(cutoff_nm)

    def forward(self, r_nm: torch.Tensor) -> torch.Tensor:
        n, rc = self.exponent, self.cutoff_nm
        tail = (self.sigma_nm / rc) ** n
        inside = r_nm < rc
        r = torch.where(inside, r_nm, torch.full_like(r_nm, rc))
        u = (self.sigma_nm / r) ** n - tail + n * tail * (r / rc - 1.0)
        return self.epsilon_kj_mol * torch.where(inside, u, torch.zeros_like(u))

    def extra_repr(self) -> str:
        return (
            f"sigma_nm={self.sigma_nm:.4f}, epsilon_kj_mol={self.epsilon_kj_mol:.4f}, "
            f"exponent={self.exponent:g}, cutoff_nm={self.cutoff_nm:g}"
        )


def make_prior(
    sigma_nm: float | None, epsilon_kj_mol: float | None, exponent: float, cutoff_nm: float
) -> PairPrior | None:
    """The prior module, or None when ``sigma_nm`` is None (prior switched off)."""
    if sigma_nm is None:
        return None
    if epsilon_kj_mol is None:
        raise InputError("a prior needs prior_epsilon_kj_mol as well as prior_sigma_nm")
    return PairPrior(sigma_nm, epsilon_kj_mol, exponent, cutoff_nm)


def check_common(cutoff_nm: float, width: int, n_interactions: int) -> None:
    """Refuse impossible settings shared by the neural models (cutoff, feature width, number
    of interaction layers) with a message that names them; a model calls it first, before
    checking its own settings."""
    if not (math.isfinite(cutoff_nm) and cutoff_nm > 0):
        raise InputError(f"cutoff must be a positive distance in nm, got {cutoff_nm}")
    if width < 1 or n_interactions < 1:
        raise InputError(
            f"width ({width}) and number of interaction layers ({n_interactions}) must be >= 1"
        )


class NetworkWithPrior(EnergyModel):
    """Common plumbing of the neural models: E = s Σ_i ε_i + Σ_{i<j} U_prior(r_ij).

    A subclass checks its settings (:func:`check_common`, then its own), calls
    ``super().__init__`` with its cutoff, its architecture hyperparameters and the
    energy-scale/prior arguments, builds its layers and implements :meth:`network_energies`
    (the unscaled per-bead energies ε_i). This class keeps
    the hyperparameters (:meth:`hyperparameters`: ``cutoff_nm``, the architecture entries, then
    ``energy_scale_kj_mol``, ``prior_sigma_nm``, ``prior_epsilon_kj_mol``, ``prior_exponent``),
    the scale ``s = energy_scale_kj_mol`` (kJ/mol) and the prior (:func:`make_prior`; None when
    ``prior_sigma_nm`` is None), and sums the energy over the neighbour pairs within the cutoff.
    """

    def __init__(
        self,
        cutoff_nm: float,
        architecture: Mapping[str, Any],
        *,
        energy_scale_kj_mol: float,
        prior_sigma_nm: float | None,
        prior_epsilon_kj_mol: float | None,
        prior_exponent: float,
    ) -> None:
        super().__init__()
        self.cutoff_nm = float(cutoff_nm)
        self._hp: dict[str, Any] = {
            "cutoff_nm": float(cutoff_nm),
            **architecture,
            "energy_scale_kj_mol": float(energy_scale_kj_mol),
            "prior_sigma_nm": None if prior_sigma_nm is None else float(prior_sigma_nm),
            "prior_epsilon_kj_mol": (
                None if prior_epsilon_kj_mol is None else float(prior_epsilon_kj_mol)
            ),
            "prior_exponent": float(prior_exponent),
        }
        self.energy_scale = float(energy_scale_kj_mol)
        self.prior = make_prior(prior_sigma_nm, prior_epsilon_kj_mol, prior_exponent, cutoff_nm)

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._hp)

    def network_energies(
        self, n_beads: int, i: Tensor, j: Tensor, r_ij: Tensor, r_nm: Tensor
    ) -> Tensor:  # pragma: no cover
        """Unscaled per-bead network energies (n_beads,) from a half pair list (i < j, pair
        vectors ``r_ij`` (P, 3) nm, their lengths ``r_nm`` (P,) nm)."""
        raise NotImplementedError

    def bead_energies(self, n_beads: int, i: Tensor, j: Tensor, r_ij: Tensor) -> Tensor:
        """Per-bead energies (n_beads,) in kJ/mol from a half pair list (i < j, r_ij nm).

        The prior's pair energies are split equally between the two beads of a pair.
        """
        r = torch.linalg.vector_norm(r_ij, dim=-1)
        energies = self.energy_scale * self.network_energies(n_beads, i, j, r_ij, r)
        if self.prior is not None:
            half = 0.5 * self.prior(r)
            energies = energies.index_add(0, i, half).index_add(0, j, half)
        return energies

    def forward(self, positions_nm: Tensor, box_nm: Tensor) -> Tensor:
        """Potential energy (scalar, kJ/mol) of positions (N, 3) nm in the box (3,) nm."""
        i, j, r_ij = neighbor_pairs(positions_nm, box_nm, self.cutoff_nm)
        return self.bead_energies(positions_nm.shape[0], i, j, r_ij).sum()
