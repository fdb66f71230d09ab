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
                     (Coulomb and LJ ×0.5, geometric σ, ε); part or none of the LJ of the
                     other pairs, depending on ``combining`` (see below)
lj            5      the rest of the Lennard-Jones energy: one or two more
                     ``NonbondedForce`` objects (``"lb_sum"``) or a ``CustomNonbondedForce``
============  =====  ==========================================================================

No ``CMMotionRemover``, barostat or thermostat is added; that is the MD runner's business.

1-2 and 1-3 pairs are excluded. Non-excluded pairs (intermolecular, and intramolecular beyond
1-4) interact through Lennard-Jones with geometric combining rules, σ_ij = √(σ_i σ_j) and
ε_ij = √(ε_i ε_j), computed exactly by every ``combining`` mode:

* ``"lb_sum"`` (default, the fastest on the CPU platform, see ``benchmarks/combining_rule.py``):
  OpenMM's ``NonbondedForce`` is fast but mixes σ arithmetically (Lorentz–Berthelot). A sum of
  Lennard-Jones terms is again of the form C12/r¹² − C6/r⁶ with summed coefficients, so M
  ``NonbondedForce`` objects with suitably chosen per-type (σ, ε) reproduce the geometric C12
  and C6 of every pair of LJ types exactly: Σ_m 4 ε_m,ij σ_m,ij^n = 4 ε_ij σ_ij^n for n = 6, 12,
  with LB mixing inside each force. The per-type parameters solve this small polynomial system
  (:func:`geometric_lj_decomposition`, k LJ types need M ≥ (k + 1)/2 forces: 2 for alkanes,
  3 for alkylbenzenes) to a relative residual below 1e-13, i.e. to double precision. The first
  force also carries the charges (PME) and the 1-4 pairs; the others (group ``lj``) carry only
  LJ with the same cutoff, exclusions and dispersion correction, which is linear in C6 and C12
  and therefore also exact. The split between the groups ``nonbonded`` and ``lj`` has no
  physical meaning in this mode; their sum is the nonbonded energy. If no decomposition is
  found the mode falls back to ``"correction"`` with a warning.
* ``"correction"``: the ``NonbondedForce`` carries the OPLS LJ parameters (LB mixing, exact for
  pairs of equal σ); a ``CustomNonbondedForce`` (group ``lj``) adds ΔC12/r¹² − ΔC6/r⁶,
  tabulated per pair of LJ types, only for pairs of atoms with different σ (interaction
  groups), with the same cutoff, exclusions and long-range correction.
* ``"custom"``: the ``NonbondedForce`` has ε = 0 (Coulomb and 1-4 pairs only); a
  ``CustomNonbondedForce`` evaluates 4ε((σ/r)¹² − (σ/r)⁶) with σ = √(σ1σ2), ε = √(ε1ε2) over all
  pairs. The plain formulation, kept for cross-checks.
* ``"custom_c6c12"``: as ``"custom"`` with per-atom √C12 and √C6, E = (a1a2/r⁶ − b1b2)/r⁶.

With PME, Lennard-Jones is truncated (not shifted) at the cutoff, and the long-range
dispersion correction of both forces is on unless ``dispersion_correction=False``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
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
COMBINING_MODES = ("lb_sum", "correction", "custom", "custom_c6c12")
DEFAULT_COMBINING = "lb_sum"
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


# ------------------------------------------------------------------------------ LJ decomposition
_DECOMPOSITION_TOL = 1.0e-13
_DECOMPOSITION_STARTS = 400
_DECOMPOSITION_SEED = 20240601


def _decomposition_residual(
    sigma: np.ndarray, epsilon: np.ndarray, m: int
) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Residuals and Jacobian of Σ_m (LB LJ of force m) = geometric LJ, per pair of types.

    Unknowns x = (log σ_mp, log √ε_mp); residual rows are C_n,sum/C_n,geo − 1 for n = 12, 6.
    """
    k = len(sigma)
    p_idx, q_idx = np.triu_indices(k)
    s_geo = np.sqrt(sigma[p_idx] * sigma[q_idx])
    e_geo = np.sqrt(epsilon[p_idx] * epsilon[q_idx])  # = √ε_p √ε_q
    # incidence: how often type p occurs in pair i (2 for like pairs)
    incidence = np.zeros((k, len(p_idx)))
    np.add.at(incidence, (p_idx, np.arange(len(p_idx))), 1.0)
    np.add.at(incidence, (q_idx, np.arange(len(p_idx))), 1.0)

    def residual(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = np.exp(x[: m * k]).reshape(m, k)
        e = np.exp(x[m * k :]).reshape(m, k)
        a = 0.5 * (s[:, p_idx] + s[:, q_idx]) / s_geo  # (m, pairs)
        w = e[:, p_idx] * e[:, q_idx] / e_geo
        rows_r, rows_j = [], []
        for n in (12, 6):
            t = w * a**n
            rows_r.append(t.sum(axis=0) - 1.0)
            d_log_e = np.einsum("mi,pi->imp", t, incidence)
            d_log_s = (
                np.einsum("mi,mp,pi->imp", n * t / a, s, incidence) / (2.0 * s_geo)[:, None, None]
            )
            rows_j.append(
                np.concatenate(
                    [d_log_s.reshape(len(p_idx), -1), d_log_e.reshape(len(p_idx), -1)], axis=1
                )
            )
        return np.concatenate(rows_r), np.concatenate(rows_j)

    return residual


def _levenberg_marquardt(
    residual: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], x: np.ndarray
) -> tuple[np.ndarray, float]:
    r, jac = residual(x)
    cost = float(r @ r)
    damping = 1.0e-3
    with np.errstate(all="ignore"):
        for _ in range(300):
            if np.abs(r).max() < 0.1 * _DECOMPOSITION_TOL:
                break
            hessian = jac.T @ jac
            step = np.linalg.solve(
                hessian + damping * (np.diag(np.diag(hessian)) + 1e-12 * np.eye(len(x))),
                -jac.T @ r,
            )
            r_new, jac_new = residual(x + step)
            cost_new = float(r_new @ r_new)
            if np.isfinite(cost_new) and cost_new < cost:
                x, r, jac, cost = x + step, r_new, jac_new, cost_new
                damping = max(damping / 3.0, 1e-15)
            else:
                damping *= 4.0
                if damping > 1e10:
                    break
    return x, float(np.abs(r).max())


@functools.cache
def geometric_lj_decomposition(
    types: tuple[tuple[float, float], ...],
) -> tuple[tuple[tuple[float, float], ...], ...] | None:
    """Per-force (σ nm, ε kJ/mol) of each LJ type such that LB-mixed forces sum to geometric LJ.

    ``types`` are (σ nm, ε kJ/mol) with ε > 0. Returns ``decomposition[m][p]`` for forces
    m = 0 … M−1 and types p, with the smallest M ≥ (k + 1)/2 for which a solution is found
    (deterministic multi-start Levenberg–Marquardt in log variables), such that for every pair
    of types, including p = q,

        Σ_m 4 √(ε_mp ε_mq) ((σ_mp + σ_mq)/2)^n = 4 √(ε_p ε_q) (σ_p σ_q)^(n/2),  n = 6, 12

    holds to a relative error below 1e-13; ``None`` if no solution is found.
    """
    sigma = np.array([t[0] for t in types], dtype=float)
    epsilon = np.array([t[1] for t in types], dtype=float)
    k = len(types)
    if k == 0 or np.any(sigma <= 0) or np.any(epsilon <= 0):
        raise InputError("geometric_lj_decomposition needs types with σ > 0 and ε > 0")
    if k == 1:
        return (((float(sigma[0]), float(epsilon[0])),),)
    rng = np.random.default_rng(_DECOMPOSITION_SEED)
    for m in range(math.ceil((k + 1) / 2), k + 1):
        residual = _decomposition_residual(sigma, epsilon, m)
        for _ in range(_DECOMPOSITION_STARTS):
            s0 = sigma * rng.uniform(0.7, 1.3, (m, k))
            e0 = np.sqrt(epsilon / m) * rng.uniform(0.3, 1.5, (m, k))
            x, error = _levenberg_marquardt(
                residual, np.log(np.concatenate([s0.ravel(), e0.ravel()]))
            )
            if error >= _DECOMPOSITION_TOL:
                continue
            s = np.exp(x[: m * k]).reshape(m, k)
            e = np.exp(2.0 * x[m * k :]).reshape(m, k)
            if _decomposition_error(sigma, epsilon, s, e) < 10 * _DECOMPOSITION_TOL:
                return tuple(
                    tuple((float(s[i, p]), float(e[i, p])) for p in range(k)) for i in range(m)
                )
    return None


def _decomposition_error(
    sigma: np.ndarray, epsilon: np.ndarray, s: np.ndarray, e: np.ndarray
) -> float:
    """Largest relative error of C12 and C6 over all type pairs, recomputed directly."""
    worst = 0.0
    for p in range(len(sigma)):
        for q in range(p, len(sigma)):
            eps_geo = math.sqrt(epsilon[p] * epsilon[q])
            sig_geo = math.sqrt(sigma[p] * sigma[q])
            for n in (12, 6):
                target = 4.0 * eps_geo * sig_geo**n
                total = sum(
                    4.0 * math.sqrt(e[i, p] * e[i, q]) * (0.5 * (s[i, p] + s[i, q])) ** n
                    for i in range(len(s))
                )
                worst = max(worst, abs(total / target - 1.0))
    return worst


# ------------------------------------------------------------------------------ nonbonded
def _nonbonded_force(
    name: str, method: str, cutoff_nm: float, ewald_tolerance: float, dispersion: bool, pme: bool
) -> openmm.NonbondedForce:
    force = _name(openmm.NonbondedForce(), name)
    if method == "nocutoff":
        force.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    else:
        force.setNonbondedMethod(
            openmm.NonbondedForce.PME if pme else openmm.NonbondedForce.CutoffPeriodic
        )
        force.setCutoffDistance(cutoff_nm)
        force.setEwaldErrorTolerance(ewald_tolerance)
    force.setUseDispersionCorrection(dispersion)
    force.setUseSwitchingFunction(False)
    return force


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
    types, type_index = _lj_types(molecule)
    decomposition = None
    if combining == "lb_sum":
        positive = tuple(t for t in types if t[1] > 0.0)
        decomposition = geometric_lj_decomposition(positive) if positive else ((),)
        if decomposition is None:
            warnings.warn(
                f"no exact Lorentz-Berthelot decomposition found for the LJ types of "
                f"{molecule.name}; using combining='correction' (exact, slower)",
                stacklevel=3,
            )
            combining = "correction"

    # per-type (σ, ε) of the NonbondedForce(s): one list per force
    if combining == "lb_sum":
        positive_index = {t: i for i, t in enumerate(t for t in types if t[1] > 0.0)}
        per_force = [
            [
                decomposition[m][positive_index[t]] if t in positive_index else (t[0], 0.0)
                for t in types
            ]
            for m in range(len(decomposition))
        ]
    elif combining == "correction":
        per_force = [list(types)]
    else:  # custom modes: LJ lives in the CustomNonbondedForce
        per_force = [[(t[0], 0.0) for t in types]]

    excluded = molecule.excluded_pairs()
    pairs_14 = molecule.pairs_14()
    lj_in_nonbonded = combining in ("lb_sum", "correction")
    for m, params in enumerate(per_force):
        force = _nonbonded_force(
            "nonbonded" if m == 0 else "lj",
            method,
            cutoff_nm,
            ewald_tolerance,
            dispersion=dispersion_correction and lj_in_nonbonded,
            pme=m == 0,
        )
        for _ in range(n_molecules):
            for atom, t in zip(atoms, type_index, strict=True):
                sigma, epsilon = params[t]
                force.addParticle(atom.charge_e if m == 0 else 0.0, sigma, epsilon)
        for mol in range(n_molecules):
            offset = mol * n_atoms
            for i, j in excluded:
                force.addException(i + offset, j + offset, 0.0, 1.0, 0.0)
            for i, j in pairs_14:
                a, b = atoms[i], atoms[j]
                if m == 0:
                    force.addException(
                        i + offset,
                        j + offset,
                        SCALE_14 * a.charge_e * b.charge_e,
                        math.sqrt(a.sigma_nm * b.sigma_nm),
                        SCALE_14 * math.sqrt(a.epsilon_kj_mol * b.epsilon_kj_mol),
                    )
                else:
                    force.addException(i + offset, j + offset, 0.0, 1.0, 0.0)
        system.addForce(force)

    if combining == "lb_sum":
        return
    lj = _lj_force(types, combining)
    lj.setName("lj")
    lj.setForceGroup(FORCE_GROUPS["lj"])
    if method == "pme":
        lj.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        lj.setCutoffDistance(cutoff_nm)
    else:
        lj.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    lj.setUseSwitchingFunction(False)
    lj.setUseLongRangeCorrection(dispersion_correction)
    for mol in range(n_molecules):
        offset = mol * n_atoms
        for i, j in (*excluded, *pairs_14):
            lj.addExclusion(i + offset, j + offset)
    _add_lj_particles(lj, molecule, n_molecules, combining, type_index)
    system.addForce(lj)


def _lj_force(types: list[tuple[float, float]], combining: str) -> openmm.CustomNonbondedForce:
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
    # correction: ΔC12/r¹² − ΔC6/r⁶ (geometric minus LB) tabulated per pair of LJ types
    n = len(types)
    d12 = np.zeros((n, n))
    d6 = np.zeros((n, n))
    for p, (sp, ep) in enumerate(types):
        for q, (sq, eq) in enumerate(types):
            epsilon = math.sqrt(ep * eq)
            s_geo, s_ari = math.sqrt(sp * sq), 0.5 * (sp + sq)
            d12[p, q] = 4.0 * epsilon * (s_geo**12 - s_ari**12)
            d6[p, q] = 4.0 * epsilon * (s_geo**6 - s_ari**6)
    force = openmm.CustomNonbondedForce("(dc12(t1, t2)*ir6 - dc6(t1, t2))*ir6; ir6 = 1/r^6")
    # Discrete2DFunction values are indexed x + n*y; the tables are symmetric
    force.addTabulatedFunction("dc12", openmm.Discrete2DFunction(n, n, d12.T.ravel().tolist()))
    force.addTabulatedFunction("dc6", openmm.Discrete2DFunction(n, n, d6.T.ravel().tolist()))
    force.addPerParticleParameter("t")
    return force


def _add_lj_particles(
    force: openmm.CustomNonbondedForce,
    molecule: MoleculeTopology,
    n_molecules: int,
    combining: str,
    type_index: list[int],
) -> None:
    n_atoms = molecule.n_atoms
    if combining == "custom":
        params = [(a.sigma_nm, a.epsilon_kj_mol) for a in molecule.atoms]
    elif combining == "custom_c6c12":
        params = [
            (
                2.0 * math.sqrt(a.epsilon_kj_mol) * a.sigma_nm**6,
                2.0 * math.sqrt(a.epsilon_kj_mol) * a.sigma_nm**3,
            )
            for a in molecule.atoms
        ]
    else:
        params = [(float(t),) for t in type_index]
    for _ in range(n_molecules):
        for p in params:
            force.addParticle(list(p))
    if combining != "correction":
        return
    # interaction groups: each σ value against all larger σ values, so that every pair of
    # atoms with different σ is counted exactly once and equal-σ pairs are skipped
    sigmas = sorted({a.sigma_nm for a in molecule.atoms})
    by_sigma: dict[float, list[int]] = {s: [] for s in sigmas}
    for mol in range(n_molecules):
        for i, atom in enumerate(molecule.atoms):
            by_sigma[atom.sigma_nm].append(i + mol * n_atoms)
    for k, s in enumerate(sigmas[:-1]):
        others = [i for t in sigmas[k + 1 :] for i in by_sigma[t]]
        force.addInteractionGroup(by_sigma[s], others)
    if len(sigmas) == 1:
        force.addInteractionGroup([], [])  # nothing to correct


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
