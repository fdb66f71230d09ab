"""Methods that derive coarse-grained potentials from an all-atom reference.

:mod:`cgforge.methods.ibi`: iterative Boltzmann inversion with a pressure correction.
"""

from cgforge.methods.ibi import (
    IBIConfig,
    IBIIteration,
    IBIResult,
    initial_potential,
    md_table,
    pressure_ramp,
    ramp_pressure_response,
    rdf_deviation,
    rdf_r2,
    rebin_rdf,
    run_ibi,
    update_potential,
)

__all__ = [
    "IBIConfig",
    "IBIIteration",
    "IBIResult",
    "initial_potential",
    "md_table",
    "pressure_ramp",
    "ramp_pressure_response",
    "rdf_deviation",
    "rdf_r2",
    "rebin_rdf",
    "run_ibi",
    "update_potential",
]
