"""Randomised bonded OPLS-AA parameters: ranges, draws, feature vectors, OpenMM systems."""

from __future__ import annotations

import math

import numpy as np
import openmm
import pytest
from openmm import unit

from cgforge.engines.openmm_system import create_aa_system, group_energies
from cgforge.errors import InputError
from cgforge.molecules import load_molecule
from cgforge.molecules.randomize import (
    ParameterRanges,
    draw_parameters,
    parameter_names,
    parameter_vector,
    randomize_molecule,
    vector_to_parameters,
)

NAMES = ("2,3,4-trimethylpentane", "ethylbenzene", "3-methylpentane")


@pytest.fixture(scope="module")
def molecules():
    return {name: load_molecule(name) for name in NAMES}


def test_defaults_and_unit_conversion():
    r = ParameterRanges()
    assert r.bond_k_kcal_mol_A2 == (20.0, 1000.0)
    assert r.bond_cc_r0_A == (1.0, 2.5)
    assert r.bond_ch_r0_A == (0.6, 1.8)
    assert r.angle_k_kcal_mol_rad2 == (5.0, 100.0)
    assert r.angle_theta0_deg == (70.0, 140.0)
    assert r.dihedral_v_kcal_mol == (-2.0, 2.0)
    assert r.improper_v_kcal_mol == (-2.0, 2.0)
    # K = 20 kcal/mol/Å² in E = K(r-r0)² is k = 2 * 20 * 4.184 * 100 kJ/mol/nm²
    # in E = ½k(r-r0)²
    assert r.bond_k_kj_mol_nm2[0] == pytest.approx(16736.0)
    assert r.bond_k_kj_mol_nm2[1] == pytest.approx(836800.0)
    assert r.angle_k_kj_mol_rad2 == pytest.approx((41.84, 836.8))
    assert r.bond_cc_r0_nm == pytest.approx((0.10, 0.25))
    assert r.bond_ch_r0_nm == pytest.approx((0.06, 0.18))
    assert r.angle_theta0_rad == pytest.approx((70 * math.pi / 180, 140 * math.pi / 180))
    assert r.dihedral_v_kj_mol == pytest.approx((-8.368, 8.368))
    assert ParameterRanges.from_dict(r.to_dict()) == r


def _in(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] - 1e-12 <= value <= bounds[1] + 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_every_type_drawn_within_ranges(molecules, name):
    mol = molecules[name]
    ranges = ParameterRanges()
    params = draw_parameters(mol, ranges, seed=11)
    types = mol.bonded_types()
    assert sorted(params.bonds) == types["bonds"]
    assert sorted(params.angles) == types["angles"]
    assert sorted(params.dihedrals) == types["dihedrals"]
    assert sorted(params.impropers) == types["impropers"]
    hydrogen = {a.bond_class for a in mol.atoms if a.element == "H"}
    for key, p in params.bonds.items():
        r0 = ranges.bond_ch_r0_nm if hydrogen & set(key) else ranges.bond_cc_r0_nm
        assert _in(p.length_nm, r0)
        assert _in(p.k_kj_mol_nm2, ranges.bond_k_kj_mol_nm2)
    for p in params.angles.values():
        assert _in(p.theta0_rad, ranges.angle_theta0_rad)
        assert _in(p.k_kj_mol_rad2, ranges.angle_k_kj_mol_rad2)
    for p in [*params.dihedrals.values(), *params.impropers.values()]:
        assert all(_in(v, ranges.dihedral_v_kj_mol) for v in p.as_tuple())
    randomised = mol.with_parameters(params)  # check_parameters accepts the draw
    assert randomised.parameters is params
    assert [a.charge_e for a in randomised.atoms] == [a.charge_e for a in mol.atoms]


def test_many_draws_fill_the_ranges(molecules):
    """Uniform draws: over many seeds the extremes approach both ends of each range."""
    mol = molecules["3-methylpentane"]
    ranges = ParameterRanges()
    cc = [draw_parameters(mol, ranges, seed=s).bonds[("CT", "CT")].length_nm for s in range(300)]
    lo, hi = ranges.bond_cc_r0_nm
    assert min(cc) < lo + 0.05 * (hi - lo) and max(cc) > hi - 0.05 * (hi - lo)
    assert np.mean(cc) == pytest.approx(0.5 * (lo + hi), abs=0.05 * (hi - lo))


def test_seed_reproducible_and_distinct(molecules):
    mol = molecules["ethylbenzene"]
    a = parameter_vector(mol, draw_parameters(mol, seed=5))[1]
    b = parameter_vector(mol, draw_parameters(mol, seed=5))[1]
    c = parameter_vector(mol, draw_parameters(mol, seed=6))[1]
    np.testing.assert_array_equal(a, b)
    assert np.all(a != c)
    # a type's draw does not depend on the other types of the molecule
    other = molecules["3-methylpentane"]
    assert (
        draw_parameters(other, seed=5).bonds[("CT", "HC")]
        == draw_parameters(mol, seed=5).bonds[("CT", "HC")]
    )


def test_custom_ranges_and_kept_impropers(molecules):
    mol = molecules["ethylbenzene"]
    ranges = ParameterRanges(bond_cc_r0_A=(1.5, 1.5), improper_v_kcal_mol=None, n_fourier_terms=3)
    params = draw_parameters(mol, ranges, seed=2)
    assert params.bonds[("CA", "CA")].length_nm == pytest.approx(0.15)
    assert dict(params.impropers) == dict(mol.parameters.impropers)
    assert all(p.v4 == 0.0 and p.v1 != 0.0 for p in params.dihedrals.values())


@pytest.mark.parametrize("name", NAMES)
def test_parameter_vector_round_trip(molecules, name):
    mol = molecules[name]
    params = draw_parameters(mol, seed=3)
    names, values = parameter_vector(mol, params)
    assert names == parameter_names(mol)
    assert values.dtype == np.float64 and values.shape == (len(names),)
    assert len(set(names)) == len(names)
    if name == "3-methylpentane":
        assert names[:4] == (
            "bond:CT-CT:length_nm",
            "bond:CT-CT:k_kj_mol_nm2",
            "bond:CT-HC:length_nm",
            "bond:CT-HC:k_kj_mol_nm2",
        )
    i = names.index("bond:CT-HC:k_kj_mol_nm2")
    assert values[i] == params.bonds[("CT", "HC")].k_kj_mol_nm2
    back = vector_to_parameters(mol, values, names)
    assert back == params
    with pytest.raises(InputError, match="entries"):
        vector_to_parameters(mol, values[:-1])
    with pytest.raises(InputError, match="names"):
        vector_to_parameters(mol, values, names[::-1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bond_k_kcal_mol_A2": (1000.0, 20.0)}, "bond_k_kcal_mol_A2.*inverted"),
        ({"bond_k_kcal_mol_A2": ()}, "bond_k_kcal_mol_A2.*pair"),
        ({"angle_k_kcal_mol_rad2": (-1.0, 5.0)}, "angle_k_kcal_mol_rad2.*negative"),
        ({"bond_cc_r0_A": (0.0, 2.0)}, "bond_cc_r0_A.*positive"),
        ({"bond_ch_r0_A": (float("nan"), 1.0)}, "bond_ch_r0_A.*finite"),
        ({"dihedral_v_kcal_mol": (-math.inf, 1.0)}, "dihedral_v_kcal_mol.*finite"),
        ({"angle_theta0_deg": (70.0, 180.0)}, "angle_theta0_deg.*180"),
        ({"angle_theta0_deg": (0.0, 120.0)}, "angle_theta0_deg"),
        ({"n_fourier_terms": 5}, "n_fourier_terms"),
    ],
)
def test_bad_ranges(kwargs, match):
    with pytest.raises(InputError, match=match) as info:
        ParameterRanges(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_seed_and_unknown_key(molecules):
    with pytest.raises(InputError, match="seed"):
        draw_parameters(molecules["ethylbenzene"], seed=-1)
    with pytest.raises(InputError, match="bond_k"):
        ParameterRanges.from_dict({"bond_k": [1, 2]})


def _energies(mol, positions_nm) -> dict[str, float]:
    system = create_aa_system(mol, 1, nonbonded_method="nocutoff", constraints="none")
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(positions_nm * unit.nanometer)
    return group_energies(context)


def test_randomised_molecule_builds_openmm_system(molecules):
    mol = molecules["ethylbenzene"]
    rand = randomize_molecule(mol, seed=4)
    # a slightly distorted conformer: at the planar ring every Fourier improper term vanishes
    x = mol.positions_nm + np.random.default_rng(0).normal(0.0, 0.01, mol.positions_nm.shape)
    e_opls, e_rand = _energies(mol, x), _energies(rand, x)
    for term in ("bond", "angle", "dihedral", "improper"):
        assert abs(e_rand[term] - e_opls[term]) > 1.0, term
    # the drawn r0 are far from the conformer's bond lengths: the bond energy grows
    assert e_rand["bond"] > 5.0 * e_opls["bond"]
    for term in ("nonbonded", "lj"):
        if term in e_opls:
            assert e_rand[term] == pytest.approx(e_opls[term], rel=1e-10, abs=1e-8)
    # the harmonic bond energy is the analytic ½ k (r - r0)² sum over the molecule's bonds
    expected = sum(
        0.5
        * rand.bond_parameter(b).k_kj_mol_nm2
        * (np.linalg.norm(x[b[0]] - x[b[1]]) - rand.bond_parameter(b).length_nm) ** 2
        for b in rand.bonds
    )
    assert e_rand["bond"] == pytest.approx(expected, rel=1e-6)
