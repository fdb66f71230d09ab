"""Built-in molecules, SMILES parsing, OPLS-AA typing and the parameter data file."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import openmm
import pytest
from rdkit import Chem
from rdkit.Chem import Descriptors

from cgforge.engines.openmm_system import create_aa_system, group_energies
from cgforge.errors import InputError
from cgforge.molecules import (
    BondedParameters,
    FourierParameter,
    builtin_names,
    default_bonded_parameters,
    find_builtin,
    get_builtin,
    list_builtin_molecules,
    load_molecule,
    load_opls_data,
    reference_density,
)
from cgforge.molecules.opls import assign_atom_types
from cgforge.molecules.topology import AngleParameter, BondParameter

REQUIRED = (
    "2,3,4-trimethylpentane",
    "3-ethylhexane",
    "3-methylpentane",
    "benzene",
    "ethylbenzene",
    "neopentane",
    "mesitylene",
    "2,3-dimethylbutane",
    "n-hexane",
)

# OPLS-AA atom types and how many of each, worked out by hand from the structures
EXPECTED_TYPES = {
    "2,3,4-trimethylpentane": {"opls_135": 5, "opls_137": 3, "opls_140": 18},
    "3-ethylhexane": {"opls_135": 3, "opls_136": 4, "opls_137": 1, "opls_140": 18},
    "3-methylpentane": {"opls_135": 3, "opls_136": 2, "opls_137": 1, "opls_140": 14},
    "benzene": {"opls_145": 6, "opls_146": 6},
    "ethylbenzene": {"opls_135": 1, "opls_149": 1, "opls_140": 5, "opls_145": 6, "opls_146": 5},
    "neopentane": {"opls_135": 4, "opls_139": 1, "opls_140": 12},
    "mesitylene": {"opls_148": 3, "opls_140": 9, "opls_145": 6, "opls_146": 3},
    "2,3-dimethylbutane": {"opls_135": 4, "opls_137": 2, "opls_140": 14},
    "n-hexane": {"opls_135": 2, "opls_136": 4, "opls_140": 14},
    "toluene": {"opls_148": 1, "opls_140": 3, "opls_145": 6, "opls_146": 5},
}


@pytest.fixture(scope="module")
def molecules():
    return {name: load_molecule(name) for name in builtin_names()}


# ------------------------------------------------------------------------------ library
def test_required_builtins_present_with_reference_data():
    names = builtin_names()
    assert [m.name for m in list_builtin_molecules()] == names
    for name in REQUIRED:
        entry = get_builtin(name)
        assert 0.5 < entry.density_g_cm3 < 1.0
        assert entry.density_source
        assert 1 <= len(entry.residue_name) <= 4
        assert reference_density(name) == entry.density_g_cm3
    assert reference_density("CCO") is None


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("3MP", "3-methylpentane"),
        ("3-Methylpentane", "3-methylpentane"),
        ("  3 methyl pentane ", "3-methylpentane"),
        ("BENZENE", "benzene"),
        ("Ethyl_Benzene", "ethylbenzene"),
        ("1,3,5-trimethylbenzene", "mesitylene"),
        ("2,2-dimethylpropane", "neopentane"),
        ("hexane", "n-hexane"),
        ("234TMP", "2,3,4-trimethylpentane"),
    ],
)
def test_aliases_are_case_and_punctuation_insensitive(alias, name):
    assert find_builtin(alias).name == name


def test_molar_masses_match_topology_and_rdkit(molecules):
    for name, molecule in molecules.items():
        entry = get_builtin(name)
        assert molecule.mass_amu == pytest.approx(entry.molar_mass_g_mol, abs=1e-3)
        rdkit_mass = Descriptors.MolWt(Chem.MolFromSmiles(entry.smiles))
        assert entry.molar_mass_g_mol == pytest.approx(rdkit_mass, abs=0.02)


def test_smiles_of_a_builtin_gets_its_name_and_density():
    molecule = load_molecule("C(C)C(C)CC")  # 3-methylpentane written differently
    assert molecule.name == "3-methylpentane"
    assert reference_density(molecule.name) == get_builtin("3mp").density_g_cm3
    other = load_molecule("CCCCC")
    assert other.name == "CCCCC" and other.smiles == "CCCCC"


# ------------------------------------------------------------------------------ typing
@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_builtin_typing_and_neutrality(molecules, name):
    molecule = molecules[name]
    assert Counter(a.opls_type for a in molecule.atoms) == EXPECTED_TYPES[name]
    assert abs(molecule.net_charge_e) < 1e-12
    assert molecule.positions_nm.shape == (molecule.n_atoms, 3)
    # every bonded type the molecule uses has parameters, and bond lengths of the MMFF
    # conformer are within 4 % of the OPLS-AA r0 (positions are in nm)
    molecule.check_parameters(molecule.parameters)
    for bond in molecule.bonds:
        r = np.linalg.norm(molecule.positions_nm[bond[0]] - molecule.positions_nm[bond[1]])
        assert r == pytest.approx(molecule.bond_parameter(bond).length_nm, rel=0.04)


def test_bonded_topology_counts(molecules):
    for molecule in molecules.values():
        degree = Counter(i for b in molecule.bonds for i in b)
        assert len(molecule.angles) == sum(d * (d - 1) // 2 for d in degree.values())
        expected_dihedrals = sum((degree[i] - 1) * (degree[j] - 1) for i, j in molecule.bonds)
        assert len(molecule.dihedrals) == expected_dihedrals
        assert len(set(molecule.dihedrals)) == len(molecule.dihedrals)


def test_benzene_impropers_and_14_pairs(molecules):
    benzene = molecules["benzene"]
    assert len(benzene.impropers) == 6
    for i, j, k, l in benzene.impropers:  # noqa: E741
        assert benzene.atoms[k].bond_class == "CA" and benzene.atoms[l].bond_class == "HA"
        assert {tuple(sorted(p)) for p in ((i, k), (j, k), (k, l))} <= set(benzene.bonds)
    # 1-4 pairs of benzene: 3 para C-C, 12 meta C-H, 6 ortho H-H
    pairs = benzene.pairs_14()
    kinds = Counter(
        "".join(sorted(benzene.atoms[i].element + benzene.atoms[j].element)) for i, j in pairs
    )
    assert kinds == {"CC": 3, "CH": 12, "HH": 6}
    ethylbenzene = molecules["ethylbenzene"]
    substituents = Counter(ethylbenzene.atoms[q[3]].bond_class for q in ethylbenzene.impropers)
    assert substituents == {"HA": 5, "CT": 1}


def test_junction_parameters_of_ethylbenzene(molecules):
    types = molecules["ethylbenzene"].bonded_types()
    assert ("CA", "CA", "CT", "CT") in types["dihedrals"]
    assert ("CA", "CT", "CT", "HC") in types["dihedrals"]
    assert ("CA", "CA", "CT") in types["angles"]
    assert ("CA", "CT") in types["bonds"]


def test_seeded_embedding_is_reproducible():
    a = load_molecule("3-ethylhexane", seed=3)
    b = load_molecule("3-ethylhexane", seed=3)
    np.testing.assert_array_equal(a.positions_nm, b.positions_nm)
    others = [load_molecule("3-ethylhexane", seed=s).positions_nm for s in (4, 5, 6)]
    assert any(not np.allclose(a.positions_nm, p, atol=1e-3) for p in others)


def test_benzylic_types_follow_the_neutrality_rule():
    cumene = load_molecule("CC(C)c1ccccc1")
    benzylic = [a for a in cumene.atoms if a.opls_type == "cgforge_bz_CH"]
    assert len(benzylic) == 1 and benzylic[0].charge_e == pytest.approx(0.055)
    assert abs(cumene.net_charge_e) < 1e-12
    tert_butyl = load_molecule("CC(C)(C)c1ccccc1")
    assert any(a.opls_type == "cgforge_bz_C" for a in tert_butyl.atoms)
    assert abs(tert_butyl.net_charge_e) < 1e-12


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foo", "unknown molecule 'foo': not a built-in name (list: "),
        ("foo", "and not a valid SMILES"),
        ("CCO", "atom 2 (O, bonded to C, H) has no OPLS-AA type in cgforge's hydrocarbon set"),
        ("C=CC", "atom 0 (C, sp2 non-aromatic carbon, bonded to C, H, H)"),
        ("CC#C", "sp non-aromatic carbon"),
        ("ClCC", "atom 0 (Cl, bonded to C)"),
        ("c1ccc2ccccc2c1", "fused rings"),
        ("c1ccccc1-c1ccccc1", "biaryl"),
        ("c1ccncc1", "(N, bonded to C, C)"),
        ("C1CC1", "3-membered ring"),
        ("CC[NH3+]", "formal charge +1"),
        ("C[CH2]", "radical"),
        ("CC.CC", "2 disconnected fragments"),
        ("", "empty molecule name"),
    ],
)
def test_bad_input_errors_name_the_problem(spec, message):
    with pytest.raises(InputError) as info:
        load_molecule(spec)
    assert message in str(info.value)


def test_typing_needs_explicit_hydrogens():
    with pytest.raises(InputError, match="explicit hydrogens"):
        assign_atom_types(Chem.MolFromSmiles("CCC"))


# ------------------------------------------------------------------------------ data file
def test_data_file_source_and_types():
    data = load_opls_data()
    citations = " ".join(r["citation"] for r in data.source["references"])
    assert "J. Am. Chem. Soc. 118, 11225" in citations
    required = {
        "opls_135",
        "opls_136",
        "opls_137",
        "opls_139",
        "opls_140",
        "opls_145",
        "opls_146",
        "opls_148",
        "opls_149",
    }
    assert required <= set(data.atom_types)
    for t in data.atom_types.values():
        assert t.description and t.bond_class in {"CT", "HC", "CA", "HA"}


def test_parameters_match_gromacs_oplsaa_numbers():
    """Unit conversion checked against the kJ/mol-nm numbers of GROMACS oplsaa.ff."""
    p = default_bonded_parameters()
    types = load_opls_data().atom_types
    assert p.bonds[("CT", "CT")] == BondParameter(0.1529, pytest.approx(224262.4))
    assert p.bonds[("CA", "CA")].k_kj_mol_nm2 == pytest.approx(392459.2)
    assert p.bonds[("CA", "CT")].k_kj_mol_nm2 == pytest.approx(265265.6)
    assert p.angles[("CT", "CT", "CT")] == AngleParameter(
        pytest.approx(math.radians(112.7)), pytest.approx(488.273, abs=1e-3)
    )
    assert p.angles[("HC", "CT", "HC")].k_kj_mol_rad2 == pytest.approx(276.144)
    assert p.angles[("CA", "CA", "CT")].k_kj_mol_rad2 == pytest.approx(585.76)

    def ryckaert_bellemans(f: FourierParameter) -> list[float]:  # GROMACS manual conversion
        return [
            f.v2 + 0.5 * (f.v1 + f.v3),
            0.5 * (3 * f.v3 - f.v1),
            4 * f.v4 - f.v2,
            -2 * f.v3,
            -4 * f.v4,
        ]

    gromacs_rb = {
        ("CT", "CT", "CT", "CT"): [2.92880, -1.46440, 0.20920, -1.67360, 0.0],
        ("CT", "CT", "CT", "HC"): [0.62760, 1.88280, 0.0, -2.51040, 0.0],
        ("HC", "CT", "CT", "HC"): [0.62760, 1.88280, 0.0, -2.51040, 0.0],
        ("CA", "CT", "CT", "HC"): [0.96650, 2.89951, 0.0, -3.86601, 0.0],
        ("CA", "CT", "CT", "CT"): [2.92880, -1.46440, 0.20920, -1.67360, 0.0],
        ("CA", "CA", "CA", "CA"): [30.33400, 0.0, -30.33400, 0.0, 0.0],
        ("CA", "CA", "CT", "CT"): [0.0, 0.0, 0.0, 0.0, 0.0],
    }
    for key, rb in gromacs_rb.items():
        assert ryckaert_bellemans(p.dihedrals[key]) == pytest.approx(rb, abs=2e-5), key
    # improper_Z_CA_X_Y: 4.6024 (1 + cos(2φ − 180°)) = ½ V2 (1 − cos 2φ)
    assert p.impropers[("CA", "CA", "CA", "HA")].v2 / 2 == pytest.approx(4.6024)
    assert (types["opls_135"].sigma_nm, types["opls_135"].epsilon_kj_mol) == pytest.approx(
        (0.35, 0.276144)
    )
    assert (types["opls_146"].sigma_nm, types["opls_146"].epsilon_kj_mol) == pytest.approx(
        (0.242, 0.12552)
    )


def test_missing_bonded_parameter_is_reported(molecules):
    molecule = molecules["3-methylpentane"]
    full = molecule.parameters
    bonds = {k: v for k, v in full.bonds.items() if k != ("CT", "HC")}
    with pytest.raises(InputError, match="CT-HC"):
        molecule.with_parameters(full.replace(bonds=bonds))


# ------------------------------------------------------------------------------ parameters
def test_replacing_bonded_parameters_changes_only_bonded_energy(molecules):
    molecule = molecules["ethylbenzene"]
    p = molecule.parameters

    def scaled(f: FourierParameter, a: float) -> FourierParameter:
        return FourierParameter(*(a * v + 0.3 for v in f.as_tuple()))

    changed = BondedParameters(
        bonds={
            k: BondParameter(v.length_nm * 1.03, v.k_kj_mol_nm2 * 2) for k, v in p.bonds.items()
        },
        angles={
            k: AngleParameter(v.theta0_rad + 0.05, v.k_kj_mol_rad2 * 0.5)
            for k, v in p.angles.items()
        },
        dihedrals={k: scaled(v, 0.5) for k, v in p.dihedrals.items()},
        impropers={k: scaled(v, 3.0) for k, v in p.impropers.items()},
    )
    other = molecule.with_parameters(changed)
    assert other.atoms == molecule.atoms and other.bonds == molecule.bonds

    def energies(mol):
        system = create_aa_system(mol, 2, None, nonbonded_method="nocutoff", constraints="none")
        context = openmm.Context(
            system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
        )
        shifted = np.concatenate([mol.positions_nm, mol.positions_nm + np.array([0.6, 0.0, 0.0])])
        context.setPositions(shifted)
        return group_energies(context)

    before, after = energies(molecule), energies(other)
    for term in ("bond", "angle", "dihedral", "improper"):
        assert abs(after[term] - before[term]) > 1e-3, term
    for term in ("nonbonded", "lj"):
        assert after[term] == pytest.approx(before[term], rel=1e-12, abs=1e-9), term


def test_topology_is_immutable(molecules):
    molecule = molecules["benzene"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        molecule.name = "x"
    with pytest.raises(ValueError):
        molecule.positions_nm[0, 0] = 1.0
