"""All-atom molecules: built-in library, RDKit construction and OPLS-AA typing.

Construction (:mod:`~cgforge.molecules.build`) and OPLS-AA typing
(:mod:`~cgforge.molecules.opls`) need RDKit; their names are imported on first use, so the
topology, library and parameter randomisation import without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cgforge.molecules.library import (
    BUILTIN_MOLECULES,
    BuiltinMolecule,
    builtin_names,
    find_builtin,
    get_builtin,
    list_builtin_molecules,
    reference_density,
)
from cgforge.molecules.randomize import (
    ParameterRanges,
    draw_parameters,
    parameter_names,
    parameter_vector,
    randomize_molecule,
    vector_to_parameters,
)
from cgforge.molecules.topology import (
    AngleParameter,
    Atom,
    BondedParameters,
    BondParameter,
    FourierParameter,
    MoleculeTopology,
)

if TYPE_CHECKING:
    from cgforge.molecules.build import (
        MAX_HEAVY_ATOMS,
        check_molecule,
        load_molecule,
        resolve_spec,
    )
    from cgforge.molecules.opls import default_bonded_parameters, load_opls_data, type_molecule

#: Names of the RDKit modules, by the submodule that defines them (imported on first use).
_NEEDS_RDKIT = {
    **dict.fromkeys(
        ("MAX_HEAVY_ATOMS", "check_molecule", "load_molecule", "resolve_spec"), "build"
    ),
    **dict.fromkeys(("default_bonded_parameters", "load_opls_data", "type_molecule"), "opls"),
}


def __getattr__(name: str) -> Any:
    module = _NEEDS_RDKIT.get(name)
    if module is None:
        raise AttributeError(f"module 'cgforge.molecules' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cgforge.molecules.{module}"), name)


__all__ = [
    "BUILTIN_MOLECULES",
    "MAX_HEAVY_ATOMS",
    "AngleParameter",
    "Atom",
    "BondParameter",
    "BondedParameters",
    "BuiltinMolecule",
    "FourierParameter",
    "MoleculeTopology",
    "ParameterRanges",
    "builtin_names",
    "check_molecule",
    "default_bonded_parameters",
    "draw_parameters",
    "find_builtin",
    "get_builtin",
    "list_builtin_molecules",
    "load_molecule",
    "load_opls_data",
    "parameter_names",
    "parameter_vector",
    "randomize_molecule",
    "reference_density",
    "resolve_spec",
    "type_molecule",
    "vector_to_parameters",
]
