"""Option handling shared by the simulation commands."""

from __future__ import annotations

import re
from typing import Any

import typer

from cgforge.engines.protocol import MDProtocol
from cgforge.errors import CGForgeError
from cgforge.units import parse_time_ps

#: The command-line flag of each library parameter that an error may name
#: (:attr:`cgforge.errors.CGForgeError.parameters`); :data:`COMMAND_FLAGS` overrides it.
FLAGS = {
    "aa_runs": "--aa-runs",
    "allow_other_molecules": "--allow-other-molecules",
    "alpha_model": "--alpha",
    "alpha_model[0]": "--alpha",
    "alpha_model[1]": "--alpha-err",
    "box_nm": "--box",
    "cg_threads": "--threads",
    "cluster_config": "--cluster-config",
    "coordinates_file": "--coordinates",
    "cutoff_nm": "--cutoff",
    "density_g_cm3": "--density",
    "density_relax_ps": "--density-relax",
    "engine": "--engine",
    "equilibration_ps": "--equilibrate",
    "format": "--format",
    "include_dir": "--include-dir",
    "mass_amu": "--mass",
    "mass_range_amu": "--mass-range",
    "mass_runs": "--mass-runs",
    "methods": "--methods",
    "molecule": "--molecule",
    "model_dir": "--model",
    "molecules": "--molecules",
    "n_beads": "--beads",
    "n_molecules": "--molecules",
    "out": "--out",
    "overwrite": "--overwrite",
    "perturbed_runs": "--perturbed-runs",
    "platform": "--platform",
    "production_density_g_cm3": "--density",
    "production_density_scale": "--density-scale",
    "production_ensemble": "--ensemble",
    "production_ps": "--production",
    "reference_dir": "--reference",
    "regularisation": "--regularisation",
    "sample_interval_ps": "--sample-every",
    "save_forces": "--forces",
    "scheduler": "--scheduler",
    "start": "--start",
    "start_file": "--start",
    "step": "--step",
    "stages": "--stages",
    "stop": "--stop",
    "stop_after_failures": "--stop-after-failures",
    "temperature_K": "--temperature",
    "threads": "--threads",
    "timestep_fs": "--timestep",
    "topology_file": "--topology",
    "workers": "--workers",
}

#: Commands (the first word after ``cgforge``) whose flags for a parameter differ from FLAGS.
COMMAND_FLAGS: dict[str, dict[str, str]] = {
    "db": {"database": "--db"},
    "tradeoff": {"production_ps": "--run", "equilibration_ps": "--settle"},
}


def with_flags(error: CGForgeError, command: str | None = None) -> str:
    """The message of ``error`` with the flags of ``command`` in place of the parameters it
    names: ``name`` and ``name=True`` become the flag, ``name='value'`` the flag and the value.

    A name inside a path, a file name or quotes, or the value right after the name itself
    (``out out``: the directory ``out``), stays as it is."""
    message = str(error)
    flags = {**FLAGS, **COMMAND_FLAGS.get(command or "", {})}
    for name in getattr(error, "parameters", ()):
        flag = flags.get(name)
        if flag is None:
            continue
        word = re.escape(name)
        pattern = (
            rf"(?<![\w./\\'\"-])(?<!{word} ){word}(?![\w/\\-]|\.\w)"
            r"(?:=True\b|=(['\"])(.*?)\1)?"
        )
        message = re.sub(
            pattern, lambda m, flag=flag: flag if m[2] is None else f"{flag} {m[2]}", message
        )
    return message


#: Help of every command's CG-engine option.
CG_ENGINE_HELP = (
    "CG MD engine: auto (LAMMPS where installed and no CUDA GPU, else OpenMM), lammps, openmm, "
    "torch."
)


def cg_engine_option(flag: str = "--engine") -> Any:
    """The ``--engine`` option (``flag``) of a command that runs CG MD."""
    return typer.Option("auto", flag, help=CG_ENGINE_HELP)


#: Help of every command's CG-threads option.
CG_THREADS_HELP = (
    "CPU threads of the CG engine: LAMMPS runs its OPENMP package on them (1: serial, best "
    "below a few thousand beads); OpenMM's CPU platform and torch on the CPU take a number "
    "above 1 (1 leaves their default); no effect on a GPU."
)


def cg_threads_option(flag: str = "--threads") -> Any:
    """The ``--threads`` option (``flag``) of a command that runs CG MD: the protocol's
    :attr:`~cgforge.engines.protocol.MDProtocol.cg_threads`."""
    return typer.Option(1, flag, help=CG_THREADS_HELP)


def protocol_from_options(
    equilibrate: str, production: str, *, timestep: str, sample_every: str | None, **settings: Any
) -> MDProtocol:
    """An :class:`MDProtocol` from the command line's times (with units) and settings."""
    from cgforge.workflows.aa import default_protocol

    settings["timestep_fs"] = parse_time_ps(timestep, what="--timestep", allow_zero=False) * 1e3
    if sample_every is not None:
        settings["sample_interval_ps"] = parse_time_ps(
            sample_every, what="--sample-every", allow_zero=False
        )
    return default_protocol(
        parse_time_ps(equilibrate, what="--equilibrate"),
        parse_time_ps(production, what="--production", allow_zero=False),
        **settings,
    )
