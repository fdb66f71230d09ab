"""OpenMM systems of OPLS-AA molecules against an independent numpy evaluation of every term.

The reference energies below are written from the OPLS-AA functional forms (bonds, angles,
Fourier dihedrals, impropers, geometric-mean Lennard-Jones, Coulomb, 1-4 pairs × 0.5) without
using any OpenMM code; the OpenMM systems are evaluated on the double-precision Reference
platform so the comparison can be tight.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import openmm
import pytest
import scipy.constants as sc
from openmm import unit
from scipy.spatial.transform import Rotation

from cgforge.engines.openmm_system import (
    COMBINING_MODES,
    FORCE_GROUPS,
    create_aa_system,
    geometric_lj_decomposition,
    group_energies,
    openmm_topology,
)
from cgforge.errors import InputError
from cgforge.molecules import MoleculeTopology, load_molecule

#: Coulomb constant N_A e²/(4π ε0) in kJ/mol·nm/e², from CODATA via scipy
COULOMB = sc.N_A * sc.e**2 / (4 * math.pi * sc.epsilon_0) / 1e-9 / 1e3
MOLECULES = ("3-methylpentane", "ethylbenzene")


@pytest.fixture(scope="module", params=MOLECULES)
def molecule(request) -> MoleculeTopology:
    return load_molecule(request.param)


def _reference_platform() -> openmm.Platform:
    return openmm.Platform.getPlatformByName("Reference")


def _evaluate(system: openmm.System, positions: np.ndarray, platform=None):
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), platform or _reference_platform()
    )
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces), group_energies(context)


def _min_distance(a: np.ndarray, b: np.ndarray, box: np.ndarray | None = None) -> float:
    d = a[:, None, :] - b[None, :, :]
    if box is not None:
        d -= box * np.round(d / box)
    return float(np.sqrt((d**2).sum(axis=-1)).min())


def _cluster(molecule: MoleculeTopology, n: int, *, seed: int = 7) -> np.ndarray:
    """``n`` randomly rotated copies in contact along x (closest atoms 0.25-0.27 nm apart)."""
    rng = np.random.default_rng(seed)
    centred = molecule.positions_nm - molecule.positions_nm.mean(axis=0)
    placed = [centred]
    for _ in range(n - 1):
        copy = centred @ Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix().T
        shift = placed[-1][:, 0].max() - copy[:, 0].min() + 0.25
        everything = np.concatenate(placed)
        while _min_distance(copy + np.array([shift, 0.0, 0.0]), everything) < 0.25:
            shift += 0.02
        placed.append(copy + np.array([shift, 0.0, 0.0]))
    return np.concatenate(placed)


def _lattice(molecule: MoleculeTopology, side: int, spacing_nm: float, seed: int = 3):
    """``side³`` randomly rotated copies on a periodic cubic lattice without close contacts."""
    rng = np.random.default_rng(seed)
    box = np.full(3, side * spacing_nm)
    centred = molecule.positions_nm - molecule.positions_nm.mean(axis=0)
    placed: list[np.ndarray] = []
    for cell in np.ndindex(side, side, side):
        while True:
            rotation = Rotation.random(random_state=int(rng.integers(1 << 30))).as_matrix()
            copy = centred @ rotation.T + (np.array(cell) + 0.5) * spacing_nm
            if not placed or _min_distance(copy, np.concatenate(placed), box) > 0.22:
                break
        placed.append(copy)
    return np.concatenate(placed), box


# ------------------------------------------------------------------------------ numpy reference
def _dihedral(p: np.ndarray, i: int, j: int, k: int, l: int) -> float:  # noqa: E741
    b0, b1, b2 = p[i] - p[j], p[k] - p[j], p[l] - p[k]
    axis = b1 / np.linalg.norm(b1)
    v = b0 - (b0 @ axis) * axis
    w = b2 - (b2 @ axis) * axis
    return math.atan2(np.cross(axis, v) @ w, v @ w)


def _fourier(v: tuple[float, float, float, float], phi: float) -> float:
    v1, v2, v3, v4 = v
    return 0.5 * (
        v1 * (1 + math.cos(phi))
        + v2 * (1 - math.cos(2 * phi))
        + v3 * (1 + math.cos(3 * phi))
        + v4 * (1 - math.cos(4 * phi))
    )


def reference_energies(molecule: MoleculeTopology, n: int, positions: np.ndarray) -> dict:
    """All energy terms (kJ/mol) of ``n`` copies in vacuum, from the functional forms."""
    na = molecule.n_atoms
    out = dict.fromkeys(("bond", "angle", "dihedral", "improper", "lj", "coulomb"), 0.0)
    for m in range(n):
        p = positions[m * na : (m + 1) * na]
        for b in molecule.bonds:
            prm = molecule.bond_parameter(b)
            r = np.linalg.norm(p[b[0]] - p[b[1]])
            out["bond"] += 0.5 * prm.k_kj_mol_nm2 * (r - prm.length_nm) ** 2
        for a in molecule.angles:
            prm = molecule.angle_parameter(a)
            u, v = p[a[0]] - p[a[1]], p[a[2]] - p[a[1]]
            theta = math.acos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))
            out["angle"] += 0.5 * prm.k_kj_mol_rad2 * (theta - prm.theta0_rad) ** 2
        for d in molecule.dihedrals:
            out["dihedral"] += _fourier(molecule.dihedral_parameter(d).as_tuple(), _dihedral(p, *d))
        for d in molecule.impropers:
            out["improper"] += _fourier(molecule.improper_parameter(d).as_tuple(), _dihedral(p, *d))
    # nonbonded: every pair once, with its scale (0 for 1-2/1-3, 0.5 for 1-4, 1 otherwise)
    scale = np.ones((na, na))
    for i, j in molecule.excluded_pairs():
        scale[i, j] = scale[j, i] = 0.0
    for i, j in molecule.pairs_14():
        scale[i, j] = scale[j, i] = 0.5
    q = np.tile(molecule.charges_e, n)
    sigma = np.tile([a.sigma_nm for a in molecule.atoms], n)
    epsilon = np.tile([a.epsilon_kj_mol for a in molecule.atoms], n)
    for i in range(n * na):
        for j in range(i + 1, n * na):
            f = scale[i % na, j % na] if i // na == j // na else 1.0
            if f == 0.0:
                continue
            r = np.linalg.norm(positions[i] - positions[j])
            s = math.sqrt(sigma[i] * sigma[j])
            e = math.sqrt(epsilon[i] * epsilon[j])
            out["lj"] += f * 4 * e * ((s / r) ** 12 - (s / r) ** 6)
            out["coulomb"] += f * COULOMB * q[i] * q[j] / r
    return out


def _without(molecule: MoleculeTopology, *, charges: bool = True, lj: bool = True):
    atoms = tuple(
        dataclasses.replace(
            a,
            charge_e=a.charge_e if charges else 0.0,
            epsilon_kj_mol=a.epsilon_kj_mol if lj else 0.0,
        )
        for a in molecule.atoms
    )
    return dataclasses.replace(molecule, atoms=atoms)


# ------------------------------------------------------------------------------ vacuum
@pytest.mark.parametrize("combining", COMBINING_MODES)
@pytest.mark.parametrize("n", [1, 3])
def test_vacuum_energies_match_independent_evaluation(molecule, n, combining):
    positions = molecule.positions_nm if n == 1 else _cluster(molecule, n)
    ref = reference_energies(molecule, n, positions)
    system = create_aa_system(
        molecule, n, None, nonbonded_method="nocutoff", constraints="none", combining=combining
    )
    _, _, groups = _evaluate(system, positions)
    for term in ("bond", "angle", "dihedral", "improper"):
        assert groups[term] == pytest.approx(ref[term], rel=1e-9, abs=1e-8), term
    nonbonded = groups["nonbonded"] + groups.get("lj", 0.0)
    assert nonbonded == pytest.approx(ref["lj"] + ref["coulomb"], rel=1e-7, abs=1e-6)
    if n == 3:  # the copies do interact
        single = reference_energies(molecule, 1, molecule.positions_nm)
        assert abs(ref["lj"] - 3 * single["lj"]) > 0.5


@pytest.mark.parametrize("combining", ["lb_sum", "correction"])
def test_lj_and_coulomb_separately(molecule, combining):
    positions = _cluster(molecule, 3)
    ref = reference_energies(molecule, 3, positions)
    for variant, expected in (
        (_without(molecule, charges=False), ref["lj"]),
        (_without(molecule, lj=False), ref["coulomb"]),
    ):
        system = create_aa_system(
            variant, 3, None, nonbonded_method="nocutoff", constraints="none", combining=combining
        )
        _, _, groups = _evaluate(system, positions)
        total = groups["nonbonded"] + groups.get("lj", 0.0)
        assert total == pytest.approx(expected, rel=1e-7, abs=1e-6)


def test_geometric_differs_from_lorentz_berthelot(molecule):
    """The exactness matters: LB mixing would change the LJ energy of the cluster."""
    positions = _cluster(molecule, 3)
    ref = reference_energies(molecule, 3, positions)
    lb = 0.0
    na = molecule.n_atoms
    for i in range(3 * na):
        for j in range(i + 1, 3 * na):
            if i // na == j // na:
                continue
            a, b = molecule.atoms[i % na], molecule.atoms[j % na]
            r = np.linalg.norm(positions[i] - positions[j])
            s = 0.5 * (a.sigma_nm + b.sigma_nm)
            e = math.sqrt(a.epsilon_kj_mol * b.epsilon_kj_mol)
            lb += 4 * e * ((s / r) ** 12 - (s / r) ** 6)
    inter_geo = ref["lj"] - 3 * reference_energies(molecule, 1, molecule.positions_nm)["lj"]
    assert abs(lb - inter_geo) > 0.01 * abs(inter_geo)


# ------------------------------------------------------------------------------ periodic
@pytest.fixture(scope="module")
def liquid(molecule):
    positions, box = _lattice(molecule, 3, spacing_nm=0.85)
    return molecule, positions, box


@pytest.mark.parametrize("dispersion", [True, False])
def test_periodic_modes_agree_with_plain_custom(liquid, dispersion):
    molecule, positions, box = liquid
    results = {
        mode: _evaluate(
            create_aa_system(
                molecule, 27, box, cutoff_nm=0.8, combining=mode, dispersion_correction=dispersion
            ),
            positions,
        )
        for mode in COMBINING_MODES
    }
    energy, forces, groups = results["custom"]
    # the custom force integrates its long-range correction numerically (to ~1e-5 kJ/mol)
    tolerance = 1e-4 if dispersion else 1e-7
    for mode, (e, f, g) in results.items():
        assert e == pytest.approx(energy, abs=tolerance), mode
        np.testing.assert_allclose(f, forces, rtol=0, atol=1e-7, err_msg=mode)
        for term in ("bond", "angle", "dihedral", "improper"):
            assert g[term] == groups[term]


def test_periodic_lj_matches_minimum_image_sum(liquid):
    """Without charges and dispersion correction, the PME system is truncated geometric LJ."""
    molecule, positions, box = liquid
    neutral = _without(molecule, charges=False)
    cutoff = 0.8
    system = create_aa_system(neutral, 27, box, cutoff_nm=cutoff, dispersion_correction=False)
    _, _, groups = _evaluate(system, positions)
    na = molecule.n_atoms
    scale = np.ones((na, na))
    for i, j in molecule.excluded_pairs():
        scale[i, j] = scale[j, i] = 0.0
    for i, j in molecule.pairs_14():
        scale[i, j] = scale[j, i] = 0.5
    sigma = np.tile([a.sigma_nm for a in molecule.atoms], 27)
    epsilon = np.tile([a.epsilon_kj_mol for a in molecule.atoms], 27)
    expected = 0.0
    for i in range(27 * na):
        d = positions[i + 1 :] - positions[i]
        d -= box * np.round(d / box)
        r = np.linalg.norm(d, axis=1)
        j = np.arange(i + 1, 27 * na)
        same = j // na == i // na
        f = np.where(same, scale[i % na, j % na], 1.0)
        f = np.where(r < cutoff, f, 0.0)
        s = np.sqrt(sigma[i] * sigma[j])
        e = np.sqrt(epsilon[i] * epsilon[j])
        expected += np.sum(f * 4 * e * ((s / r) ** 12 - (s / r) ** 6))
    assert groups["nonbonded"] + groups["lj"] == pytest.approx(expected, rel=1e-9, abs=1e-7)


def test_cpu_platform_runs_the_default_formulation(liquid):
    molecule, positions, box = liquid
    cpu = openmm.Platform.getPlatformByName("CPU")
    e_fast, f_fast, _ = _evaluate(
        create_aa_system(molecule, 27, box, cutoff_nm=0.8), positions, cpu
    )
    e_ref, f_ref, _ = _evaluate(
        create_aa_system(molecule, 27, box, cutoff_nm=0.8, combining="custom"), positions
    )
    assert e_fast == pytest.approx(e_ref, rel=1e-4, abs=0.05)
    assert np.abs(f_fast - f_ref).max() < 1e-3 * np.abs(f_ref).max() + 0.5


# ------------------------------------------------------------------------------ structure
def test_decomposition_reproduces_geometric_coefficients():
    types = ((0.35, 0.276144), (0.25, 0.12552), (0.355, 0.29288), (0.242, 0.12552))
    for subset in (types[:2], types[2:], types):
        parts = geometric_lj_decomposition(subset)
        assert parts is not None and len(parts) == math.ceil((len(subset) + 1) / 2)
        for p, (sp, ep) in enumerate(subset):
            for q, (sq, eq) in enumerate(subset):
                for n in (6, 12):
                    total = sum(
                        4 * math.sqrt(f[p][1] * f[q][1]) * (0.5 * (f[p][0] + f[q][0])) ** n
                        for f in parts
                    )
                    assert total == pytest.approx(
                        4 * math.sqrt(ep * eq) * (sp * sq) ** (n / 2), rel=1e-12
                    )


def test_forces_groups_names_and_constraints(molecule):
    box = np.full(3, 3.0)
    system = create_aa_system(molecule, 4, box)
    assert system.getNumParticles() == 4 * molecule.n_atoms
    for force in system.getForces():
        assert force.getForceGroup() == FORCE_GROUPS[force.getName()]
    names = {f.getName() for f in system.getForces()}
    assert {"bond", "angle", "dihedral", "improper", "nonbonded", "lj"} <= names
    h_bonds = [
        b
        for b in molecule.bonds
        if "H" in (molecule.atoms[b[0]].element, molecule.atoms[b[1]].element)
    ]
    assert system.getNumConstraints() == 4 * len(h_bonds)
    i, j, length = system.getConstraintParameters(0)
    assert length.value_in_unit(unit.nanometer) == pytest.approx(
        molecule.bond_parameter((i, j)).length_nm
    )
    bond_force = next(f for f in system.getForces() if f.getName() == "bond")
    assert bond_force.getNumBonds() == 4 * (len(molecule.bonds) - len(h_bonds))
    flexible = create_aa_system(molecule, 4, box, constraints="none")
    assert flexible.getNumConstraints() == 0
    vectors = system.getDefaultPeriodicBoxVectors()
    assert vectors[2][2].value_in_unit(unit.nanometer) == pytest.approx(3.0)


def test_openmm_topology(molecule):
    topology = openmm_topology(molecule, 5, (3.0, 3.0, 3.0))
    residues = list(topology.residues())
    assert len(residues) == 5 and all(1 <= len(r.name) <= 4 for r in residues)
    assert residues[0].name == {"3-methylpentane": "3MP", "ethylbenzene": "EBZ"}[molecule.name]
    assert topology.getNumAtoms() == 5 * molecule.n_atoms
    assert topology.getNumBonds() == 5 * len(molecule.bonds)
    atoms = list(topology.atoms())
    assert [a.element.symbol for a in atoms[: molecule.n_atoms]] == [
        a.element for a in molecule.atoms
    ]
    assert topology.getPeriodicBoxVectors()[0][0].value_in_unit(unit.nanometer) == 3.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box_nm": None}, "needs box_nm"),
        ({"box_nm": (1.5, 1.5, 1.5)}, "exceeds half the shortest box edge"),
        ({"box_nm": (3, 3, 3), "combining": "lb"}, "unknown combining"),
        ({"box_nm": (3, 3, 3), "constraints": "allbonds"}, "unknown constraints"),
        ({"box_nm": (3, 3, 3), "nonbonded_method": "ewald"}, "unknown nonbonded_method"),
        ({"box_nm": (3, -3, 3)}, "three positive box lengths"),
    ],
)
def test_bad_system_requests(molecule, kwargs, message):
    with pytest.raises(InputError, match=message):
        create_aa_system(molecule, 10, **kwargs)
