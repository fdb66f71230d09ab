"""Built-in molecules: names, aliases, SMILES and experimental liquid densities.

Names are matched case-insensitively and ignoring spaces, hyphens, underscores and commas, so
``"3-Methylpentane"``, ``"3methylpentane"`` and the alias ``"3MP"`` are the same molecule.

The densities are experimental liquid densities at 298.15 K and 1 atm (neopentane: saturated
liquid, see its note) from the TRC Thermodynamic Tables – Hydrocarbons (the continuation of API
Research Project 44) as reproduced in the CRC Handbook of Chemistry and Physics and in
J. A. Riddick, W. B. Bunger, T. K. Sakano, *Organic Solvents*, 4th ed. (Wiley, 1986). They are
meant for validating simulated densities; the stated uncertainty covers the spread between these
compilations. Molar masses use the IUPAC conventional atomic weights C 12.011, H 1.008, the
OPLS-AA masses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from cgforge.errors import InputError

_TRC = "TRC Thermodynamic Tables - Hydrocarbons (API RP 44), 298.15 K"


@dataclass(frozen=True)
class BuiltinMolecule:
    """One built-in molecule with its reference data (units in the field names)."""

    name: str
    smiles: str
    residue_name: str  # at most 4 characters (PDB)
    molar_mass_g_mol: float
    density_g_cm3: float  # experimental liquid density at 298.15 K
    density_uncertainty_g_cm3: float
    density_source: str
    aliases: tuple[str, ...] = ()
    note: str = ""

    @property
    def molar_mass(self) -> float:
        """Molar mass in g/mol (same as ``molar_mass_g_mol``)."""
        return self.molar_mass_g_mol


_MOLECULES = (
    BuiltinMolecule(
        name="2,3,4-trimethylpentane",
        smiles="CC(C)C(C)C(C)C",
        residue_name="234T",
        molar_mass_g_mol=114.232,
        density_g_cm3=0.7152,
        density_uncertainty_g_cm3=0.0010,
        density_source=_TRC,
        aliases=("234tmp", "234-tmp"),
    ),
    BuiltinMolecule(
        name="3-ethylhexane",
        smiles="CCCC(CC)CC",
        residue_name="3EH",
        molar_mass_g_mol=114.232,
        density_g_cm3=0.7094,
        density_uncertainty_g_cm3=0.0015,
        density_source=_TRC,
        aliases=("3eh",),
    ),
    BuiltinMolecule(
        name="3-methylpentane",
        smiles="CCC(C)CC",
        residue_name="3MP",
        molar_mass_g_mol=86.178,
        density_g_cm3=0.6598,
        density_uncertainty_g_cm3=0.0010,
        density_source=_TRC,
        aliases=("3mp",),
    ),
    BuiltinMolecule(
        name="benzene",
        smiles="c1ccccc1",
        residue_name="BNZ",
        molar_mass_g_mol=78.114,
        density_g_cm3=0.8736,
        density_uncertainty_g_cm3=0.0005,
        density_source=f"{_TRC}; Riddick-Bunger-Sakano 0.87370",
        aliases=("bnz", "c6h6"),
    ),
    BuiltinMolecule(
        name="ethylbenzene",
        smiles="CCc1ccccc1",
        residue_name="EBZ",
        molar_mass_g_mol=106.168,
        density_g_cm3=0.8626,
        density_uncertainty_g_cm3=0.0010,
        density_source=_TRC,
        aliases=("ebz", "eb"),
    ),
    BuiltinMolecule(
        name="neopentane",
        smiles="CC(C)(C)C",
        residue_name="NEO",
        molar_mass_g_mol=72.151,
        density_g_cm3=0.5852,
        density_uncertainty_g_cm3=0.0030,
        density_source=f"{_TRC}, saturated liquid",
        aliases=("2,2-dimethylpropane", "neop"),
        note=(
            "boils at 282.6 K at 1 atm: the reference is the saturated liquid at its vapour "
            "pressure (about 1.7 bar) at 298.15 K"
        ),
    ),
    BuiltinMolecule(
        name="mesitylene",
        smiles="Cc1cc(C)cc(C)c1",
        residue_name="MES",
        molar_mass_g_mol=120.195,
        density_g_cm3=0.8611,
        density_uncertainty_g_cm3=0.0020,
        density_source=f"{_TRC}; Merck Index gives 0.8637 at 293.15 K",
        aliases=("1,3,5-trimethylbenzene", "mes", "135tmb"),
    ),
    BuiltinMolecule(
        name="2,3-dimethylbutane",
        smiles="CC(C)C(C)C",
        residue_name="23DB",
        molar_mass_g_mol=86.178,
        density_g_cm3=0.6570,
        density_uncertainty_g_cm3=0.0010,
        density_source=_TRC,
        aliases=("23dmb", "diisopropyl"),
    ),
    BuiltinMolecule(
        name="n-hexane",
        smiles="CCCCCC",
        residue_name="HEX",
        molar_mass_g_mol=86.178,
        density_g_cm3=0.6548,
        density_uncertainty_g_cm3=0.0005,
        density_source=_TRC,
        aliases=("hexane", "nc6"),
    ),
    BuiltinMolecule(
        name="toluene",
        smiles="Cc1ccccc1",
        residue_name="TOL",
        molar_mass_g_mol=92.141,
        density_g_cm3=0.8623,
        density_uncertainty_g_cm3=0.0005,
        density_source=_TRC,
        aliases=("methylbenzene", "tol"),
    ),
)


def normalize_name(name: str) -> str:
    """Lookup key of a name: lower case without spaces, hyphens, underscores and commas."""
    return re.sub(r"[\s\-_,]", "", name.strip().lower())


def _build_index() -> Mapping[str, BuiltinMolecule]:
    index: dict[str, BuiltinMolecule] = {}
    for molecule in _MOLECULES:
        if len(molecule.residue_name) > 4:
            raise AssertionError(f"residue name of {molecule.name} longer than 4 characters")
        for label in (molecule.name, *molecule.aliases):
            key = normalize_name(label)
            if key in index and index[key] is not molecule:
                raise AssertionError(f"built-in name '{label}' is ambiguous")
            index[key] = molecule
    return MappingProxyType(index)


BUILTIN_MOLECULES: Mapping[str, BuiltinMolecule] = MappingProxyType({m.name: m for m in _MOLECULES})
_INDEX = _build_index()


def builtin_names() -> list[str]:
    """Canonical names of the built-in molecules, sorted."""
    return sorted(BUILTIN_MOLECULES)


def list_builtin_molecules() -> list[BuiltinMolecule]:
    """The built-in molecules, sorted by name."""
    return [BUILTIN_MOLECULES[name] for name in builtin_names()]


def find_builtin(name: str) -> BuiltinMolecule | None:
    """The built-in molecule called ``name`` (or one of its aliases), or ``None``."""
    return _INDEX.get(normalize_name(name))


def get_builtin(name: str) -> BuiltinMolecule:
    """The built-in molecule called ``name``; :class:`InputError` if there is none."""
    molecule = find_builtin(name)
    if molecule is None:
        raise InputError(
            f"unknown built-in molecule '{name}'; choose one of: {', '.join(builtin_names())}"
        )
    return molecule


def reference_density(name: str) -> float | None:
    """Experimental liquid density (g/cm³, 298.15 K) of a built-in molecule, else ``None``."""
    molecule = find_builtin(name)
    return molecule.density_g_cm3 if molecule is not None else None


def residue_name(name: str) -> str:
    """PDB residue name (≤ 4 characters) of a molecule: the built-in's, else ``"MOL"``."""
    molecule = find_builtin(name)
    return molecule.residue_name if molecule is not None else "MOL"
