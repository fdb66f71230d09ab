"""Tabulated CG pair potentials and their file formats (CSV, LAMMPS, GROMACS, VOTCA).

Internal units: r in nm, U in kJ/mol, F = −dU/dr in kJ/mol/nm.
"""

from cgforge.potentials.io import (
    FORMATS,
    TableFormat,
    available_formats,
    get_format,
    guess_format,
    lammps_pair_commands,
    read_csv,
    read_gromacs_xvg,
    read_lammps,
    read_potential,
    read_votca,
    register_format,
    write_csv,
    write_gromacs_xvg,
    write_lammps,
    write_potential,
    write_votca,
)
from cgforge.potentials.table import OpenMMTable, TabulatedPotential

__all__ = [
    "FORMATS",
    "OpenMMTable",
    "TableFormat",
    "TabulatedPotential",
    "available_formats",
    "get_format",
    "guess_format",
    "lammps_pair_commands",
    "read_csv",
    "read_gromacs_xvg",
    "read_lammps",
    "read_potential",
    "read_votca",
    "register_format",
    "write_csv",
    "write_gromacs_xvg",
    "write_lammps",
    "write_potential",
    "write_votca",
]
