"""From a name or SMILES to a typed, three-dimensional OPLS-AA molecule."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.rdBase import BlockLogs

from cgforge.errors import InputError
from cgforge.molecules import library, opls
from cgforge.molecules.topology import MoleculeTopology

_MMFF_MAX_ITERS = 2000
#: Largest molecule accepted, in heavy atoms: the built-in liquids have at most 9, and one bead
#: per molecule suits small molecules; conformer generation and packing of much larger ones
#: take minutes to hours.
MAX_HEAVY_ATOMS = 30


def _parse_smiles(smiles: str) -> Chem.Mol | None:
    """Parse a SMILES string quietly; ``None`` if it is not valid."""
    if not smiles.strip() or any(c.isspace() for c in smiles.strip()):
        return None
    blocker = BlockLogs()
    try:
        return Chem.MolFromSmiles(smiles.strip())
    finally:
        del blocker


def _check_single_neutral(mol: Chem.Mol, spec: str) -> None:
    fragments = Chem.GetMolFrags(mol)
    if len(fragments) > 1:
        raise InputError(
            f"molecule '{spec}' has {len(fragments)} disconnected fragments; give one molecule "
            "(no '.' in the SMILES)"
        )
    for atom in mol.GetAtoms():
        if atom.GetFormalCharge() != 0:
            raise InputError(
                f"molecule '{spec}': atom {atom.GetIdx()} ({atom.GetSymbol()}) has formal charge "
                f"{atom.GetFormalCharge():+d}; cgforge models neutral molecules only"
            )
        if atom.GetNumRadicalElectrons() != 0:
            raise InputError(
                f"molecule '{spec}': atom {atom.GetIdx()} ({atom.GetSymbol()}) is a radical; "
                "cgforge models closed-shell molecules only"
            )


def _resolve(spec: str) -> tuple[str, str, Chem.Mol]:
    """``(name, canonical SMILES, molecule in the atom order of the input)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(
            "empty molecule name; give a built-in name "
            f"({', '.join(library.builtin_names())}) or a SMILES string"
        )
    builtin = library.find_builtin(spec)
    text = builtin.smiles if builtin is not None else spec
    mol = _parse_smiles(text)
    if mol is None:
        raise InputError(
            f"unknown molecule '{spec}': not a built-in name (list: "
            f"{', '.join(library.builtin_names())}) and not a valid SMILES"
        )
    canonical = Chem.MolToSmiles(mol)
    if builtin is not None:
        return builtin.name, canonical, mol
    for entry in library.BUILTIN_MOLECULES.values():
        if Chem.CanonSmiles(entry.smiles) == canonical:
            return entry.name, canonical, mol
    return canonical, canonical, mol


def resolve_spec(spec: str) -> tuple[str, str]:
    """``(name, canonical SMILES)`` for a built-in name, alias or SMILES string.

    A SMILES that is one of the built-in molecules gets the built-in's name.
    """
    name, smiles, _ = _resolve(spec)
    return name, smiles


def embed_molecule(mol: Chem.Mol, *, seed: int = 0, name: str = "molecule") -> Chem.Mol:
    """Add hydrogens, embed one conformer (ETKDG v3, seeded) and relax it with MMFF94.

    Returns a new molecule with explicit hydrogens and one conformer (coordinates in Å, as
    RDKit keeps them). The result depends only on the molecule and ``seed``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    mol_h = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    params.numThreads = 1
    if AllChem.EmbedMolecule(mol_h, params) != 0:
        params.useRandomCoords = True
        if AllChem.EmbedMolecule(mol_h, params) != 0:
            raise InputError(f"could not generate 3D coordinates for {name} (seed {seed})")
    if AllChem.MMFFHasAllMoleculeParams(mol_h):
        AllChem.MMFFOptimizeMolecule(mol_h, maxIters=_MMFF_MAX_ITERS)
    else:
        AllChem.UFFOptimizeMolecule(mol_h, maxIters=_MMFF_MAX_ITERS)
    return mol_h


def check_molecule(spec: str) -> tuple[str, str]:
    """``(name, canonical SMILES)`` of a molecule cgforge can build, checked without building it
    (milliseconds): a built-in name or SMILES of one neutral, closed-shell hydrocarbon of at most
    :data:`MAX_HEAVY_ATOMS` heavy atoms whose atoms OPLS-AA types. Raises :class:`InputError`.
    """
    name, smiles, mol = _resolve(spec)
    _check_single_neutral(mol, spec)
    heavy = mol.GetNumHeavyAtoms()
    if heavy > MAX_HEAVY_ATOMS:
        shown = spec if len(spec) <= 40 else spec[:37] + "..."
        raise InputError(
            f"molecule '{shown}' has {heavy} heavy atoms; cgforge builds molecules of at most "
            f"{MAX_HEAVY_ATOMS} (one bead per molecule suits small molecules): give a smaller one"
        )
    opls.assign_atom_types(Chem.AddHs(mol))
    return name, smiles


def load_molecule(spec: str, *, seed: int = 0) -> MoleculeTopology:
    """A typed OPLS-AA molecule from a built-in name (or alias) or a SMILES string.

    The conformer is embedded with ETKDG (``seed``) and relaxed with MMFF94; positions are in
    nm. Heavy atoms keep the order of the SMILES (the built-in's SMILES for names), hydrogens
    follow; atom indices in error messages refer to that order. Built-in names are case-insensitive (see :mod:`cgforge.molecules.library`). Raises
    :class:`InputError` for unknown names that are not SMILES, for charged, radical or
    multi-fragment molecules, for molecules beyond :data:`MAX_HEAVY_ATOMS` and for atoms outside
    the OPLS-AA hydrocarbon set (:func:`check_molecule`).
    """
    # check (and type) before embedding: a clear error is cheaper than a failed embedding
    name, smiles = check_molecule(spec)
    _, _, mol = _resolve(spec)
    mol_h = embed_molecule(mol, seed=seed, name=name)
    return opls.type_molecule(mol_h, name, smiles)
