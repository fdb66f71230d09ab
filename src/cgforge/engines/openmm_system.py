"""OpenMM systems for N copies of one OPLS-AA molecule, with exact geometric combining rules.

Atom order: all atoms of molecule 0, then all atoms of molecule 1, and so on, each molecule in
the atom order of its :class:`~cgforge.molecules.topology.MoleculeTopology`.

Every term sits in its own force group, and every force is named after its group:

============  =====  ==========================================================================
name          group  content
============  =====  ==========================================================================
bond          0      ``HarmonicBondForce`` (bonds not replaced by constraints)
angle         1      ``HarmonicAngleForce``
dihedral      2      ``PeriodicTorsionForce``, OPLS Fourier series of the proper dihedrals
improper      3      ``PeriodicTorsionForce``, aromatic impropers
nonbonded     4      ``NonbondedForce``: Coulomb (PME or no cutoff) and the 1-4 pairs
                     (Coulomb and LJ ×0.5, geometric σ, ε); LJ of all other pairs as set
                     by ``combining`` (see below)
lj            5      ``CustomNonbondedForce``: the rest of the Lennard-Jones energy
============  =====  ==========================================================================

1-2 and 1-3 pairs are excluded. Non-excluded pairs (intermolecular, and intramolecular beyond
1-4) interact through Lennard-Jones with geometric combining rules, σ_ij = √(σ_i σ_j) and
ε_ij = √(ε_i ε_j), computed exactly by every ``combining`` mode:

* ``"correction"`` (default, the fastest on the CPU platform, see
  ``benchmarks/combining_rule.py``): the ``NonbondedForce`` carries the LJ parameters and
  computes Lorentz–Berthelot LJ (σ_ij = (σ_i + σ_j)/2, ε_ij geometric), which is exact for
  pairs of equal σ. The ``lj`` force adds ΔC12/r¹² − ΔC6/r⁶, tabulated per pair of LJ types,
  only for pairs of atoms with different σ (interaction groups), with the same cutoff,
  exclusions and long-range correction.
* ``"correction_all"``: the same correction evaluated over all pairs (it is zero for equal σ).
* ``"custom"``: the ``NonbondedForce`` has ε = 0 (Coulomb and 1-4 pairs only); the ``lj`` force
  evaluates 4ε((σ/r)¹² − (σ/r)⁶) with σ = √(σ1σ2), ε = √(ε1ε2) over all pairs. The plain
  formulation, kept for cross-checks.
* ``"custom_c6c12"``: as ``"custom"`` with per-atom √C12 and √C6, E = (a1a2/r⁶ − b1b2)/r⁶.

With PME, Lennard-Jones is truncated (not shifted) at the cutoff, and the long-range
dispersion correction of both forces is on unless ``dispersion_correction=False``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import openmm
from openmm import app, unit

from cgforge.errors import InputError
from cgforge.molecules.library import residue_name
from cgforge.molecules.topology import FourierParameter, MoleculeTopology

FORCE_GROUPS: Mapping[str, int] = MappingProxyType(
    {"bond": 0, "angle": 1, "dihedral": 2, "improper": 3, "nonbonded": 4, "lj": 5}
)
COMBINING_MODES = ("correction", "correction_all", "custom", "custom_c6c12")
DEFAULT_COMBINING = "correction"
NONBONDED_METHODS = ("pme", "nocutoff")
CONSTRAINT_MODES = ("hbonds", "none")
SCALE_14 = 0.5  # OPLS-AA fudgeQQ = fudgeLJ = 0.5


# ------------------------------------------------------------------------------ helpers
def _check_box(box_nm: Sequence[float] | None, cutoff_nm: float, method: str) -> np.ndarray | None:
    if box_nm is None:
        if method == "pme":
            raise InputError("a periodic system (nonbonded_method='pme') needs box_nm=(a, b, c)")
        return None
    box = np.asarray(box_nm, dtype=float).reshape(-1)
    if box.shape != (3,) or not np.all(np.isfinite(box)) or np.any(box <= 0):
        raise InputError(f"box_nm must be three positive box lengths in nm, got {box_nm!r}")
    if method == "pme" and cutoff_nm > 0.5 * box.min():
        raise InputError(
            f"cutoff {cutoff_nm} nm exceeds half the shortest box edge ({box.min():.3f} nm); "
            "use a bigger box or a shorter cutoff"
        )
    return box


def _torsion_terms(p: FourierParameter) -> list[tuple[int, float, float]]:
    """(periodicity, phase rad, k kJ/mol) terms of ½V1(1+cos φ) + ½V2(1−cos 2φ) + …"""
    terms = []
    for n, v in enumerate(p.as_tuple(), start=1):
        if v != 0.0:
            phase = 0.0 if n % 2 == 1 else math.pi
            terms.append((n, phase, 0.5 * v))
    return terms


def _lj_types(molecule: MoleculeTopology) -> tuple[list[tuple[float, float]], list[int]]:
    """Unique (σ nm, ε kJ/mol) pairs of the molecule and each atom's index into them."""
    types: list[tuple[float, float]] = []
    index = []
    for atom in molecule.atoms:
        key = (atom.sigma_nm, atom.epsilon_kj_mol)
        if key not in types:
            types.append(key)
        index.append(types.index(key))
    return types, index


def _name(force: openmm.Force, name: str) -> openmm.Force:
    force.setName(name)
    force.setForceGroup(FORCE_GROUPS[name])
    return force


# ------------------------------------------------------------------------------ system
def create_aa_system(
    molecule: MoleculeTopology,
    n_molecules: int,
    box_nm: Sequence[float] | None = None,
    *,
    cutoff_nm: float = 1.0,
    dispersion_correction: bool = True,
    constraints: str = "hbonds",
    ewald_tolerance: float = 5.0e-4,
    nonbonded_method: str = "pme",
    combining: str = DEFAULT_COMBINING,
) -> openmm.System:
    """An OpenMM system of ``n_molecules`` copies of an OPLS-AA molecule.

    Parameters
    ----------
    molecule
        The typed molecule; its ``parameters`` give the bonded terms.
    n_molecules
        Number of copies; atoms are ordered molecule by molecule.
    box_nm
        Rectangular box edges (a, b, c) in nm; required for ``"pme"``, optional for
        ``"nocutoff"`` (then only stored as the default box).
    cutoff_nm
        Real-space cutoff (nm) of Coulomb (PME) and Lennard-Jones.
    dispersion_correction
        Add the analytic long-range Lennard-Jones correction (PME only).
    constraints
        ``"hbonds"`` constrains every bond to hydrogen at its ``r0`` (and drops its harmonic
        term), ``"none"`` keeps all bonds flexible.
    ewald_tolerance
        PME error tolerance.
    nonbonded_method
        ``"pme"`` (periodic) or ``"nocutoff"`` (vacuum, all pairs).
    combining
        How the exact geometric combining rule is evaluated; see the module docstring.
    """
    method = nonbonded_method.lower() if isinstance(nonbonded_method, str) else nonbonded_method
    if method not in NONBONDED_METHODS:
        raise InputError(
            f"unknown nonbonded_method {nonbonded_method!r}; use one of {NONBONDED_METHODS}"
        )
    if constraints not in CONSTRAINT_MODES:
        raise InputError(f"unknown constraints {constraints!r}; use one of {CONSTRAINT_MODES}")
    if combining not in COMBINING_MODES:
        raise InputError(f"unknown combining {combining!r}; use one of {COMBINING_MODES}")
    if not isinstance(n_molecules, int | np.integer) or n_molecules < 1:
        raise InputError(f"n_molecules must be a positive integer, got {n_molecules!r}")
    if not cutoff_nm > 0:
        raise InputError(f"cutoff_nm must be positive, got {cutoff_nm}")
    if not 0 < ewald_tolerance < 1:
        raise InputError(f"ewald_tolerance must lie in (0, 1), got {ewald_tolerance}")
    box = _check_box(box_nm, cutoff_nm, method)
    molecule.check_parameters(molecule.parameters)
    n_molecules = int(n_molecules)
    n_atoms = molecule.n_atoms

    system = openmm.System()
    for _ in range(n_molecules):
        for atom in molecule.atoms:
            system.addParticle(atom.mass_amu)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(
            openmm.Vec3(box[0], 0, 0), openmm.Vec3(0, box[1], 0), openmm.Vec3(0, 0, box[2])
        )

    # ---- bonds and constraints
    hydrogen = [a.element == "H" for a in molecule.atoms]
    bond_force = _name(openmm.HarmonicBondForce(), "bond")
    for bond in molecule.bonds:
        p = molecule.bond_parameter(bond)
        constrained = constraints == "hbonds" and (hydrogen[bond[0]] or hydrogen[bond[1]])
        for m in range(n_molecules):
            i, j = (k + m * n_atoms for k in bond)
            if constrained:
                system.addConstraint(i, j, p.length_nm)
            else:
                bond_force.addBond(i, j, p.length_nm, p.k_kj_mol_nm2)
    system.addForce(bond_force)

    # ---- angles
    angle_force = _name(openmm.HarmonicAngleForce(), "angle")
    for angle in molecule.angles:
        p = molecule.angle_parameter(angle)
        for m in range(n_molecules):
            i, j, k = (a + m * n_atoms for a in angle)
            angle_force.addAngle(i, j, k, p.theta0_rad, p.k_kj_mol_rad2)
    system.addForce(angle_force)

    # ---- proper dihedrals and impropers (OPLS Fourier series)
    for name, quads, lookup in (
        ("dihedral", molecule.dihedrals, molecule.dihedral_parameter),
        ("improper", molecule.impropers, molecule.improper_parameter),
    ):
        torsion_force = _name(openmm.PeriodicTorsionForce(), name)
        for quad in quads:
            terms = _torsion_terms(lookup(quad))
            for m in range(n_molecules):
                i, j, k, l = (a + m * n_atoms for a in quad)  # noqa: E741
                for periodicity, phase, k_torsion in terms:
                    torsion_force.addTorsion(i, j, k, l, periodicity, phase, k_torsion)
        system.addForce(torsion_force)

    # ---- nonbonded
    _add_nonbonded(
        system,
        molecule,
        n_molecules,
        method=method,
        cutoff_nm=cutoff_nm,
        dispersion_correction=dispersion_correction and method == "pme",
        ewald_tolerance=ewald_tolerance,
        combining=combining,
    )
    return system


def _add_nonbonded(
    system: openmm.System,
    molecule: MoleculeTopology,
    n_molecules: int,
    *,
    method: str,
    cutoff_nm: float,
    dispersion_correction: bool,
    ewald_tolerance: float,
    combining: str,
) -> None:
    n_atoms = molecule.n_atoms
    atoms = molecule.atoms
    lj_in_nonbonded = combining.startswith("correction")

    nonbonded = _name(openmm.NonbondedForce(), "nonbonded")
    if method == "pme":
        nonbonded.setNonbondedMethod(openmm.NonbondedForce.PME)
        nonbonded.setCutoffDistance(cutoff_nm)
        nonbonded.setEwaldErrorTolerance(ewald_tolerance)
    else:
        nonbonded.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    nonbonded.setUseDispersionCorrection(dispersion_correction and lj_in_nonbonded)
    nonbonded.setUseSwitchingFunction(False)
    for _ in range(n_molecules):
        for atom in atoms:
            epsilon = atom.epsilon_kj_mol if lj_in_nonbonded else 0.0
            nonbonded.addParticle(atom.charge_e, atom.sigma_nm, epsilon)

    excluded = molecule.excluded_pairs()
    pairs_14 = molecule.pairs_14()
    for m in range(n_molecules):
        offset = m * n_atoms
        for i, j in excluded:
            nonbonded.addException(i + offset, j + offset, 0.0, 1.0, 0.0)
        for i, j in pairs_14:
            a, b = atoms[i], atoms[j]
            nonbonded.addException(
                i + offset,
                j + offset,
                SCALE_14 * a.charge_e * b.charge_e,
                math.sqrt(a.sigma_nm * b.sigma_nm),
                SCALE_14 * math.sqrt(a.epsilon_kj_mol * b.epsilon_kj_mol),
            )
    system.addForce(nonbonded)

    lj = _lj_force(molecule, combining)
    lj.setName("lj")
    lj.setForceGroup(FORCE_GROUPS["lj"])
    if method == "pme":
        lj.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        lj.setCutoffDistance(cutoff_nm)
    else:
        lj.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    lj.setUseSwitchingFunction(False)
    lj.setUseLongRangeCorrection(dispersion_correction)
    for m in range(n_molecules):
        offset = m * n_atoms
        for i, j in (*excluded, *pairs_14):
            lj.addExclusion(i + offset, j + offset)
    _add_lj_particles(lj, molecule, n_molecules, combining)
    system.addForce(lj)


def _lj_force(molecule: MoleculeTopology, combining: str) -> openmm.CustomNonbondedForce:
    if combining == "custom":
        force = openmm.CustomNonbondedForce(
            "4*epsilon*(sr6*sr6 - sr6); sr6 = (sigma/r)^6; "
            "sigma = sqrt(sigma1*sigma2); epsilon = sqrt(epsilon1*epsilon2)"
        )
        force.addPerParticleParameter("sigma")
        force.addPerParticleParameter("epsilon")
        return force
    if combining == "custom_c6c12":
        force = openmm.CustomNonbondedForce("(a1*a2*ir6 - b1*b2)*ir6; ir6 = 1/r^6")
        force.addPerParticleParameter("a")  # √C12 = 2√ε σ⁶
        force.addPerParticleParameter("b")  # √C6 = 2√ε σ³
        return force
    # correction modes: ΔC12/r¹² − ΔC6/r⁶ tabulated per pair of LJ types
    types, _ = _lj_types(molecule)
    n = len(types)
    d12 = np.zeros((n, n))
    d6 = np.zeros((n, n))
    for p, (sp, ep) in enumerate(types):
        for q, (sq, eq) in enumerate(types):
            epsilon = math.sqrt(ep * eq)
            s_geo, s_ari = math.sqrt(sp * sq), 0.5 * (sp + sq)
            d12[p, q] = 4.0 * epsilon * (s_geo**12 - s_ari**12)
            d6[p, q] = 4.0 * epsilon * (s_geo**6 - s_ari**6)
    force = openmm.CustomNonbondedForce(
        "(dc12(t1, t2)*ir6 - dc6(t1, t2))*ir6; ir6 = 1/r^6"
    )
    # Discrete2DFunction values are indexed x + n*y; the tables are symmetric
    force.addTabulatedFunction("dc12", openmm.Discrete2DFunction(n, n, d12.T.ravel().tolist()))
    force.addTabulatedFunction("dc6", openmm.Discrete2DFunction(n, n, d6.T.ravel().tolist()))
    force.addPerParticleParameter("t")
    return force


def _add_lj_particles(
    force: openmm.CustomNonbondedForce, molecule: MoleculeTopology, n_molecules: int, combining: str
) -> None:
    n_atoms = molecule.n_atoms
    if combining == "custom":
        params = [(a.sigma_nm, a.epsilon_kj_mol) for a in molecule.atoms]
    elif combining == "custom_c6c12":
        params = [
            (2.0 * math.sqrt(a.epsilon_kj_mol) * a.sigma_nm**6,
             2.0 * math.sqrt(a.epsilon_kj_mol) * a.sigma_nm**3)
            for a in molecule.atoms
        ]
    else:
        _, index = _lj_types(molecule)
        params = [(float(t),) for t in index]
    for _ in range(n_molecules):
        for p in params:
            force.addParticle(list(p))
    if combining != "correction":
        return
    # interaction groups: each σ value against all larger-index σ values, so that every pair
    # of atoms with different σ is counted exactly once and equal-σ pairs are skipped
    sigmas = sorted({a.sigma_nm for a in molecule.atoms})
    by_sigma = {s: [] for s in sigmas}
    for m in range(n_molecules):
        for i, atom in enumerate(molecule.atoms):
            by_sigma[atom.sigma_nm].append(i + m * n_atoms)
    for k, s in enumerate(sigmas[:-1]):
        others = [i for t in sigmas[k + 1 :] for i in by_sigma[t]]
        force.addInteractionGroup(by_sigma[s], others)
    if len(sigmas) == 1:
        # nothing to correct; an empty group keeps the force valid and costs nothing
        force.addInteractionGroup([], [])


# ------------------------------------------------------------------------------ topology
def openmm_topology(
    molecule: MoleculeTopology, n_molecules: int, box_nm: Sequence[float] | None = None
) -> app.Topology:
    """OpenMM topology: one chain, one residue per molecule, atom names, elements, bonds.

    The residue name is the built-in molecule's (≤ 4 characters) or ``"MOL"``.
    """
    if not isinstance(n_molecules, int | np.integer) or n_molecules < 1:
        raise InputError(f"n_molecules must be a positive integer, got {n_molecules!r}")
    topology = app.Topology()
    chain = topology.addChain()
    resname = residue_name(molecule.name)
    elements = [app.element.Element.getBySymbol(a.element) for a in molecule.atoms]
    for _ in range(int(n_molecules)):
        residue = topology.addResidue(resname, chain)
        added = [
            topology.addAtom(a.name, e, residue)
            for a, e in zip(molecule.atoms, elements, strict=True)
        ]
        for i, j in molecule.bonds:
            topology.addBond(added[i], added[j])
    if box_nm is not None:
        box = _check_box(box_nm, 0.0, "nocutoff")
        topology.setPeriodicBoxVectors(
            (openmm.Vec3(box[0], 0, 0), openmm.Vec3(0, box[1], 0), openmm.Vec3(0, 0, box[2]))
            * unit.nanometer
        )
    return topology


def group_energies(context: openmm.Context) -> dict[str, float]:
    """Potential energy (kJ/mol) of each force group present in the context's system."""
    present = {f.getForceGroup() for f in context.getSystem().getForces()}
    energies = {}
    for name, group in FORCE_GROUPS.items():
        if group in present:
            state = context.getState(getEnergy=True, groups={group})
            energies[name] = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    return energies
