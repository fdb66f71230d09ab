"""SchNet-type energy model of one-bead-per-molecule CG liquids (registry name ``"schnet"``).

The continuous-filter convolutional network of Schütt et al. (J. Chem. Phys. 148, 241722, 2018)
for beads of a single type:

* every bead starts from the same learned embedding x_i⁽⁰⁾ ∈ R^width;
* a pair distance r (nm) is expanded in ``n_rbf`` Gaussians
  e_k(r) = exp(−(r − μ_k)² / (2 Δ²)), centres μ_k evenly spaced from ``rbf_min_nm`` to the
  cutoff, Δ their spacing;
* each of ``n_interactions`` interaction blocks updates x_i ← x_i + v_i with the continuous-
  filter convolution

      v_i = g( Σ_j  (A x_j) ⊙ W(e(r_ij)) · f_c(r_ij) ),   f_c(r) = ½ [cos(π r / r_c) + 1],

  where A is linear, W a two-layer filter network, g a two-layer atom-wise network, all with
  the shifted softplus ssp(x) = ln(½ eˣ + ½); the cosine cutoff f_c makes energy and forces go
  smoothly to zero at r_c;
* an atom-wise network maps x_i to a per-bead energy ε_i; E = s Σ_i ε_i + Σ_{i<j} U_prior(r_ij)
  with ``s = energy_scale_kj_mol`` (k_B T by default in training, so that the untrained
  network starts at thermal energies) and the optional repulsive prior of
  :mod:`cgforge.methods.gnn.prior`.

Units: positions, box, cutoff and distances nm; energies kJ/mol; forces kJ/mol/nm. The
energy is invariant under translation, rotation and permutation of the beads by construction
(it depends on pair distances only, summed symmetrically).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cgforge.errors import InputError
from cgforge.methods.gnn.prior import DEFAULT_EXPONENT, NetworkWithPrior, check_common
from cgforge.potentials.neural.base import register_model

__all__ = ["SchNet", "check_common", "cosine_cutoff", "shifted_softplus"]


def shifted_softplus(x: Tensor) -> Tensor:
    """ssp(x) = ln(½ eˣ + ½) = softplus(x) − ln 2 (zero at x = 0)."""
    return torch.nn.functional.softplus(x) - math.log(2.0)


def cosine_cutoff(r_nm: Tensor, cutoff_nm: float) -> Tensor:
    """½ [cos(π r / r_c) + 1] for r < r_c, else 0 (value and slope vanish at r_c)."""
    fc = 0.5 * (torch.cos(math.pi * r_nm / cutoff_nm) + 1.0)
    return torch.where(r_nm < cutoff_nm, fc, torch.zeros_like(fc))


class _Dense(torch.nn.Module):
    """Linear layer with an optional shifted-softplus activation."""

    def __init__(self, n_in: int, n_out: int, activation: bool, bias: bool = True) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(n_in, n_out, bias=bias)
        torch.nn.init.xavier_uniform_(self.linear.weight)
        if bias:
            torch.nn.init.zeros_(self.linear.bias)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)
        return shifted_softplus(y) if self.activation else y


class _Interaction(torch.nn.Module):
    """One SchNet interaction block (continuous-filter convolution and atom-wise update)."""

    def __init__(self, width: int, n_rbf: int) -> None:
        super().__init__()
        self.in2f = _Dense(width, width, activation=False, bias=False)
        self.filter = torch.nn.Sequential(
            _Dense(n_rbf, width, activation=True), _Dense(width, width, activation=False)
        )
        self.f2out = torch.nn.Sequential(
            _Dense(width, width, activation=True), _Dense(width, width, activation=False)
        )

    def forward(self, x: Tensor, src: Tensor, dst: Tensor, rbf: Tensor, fc: Tensor) -> Tensor:
        """``rbf`` (P, n_rbf) and ``fc`` (P,) of the half pair list; ``src``/``dst`` (2P,) run
        over both directions (the first P entries j → i, the next P i → j)."""
        w = self.filter(rbf) * fc[:, None]  # (P, width): the filter depends on r only, so it is
        # evaluated once per unordered pair and broadcast over both directions
        h = self.in2f(x).index_select(0, src)  # (2P, width)
        messages = (h.view(2, -1, h.shape[-1]) * w).view(-1, h.shape[-1])
        v = torch.zeros_like(x).index_add_(0, dst, messages)
        return x + self.f2out(v)


@register_model("schnet")
class SchNet(NetworkWithPrior):
    """SchNet for one bead type; see the module docstring for the functional form.

    Hyperparameters: ``cutoff_nm`` interaction range (nm); ``width`` feature width;
    ``n_interactions`` interaction blocks; ``n_rbf`` Gaussians; ``rbf_min_nm`` first Gaussian
    centre (nm); ``energy_scale_kj_mol`` scale of the network energy; ``prior_sigma_nm``,
    ``prior_epsilon_kj_mol``, ``prior_exponent`` the repulsive prior (``prior_sigma_nm=None``:
    no prior).
    """

    def __init__(
        self,
        cutoff_nm: float = 1.0,
        width: int = 64,
        n_interactions: int = 3,
        n_rbf: int = 32,
        rbf_min_nm: float = 0.0,
        energy_scale_kj_mol: float = 1.0,
        prior_sigma_nm: float | None = None,
        prior_epsilon_kj_mol: float | None = None,
        prior_exponent: float = DEFAULT_EXPONENT,
    ) -> None:
        check_common(cutoff_nm, width, n_interactions)
        if n_rbf < 2 or not 0.0 <= rbf_min_nm < cutoff_nm:
            raise InputError(
                f"need n_rbf >= 2 (got {n_rbf}) and 0 <= rbf_min_nm ({rbf_min_nm}) < cutoff"
            )
        super().__init__(
            cutoff_nm,
            {
                "width": int(width),
                "n_interactions": int(n_interactions),
                "n_rbf": int(n_rbf),
                "rbf_min_nm": float(rbf_min_nm),
            },
            energy_scale_kj_mol=energy_scale_kj_mol,
            prior_sigma_nm=prior_sigma_nm,
            prior_epsilon_kj_mol=prior_epsilon_kj_mol,
            prior_exponent=prior_exponent,
        )
        centres = torch.linspace(rbf_min_nm, cutoff_nm, n_rbf)
        self.register_buffer("rbf_centres", centres)
        self.rbf_coefficient = -0.5 / float(centres[1] - centres[0]) ** 2
        self.embedding = torch.nn.Parameter(torch.randn(width) / math.sqrt(width))
        self.interactions = torch.nn.ModuleList(
            _Interaction(width, n_rbf) for _ in range(n_interactions)
        )
        half = max(1, width // 2)
        self.readout = torch.nn.Sequential(
            _Dense(width, half, activation=True), _Dense(half, 1, activation=False)
        )

    def network_energies(
        self, n_beads: int, i: Tensor, j: Tensor, r_ij: Tensor, r_nm: Tensor
    ) -> Tensor:
        """Unscaled per-bead readout energies (n_beads,) from the half pair list (i < j)."""
        src = torch.cat([j, i])  # message from src ...
        dst = torch.cat([i, j])  # ... to dst, both directions
        rbf = torch.exp(self.rbf_coefficient * (r_nm[:, None] - self.rbf_centres) ** 2)
        fc = cosine_cutoff(r_nm, self.cutoff_nm)
        x = self.embedding.expand(n_beads, -1)
        for block in self.interactions:
            x = block(x, src, dst, rbf, fc)
        return self.readout(x).squeeze(-1)
