"""``cgforge analyze``: the one-bead reference of a user's own trajectory (GROMACS, LAMMPS, DCD)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cgforge.errors import InputError
from cgforge.liquid_analysis import RDF_BIN_NM, analyze, write_results
from cgforge.provenance import collect
from cgforge.rundir import RunDirectory
from cgforge.trajectory import read_trajectory

#: Fewest frames accepted: the MSD needs lags beyond the ballistic regime for a diffusive fit.
MIN_FRAMES = 10


@dataclass(frozen=True)
class AnalyzeConfig:
    topology: str
    trajectory: tuple[str, ...] = ()
    temperature_K: float | None = None
    start: int | None = None
    stop: int | None = None
    step: int | None = None
    rdf_bin_nm: float = RDF_BIN_NM
    rdf_r_max_nm: float | None = None
    fit_start_ps: float | None = None
    fit_end_ps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_analyze(
    config: AnalyzeConfig, out: str | Path, *, overwrite: bool = False
) -> dict[str, Any]:
    if config.temperature_K is not None and config.temperature_K <= 0:
        raise InputError(
            f"temperature_K must be positive, got {config.temperature_K}",
            parameters="temperature_K",
        )
    files = [config.topology, *config.trajectory]
    for name in files:
        if not Path(name).is_file():
            raise InputError(f"file not found: {name}")
    rundir = RunDirectory(out, config.to_dict(), overwrite=overwrite)
    if rundir.prepare() == "complete":
        return rundir.read_summary()
    trajectory = list(config.trajectory) if config.trajectory else None
    traj = read_trajectory(
        config.topology, trajectory, start=config.start, stop=config.stop, step=config.step
    )
    if traj.n_frames < MIN_FRAMES:
        raise InputError(
            f"the trajectory holds {traj.n_frames} frames (after start, stop and step); a "
            f"diffusion fit needs at least {MIN_FRAMES}: give a longer trajectory or a smaller "
            "step",
            parameters=("start", "stop", "step"),
        )
    analysis = analyze(
        traj,
        rdf_bin_nm=config.rdf_bin_nm,
        rdf_r_max_nm=config.rdf_r_max_nm,
        fit_window_ps=(config.fit_start_ps, config.fit_end_ps),
    )
    name = Path(config.topology).stem
    write_results(rundir.path, analysis, traj, title=f"{name}: centres of mass")
    summary = {
        "molecule": name,
        "source": "cgforge analyze",
        "temperature_K": config.temperature_K,
        **analysis.summary_fields(),
        "density_source": "trajectory boxes",
        "notes": [f"diffusion: {analysis.diffusion.warning}"] if analysis.diffusion.warning else [],
        "has_forces": traj.forces_kj_mol_nm is not None,
        "files": {
            "rdf": "rdf.csv",
            "msd": "msd.csv",
            "cg_trajectory": "cg_trajectory.npz",
            "plot": "observables.png",
            "inputs": [str(Path(f).resolve()) for f in files],
        },
        "provenance": collect(config.to_dict(), seed=None),
    }
    rundir.write_summary(summary)
    return summary
