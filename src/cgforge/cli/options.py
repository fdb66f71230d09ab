"""Option handling shared by the simulation commands."""

from __future__ import annotations

from typing import Any

import typer

from cgforge.engines.md import MDProtocol
from cgforge.units import parse_time_ps

#: Help of every command's CG-engine option.
CG_ENGINE_HELP = (
    "CG MD engine: auto (LAMMPS where installed and no CUDA GPU, else OpenMM), lammps, openmm, "
    "torch."
)


def cg_engine_option(flag: str = "--engine") -> Any:
    """The ``--engine`` option (``flag``) of a command that runs CG MD."""
    return typer.Option("auto", flag, help=CG_ENGINE_HELP)


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
