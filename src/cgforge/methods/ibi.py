"""Iterative Boltzmann inversion (IBI) of a one-bead pair potential, with a pressure correction.

The scheme follows VOTCA's ``csg_inverse`` IBI (Reith, Pütz & Müller-Plathe, J. Comput. Chem. 24,
1624 (2003); Rühle et al., J. Chem. Theory Comput. 5, 3211 (2009)). All energies in kJ/mol,
distances in nm, pressures in bar, kT = k_B T in kJ/mol.

Grid
    The potential lives on the bin centres r_k = (k + ½) w of the IBI histogram (bin width ``w``,
    default: the smallest multiple of the target's bin width that is at least 0.005 nm; with
    ``bin_noise_fraction`` set, the smallest such multiple whose target noise floor is at most
    that fraction of the tolerance, up to :data:`MAX_AUTO_BIN_NM` (:func:`auto_bin_width`); the
    target RDF is re-binned onto it, shell-volume weighted), from the first bin where the target
    g exceeds ``g_min`` up to the cutoff r_c (the last bin centre not beyond the requested
    cutoff). This "raw" table carries the iteration. The table that is simulated
    (:func:`md_table`) is the raw one tapered to U = F = 0 at r_c
    (:meth:`~cgforge.potentials.TabulatedPotential.smooth_cutoff`, width ``switch_width_nm``)
    and continued to r = 0 by the repulsive wall of
    :meth:`~cgforge.potentials.TabulatedPotential.extend_repulsive`, joined at the first grid
    point with a repulsive force.

Initial guess
    U₀(r) = −kT ln g_target(r) (the potential of mean force) on the bins where g_target > g_min.

Update (iteration i → i+1)
    ΔU(r) = α kT ln[g_i(r) / g_target(r)] on the bins where both g_i and g_target exceed
    ``g_min``; on other bins ΔU is interpolated linearly between valid neighbours and held
    constant beyond the first/last valid bin (no force change where the CG model samples
    nothing); ΔU is then smoothed with a Savitzky–Golay filter (``smoothing_window`` points,
    quadratic). α is ``damping``.

Pressure correction (VOTCA "simple")
    U_{i+1} = U_i + ΔU + ΔU_p with the linear ramp ΔU_p(r) = A (1 − r/r_c) (0 beyond r_c) and

        A = −sign(P_i − P_t) · min(A_max, 0.1 kT · |P_i − P_t| / P_scale),

    A_max = ``pressure_max_kT`` · kT (default 0.2 kT). P_scale is ``pressure_scale_bar`` when
    set (VOTCA's ``pscale`` is 1/P_scale; its usual 3·10⁻⁴ bar⁻¹ is P_scale ≈ 3300 bar). By
    default it is P_scale = 0.1 kT · ∂P/∂A, from the ramp's first-order pressure response at
    fixed structure (virial route, g_i of the iteration, ρ = N/V):

        ∂P/∂A = (2π/3) ρ² (1/r_c) ∫₀^{r_c} r³ g_i(r) dr,

    so that below the cap the ramp removes ΔP to first order; the structure then relaxes and
    takes back part of it, which keeps the loop stable. (≈ 130 bar for the supercritical LJ
    liquid of the tests; g ≈ 1 gives ≈ 120 bar for one-bead hexane with r_c = 1.4 nm.) A
    pressure that is
    too high makes the potential more attractive (A < 0). The ramp is added only while the
    pressure criterion below fails. CG runs are at the reference's number density in NVT, so
    matching the pressure there makes the CG model's own density at that pressure match the
    reference.

Convergence
    ε_i = ∫₀^{r_c} |g_i − g_t| dr / ∫₀^{r_c} g_t dr ≤ ``rdf_tolerance`` (default 1 %) AND
    |P_i − P_t| ≤ max(``pressure_tolerance_bar``, ``pressure_sigmas`` · σ_ΔP) with
    σ_ΔP = sqrt(σ_P,i² + σ_P,t²) (standard errors of the means). The run stops at the first
    iteration where both hold, or after ``max_iterations``. With no pressure target only ε
    counts. Statistical noise in both g's puts a floor under ε (``rdf_noise`` in each
    iteration's record estimates it for independent samples); a tolerance below it is met only
    by a potential that reproduces the target's own noise (:func:`rdf_noise`). The target's
    share (:func:`target_noise_floor`) does not shrink with longer CG runs: on a small
    reference (100 molecules × 100 frames) it is 2.2 % at 0.006 nm bins and 1.3 % at 0.018 nm,
    and the bin width is the lever (ε from noise ∝ 1/√width).

The result's reason also notes an iteration that ran hot or cold (temperature off by more than
its error + 1 %) or a time step beyond the potential's
:func:`~cgforge.engines.cg_system.timestep_limit_fs` (recorded in each ``update.json``).

Each iteration is an NVT run of the CG engine ``engine`` names (:mod:`cgforge.engines.cg_engine`:
LAMMPS, OpenMM or torch; ``auto`` is LAMMPS on CPUs, OpenMM on CUDA) (Nosé–Hoover dynamics
at fixed volume, no NPT stage; the first ``equilibration_ps`` are discarded, the rest is
sampled). Iteration 0 starts from a minimised jittered lattice, later ones from the last frame
of the previous iteration (not minimised, which would quench the liquid).

Work directory (resumable: a killed run continues from its last finished iteration, and the
MD of an unfinished iteration resumes from its own checkpoints)::

    ibi.json              settings that fix the iteration (a different run is refused)
    iter_NNN/potential_raw.csv, potential.csv, update.json   written before the MD
    iter_NNN/md/          the engine's work directory (removed when the iteration is done)
    iter_NNN/rdf.csv, final_positions.npy, result.json       result.json marks it finished
    history.csv           iteration,rdf_deviation,pressure_bar,pressure_err_bar,
                          density_g_cm3,diffusion_m2_s (rewritten atomically)
    potential.csv, rdf.csv, target_rdf.csv, convergence.png   written at the end
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import savgol_filter

from cgforge.engines.cg_engine import CGSystem, resolve_engine_name, run_cg_md
from cgforge.engines.cg_system import (
    box_edges,
    check_cutoff,
    lattice_positions,
    timestep_limit_fs,
)
from cgforge.engines.protocol import MDProtocol, MDResult, ProgressCallback, check_cg_threads
from cgforge.errors import InputError, SimulationError, check_settings
from cgforge.fileio import atomic_path, write_json, write_text
from cgforge.methods.measure import measure_production
from cgforge.observables import RDF
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.io import read_csv, write_csv
from cgforge.potentials.table import TabulatedPotential
from cgforge.provenance import normalised_json
from cgforge.units import KJ_MOL_NM3_TO_BAR, density_g_cm3, kT

#: Default cutoff of the IBI potential, nm (shortened to half the box or the target's range).
DEFAULT_CUTOFF_NM = 1.4
#: Smallest default IBI bin width, nm (finer target bins are merged up to at least this).
MIN_BIN_NM = 0.005
#: Widest bin that :func:`auto_bin_width` chooses, nm: wider bins blur the rise of the first
#: peak (about 0.1 nm) and the wall of the potential with it.
MAX_AUTO_BIN_NM = 0.024
#: Cap A_max / kT of the pressure ramp's amplitude: the default of both
#: :attr:`IBIConfig.pressure_max_kT` and :func:`pressure_ramp`'s ``max_kT``.
DEFAULT_PRESSURE_MAX_KT = 0.2
#: Relative deviation of an iteration's measured temperature from its target (beyond its standard
#: error) that the IBI result's reason reports.
TEMPERATURE_TOLERANCE = 0.01
#: :class:`IBIConfig` fields that every MD run of a configuration (its iterations,
#: :meth:`IBIConfig.protocol`, and the CG production after it) takes over unchanged as the
#: :class:`~cgforge.engines.protocol.MDProtocol` fields of the same names
#: (:meth:`IBIConfig.md_settings`).
MD_SETTINGS = ("timestep_fs", "platform", "seed", "engine", "cg_threads")
#: Columns of ``history.csv``.
HISTORY_COLUMNS = (
    "iteration",
    "rdf_deviation",
    "pressure_bar",
    "pressure_err_bar",
    "density_g_cm3",
    "diffusion_m2_s",
)
_SETTINGS_FILE = "ibi.json"
_RESULT_FILE = "result.json"


# ====================================================================== configuration
@dataclass(frozen=True)
class IBIConfig:
    """Settings of an IBI run. Distances nm, times ps (``timestep_fs`` in fs), pressures bar.

    Iteration control: ``max_iterations``; ``damping`` α of the RDF update (0 < α ≤ 1; 0.8 by
    default: full steps overshoot in the first iterations of a dense liquid, small ones waste
    iterations); ``rdf_tolerance`` on ε (fraction, 0.01 = 1 %); ``pressure_tolerance_bar`` and
    ``pressure_sigmas`` (the pressure criterion is met within the larger of the two bounds);
    ``pressure_correction`` switches the ramp on; ``pressure_scale_bar`` (P_scale; None: from
    the ramp's virial, see the module docstring) and ``pressure_max_kT`` (A_max / kT) shape it.

    Potential: ``cutoff_nm`` (None: min(1.4 nm, half the box, the target's range)),
    ``bin_width_nm`` (None: see the module docstring), ``switch_width_nm`` of the taper to zero
    at the cutoff, ``g_min`` below which g counts as zero, ``smoothing_window`` (odd number of
    points of the Savitzky–Golay smoothing of ΔU; 0 or 1 switches it off).
    ``bin_noise_fraction`` (None: off) picks the bin width from the target's own noise
    (:func:`auto_bin_width`) where ``bin_width_nm`` is None; ``smoothing_nm`` (None: off)
    replaces ``smoothing_window`` by the largest odd number of bins spanning at most that length
    (off below 3), so that the smoothing keeps its length whatever the bins.

    MD of each iteration: ``timestep_fs``, ``equilibration_ps`` (discarded start of the NVT run),
    ``production_ps`` (sampled), ``sample_interval_ps`` (frames for RDF and MSD),
    ``thermo_interval_ps`` (pressure samples), ``checkpoint_interval_ps``, ``platform``, ``engine``
    (CG engine: auto, lammps, openmm, torch; :func:`run_ibi` resolves auto), ``cg_threads`` (CPU
    threads of the engine: :attr:`~cgforge.engines.protocol.MDProtocol.cg_threads`), ``seed``
    (iteration i uses seed + i), ``keep_md`` (keep each iteration's MD directory), ``patience``
    (stop after this many iterations without a lower RDF deviation and keep the best one). Of these,
    :data:`MD_SETTINGS` (time step, platform, seed, engine, threads) pass unchanged to every MD run
    of the configuration: :meth:`md_settings`, :meth:`md_protocol`; :meth:`protocol` adds the
    iteration's lengths, intervals and seed.
    """

    max_iterations: int = 30
    damping: float = 0.8
    rdf_tolerance: float = 0.01
    pressure_tolerance_bar: float = 25.0
    pressure_sigmas: float = 2.0
    pressure_correction: bool = True
    pressure_scale_bar: float | None = None
    pressure_max_kT: float = DEFAULT_PRESSURE_MAX_KT
    cutoff_nm: float | None = None
    bin_width_nm: float | None = None
    switch_width_nm: float = 0.1
    g_min: float = 0.01
    smoothing_window: int = 5
    timestep_fs: float = 5.0
    equilibration_ps: float = 10.0
    production_ps: float = 100.0
    sample_interval_ps: float = 0.5
    thermo_interval_ps: float = 0.1
    checkpoint_interval_ps: float = 20.0
    platform: str = "auto"
    seed: int = 0
    keep_md: bool = False
    engine: str = "auto"
    patience: int = 10
    bin_noise_fraction: float | None = None
    smoothing_nm: float | None = None
    cg_threads: int = 1

    def __post_init__(self) -> None:
        checks = {
            "max_iterations": isinstance(self.max_iterations, int) and self.max_iterations >= 1,
            "damping": 0.0 < self.damping <= 1.0,
            "rdf_tolerance": self.rdf_tolerance > 0.0,
            "pressure_tolerance_bar": self.pressure_tolerance_bar >= 0.0,
            "pressure_sigmas": self.pressure_sigmas >= 0.0,
            "pressure_scale_bar": self.pressure_scale_bar is None or self.pressure_scale_bar > 0.0,
            "pressure_max_kT": self.pressure_max_kT >= 0.0,
            "cutoff_nm": self.cutoff_nm is None or self.cutoff_nm > 0.0,
            "bin_width_nm": self.bin_width_nm is None or self.bin_width_nm > 0.0,
            "switch_width_nm": self.switch_width_nm > 0.0,
            "g_min": 0.0 < self.g_min < 1.0,
            "smoothing_window": self.smoothing_window in (0, 1)
            or (self.smoothing_window >= 3 and self.smoothing_window % 2 == 1),
            "timestep_fs": 0.0 < self.timestep_fs <= 50.0,
            "equilibration_ps": self.equilibration_ps >= 0.0,
            "production_ps": self.production_ps > 0.0,
            "sample_interval_ps": self.sample_interval_ps > 0.0,
            "thermo_interval_ps": self.thermo_interval_ps > 0.0,
            "checkpoint_interval_ps": self.checkpoint_interval_ps > 0.0,
            "patience": isinstance(self.patience, int) and self.patience >= 1,
            "bin_noise_fraction": self.bin_noise_fraction is None or self.bin_noise_fraction > 0,
            "smoothing_nm": self.smoothing_nm is None or self.smoothing_nm >= 0,
        }
        check_settings(self, checks, "IBI", finite=True)
        check_cg_threads(self.cg_threads)
        if self.production_ps < 3 * self.sample_interval_ps:
            raise InputError(
                f"IBI production {self.production_ps:g} ps holds fewer than 3 samples every "
                f"{self.sample_interval_ps:g} ps; lengthen it or sample more often"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for JSON provenance; ``engine`` only when it is not OpenMM (or the
        unresolved ``auto``), ``patience`` only when it is not the default 10 and ``cg_threads``
        only when it is not 1, so that runs
        keep the hashes they had before these fields. Not a round trip for ``engine="openmm"``:
        copy settings with ``dataclasses.replace``."""
        out = asdict(self)
        if out["engine"] in ("auto", "openmm"):
            del out["engine"]
        if out["patience"] == 10:
            del out["patience"]  # the default; runs of the same settings keep their hashes
        if out["cg_threads"] == 1:
            del out["cg_threads"]
        for name in ("bin_noise_fraction", "smoothing_nm"):
            if out[name] is None:
                del out[name]  # off by default, and left out like patience
        return out

    def window_for(self, bin_width_nm: float) -> int:
        """Savitzky–Golay points on bins of ``bin_width_nm``: ``smoothing_window``, or from
        ``smoothing_nm`` the largest odd count spanning at most that length (0 below 3)."""
        if self.smoothing_nm is None:
            return self.smoothing_window
        points = math.floor(self.smoothing_nm / bin_width_nm + 1e-9)
        points -= 1 - points % 2
        return points if points >= 3 else 0

    def md_settings(self) -> dict[str, Any]:
        """The :data:`MD_SETTINGS` of this configuration, ``{name: value}``: the keyword
        arguments of :class:`MDProtocol` that every MD run of it shares."""
        return {name: getattr(self, name) for name in MD_SETTINGS}

    def md_protocol(self, temperature_K: float, **settings: Any) -> MDProtocol:
        """An :class:`MDProtocol` at ``temperature_K`` with :meth:`md_settings`; ``settings``
        (other :class:`MDProtocol` fields) add to them or replace them."""
        return MDProtocol(temperature_K=temperature_K, **{**self.md_settings(), **settings})

    def protocol(self, temperature_K: float, iteration: int) -> MDProtocol:
        """The NVT :class:`MDProtocol` of one iteration (no NPT stage: volume stays fixed).

        Only iteration 0 (a lattice start) is minimised; later iterations start from the last
        liquid frame of the previous one, which minimisation would quench. Iteration i runs
        with seed + i.
        """
        dt_ps = self.timestep_fs * 1e-3

        def on_step(t_ps: float) -> float:
            return max(dt_ps, round(t_ps / dt_ps) * dt_ps)

        return self.md_protocol(
            temperature_K,
            minimize=iteration == 0,
            equilibration_ps=0.0,
            production_ps=on_step(self.equilibration_ps + self.production_ps),
            sample_interval_ps=on_step(self.sample_interval_ps),
            thermo_interval_ps=on_step(self.thermo_interval_ps),
            production_ensemble="nvt",
            save_forces=False,
            save_particles=False,
            checkpoint_interval_ps=self.checkpoint_interval_ps,
            seed=self.seed + iteration,
        )


@dataclass(frozen=True)
class IBIIteration:
    """What one IBI iteration measured with its potential.

    ``rdf_deviation`` ε (fraction), ``pressure_bar`` ± ``pressure_err_bar`` (mean and its
    standard error), ``density_g_cm3`` (fixed by the box), ``diffusion_m2_s`` ±
    ``diffusion_err_m2_s`` (NaN if the MSD fit failed), ``temperature_K`` (measured) ±
    ``temperature_err_K``, ``rdf_noise`` (ε expected from statistical noise alone, see
    :func:`rdf_noise`), and which criteria held.
    """

    iteration: int
    rdf_deviation: float
    pressure_bar: float
    pressure_err_bar: float
    density_g_cm3: float
    diffusion_m2_s: float
    diffusion_err_m2_s: float = float("nan")
    temperature_K: float = float("nan")
    rdf_noise: float = float("nan")
    rdf_converged: bool = False
    pressure_converged: bool = False
    temperature_err_K: float = float("nan")

    @property
    def converged(self) -> bool:
        """Both criteria held."""
        return self.rdf_converged and self.pressure_converged

    def history_row(self) -> list[float]:
        """Values of :data:`HISTORY_COLUMNS`."""
        return [getattr(self, name) for name in HISTORY_COLUMNS]


@dataclass(frozen=True)
class IBIResult:
    """Outcome of :func:`run_ibi`.

    ``potential``: the table simulated in the converged iteration, else in the iteration of
    lowest RDF deviation (``best_iteration``), starting at r = 0 and ending at the cutoff;
    ``rdf``: its CG RDF;
    ``target``: the target RDF on the IBI bins; ``history``: one :class:`IBIIteration` per
    iteration; ``iterations``: how many ran; ``reason``: why the run stopped.
    """

    potential: TabulatedPotential
    rdf: RDFResult
    target: RDFResult
    history: tuple[IBIIteration, ...]
    converged: bool
    iterations: int
    reason: str
    workdir: Path
    best_iteration: int = -1


# ====================================================================== RDF helpers
def _check_rdf(rdf: RDFResult, what: str) -> None:
    if not isinstance(rdf, RDFResult):
        raise InputError(f"{what} must be an RDFResult, got {type(rdf).__name__}")
    r, g = np.asarray(rdf.r_nm, dtype=float), np.asarray(rdf.g, dtype=float)
    if r.size == 0 or g.size != r.size:
        raise InputError(
            f"{what} is empty; give an RDF with r_nm,g rows (e.g. rdf.csv of cgforge aa)"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(g))):
        raise InputError(f"{what} holds NaN or infinite values; recompute it")
    if not np.any(g > 0.0):
        raise InputError(f"{what} is zero everywhere (no pairs counted); recompute it with frames")


def default_bin_width(rdf: RDFResult) -> float:
    """Smallest multiple of the RDF's bin width that is at least :data:`MIN_BIN_NM`, nm."""
    w = float(rdf.bin_width_nm)
    return w * max(1, math.ceil(MIN_BIN_NM / w - 1e-9))


def auto_bin_width(rdf: RDFResult, floor: float, r_max_nm: float = DEFAULT_CUTOFF_NM) -> float:
    """Smallest multiple of the RDF's bin width, at least :func:`default_bin_width`, whose
    :func:`target_noise_floor` up to ``r_max_nm`` is at most ``floor``; at most
    :data:`MAX_AUTO_BIN_NM` (the widest multiple below it when no width gets there), nm.

    A long reference keeps fine bins (shipped benzene, 216 molecules × 500 ps: 0.43 % at
    0.006 nm); a short one gets wide ones (100 molecules × 60 ps: 2.2 % at 0.006 nm, 1.1 % at
    0.024 nm).
    """
    w0 = float(rdf.bin_width_nm)
    first = round(default_bin_width(rdf) / w0)
    last = max(first, math.floor(MAX_AUTO_BIN_NM / w0 + 1e-9))
    for m in range(first, last + 1):
        if target_noise_floor(rebin_rdf(rdf, m * w0), r_max_nm) <= floor:
            return m * w0
    return last * w0


def rebin_rdf(rdf: RDFResult, bin_width_nm: float, r_max_nm: float | None = None) -> RDFResult:
    """The RDF on bins of width ``bin_width_nm`` from 0 up to ``r_max_nm`` (default: its range).

    When the new width is a whole multiple of the old one and the old bins start at 0, groups
    of bins are merged exactly (g weighted by shell volume, errors combined as independent);
    otherwise g and its error are interpolated linearly at the new bin centres.
    """
    _check_rdf(rdf, "the RDF")
    w_old = float(rdf.bin_width_nm)
    w = float(bin_width_nm)
    if not (math.isfinite(w) and w > 0):
        raise InputError(f"bin width must be positive, got {bin_width_nm}")
    top = float(rdf.r_max_nm) if r_max_nm is None else min(float(r_max_nm), float(rdf.r_max_nm))
    n_new = math.floor(top / w + 1e-9)
    if n_new < 1:
        raise InputError(f"the RDF range {top:g} nm is shorter than one bin of {w:g} nm")
    r_old = np.asarray(rdf.r_nm, dtype=float)
    g_old = np.asarray(rdf.g, dtype=float)
    e_old = np.nan_to_num(np.asarray(rdf.g_err, dtype=float), nan=0.0)
    ratio = w / w_old
    m = round(ratio)
    aligned = abs(r_old[0] - 0.5 * w_old) < 1e-6 * w_old
    if aligned and m >= 1 and abs(ratio - m) < 1e-6 and n_new * m <= r_old.size:
        edges = np.arange(n_new * m + 1) * w_old
        shell = edges[1:] ** 3 - edges[:-1] ** 3
        vol = shell.reshape(n_new, m)
        g = (g_old[: n_new * m].reshape(n_new, m) * vol).sum(axis=1) / vol.sum(axis=1)
        err = np.sqrt(((e_old[: n_new * m].reshape(n_new, m) * vol) ** 2).sum(axis=1))
        err /= vol.sum(axis=1)
    else:
        centres = (np.arange(n_new) + 0.5) * w
        g = np.interp(centres, r_old, g_old)
        err = np.interp(centres, r_old, e_old)
    return RDFResult(
        r_nm=(np.arange(n_new) + 0.5) * w,
        g=g,
        g_err=err,
        n_frames=rdf.n_frames,
        r_max_nm=n_new * w,
        bin_width_nm=w,
        density_nm3=rdf.density_nm3,
        neighbour_density_nm3=rdf.neighbour_density_nm3,
    )


def _on_target_bins(
    rdf: RDFResult, target: RDFResult, r_max_nm: float | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(g, g_err, g_target, g_target_err) on the target's bins up to the common range."""
    _check_rdf(rdf, "the RDF")
    _check_rdf(target, "the target RDF")
    top = min(float(rdf.r_max_nm), float(target.r_max_nm))
    if r_max_nm is not None:
        top = min(top, float(r_max_nm))
    r_t = np.asarray(target.r_nm, dtype=float)
    keep = r_t <= top + 1e-9
    if not np.any(keep):
        raise InputError("the RDFs have no range in common")
    r_t = r_t[keep]
    g_t = np.asarray(target.g, dtype=float)[keep]
    e_t = np.nan_to_num(np.asarray(target.g_err, dtype=float)[keep], nan=0.0)
    r = np.asarray(rdf.r_nm, dtype=float)
    same = (
        abs(rdf.bin_width_nm - target.bin_width_nm) < 1e-6 * target.bin_width_nm
        and r.size >= r_t.size
        and np.allclose(r[: r_t.size], r_t, rtol=0, atol=1e-6 * target.bin_width_nm)
    )
    if same:
        g = np.asarray(rdf.g, dtype=float)[: r_t.size]
        e = np.nan_to_num(np.asarray(rdf.g_err, dtype=float)[: r_t.size], nan=0.0)
    else:
        g = np.interp(r_t, r, np.asarray(rdf.g, dtype=float))
        e = np.interp(r_t, r, np.nan_to_num(np.asarray(rdf.g_err, dtype=float), nan=0.0))
    return g, e, g_t, e_t


def rdf_deviation(rdf: RDFResult, target: RDFResult, r_max_nm: float | None = None) -> float:
    """ε = ∫|g − g_target| dr / ∫ g_target dr over the target's bins up to ``r_max_nm``.

    ``r_max_nm`` defaults to the common range of both RDFs; ``rdf`` is interpolated onto the
    target's bins when its bins differ. Dimensionless (0.01 = 1 %).
    """
    g, _, g_t, _ = _on_target_bins(rdf, target, r_max_nm)
    return float(np.sum(np.abs(g - g_t)) / np.sum(g_t))


def rdf_noise(rdf: RDFResult, target: RDFResult, r_max_nm: float | None = None) -> float:
    """ε expected from statistical noise alone: Σ √(2/π) √(σ² + σ_t²) / Σ g_target.

    σ and σ_t are the RDFs' ``g_err`` (block-averaging standard errors, which carry the
    correlation of successive frames); E|x| = √(2/π) σ for a normal x of zero mean. This is the
    ε of two *independent* estimates of the same g(r). Checked against that: two runs of one
    potential (3-methylpentane beads, 300 beads × 60 frames; argon-like LJ, 100–216 beads,
    frames 0.1–0.6 ps apart) and the two halves of an all-atom trajectory give ε / estimate =
    0.9–1.1 at bins of 0.002–0.03 nm; merging bins (:func:`rebin_rdf`) keeps it.

    An IBI model is not independent of its target: each update pulls g_CG toward the noisy
    g_target, smoothing only slows that on short length scales, so over many iterations the
    potential takes on part of the target's noise (and grows jagged) and ε can fall below this
    estimate, toward the CG part alone. The target's own part is :func:`target_noise_floor`;
    the bins set both: ε from noise scales roughly as 1/√(bin width).
    """
    _, e, g_t, e_t = _on_target_bins(rdf, target, r_max_nm)
    return float(np.sum(math.sqrt(2.0 / math.pi) * np.hypot(e, e_t)) / np.sum(g_t))


def target_noise_floor(target: RDFResult, r_max_nm: float | None = None) -> float:
    """The target's share of :func:`rdf_noise`: Σ √(2/π) σ_t / Σ g_target up to ``r_max_nm``,
    the ε that a noise-free model reproducing the true g(r) would show against the target."""
    _, _, g_t, e_t = _on_target_bins(target, target, r_max_nm)
    return float(np.sum(math.sqrt(2.0 / math.pi) * e_t) / np.sum(g_t))


def rdf_r2(rdf: RDFResult, target: RDFResult, r_max_nm: float | None = None) -> float:
    """Coefficient of determination R² = 1 − Σ(g − g_t)² / Σ(g_t − ḡ_t)² on the target's bins."""
    g, _, g_t, _ = _on_target_bins(rdf, target, r_max_nm)
    ss_tot = float(np.sum((g_t - g_t.mean()) ** 2))
    if ss_tot == 0.0:
        raise InputError("the target RDF is constant; R² is undefined")
    return 1.0 - float(np.sum((g - g_t) ** 2)) / ss_tot


# ====================================================================== potential steps
def pressure_ramp(
    r_nm: ArrayLike,
    cutoff_nm: float,
    delta_p_bar: float,
    temperature_K: float,
    *,
    scale_bar: float,
    max_kT: float = DEFAULT_PRESSURE_MAX_KT,
) -> NDArray[np.float64]:
    """VOTCA's "simple" pressure correction ΔU_p(r) = A (1 − r/r_c) in kJ/mol (0 beyond r_c).

    A = −sign(ΔP) · min(max_kT · kT, 0.1 kT · |ΔP| / scale_bar) with ΔP = P_CG − P_target in
    bar: too high a pressure gives A < 0, an attractive ramp. ``max_kT`` defaults to
    :attr:`IBIConfig.pressure_max_kT`'s default (:data:`DEFAULT_PRESSURE_MAX_KT`).
    ``scale_bar`` (P_scale) has no default: :class:`IBIConfig`'s (``pressure_scale_bar=None``)
    is 0.1 kT · :func:`ramp_pressure_response` of the iteration's g(r), which the ramp alone
    cannot know (VOTCA's usual pscale 3·10⁻⁴ bar⁻¹ is ``scale_bar`` ≈ 3300 bar).
    """
    r = np.asarray(r_nm, dtype=float)
    k_t = kT(temperature_K)
    amplitude = -math.copysign(
        min(max_kT * k_t, 0.1 * k_t * abs(delta_p_bar) / scale_bar), delta_p_bar
    )
    if delta_p_bar == 0.0:
        amplitude = 0.0
    return np.where(r < cutoff_nm, amplitude * (1.0 - r / cutoff_nm), 0.0)


def ramp_pressure_response(rdf: RDFResult, cutoff_nm: float, density_nm3: float) -> float:
    """∂P/∂A in bar per kJ/mol: the virial pressure change per unit amplitude of the ramp
    A (1 − r/r_c) at fixed structure, (2π/3) ρ² (1/r_c) ∫₀^{r_c} r³ g(r) dr (g constant per
    bin, ρ in 1/nm³)."""
    edges = rdf.r_edges_nm
    upper = np.clip(edges[1:], None, cutoff_nm)
    lower = np.clip(edges[:-1], None, cutoff_nm)
    integral = float(np.sum(np.asarray(rdf.g, dtype=float) * (upper**4 - lower**4) / 4.0))
    response = 2.0 * math.pi / 3.0 * density_nm3**2 * integral / cutoff_nm
    return response * KJ_MOL_NM3_TO_BAR


def initial_potential(
    target: RDFResult, temperature_K: float, cutoff_nm: float, *, g_min: float = 0.01
) -> TabulatedPotential:
    """U₀ = −kT ln g_target (kJ/mol) on the target's bin centres from g > g_min to the cutoff.

    ``target`` is already on the IBI bins; ``cutoff_nm`` is a bin centre. Leading bins with
    g ≤ g_min are left out (the MD table gets a wall there, see :func:`md_table`).
    """
    _check_rdf(target, "the target RDF")
    r = np.asarray(target.r_nm, dtype=float)
    g = np.asarray(target.g, dtype=float)
    inside = r <= cutoff_nm + 1e-9 * cutoff_nm
    r, g = r[inside], g[inside]
    first = _first_valid_bin(r, g, g_min)
    u = np.full(r.size, np.inf)
    u[first:] = -kT(temperature_K) * np.log(g[first:])
    return TabulatedPotential.from_partial(r, u, cutoff_nm=float(r[-1]))


def _first_valid_bin(r: NDArray[np.float64], g: NDArray[np.float64], g_min: float) -> int:
    """First bin of the contiguous region g > g_min that reaches the cutoff."""
    low = np.flatnonzero(g <= g_min)
    first = 0 if low.size == 0 else int(low[-1]) + 1
    peak = int(np.argmax(g))
    if first > peak:
        raise InputError(
            f"the target RDF drops to g <= {g_min:g} at r = {r[first - 1]:.4g} nm, beyond its "
            "first peak; it is not a liquid RDF or has too few samples (lower g_min or sample more)"
        )
    if r.size - first < 4:
        raise InputError(
            "the target RDF has fewer than 4 bins with g > g_min below the cutoff; use a longer "
            "cutoff or finer bins"
        )
    return first


def md_table(raw: TabulatedPotential, switch_width_nm: float) -> TabulatedPotential:
    """The table that is simulated: ``raw`` tapered to U = F = 0 at its cutoff and walled to r = 0.

    The wall (:meth:`TabulatedPotential.extend_repulsive`) joins at the first grid point with a
    repulsive force; data below it are replaced.
    """
    width = min(float(switch_width_nm), 0.5 * (raw.cutoff_nm - raw.r_min_nm))
    tapered = raw.smooth_cutoff(width)
    repulsive = np.flatnonzero(tapered.f_kj_mol_nm[:-1] > 0.0)
    if repulsive.size == 0:
        raise SimulationError(
            "the IBI potential has lost its repulsive core (no repulsive force below the cutoff); "
            "lower the damping or check the target RDF"
        )
    match = float(tapered.r_nm[int(repulsive[0])])
    return tapered.extend_repulsive(0.0, match_at_nm=match)


def update_potential(
    raw: TabulatedPotential,
    rdf: RDFResult,
    target: RDFResult,
    temperature_K: float,
    *,
    damping: float = 0.8,
    g_min: float = 0.01,
    smoothing_window: int = 5,
    pressure_shift: NDArray[np.float64] | None = None,
) -> tuple[TabulatedPotential, NDArray[np.float64]]:
    """One IBI step: U + α kT ln(g/g_target) (smoothed) + optional pressure ramp.

    ``rdf`` and ``target`` are on the same bins as the grid of ``raw`` (bin centres); the
    ramp ``pressure_shift`` (kJ/mol) is given on the grid of ``raw``. Returns the new raw table
    and the RDF part of ΔU (kJ/mol) on its grid.
    """
    r = raw.r_nm
    w = float(target.bin_width_nm)
    idx = np.rint(r / w - 0.5).astype(int)
    g_t = np.asarray(target.g, dtype=float)
    g_i = np.asarray(rdf.g, dtype=float)
    if idx[-1] >= min(g_t.size, g_i.size) or abs(rdf.bin_width_nm - w) > 1e-6 * w:
        raise InputError("the CG and target RDFs must share the IBI bins up to the cutoff")
    g_t, g_i = g_t[idx], g_i[idx]
    valid = (g_t > g_min) & (g_i > g_min)
    if not np.any(valid):
        raise SimulationError(
            "the CG RDF has no bin in common with the target (g > g_min); the CG run is far from "
            "the target state: check temperature, density and the initial potential"
        )
    du = np.zeros(r.size)
    du[valid] = damping * kT(temperature_K) * np.log(g_i[valid] / g_t[valid])
    k = np.flatnonzero(valid)
    du = np.interp(np.arange(r.size), k, du[k])
    window = int(smoothing_window)
    if window >= 3:
        window = min(window, r.size - (1 - r.size % 2))
        if window >= 3:
            du = savgol_filter(du, window, 2, mode="interp")
    total = du if pressure_shift is None else du + np.asarray(pressure_shift, dtype=float)
    new = TabulatedPotential(
        r, raw.u_kj_mol + total, cutoff_nm=raw.cutoff_nm, wall_below_nm=raw.wall_below_nm
    )
    return new, du


# ====================================================================== the run
@dataclass(frozen=True)
class _Setup:
    """Everything fixed for one IBI run, derived from the inputs."""

    target: RDFResult  # on the IBI bins
    temperature_K: float
    n_beads: int
    box_nm: NDArray[np.float64]
    mass_amu: float
    pressure_target_bar: float | None
    pressure_target_err_bar: float
    cutoff_nm: float  # a bin centre
    rdf_r_max_nm: float
    config: IBIConfig

    @property
    def density_g_cm3(self) -> float:
        return density_g_cm3(self.n_beads * self.mass_amu, float(np.prod(self.box_nm)))


def _setup(
    target_rdf: RDFResult,
    temperature_K: float,
    n_beads: int,
    box_nm: float | ArrayLike,
    mass_amu: float,
    pressure_target_bar: float | None,
    pressure_target_err_bar: float,
    config: IBIConfig,
) -> _Setup:
    if not isinstance(config, IBIConfig):
        raise InputError(f"config must be an IBIConfig, got {type(config).__name__}")
    _check_rdf(target_rdf, "the target RDF")
    if not (math.isfinite(temperature_K) and temperature_K > 0):
        raise InputError(f"the temperature must be positive (K), got {temperature_K!r}")
    if not (math.isfinite(mass_amu) and mass_amu > 0):
        raise InputError(f"the bead mass must be positive (amu), got {mass_amu!r}")
    if isinstance(n_beads, bool) or int(n_beads) != n_beads or n_beads < 2:
        raise InputError(f"the number of beads must be an integer >= 2, got {n_beads!r}")
    box = box_edges(box_nm)
    if pressure_target_bar is not None and not math.isfinite(pressure_target_bar):
        raise InputError(
            f"the target pressure must be a finite number (bar), got {pressure_target_bar}"
        )
    if not (math.isfinite(pressure_target_err_bar) and pressure_target_err_bar >= 0):
        pressure_target_err_bar = 0.0
    if config.bin_width_nm is not None:
        w = config.bin_width_nm
    elif config.bin_noise_fraction is not None:
        top = DEFAULT_CUTOFF_NM if config.cutoff_nm is None else config.cutoff_nm
        w = auto_bin_width(target_rdf, config.bin_noise_fraction * config.rdf_tolerance, top)
    else:
        w = default_bin_width(target_rdf)
    target = rebin_rdf(target_rdf, w)
    half_box = 0.5 * float(box.min())
    if config.cutoff_nm is None:
        cutoff_req = min(DEFAULT_CUTOFF_NM, half_box, float(target.r_nm[-1]))
    else:
        cutoff_req = float(config.cutoff_nm)
        check_cutoff(cutoff_req, box)
        if cutoff_req > float(target.r_max_nm) + 1e-9:
            raise InputError(
                f"the cutoff {cutoff_req:g} nm lies beyond the target RDF (up to "
                f"{float(target.r_max_nm):g} nm); use a shorter cutoff"
            )
    n_inside = int(np.sum(target.r_nm <= cutoff_req + 1e-9))
    if n_inside < 8:
        raise InputError(f"the cutoff {cutoff_req:g} nm holds fewer than 8 IBI bins of {w:g} nm")
    cutoff = float(target.r_nm[n_inside - 1])
    rdf_r_max = min(float(target.r_max_nm), half_box)
    rdf_r_max = math.floor(rdf_r_max / w + 1e-9) * w
    return _Setup(
        target=target,
        temperature_K=float(temperature_K),
        n_beads=int(n_beads),
        box_nm=box,
        mass_amu=float(mass_amu),
        pressure_target_bar=None if pressure_target_bar is None else float(pressure_target_bar),
        pressure_target_err_bar=float(pressure_target_err_bar),
        cutoff_nm=cutoff,
        rdf_r_max_nm=rdf_r_max,
        config=config,
    )


def _settings_record(setup: _Setup, target_rdf: RDFResult) -> dict[str, Any]:
    """What fixes the sequence of iterations (max_iterations may change between resumes)."""
    digest = hashlib.sha256()
    for arr in (target_rdf.r_nm, target_rdf.g):
        digest.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    config = setup.config.to_dict()
    config.pop("max_iterations")
    config.pop("keep_md")
    return {
        "config": config,
        "temperature_K": setup.temperature_K,
        "n_beads": setup.n_beads,
        "box_nm": setup.box_nm.tolist(),
        "mass_amu": setup.mass_amu,
        "pressure_target_bar": setup.pressure_target_bar,
        "pressure_target_err_bar": setup.pressure_target_err_bar,
        "target_sha256": digest.hexdigest(),
    }


def _claim_workdir(workdir: Path, record: dict[str, Any]) -> None:
    path = workdir / _SETTINGS_FILE
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is damaged; remove {workdir} and start again") from exc
        if normalised_json(stored) != normalised_json(record):
            changed = [
                k for k in record if normalised_json(stored.get(k)) != normalised_json(record[k])
            ]
            if "config" in changed:
                old, new = stored.get("config", {}), record["config"]
                changed = [
                    f"config.{k}"
                    for k in new
                    if normalised_json(old.get(k)) != normalised_json(new[k])
                ]
                changed += [
                    k
                    for k in record
                    if k != "config"
                    and normalised_json(stored.get(k)) != normalised_json(record[k])
                ]
            raise InputError(
                f"{workdir} holds an IBI run with other settings (differs in: "
                f"{', '.join(changed) or 'unknown'}); use another work directory"
            )
        return
    if workdir.exists() and not workdir.is_dir():
        raise InputError(f"the IBI work directory {workdir} is a file; give a directory")
    workdir.mkdir(parents=True, exist_ok=True)
    if any(p.name.startswith("iter_") for p in workdir.iterdir()):
        raise InputError(
            f"{workdir} holds IBI iterations without {_SETTINGS_FILE}; use another directory"
        )
    write_json(path, record)


def _iter_dir(workdir: Path, i: int) -> Path:
    return workdir / f"iter_{i:03d}"


def _load_record(path: Path) -> IBIIteration:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is damaged; remove its iteration directory to redo it") from exc
    names = {f.name for f in fields(IBIIteration)}
    return IBIIteration(**{k: v for k, v in data.items() if k in names})


def _write_history(workdir: Path, records: list[IBIIteration]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    for rec in records:
        cells = [str(rec.iteration)] + [f"{v:.10g}" for v in rec.history_row()[1:]]
        lines.append(",".join(cells))
    write_text(workdir / "history.csv", "\n".join(lines) + "\n")


def _write_rdf(path: Path, rdf: RDFResult) -> None:
    rdf.to_csv(path)


#: An iteration that meets the pressure criterion is kept over one of lower RDF deviation that
#: does not, as long as its deviation is within this factor of the lowest one.
PRESSURE_PREFERENCE = 1.25


def kept_iteration(records: Sequence[IBIIteration]) -> IBIIteration:
    """The iteration IBI keeps when it does not converge: the one of lowest RDF deviation among
    those that meet the pressure criterion and lie within :data:`PRESSURE_PREFERENCE` of the
    lowest deviation of all; else the one of lowest deviation. A model off in pressure changes
    its density under NPT, so it is preferred when it costs little structure, but an early
    iteration that happens to meet the pressure never outweighs a much better RDF."""
    if not records:
        raise ValueError("kept_iteration needs at least one iteration")
    lowest = min(records, key=lambda r: r.rdf_deviation)
    near = [
        r
        for r in records
        if r.pressure_converged and r.rdf_deviation <= PRESSURE_PREFERENCE * lowest.rdf_deviation
    ]
    return min(near, key=lambda r: r.rdf_deviation) if near else lowest


class _IBIRun:
    """State and steps of one IBI run in its work directory."""

    def __init__(self, setup: _Setup, workdir: Path, progress: ProgressCallback | None) -> None:
        self.s = setup
        self.c = setup.config
        self.workdir = workdir
        self.progress = progress

    # ---------------------------------------------------------------- potentials
    def _ensure_potential(self, i: int) -> tuple[TabulatedPotential, TabulatedPotential]:
        """(raw, simulated) tables of iteration i, from its files; written first if missing."""
        d = _iter_dir(self.workdir, i)
        raw_path, table_path = d / "potential_raw.csv", d / "potential.csv"
        if not table_path.exists():
            d.mkdir(parents=True, exist_ok=True)
            info: dict[str, Any] = {"iteration": i}
            if i == 0:
                raw = initial_potential(
                    self.s.target, self.s.temperature_K, self.s.cutoff_nm, g_min=self.c.g_min
                )
                info["step"] = "initial guess -kT ln g_target"
            else:
                raw, info = self._next_raw(i - 1)
            table = md_table(raw, self.c.switch_width_nm)
            info["timestep_limit_fs"] = timestep_limit_fs(
                table, self.s.mass_amu, self.s.temperature_K
            )
            note = f"cgforge IBI iteration {i}"
            write_csv(raw_path, raw, provenance=f"{note} (raw, before taper and wall)")
            write_json(d / "update.json", info)
            write_csv(table_path, table, provenance=note)
        return read_csv(raw_path), read_csv(table_path)

    def _next_raw(self, prev: int) -> tuple[TabulatedPotential, dict[str, Any]]:
        """Raw table of iteration prev + 1 from the files of iteration prev."""
        d = _iter_dir(self.workdir, prev)
        raw = read_csv(d / "potential_raw.csv")
        rdf = RDFResult.from_csv(d / "rdf.csv")
        record = _load_record(d / _RESULT_FILE)
        shift = None
        amplitude = 0.0
        scale = self._pressure_scale(rdf, raw.cutoff_nm)
        if self._pressure_active(record):
            dp = record.pressure_bar - float(self.s.pressure_target_bar)  # type: ignore[arg-type]
            ramp = {
                "cutoff_nm": raw.cutoff_nm,
                "delta_p_bar": dp,
                "temperature_K": self.s.temperature_K,
                "scale_bar": scale,
                "max_kT": self.c.pressure_max_kT,
            }
            shift = pressure_ramp(raw.r_nm, **ramp)
            amplitude = float(pressure_ramp([0.0], **ramp)[0])
        new, du = update_potential(
            raw,
            rdf,
            self.s.target,
            self.s.temperature_K,
            damping=self.c.damping,
            g_min=self.c.g_min,
            smoothing_window=self.c.window_for(float(self.s.target.bin_width_nm)),
            pressure_shift=shift,
        )
        info = {
            "iteration": prev + 1,
            "step": f"IBI update from iteration {prev}",
            "damping": self.c.damping,
            "max_abs_rdf_update_kj_mol": float(np.max(np.abs(du))),
            "pressure_ramp_amplitude_kj_mol": amplitude,
            "pressure_scale_bar": scale,
        }
        return new, info

    def _pressure_scale(self, rdf: RDFResult, cutoff_nm: float) -> float:
        """P_scale in bar: the configured one, or 0.1 kT · ∂P/∂A of the ramp at this g(r)."""
        if self.c.pressure_scale_bar is not None:
            return float(self.c.pressure_scale_bar)
        rho = self.s.n_beads / float(np.prod(self.s.box_nm))
        response = ramp_pressure_response(rdf, cutoff_nm, rho)
        return 0.1 * kT(self.s.temperature_K) * response

    def _pressure_active(self, record: IBIIteration) -> bool:
        return (
            self.c.pressure_correction
            and self.s.pressure_target_bar is not None
            and not record.pressure_converged
        )

    # ---------------------------------------------------------------- MD
    def _start_positions(self, i: int) -> NDArray[np.float64]:
        if i == 0:
            return lattice_positions(self.s.n_beads, self.s.box_nm, self.c.seed)
        return np.load(_iter_dir(self.workdir, i - 1) / "final_positions.npy")

    def _simulate(self, i: int, table: TabulatedPotential) -> MDResult:
        system = CGSystem(
            table,
            self.s.n_beads,
            self.s.box_nm,
            self.s.mass_amu,
            positions_nm=self._start_positions(i),
            label=f"the potential of IBI iteration {i}",
        )
        return run_cg_md(
            system,
            self.c.protocol(self.s.temperature_K, i),
            _iter_dir(self.workdir, i) / "md",
            progress=self.progress,
        )

    def _measure(self, i: int, result: MDResult) -> tuple[IBIIteration, RDFResult]:
        c, s = self.c, self.s
        bins = RDF(r_max_nm=s.rdf_r_max_nm, bin_width_nm=s.target.bin_width_nm)
        m = measure_production(result, c.equilibration_ps, bins, what=f"IBI iteration {i}")
        rdf, pressure, pressure_err = m.rdf, m.pressure_bar, m.pressure_err_bar
        deviation = rdf_deviation(rdf, s.target, s.cutoff_nm + 0.5 * s.target.bin_width_nm)
        noise = rdf_noise(rdf, s.target, s.cutoff_nm + 0.5 * s.target.bin_width_nm)
        if s.pressure_target_bar is None:
            pressure_ok = True
        else:
            sigma = math.hypot(
                pressure_err if math.isfinite(pressure_err) else 0.0, s.pressure_target_err_bar
            )
            bound = max(c.pressure_tolerance_bar, c.pressure_sigmas * sigma)
            pressure_ok = abs(pressure - s.pressure_target_bar) <= bound
        record = IBIIteration(
            iteration=i,
            rdf_deviation=deviation,
            pressure_bar=pressure,
            pressure_err_bar=pressure_err,
            density_g_cm3=s.density_g_cm3,
            diffusion_m2_s=m.diffusion_m2_s,
            diffusion_err_m2_s=m.diffusion_err_m2_s,
            temperature_K=m.temperature_K,
            temperature_err_K=m.temperature_err_K,
            rdf_noise=noise,
            rdf_converged=deviation <= c.rdf_tolerance,
            pressure_converged=bool(pressure_ok),
        )
        return record, rdf

    def _finish_iteration(
        self, i: int, record: IBIIteration, rdf: RDFResult, result: MDResult
    ) -> None:
        d = _iter_dir(self.workdir, i)
        _write_rdf(d / "rdf.csv", rdf)
        last = result.bead_positions_nm[-1]
        wrapped = last - self.s.box_nm * np.floor(last / self.s.box_nm)
        with atomic_path(d / "final_positions.npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, wrapped)
        data = asdict(record)
        data["converged"] = record.converged
        data["wall_s"] = result.wall_s
        data["platform"] = result.platform
        write_json(d / _RESULT_FILE, data)  # marks the iteration finished
        if not self.c.keep_md:
            shutil.rmtree(d / "md", ignore_errors=True)

    # ---------------------------------------------------------------- driver
    def finished_records(self) -> list[IBIIteration]:
        records: list[IBIIteration] = []
        while len(records) < self.c.max_iterations:
            path = _iter_dir(self.workdir, len(records)) / _RESULT_FILE
            if not path.exists():
                break
            records.append(_load_record(path))
            if records[-1].converged:
                break
        return records

    def run(self) -> IBIResult:
        records = self.finished_records()
        if records:
            _write_history(self.workdir, records)  # repairs a history cut short by a kill
        while self._stop_reason(records) is None:
            i = len(records)
            _, table = self._ensure_potential(i)
            result = self._simulate(i, table)
            record, rdf = self._measure(i, result)
            self._finish_iteration(i, record, rdf, result)
            records.append(record)
            _write_history(self.workdir, records)
            if self.progress is not None:
                self.progress("ibi", i + 1, self.c.max_iterations, result.ns_per_day)
        return self._final(records)

    @staticmethod
    def _best(records: list[IBIIteration]) -> IBIIteration:
        return kept_iteration(records)

    def _stop_reason(self, records: list[IBIIteration]) -> str | None:
        """Why the iterations stop now (None: go on): converged, the iteration cap, or
        ``patience`` iterations without a lower RDF deviation (the deviation has reached its
        noise floor, or the potential drifts away from the target)."""
        if not records:
            return None
        if records[-1].converged:
            return "converged"
        if len(records) >= self.c.max_iterations:
            return f"not converged after {len(records)} iterations (max_iterations)"
        lowest = min(records, key=lambda r: r.rdf_deviation)
        if records[-1].iteration - lowest.iteration >= self.c.patience:
            return (
                f"stopped after {len(records)} iterations: no lower RDF deviation in the "
                f"last {self.c.patience} (patience)"
            )
        return None

    def _final(self, records: list[IBIIteration]) -> IBIResult:
        """The result: the converged iteration, else the best one (:meth:`_best`)."""
        last = records[-1]
        stop = self._stop_reason(records) or "interrupted"
        pick = last if last.converged else self._best(records)
        d = _iter_dir(self.workdir, pick.iteration)
        table = read_csv(d / "potential.csv")
        rdf = RDFResult.from_csv(d / "rdf.csv")
        initial = read_csv(_iter_dir(self.workdir, 0) / "potential.csv")
        w = float(self.s.target.bin_width_nm)
        if last.converged:
            reason = (
                f"converged at iteration {last.iteration}: RDF deviation "
                f"{last.rdf_deviation:.3%} <= {self.c.rdf_tolerance:.3%}"
                + self._pressure_note(last)
            )
        else:
            reason = (
                f"{stop}; the potential of iteration {pick.iteration} is kept, the lowest RDF "
                f"deviation{self._pick_note(pick, records)}: "
                f"{pick.rdf_deviation:.3%} (tolerance {self.c.rdf_tolerance:.3%}, noise "
                f"floor ~{pick.rdf_noise:.3%}, the target's own "
                f"{target_noise_floor(self.s.target, self.s.cutoff_nm + 0.5 * w):.3%})"
                + self._pressure_note(pick)
            )
        reason += self._dynamics_note(pick, table)
        write_csv(self.workdir / "potential.csv", table, provenance=f"cgforge IBI, {reason}")
        _write_rdf(self.workdir / "rdf.csv", rdf)
        _write_rdf(self.workdir / "target_rdf.csv", self.s.target)
        _write_history(self.workdir, records)
        plot_convergence(self.workdir / "convergence.png", records, self.s, rdf, table, initial)
        return IBIResult(
            potential=table,
            rdf=rdf,
            target=self.s.target,
            history=tuple(records),
            converged=last.converged,
            iterations=len(records),
            reason=reason,
            workdir=self.workdir,
            best_iteration=pick.iteration,
        )

    def _pick_note(self, pick: IBIIteration, records: list[IBIIteration]) -> str:
        """How the kept iteration was chosen, for the result's reason."""
        lowest = min(records, key=lambda r: r.rdf_deviation)
        if pick.iteration == lowest.iteration:
            return ""
        return (
            f" that meets the pressure (iteration {lowest.iteration} has "
            f"{lowest.rdf_deviation:.3%} but misses it)"
        )

    def _dynamics_note(self, rec: IBIIteration, table: TabulatedPotential) -> str:
        """A note when the kept iteration ran hot or cold (off by more than its error plus
        :data:`TEMPERATURE_TOLERANCE`) or its time step exceeds the potential's
        :func:`~cgforge.engines.cg_system.timestep_limit_fs`; empty when neither."""
        notes = []
        target = self.s.temperature_K
        err = rec.temperature_err_K if math.isfinite(rec.temperature_err_K) else 0.0
        if math.isfinite(rec.temperature_K) and abs(rec.temperature_K - target) > (
            err + TEMPERATURE_TOLERANCE * target
        ):
            notes.append(
                f"iteration {rec.iteration} ran at {rec.temperature_K:.1f} ± {err:.1f} K against "
                f"{target:g} K (off by more than its error + {TEMPERATURE_TOLERANCE:.0%})"
            )
        limit = timestep_limit_fs(table, self.s.mass_amu, target)
        if self.c.timestep_fs > limit:
            notes.append(
                f"its time step {self.c.timestep_fs:g} fs exceeds the {limit:.1f} fs that the "
                "potential's stiffest accessible curvature allows (a jagged potential)"
            )
        if not notes:
            return ""
        return "; " + "; ".join(notes) + ": shorten timestep_fs or smooth the potential"

    def _pressure_note(self, rec: IBIIteration) -> str:
        if self.s.pressure_target_bar is None:
            return ""
        met = "met" if rec.pressure_converged else "not met"
        return (
            f"; pressure {rec.pressure_bar:.1f} ± {rec.pressure_err_bar:.1f} bar vs target "
            f"{self.s.pressure_target_bar:.1f} bar ({met})"
        )


def run_ibi(
    target_rdf: RDFResult,
    *,
    temperature_K: float,
    n_beads: int,
    box_nm: float | ArrayLike,
    mass_amu: float,
    pressure_target_bar: float | None,
    config: IBIConfig | None = None,
    workdir: str | Path,
    pressure_target_err_bar: float = 0.0,
    progress: ProgressCallback | None = None,
) -> IBIResult:
    """Iterative Boltzmann inversion of ``target_rdf`` at fixed density (resumable).

    Parameters
    ----------
    target_rdf:
        The reference bead–bead RDF (e.g. ``RDFResult.from_csv('aa/rdf.csv')``).
    temperature_K:
        Temperature of the CG runs and of kT in the update, K.
    n_beads, box_nm:
        The CG system: number of beads and box (a cubic edge or three edges, nm); together
        they set the number density, which should be the reference's.
    mass_amu:
        Bead mass, amu (affects the dynamics only, not the converged potential).
    pressure_target_bar:
        Pressure the CG runs should reach at this density (the reference's), bar; None
        switches the pressure correction and the pressure criterion off.
    config:
        :class:`IBIConfig` (defaults if None).
    workdir:
        Work directory; rerunning with the same arguments resumes a killed run.
    pressure_target_err_bar:
        Standard error of the target pressure, bar (widens the pressure criterion).
    progress:
        Callback ``(stage, done, total, ns_per_day)``; MD stages come from
        :meth:`CGEngine.run`, and ``("ibi", iterations done, max_iterations, ns/day)`` after
        each finished iteration.

    Raises
    ------
    InputError
        Empty or unusable target RDF, bead mass <= 0, cutoff beyond half the box, bad
        settings, or a work directory holding another run.
    SimulationError
        A CG run blew up or lost all overlap with the target.
    """
    config = IBIConfig() if config is None else config
    if isinstance(config, IBIConfig):
        config = replace(config, engine=resolve_engine_name(config.engine))
    setup = _setup(
        target_rdf,
        temperature_K,
        n_beads,
        box_nm,
        mass_amu,
        pressure_target_bar,
        pressure_target_err_bar,
        config,
    )
    work = Path(workdir)
    _claim_workdir(work, _settings_record(setup, target_rdf))
    return _IBIRun(setup, work, progress).run()


# ====================================================================== plot
def plot_convergence(
    path: Path,
    records: list[IBIIteration],
    setup: _Setup,
    rdf: RDFResult,
    table: TabulatedPotential,
    initial: TabulatedPotential,
) -> None:
    """convergence.png: ε and pressure per iteration, final g(r) and U(r) against the start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = np.array([r.iteration for r in records])
    eps = np.array([r.rdf_deviation for r in records])
    noise = np.array([r.rdf_noise for r in records])
    p = np.array([r.pressure_bar for r in records])
    p_err = np.array([r.pressure_err_bar for r in records])
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    ax = axes[0, 0]
    ax.semilogy(it, eps, "o-", label="ε (RDF deviation)")
    ax.semilogy(it, noise, ":", color="grey", label="noise floor")
    ax.axhline(setup.config.rdf_tolerance, color="r", ls="--", lw=0.8, label="tolerance")
    ax.set_xlabel("iteration")
    ax.set_ylabel("∫|g − g_t| dr / ∫g_t dr")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.errorbar(it, p, yerr=p_err, fmt="o-", capsize=2, label="CG")
    if setup.pressure_target_bar is not None:
        pt = setup.pressure_target_bar
        ax.axhline(pt, color="r", lw=0.8, label="target")
        tol = setup.config.pressure_tolerance_bar
        ax.axhspan(pt - tol, pt + tol, color="r", alpha=0.1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("pressure / bar")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    ax.plot(setup.target.r_nm, setup.target.g, "k-", lw=1.5, label="target")
    ax.plot(rdf.r_nm, rdf.g, "r--", lw=1.2, label=f"CG, iteration {it[-1]}")
    ax.axvline(setup.cutoff_nm, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("r / nm")
    ax.set_ylabel("g(r)")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for pot, style, label in ((initial, "k:", "initial −kT ln g"), (table, "r-", "final")):
        ax.plot(pot.r_nm, pot.u_kj_mol, style, label=label)
    well = table.u_kj_mol[table.r_nm > (table.wall_below_nm or 0.0)]
    low = float(min(well.min(), initial.u_kj_mol.min()))
    ax.set_ylim(low - 0.5, max(3.0 * abs(low), 2.0 * kT(setup.temperature_K)))
    ax.set_xlim(
        0.5 * float(setup.target.r_nm[np.argmax(setup.target.g > setup.config.g_min)]),
        setup.cutoff_nm,
    )
    ax.set_xlabel("r / nm")
    ax.set_ylabel("U / kJ mol⁻¹")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
