"""The all-atom description of one molecule: atoms, connectivity and force-field parameters.

A :class:`MoleculeTopology` is immutable. Nonbonded parameters live on the atoms; bonded
parameters live in a :class:`BondedParameters` table keyed by the *bonded classes* of the atoms
(OPLS-AA ``CT``, ``HC``, ``CA``, ``HA``), so that all bonds of one type share one parameter set.
Replacing that table (:meth:`MoleculeTopology.with_parameters`) is how callers randomise the
bonded force field while the nonbonded part stays OPLS-AA.

Units and functional forms (OpenMM conventions):

* bond      E = ½ k (r − r0)²,          r0 in nm, k in kJ/mol/nm²
* angle     E = ½ k (θ − θ0)²,          θ0 in rad, k in kJ/mol/rad²
* dihedral  OPLS Fourier series E = ½V1(1+cos φ) + ½V2(1−cos 2φ) + ½V3(1+cos 3φ) + ½V4(1−cos 4φ),
            V1..V4 in kJ/mol (φ = 180° is trans, IUPAC convention)
* improper  same Fourier form, applied to the IUPAC dihedral of the (i, j, k, l) quadruple as
            stored: k is the central atom, i and j its ring neighbours, l its substituent
            (the OPLS-AA/GROMACS order; see :mod:`cgforge.molecules.opls`).
* nonbonded Lennard-Jones σ (nm), ε (kJ/mol) with geometric combining rules for both, charges in e;
            1-4 pairs scaled by 0.5 (Coulomb and LJ), 1-2 and 1-3 pairs excluded.

Note the factor ½: the OPLS-AA literature writes bonds and angles as K (r − r0)², so
k = 2K after unit conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from cgforge.errors import InputError

BondKey = tuple[str, str]
AngleKey = tuple[str, str, str]
DihedralKey = tuple[str, str, str, str]


def bond_key(a: str, b: str) -> BondKey:
    """Canonical key of a bond type: the two classes in sorted order."""
    return (a, b) if a <= b else (b, a)


def angle_key(a: str, b: str, c: str) -> AngleKey:
    """Canonical key of an angle type: central class in the middle, ends sorted."""
    return (a, b, c) if a <= c else (c, b, a)


def dihedral_key(a: str, b: str, c: str, d: str) -> DihedralKey:
    """Canonical key of a proper dihedral type: the lexicographically smaller of the two directions."""
    forward, backward = (a, b, c, d), (d, c, b, a)
    return forward if forward <= backward else backward


@dataclass(frozen=True)
class Atom:
    """One atom with its nonbonded OPLS-AA parameters."""

    name: str
    element: str
    opls_type: str  # e.g. "opls_135"
    bond_class: str  # bonded class used for bonded parameter look-up, e.g. "CT"
    mass_amu: float
    charge_e: float
    sigma_nm: float
    epsilon_kj_mol: float


@dataclass(frozen=True)
class BondParameter:
    length_nm: float
    k_kj_mol_nm2: float


@dataclass(frozen=True)
class AngleParameter:
    theta0_rad: float
    k_kj_mol_rad2: float


@dataclass(frozen=True)
class FourierParameter:
    """OPLS Fourier coefficients V1..V4 in kJ/mol."""

    v1: float
    v2: float
    v3: float
    v4: float = 0.0

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.v1, self.v2, self.v3, self.v4)


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class BondedParameters:
    """Bonded parameters by type. Keys are canonical (see :func:`bond_key` and friends)."""

    bonds: Mapping[BondKey, BondParameter] = field(default_factory=dict)
    angles: Mapping[AngleKey, AngleParameter] = field(default_factory=dict)
    dihedrals: Mapping[DihedralKey, FourierParameter] = field(default_factory=dict)
    impropers: Mapping[DihedralKey, FourierParameter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bonds", _frozen({bond_key(*k): v for k, v in self.bonds.items()}))
        object.__setattr__(
            self, "angles", _frozen({angle_key(*k): v for k, v in self.angles.items()})
        )
        object.__setattr__(
            self, "dihedrals", _frozen({dihedral_key(*k): v for k, v in self.dihedrals.items()})
        )
        object.__setattr__(self, "impropers", _frozen(dict(self.impropers)))

    def replace(self, **changes: Mapping) -> BondedParameters:
        """A copy with some tables replaced (``bonds=``, ``angles=``, ``dihedrals=``, ``impropers=``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class MoleculeTopology:
    """One molecule: atoms, connectivity, a 3D conformer and its bonded parameters.

    ``bonds``, ``angles``, ``dihedrals`` and ``impropers`` hold atom-index tuples; their
    parameters are looked up by the bonded classes of the atoms in ``parameters``.
    """

    name: str
    smiles: str
    atoms: tuple[Atom, ...]
    bonds: tuple[tuple[int, int], ...]
    angles: tuple[tuple[int, int, int], ...]
    dihedrals: tuple[tuple[int, int, int, int], ...]
    impropers: tuple[tuple[int, int, int, int], ...]
    parameters: BondedParameters
    positions_nm: np.ndarray  # (n_atoms, 3), one conformer

    def __post_init__(self) -> None:
        positions = np.array(self.positions_nm, dtype=float)
        if positions.shape != (len(self.atoms), 3):
            raise InputError(
                f"molecule {self.name}: positions have shape {positions.shape}, "
                f"expected ({len(self.atoms)}, 3)"
            )
        positions.setflags(write=False)
        object.__setattr__(self, "positions_nm", positions)
        self.check_parameters(self.parameters)

    # ------------------------------------------------------------------ properties
    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def mass_amu(self) -> float:
        """Molecular mass in amu (g/mol): the mass of the one-bead CG site."""
        return float(sum(a.mass_amu for a in self.atoms))

    @property
    def masses_amu(self) -> np.ndarray:
        return np.array([a.mass_amu for a in self.atoms])

    @property
    def charges_e(self) -> np.ndarray:
        return np.array([a.charge_e for a in self.atoms])

    @property
    def net_charge_e(self) -> float:
        return float(self.charges_e.sum())

    def classes(self, indices: tuple[int, ...]) -> tuple[str, ...]:
        return tuple(self.atoms[i].bond_class for i in indices)

    # ------------------------------------------------------------------ parameter look-up
    def bond_parameter(self, bond: tuple[int, int]) -> BondParameter:
        return self.parameters.bonds[bond_key(*self.classes(bond))]

    def angle_parameter(self, angle: tuple[int, int, int]) -> AngleParameter:
        return self.parameters.angles[angle_key(*self.classes(angle))]

    def dihedral_parameter(self, dihedral: tuple[int, int, int, int]) -> FourierParameter:
        return self.parameters.dihedrals[dihedral_key(*self.classes(dihedral))]

    def improper_parameter(self, improper: tuple[int, int, int, int]) -> FourierParameter:
        return self.parameters.impropers[self.classes(improper)]

    def bonded_types(self) -> dict[str, list[tuple[str, ...]]]:
        """The bonded types this molecule uses, by kind, in a stable order."""
        return {
            "bonds": sorted({bond_key(*self.classes(b)) for b in self.bonds}),
            "angles": sorted({angle_key(*self.classes(a)) for a in self.angles}),
            "dihedrals": sorted({dihedral_key(*self.classes(d)) for d in self.dihedrals}),
            "impropers": sorted({self.classes(i) for i in self.impropers}),
        }

    def check_parameters(self, parameters: BondedParameters) -> None:
        """Raise :class:`InputError` if ``parameters`` lacks a type this molecule uses."""
        tables = {
            "bonds": parameters.bonds,
            "angles": parameters.angles,
            "dihedrals": parameters.dihedrals,
            "impropers": parameters.impropers,
        }
        for kind, keys in self.bonded_types().items():
            missing = [k for k in keys if k not in tables[kind]]
            if missing:
                names = ", ".join("-".join(k) for k in missing)
                raise InputError(f"molecule {self.name}: no {kind[:-1]} parameters for {names}")

    def with_parameters(self, parameters: BondedParameters) -> MoleculeTopology:
        """The same molecule with its bonded parameters replaced (nonbonded ones untouched)."""
        return dataclasses.replace(self, parameters=parameters)

    # ------------------------------------------------------------------ derived pair lists
    def pairs_14(self) -> list[tuple[int, int]]:
        """1-4 pairs (ends of proper dihedrals) that are not also 1-2 or 1-3 pairs (rings)."""
        excluded = set(self.excluded_pairs())
        pairs = {tuple(sorted((d[0], d[3]))) for d in self.dihedrals}
        return sorted(p for p in pairs if p not in excluded)

    def excluded_pairs(self) -> list[tuple[int, int]]:
        """1-2 and 1-3 pairs, fully excluded from nonbonded interactions."""
        pairs = {tuple(sorted(b)) for b in self.bonds}
        pairs |= {tuple(sorted((a[0], a[2]))) for a in self.angles}
        return sorted(pairs)
