"""All-atom molecules: built-in library, RDKit construction and OPLS-AA typing."""

from cgforge.molecules.build import MAX_HEAVY_ATOMS, check_molecule, load_molecule, resolve_spec
from cgforge.molecules.library import (
    BUILTIN_MOLECULES,
    BuiltinMolecule,
    builtin_names,
    find_builtin,
    get_builtin,
    list_builtin_molecules,
    reference_density,
)
from cgforge.molecules.opls import default_bonded_parameters, load_opls_data, type_molecule
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
