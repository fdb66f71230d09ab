"""A synthetic force-field database with a known ground truth, for the learning machinery.

**This is not physics data.** It stands in for the MD-made database of ``cgforge db generate``
where a test, a benchmark or a tutorial needs a database in seconds whose map from inputs to
potentials is known and learnable. Every record goes through the same
:class:`~cgforge.database.store.Database` API, grids and array names as real stage-A and stage-B
records (:mod:`cgforge.database.stages`), so the learners cannot tell the difference.

Ground truth of one stage-A record (``molecule = "synthetic-liquid"``):

* a parameter vector p ∈ [0, 1]⁶ (names :data:`PARAMETER_NAMES`), drawn uniformly;
* a Mie pair potential U(r) = C ε [(σ/r)ⁿ − (σ/r)⁶], C = n/(n−6) (n/6)^(6/(n−6)), with
  σ = 0.45 + 0.15 p₀ nm, ε = 1.0 + 0.75 p₁ kJ/mol, n = 10 + 4 p₂, cut at ``cutoff_nm`` (default
  1.0 nm) and tapered to U = F = 0 over the last 0.1 nm
  (:meth:`~cgforge.potentials.table.TabulatedPotential.smooth_cutoff`);
* the number density ρ = (0.55 + 0.2 p₃) / σ³ (with kT/ε ≥ 1.4 at 300 K every state point is a
  supercritical dense fluid, where the HNC closure has a solution);
* g(r) from the hypernetted-chain (HNC) closure of the Ornstein–Zernike equation for that U at
  ρ and T (:func:`hnc_rdf`; ``rdf_model="hnc"``, the default) or, where speed matters more
  than structure, its low-density limit g = exp(−βU) (``rdf_model="dilute"``), plus Gaussian
  noise of ``rdf_noise`` where g > 0.01 (the statistical noise of an MD histogram);
* the CG diffusion coefficient from an Enskog-like model,
  D_CG = 3 / (8 ρ σ²) · √(kT / (π m)) · exp(−2ε / kT) (nm²/ps; stored in m²/s; Enskog's
  dilute hard-sphere form with an Arrhenius factor for the attraction), which scales as m^−½
  at fixed potential, as Newtonian dynamics must;
* the all-atom diffusion coefficient D_AA = D_CG(m_mol) / A with the acceleration factor
  A = 1.2 + 1.5 p₄ + p₄ p₅ + 0.5 p₁ (a smooth, non-linear function of the parameters; its
  range overlaps that of D_CG, so that some records' D_AA equal others' D_CG).

A stage-B record is its parent's potential and g(r) (the structure of a classical liquid does not
depend on the bead mass) at a bead mass drawn from 20–200 amu, with D_CG from the same model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.fft import dst

from cgforge.database.stages import (
    POTENTIAL_GRID,
    RDF_GRID,
    database_grids,
    learning_grids,
)
from cgforge.database.store import Database
from cgforge.errors import InputError, SimulationError
from cgforge.grids import LearningGrids, resample_potential
from cgforge.potentials.table import TabulatedPotential
from cgforge.units import AMU_NM3_TO_G_CM3, NM2_PS_TO_M2_S, kT

__all__ = [
    "MOLECULE",
    "PARAMETER_NAMES",
    "SyntheticTruth",
    "build_synthetic_database",
    "hnc_rdf",
    "mie_table",
    "synthetic_diffusion_m2_s",
    "truth_from_parameters",
]

#: Molecule name of every synthetic record.
MOLECULE = "synthetic-liquid"
#: Names of the synthetic parameter vector (each in [0, 1]).
PARAMETER_NAMES = (
    "synthetic:sigma:u",
    "synthetic:epsilon:u",
    "synthetic:exponent:u",
    "synthetic:packing:u",
    "synthetic:friction_a:u",
    "synthetic:friction_b:u",
)
#: Molecular (stage-A) bead mass, amu (that of C6H14).
MOLECULAR_MASS_AMU = 86.18
#: Bead mass range of stage-B records, amu.
STAGE_B_MASS_AMU = (20.0, 200.0)
#: Width of the taper to zero at the cutoff, nm.
TAPER_NM = 0.1
#: βU above which the HNC solve treats the core as impenetrable (g = 0).
_BETA_U_CAP = 60.0


@dataclass(frozen=True)
class SyntheticTruth:
    """The ground truth behind one synthetic stage-A record (units: nm, kJ/mol, nm⁻³, K)."""

    parameters: NDArray[np.float64]
    sigma_nm: float
    epsilon_kj_mol: float
    exponent: float
    number_density_nm3: float
    acceleration_factor: float


def truth_from_parameters(p: NDArray[np.float64]) -> SyntheticTruth:
    """Map a parameter vector p ∈ [0, 1]⁶ to the Mie potential, density and acceleration."""
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (len(PARAMETER_NAMES),):
        raise InputError(f"synthetic parameters need {len(PARAMETER_NAMES)} entries, got {p.shape}")
    sigma = 0.45 + 0.15 * p[0]
    return SyntheticTruth(
        parameters=p,
        sigma_nm=float(sigma),
        epsilon_kj_mol=float(1.0 + 0.75 * p[1]),
        exponent=float(10.0 + 4.0 * p[2]),
        number_density_nm3=float((0.55 + 0.2 * p[3]) / sigma**3),
        acceleration_factor=float(1.2 + 1.5 * p[4] + p[4] * p[5] + 0.5 * p[1]),
    )


def _mie(
    r: NDArray[np.float64], sigma: float, epsilon: float, n: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mie energy (kJ/mol) and force −dU/dr (kJ/mol/nm) at r (nm)."""
    c = n / (n - 6.0) * (n / 6.0) ** (6.0 / (n - 6.0))
    sn, s6 = (sigma / r) ** n, (sigma / r) ** 6
    return c * epsilon * (sn - s6), c * epsilon * (n * sn - 6.0 * s6) / r


def mie_table(
    sigma_nm: float,
    epsilon_kj_mol: float,
    exponent: float,
    grids: LearningGrids,
    *,
    cutoff_nm: float = 1.0,
    start_energy_kj_mol: float = 200.0,
) -> TabulatedPotential:
    """The Mie potential tabulated on the potential grid's spacing, tapered to zero at the cutoff.

    The table starts at the first potential-grid point where U < ``start_energy_kj_mol`` (the
    grid below is the steep core, as in IBI tables that start where g(r) becomes non-zero).
    """
    r = grids.potential_r_nm
    step = float(r[1] - r[0])
    u, _ = _mie(r, sigma_nm, epsilon_kj_mol, exponent)
    first = int(np.argmax(u < start_energy_kj_mol))
    top = int(np.searchsorted(r, cutoff_nm + 1e-9))
    grid = r[first:top]
    if grid.size < 8 or abs(grid[-1] - cutoff_nm) > 1e-6 * step + 1e-9:
        raise InputError(
            f"cutoff {cutoff_nm} nm must be a point of the potential grid above the core"
        )
    table = TabulatedPotential.from_function(
        lambda x: _mie(x, sigma_nm, epsilon_kj_mol, exponent)[0],
        grid,
        force=lambda x: _mie(x, sigma_nm, epsilon_kj_mol, exponent)[1],
        cutoff_nm=cutoff_nm,
    )
    return table.smooth_cutoff(TAPER_NM)


def hnc_rdf(
    potential: TabulatedPotential,
    number_density_nm3: float,
    temperature_K: float,
    *,
    dr_nm: float = 0.005,
    n_points: int = 1024,
    mixing: float = 0.5,
    tolerance: float = 1e-5,
    max_iterations: int = 5000,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """g(r) of a one-component fluid from the Ornstein–Zernike equation with the HNC closure.

    Picard iteration on the indirect correlation γ = h − c:
    c = exp(−βU + γ) − 1 − γ, then Γ̂(k) = ρ ĉ² / (1 − ρ ĉ) by Fourier–Bessel (sine) transforms
    on r_i = i·dr (i = 1 … n−1), mixed with weight ``mixing``, converged to ``tolerance`` in γ
    at ρ/4, ρ/2, 3ρ/4 and ρ in turn (density continuation). βU is capped at 60 in the core.
    Returns ``(r_nm, g)``; raises :class:`SimulationError` if it does not converge (a state
    point beyond the HNC spinodal).
    """
    beta = 1.0 / kT(temperature_K)
    r = dr_nm * np.arange(1, n_points)
    dk = math.pi / (n_points * dr_nm)
    k = dk * np.arange(1, n_points)
    inside = r >= potential.r_min_nm
    beta_u = np.full_like(r, _BETA_U_CAP)
    beta_u[inside] = np.minimum(beta * np.asarray(potential.energy(r[inside])), _BETA_U_CAP)
    rho = float(number_density_nm3)

    def forward(f: NDArray[np.float64]) -> NDArray[np.float64]:
        return 2.0 * math.pi * dr_nm / k * dst(r * f, type=1)

    def inverse(f: NDArray[np.float64]) -> NDArray[np.float64]:
        return dk / (4.0 * math.pi**2 * r) * dst(k * f, type=1)

    gamma = np.zeros_like(r)
    for fraction in (0.25, 0.5, 0.75, 1.0):  # density continuation from a dilute start
        gamma = _picard(
            gamma, beta_u, fraction * rho, forward, inverse, mixing, tolerance, max_iterations
        )
        if gamma is None:
            raise SimulationError(
                f"HNC did not converge at ρ = {rho:.4g} nm⁻³, T = {temperature_K} K; choose a "
                "hotter or less dense state point"
            )
    return r, np.exp(-beta_u + gamma)


def _picard(
    gamma: NDArray[np.float64],
    beta_u: NDArray[np.float64],
    rho: float,
    forward: Any,
    inverse: Any,
    mixing: float,
    tolerance: float,
    max_iterations: int,
) -> NDArray[np.float64] | None:
    """Mixed Picard iteration of HNC at density ``rho``; None if it fails or ends unphysical
    (a structure factor 1/(1 − ρĉ) that is not positive)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(max_iterations):
            c = np.exp(-beta_u + gamma) - 1.0 - gamma
            c_hat = forward(c)
            rho_c = rho * c_hat
            new = inverse(rho_c * c_hat / (1.0 - rho_c))
            if not np.all(np.isfinite(new)):
                return None
            change = float(np.max(np.abs(new - gamma)))
            gamma = mixing * new + (1.0 - mixing) * gamma
            if change < tolerance:
                return gamma if float(np.max(rho_c)) < 1.0 else None
    return None


def synthetic_diffusion_m2_s(mass_amu: float, truth: SyntheticTruth, temperature_K: float) -> float:
    """Enskog-like model D = 3/(8ρσ²) √(kT/(πm)) exp(−2ε/kT), in m²/s (module docstring)."""
    thermal = kT(temperature_K)
    d_nm2_ps = (
        3.0
        / (8.0 * truth.number_density_nm3 * truth.sigma_nm**2)
        * math.sqrt(thermal / (math.pi * mass_amu))
        * math.exp(-2.0 * truth.epsilon_kj_mol / thermal)
    )
    return d_nm2_ps * NM2_PS_TO_M2_S


def _rdf_on_grid(
    r: NDArray[np.float64], g: NDArray[np.float64], grids: LearningGrids
) -> NDArray[np.float64]:
    return np.interp(grids.rdf_r_nm, r, g, left=0.0, right=1.0)


def build_synthetic_database(
    path: str | Path,
    *,
    n_a: int = 40,
    n_b_per_a: int = 1,
    seed: int = 0,
    temperature_K: float = 300.0,
    cutoff_nm: float = 1.0,
    rdf_noise: float = 0.005,
    rdf_model: str = "hnc",
    grids: LearningGrids | None = None,
) -> dict[str, Any]:
    """Write a synthetic database of ``n_a`` stage-A and ``n_a * n_b_per_a`` stage-B records.

    Returns ``{"path", "truths": {key: SyntheticTruth}, "n_a", "n_b"}``. Deterministic for a
    seed. See the module docstring for the ground truth.
    """
    if rdf_model not in ("hnc", "dilute"):
        raise InputError(f"rdf_model must be 'hnc' or 'dilute', got {rdf_model!r}")
    rng = np.random.default_rng(seed)
    target = Path(path)
    truths: dict[str, SyntheticTruth] = {}
    n_b = 0
    with Database.init(target, database_grids(grids)) as db:
        lg = learning_grids(db)
        for i in range(n_a):
            truth = truth_from_parameters(rng.uniform(0.0, 1.0, len(PARAMETER_NAMES)))
            table = mie_table(
                truth.sigma_nm, truth.epsilon_kj_mol, truth.exponent, lg, cutoff_nm=cutoff_nm
            )
            if rdf_model == "hnc":
                r, g = hnc_rdf(table, truth.number_density_nm3, temperature_K)
            else:
                r = np.linspace(table.r_min_nm, cutoff_nm, 400)
                g = np.exp(-np.asarray(table.energy(r)) / kT(temperature_K))
            g_grid = _rdf_on_grid(r, g, lg)
            u_grid = resample_potential(table, lg)
            d_cg = synthetic_diffusion_m2_s(MOLECULAR_MASS_AMU, truth, temperature_K)
            d_aa = d_cg / truth.acceleration_factor
            density = truth.number_density_nm3 * MOLECULAR_MASS_AMU * AMU_NM3_TO_G_CM3
            spec = {
                "stage": "A",
                "molecule": MOLECULE,
                "parent_key": None,
                "draw_seed": i,
                "synthetic_seed": seed,
                "temperature_K": temperature_K,
            }
            key = db.add_pending(spec)
            db.claim("A", worker="synthetic")

            def noisy(values: NDArray[np.float64]) -> NDArray[np.float64]:
                out = values + rng.normal(0.0, rdf_noise, values.shape) * (values > 0.01)
                return np.clip(out, 0.0, None)

            db.complete(
                key,
                {
                    "mass_amu": MOLECULAR_MASS_AMU,
                    "temperature_K": temperature_K,
                    "density_g_cm3": density,
                    "diffusion_aa_m2_s": d_aa,
                    "diffusion_cg_m2_s": d_cg,
                    "acceleration_factor": truth.acceleration_factor,
                    "rdf_deviation": 0.01,
                    "cutoff_nm": cutoff_nm,
                    "density_cg_g_cm3": density,
                },
                {
                    "parameters": (truth.parameters, "mixed", None),
                    "g_aa": (noisy(g_grid), "1", RDF_GRID),
                    "g_cg": (noisy(g_grid), "1", RDF_GRID),
                    "potential": (u_grid, "kJ/mol", POTENTIAL_GRID),
                },
                {"parameter_names": list(PARAMETER_NAMES), "synthetic": True},
            )
            truths[key] = truth
            for j in range(n_b_per_a):
                mass = float(rng.uniform(*STAGE_B_MASS_AMU))
                bkey = db.add_pending(
                    {
                        "stage": "B",
                        "molecule": MOLECULE,
                        "parent_key": key,
                        "mass_amu": mass,
                        "temperature_K": temperature_K,
                        "seed": j,
                    }
                )
                db.claim("B", worker="synthetic")
                db.complete(
                    bkey,
                    {
                        "mass_amu": mass,
                        "temperature_K": temperature_K,
                        "density_g_cm3": truth.number_density_nm3 * mass * AMU_NM3_TO_G_CM3,
                        "diffusion_cg_m2_s": synthetic_diffusion_m2_s(mass, truth, temperature_K),
                        "parent_mass_amu": MOLECULAR_MASS_AMU,
                        "cutoff_nm": cutoff_nm,
                    },
                    {
                        "g_cg": (noisy(g_grid), "1", RDF_GRID),
                        "potential": (u_grid, "kJ/mol", POTENTIAL_GRID),
                    },
                    {"parent_key": key, "synthetic": True},
                )
                n_b += 1
    return {"path": target, "truths": truths, "n_a": n_a, "n_b": n_b}
