"""Option handling shared by the simulation commands.

Options and arguments that several commands declare alike are declared once here as
``Annotated`` aliases (``quiet: options.Quiet = False``; the default stays with the command).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

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


#: ``--engine`` of a command that runs CG MD (default ``"auto"``); ``cgforge db generate`` has
#: it as ``--cg-engine`` (:data:`DBCGEngine`).
CGEngine = Annotated[str, typer.Option("--engine", help=CG_ENGINE_HELP)]
DBCGEngine = Annotated[str, typer.Option("--cg-engine", help=CG_ENGINE_HELP)]


#: Help of every command's CG-threads option.
CG_THREADS_HELP = (
    "CPU threads of the CG engine: LAMMPS runs its OPENMP package on them (1: serial, best "
    "below a few thousand beads); OpenMM's CPU platform and torch on the CPU take a number "
    "above 1 (1 leaves their default); no effect on a GPU."
)


#: ``--threads`` of a command that runs CG MD (default 1): the protocol's
#: :attr:`~cgforge.engines.protocol.MDProtocol.cg_threads`.
CGThreads = Annotated[int, typer.Option("--threads", help=CG_THREADS_HELP)]

#: Options and arguments several commands share.
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress display.")]
RunOut = Annotated[Path, typer.Option("--out", help="Run directory for the results.")]
OverwriteRun = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing run in --out.")
]
Platform = Annotated[
    str, typer.Option("--platform", help="OpenMM platform: auto, cuda, cpu, reference.")
]
MDSeed = Annotated[int, typer.Option("--seed", help="Seed for start positions and velocities.")]
Temperature = Annotated[float, typer.Option("--temperature", help="Temperature, K.")]
Pressure = Annotated[float, typer.Option("--pressure", help="Pressure, bar.")]
Timestep = Annotated[str, typer.Option("--timestep", help="Time step.")]
CGTimestep = Annotated[str, typer.Option("--timestep", help="CG time step.")]
SampleEvery = Annotated[str, typer.Option("--sample-every", help="Sampling interval.")]
BeadSampleEvery = Annotated[
    str,
    typer.Option("--sample-every", help="Bead sampling interval (default: run/100, at most 1ps)."),
]
Production = Annotated[str, typer.Option("--production", help="Production time, e.g. 2ns.")]
Beads = Annotated[
    int, typer.Option("--beads", help="Number of beads (default: the reference's molecules).")
]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")]
Preset = Annotated[
    str,
    typer.Option("--preset", help="tiny (check), quick (desktop CPU) or standard (GPU/cluster)."),
]
Reference = Annotated[
    Path, typer.Option("--reference", help="All-atom reference directory to compare with.")
]
ReferenceArgument = Annotated[
    Path, typer.Argument(help="All-atom reference directory (cgforge aa --out).")
]
ForceRunsArgument = Annotated[
    list[Path],
    typer.Argument(help="All-atom run directories with mapped forces (cgforge aa ... --forces)."),
]
StartFrames = Annotated[
    int, typer.Option("--start", help="Frames to skip at the start of each run.")
]
Stride = Annotated[int, typer.Option("--stride", help="Use every n-th frame.")]


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
