"""HIP-NN with tensor sensitivity (HIP-NN-TS) for one-bead CG liquids (registry name ``"hipnn"``).

The Hierarchically Interacting Particle Neural Network (Lubbers, Smith & Barros, J. Chem. Phys.
148, 241715, 2018) with the tensor sensitivities of Chigaev et al. (J. Chem. Phys. 158, 184108,
2023), the architecture Shinkle et al. used for transferable CG force fields (J. Chem. Theory
Comput. 20, 10524, 2024). Written here from the published equations, for one bead type:

**Sensitivities.** A pair distance r (nm) is seen through ``n_sensitivities`` functions

    s_ν(r) = exp[ −(r⁻¹ − μ_ν⁻¹)² σ_ν² / 2 ] · φ(r),   φ(r) = cos²(π r / (2 r_c)) for r < r_c,

Gaussians in the *inverse* distance (finer resolution at short range), with learnable centres
μ_ν (initially evenly spaced in 1/r between ``sensitivity_min_nm`` and ``sensitivity_max_nm``)
and widths σ_ν (nm; initially 2 n_ν r_min), times a cutoff whose value and slope vanish at r_c.

**Interaction layer** (features z ∈ R^{n_in} → R^{n_out} per bead). With weights V_ν (n_in ×
n_out) shared by all tensor orders, the environment of bead i is, for the orders l = 0, 1, 2,

    a_i⁽⁰⁾ = Σ_j Σ_ν s_ν(r_ij) V_νᵀ z_j                       (n_out,)
    a_i⁽¹⁾ = Σ_j Σ_ν s_ν(r_ij) r̂_ij ⊗ V_νᵀ z_j                (3 × n_out)
    a_i⁽²⁾ = Σ_j Σ_ν s_ν(r_ij) (r̂_ij r̂_ijᵀ − I/3) ⊗ V_νᵀ z_j  (3 × 3 × n_out)

(r̂_ij the unit vector from i to j, the outer products of unit vectors giving the l = 1, 2
sensitivities), contracted to rotation invariants by their norms:

    z_i' = a_i⁽⁰⁾ + c₁ ⊙ √(|a_i⁽¹⁾|² + δ) + c₂ ⊙ √(‖a_i⁽²⁾‖_F² + δ) + W z_i + b

with learnable per-feature scales c₁, c₂ and δ = ``cusp_reg`` keeping the square root smooth at
zero. ``l_max`` = 0 gives the original HIP-NN, 1 and 2 HIP-NN-TS.

**Network.** The input feature of every bead is the constant 1 (one-hot of the single bead
type). Each of ``n_interactions`` blocks is an interaction layer and ``n_atom_layers`` atom-wise
linear layers, each followed by softplus. **Hierarchical energy**: every block l contributes
e_i⁽ˡ⁾ = w_l · z_i⁽ˡ⁾ + b_l per bead, and

    E = s Σ_i Σ_l e_i⁽ˡ⁾ + Σ_{i<j} U_prior(r_ij)

with ``s = energy_scale_kj_mol`` and the optional repulsive prior of
:mod:`cgforge.methods.gnn.prior`. (The zeroth, species-only term of the published hierarchy is a
constant for one bead type and is left out; the hierarchicality regulariser of the paper is
not used.)

Units: nm, kJ/mol, kJ/mol/nm. Invariant under translations, rotations and permutations by
construction (norms of sums over neighbours of rotation-covariant tensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cgforge.errors import InputError
from cgforge.methods.gnn.prior import DEFAULT_EXPONENT, NetworkWithPrior, check_common
from cgforge.potentials.neural.base import register_model

__all__ = ["HIPNN", "InverseSensitivity", "TensorInteraction"]

#: Frobenius weights of the six independent components (xx, yy, zz, xy, xz, yz) of a
#: symmetric 3 × 3 tensor: ‖A‖_F² = Σ w_k A_k².
_SYM_WEIGHTS = (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)


class InverseSensitivity(torch.nn.Module):
    """s_ν(r): Gaussians in 1/r times the cos² cutoff; ``forward(r (P,)) → (P, n)``."""

    def __init__(self, n: int, min_soft_nm: float, max_soft_nm: float, cutoff_nm: float) -> None:
        super().__init__()
        inverse = torch.linspace(1.0 / max_soft_nm, 1.0 / min_soft_nm, n)
        self.mu_nm = torch.nn.Parameter(1.0 / inverse)
        self.sigma_nm = torch.nn.Parameter(torch.full((n,), 2.0 * n * min_soft_nm))
        self.cutoff_nm = float(cutoff_nm)

    def forward(self, r_nm: Tensor) -> Tensor:
        x = (1.0 / r_nm[:, None] - 1.0 / self.mu_nm) * self.sigma_nm
        cut = torch.cos(0.5 * math.pi * r_nm / self.cutoff_nm) ** 2
        cut = torch.where(r_nm < self.cutoff_nm, cut, torch.zeros_like(cut))
        return torch.exp(-0.5 * x * x) * cut[:, None]


class TensorInteraction(torch.nn.Module):
    """HIP-NN-TS interaction layer (module docstring), tensor orders up to ``l_max`` ≤ 2."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_sensitivities: int,
        min_soft_nm: float,
        max_soft_nm: float,
        cutoff_nm: float,
        l_max: int,
        cusp_reg: float,
    ) -> None:
        super().__init__()
        self.sensitivity = InverseSensitivity(n_sensitivities, min_soft_nm, max_soft_nm, cutoff_nm)
        self.weights = torch.nn.Parameter(
            torch.randn(n_sensitivities, n_in, n_out) / math.sqrt(n_sensitivities * n_in)
        )
        self.self_interaction = torch.nn.Linear(n_in, n_out)
        torch.nn.init.xavier_normal_(self.self_interaction.weight)
        self.l_max = int(l_max)
        self.cusp_reg = float(cusp_reg)
        if self.l_max >= 1:
            self.vector_scale = torch.nn.Parameter(torch.randn(n_out))
        if self.l_max >= 2:
            self.quad_scale = torch.nn.Parameter(torch.randn(n_out))
            self.register_buffer("sym_weights", torch.tensor(_SYM_WEIGHTS), persistent=False)

    def forward(self, z: Tensor, graph: _Neighbourhood) -> Tensor:
        """New features (N, n_out) from features z (N, n_in) on the neighbour table ``graph``.

        The environment sums Σ_j s_ν(r_ij) T_c(r̂_ij) z_j (c: the 1 + 3 + 6 components of the
        tensor orders) are formed first, as one batched matrix product over the padded
        neighbour table, then contracted with the weights V.
        """
        n, k = graph.neighbours.shape
        s = self.sensitivity(graph.r)  # (2P, ν)
        n_comp = graph.tensors.shape[1]
        w = (graph.tensors[:, :, None] * s[:, None, :]).reshape(s.shape[0], -1)  # (2P, Cν)
        table = torch.zeros(n * k, w.shape[1], dtype=w.dtype, device=w.device)
        table = table.index_copy(0, graph.slots, w).reshape(n, k, -1)  # (N, K, Cν)
        padded = torch.cat([z, torch.zeros_like(z[:1])])[graph.neighbours]  # (N, K, n_in)
        env = torch.bmm(table.transpose(1, 2), padded)  # (N, Cν, n_in)
        env = env.reshape(n, n_comp, -1)  # (N, C, ν·n_in)
        a = env @ self.weights.reshape(-1, self.weights.shape[2])  # (N, C, n_out)
        out = a[:, 0] + self.self_interaction(z)
        if self.l_max >= 1:
            vec = a[:, 1:4]
            out = out + self.vector_scale * torch.sqrt((vec * vec).sum(1) + self.cusp_reg)
        if self.l_max >= 2:
            quad = a[:, 4:10]
            norm2 = (self.sym_weights[None, :, None] * quad * quad).sum(1)
            out = out + self.quad_scale * torch.sqrt(norm2 + self.cusp_reg)
        return out


@dataclass
class _Neighbourhood:
    """Directed pairs of one configuration in the layout the interaction layers use.

    ``r`` (2P,) distances nm; ``tensors`` (2P, C) the components 1, r̂ (3) and the traceless
    r̂ r̂ᵀ − I/3 (6: xx, yy, zz, xy, xz, yz) up to ``l_max``, r̂ pointing from the receiving
    bead to its neighbour; ``neighbours`` (N, K) the neighbours of each bead, padded with N
    (a zero row); ``slots`` (2P,) the flat position dst·K + slot of each pair in that table.
    """

    r: Tensor
    tensors: Tensor
    neighbours: Tensor
    slots: Tensor

    @classmethod
    def build(
        cls, n_beads: int, i: Tensor, j: Tensor, r_ij: Tensor, r: Tensor, l_max: int
    ) -> _Neighbourhood:
        """The layout of the half pair list i < j (pair vectors ``r_ij`` nm, lengths ``r`` nm)."""
        src = torch.cat([j, i])
        dst = torch.cat([i, j])
        unit = r_ij / r[:, None]
        rhat = torch.cat([unit, -unit])
        parts = [torch.ones_like(rhat[:, :1])]
        if l_max >= 1:
            parts.append(rhat)
        if l_max >= 2:
            x, y, z = rhat.unbind(-1)
            third = 1.0 / 3.0
            parts.append(
                torch.stack([x * x - third, y * y - third, z * z - third, x * y, x * z, y * z], 1)
            )
        with torch.no_grad():
            counts = torch.bincount(dst, minlength=n_beads)
            k = max(int(counts.max()) if dst.numel() else 0, 1)
            order = torch.argsort(dst, stable=True)
            starts = torch.cumsum(counts, 0) - counts
            slot = torch.empty_like(dst)
            slot[order] = torch.arange(dst.numel(), device=dst.device) - starts[dst[order]]
            flat = dst * k + slot
            neighbours = torch.full((n_beads * k,), n_beads, dtype=torch.long, device=dst.device)
            neighbours[flat] = src
        return cls(torch.cat([r, r]), torch.cat(parts, 1), neighbours.reshape(n_beads, k), flat)


@register_model("hipnn")
class HIPNN(NetworkWithPrior):
    """HIP-NN-TS for one bead type; see the module docstring for the functional form.

    Hyperparameters: ``cutoff_nm`` (nm); ``width`` features per layer; ``n_interactions``
    interaction blocks; ``n_atom_layers`` atom-wise layers per block; ``n_sensitivities``;
    ``sensitivity_min_nm`` / ``sensitivity_max_nm`` initial range of the sensitivity centres
    (nm; max defaults to 0.8 × cutoff); ``l_max`` highest tensor order (0, 1 or 2);
    ``cusp_reg``; ``energy_scale_kj_mol``; ``prior_sigma_nm``, ``prior_epsilon_kj_mol``,
    ``prior_exponent`` (``prior_sigma_nm=None``: no prior).
    """

    def __init__(
        self,
        cutoff_nm: float = 1.0,
        width: int = 64,
        n_interactions: int = 2,
        n_atom_layers: int = 2,
        n_sensitivities: int = 16,
        sensitivity_min_nm: float = 0.25,
        sensitivity_max_nm: float | None = None,
        l_max: int = 2,
        cusp_reg: float = 1.0e-6,
        energy_scale_kj_mol: float = 1.0,
        prior_sigma_nm: float | None = None,
        prior_epsilon_kj_mol: float | None = None,
        prior_exponent: float = DEFAULT_EXPONENT,
    ) -> None:
        check_common(cutoff_nm, width, n_interactions)
        if sensitivity_max_nm is None:
            sensitivity_max_nm = 0.8 * cutoff_nm
        if not 0.0 < sensitivity_min_nm < sensitivity_max_nm <= cutoff_nm:
            raise InputError(
                f"need 0 < sensitivity_min_nm ({sensitivity_min_nm}) < sensitivity_max_nm "
                f"({sensitivity_max_nm}) <= cutoff ({cutoff_nm}); lower sensitivity_min_nm"
            )
        if l_max not in (0, 1, 2) or n_atom_layers < 0 or n_sensitivities < 2:
            raise InputError(
                f"need l_max in 0, 1, 2 (got {l_max}), n_atom_layers >= 0 (got {n_atom_layers}) "
                f"and n_sensitivities >= 2 (got {n_sensitivities})"
            )
        super().__init__(
            cutoff_nm,
            {
                "width": int(width),
                "n_interactions": int(n_interactions),
                "n_atom_layers": int(n_atom_layers),
                "n_sensitivities": int(n_sensitivities),
                "sensitivity_min_nm": float(sensitivity_min_nm),
                "sensitivity_max_nm": float(sensitivity_max_nm),
                "l_max": int(l_max),
                "cusp_reg": float(cusp_reg),
            },
            energy_scale_kj_mol=energy_scale_kj_mol,
            prior_sigma_nm=prior_sigma_nm,
            prior_epsilon_kj_mol=prior_epsilon_kj_mol,
            prior_exponent=prior_exponent,
        )
        self.interactions = torch.nn.ModuleList()
        self.atom_layers = torch.nn.ModuleList()
        self.energy_heads = torch.nn.ModuleList()
        n_in = 1
        for _ in range(n_interactions):
            self.interactions.append(
                TensorInteraction(
                    n_in,
                    width,
                    n_sensitivities,
                    sensitivity_min_nm,
                    sensitivity_max_nm,
                    cutoff_nm,
                    l_max,
                    cusp_reg,
                )
            )
            layers = torch.nn.ModuleList(
                torch.nn.Linear(width, width) for _ in range(n_atom_layers)
            )
            for layer in layers:
                torch.nn.init.xavier_normal_(layer.weight)
            self.atom_layers.append(layers)
            head = torch.nn.Linear(width, 1)
            torch.nn.init.xavier_normal_(head.weight)
            self.energy_heads.append(head)
            n_in = width

    def network_energies(
        self, n_beads: int, i: Tensor, j: Tensor, r_ij: Tensor, r_nm: Tensor
    ) -> Tensor:
        """Unscaled per-bead energies (n_beads,): the hierarchical sum over the blocks."""
        graph = _Neighbourhood.build(n_beads, i, j, r_ij, r_nm, self._hp["l_max"])
        z = torch.ones(n_beads, 1, dtype=r_ij.dtype, device=r_ij.device)
        energies = torch.zeros(n_beads, dtype=r_ij.dtype, device=r_ij.device)
        for interaction, layers, head in zip(
            self.interactions, self.atom_layers, self.energy_heads, strict=True
        ):
            z = torch.nn.functional.softplus(interaction(z, graph))
            for layer in layers:
                z = torch.nn.functional.softplus(layer(z))
            energies = energies + head(z).squeeze(-1)
        return energies
