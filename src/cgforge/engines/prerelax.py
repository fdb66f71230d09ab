"""Vacuum pre-relaxation of one molecule and the liquid density its relaxed shape suggests.

A molecule whose bonded parameters were drawn at random (:mod:`cgforge.molecules.randomize`)
still carries the conformer of its OPLS-AA parameters: with C–C r0 of 2.5 Å or θ0 of 70° that
geometry is far from any minimum of the new force field, and a liquid packed from it at the
OPLS-AA reference density starts with huge bonded forces (minimisation leaves angle energies of
~10⁴–10⁵ kJ/mol, the first NPT steps blow the box up). :func:`prerelax_molecule` therefore
relaxes one molecule alone, in vacuum, with its own parameters — energy minimisation, a short
Langevin MD at the target temperature (to leave the strained basin the minimiser ends in) and
a final minimisation — on OpenMM's Reference platform (one molecule, all pairs, H-bonds
constrained as in the liquid), and estimates the liquid density of the relaxed molecule.

This is an engine-layer module: it runs OpenMM on the all-atom system of
:func:`cgforge.engines.openmm_system.create_aa_system` (it used to live in
:mod:`cgforge.molecules`, whose modules are molecule data and import no engine).

Density estimator
    ρ_est = ρ_ref · V_ref / V_relaxed, with V the volume of the convex hull of the molecule's
    atomic spheres, of radius 2^(1/6) σ_i / 2 (half the Lennard-Jones contact distance of two
    like atoms, σ from the molecule's own OPLS-AA atom types; :func:`hull_volume_nm3`). V_ref
    is the volume of the unperturbed (OPLS-AA) molecule minimised the same way, ρ_ref its
    experimental density.

    Why this estimator: the randomisation keeps the nonbonded parameters and changes only
    bond lengths and angles. Shrunk bonds bury atoms in each other, and the molecule takes
    less room; stretched bonds (C–C up to 2.5 Å against a carbon diameter of about 3.9 Å)
    open gaps between the atoms too narrow for an atom of a neighbour, and that empty space
    belongs to the molecule. The van der Waals volume (union of the spheres,
    :func:`vdw_volume_nm3`) follows the first effect but not the second; the radius of
    gyration cubed follows the second but overshoots the first (bonds of 1.0 Å would give
    ρ ≈ 3.5 ρ_ref, denser than the atoms allow) and moves with every rotamer. The hull
    follows both and barely depends on the conformer (the unperturbed molecule's estimate is
    within 1.5 % of ρ_ref). Measured on stretched draws of the seeds' full ranges
    (``benchmarks/stage_a_acceptance.py``, 64 molecules, GROMACS NPT): reference-to-final
    density ratios 2.3–2.7 against hull ratios 1.9–2.0, van der Waals ratios 1.5–1.6 and
    Rg³ ratios 2.8–3.3. The estimate only chooses where NPT starts, and a start below the
    final density (the hull errs that way) packs fast and compacts smoothly; the barostat
    finds the actual density.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cgforge.errors import InputError, SimulationError
from cgforge.molecules.topology import MoleculeTopology

__all__ = [
    "GRID_SPACING_NM",
    "PrerelaxResult",
    "estimate_density",
    "hull_volume_nm3",
    "prerelax_molecule",
    "vdw_volume_nm3",
]

#: Grid spacing of the van der Waals volume (nm): 0.01 nm keeps its error near 0.5 %.
GRID_SPACING_NM = 0.01
#: Radius factor: an atom's sphere has radius 2^(1/6) σ / 2, half the LJ minimum distance.
RADIUS_PER_SIGMA = 2.0 ** (1.0 / 6.0) / 2.0
#: Largest potential energy per atom (kJ/mol) accepted after the final minimisation.
MAX_RELAXED_ENERGY_PER_ATOM = 1.0e3


def vdw_volume_nm3(molecule: MoleculeTopology, spacing_nm: float = GRID_SPACING_NM) -> float:
    """Van der Waals volume (nm³) of ``molecule``'s conformer: the union of spheres of radius
    2^(1/6) σ_i / 2 around its atoms, counted on a grid of ``spacing_nm``."""
    if not spacing_nm > 0:
        raise InputError(f"grid spacing must be positive (nm), got {spacing_nm!r}")
    xyz = np.asarray(molecule.positions_nm, dtype=float)
    radii = RADIUS_PER_SIGMA * np.array([a.sigma_nm for a in molecule.atoms], dtype=float)
    if not (np.all(np.isfinite(xyz)) and np.all(radii > 0)):
        raise InputError(f"molecule {molecule.name}: non-finite positions or non-positive σ")
    lo = xyz.min(axis=0) - radii.max() - spacing_nm
    hi = xyz.max(axis=0) + radii.max() + spacing_nm
    shape = np.ceil((hi - lo) / spacing_nm).astype(int) + 1
    inside = np.zeros(tuple(shape), dtype=bool)
    axes = [lo[d] + spacing_nm * np.arange(shape[d]) for d in range(3)]
    for centre, radius in zip(xyz, radii, strict=True):
        sl = []
        for d in range(3):
            a = max(0, math.floor((centre[d] - radius - lo[d]) / spacing_nm))
            b = min(int(shape[d]), math.ceil((centre[d] + radius - lo[d]) / spacing_nm) + 1)
            sl.append(slice(a, b))
        dx, dy, dz = (axes[d][sl[d]] - centre[d] for d in range(3))
        r2 = dx[:, None, None] ** 2 + dy[None, :, None] ** 2 + dz[None, None, :] ** 2
        inside[sl[0], sl[1], sl[2]] |= r2 <= radius * radius
    return float(inside.sum()) * spacing_nm**3


def _sphere_directions(n: int = 256) -> np.ndarray:
    """``n`` unit vectors spread evenly over the sphere (Fibonacci lattice)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = math.pi * (1.0 + math.sqrt(5.0)) * k
    rho = np.sqrt(1.0 - z * z)
    return np.column_stack([rho * np.cos(phi), rho * np.sin(phi), z])


def hull_volume_nm3(molecule: MoleculeTopology) -> float:
    """Volume (nm³) of the convex hull of ``molecule``'s atomic spheres (radius
    2^(1/6) σ_i / 2), each sphere represented by 256 evenly spread surface points."""
    from scipy.spatial import ConvexHull

    xyz = np.asarray(molecule.positions_nm, dtype=float)
    radii = RADIUS_PER_SIGMA * np.array([a.sigma_nm for a in molecule.atoms], dtype=float)
    if not (np.all(np.isfinite(xyz)) and np.all(radii > 0)):
        raise InputError(f"molecule {molecule.name}: non-finite positions or non-positive σ")
    points = xyz[:, None, :] + radii[:, None, None] * _sphere_directions()[None]
    return float(ConvexHull(points.reshape(-1, 3)).volume)


@dataclass(frozen=True)
class PrerelaxResult:
    """A relaxed molecule and what its relaxation found; energies in kJ/mol, volumes in nm³."""

    molecule: MoleculeTopology  # the same molecule with the relaxed conformer
    energy_start_kj_mol: float  # its own force field at the starting conformer
    energy_minimized_kj_mol: float  # after the first minimisation
    energy_relaxed_kj_mol: float  # after MD and the final minimisation
    volume_start_nm3: float  # hull volume of the starting conformer
    volume_relaxed_nm3: float  # hull volume of the relaxed conformer
    md_ps: float

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for a run summary (the molecule left out)."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "molecule"
        }


def _vacuum_context(molecule: MoleculeTopology, temperature_K: float, seed: int) -> Any:
    import openmm
    from openmm import unit

    from cgforge.engines.openmm_system import create_aa_system

    system = create_aa_system(molecule, 1, None, nonbonded_method="nocutoff")
    integrator = openmm.LangevinMiddleIntegrator(
        temperature_K * unit.kelvin, 5.0 / unit.picosecond, 1.0 * unit.femtosecond
    )
    integrator.setRandomNumberSeed(int(seed) % 2**31 + 1)
    integrator.setConstraintTolerance(1e-6)
    platform = openmm.Platform.getPlatformByName("Reference")
    context = openmm.Context(system, integrator, platform)
    context.setPositions(np.asarray(molecule.positions_nm) * unit.nanometer)
    context.applyConstraints(1e-6)
    return context


def _energy(context: Any) -> float:
    from openmm import unit

    state = context.getState(getEnergy=True)
    return float(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))


def _positions(context: Any) -> np.ndarray:
    from openmm import unit

    state = context.getState(getPositions=True)
    return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def _minimize(context: Any) -> None:
    import openmm

    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 5000)


def _minimized(molecule: MoleculeTopology, temperature_K: float, seed: int) -> MoleculeTopology:
    context = _vacuum_context(molecule, temperature_K, seed)
    _minimize(context)
    return dataclasses.replace(molecule, positions_nm=_positions(context))


def prerelax_molecule(
    molecule: MoleculeTopology,
    *,
    temperature_K: float = 298.15,
    md_ps: float = 5.0,
    seed: int = 0,
) -> PrerelaxResult:
    """Relax one ``molecule`` in vacuum with its own bonded parameters: minimise, run
    ``md_ps`` of Langevin MD at ``temperature_K`` (1 fs steps, 5/ps friction, ``seed``),
    minimise again. Bonds to hydrogen are constrained at their r0, as in the liquid.

    Raises :class:`SimulationError` when the relaxed energy is not finite or above
    :data:`MAX_RELAXED_ENERGY_PER_ATOM` per atom (a force field without a stable molecule).
    """
    import openmm

    if not (math.isfinite(md_ps) and md_ps >= 0):
        raise InputError(f"pre-relaxation MD length must be >= 0 ps, got {md_ps!r}")
    if not (math.isfinite(temperature_K) and temperature_K > 0):
        raise InputError(f"temperature must be positive (K), got {temperature_K!r}")
    context = _vacuum_context(molecule, temperature_K, seed)
    start = _energy(context)
    try:
        _minimize(context)
        minimized = _energy(context)
        context.setVelocitiesToTemperature(temperature_K, int(seed) % 2**31 + 1)
        steps = round(md_ps / 1.0e-3)
        for done in range(0, steps, 500):
            context.getIntegrator().step(min(500, steps - done))
            if not math.isfinite(_energy(context)):
                break
        _minimize(context)
    except openmm.OpenMMException as exc:
        raise SimulationError(
            f"vacuum pre-relaxation of {molecule.name} failed ({exc}); narrow the parameter ranges"
        ) from exc
    relaxed_energy = _energy(context)
    positions = _positions(context)
    limit = MAX_RELAXED_ENERGY_PER_ATOM * molecule.n_atoms
    if not (math.isfinite(relaxed_energy) and np.all(np.isfinite(positions))):
        raise SimulationError(
            f"vacuum pre-relaxation of {molecule.name} gave a non-finite energy; its bonded "
            "parameters hold no stable molecule: narrow the parameter ranges"
        )
    if relaxed_energy > limit:
        raise SimulationError(
            f"vacuum pre-relaxation of {molecule.name} ends at {relaxed_energy:.3g} kJ/mol "
            f"(above {limit:.3g}); its bonded parameters hold no stable molecule: narrow the "
            "parameter ranges"
        )
    relaxed = dataclasses.replace(molecule, positions_nm=positions)
    return PrerelaxResult(
        molecule=relaxed,
        energy_start_kj_mol=start,
        energy_minimized_kj_mol=minimized,
        energy_relaxed_kj_mol=relaxed_energy,
        volume_start_nm3=hull_volume_nm3(molecule),
        volume_relaxed_nm3=hull_volume_nm3(relaxed),
        md_ps=float(md_ps),
    )


def estimate_density(
    relaxed: MoleculeTopology,
    reference: MoleculeTopology,
    reference_density_g_cm3: float,
    *,
    seed: int = 0,
) -> tuple[float, dict[str, float]]:
    """Liquid density (g/cm³) of ``relaxed`` estimated as ``reference_density_g_cm3`` ×
    V_ref / V_relaxed (see the module docstring); ``reference`` is the unperturbed molecule
    (same atoms), minimised here with its own parameters before its volume is taken.

    Returns the estimate and ``{"volume_reference_nm3", "volume_relaxed_nm3"`` (hull volumes),
    ``"vdw_volume_reference_nm3", "vdw_volume_relaxed_nm3", "density_reference_g_cm3",
    "density_estimate_g_cm3"}``.
    """
    if not (math.isfinite(reference_density_g_cm3) and reference_density_g_cm3 > 0):
        raise InputError(
            f"reference density must be positive (g/cm3), got {reference_density_g_cm3!r}"
        )
    if [a.name for a in relaxed.atoms] != [a.name for a in reference.atoms]:
        raise InputError(
            f"the reference molecule {reference.name} does not have the atoms of {relaxed.name}"
        )
    minimized = _minimized(reference, 298.15, seed)
    v_ref = hull_volume_nm3(minimized)
    v_relaxed = hull_volume_nm3(relaxed)
    density = reference_density_g_cm3 * v_ref / v_relaxed
    return density, {
        "volume_reference_nm3": v_ref,
        "volume_relaxed_nm3": v_relaxed,
        "vdw_volume_reference_nm3": vdw_volume_nm3(minimized),
        "vdw_volume_relaxed_nm3": vdw_volume_nm3(relaxed),
        "density_reference_g_cm3": float(reference_density_g_cm3),
        "density_estimate_g_cm3": density,
    }
