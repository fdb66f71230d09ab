"""What a CG production measured: g(r), D, pressure and temperature after a discarded start.

One measurement for every method that judges a potential by its CG MD: IBI's iterations
(:mod:`cgforge.methods.ibi`) and the trade-off search's evaluations
(:mod:`cgforge.workflows.tradeoff`) both call :func:`measure_production` on the
:class:`~cgforge.engines.protocol.MDResult` of one run.
"""

from __future__ import annotations

from dataclasses import dataclass

from cgforge.engines.protocol import MDResult
from cgforge.errors import InputError, SimulationError
from cgforge.observables import MSD, RDF, fit_diffusion, mean_with_error
from cgforge.observables.rdf import RDFResult
from cgforge.trajectory import CGTrajectory
from cgforge.units import NM2_PS_TO_M2_S

__all__ = ["MIN_FRAMES", "Measurement", "measure_production"]

#: Fewest frames after the discarded start that a measurement accepts.
MIN_FRAMES = 3


@dataclass(frozen=True)
class Measurement:
    """What the CG MD of one potential measured: its g(r) (on any bins), D ± error (m²/s;
    NaN where the MSD fit fails), pressure ± error (bar) and temperature ± error (K)."""

    rdf: RDFResult
    diffusion_m2_s: float
    diffusion_err_m2_s: float
    pressure_bar: float = float("nan")
    pressure_err_bar: float = float("nan")
    temperature_K: float = float("nan")
    temperature_err_K: float = float("nan")


def measure_production(
    result: MDResult, equilibration_ps: float, rdf: RDF, *, what: str = "the run"
) -> Measurement:
    """Measure the frames and thermo rows of ``result`` from ``equilibration_ps`` (ps) on.

    ``rdf`` bins the g(r) (e.g. on a target's bins); D comes from the fit of the MSD of the
    kept frames (:func:`~cgforge.observables.msd.fit_diffusion`; NaN ± NaN where the fit
    fails); pressure and temperature are the means with errors
    (:func:`~cgforge.observables.thermo.mean_with_error`) of the production-stage thermo rows
    from ``equilibration_ps`` on. Fewer than :data:`MIN_FRAMES` kept frames raise
    :class:`SimulationError` naming ``what`` (e.g. ``"IBI iteration 3"``).
    """
    keep = result.times_ps >= equilibration_ps - 1e-9
    if int(keep.sum()) < MIN_FRAMES:
        raise SimulationError(
            f"{what} has fewer than {MIN_FRAMES} frames after the equilibration; lengthen "
            "production_ps or sample more often"
        )
    traj = CGTrajectory(
        positions_nm=result.bead_positions_nm[keep],
        box_nm=result.box_nm,
        times_ps=result.times_ps[keep],
        masses_amu=result.bead_masses_amu,
    )
    g = rdf.compute(traj)
    thermo = result.thermo
    sampled = (thermo["stage"] == 1) & (thermo["t_ps"] >= equilibration_ps - 1e-9)
    pressure, pressure_err = mean_with_error(thermo["pressure_bar"][sampled])
    temperature, temperature_err = mean_with_error(thermo["temperature_K"][sampled])
    try:
        diffusion = fit_diffusion(MSD().compute(traj))
        d_m2_s = diffusion.diffusion_nm2_ps * NM2_PS_TO_M2_S
        d_err = diffusion.diffusion_err_nm2_ps * NM2_PS_TO_M2_S
    except InputError:
        d_m2_s = d_err = float("nan")
    return Measurement(g, d_m2_s, d_err, pressure, pressure_err, temperature, temperature_err)
