"""The main job in Python, objects in and out: reference → IBI → CG run → observables.

    from cgforge import api
    ref = api.reference("benzene")                   # a shipped all-atom reference (or a run dir)
    ibi = api.ibi(ref, "runs/api/ibi")               # IBIResult: .potential, .rdf, .history
    run = api.simulate(ibi.potential, ref, "runs/api/cg", production_ps=200.0)
    print(run.acceleration_factor(ref), run.rdf_deviation(ref), run.density_g_cm3)

Every function takes and returns objects (:class:`~cgforge.workflows.cg.AAReference`,
:class:`~cgforge.potentials.table.TabulatedPotential`, :class:`~cgforge.methods.ibi.IBIResult`,
:class:`CGRun`); the work directories only hold checkpoints and iterations, so an interrupted
call resumes when repeated. The command line (``cgforge ibi``, ``cgforge cg``) writes the same
results as files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cgforge.engines.cg_engine import CGSystem, resolve_engine_name, run_cg_md
from cgforge.engines.protocol import MDProtocol, MDResult, ProgressCallback
from cgforge.errors import InputError
from cgforge.liquid_analysis import LiquidAnalysis
from cgforge.methods.ibi import (
    DEFAULT_CUTOFF_NM,
    IBIConfig,
    IBIResult,
    rdf_deviation,
    rdf_r2,
    run_ibi,
)
from cgforge.observables import mean_with_error
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.table import TabulatedPotential
from cgforge.trajectory import CGTrajectory
from cgforge.workflows.cg import (
    AAReference,
    analyse_cg_result,
    beads_for_reference,
    box_from_density,
    load_reference,
)

__all__ = ["CGRun", "ibi", "reference", "simulate"]


def reference(name_or_dir: str | Path) -> AAReference:
    """An all-atom reference: a shipped one by name (``cgforge references``) or a run directory
    of ``cgforge aa`` / ``cgforge analyze``."""
    return load_reference(name_or_dir)


def ibi(
    ref: AAReference,
    workdir: str | Path,
    config: IBIConfig | None = None,
    *,
    n_beads: int | None = None,
    progress: ProgressCallback | None = None,
) -> IBIResult:
    """Iterative Boltzmann inversion against ``ref`` at its temperature, density and bead mass,
    with the pressure corrected toward the pressure of its NPT stage (as ``cgforge ibi``)."""
    cfg = config or IBIConfig()
    cutoff = (
        cfg.cutoff_nm
        if cfg.cutoff_nm is not None
        else min(DEFAULT_CUTOFF_NM, float(ref.rdf.r_nm[-1]))
    )
    n = beads_for_reference(ref, cutoff) if n_beads is None else n_beads
    return run_ibi(
        ref.rdf,
        temperature_K=ref.temperature_K,
        n_beads=n,
        box_nm=box_from_density(n, ref.bead_mass_amu, ref.density_g_cm3),
        mass_amu=ref.bead_mass_amu,
        pressure_target_bar=ref.barostat_pressure_bar,
        config=cfg,
        workdir=workdir,
        progress=progress,
    )


@dataclass(frozen=True)
class CGRun:
    """A CG run and what it measured: ``analysis`` (RDF, MSD, D, density), the production's
    mean ``pressure_bar`` ± ``pressure_err_bar`` and ``temperature_K``, the engine's ``result``
    and the production ``trajectory``."""

    result: MDResult
    trajectory: CGTrajectory
    analysis: LiquidAnalysis
    pressure_bar: float
    pressure_err_bar: float
    temperature_K: float

    @property
    def rdf(self) -> RDFResult:
        return self.analysis.rdf

    @property
    def diffusion_m2_s(self) -> float:
        return self.analysis.diffusion.diffusion_m2_s

    @property
    def diffusion_err_m2_s(self) -> float:
        return self.analysis.diffusion.diffusion_err_m2_s

    @property
    def density_g_cm3(self) -> float:
        return self.analysis.density_g_cm3

    def acceleration_factor(self, ref: AAReference) -> float:
        """D_CG / D_AA."""
        return self.diffusion_m2_s / ref.diffusion_m2_s

    def rdf_deviation(self, ref: AAReference, r_max_nm: float | None = None) -> float:
        """cgforge's integrated RDF deviation from ``ref`` (0.01 = 1 %), on its bins."""
        return rdf_deviation(self.rdf, ref.rdf, r_max_nm)

    def rdf_r2(self, ref: AAReference) -> float:
        """R² of the RDF against ``ref``'s."""
        return rdf_r2(self.rdf, ref.rdf)


def simulate(
    potential: TabulatedPotential,
    ref: AAReference | None,
    workdir: str | Path,
    *,
    n_beads: int | None = None,
    mass_amu: float | None = None,
    density_g_cm3: float | None = None,
    temperature_K: float | None = None,
    pressure_bar: float | None = None,
    equilibration_ps: float = 50.0,
    production_ps: float = 500.0,
    timestep_fs: float = 5.0,
    sample_interval_ps: float = 0.5,
    production_ensemble: str = "nvt",
    friction_per_ps: float | None = None,
    engine: str = "auto",
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> CGRun:
    """CG MD of ``potential``: NPT equilibration (``equilibration_ps``; 0: none) at
    ``pressure_bar``, then production under ``production_ensemble`` (``nvt``, ``nve`` or
    ``langevin`` with ``friction_per_ps``, at the equilibrated volume; ``npt``: the barostat
    stays on). The state point, bead
    mass and bead count default to ``ref``'s (its NPT pressure, its molecule count or more for
    the cutoff); without ``ref`` give them all. The RDF is measured on ``ref``'s bins."""
    if ref is None:
        missing = [
            name
            for name, value in (
                ("n_beads", n_beads),
                ("mass_amu", mass_amu),
                ("density_g_cm3", density_g_cm3),
                ("temperature_K", temperature_K),
            )
            if value is None
        ]
        if missing:
            raise InputError(f"without a reference give {', '.join(missing)}", parameters=missing)
        mass, density, temperature = float(mass_amu), float(density_g_cm3), float(temperature_K)  # type: ignore[arg-type]
        n = int(n_beads)  # type: ignore[arg-type]
        pressure = 1.0 if pressure_bar is None else float(pressure_bar)
    else:
        mass = float(ref.bead_mass_amu if mass_amu is None else mass_amu)
        density = float(ref.density_g_cm3 if density_g_cm3 is None else density_g_cm3)
        temperature = float(ref.temperature_K if temperature_K is None else temperature_K)
        n = beads_for_reference(ref, potential.cutoff_nm) if n_beads is None else int(n_beads)
        pressure = ref.barostat_pressure_bar if pressure_bar is None else float(pressure_bar)
    box = box_from_density(n, mass, density)
    protocol = MDProtocol(
        temperature_K=temperature,
        pressure_bar=pressure,
        timestep_fs=timestep_fs,
        equilibration_ps=equilibration_ps,
        production_ps=production_ps,
        sample_interval_ps=sample_interval_ps,
        production_ensemble=production_ensemble,
        production_friction_per_ps=friction_per_ps,
        save_particles=False,
        seed=seed,
        engine=resolve_engine_name(engine),
    )
    system = CGSystem(potential, n, box, mass, label="the potential given to api.simulate")
    result = run_cg_md(system, protocol, Path(workdir), progress=progress)
    traj, analysis, _ = analyse_cg_result(result, ref)
    thermo = result.thermo
    prod = thermo["stage"] == 1
    pressure, pressure_err = mean_with_error(thermo["pressure_bar"][prod])
    measured_t, _ = mean_with_error(thermo["temperature_K"][prod])
    return CGRun(result, traj, analysis, pressure, pressure_err, measured_t)
