"""``cgforge run``: molecule → all-atom reference → IBI → CG production → report, in one command.

The presets (:data:`cgforge.presets.PRESETS`: ``tiny``, ``quick``, ``standard``) fix every
setting of the three stages.

Each stage has its own run directory inside ``out`` (``aa/``, ``cg/``) and resumes on its own, so
a killed ``run`` continues with the stage it was in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from cgforge.engines.protocol import ProgressCallback
from cgforge.errors import InputError
from cgforge.fileio import check_creatable_dir, write_json
from cgforge.presets import Preset, get_preset
from cgforge.provenance import collect
from cgforge.workflows.aa import AAConfig, default_protocol, run_aa
from cgforge.workflows.cg import run_ibi_from_reference


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
    cg_threads: int = 1,
) -> dict[str, Any]:
    """Run the three stages into ``out`` and write ``report.html`` and ``summary.json``.

    ``cg_engine`` runs IBI and the CG production (auto, lammps, openmm, torch) on
    ``cg_threads`` CPU threads (:attr:`~cgforge.engines.protocol.MDProtocol.cg_threads`)."""
    settings = get_preset(preset) if isinstance(preset, str) else preset
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"out {out} is a file; give a directory path", parameters="out")
    check_creatable_dir(out)
    ibi_config = replace(  # checks the CG settings before the all-atom run
        settings.ibi, platform=platform, seed=seed, engine=cg_engine, cg_threads=cg_threads
    )
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
