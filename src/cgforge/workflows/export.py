"""``cgforge export``: a CG pair potential as input files of other simulation programs.

The source is a run directory holding ``potential.csv`` (``cgforge ibi`` / ``cgforge cg``
output, or the ``ibi`` work directory of an IBI run) or a potential table in any format of
:mod:`cgforge.potentials.io`. The bead mass, temperature and density come from the run's
``summary.json`` (keys ``bead_mass_amu``, ``temperature_K``, ``density_g_cm3``) or, in an IBI
work directory, ``ibi.json`` (``mass_amu``, ``temperature_K``, ``n_beads``, ``box_nm``); a
table file named ``potential.csv`` uses the files beside it. Explicit arguments override
them. Formats and the files they write:

``lammps`` (units ``real``: Å, kcal/mol, g/mol, fs)
    ``CG.table``: ``pair_style table`` file, section ``CG_CG``, ending at the cutoff and
    starting at most one grid step above r = 0 (a table that starts further out is continued
    inwards with the repulsive wall of
    :meth:`~cgforge.potentials.TabulatedPotential.extend_repulsive`, so LAMMPS never meets a
    distance below the table). ``in.cg``: the input lines ``units real``, ``atom_style
    atomic``, ``mass``, ``pair_style table linear N`` (N = the table's rows) and
    ``pair_coeff 1 1 CG.table CG_CG <cutoff in Å>``.
``gromacs`` (nm, kJ/mol, amu)
    ``table_CG_CG.xvg`` and ``table.xvg`` (user table, V in the h column), ``cg.top`` (one
    atom type, C6 = 0, C12 = 1), ``cg.mdp`` (the table lines), ``conf.gro`` (beads at the
    run's density, when known) and ``README.txt``. User tables for non-bonded interactions
    need the group cut-off scheme, which GROMACS 2020 removed: the files run in GROMACS 2019
    and older only, and ``README.txt`` says so.
``openmm`` (nm, kJ/mol, amu)
    ``system.xml``: a serialized ``openmm.System`` of ``n_beads`` beads in a cubic box at the
    run's density with the tabulated ``CustomNonbondedForce`` of
    :func:`~cgforge.engines.cg_system.create_cg_system`; ``start.pdb`` (jittered lattice),
    ``potential.csv`` and ``README.txt``.
``votca`` (nm, kJ/mol)
    ``CG-CG.pot.new`` (``r U flag``) and a ``settings.xml`` skeleton (bead name, min, max,
    step, kBT).
``csv``
    ``potential.csv`` (a byte copy when the source is one).

Every format also writes ``export.json`` (source, its SHA-256, units, the files), last. The
output directory must be empty unless ``overwrite`` is set (files of the same names are then
replaced, others left alone). All files are first generated in a scratch directory, so bad
input leaves the output directory untouched, and each is then moved into place atomically.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import openmm.app as app

from cgforge import __version__
from cgforge.engines.cg_system import (
    BEAD_NAME,
    cg_topology,
    check_cutoff,
    create_cg_system,
    lattice_positions,
)
from cgforge.errors import InputError, require_positive
from cgforge.fileio import atomic_path, check_creatable_dir, sha256_file, write_json, write_text
from cgforge.potentials.io import (
    lammps_pair_commands,
    read_lammps,
    read_potential,
    write_csv,
    write_gromacs_xvg,
    write_lammps,
    write_votca,
)
from cgforge.potentials.table import TabulatedPotential
from cgforge.runsummary import read_json_object
from cgforge.units import AMU_NM3_TO_G_CM3, ANGSTROM_TO_NM, kT

#: Target formats of :func:`export_potential`.
EXPORT_FORMATS = ("lammps", "gromacs", "openmm", "votca", "csv")
#: Default number of beads of the OpenMM system and the GROMACS start configuration.
DEFAULT_EXPORT_BEADS = 1000
#: Section keyword of the LAMMPS table and the pair name used by GROMACS and VOTCA.
LAMMPS_KEYWORD = "CG_CG"
PAIR_NAME = f"{BEAD_NAME}-{BEAD_NAME}"
MANIFEST = "export.json"
_POTENTIAL_CSV = "potential.csv"
_NM_TO_ANGSTROM = 1.0 / ANGSTROM_TO_NM
#: U(cutoff) beyond this (kJ/mol) is reported: the table is truncated there, not shifted.
_CUTOFF_ENERGY_TOL_KJ_MOL = 1.0e-6


# ====================================================================== the source
@dataclass(frozen=True)
class ExportSource:
    """A potential and what is known about the run that made it.

    ``mass_amu`` (bead mass, amu), ``number_density_nm3`` (beads per nm³) and
    ``temperature_K`` are None when neither the run's files nor the caller give them.
    ``metadata_path`` is the ``summary.json`` or ``ibi.json`` they came from, if any.
    """

    potential: TabulatedPotential
    potential_path: Path
    mass_amu: float | None
    number_density_nm3: float | None
    temperature_K: float | None
    metadata_path: Path | None

    @property
    def density_g_cm3(self) -> float | None:
        """Mass density in g/cm³ (None without mass or number density)."""
        if self.mass_amu is None or self.number_density_nm3 is None:
            return None
        return self.number_density_nm3 * self.mass_amu * AMU_NM3_TO_G_CM3


def _positive_or_none(value: Any, parameter: str, source: Path | str) -> float | None:
    if value is None:
        return None
    return require_positive(value, f"{source}: {parameter}", parameter=parameter)


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, fix="rerun the run that wrote it")


def _run_metadata(directory: Path) -> tuple[dict[str, float | None], Path | None]:
    """Mass, number density and temperature from summary.json or ibi.json in ``directory``."""
    summary, ibi = directory / "summary.json", directory / "ibi.json"
    if summary.is_file():
        data = _read_json(summary)
        mass = _positive_or_none(data.get("bead_mass_amu"), "bead_mass_amu", summary)
        density = _positive_or_none(data.get("density_g_cm3"), "density_g_cm3", summary)
        number = None if mass is None or density is None else density / (mass * AMU_NM3_TO_G_CM3)
        temperature = _positive_or_none(data.get("temperature_K"), "temperature_K", summary)
        return {"mass": mass, "number": number, "temperature": temperature}, summary
    if ibi.is_file():
        data = _read_json(ibi)
        mass = _positive_or_none(data.get("mass_amu"), "mass_amu", ibi)
        temperature = _positive_or_none(data.get("temperature_K"), "temperature_K", ibi)
        number = None
        n_beads, box = data.get("n_beads"), data.get("box_nm")
        if n_beads is not None and box is not None:
            try:
                per_volume = float(n_beads) / float(np.prod(np.asarray(box, dtype=float)))
            except (TypeError, ValueError, ZeroDivisionError):
                raise InputError(
                    f"{ibi}: n_beads = {n_beads!r} and box_nm = {box!r} give no density"
                ) from None
            number = _positive_or_none(per_volume, "n_beads / box volume", ibi)
        return {"mass": mass, "number": number, "temperature": temperature}, ibi
    return {"mass": None, "number": None, "temperature": None}, None


def load_export_source(
    source: str | Path,
    *,
    mass_amu: float | None = None,
    density_g_cm3: float | None = None,
    temperature_K: float | None = None,
) -> ExportSource:
    """The potential of a run directory or table file, with the run's mass, density and T.

    ``mass_amu`` (amu), ``density_g_cm3`` (g/cm³) and ``temperature_K`` (K) override what the
    run's ``summary.json``/``ibi.json`` say. The number density (beads per nm³) is the run's
    unless ``density_g_cm3`` is given, so a new mass alone changes the mass density only.

    Raises
    ------
    InputError
        The source does not exist, a directory holds no ``potential.csv``, the table or the
        run's JSON cannot be read, or an override is not a positive number.
    """
    path = Path(source)
    if path.is_dir():
        table_path = path / _POTENTIAL_CSV
        if not table_path.is_file():
            raise InputError(
                f"{path} holds no {_POTENTIAL_CSV}; give the run directory of an IBI or CG run "
                "('cgforge ibi', 'cgforge cg'), its ibi/ work directory, or a potential table file"
            )
        meta, meta_path = _run_metadata(path)
    elif path.is_file():
        table_path = path
        if path.name == _POTENTIAL_CSV:
            meta, meta_path = _run_metadata(path.parent)
        else:
            meta, meta_path = {"mass": None, "number": None, "temperature": None}, None
    else:
        raise InputError(
            f"{path} not found; give a cgforge run directory (with {_POTENTIAL_CSV}) or a "
            "potential table file"
        )
    potential = read_potential(table_path)
    mass = _positive_or_none(mass_amu, "mass_amu", "export")
    density = _positive_or_none(density_g_cm3, "density_g_cm3", "export")
    temperature = _positive_or_none(temperature_K, "temperature_K", "export")
    mass = meta["mass"] if mass is None else mass
    number = meta["number"]
    if density is not None:
        if mass is None:
            raise InputError(
                "density_g_cm3 needs the bead mass to give a number density; add mass_amu",
                parameters=("density_g_cm3", "mass_amu"),
            )
        number = density / (mass * AMU_NM3_TO_G_CM3)
    return ExportSource(
        potential=potential,
        potential_path=table_path.resolve(),
        mass_amu=mass,
        number_density_nm3=number,
        temperature_K=meta["temperature"] if temperature is None else temperature,
        metadata_path=None if meta_path is None else meta_path.resolve(),
    )


def _need(value: float | None, what: str, parameter: str, fmt: str, key: str) -> float:
    if value is None:
        holds = "it" if key == parameter else key
        raise InputError(
            f"the {fmt} export needs the {what}: give {parameter} or a run directory whose "
            f"summary.json holds {holds}",
            parameters=parameter,
        )
    return value


# ====================================================================== result
@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_potential` wrote: the directory, the format, file names, notes."""

    out_dir: Path
    format: str
    files: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Options:
    n_beads: int
    seed: int


_Writer = Callable[[ExportSource, Path, _Options], list[str]]


def _provenance(src: ExportSource) -> str:
    return f"cgforge {__version__} export of {src.potential_path}"


def _cutoff_note(potential: TabulatedPotential) -> list[str]:
    u_c = float(potential.truncate().u_kj_mol[-1])
    if abs(u_c) <= _CUTOFF_ENERGY_TOL_KJ_MOL:
        return []
    return [
        f"U(cutoff) = {u_c:.4g} kJ/mol, not 0: the programs truncate the potential there (a "
        "jump in energy); taper it first with TabulatedPotential.smooth_cutoff"
    ]


def _box_edge_nm(src: ExportSource, n_beads: int, fmt: str) -> float:
    number = _need(src.number_density_nm3, "density", "density_g_cm3", fmt, "density_g_cm3")
    box = (n_beads / number) ** (1.0 / 3.0)
    try:
        check_cutoff(src.potential.cutoff_nm, box)
    except InputError:
        need = math.ceil(number * (2.0 * src.potential.cutoff_nm) ** 3)
        raise InputError(
            f"{n_beads} beads at {number:.4g} nm^-3 make a box of {box:.4g} nm, shorter than "
            f"twice the cutoff {src.potential.cutoff_nm:.4g} nm; use n_beads {need} or more",
            parameters="n_beads",
        ) from None
    return box


# ====================================================================== LAMMPS
def _lammps_extension_nm(potential: TabulatedPotential) -> float | None:
    """Where to start the wall so that the LAMMPS table begins within one step of r = 0."""
    r0, dr = potential.r_min_nm, potential.dr_nm
    if r0 <= 0.0:
        return None  # starts at 0: the writer drops that row, the table starts at dr
    steps = math.floor(r0 / dr + 1.0e-6)
    if steps < 1:
        return None  # already within one step of 0
    start = r0 - steps * dr
    return start if start > 1.0e-6 * dr else 0.0  # 0: the writer drops the row at r = 0


def _write_lammps(src: ExportSource, stage: Path, opts: _Options) -> list[str]:
    mass = _need(src.mass_amu, "bead mass", "mass_amu", "LAMMPS", "bead_mass_amu")
    extend = _lammps_extension_nm(src.potential)
    table_name = "CG.table"
    write_lammps(
        stage / table_name,
        src.potential,
        keyword=LAMMPS_KEYWORD,
        extend_to_nm=extend,
        provenance=_provenance(src),
    )
    written = read_lammps(stage / table_name, keyword=LAMMPS_KEYWORD)
    pair = lammps_pair_commands(
        table_name, src.potential, keyword=LAMMPS_KEYWORD, style="linear", extend_to_nm=extend
    )
    pair_lines = [
        f"{words[0]:<15} {' '.join(words[1:])}"
        for words in (line.split() for line in pair.splitlines())
        if words and not words[0].startswith("#")
    ]
    lines = [
        "# cgforge one-bead CG model: LAMMPS input lines",
        "# units real: distance Angstrom, energy kcal/mol, mass g/mol, time fs, temperature K",
        f"# pair potential: {table_name}, section {LAMMPS_KEYWORD}, {len(written)} rows from "
        f"{written.r_min_nm * _NM_TO_ANGSTROM:.6g} to {written.r_max_nm * _NM_TO_ANGSTROM:.6g}"
        " Angstrom, cut off at the last row",
        f"# source: {src.potential_path}",
    ]
    if src.temperature_K is not None:
        lines.append(f"# temperature of the run: {src.temperature_K:.6g} K")
    if src.number_density_nm3 is not None:
        per_a3 = src.number_density_nm3 * ANGSTROM_TO_NM**3
        lines.append(
            f"# density of the run: {per_a3:.6g} beads/Angstrom^3 ({src.density_g_cm3:.6g} g/cm^3)"
        )
    lines += [
        "units           real",
        "atom_style      atomic",
        "# create or read the periodic box here (create_box 1 ... or read_data ...): LAMMPS",
        "# needs the box before 'mass' and 'pair_coeff'",
        f"mass            1 {mass:.10g}",
        *pair_lines,
    ]
    write_text(stage / "in.cg", "\n".join(lines) + "\n")
    return [table_name, "in.cg"]


# ====================================================================== GROMACS
def _gro_text(positions_nm: np.ndarray, box_nm: float, title: str) -> str:
    lines = [title, f"{len(positions_nm)}"]
    for i, (x, y, z) in enumerate(positions_nm):
        number = (i + 1) % 100000
        lines.append(
            f"{number:>5d}{BEAD_NAME:<5s}{BEAD_NAME:>5s}{number:>5d}{x:8.3f}{y:8.3f}{z:8.3f}"
        )
    lines.append(f"{box_nm:10.5f}{box_nm:10.5f}{box_nm:10.5f}")
    return "\n".join(lines) + "\n"


def _gromacs_readme(src: ExportSource, n_beads: int, with_gro: bool, mass: float) -> str:
    gro_line = (
        f"  conf.gro         {n_beads} beads on a jittered lattice at the run's density\n"
        if with_gro
        else "  (no conf.gro: the run's density is unknown; export again with a density to get "
        "one)\n"
    )
    return (
        "cgforge export: GROMACS files for a one-bead CG model (nm, kJ/mol, amu)\n"
        f"source: {src.potential_path}\n"
        "\n"
        "Files\n"
        "  table_CG_CG.xvg  the pair potential as a GROMACS user table: r from 0 to cutoff +\n"
        "                   1 nm (table-extension) in steps of 0.002 nm, V(r) in the h column and\n"
        "                   -dV/dr in -h' (f and g are zero); below the table's first point a\n"
        "                   repulsive wall fills in down to r = 0\n"
        "  table.xvg        the same table under GROMACS' default name (mdrun -table table.xvg)\n"
        f"  cg.top           one atom type CG, mass {mass:.6g} amu, C6 = 0 and C12 = 1 so that\n"
        "                   C12 * h(r) = V(r)\n"
        "  cg.mdp           the mdp lines that select the table; add integrator, temperature\n"
        "                   coupling, nsteps, output\n"
        f"{gro_line}"
        "\n"
        "Which GROMACS can run these files\n"
        "  A user table for short-range non-bonded interactions (vdwtype = user) works only\n"
        "  with the group cut-off scheme. GROMACS 2020 removed the group scheme, and its\n"
        "  release notes list 'user supplied tables for short-range nonbonded interactions' as\n"
        "  no longer supported. GROMACS 2020 and later therefore cannot run this model:\n"
        "  grompp stops on cutoff-scheme = group ('The group cutoff scheme has been removed\n"
        "  since GROMACS 2020'), and with cutoff-scheme = Verlet on vdwtype = user ('With\n"
        "  Verlet lists only cut-off and PME LJ interactions are supported').\n"
        "  The files are written for GROMACS 2019 and older (group scheme, deprecated since 5.0):\n"
        "    gmx grompp -f run.mdp -c conf.gro -p cg.top -o cg.tpr   (run.mdp includes cg.mdp)\n"
        "    gmx mdrun -s cg.tpr -table table.xvg\n"
        "  Tabulated bonded interactions (bonds of type 8 and 9) still exist in current\n"
        "  GROMACS, but they act only between atom pairs listed in the topology; the\n"
        "  neighbours of a bead in a liquid change all the time, so they cannot stand in for a\n"
        "  pair potential between all beads. cgforge offers no such substitute.\n"
        "  With current software run the model in OpenMM (cgforge cg, or an openmm export)\n"
        "  or LAMMPS (a lammps export).\n"
    )


def _write_gromacs(src: ExportSource, stage: Path, opts: _Options) -> list[str]:
    mass = _need(src.mass_amu, "bead mass", "mass_amu", "GROMACS", "bead_mass_amu")
    potential = src.potential
    rc = potential.cutoff_nm
    files = ["table_CG_CG.xvg", "table.xvg", "cg.top", "cg.mdp"]
    for name in files[:2]:
        write_gromacs_xvg(stage / name, potential, provenance=_provenance(src))
    top = [
        "; cgforge one-bead CG model: GROMACS topology (nm, kJ/mol, amu)",
        "; the pair potential is the user table table_CG_CG.xvg with V(r) in its h column;",
        "; C6 = 0 and C12 = 1 make C6*g(r) + C12*h(r) = V(r)",
        f"; source: {src.potential_path}",
        "",
        "[ defaults ]",
        "; nbfunc  comb-rule  gen-pairs  fudgeLJ  fudgeQQ",
        "  1       1          no         1.0      1.0",
        "",
        "[ atomtypes ]",
        "; name  mass  charge  ptype  C6  C12",
        f"  {BEAD_NAME}  {mass:.10g}  0.000  A  0.0  1.0",
        "",
        "[ moleculetype ]",
        "; name  nrexcl",
        f"  {BEAD_NAME}  1",
        "",
        "[ atoms ]",
        "; nr  type  resnr  residue  atom  cgnr  charge  mass",
        f"  1  {BEAD_NAME}  1  {BEAD_NAME}  {BEAD_NAME}  1  0.000  {mass:.10g}",
        "",
        "[ system ]",
        "cgforge one-bead CG liquid",
        "",
        "[ molecules ]",
        f"{BEAD_NAME}  {opts.n_beads}",
    ]
    write_text(stage / "cg.top", "\n".join(top) + "\n")
    mdp = [
        "; cgforge one-bead CG model: mdp lines for the tabulated pair potential",
        "; GROMACS 2019 and older only: user tables need the group cut-off scheme, which",
        "; GROMACS 2020 removed (see README.txt). Run mdrun with -table table.xvg.",
        "cutoff-scheme    = group",
        "vdwtype          = user",
        "coulombtype      = cut-off   ; the beads carry no charge",
        f"rvdw             = {rc:.10g}",
        f"rcoulomb         = {rc:.10g}",
        f"rlist            = {rc:.10g}",
        "table-extension  = 1         ; the tables reach cutoff + 1 nm",
        f"energygrps       = {BEAD_NAME}",
        f"energygrp-table  = {BEAD_NAME} {BEAD_NAME}",
        "DispCorr         = no",
    ]
    if src.temperature_K is not None:
        mdp.append(f"; temperature of the run: ref-t = {src.temperature_K:.6g}")
    write_text(stage / "cg.mdp", "\n".join(mdp) + "\n")
    with_gro = src.number_density_nm3 is not None
    if with_gro:
        box = _box_edge_nm(src, opts.n_beads, "GROMACS")
        positions = lattice_positions(opts.n_beads, box, opts.seed)
        title = f"cgforge one-bead CG liquid, {opts.n_beads} beads, {src.density_g_cm3:.6g} g/cm3"
        write_text(stage / "conf.gro", _gro_text(positions, box, title))
        files.append("conf.gro")
    write_text(stage / "README.txt", _gromacs_readme(src, opts.n_beads, with_gro, mass))
    return [*files, "README.txt"]


# ====================================================================== OpenMM
def _write_openmm(src: ExportSource, stage: Path, opts: _Options) -> list[str]:
    mass = _need(src.mass_amu, "bead mass", "mass_amu", "OpenMM", "bead_mass_amu")
    box = _box_edge_nm(src, opts.n_beads, "OpenMM")
    system = create_cg_system(src.potential, opts.n_beads, box, mass)
    write_text(stage / "system.xml", openmm.XmlSerializer.serialize(system))
    topology = cg_topology(opts.n_beads, box)
    positions = lattice_positions(opts.n_beads, box, opts.seed)
    with open(stage / "start.pdb", "w") as handle:
        app.PDBFile.writeFile(topology, positions * openmm.unit.nanometer, handle)
    write_csv(stage / _POTENTIAL_CSV, src.potential, provenance=_provenance(src))
    table = src.potential.openmm_function()
    temperature = (
        "the run's temperature is unknown"
        if src.temperature_K is None
        else f"run it at {src.temperature_K:.6g} K (the run's temperature)"
    )
    readme = "\n".join(
        [
            "cgforge export: OpenMM files for a one-bead CG model (nm, kJ/mol, amu, ps)",
            f"source: {src.potential_path}",
            "",
            f"  system.xml     serialized openmm.System: {opts.n_beads} beads of {mass:.6g} amu",
            f"                 in a cubic box of {box:.6g} nm ({src.density_g_cm3:.6g} g/cm3),",
            "                 one CustomNonbondedForce 'U_cg(r)' (U_cg a Continuous1DFunction",
            f"                 of {len(table.values)} values from 0 to the cutoff "
            f"{table.max_nm:.6g} nm;",
            "                 periodic, no switching, no long-range correction; U shifted by",
            f"                 {table.energy_shift_kj_mol:.6g} kJ/mol so that U(cutoff) = 0) and",
            "                 a CMMotionRemover; no thermostat or barostat",
            "  start.pdb      start positions (jittered lattice) and the box; minimise first",
            "  potential.csv  the pair potential r_nm,U_kJ_mol,F_kJ_mol_nm",
            "",
            "Load: system = openmm.XmlSerializer.deserialize(open('system.xml').read());",
            f"add an integrator and {temperature}.",
            "",
        ]
    )
    write_text(stage / "README.txt", readme)
    return ["system.xml", "start.pdb", _POTENTIAL_CSV, "README.txt"]


# ====================================================================== VOTCA
def _write_votca(src: ExportSource, stage: Path, opts: _Options) -> list[str]:
    pot_name = f"{PAIR_NAME}.pot.new"
    write_votca(stage / pot_name, src.potential, provenance=_provenance(src))
    table = src.potential.truncate()
    if src.temperature_K is None:
        kbt = "    <!-- kBT = k_B T in kJ/mol: the run's temperature is unknown, fill it in -->"
    else:
        kbt = (
            f"    <!-- k_B T in kJ/mol at {src.temperature_K:.6g} K -->\n"
            f"    <kBT>{kT(src.temperature_K):.10g}</kBT>"
        )
    settings = (
        '<?xml version="1.0"?>\n'
        "<!-- cgforge one-bead CG model: VOTCA settings skeleton (nm, kJ/mol).\n"
        f"     {pot_name} holds the potential on the grid min:step:max below.\n"
        "     Fill in the target distribution and the simulation program before csg_inverse. -->\n"
        "<cg>\n"
        "  <non-bonded>\n"
        f"    <name>{PAIR_NAME}</name>\n"
        f"    <type1>{BEAD_NAME}</type1>\n"
        f"    <type2>{BEAD_NAME}</type2>\n"
        f"    <min>{table.r_min_nm:.10g}</min>\n"
        f"    <max>{table.r_max_nm:.10g}</max>\n"
        f"    <step>{table.dr_nm:.10g}</step>\n"
        "    <inverse>\n"
        f"      <target>{PAIR_NAME}.dist.tgt</target>\n"
        "    </inverse>\n"
        "  </non-bonded>\n"
        "  <inverse>\n"
        f"{kbt}\n"
        "  </inverse>\n"
        "</cg>\n"
    )
    write_text(stage / "settings.xml", settings)
    return [pot_name, "settings.xml"]


# ====================================================================== CSV
def _write_csv(src: ExportSource, stage: Path, opts: _Options) -> list[str]:
    if src.potential_path.suffix.lower() == ".csv":
        shutil.copyfile(src.potential_path, stage / _POTENTIAL_CSV)
    else:
        write_csv(stage / _POTENTIAL_CSV, src.potential, provenance=_provenance(src))
    return [_POTENTIAL_CSV]


_WRITERS: dict[str, _Writer] = {
    "lammps": _write_lammps,
    "gromacs": _write_gromacs,
    "openmm": _write_openmm,
    "votca": _write_votca,
    "csv": _write_csv,
}


# ====================================================================== driver
def _check_format(fmt: str) -> str:
    name = str(fmt).lower()
    if name not in _WRITERS:
        raise InputError(
            f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    return name


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"out {out} is a file; give a directory path", parameters="out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(
            f"out {out} is not empty; choose a new directory or pass overwrite=True (files of "
            "the same names are replaced)",
            parameters=("out", "overwrite"),
        )
    check_creatable_dir(out)


def export_potential(
    source: str | Path,
    fmt: str,
    out: str | Path,
    *,
    overwrite: bool = False,
    mass_amu: float | None = None,
    density_g_cm3: float | None = None,
    temperature_K: float | None = None,
    n_beads: int = DEFAULT_EXPORT_BEADS,
    seed: int = 0,
) -> ExportResult:
    """Write the potential of ``source`` (run directory or table file) in format ``fmt``.

    Parameters
    ----------
    source:
        Run directory with ``potential.csv`` (and ``summary.json`` or ``ibi.json``), or a
        potential table file (format from its suffix).
    fmt:
        One of :data:`EXPORT_FORMATS`.
    out:
        Output directory; created if missing, refused if not empty unless ``overwrite``.
    mass_amu, density_g_cm3, temperature_K:
        Override the run's bead mass (amu), mass density (g/cm³) and temperature (K).
    n_beads:
        Beads of the OpenMM system and the GROMACS ``conf.gro`` (box from the density).
    seed:
        Seed of the start positions.

    Raises
    ------
    InputError
        Unknown format, missing or unreadable source, a value the format needs that is
        unknown (e.g. the mass for LAMMPS), a box too small for the cutoff, or a non-empty
        output directory without ``overwrite``. Nothing is written then.
    """
    name = _check_format(fmt)
    out_dir = Path(out)
    _check_out(out_dir, overwrite)
    if isinstance(n_beads, bool) or int(n_beads) != n_beads or int(n_beads) < 2:
        raise InputError(f"n_beads must be an integer >= 2, got {n_beads!r}", parameters="n_beads")
    src = load_export_source(
        source, mass_amu=mass_amu, density_g_cm3=density_g_cm3, temperature_K=temperature_K
    )
    opts = _Options(n_beads=int(n_beads), seed=int(seed))
    notes = _cutoff_note(src.potential) if name != "csv" else []
    with tempfile.TemporaryDirectory(prefix="cgforge-export-") as scratch:
        stage = Path(scratch)
        files = _WRITERS[name](src, stage, opts)
        out_dir.mkdir(parents=True, exist_ok=True)
        for file_name in files:
            with atomic_path(out_dir / file_name) as tmp:
                shutil.copyfile(stage / file_name, tmp)
    manifest = {
        "cgforge_version": __version__,
        "format": name,
        "source": str(src.potential_path),
        "source_sha256": sha256_file(src.potential_path),
        "metadata": None if src.metadata_path is None else str(src.metadata_path),
        "bead_mass_amu": src.mass_amu,
        "number_density_nm3": src.number_density_nm3,
        "density_g_cm3": src.density_g_cm3,
        "temperature_K": src.temperature_K,
        "cutoff_nm": src.potential.cutoff_nm,
        "n_beads": opts.n_beads if name in ("openmm", "gromacs") else None,
        "units": "nm, kJ/mol, amu, K" if name != "lammps" else "LAMMPS real: A, kcal/mol, g/mol",
        "files": files,
        "notes": notes,
    }
    write_json(out_dir / MANIFEST, manifest)
    return ExportResult(out_dir=out_dir, format=name, files=(*files, MANIFEST), notes=tuple(notes))
