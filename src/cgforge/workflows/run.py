"""``cgforge run``: molecule → all-atom reference → IBI → CG production → report, in one command.

Presets fix every setting of the three stages:

* ``quick``: a small, short protocol for a desktop CPU (about 10–20 minutes for 3-methylpentane on
  two cores with OpenMM, less with GROMACS): a meaningful but noisy answer. Its IBI spends the
  cheap CG sampling (LAMMPS) on 600 beads and 50 ps per iteration, on bins chosen from the
  target's own noise (``bin_noise_fraction``), which no CG sampling lowers. The all-atom
  frames are 0.1 ps apart: pair distances cross a bin within a fraction of a picosecond, so
  600 frames of the same 60 ps halve that noise against 100 (the target's floor: 1.0 % instead
  of 2.2 % at 0.006 nm bins, 0.5 % instead of 1.1 % at 0.024 nm; ``benchmarks/ibi_quick.py``);
  a short reference gets wide bins, the shipped benzene one keeps 0.006 nm. ΔU is smoothed over 0.03 nm only (5 points at
  0.006 nm, none on wider bins: a 5-point filter over 0.09 nm blunts the first peak's rise,
  1.6 % against 1.4 % at 0.018 nm bins), and the update is undamped (0.8 takes two more
  iterations to the same deviation).
* ``standard``: the publication protocol (500 molecules, ns-scale AA production, 1,000 CG beads,
  long IBI iterations) for a GPU or a cluster node.

Each stage has its own run directory inside ``out`` (``aa/``, ``cg/``) and resumes on its own, so
a killed ``run`` continues with the stage it was in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cgforge.engines.md import ProgressCallback
from cgforge.errors import InputError
from cgforge.fileio import check_creatable_dir, write_json
from cgforge.methods.ibi import IBIConfig
from cgforge.provenance import collect
from cgforge.workflows.aa import AAConfig, default_protocol, run_aa
from cgforge.workflows.cg import run_ibi_from_reference


@dataclass(frozen=True)
class Preset:
    """All settings of an AA → IBI → CG run (``aa_sample_interval_ps``: the all-atom frames'
    spacing; None: :func:`~cgforge.workflows.aa.default_protocol`'s run/100, at most 1 ps)."""

    name: str
    n_molecules: int
    aa_equilibration_ps: float
    aa_production_ps: float
    cg_beads: int
    ibi: IBIConfig
    cg_equilibration_ps: float
    cg_production_ps: float
    aa_sample_interval_ps: float | None = None


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        n_molecules=100,
        aa_equilibration_ps=30.0,
        aa_production_ps=60.0,
        cg_beads=600,
        ibi=IBIConfig(
            max_iterations=30,
            patience=6,
            damping=1.0,
            bin_noise_fraction=0.5,
            smoothing_nm=0.03,
            equilibration_ps=5.0,
            production_ps=50.0,
        ),
        cg_equilibration_ps=20.0,
        cg_production_ps=100.0,
        aa_sample_interval_ps=0.1,
    ),
    "standard": Preset(
        name="standard",
        n_molecules=500,
        aa_equilibration_ps=500.0,
        aa_production_ps=2000.0,
        cg_beads=1000,
        ibi=IBIConfig(max_iterations=50, equilibration_ps=20.0, production_ps=200.0),
        cg_equilibration_ps=100.0,
        cg_production_ps=1000.0,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}") from None


def run_pipeline(
    molecule: str,
    out: str | Path,
    *,
    preset: str | Preset = "quick",
    temperature_K: float = 298.15,
    pressure_bar: float = 1.0,
    platform: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cg_engine: str = "auto",
) -> dict[str, Any]:
    """Run the three stages into ``out`` and write ``report.html`` and ``summary.json``.

    ``cg_engine`` runs IBI and the CG production (auto, lammps, openmm, torch)."""
    settings = get_preset(preset) if isinstance(preset, str) else preset
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"out {out} is a file; give a directory path", parameters="out")
    check_creatable_dir(out)
    sampling: dict[str, float] = {}
    if settings.aa_sample_interval_ps is not None:
        sampling["sample_interval_ps"] = settings.aa_sample_interval_ps
    protocol = default_protocol(
        settings.aa_equilibration_ps,
        settings.aa_production_ps,
        **sampling,
        temperature_K=temperature_K,
        pressure_bar=pressure_bar,
        platform=platform,
        seed=seed,
    )
    aa_config = AAConfig(molecule=molecule, n_molecules=settings.n_molecules, protocol=protocol)
    aa_summary = run_aa(aa_config, out / "aa", overwrite=overwrite, progress=progress)
    ibi_config = replace(settings.ibi, platform=platform, seed=seed, engine=cg_engine)
    cg_summary = run_ibi_from_reference(
        out / "aa",
        out / "cg",
        ibi_config,
        n_beads=settings.cg_beads,
        equilibration_ps=settings.cg_equilibration_ps,
        production_ps=settings.cg_production_ps,
        overwrite=overwrite,
        progress=progress,
    )
    from cgforge.report.html import write_report

    write_report(
        out / "report.html",
        out / "aa",
        out / "cg",
        title=f"{aa_summary['molecule']}: all-atom → one-bead CG ({settings.name})",
    )
    summary = {
        "molecule": aa_summary["molecule"],
        "preset": settings.name,
        "aa": {k: aa_summary.get(k) for k in _AA_KEYS},
        "cg": {k: cg_summary.get(k) for k in _CG_KEYS},
        "acceleration_factor": cg_summary.get("acceleration_factor"),
        "acceleration_factor_err": cg_summary.get("acceleration_factor_err"),
        "rdf_deviation": cg_summary.get("rdf_deviation"),
        "rdf_r2": cg_summary.get("rdf_r2"),
        "density_error": cg_summary.get("density_error"),
        "converged": cg_summary.get("converged"),
        "iterations": cg_summary.get("iterations"),
        "files": {"report": "report.html", "aa": "aa", "cg": "cg"},
        "provenance": collect(
            {
                "molecule": molecule,
                "preset": _preset_dict(settings),
                "temperature_K": temperature_K,
                "pressure_bar": pressure_bar,
                "platform": platform,
            },
            seed=seed,
        ),
    }
    write_json(out / "summary.json", summary)
    return summary


_AA_KEYS = (
    "n_molecules",
    "temperature_K",
    "density_g_cm3",
    "density_err_g_cm3",
    "pressure_bar",
    "diffusion_m2_s",
    "diffusion_err_m2_s",
    "bead_mass_amu",
    "box_nm",
    "ns_per_day",
    "platform",
)
_CG_KEYS = (
    "n_molecules",
    "density_g_cm3",
    "density_err_g_cm3",
    "pressure_bar",
    "diffusion_m2_s",
    "diffusion_err_m2_s",
    "ns_per_day",
    "platform",
)


def _preset_dict(preset: Preset) -> dict[str, Any]:
    data = asdict(preset)
    data["ibi"] = preset.ibi.to_dict()
    return json.loads(json.dumps(data, default=str))
