"""OPLS-AA typing of hydrocarbons: alkanes and alkylbenzenes.

The parameters live in ``data/oplsaa_hydrocarbons.json`` in literature units (Å, kcal/mol,
degrees, ``E = K (r − r0)²``) with their references; :func:`load_opls_data` converts them once
into cgforge's units (nm, kJ/mol, rad, ``E = ½ k (r − r0)²``, so ``k = 2K``).

:func:`type_molecule` assigns an OPLS-AA atom type to every atom of an RDKit molecule with
explicit hydrogens and builds bonds, angles, proper dihedrals and aromatic impropers from the
bond graph. Atom types (charges in e):

* sp3 carbon without aromatic neighbours: CH4 ``opls_138`` (−0.24), CH3 ``opls_135`` (−0.18),
  CH2 ``opls_136`` (−0.12), CH ``opls_137`` (−0.06), C ``opls_139`` (0.00); class ``CT``.
* sp3 carbon bonded to one benzene ring (benzylic): CH3 ``opls_148`` (−0.065), CH2 ``opls_149``
  (−0.005), CH and C by the same rule (+0.055, +0.115; marked derived in the data file).
* aromatic carbon of an isolated benzene ring ``opls_145`` (−0.115, class ``CA``), also at the
  ipso position; aromatic H ``opls_146`` (+0.115, ``HA``); H on sp3 carbon ``opls_140`` (+0.06,
  ``HC``). Every molecule typed this way is neutral.

Impropers are stored as ``(i, j, k, l)`` with ``k`` the central aromatic carbon, ``i < j`` its
two ring neighbours and ``l`` its substituent (H or alkyl C), the atom order of the OPLS-AA
residue templates (``improper_Z_CA_X_Y``); the energy is the Fourier form of
:mod:`cgforge.molecules.topology` with ``V2`` only, evaluated on the IUPAC dihedral i-j-k-l.

Anything else (heteroatoms, alkenes, alkynes, fused or linked aromatic rings, 3- and
4-membered rings, carbons bonded to two rings) raises :class:`~cgforge.errors.InputError`
naming the atom.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from rdkit import Chem

from cgforge.errors import InputError
from cgforge.molecules.topology import (
    AngleParameter,
    Atom,
    BondedParameters,
    BondParameter,
    FourierParameter,
    MoleculeTopology,
    angle_key,
    bond_key,
    dihedral_key,
)
from cgforge.units import ANGSTROM_TO_NM, DEG_TO_RAD, KCAL_TO_KJ, kcal_per_A2_to_kj_per_nm2

DATA_FILE = "oplsaa_hydrocarbons.json"
COVERAGE = "cgforge's hydrocarbon set (alkanes and alkylbenzenes)"

_ALKANE_TYPE_BY_H = {4: "opls_138", 3: "opls_135", 2: "opls_136", 1: "opls_137", 0: "opls_139"}
_BENZYLIC_TYPE_BY_H = {3: "opls_148", 2: "opls_149", 1: "cgforge_bz_CH", 0: "cgforge_bz_C"}
_AROMATIC_C = "opls_145"
_AROMATIC_H = "opls_146"
_ALKANE_H = "opls_140"


@dataclass(frozen=True)
class AtomType:
    """One OPLS-AA atom type in cgforge units (nm, kJ/mol, e, amu)."""

    type_id: str
    bond_class: str
    element: str
    mass_amu: float
    charge_e: float
    sigma_nm: float
    epsilon_kj_mol: float
    description: str
    derived: bool = False


@dataclass(frozen=True)
class OPLSData:
    """The parsed data file: atom types by id, bonded parameters, and the source block."""

    atom_types: Mapping[str, AtomType]
    parameters: BondedParameters
    source: Mapping[str, Any]
    path: str


def _fourier(entry: Mapping[str, Any]) -> FourierParameter:
    return FourierParameter(
        *(float(entry.get(f"V{n}_kcal_mol", 0.0)) * KCAL_TO_KJ for n in (1, 2, 3, 4))
    )


def _classes(entry: Mapping[str, Any], n: int, known: set[str], what: str) -> tuple[str, ...]:
    classes = tuple(entry["classes"])
    if len(classes) != n or any(c not in known for c in classes):
        raise InputError(
            f"OPLS-AA data file: {what} entry {list(classes)} needs {n} classes out of "
            f"{sorted(known)}"
        )
    return classes


def parse_opls_data(raw: Mapping[str, Any], path: str = "<memory>") -> OPLSData:
    """Convert the data file's content (literature units) into :class:`OPLSData`."""
    try:
        types: dict[str, AtomType] = {}
        for entry in raw["atom_types"]:
            type_id = entry["id"]
            if type_id in types:
                raise InputError(f"OPLS-AA data file {path}: atom type {type_id} listed twice")
            types[type_id] = AtomType(
                type_id=type_id,
                bond_class=entry["class"],
                element=entry["element"],
                mass_amu=float(entry["mass_amu"]),
                charge_e=float(entry["charge_e"]),
                sigma_nm=float(entry["sigma_A"]) * ANGSTROM_TO_NM,
                epsilon_kj_mol=float(entry["epsilon_kcal_mol"]) * KCAL_TO_KJ,
                description=entry["description"],
                derived=bool(entry.get("derived", False)),
            )
        known = {t.bond_class for t in types.values()}

        def unique(table: dict, key: tuple, what: str) -> tuple:
            if key in table:
                raise InputError(f"OPLS-AA data file {path}: {what} {'-'.join(key)} listed twice")
            return key

        bonds: dict = {}
        for entry in raw["bonds"]:
            key = unique(bonds, bond_key(*_classes(entry, 2, known, "bond")), "bond")
            bonds[key] = BondParameter(
                length_nm=float(entry["r0_A"]) * ANGSTROM_TO_NM,
                k_kj_mol_nm2=kcal_per_A2_to_kj_per_nm2(2.0 * float(entry["K_kcal_mol_A2"])),
            )
        angles: dict = {}
        for entry in raw["angles"]:
            key = unique(angles, angle_key(*_classes(entry, 3, known, "angle")), "angle")
            angles[key] = AngleParameter(
                theta0_rad=float(entry["theta0_deg"]) * DEG_TO_RAD,
                k_kj_mol_rad2=2.0 * float(entry["K_kcal_mol_rad2"]) * KCAL_TO_KJ,
            )
        dihedrals: dict = {}
        for entry in raw["dihedrals"]:
            key = dihedral_key(*_classes(entry, 4, known, "dihedral"))
            dihedrals[unique(dihedrals, key, "dihedral")] = _fourier(entry)
        impropers: dict = {}
        for entry in raw["impropers"]:
            key = _classes(entry, 4, known, "improper")
            impropers[unique(impropers, key, "improper")] = _fourier(entry)
        source = raw["source"]
    except KeyError as exc:
        raise InputError(f"OPLS-AA data file {path} lacks the field {exc}") from exc
    parameters = BondedParameters(
        bonds=bonds, angles=angles, dihedrals=dihedrals, impropers=impropers
    )
    return OPLSData(
        atom_types=MappingProxyType(types), parameters=parameters, source=source, path=path
    )


def data_path() -> Path:
    """Path of the packaged OPLS-AA hydrocarbon data file."""
    return Path(str(resources.files("cgforge.molecules").joinpath("data", DATA_FILE)))


@functools.cache
def load_opls_data(path: str | None = None) -> OPLSData:
    """Load (once) the OPLS-AA data file, by default the packaged one."""
    file = Path(path) if path is not None else data_path()
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"OPLS-AA data file {file} not found") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"OPLS-AA data file {file} is not valid JSON: {exc}") from exc
    return parse_opls_data(raw, str(file))


def default_bonded_parameters() -> BondedParameters:
    """All OPLS-AA bonded parameters of the data file, in cgforge units."""
    return load_opls_data().parameters


def atom_type(type_id: str) -> AtomType:
    """One OPLS-AA atom type by id (e.g. ``"opls_135"``)."""
    types = load_opls_data().atom_types
    if type_id not in types:
        raise InputError(f"unknown OPLS-AA atom type '{type_id}'; known: {', '.join(types)}")
    return types[type_id]


# --------------------------------------------------------------------------------- typing
def _environment(atom: Chem.Atom, detail: str = "") -> str:
    neighbours = sorted(
        (n.GetSymbol() for n in atom.GetNeighbors()), key=lambda s: (s != "C", s != "H", s)
    )
    bonded = f"bonded to {', '.join(neighbours)}" if neighbours else "no bonds"
    parts = [atom.GetSymbol()] + ([detail] if detail else []) + [bonded]
    return ", ".join(parts)


def _uncovered(atom: Chem.Atom, detail: str = "") -> InputError:
    return InputError(
        f"atom {atom.GetIdx()} ({_environment(atom, detail)}) has no OPLS-AA type in {COVERAGE}"
    )


def _benzene_ring(mol: Chem.Mol, atom: Chem.Atom) -> tuple[int, ...]:
    """The one six-membered all-carbon aromatic ring an aromatic carbon belongs to."""
    rings = [r for r in mol.GetRingInfo().AtomRings() if atom.GetIdx() in r]
    if len(rings) != 1:
        raise _uncovered(atom, f"aromatic carbon in {len(rings)} rings (fused rings)")
    ring = rings[0]
    ring_atoms = [mol.GetAtomWithIdx(i) for i in ring]
    if len(ring) != 6 or not all(a.GetSymbol() == "C" and a.GetIsAromatic() for a in ring_atoms):
        raise _uncovered(atom, f"aromatic carbon in a {len(ring)}-membered heteroaromatic ring")
    return ring


def _type_carbon(mol: Chem.Mol, atom: Chem.Atom) -> str:
    idx = atom.GetIdx()
    neighbours = list(atom.GetNeighbors())
    if atom.GetIsAromatic():
        ring = _benzene_ring(mol, atom)
        if atom.GetDegree() != 3:
            raise _uncovered(atom, f"aromatic carbon with {atom.GetDegree()} neighbours")
        outside = [n for n in neighbours if n.GetIdx() not in ring]
        (substituent,) = outside
        if substituent.GetIsAromatic():
            raise _uncovered(atom, "aromatic carbon bonded to another aromatic ring (biaryl)")
        if substituent.GetSymbol() == "C" and (
            substituent.GetHybridization() != Chem.HybridizationType.SP3
        ):
            raise _uncovered(atom, "aromatic carbon bonded to an unsaturated carbon")
        return _AROMATIC_C
    is_sp3 = (
        atom.GetHybridization() == Chem.HybridizationType.SP3
        and atom.GetDegree() == 4
        and all(b.GetBondType() == Chem.BondType.SINGLE for b in atom.GetBonds())
    )
    if not is_sp3:
        hybrid = str(atom.GetHybridization()).lower()
        raise _uncovered(atom, f"{hybrid} non-aromatic carbon")
    ring_info = mol.GetRingInfo()
    for size in (3, 4):
        if ring_info.IsAtomInRingOfSize(idx, size):
            raise _uncovered(atom, f"sp3 carbon in a {size}-membered ring")
    n_h = sum(1 for n in neighbours if n.GetSymbol() == "H")
    n_aromatic = sum(1 for n in neighbours if n.GetIsAromatic())
    if n_aromatic == 0:
        return _ALKANE_TYPE_BY_H[n_h]
    if n_aromatic == 1:
        return _BENZYLIC_TYPE_BY_H[n_h]
    raise _uncovered(atom, f"sp3 carbon bonded to {n_aromatic} aromatic rings")


def _type_hydrogen(atom: Chem.Atom, carbon_types: Mapping[int, str]) -> str:
    neighbours = list(atom.GetNeighbors())
    if len(neighbours) != 1 or neighbours[0].GetSymbol() != "C":
        raise _uncovered(atom)
    carbon = carbon_types[neighbours[0].GetIdx()]
    return _AROMATIC_H if carbon == _AROMATIC_C else _ALKANE_H


def assign_atom_types(mol: Chem.Mol) -> list[str]:
    """OPLS-AA atom type id of every atom of ``mol`` (explicit hydrogens required).

    Heavy atoms are checked first, so an uncovered environment is reported at its carbon (or
    heteroatom) rather than at one of its hydrogens.
    """
    for atom in mol.GetAtoms():
        if atom.GetSymbol() not in ("C", "H"):
            raise _uncovered(atom)
        if atom.GetFormalCharge() != 0 or atom.GetNumRadicalElectrons() != 0:
            raise _uncovered(atom, "charged or radical")
        if atom.GetSymbol() == "C" and atom.GetTotalNumHs(includeNeighbors=False) > 0:
            raise InputError(
                f"atom {atom.GetIdx()} (C) has implicit hydrogens; add explicit hydrogens "
                "(Chem.AddHs) before typing"
            )
    carbon_types = {
        a.GetIdx(): _type_carbon(mol, a) for a in mol.GetAtoms() if a.GetSymbol() == "C"
    }
    return [
        carbon_types[a.GetIdx()] if a.GetSymbol() == "C" else _type_hydrogen(a, carbon_types)
        for a in mol.GetAtoms()
    ]


# --------------------------------------------------------------------------------- topology
def _bonded_terms(
    mol: Chem.Mol, types: list[str]
) -> tuple[list[tuple[int, int]], list, list, list]:
    neighbours = [sorted(n.GetIdx() for n in a.GetNeighbors()) for a in mol.GetAtoms()]
    bonds = sorted(tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds())
    angles = [
        (a, b, c)
        for b in range(mol.GetNumAtoms())
        for i, a in enumerate(neighbours[b])
        for c in neighbours[b][i + 1 :]
    ]
    dihedrals = [
        (a, b, c, d)
        for b, c in bonds
        for a in neighbours[b]
        if a != c
        for d in neighbours[c]
        if d != b and d != a
    ]
    impropers = []
    for k, type_id in enumerate(types):
        if type_id != _AROMATIC_C:
            continue
        ring = next(r for r in mol.GetRingInfo().AtomRings() if k in r)
        in_ring = [n for n in neighbours[k] if n in ring]
        (substituent,) = [n for n in neighbours[k] if n not in ring]
        impropers.append((in_ring[0], in_ring[1], k, substituent))
    return bonds, angles, dihedrals, impropers


def type_molecule(mol: Chem.Mol, name: str, smiles: str) -> MoleculeTopology:
    """Type an RDKit molecule with explicit hydrogens and one conformer into a topology.

    Positions come from the molecule's first conformer (Å in RDKit, converted to nm). Raises
    :class:`InputError` for atoms outside the hydrocarbon set and for class combinations that
    have no bonded parameters in the data file.
    """
    if mol.GetNumConformers() == 0:
        raise InputError(
            f"molecule {name}: no 3D conformer; build it with cgforge.molecules.load_molecule"
        )
    data = load_opls_data()
    types = assign_atom_types(mol)
    counters: dict[str, int] = {}
    atoms = []
    for atom, type_id in zip(mol.GetAtoms(), types, strict=True):
        t = data.atom_types[type_id]
        element = atom.GetSymbol()
        counters[element] = counters.get(element, 0) + 1
        atoms.append(
            Atom(
                name=f"{element}{counters[element]}",
                element=element,
                opls_type=t.type_id,
                bond_class=t.bond_class,
                mass_amu=t.mass_amu,
                charge_e=t.charge_e,
                sigma_nm=t.sigma_nm,
                epsilon_kj_mol=t.epsilon_kj_mol,
            )
        )
    bonds, angles, dihedrals, impropers = _bonded_terms(mol, types)
    classes = [a.bond_class for a in atoms]
    tables = {
        "bond": ({bond_key(*(classes[i] for i in b)) for b in bonds}, data.parameters.bonds),
        "angle": ({angle_key(*(classes[i] for i in a)) for a in angles}, data.parameters.angles),
        "dihedral": (
            {dihedral_key(*(classes[i] for i in d)) for d in dihedrals},
            data.parameters.dihedrals,
        ),
        "improper": ({tuple(classes[i] for i in d) for d in impropers}, data.parameters.impropers),
    }
    for kind, (used, table) in tables.items():
        missing = sorted(k for k in used if k not in table)
        if missing:
            raise InputError(
                f"molecule {name}: no OPLS-AA {kind} parameters for class combination "
                f"{', '.join('-'.join(k) for k in missing)} in {data.path}; the molecule is "
                f"outside {COVERAGE}"
            )
    positions_nm = np.asarray(mol.GetConformer().GetPositions(), dtype=float) * ANGSTROM_TO_NM
    topology = MoleculeTopology(
        name=name,
        smiles=smiles,
        atoms=tuple(atoms),
        bonds=tuple(bonds),
        angles=tuple(angles),
        dihedrals=tuple(dihedrals),
        impropers=tuple(impropers),
        parameters=data.parameters,
        positions_nm=positions_nm,
    )
    if not math.isclose(topology.net_charge_e, 0.0, abs_tol=1e-9):
        raise InputError(
            f"molecule {name}: OPLS-AA charges sum to {topology.net_charge_e:+.4f} e, not 0"
        )
    return topology
