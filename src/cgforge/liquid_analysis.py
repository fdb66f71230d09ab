"""Analysis of a one-bead liquid trajectory: the output contract of ``cgforge aa`` / ``analyze``.

Both commands end here: a :class:`~cgforge.trajectory.CGTrajectory` of bead (molecular centre of
mass) positions goes through the same analysis, so that a trajectory simulated by cgforge and the
same trajectory read back from its files give the same summary.

Files written into the run directory:

* ``summary.json``: molecule, n_molecules, temperature_K, density_g_cm3 (+ error), diffusion_m2_s,
  diffusion_err_m2_s, the fit window, bead_mass_amu, box_nm, provenance; written last.
* ``rdf.csv`` (``r_nm,g,g_err``), ``msd.csv`` (``t_ps,msd_nm2``), ``cg_trajectory.npz`` and
  ``observables.png`` (RDF and MSD).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.errors import InputError
from cgforge.fileio import atomic_path
from cgforge.observables import MSD, RDF, fit_diffusion
from cgforge.observables.msd import DiffusionResult, MSDResult
from cgforge.observables.rdf import RDFResult
from cgforge.observables.thermo import mean_with_error
from cgforge.trajectory import CGTrajectory

#: Default RDF bin width, nm.
RDF_BIN_NM = 0.002


@dataclass(frozen=True)
class LiquidAnalysis:
    """Structure and mobility of a one-bead liquid."""

    rdf: RDFResult
    msd: MSDResult
    diffusion: DiffusionResult
    density_g_cm3: float
    density_err_g_cm3: float
    box_nm: np.ndarray
    bead_mass_amu: float
    n_beads: int

    def summary_fields(self) -> dict[str, Any]:
        d = self.diffusion
        return {
            "n_molecules": self.n_beads,
            "bead_mass_amu": self.bead_mass_amu,
            "box_nm": [float(x) for x in self.box_nm],
            "density_g_cm3": self.density_g_cm3,
            "density_err_g_cm3": self.density_err_g_cm3,
            "diffusion_m2_s": d.diffusion_m2_s,
            "diffusion_err_m2_s": d.diffusion_err_m2_s,
            "diffusion_fit_window_ps": [d.fit_start_ps, d.fit_end_ps],
            "diffusion_method": d.method,
            "msd_loglog_slope": d.slope_loglog,
            "diffusion_warning": d.warning or None,
            "rdf_r_max_nm": float(self.rdf.r_max_nm),
            "rdf_bin_width_nm": float(self.rdf.bin_width_nm),
            "n_frames": int(self.rdf.n_frames),
            "rdf_long_range_mean": long_range_mean(self.rdf),
        }


def long_range_mean(rdf: RDFResult, fraction: float = 0.2) -> float:
    """Mean g(r) over the outer ``fraction`` of the r range (→ 1 for a liquid)."""
    n = max(1, int(len(rdf.r_nm) * fraction))
    return float(np.mean(rdf.g[-n:]))


def analyze(
    traj: CGTrajectory,
    *,
    density_series_g_cm3: np.ndarray | None = None,
    rdf_bin_nm: float = RDF_BIN_NM,
    rdf_r_max_nm: float | None = None,
    fit_window_ps: tuple[float | None, float | None] = (None, None),
) -> LiquidAnalysis:
    """RDF, MSD, D and density of a one-bead trajectory.

    ``density_series_g_cm3`` overrides the density taken from the trajectory's boxes (a
    constant-volume production run reports the density of its preceding NPT stage instead).
    """
    if traj.n_beads < 2:
        raise InputError("the trajectory has fewer than 2 molecules; nothing to analyse")
    if traj.n_frames < 3:
        raise InputError(
            f"the trajectory has {traj.n_frames} frames; at least 3 are needed for RDF and MSD "
            "(lengthen the production run or sample more often)"
        )
    masses = np.unique(np.round(traj.masses_amu, 6))
    if len(masses) > 1:
        raise InputError(
            "the molecules have different masses (a mixture); cgforge's one-bead analysis covers "
            "single-component liquids"
        )
    rdf = RDF(r_max_nm=rdf_r_max_nm, bin_width_nm=rdf_bin_nm).compute(traj)
    msd = MSD(remove_drift=True).compute(traj)  # system drift is not diffusion
    diffusion = fit_diffusion(msd, t_min_ps=fit_window_ps[0], t_max_ps=fit_window_ps[1])
    series = (
        traj.density_g_cm3 if density_series_g_cm3 is None else np.asarray(density_series_g_cm3)
    )
    density, density_err = mean_with_error(series)
    return LiquidAnalysis(
        rdf=rdf,
        msd=msd,
        diffusion=diffusion,
        density_g_cm3=float(density),
        density_err_g_cm3=float(density_err),
        box_nm=np.asarray(traj.box_nm[-1], dtype=float),
        bead_mass_amu=float(masses[0]),
        n_beads=traj.n_beads,
    )


def write_results(out: Path, analysis: LiquidAnalysis, traj: CGTrajectory, title: str) -> None:
    """Write rdf.csv, msd.csv, cg_trajectory.npz and observables.png (not the summary)."""
    analysis.rdf.to_csv(out / "rdf.csv")
    analysis.msd.to_csv(out / "msd.csv")
    traj.save(out / "cg_trajectory.npz")
    plot_observables(out / "observables.png", analysis, title)


def plot_observables(path: Path, analysis: LiquidAnalysis, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_g, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    rdf = analysis.rdf
    ax_g.plot(rdf.r_nm, rdf.g, lw=1.5)
    ax_g.fill_between(rdf.r_nm, rdf.g - rdf.g_err, rdf.g + rdf.g_err, alpha=0.3)
    ax_g.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax_g.set_xlabel("r / nm")
    ax_g.set_ylabel("g(r), centres of mass")
    msd, d = analysis.msd, analysis.diffusion
    mask = msd.t_ps > 0
    ax_m.loglog(msd.t_ps[mask], msd.msd_nm2[mask], lw=1.5, label="MSD")
    t_fit = np.linspace(d.fit_start_ps, d.fit_end_ps, 20)
    ax_m.loglog(
        t_fit,
        6.0 * d.diffusion_nm2_ps * t_fit + _intercept(msd, d),
        "r--",
        label=f"D = {d.diffusion_m2_s:.3g} ± {d.diffusion_err_m2_s:.2g} m²/s",
    )
    ax_m.set_xlabel("t / ps")
    ax_m.set_ylabel("MSD / nm²")
    ax_m.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _intercept(msd: MSDResult, d: DiffusionResult) -> float:
    window = (msd.t_ps >= d.fit_start_ps) & (msd.t_ps <= d.fit_end_ps)
    if not np.any(window):
        return 0.0
    return float(np.mean(msd.msd_nm2[window] - 6.0 * d.diffusion_nm2_ps * msd.t_ps[window]))
