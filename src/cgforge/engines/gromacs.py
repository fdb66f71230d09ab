"""GROMACS as an all-atom MD engine beside OpenMM, with the same protocol and the same result.

:class:`GromacsRunner` runs an :class:`~cgforge.engines.protocol.MDProtocol` with ``gmx grompp``
and ``gmx mdrun`` and returns the :class:`~cgforge.engines.protocol.MDResult` the OpenMM runner
returns: unwrapped bead centres, mapped forces if asked, and the thermo columns of
:data:`~cgforge.engines.protocol.THERMO_COLUMNS`.
The stages mirror the OpenMM runner:

1. steepest-descent minimisation (``integrator = steep``, at most 2000 steps),
2. NPT equilibration: stochastic dynamics (``sd``, inverse friction ``tau-t`` = 1/friction)
   with the stochastic cell-rescaling barostat (``C-rescale``),
3. the box set to the mean volume of the second half of the NPT stage, bead centres scaled
   affinely (molecules keep their internal geometry),
4. production at that volume with leap-frog ``md`` and a Nosé–Hoover thermostat (``nvt``) or no
   thermostat (``nve``).

A fixed production density (``production_density_scale`` × the NPT mean density or
``production_density_g_cm3`` of the protocol) sets step 3's box to the volume of that density
instead and runs a discarded ``relax`` stage before production: ``density_relax_ps`` of stochastic
dynamics (``sd``, the equilibration's friction) without barostat at the new volume; production
starts from its last frame (positions and velocities at full precision).

The Hamiltonian is OpenMM's (:mod:`cgforge.engines.openmm_system`): PME with the given cutoff
(``rvdw = rcoulomb``), Lennard-Jones truncated without any potential modifier, the analytic
long-range correction of energy and pressure for both LJ terms (``DispCorr = AllEnerPres``:
OpenMM's correction also holds the r⁻¹² tail, which plain ``EnerPres`` drops), bonds to hydrogen
constrained (LINCS), geometric combining rules (``comb-rule 3``) and OPLS 1-4 scaling 0.5/0.5
(``gen-pairs``). ``tests/test_gromacs.py`` checks the terms one by one against OpenMM.

Checkpoints: every ``mdrun`` writes a checkpoint every ``checkpoint_minutes`` of wall time and
when it is stopped (SIGTERM/SIGINT); a stage that was interrupted continues from its checkpoint
(``-cpi … -append``), so output files hold every frame exactly once. A small ``state.json``
records which stages are complete.

Units are cgforge's, which are also GROMACS' (nm, ps, kJ/mol, K, amu, e, bar); trajectories are
read through MDAnalysis with ``convert_units=False``, so no conversion happens anywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openmm.app as app

from cgforge import mapping
from cgforge.engines.protocol import (
    STAGE_IDS,
    THERMO_COLUMNS,
    MDProtocol,
    MDResult,
    ProgressCallback,
)
from cgforge.errors import InputError, SimulationError
from cgforge.fileio import read_state, write_json, write_npz, write_text
from cgforge.molecules.library import residue_name
from cgforge.molecules.topology import FourierParameter, MoleculeTopology
from cgforge.units import ANGSTROM_TO_NM, DEG_TO_RAD, density_g_cm3

__all__ = [
    "GMX_MISSING",
    "GromacsRunner",
    "GromacsSystem",
    "default_threads",
    "gmx_executable",
    "gmx_top_dir",
    "gmx_version",
    "gromacs_error",
    "mdp_settings",
    "performance_ns_per_day",
    "read_energy_file",
    "rerun_energies",
    "run_gmx",
    "write_gro",
    "write_gromacs_topology",
    "write_mdp",
]

GMX_MISSING = (
    "GROMACS (gmx) is not on the PATH: install it with 'apt-get install gromacs' "
    "(Debian/Ubuntu) or 'conda install -c conda-forge gromacs', or use engine='openmm'"
)
STATE_FILE = "state.json"
#: Steepest descent: at most as many steps as OpenMM's runner allows L-BFGS iterations, until the
#: largest force is below MINIMIZE_FMAX (kJ/mol/nm): overlaps gone, ready for dynamics.
MINIMIZE_STEPS = 2000
MINIMIZE_FMAX = 100.0
#: C-rescale barostat: coupling time (ps) and the isothermal compressibility (1/bar) it assumes.
#: The compressibility only sets the relaxation rate; C-rescale samples the NPT ensemble for any.
BAROSTAT_TAU_PS = 1.0
COMPRESSIBILITY_PER_BAR = 1.0e-4
#: PME settings: real-space error tolerance, grid spacing (nm) and interpolation order.
EWALD_RTOL = 1.0e-5
FOURIER_SPACING_NM = 0.12
PME_ORDER = 4
#: Pair-list buffer tolerance (kJ/mol/ps per atom) of NVE production; GROMACS' default 0.005
#: would let the total energy drift by several percent per ns.
NVE_BUFFER_TOLERANCE = 5.0e-5
#: Frames per particle chunk file handed to the output writer.
CHUNK_FRAMES = 200


# ------------------------------------------------------------------------------ executable
def gmx_executable() -> str:
    """Path of the ``gmx`` executable; :class:`InputError` with the install hint if absent."""
    path = shutil.which("gmx")
    if path is None:
        raise InputError(GMX_MISSING, parameters="engine")
    return path


@functools.cache
def _version_text(gmx: str) -> str:
    try:
        done = subprocess.run(
            [gmx, "--version"], capture_output=True, text=True, check=False, env=_gmx_env()
        )
    except OSError as exc:
        raise InputError(
            f"cannot run {gmx} ({exc}); reinstall GROMACS or use engine='openmm'",
            parameters="engine",
        ) from exc
    return done.stdout + done.stderr


def gmx_version() -> str:
    """The GROMACS version string, e.g. ``"2022.5"`` (distribution suffix dropped)."""
    text = _version_text(gmx_executable())
    match = re.search(r"GROMACS version:\s*(\S+)", text)
    if match is None:
        raise InputError("cannot read the GROMACS version from 'gmx --version'; reinstall GROMACS")
    return match.group(1).split("-")[0]


def gmx_top_dir() -> Path | None:
    """GROMACS' force-field directory (``<data prefix>/share/gromacs/top``), if it exists."""
    match = re.search(r"Data prefix:\s*(\S+)", _version_text(gmx_executable()))
    if match is None:
        return None
    path = Path(match.group(1)) / "share" / "gromacs" / "top"
    return path if path.is_dir() else None


def _gmx_env(threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["GMX_MAXBACKUP"] = "-1"  # no #backup# files: cgforge's state decides what is kept
    env["GMX_NO_QUOTES"] = "1"
    env.pop("OMP_NUM_THREADS", None)  # mdrun refuses an OMP_NUM_THREADS other than -ntomp
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def default_threads() -> int:
    """OpenMP threads for ``mdrun``: ``OMP_NUM_THREADS`` where set (as batch systems do for a
    job's cores), else every core this process may run on."""
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------ errors
_ERROR_BLOCK = re.compile(
    r"\nProgram:[^\n]*\n(?:(?:Source file|Function|MPI rank):[^\n]*\n)*\s*"
    r"(?P<heading>[A-Z][^\n:]*):\s*\n(?P<message>.*?)"
    r"(?:\n\s*For more information and tips|\n-{20,}|\Z)",
    re.S,
)
_INPUT_ISSUE = re.compile(r"\n((?:ERROR|WARNING) \d+ \[[^\n]*\]:\s*\n.*?)(?:\n\s*\n|\Z)", re.S)


def gromacs_error(text: str) -> str:
    """GROMACS' own error message (the ``Fatal error:`` block, or another heading such as
    ``Inconsistency in user input:``) as one line.

    When the fatal error only counts problems ("There was 1 error in input file(s)", "Too many
    warnings"), grompp's ``ERROR n``/``WARNING n`` messages are appended since they are what the
    user has to fix. Falls back to the last non-empty lines of ``text``.
    """
    block = _ERROR_BLOCK.search("\n" + text)
    if block is None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return " ".join(lines[-3:]) if lines else "no message"
    message = " ".join(block.group("message").split())
    heading = block.group("heading").strip()
    if heading != "Fatal error":
        message = f"{heading}: {message}"
    if re.search(r"warning|error", message, re.I):
        issues = [" ".join(w.split()) for w in _INPUT_ISSUE.findall("\n" + text)]
        if issues:
            message += ": " + " ".join(issues)
    return message


def run_gmx(
    args: Sequence[str],
    cwd: str | Path,
    *,
    what: str,
    error: type[Exception] = InputError,
    stdin: str | None = None,
) -> subprocess.CompletedProcess:
    """Run ``gmx <args>`` in ``cwd``; a non-zero exit raises ``error`` with GROMACS' message."""
    gmx = gmx_executable()
    done = subprocess.run(
        [gmx, *args],
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        check=False,
        env=_gmx_env(),
    )
    if done.returncode != 0:
        message = gromacs_error(done.stderr + "\n" + done.stdout)
        raise error(f"GROMACS {what} failed: {message}")
    return done


# ------------------------------------------------------------------------------ files
def _num(value: float) -> str:
    return f"{value:.10g}"


def _moleculetype_name(molecule: MoleculeTopology) -> str:
    name = residue_name(molecule.name)
    return re.sub(r"\W", "_", name) or "MOL"


def write_gromacs_topology(molecule: MoleculeTopology, n_molecules: int, path: str | Path) -> Path:
    """Write a self-contained GROMACS ``.top`` of ``n_molecules`` copies of ``molecule``.

    The parameters are those of the OpenMM system of :func:`cgforge.engines.openmm_system.
    create_aa_system` (including randomised bonded parameters, which live in
    ``molecule.parameters``):

    * ``[defaults]`` nbfunc 1 (LJ), comb-rule 3 (geometric σ and ε), gen-pairs yes,
      fudgeLJ = fudgeQQ = 0.5; ``[atomtypes]`` σ (nm), ε (kJ/mol) per OPLS type;
    * ``[moleculetype]`` nrexcl 3: 1-2, 1-3 and 1-4 pairs are excluded from the normal
      nonbonded interactions and the 1-4 pairs come back scaled through ``[pairs]`` (func 1);
    * ``[bonds]`` func 1, E = ½k(r − r0)² (same k as OpenMM, kJ/mol/nm²);
    * ``[angles]`` func 1, E = ½k(θ − θ0)², θ0 in degrees, k in kJ/mol/rad²;
    * proper ``[dihedrals]`` func 5 (Fourier): GROMACS' E = ½[C1(1+cos φ) + C2(1−cos 2φ) +
      C3(1+cos 3φ) + C4(1−cos 4φ)] with φ the IUPAC dihedral (trans = 180°) is exactly the OPLS
      series of :mod:`cgforge.molecules.topology`, so Cn = Vn (kJ/mol);
    * impropers ``[dihedrals]`` func 4 (periodic improper, E = k(1 + cos(nφ − φs))), one line
      per nonzero Vn with k = ½Vn, φs = 0° for odd n and 180° for even n, on the atom order
      (i, j, k, l) stored in the molecule: the terms of OpenMM's ``PeriodicTorsionForce``.

    Returns ``path``.
    """
    if not isinstance(n_molecules, int | np.integer) or n_molecules < 1:
        raise InputError(f"n_molecules must be a positive integer, got {n_molecules!r}")
    molecule.check_parameters(molecule.parameters)
    from openmm.app import element as elements

    # atom types: one per distinct (OPLS type, nonbonded parameters, element)
    type_names: dict[tuple, str] = {}
    atom_type: list[str] = []
    for atom in molecule.atoms:
        key = (atom.opls_type, atom.element, atom.mass_amu, atom.sigma_nm, atom.epsilon_kj_mol)
        if key not in type_names:
            base = re.sub(r"\W", "_", atom.opls_type) or "X"
            name, k = base, 1
            while name in type_names.values():
                k += 1
                name = f"{base}_{k}"
            type_names[key] = name
        atom_type.append(type_names[key])

    resname = residue_name(molecule.name)
    molname = _moleculetype_name(molecule)
    lines = [
        f"; {n_molecules} x {molecule.name} ({molecule.smiles}): OPLS-AA, written by cgforge",
        "; units: nm, kJ/mol, degrees (angles), e, amu",
        "",
        "[ defaults ]",
        "; nbfunc  comb-rule  gen-pairs  fudgeLJ  fudgeQQ",
        "  1       3          yes        0.5      0.5",
        "",
        "[ atomtypes ]",
        "; name  bond_type  at.num  mass  charge  ptype  sigma  epsilon",
    ]
    for key, name in type_names.items():
        opls_type, element, mass, sigma, epsilon = key
        atom = next(a for a in molecule.atoms if a.opls_type == opls_type)
        number = elements.Element.getBySymbol(element).atomic_number
        lines.append(
            f"  {name:<14s} {atom.bond_class:<4s} {number:3d} {_num(mass):>10s} 0.0  A  "
            f"{_num(sigma)}  {_num(epsilon)}"
        )
    lines += [
        "",
        "[ moleculetype ]",
        "; name  nrexcl",
        f"  {molname}  3",
        "",
        "[ atoms ]",
        "; nr  type  resnr  residue  atom  cgnr  charge  mass",
    ]
    for i, atom in enumerate(molecule.atoms, start=1):
        lines.append(
            f"  {i:5d} {atom_type[i - 1]:<14s} 1 {resname:<5s} {atom.name:<6s} {i:5d} "
            f"{_num(atom.charge_e):>12s} {_num(atom.mass_amu):>10s}"
        )
    lines += ["", "[ bonds ]", "; ai  aj  func  b0 (nm)  kb (kJ/mol/nm^2)"]
    for bond in molecule.bonds:
        p = molecule.bond_parameter(bond)
        i, j = (a + 1 for a in bond)
        lines.append(f"  {i:5d} {j:5d} 1 {_num(p.length_nm)} {_num(p.k_kj_mol_nm2)}")
    lines += ["", "[ pairs ]", "; ai  aj  func (parameters generated: fudgeLJ, fudgeQQ)"]
    for i, j in molecule.pairs_14():
        lines.append(f"  {i + 1:5d} {j + 1:5d} 1")
    lines += ["", "[ angles ]", "; ai  aj  ak  func  theta0 (deg)  k (kJ/mol/rad^2)"]
    for angle in molecule.angles:
        p = molecule.angle_parameter(angle)
        i, j, k = (a + 1 for a in angle)
        lines.append(
            f"  {i:5d} {j:5d} {k:5d} 1 {_num(p.theta0_rad / DEG_TO_RAD)} {_num(p.k_kj_mol_rad2)}"
        )
    lines += ["", "[ dihedrals ]", "; proper, Fourier: ai aj ak al func(5) C1 C2 C3 C4 (kJ/mol)"]
    for quad in molecule.dihedrals:
        p = molecule.dihedral_parameter(quad)
        if not any(p.as_tuple()):
            continue
        atoms = " ".join(f"{a + 1:5d}" for a in quad)
        lines.append(f"  {atoms} 5 " + " ".join(_num(v) for v in p.as_tuple()))
    lines += [
        "",
        "[ dihedrals ]",
        "; improper, periodic: ai aj ak al func(4) phase (deg) k (kJ/mol) multiplicity",
    ]
    for quad in molecule.impropers:
        atoms = " ".join(f"{a + 1:5d}" for a in quad)
        for n, phase_deg, k in _periodic_terms(molecule.improper_parameter(quad)):
            lines.append(f"  {atoms} 4 {phase_deg:g} {_num(k)} {n}")
    lines += [
        "",
        "[ system ]",
        f"{n_molecules} x {molecule.name}",
        "",
        "[ molecules ]",
        f"{molname}  {int(n_molecules)}",
        "",
    ]
    path = Path(path)
    write_text(path, "\n".join(lines))
    return path


def _periodic_terms(p: FourierParameter) -> list[tuple[int, float, float]]:
    """(multiplicity, phase in degrees, k kJ/mol) of ½V1(1+cos φ) + ½V2(1−cos 2φ) + …"""
    return [
        (n, 0.0 if n % 2 == 1 else 180.0, 0.5 * v)
        for n, v in enumerate(p.as_tuple(), start=1)
        if v != 0.0
    ]


def write_gro(
    topology: app.Topology,
    positions_nm: np.ndarray,
    box_nm: Sequence[float],
    path: str | Path,
    *,
    velocities_nm_ps: np.ndarray | None = None,
    title: str = "written by cgforge",
    decimals: int = 3,
) -> Path:
    """Write a ``.gro`` file: residue and atom names from ``topology``, positions in nm.

    ``decimals`` > 3 writes GROMACS' extended-precision layout (fixed columns of width
    ``decimals + 5``, as ``gmx trjconv -ndec`` writes and ``grompp`` reads); velocities (nm/ps) get
    one decimal more in the same width. ``box_nm`` is a rectangular box.
    """
    xyz = np.asarray(positions_nm, dtype=float)
    atoms = list(topology.atoms())
    if xyz.shape != (len(atoms), 3):
        raise InputError(
            f"write_gro: {len(atoms)} atoms in the topology but positions of shape {xyz.shape}"
        )
    box = np.asarray(box_nm, dtype=float).reshape(-1)
    if box.shape != (3,):
        raise InputError(f"write_gro: box_nm must be three edge lengths, got {box_nm!r}")
    vel = None if velocities_nm_ps is None else np.asarray(velocities_nm_ps, dtype=float)
    width = decimals + 5
    lines = [title.replace("\n", " "), f"{len(atoms):5d}"]
    for i, atom in enumerate(atoms):
        residue = atom.residue
        line = (
            f"{(residue.index + 1) % 100000:5d}{residue.name[:5]:<5s}{atom.name[:5]:>5s}"
            f"{(i + 1) % 100000:5d}" + "".join(f"{x:{width}.{decimals}f}" for x in xyz[i])
        )
        if vel is not None:
            line += "".join(f"{v:{width}.{decimals + 1}f}" for v in vel[i])
        lines.append(line)
    lines.append(" ".join(f"{b:.6f}" for b in box))
    path = Path(path)
    write_text(path, "\n".join(lines) + "\n")
    return path


def mdp_settings(
    stage: str,
    protocol: MDProtocol,
    cutoff_nm: float,
    *,
    n_steps: int,
    constraints: str = "h-bonds",
) -> dict[str, Any]:
    """The ``.mdp`` options of one stage: ``"minimize"``, ``"equilibration"``, ``"relax"``
    (NVT at a fixed production density before production), ``"production"`` or ``"rerun"``
    (single-point energies, no constraints applied)."""
    p = protocol
    thermo = p.stride(p.thermo_interval_ps)
    calc = math.gcd(thermo, 100)
    settings: dict[str, Any] = {
        "cutoff-scheme": "Verlet",
        "pbc": "xyz",
        "rlist": cutoff_nm,  # the minimum: mdrun sizes the pair-list buffer itself
        "coulombtype": "PME",
        "rcoulomb": cutoff_nm,
        "coulomb-modifier": "None",
        "vdwtype": "Cut-off",
        "vdw-modifier": "None",
        "rvdw": cutoff_nm,
        "DispCorr": "AllEnerPres",
        "fourierspacing": FOURIER_SPACING_NM,
        "pme-order": PME_ORDER,
        "ewald-rtol": EWALD_RTOL,
        "constraints": constraints,
        "constraint-algorithm": "LINCS",
    }
    if stage == "minimize":
        settings.update(
            {
                "integrator": "steep",
                "nsteps": n_steps,
                "emtol": MINIMIZE_FMAX,
                "emstep": 0.01,
                "nstenergy": 0,
                "nstlog": 100,
            }
        )
        return settings
    if stage == "rerun":
        settings.update({"integrator": "md", "nsteps": 0, "nstcalcenergy": 1, "nstenergy": 1})
        return settings
    log_every = thermo * max(1, round(n_steps / 50 / thermo))
    settings.update(
        {
            "dt": p.dt_ps,
            "nsteps": n_steps,
            "tinit": 0.0,
            "nstcalcenergy": calc,
            "nstenergy": thermo,
            "nstlog": log_every,
            "comm-mode": "Linear",
            "tc-grps": "System",
            "ref-t": p.temperature_K,
        }
    )
    if stage == "equilibration":
        settings.update(
            {
                "integrator": "sd",
                "tau-t": 1.0 / p.friction_per_ps,
                "ld-seed": p.seed + 1,
                "pcoupl": "C-rescale",
                "pcoupltype": "isotropic",
                "tau-p": BAROSTAT_TAU_PS,
                "compressibility": COMPRESSIBILITY_PER_BAR,
                "ref-p": p.pressure_bar,
                "gen-vel": "yes",
                "gen-temp": p.temperature_K,
                "gen-seed": p.seed + 3,
                "continuation": "no",
                # the last frame (x, v) starts production at full precision
                "nstxout": n_steps,
                "nstvout": n_steps,
            }
        )
    elif stage == "relax":
        settings.update(
            {
                "integrator": "sd",
                "tau-t": 1.0 / p.friction_per_ps,
                "ld-seed": p.seed + 7,
                "pcoupl": "no",
                "gen-vel": "no",
                "continuation": "no",  # constrain the rescaled start configuration
                # the last frame (x, v) starts production at full precision
                "nstxout": n_steps,
                "nstvout": n_steps,
            }
        )
    elif stage == "production":
        sample = p.stride(p.sample_interval_ps)
        settings.update(
            {
                "integrator": "md",
                "pcoupl": "no",
                "gen-vel": "no",
                "continuation": "no",  # constrain the rescaled start configuration
                "nstxout": sample,
                "nstfout": sample if p.save_forces else 0,
            }
        )
        if p.production_ensemble == "langevin":
            # stochastic dynamics: GROMACS' friction is mass / tau-t, so tau-t = 1/γ
            settings.update(
                {
                    "integrator": "sd",
                    "tcoupl": "no",  # sd thermostats by itself
                    "tau-t": 1.0 / float(p.production_friction_per_ps or 1.0),
                    "ld-seed": p.seed + 5,
                }
            )
        elif p.production_ensemble == "nvt":
            settings.update(
                {
                    "tcoupl": "nose-hoover",
                    "nh-chain-length": 1,  # leap-frog supports one Nosé–Hoover variable
                    "tau-t": 1.0 / p.thermostat_collision_per_ps,
                }
            )
        else:
            # Newtonian dynamics: conserve energy (pair-list buffer, constraint accuracy)
            settings.update(
                {
                    "tcoupl": "no",
                    "verlet-buffer-tolerance": NVE_BUFFER_TOLERANCE,
                    "lincs-iter": 2,
                    "lincs-order": 6,
                }
            )
            del settings["tc-grps"], settings["ref-t"]
    else:
        raise InputError(f"unknown GROMACS stage {stage!r}")
    return settings


def write_mdp(path: str | Path, settings: Mapping[str, Any]) -> Path:
    """Write ``settings`` as an ``.mdp`` file (``key = value`` lines)."""
    lines = ["; written by cgforge"]
    for key, value in settings.items():
        text = _num(value) if isinstance(value, float) else str(value)
        lines.append(f"{key:<24s} = {text}")
    path = Path(path)
    write_text(path, "\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------ energies
def _parse_xvg(path: Path) -> dict[str, np.ndarray]:
    legends: list[str] = []
    rows: list[list[float]] = []
    for line in path.read_text().splitlines():
        if line.startswith("@"):
            match = re.match(r'@\s+s\d+\s+legend\s+"(.*)"', line)
            if match:
                legends.append(match.group(1))
        elif line.strip() and not line.startswith("#"):
            rows.append([float(v) for v in line.split()])
    table = np.array(rows, dtype=float).reshape(-1, len(legends) + 1)
    out = {"Time": table[:, 0]}
    out.update({name: table[:, i + 1] for i, name in enumerate(legends)})
    return out


def _energy_terms(edr: Path, cwd: Path) -> dict[str, int]:
    """Term name, spaces written as dashes (``LJ-(SR)``) → selection number of ``gmx energy``."""
    done = subprocess.run(
        [gmx_executable(), "energy", "-f", str(edr), "-o", os.devnull],
        cwd=cwd,
        input="0\n",  # select nothing: gmx energy lists the terms, then stops
        capture_output=True,
        text=True,
        check=False,
        env=_gmx_env(),
    )
    text = done.stdout + done.stderr
    match = re.search(r"\n-{20,}\n(.*?)(?:\n\s*\n\s*\n|\n-{20,})", text, re.S)
    if "Select the terms" not in text or match is None:
        raise SimulationError(f"GROMACS energy cannot read {edr}: {gromacs_error(text)}")
    return {name: int(number) for number, name in re.findall(r"(\d+)\s+(\S+)", match.group(1))}


def read_energy_file(
    edr: str | Path, terms: Sequence[str] | None = None, *, workdir: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Energy terms of a GROMACS ``.edr`` via ``gmx energy``: name → values, plus ``Time`` (ps).

    ``terms`` are GROMACS' names as in ``gmx energy``'s legends (``"Potential"``, ``"LJ (SR)"``,
    ``"Coul. recip."``, …); terms the file does not hold are left out; ``None`` reads all.
    """
    edr = Path(edr).resolve()
    cwd = Path(workdir).resolve() if workdir is not None else edr.parent
    available = _energy_terms(edr, cwd)
    if terms is None:
        numbers = list(available.values())
    else:
        numbers = [available[k] for k in (t.replace(" ", "-") for t in terms) if k in available]
    if not numbers:
        return {}
    xvg = cwd / f".{edr.stem}-energy.xvg"
    selection = "\n".join(str(n) for n in numbers) + "\n0\n"
    run_gmx(
        ["energy", "-f", str(edr), "-o", str(xvg), "-xvg", "xmgrace"],
        cwd,
        what="energy",
        error=SimulationError,
        stdin=selection,
    )
    try:
        data = _parse_xvg(xvg)
    finally:
        xvg.unlink(missing_ok=True)
    return data


def rerun_energies(
    top: str | Path,
    topology: app.Topology,
    positions_nm: np.ndarray,
    box_nm: Sequence[float],
    workdir: str | Path,
    *,
    cutoff_nm: float = 1.0,
    constraints: str = "none",
    extra_mdp: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """GROMACS' energy terms (kJ/mol) of one configuration: ``mdrun -rerun`` on a one-frame
    trajectory. Keys are GROMACS' names (``"Bond"``, ``"LJ (SR)"``, ``"Coul. recip."``, …)."""
    import MDAnalysis as mda

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    xyz = np.asarray(positions_nm, dtype=float)
    gro = write_gro(topology, xyz, box_nm, workdir / "rerun.gro", decimals=6)
    protocol = MDProtocol()
    settings = mdp_settings("rerun", protocol, cutoff_nm, n_steps=0, constraints=constraints)
    settings.update(extra_mdp or {})
    mdp = write_mdp(workdir / "rerun.mdp", settings)
    run_gmx(
        [
            "grompp",
            "-f",
            str(mdp),
            "-c",
            str(gro),
            "-p",
            str(Path(top).resolve()),
            "-o",
            "rerun.tpr",
            "-po",
            "rerun-out.mdp",
            "-maxwarn",
            "0",
        ],
        workdir,
        what="grompp",
    )
    trr = workdir / "rerun-frame.trr"
    # MDAnalysis works in Å and converts back to nm when it writes the file
    universe = mda.Universe.empty(xyz.shape[0], trajectory=True)
    universe.atoms.positions = xyz / ANGSTROM_TO_NM
    universe.dimensions = [*(np.asarray(box_nm, dtype=float) / ANGSTROM_TO_NM), 90.0, 90.0, 90.0]
    with mda.coordinates.TRR.TRRWriter(str(trr), xyz.shape[0]) as writer:
        writer.write(universe.atoms)
    run_gmx(
        ["mdrun", "-s", "rerun.tpr", "-rerun", str(trr), "-deffnm", "rerun", "-nt", "1"],
        workdir,
        what="mdrun -rerun",
        error=SimulationError,
    )
    data = read_energy_file(workdir / "rerun.edr")
    return {k: float(v[0]) for k, v in data.items() if k != "Time"}


# ------------------------------------------------------------------------------ the runner
@dataclass(frozen=True, eq=False)
class GromacsSystem:
    """What ``grompp`` needs besides the ``.mdp``: a topology file and names for ``.gro`` files.

    ``top_path`` is a GROMACS ``.top`` (its ``#include`` files are found next to it, in
    ``include_dirs`` and in GROMACS' own force-field directory); ``topology`` gives residue and
    atom names, in the atom order of the ``.top``. ``masses_amu`` (per atom) are read from the
    run input (``.tpr``) when not given.
    """

    top_path: Path
    topology: app.Topology
    include_dirs: tuple[Path, ...] = field(default_factory=tuple)
    masses_amu: np.ndarray | None = None

    @classmethod
    def from_molecule(
        cls, molecule: MoleculeTopology, n_molecules: int, path: str | Path
    ) -> GromacsSystem:
        """Write the ``.top`` of ``n_molecules`` copies of ``molecule`` to ``path``."""
        from cgforge.engines.openmm_system import openmm_topology

        top = write_gromacs_topology(molecule, n_molecules, path)
        masses = np.tile(molecule.masses_amu, int(n_molecules))
        return cls(Path(top).resolve(), openmm_topology(molecule, n_molecules), (), masses)


class GromacsRunner:
    """Runs :class:`~cgforge.engines.protocol.MDProtocol` on GROMACS in a work directory with
    resume.

    The interface of :class:`~cgforge.engines.openmm_md.MDRunner`: ``groups`` maps each atom to
    its bead (molecule), :meth:`run` returns an :class:`~cgforge.engines.protocol.MDResult`.
    ``threads`` OpenMP threads run one ``mdrun`` rank (default :func:`default_threads`). GROMACS
    checkpoints by wall time, every ``checkpoint_minutes`` and when stopped, so ``protocol``'s
    ``checkpoint_interval_ps`` is not used; neither are the OpenMM-only ``platform`` and
    ``barostat_interval``. ``cutoff_nm`` is the real-space cutoff of PME and LJ.
    """

    def __init__(
        self,
        system: GromacsSystem,
        positions_nm: np.ndarray,
        box_nm: np.ndarray,
        groups: np.ndarray,
        protocol: MDProtocol,
        workdir: str | Path,
        *,
        cutoff_nm: float = 1.0,
        threads: int | None = None,
        checkpoint_minutes: float = 5.0,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.gmx = gmx_executable()
        self.system = system
        self.positions_nm = np.asarray(positions_nm, dtype=float)
        self.box_nm = np.asarray(box_nm, dtype=float).reshape(-1)
        self.groups = np.asarray(groups, dtype=int)
        self.protocol = protocol
        self.workdir = Path(workdir).resolve()
        self.cutoff_nm = float(cutoff_nm)
        self.threads = int(threads) if threads else default_threads()
        self.checkpoint_minutes = float(checkpoint_minutes)
        self.progress = progress
        n = system.topology.getNumAtoms()
        if self.positions_nm.shape != (n, 3) or self.groups.shape != (n,):
            raise InputError(
                f"the topology has {n} atoms but positions have shape {self.positions_nm.shape} "
                f"and groups {self.groups.shape}"
            )
        if self.box_nm.shape != (3,) or np.any(self.box_nm <= 0):
            raise InputError(f"box_nm must be three positive edge lengths, got {box_nm!r}")
        if not system.top_path.is_file():
            raise InputError(f"GROMACS topology not found: {system.top_path}")
        self.n_beads = int(self.groups.max()) + 1
        self.masses: np.ndarray | None = None  # read from the first run input (.tpr)
        self.version = gmx_version()
        self._speed = 0.0

    # ------------------------------------------------------------------ state
    def _load_state(self) -> dict[str, Any]:
        return read_state(self.workdir / STATE_FILE, {"engine": "gromacs", "done": [], "tpr": []})

    def _commit(self, state: dict[str, Any]) -> None:
        write_json(self.workdir / STATE_FILE, state)

    # ------------------------------------------------------------------ gmx steps
    def _grompp(self, stage: str, gro: Path, n_steps: int, state: dict[str, Any]) -> None:
        if stage in state["tpr"] and (self.workdir / f"{stage}.tpr").exists():
            return
        settings = mdp_settings(stage, self.protocol, self.cutoff_nm, n_steps=n_steps)
        if stage == "production" and self.protocol.steps(self.protocol.equilibration_ps) == 0:
            p = self.protocol  # no equilibration: velocities drawn for the production start
            settings.update({"gen-vel": "yes", "gen-temp": p.temperature_K, "gen-seed": p.seed + 3})
        includes = [self.system.top_path.parent, *self.system.include_dirs]
        settings["include"] = " ".join(f"-I{d}" for d in includes)
        mdp = write_mdp(self.workdir / f"{stage}.mdp", settings)
        tmp = self.workdir / f".{stage}.tpr"
        run_gmx(
            [
                "grompp",
                "-f",
                mdp.name,
                "-c",
                gro.name,
                "-p",
                str(self.system.top_path),
                "-o",
                tmp.name,
                "-po",
                f"{stage}-out.mdp",
                "-maxwarn",
                "0",
            ],
            self.workdir,
            what=f"grompp ({stage})",
        )
        os.replace(tmp, self.workdir / f"{stage}.tpr")
        (self.workdir / f"{stage}-out.mdp").unlink(missing_ok=True)
        state["tpr"] = [*state["tpr"], stage]
        self._commit(state)

    def _read_masses(self) -> None:
        """Atom and bead masses: given with the system, else from a run input of this run."""
        if self.masses is not None:
            return
        tpr = next(
            (
                self.workdir / f"{s}.tpr"
                for s in ("minimize", "equilibration", "relax", "production")
                if (self.workdir / f"{s}.tpr").exists()
            ),
            None,
        )
        if self.system.masses_amu is not None:
            masses = np.asarray(self.system.masses_amu, dtype=float)
        elif tpr is None:
            raise SimulationError(f"no GROMACS run input (.tpr) in {self.workdir} to read masses")
        else:
            import MDAnalysis as mda

            try:
                universe = mda.Universe(str(tpr))
            except Exception as exc:  # MDAnalysis raises several types for unknown .tpr versions
                raise InputError(
                    f"cannot read the atom masses from {tpr} with MDAnalysis ({exc}); update "
                    "MDAnalysis to a version that reads this GROMACS version's .tpr files"
                ) from exc
            masses = np.asarray(universe.atoms.masses, dtype=float)
        if masses.shape != (len(self.groups),):
            raise InputError(
                f"{self.system.top_path} describes {masses.shape[0]} atoms but the coordinates "
                f"have {len(self.groups)}; they do not belong together"
            )
        self.masses = masses
        self.bead_masses = np.bincount(self.groups, weights=masses, minlength=self.n_beads)
        if np.any(self.bead_masses <= 0):
            raise InputError("every bead needs a positive mass (check the topology's masses)")

    def _mdrun(self, stage: str, n_steps: int) -> None:
        """Run (or continue) ``mdrun`` for one stage, reporting progress from its log."""
        log = self.workdir / f"{stage}.log"
        args = [
            self.gmx,
            "mdrun",
            "-deffnm",
            stage,
            "-ntmpi",
            "1",
            "-ntomp",
            str(self.threads),
        ]
        if stage != "minimize":
            args += ["-cpt", _num(self.checkpoint_minutes), "-cpo", f"{stage}.cpt"]
            if (self.workdir / f"{stage}.cpt").exists():
                args += ["-cpi", f"{stage}.cpt", "-append"]
        output = self.workdir / f"{stage}.mdrun.out"
        self._report(stage, _last_step(log) if log.exists() else 0, n_steps)
        with open(output, "w") as handle:
            process = subprocess.Popen(
                args,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=_gmx_env(self.threads),
                preexec_fn=_die_with_parent if os.name == "posix" else None,
            )
            try:
                last, tic, step0 = -1, time.perf_counter(), None
                while process.poll() is None:
                    time.sleep(0.5)
                    step = _last_step(log) if log.exists() else 0
                    if step0 is None:
                        step0 = step
                    if step != last:
                        elapsed = time.perf_counter() - tic
                        if elapsed > 0 and stage != "minimize" and step > step0:
                            self._speed = (step - step0) * self.protocol.dt_ps * 1e-3
                            self._speed *= 86400.0 / elapsed
                        self._report(stage, step, n_steps)
                        last = step
            except BaseException:
                _stop(process)
                raise
        text = output.read_text(errors="replace")
        if process.returncode != 0:
            if _ERROR_BLOCK.search("\n" + text) is None and "LINCS WARNING" in text:
                step = re.findall(r"Step (\d+), time [\d.]+ \(ps\)\s+LINCS WARNING", text)
                raise SimulationError(
                    f"GROMACS mdrun ({stage}) failed: constraints could not be satisfied "
                    f"(LINCS) from step {step[0] if step else '?'} on: the system blew up; "
                    "use a shorter time step, a longer minimisation or gentler parameters"
                )
            raise SimulationError(f"GROMACS mdrun ({stage}) failed: {gromacs_error(text)}")
        if stage != "minimize":
            done = _last_step(log)
            if done < n_steps:
                raise SimulationError(
                    f"GROMACS mdrun ({stage}) stopped at step {done} of {n_steps}; rerun the same "
                    "command to continue from the checkpoint"
                )
            speed = performance_ns_per_day(log)
            if speed is not None:
                self._speed = speed
        self._report(stage, n_steps, n_steps)

    # ------------------------------------------------------------------ stages
    def run(self) -> MDResult:
        if self.protocol.production_ensemble == "npt":
            raise InputError(
                "the GROMACS engine runs production at constant volume (nvt, nve or langevin), "
                "not npt",
                parameters="production_ensemble",
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        state = self._load_state()
        p = self.protocol
        names = self.system.topology
        n_eq, n_prod = p.steps(p.equilibration_ps), p.steps(p.production_ps)

        start = self.workdir / "start.gro"
        if not start.exists():
            write_gro(names, self.positions_nm, self.box_nm, start, decimals=5)

        if "minimize" not in state["done"]:
            coords = start
            if p.minimize:
                self._grompp("minimize", start, MINIMIZE_STEPS, state)
                self._read_masses()
                self._mdrun("minimize", MINIMIZE_STEPS)
                coords = self.workdir / "minimize.gro"
            shutil.copyfile(coords, self.workdir / "minimized.gro")
            state["done"] = [*state["done"], "minimize"]
            self._commit(state)

        if "equilibration" not in state["done"]:
            if n_eq > 0:
                self._grompp("equilibration", self.workdir / "minimized.gro", n_eq, state)
                self._read_masses()
                self._mdrun("equilibration", n_eq)
            state["done"] = [*state["done"], "equilibration"]
            self._commit(state)

        n_relax = p.relax_steps if n_eq > 0 else 0
        if "production-start" not in state["done"]:
            # with a relax stage the rescaled configuration starts it (relax-start.gro)
            start_name = "relax-start.gro" if n_relax > 0 else "production-start.gro"
            box_prod, npt_volume = self._write_production_start(n_eq, start_name)
            state["box_nm"] = box_prod.tolist()
            if npt_volume is not None:
                state["npt_volume_nm3"] = npt_volume
            state["done"] = [*state["done"], "production-start"]
            self._commit(state)

        if n_relax > 0 and "relax" not in state["done"]:
            self._grompp("relax", self.workdir / "relax-start.gro", n_relax, state)
            self._read_masses()
            self._mdrun("relax", n_relax)
            self._write_relaxed_start(n_relax, np.array(state["box_nm"], dtype=float))
            state["done"] = [*state["done"], "relax"]
            self._commit(state)

        if "production" not in state["done"]:
            self._grompp("production", self.workdir / "production-start.gro", n_prod, state)
            self._read_masses()
            self._mdrun("production", n_prod)
            state["done"] = [*state["done"], "production"]
            self._commit(state)

        self._read_masses()
        return self._result(state, time.perf_counter() - started)

    def _last_frame(self, stage: str, n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Positions (nm), velocities (nm/ps) and box (nm) of a stage's last frame."""
        from MDAnalysis.coordinates.TRR import TRRReader

        with TRRReader(str(self.workdir / f"{stage}.trr"), convert_units=False) as reader:
            ts = reader[len(reader) - 1]
            if ts.data.get("step", n_steps) != n_steps or not ts.has_velocities:
                raise SimulationError(
                    f"the {stage} trajectory lacks its last frame; remove the run directory "
                    "and start again"
                )
            return (
                np.array(ts.positions, dtype=float),
                np.array(ts.velocities, dtype=float),
                np.array(ts.dimensions[:3], dtype=float),
            )

    def _write_production_start(
        self, n_eq: int, name: str = "production-start.gro"
    ) -> tuple[np.ndarray, float | None]:
        """The production (or relax) start ``name``: the last NPT frame scaled to the mean
        volume of its second half, or to the protocol's fixed production density. Returns
        the box and that mean NPT volume (None without equilibration)."""
        if n_eq == 0:
            # no equilibration: start from the minimised structure, velocities drawn in grompp
            shutil.copyfile(self.workdir / "minimized.gro", self.workdir / name)
            return _gro_box(self.workdir / "minimized.gro"), None
        self._read_masses()
        thermo = self._thermo("equilibration")
        self._check_thermo(thermo, "equilibration")
        xyz, vel, box_now = self._last_frame("equilibration", n_eq)
        volumes = thermo["volume_nm3"]
        p = self.protocol
        npt_volume = (
            float(np.mean(volumes[len(volumes) // 2 :]))
            if len(volumes) >= 2
            else float(np.prod(box_now))
        )
        target = npt_volume
        if p.fixed_density:
            target = p.production_volume(npt_volume, float(self.masses.sum()))
        box_prod = box_now * (target / np.prod(box_now)) ** (1.0 / 3.0)
        xyz = mapping.make_whole(xyz, box_now, self.groups)
        com = mapping.center_of_mass(xyz, self.masses, self.groups)
        xyz += (com * (box_prod / box_now - 1.0))[self.groups]
        write_gro(
            self.system.topology,
            xyz,
            box_prod,
            self.workdir / name,
            velocities_nm_ps=vel,
            title=f"cgforge {name.removesuffix('-start.gro')} start",
            decimals=6,
        )
        return box_prod, npt_volume

    def _write_relaxed_start(self, n_relax: int, box_prod: np.ndarray) -> None:
        """production-start.gro: the last frame of the relax stage (box unchanged)."""
        self._read_masses()
        thermo = self._thermo("relax")
        self._check_thermo(thermo, "relax")
        xyz, vel, _ = self._last_frame("relax", n_relax)
        write_gro(
            self.system.topology,
            mapping.make_whole(xyz, box_prod, self.groups),
            box_prod,
            self.workdir / "production-start.gro",
            velocities_nm_ps=vel,
            title="cgforge production start",
            decimals=6,
        )

    # ------------------------------------------------------------------ results
    def _thermo(self, stage: str) -> dict[str, np.ndarray]:
        edr = self.workdir / f"{stage}.edr"
        names = ("Potential", "Kinetic En.", "Total Energy", "Temperature", "Pressure", "Volume")
        data = read_energy_file(edr, names, workdir=self.workdir)
        p = self.protocol
        stride_ps = p.stride(p.thermo_interval_ps) * p.dt_ps
        t = data["Time"]
        # OpenMM's rows: every thermo stride after the start (t = 0 is not a sample)
        index = np.round(t / stride_ps)
        keep = (index >= 1) & np.isclose(t, index * stride_ps, atol=1e-6)
        keep &= np.r_[True, np.diff(t) > 0]
        if "Volume" in data:
            volume = data["Volume"][keep]
        else:
            box = _gro_box(self.workdir / f"{stage}-start.gro")
            volume = np.full(int(keep.sum()), float(np.prod(box)))
        total_mass = float(self.masses.sum())
        return {
            "t_ps": t[keep],
            "stage": np.full(int(keep.sum()), float(STAGE_IDS[stage])),
            "potential_kJ_mol": data["Potential"][keep],
            "kinetic_kJ_mol": data["Kinetic En."][keep],
            "total_kJ_mol": data["Total Energy"][keep],
            "temperature_K": data["Temperature"][keep],
            "volume_nm3": volume,
            "density_g_cm3": np.asarray(density_g_cm3(total_mass, volume)),
            "pressure_bar": data["Pressure"][keep],
        }

    def _check_thermo(self, thermo: dict[str, np.ndarray], stage: str) -> None:
        limit = self.protocol.max_energy_kj_mol_per_particle * len(self.groups)
        potential = thermo["potential_kJ_mol"]
        bad = ~np.isfinite(potential) | (np.abs(potential) > limit)
        if np.any(bad):
            first = int(np.argmax(bad))
            raise SimulationError(
                f"the simulation blew up in {stage} at t = {thermo['t_ps'][first]:g} ps "
                f"(potential energy {potential[first]:.3g} kJ/mol). Check the force field, use a "
                "smaller time step or a longer equilibration"
            )

    def _result(self, state: dict[str, Any], wall_s: float) -> MDResult:
        from MDAnalysis.coordinates.TRR import TRRReader

        p = self.protocol
        sample = p.stride(p.sample_interval_ps)
        parts = [
            self._thermo(stage)
            for stage in ("equilibration", "relax")
            if (self.workdir / f"{stage}.edr").exists() and stage in state["done"]
        ]
        prod = self._thermo("production")
        self._check_thermo(prod, "production")
        parts.append(prod)
        thermo = {c: np.concatenate([part[c] for part in parts]) for c in THERMO_COLUMNS}
        box_prod = np.array(state["box_nm"], dtype=float)
        times, positions, forces, steps = [], [], [], []
        chunks: list[Path] = []
        pending: list[np.ndarray] = []
        pending_t: list[float] = []

        def flush() -> None:
            if not pending:
                return
            path = self.workdir / f"gromacs-particles-{len(chunks):05d}.npz"
            write_npz(
                path,
                stage=np.array("production"),
                times_ps=np.array(pending_t),
                particle_positions_nm=np.array(pending, dtype=np.float32),
            )
            chunks.append(path)
            pending.clear()
            pending_t.clear()

        previous = None
        with TRRReader(str(self.workdir / "production.trr"), convert_units=False) as reader:
            for ts in reader:
                step = int(ts.data.get("step", round(ts.time / p.dt_ps)))
                if step == 0 or step % sample or (steps and step <= steps[-1]):
                    continue
                if not ts.has_positions:
                    continue
                xyz = mapping.make_whole(np.array(ts.positions, dtype=float), box_prod, self.groups)
                com = mapping.center_of_mass(xyz, self.masses, self.groups)
                if previous is not None:  # unwrap the centres in time (fixed box)
                    jump = com - previous
                    com = previous + jump - box_prod * np.round(jump / box_prod)
                # move whole molecules onto their unwrapped centres: a continuous trajectory
                raw = mapping.center_of_mass(xyz, self.masses, self.groups)
                xyz += (com - raw)[self.groups]
                previous = com
                steps.append(step)
                times.append(step * p.dt_ps)
                positions.append(com)
                if p.save_forces:
                    if not ts.has_forces:
                        raise SimulationError(
                            f"production frame at step {step} holds no forces; remove the run "
                            "directory and start again"
                        )
                    forces.append(mapping.map_forces(np.array(ts.forces, dtype=float), self.groups))
                if p.save_particles:
                    pending.append(xyz)
                    pending_t.append(step * p.dt_ps)
                    if len(pending) >= CHUNK_FRAMES:
                        flush()
        flush()
        if not times:
            raise SimulationError(
                "production produced no samples; lengthen production_ps or shorten the sample "
                "interval",
                parameters="production_ps",
            )
        return MDResult(
            times_ps=np.array(times),
            bead_positions_nm=np.array(positions),
            bead_forces_kj_mol_nm=np.array(forces) if forces else None,
            box_nm=box_prod,
            bead_masses_amu=self.bead_masses,
            thermo=thermo,
            platform=f"GROMACS {self.version}",
            ns_per_day=performance_ns_per_day(self.workdir / "production.log") or self._speed,
            wall_s=wall_s,
            particle_chunks=chunks,
            npt_volume_nm3=state.get("npt_volume_nm3"),
        )

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total, self._speed)


# ------------------------------------------------------------------------------ helpers
_STEP = re.compile(r"^\s+Step\s+Time\s*\n\s+(\d+)\s+\S+", re.M)
_PERFORMANCE = re.compile(r"^Performance:\s+([\d.eE+-]+)", re.M)


def _last_step(log: Path) -> int:
    """Last MD step whose energies the log holds (0 if none)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0
    steps = _STEP.findall(text)
    return int(steps[-1]) if steps else 0


def performance_ns_per_day(log: str | Path) -> float | None:
    """ns/day that the last ``mdrun`` writing to ``log`` reports (``None`` if it reports none)."""
    log = Path(log)
    try:
        found = _PERFORMANCE.findall(log.read_text(errors="replace"))
    except OSError:
        return None
    return float(found[-1]) if found else None


def _gro_box(path: Path) -> np.ndarray:
    last = path.read_text().rstrip("\n").splitlines()[-1].split()
    return np.array([float(v) for v in last[:3]])


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to send ``mdrun`` SIGTERM when the process that started it dies, so a killed
    worker (a Dask worker stopped by its cluster, a batch job hitting its walltime) leaves no
    ``mdrun`` behind. A no-op where ``prctl`` does not exist."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen) -> None:
    """Stop an ``mdrun`` started here: SIGTERM lets it write a checkpoint, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
