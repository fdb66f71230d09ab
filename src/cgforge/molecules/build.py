"""From a name or SMILES to a typed, three-dimensional OPLS-AA molecule."""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import AllChem
from rdkit.rdBase import BlockLogs

from cgforge.errors import InputError
from cgforge.molecules import library, opls
from cgforge.molecules.topology import MoleculeTopology

_MMFF_MAX_ITERS = 2000


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


def load_molecule(spec: str, *, seed: int = 0) -> MoleculeTopology:
    """A typed OPLS-AA molecule from a built-in name (or alias) or a SMILES string.

    The conformer is embedded with ETKDG (``seed``) and relaxed with MMFF94; positions are in
    nm. Heavy atoms keep the order of the SMILES (the built-in's SMILES for names), hydrogens
    follow; atom indices in error messages refer to that order. Built-in names are case-insensitive (see :mod:`cgforge.molecules.library`). Raises
    :class:`InputError` for unknown names that are not SMILES, for charged, radical or
    multi-fragment molecules, and for atoms outside the OPLS-AA hydrocarbon set.
    """
    name, smiles, mol = _resolve(spec)
    _check_single_neutral(mol, spec)
    # type before embedding: a clear typing error is cheaper than a failed embedding
    opls.assign_atom_types(Chem.AddHs(mol))
    mol_h = embed_molecule(mol, seed=seed, name=name)
    return opls.type_molecule(mol_h, name, smiles)
