"""Pair-potential energy models in torch: a tabulated U(r) and an analytic Lennard-Jones.

:class:`TabulatedPairModel` (registry name ``"pair_table"``) evaluates a
:class:`~cgforge.potentials.TabulatedPotential` exactly as that class does: the piecewise-cubic
Hermite interpolant of U through the grid values with slopes −F, so forces are minus the exact
derivative of the energy. It follows the conventions of cgforge's OpenMM CG systems
(:func:`cgforge.engines.cg_system.create_cg_system`): a table that starts above r = 0 gets the
default repulsive wall of :meth:`~cgforge.potentials.TabulatedPotential.extend_repulsive` down
to r = 0, the energy is shifted so that U(cutoff) = 0, and U = 0 beyond the cutoff (a plain
cutoff; smooth the table with :meth:`~cgforge.potentials.TabulatedPotential.smooth_cutoff` for
continuous forces). The only difference from OpenMM is the interpolant between grid points
(OpenMM: natural cubic spline of the values), which vanishes as the grid gets finer.

:class:`LennardJonesModel` (``"lj"``) is U(r) = 4ε[(σ/r)¹² − (σ/r)⁶], shifted to zero at the
cutoff, for tests and as a reference liquid.

Both hold their constants as float64 buffers by default; ``model.float()`` switches to float32.
Units: nm, kJ/mol.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from cgforge.errors import InputError
from cgforge.potentials.neural.base import EnergyModel, register_model
from cgforge.potentials.neural.neighbors import neighbor_pairs
from cgforge.potentials.table import TabulatedPotential


def _distances(r_ij: Tensor) -> Tensor:
    """|r_ij| in nm; differentiable (pairs at zero distance are a blow-up anyway)."""
    return torch.linalg.vector_norm(r_ij, dim=-1)


@register_model("pair_table")
class TabulatedPairModel(EnergyModel):
    """Energy Σ_{i<j} U(|r_ij|) of a tabulated pair potential, in kJ/mol.

    Parameters are those of :class:`~cgforge.potentials.TabulatedPotential` (its
    ``to_dict()`` keys): ``r_nm`` (uniform grid, nm), ``U_kJ_mol``, optional ``F_kJ_mol_nm``
    (−dU/dr at the grid points; derived from a spline of U when omitted), ``cutoff_nm``
    (default: the last grid point) and ``wall_below_nm``. Use :meth:`from_potential` to build
    one from a table object.
    """

    def __init__(
        self,
        r_nm: list[float],
        U_kJ_mol: list[float],
        F_kJ_mol_nm: list[float] | None = None,
        cutoff_nm: float | None = None,
        wall_below_nm: float | None = None,
    ) -> None:
        super().__init__()
        table = TabulatedPotential(
            r_nm,
            U_kJ_mol,
            cutoff_nm=cutoff_nm,
            force_kj_mol_nm=F_kJ_mol_nm,
            wall_below_nm=wall_below_nm,
        )
        self._table = table
        full = table if table.r_min_nm <= 0.0 else table.extend_repulsive(0.0)
        self.cutoff_nm = float(full.cutoff_nm)
        shift = -float(full.energy(self.cutoff_nm))
        self.r0_nm = float(full.r_min_nm)
        self.dr_nm = float(full.dr_nm)
        self.register_buffer("u_kj_mol", torch.tensor(full.u_kj_mol + shift, dtype=torch.float64))
        self.register_buffer(
            "slope_kj_mol_nm", torch.tensor(-full.f_kj_mol_nm, dtype=torch.float64)
        )
        self.energy_shift_kj_mol = shift

    @classmethod
    def from_potential(cls, potential: TabulatedPotential) -> TabulatedPairModel:
        """Model of a :class:`~cgforge.potentials.TabulatedPotential` (grid, forces, cutoff)."""
        if not isinstance(potential, TabulatedPotential):
            raise InputError(f"expected a TabulatedPotential, got {type(potential).__name__}")
        return cls(**cls._table_kwargs(potential))

    @staticmethod
    def _table_kwargs(potential: TabulatedPotential) -> dict[str, Any]:
        data = potential.to_dict()
        return {
            "r_nm": data["r_nm"],
            "U_kJ_mol": data["U_kJ_mol"],
            "F_kJ_mol_nm": data["F_kJ_mol_nm"],
            "cutoff_nm": data["cutoff_nm"],
            "wall_below_nm": data["wall_below_nm"],
        }

    @property
    def potential(self) -> TabulatedPotential:
        """The table this model was built from (before the wall and the shift)."""
        return self._table

    def hyperparameters(self) -> dict[str, Any]:
        return self._table_kwargs(self._table)

    def pair_energy(self, r_nm: Tensor) -> Tensor:
        """U(r) in kJ/mol at distances ``r_nm`` (any shape, >= 0); zero from the cutoff on."""
        u = self.u_kj_mol
        m = self.slope_kj_mol_nm
        n = u.shape[0]
        x = (r_nm - self.r0_nm) / self.dr_nm
        k = torch.clamp(torch.floor(x.detach()), 0, n - 2).to(torch.long)
        t = x - k.to(x.dtype)
        t2 = t * t
        t3 = t2 * t
        h00 = 2.0 * t3 - 3.0 * t2 + 1.0
        h10 = t3 - 2.0 * t2 + t
        h01 = -2.0 * t3 + 3.0 * t2
        h11 = t3 - t2
        value = h00 * u[k] + h01 * u[k + 1] + self.dr_nm * (h10 * m[k] + h11 * m[k + 1])
        return torch.where(r_nm < self.cutoff_nm, value, torch.zeros_like(value))

    def forward(self, positions_nm: Tensor, box_nm: Tensor) -> Tensor:
        _, _, r_ij = neighbor_pairs(positions_nm, box_nm, self.cutoff_nm)
        return self.pair_energy(_distances(r_ij)).sum()


@register_model("lj")
class LennardJonesModel(EnergyModel):
    """Lennard-Jones energy Σ_{i<j} 4ε[(σ/r)¹² − (σ/r)⁶] − U(r_c), zero beyond r_c; kJ/mol.

    Parameters: ``epsilon_kj_mol`` (well depth, kJ/mol), ``sigma_nm`` (nm), ``cutoff_nm``
    (nm), ``shift`` (subtract U(r_c) so the energy is continuous at the cutoff; default True).
    """

    def __init__(
        self,
        epsilon_kj_mol: float,
        sigma_nm: float,
        cutoff_nm: float,
        shift: bool = True,
    ) -> None:
        super().__init__()
        values = {"epsilon_kj_mol": epsilon_kj_mol, "sigma_nm": sigma_nm, "cutoff_nm": cutoff_nm}
        for name, value in values.items():
            if not (math.isfinite(float(value)) and float(value) > 0.0):
                raise InputError(f"Lennard-Jones {name} must be positive, got {value!r}")
        self.epsilon_kj_mol = float(epsilon_kj_mol)
        self.sigma_nm = float(sigma_nm)
        self.cutoff_nm = float(cutoff_nm)
        self.shift = bool(shift)
        sr6 = (self.sigma_nm / self.cutoff_nm) ** 6
        u_cut = 4.0 * self.epsilon_kj_mol * (sr6 * sr6 - sr6) if self.shift else 0.0
        self.register_buffer("_u_cut", torch.tensor(u_cut, dtype=torch.float64))

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "epsilon_kj_mol": self.epsilon_kj_mol,
            "sigma_nm": self.sigma_nm,
            "cutoff_nm": self.cutoff_nm,
            "shift": self.shift,
        }

    def pair_energy(self, r_nm: Tensor) -> Tensor:
        """U(r) in kJ/mol for distances ``r_nm`` (> 0); zero at and beyond the cutoff."""
        sr2 = (self.sigma_nm / r_nm) ** 2
        sr6 = sr2 * sr2 * sr2
        value = 4.0 * self.epsilon_kj_mol * (sr6 * sr6 - sr6) - self._u_cut
        return torch.where(r_nm < self.cutoff_nm, value, torch.zeros_like(value))

    def forward(self, positions_nm: Tensor, box_nm: Tensor) -> Tensor:
        _, _, r_ij = neighbor_pairs(positions_nm, box_nm, self.cutoff_nm)
        return self.pair_energy(_distances(r_ij)).sum()
