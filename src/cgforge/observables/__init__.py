"""Observables of coarse-grained trajectories: structure, mobility and thermodynamics.

All estimators follow one pattern: parameters in the constructor, data in ``compute()``
(or streamed through ``update()`` / ``merge()`` and finalised with ``result()``), results as
frozen dataclasses with units in their field names.
"""

from cgforge.observables.msd import (
    MSD,
    YEH_HUMMER_XI,
    DiffusionResult,
    MSDResult,
    fit_diffusion,
    msd_direct,
    msd_fft,
    yeh_hummer_correction,
)
from cgforge.observables.rdf import RDF, RDFResult, pair_distances
from cgforge.observables.thermo import (
    TimeSeries,
    block_standard_error,
    density_series,
    mean_with_error,
    statistical_inefficiency,
)

__all__ = [
    "MSD",
    "RDF",
    "YEH_HUMMER_XI",
    "DiffusionResult",
    "MSDResult",
    "RDFResult",
    "TimeSeries",
    "block_standard_error",
    "density_series",
    "fit_diffusion",
    "mean_with_error",
    "msd_direct",
    "msd_fft",
    "pair_distances",
    "statistical_inefficiency",
    "yeh_hummer_correction",
]
