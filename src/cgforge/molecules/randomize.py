"""Randomised bonded OPLS-AA parameters for the synthetic database.

The all-atom liquids of cgforge's database keep the OPLS-AA *nonbonded* parameters (charges,
σ, ε) but draw their *bonded* parameters at random, so that the data set spans force fields
well beyond physically realistic ones. One parameter set is drawn per bonded **type** (per
canonical key of :class:`~cgforge.molecules.topology.BondedParameters`), so all bonds of one
type in a molecule share it, as in OPLS-AA.

Ranges (:class:`ParameterRanges`) are written in the units and functional form of the
OPLS-AA literature, E = K (r − r0)² and E = K (θ − θ0)² with K in kcal/mol/Å² and
kcal/mol/rad², lengths in Å, angles in degrees and Fourier coefficients in kcal/mol. Every
value is drawn **uniformly** from its range and converted to cgforge's units and OpenMM's
form E = ½ k (r − r0)², i.e. k = 2K (:func:`cgforge.units.kcal_per_A2_to_kj_per_nm2`).

Default ranges:

============================  ==================  ============================================
parameter                     range               applies to
============================  ==================  ============================================
bond force constant K         20 – 1000 kcal/mol/Å²  all bonds
bond length r0                1.0 – 2.5 Å         bonds between two heavy atoms (C–C, also
                                                  CA–CA and CA–CT)
bond length r0                0.6 – 1.8 Å         bonds with a hydrogen (C–H: CT–HC, CA–HA)
angle force constant K        5 – 100 kcal/mol/rad²  all angles
angle θ0                      70 – 140°           all angles
dihedral V1..V4               −2 – 2 kcal/mol     all proper dihedral types
improper V1..V4               −2 – 2 kcal/mol     all improper types (``None`` keeps OPLS-AA)
============================  ==================  ============================================

Impropers use the same Fourier form as proper dihedrals, so by default they are randomised
with the same range (aromatic rings may then pucker); set ``improper_v_kcal_mol=None`` to keep
the molecule's current (OPLS-AA) improper parameters. ``n_fourier_terms`` (default 4) says how
many of V1..V4 are drawn; the rest are zero.

A range ``(lo, hi)`` with ``lo == hi`` fixes the value. Whether a bond "has a hydrogen" is read
from the elements of the atoms of that bonded class in the molecule.

Constraints: when the all-atom system constrains bonds to hydrogen (``constraints="hbonds"``
in :func:`cgforge.engines.openmm_system.create_aa_system`), those bonds keep only their drawn
r0; their force constant k has no effect. The force constants of heavy-atom bonds (C–C) always
matter.

Reproducibility: each type's values come from its own :class:`numpy.random.Generator`, seeded
by the user's seed together with a stable encoding of the type's kind and key. The draw of a
type therefore depends only on (seed, kind, key, ranges): it is independent of dict ordering,
of the other types in the molecule, and identical for the same type in two molecules drawn
with the same seed (use different seeds for independent samples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cgforge.errors import InputError
from cgforge.molecules.topology import (
    AngleParameter,
    BondedParameters,
    BondParameter,
    FourierParameter,
    MoleculeTopology,
)
from cgforge.units import ANGSTROM_TO_NM, DEG_TO_RAD, KCAL_TO_KJ, kcal_per_A2_to_kj_per_nm2

__all__ = [
    "ParameterRanges",
    "draw_parameters",
    "parameter_names",
    "parameter_vector",
    "randomize_molecule",
    "vector_to_parameters",
]

Range = tuple[float, float]
_KINDS = ("bonds", "angles", "dihedrals", "impropers")
_SINGULAR = {"bonds": "bond", "angles": "angle", "dihedrals": "dihedral", "impropers": "improper"}
_FIELDS = {
    "bonds": ("length_nm", "k_kj_mol_nm2"),
    "angles": ("theta0_rad", "k_kj_mol_rad2"),
    "dihedrals": ("v1_kj_mol", "v2_kj_mol", "v3_kj_mol", "v4_kj_mol"),
    "impropers": ("v1_kj_mol", "v2_kj_mol", "v3_kj_mol", "v4_kj_mol"),
}


def _as_range(value: Any, name: str) -> Range:
    """``value`` as a finite, non-inverted (lo, hi) pair, or InputError naming ``name``."""
    try:
        pair = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"range {name} must be a pair (lo, hi) of numbers, got {value!r}") from exc
    if len(pair) != 2:
        raise InputError(f"range {name} must be a pair (lo, hi) of numbers, got {value!r}")
    lo, hi = pair
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"range {name} = ({lo:g}, {hi:g}) must hold finite numbers")
    if lo > hi:
        raise InputError(f"range {name} = ({lo:g}, {hi:g}) is inverted; write it as (low, high)")
    return (lo, hi)


@dataclass(frozen=True)
class ParameterRanges:
    """Uniform sampling ranges of bonded parameters, in the OPLS-AA literature's units.

    Force constants K follow E = K (x − x0)² (k = 2K in cgforge); see the module docstring
    for the defaults and which bonds use which length range.

    Attributes
    ----------
    bond_k_kcal_mol_A2: bond force constant K, kcal/mol/Å² (≥ 0).
    bond_cc_r0_A: length r0 of bonds between two heavy atoms, Å (> 0).
    bond_ch_r0_A: length r0 of bonds with a hydrogen, Å (> 0).
    angle_k_kcal_mol_rad2: angle force constant K, kcal/mol/rad² (≥ 0).
    angle_theta0_deg: equilibrium angle θ0, degrees, inside (0, 180).
    dihedral_v_kcal_mol: each drawn Fourier coefficient of proper dihedrals, kcal/mol.
    improper_v_kcal_mol: same for impropers; ``None`` keeps the molecule's own impropers.
    n_fourier_terms: how many of V1..V4 are drawn (1 to 4); higher ones are zero.
    """

    bond_k_kcal_mol_A2: Range = (20.0, 1000.0)
    bond_cc_r0_A: Range = (1.0, 2.5)
    bond_ch_r0_A: Range = (0.6, 1.8)
    angle_k_kcal_mol_rad2: Range = (5.0, 100.0)
    angle_theta0_deg: Range = (70.0, 140.0)
    dihedral_v_kcal_mol: Range = (-2.0, 2.0)
    improper_v_kcal_mol: Range | None = (-2.0, 2.0)
    n_fourier_terms: int = 4

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "n_fourier_terms" or (f.name == "improper_v_kcal_mol" and value is None):
                continue
            object.__setattr__(self, f.name, _as_range(value, f.name))
        for name in ("bond_k_kcal_mol_A2", "angle_k_kcal_mol_rad2"):
            lo, hi = getattr(self, name)
            if lo < 0.0:
                raise InputError(
                    f"range {name} = ({lo:g}, {hi:g}) allows negative force constants; use lo >= 0"
                )
        for name in ("bond_cc_r0_A", "bond_ch_r0_A"):
            lo, hi = getattr(self, name)
            if lo <= 0.0:
                raise InputError(f"range {name} = ({lo:g}, {hi:g}) must hold positive lengths")
        lo, hi = self.angle_theta0_deg
        if not (lo > 0.0 and hi < 180.0):
            raise InputError(
                f"range angle_theta0_deg = ({lo:g}, {hi:g}) must lie strictly inside "
                "(0, 180) degrees"
            )
        n = self.n_fourier_terms
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= 4:
            raise InputError(f"n_fourier_terms must be an integer from 1 to 4, got {n!r}")
        object.__setattr__(self, "n_fourier_terms", int(n))

    # ------------------------------------------------------------------ cgforge units
    @property
    def bond_k_kj_mol_nm2(self) -> Range:
        """Bond k range in kJ/mol/nm² for E = ½ k (r − r0)² (k = 2K)."""
        lo, hi = self.bond_k_kcal_mol_A2
        return (2.0 * kcal_per_A2_to_kj_per_nm2(lo), 2.0 * kcal_per_A2_to_kj_per_nm2(hi))

    @property
    def bond_cc_r0_nm(self) -> Range:
        """Heavy-atom bond length range in nm."""
        return (self.bond_cc_r0_A[0] * ANGSTROM_TO_NM, self.bond_cc_r0_A[1] * ANGSTROM_TO_NM)

    @property
    def bond_ch_r0_nm(self) -> Range:
        """Bond-to-hydrogen length range in nm."""
        return (self.bond_ch_r0_A[0] * ANGSTROM_TO_NM, self.bond_ch_r0_A[1] * ANGSTROM_TO_NM)

    @property
    def angle_k_kj_mol_rad2(self) -> Range:
        """Angle k range in kJ/mol/rad² for E = ½ k (θ − θ0)² (k = 2K)."""
        lo, hi = self.angle_k_kcal_mol_rad2
        return (2.0 * lo * KCAL_TO_KJ, 2.0 * hi * KCAL_TO_KJ)

    @property
    def angle_theta0_rad(self) -> Range:
        """θ0 range in rad."""
        return (self.angle_theta0_deg[0] * DEG_TO_RAD, self.angle_theta0_deg[1] * DEG_TO_RAD)

    @property
    def dihedral_v_kj_mol(self) -> Range:
        """Proper-dihedral Fourier coefficient range in kJ/mol."""
        return (self.dihedral_v_kcal_mol[0] * KCAL_TO_KJ, self.dihedral_v_kcal_mol[1] * KCAL_TO_KJ)

    @property
    def improper_v_kj_mol(self) -> Range | None:
        """Improper Fourier coefficient range in kJ/mol, or None (impropers kept)."""
        if self.improper_v_kcal_mol is None:
            return None
        lo, hi = self.improper_v_kcal_mol
        return (lo * KCAL_TO_KJ, hi * KCAL_TO_KJ)

    # ------------------------------------------------------------------ plain data
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists; units in the keys) for database metadata."""
        out = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParameterRanges:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"unknown parameter range(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**dict(data))


def _hydrogen_classes(molecule: MoleculeTopology) -> set[str]:
    return {a.bond_class for a in molecule.atoms if a.element == "H"}


def _type_rng(seed: int, kind: str, key: Sequence[str]) -> np.random.Generator:
    """A generator for one bonded type, from the seed and a stable encoding of the type."""
    label = f"{kind}:{'-'.join(key)}".encode()
    words = [int.from_bytes(label[i : i + 4], "little") for i in range(0, len(label), 4)]
    return np.random.default_rng(np.random.SeedSequence([seed, len(label), *words]))


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _fourier(rng: np.random.Generator, bounds: Range, n_terms: int) -> FourierParameter:
    v = np.zeros(4)
    v[:n_terms] = rng.uniform(bounds[0], bounds[1], n_terms)
    return FourierParameter(*(float(x) for x in v))


def draw_parameters(
    molecule: MoleculeTopology, ranges: ParameterRanges | None = None, seed: int = 0
) -> BondedParameters:
    """One uniform random draw of bonded parameters for every bonded type of ``molecule``.

    Values are in cgforge units (nm, rad, kJ/mol; k = 2K). The result contains exactly the
    types :meth:`MoleculeTopology.bonded_types` lists; impropers are copied from the molecule
    when ``ranges.improper_v_kcal_mol`` is None. The same (molecule, ranges, seed) gives the
    same result.
    """
    ranges = ParameterRanges() if ranges is None else ranges
    seed = _check_seed(seed)
    hydrogens = _hydrogen_classes(molecule)
    types = molecule.bonded_types()

    bonds = {}
    for key in types["bonds"]:
        rng = _type_rng(seed, "bond", key)
        r0 = ranges.bond_ch_r0_nm if hydrogens.intersection(key) else ranges.bond_cc_r0_nm
        length = float(rng.uniform(*r0))
        k = float(rng.uniform(*ranges.bond_k_kj_mol_nm2))
        bonds[key] = BondParameter(length_nm=length, k_kj_mol_nm2=k)
    angles = {}
    for key in types["angles"]:
        rng = _type_rng(seed, "angle", key)
        theta0 = float(rng.uniform(*ranges.angle_theta0_rad))
        k = float(rng.uniform(*ranges.angle_k_kj_mol_rad2))
        angles[key] = AngleParameter(theta0_rad=theta0, k_kj_mol_rad2=k)
    dihedrals = {
        key: _fourier(
            _type_rng(seed, "dihedral", key), ranges.dihedral_v_kj_mol, ranges.n_fourier_terms
        )
        for key in types["dihedrals"]
    }
    improper_range = ranges.improper_v_kj_mol
    if improper_range is None:
        impropers = {key: molecule.parameters.impropers[key] for key in types["impropers"]}
    else:
        impropers = {
            key: _fourier(_type_rng(seed, "improper", key), improper_range, ranges.n_fourier_terms)
            for key in types["impropers"]
        }
    return BondedParameters(bonds=bonds, angles=angles, dihedrals=dihedrals, impropers=impropers)


def randomize_molecule(
    molecule: MoleculeTopology, ranges: ParameterRanges | None = None, seed: int = 0
) -> MoleculeTopology:
    """``molecule`` with bonded parameters from :func:`draw_parameters`; nonbonded unchanged."""
    return molecule.with_parameters(draw_parameters(molecule, ranges, seed))


def parameter_names(molecule: MoleculeTopology) -> tuple[str, ...]:
    """Names of the entries of :func:`parameter_vector`, e.g. ``bond:CT-HC:k_kj_mol_nm2``.

    Order: bonds, angles, dihedrals, impropers; within a kind the types in the sorted order of
    :meth:`MoleculeTopology.bonded_types`; within a type the fields in a fixed order (bond:
    ``length_nm, k_kj_mol_nm2``; angle: ``theta0_rad, k_kj_mol_rad2``; torsions:
    ``v1_kj_mol .. v4_kj_mol``).
    """
    names = []
    for kind, keys in molecule.bonded_types().items():
        for key in keys:
            names.extend(f"{_SINGULAR[kind]}:{'-'.join(key)}:{f}" for f in _FIELDS[kind])
    return tuple(names)


def parameter_vector(
    molecule: MoleculeTopology, params: BondedParameters | None = None
) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    """A flat, stably ordered feature vector of the bonded parameters ``molecule`` uses.

    ``params`` defaults to the molecule's own. Returns ``(names, values)`` with names from
    :func:`parameter_names` and values in cgforge units (float64). Types present in ``params``
    but not used by the molecule are ignored; missing ones raise :class:`InputError`.
    """
    params = molecule.parameters if params is None else params
    molecule.check_parameters(params)
    tables = {
        "bonds": params.bonds,
        "angles": params.angles,
        "dihedrals": params.dihedrals,
        "impropers": params.impropers,
    }
    values: list[float] = []
    for kind, keys in molecule.bonded_types().items():
        for key in keys:
            p = tables[kind][key]
            if kind == "bonds":
                values.extend((p.length_nm, p.k_kj_mol_nm2))
            elif kind == "angles":
                values.extend((p.theta0_rad, p.k_kj_mol_rad2))
            else:
                values.extend(p.as_tuple())
    return parameter_names(molecule), np.array(values, dtype=np.float64)


def vector_to_parameters(
    molecule: MoleculeTopology, values: ArrayLike, names: Sequence[str] | None = None
) -> BondedParameters:
    """Inverse of :func:`parameter_vector` for ``molecule``.

    ``values`` must have one finite entry per name of :func:`parameter_names`; if ``names``
    is given it must equal those names (so vectors of another molecule are refused).
    """
    expected = parameter_names(molecule)
    if names is not None and tuple(names) != expected:
        raise InputError(
            f"parameter names do not match molecule {molecule.name}; build the vector with "
            "parameter_vector() for this molecule"
        )
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (len(expected),):
        raise InputError(
            f"parameter vector of molecule {molecule.name} must have {len(expected)} entries, "
            f"got shape {v.shape}"
        )
    if not np.all(np.isfinite(v)):
        bad = expected[int(np.flatnonzero(~np.isfinite(v))[0])]
        raise InputError(f"parameter {bad} is not a finite number")
    tables: dict[str, dict] = {kind: {} for kind in _KINDS}
    i = 0
    for kind, keys in molecule.bonded_types().items():
        for key in keys:
            n = len(_FIELDS[kind])
            chunk = [float(x) for x in v[i : i + n]]
            i += n
            if kind == "bonds":
                tables[kind][key] = BondParameter(*chunk)
            elif kind == "angles":
                tables[kind][key] = AngleParameter(*chunk)
            else:
                tables[kind][key] = FourierParameter(*chunk)
    return BondedParameters(**tables)
