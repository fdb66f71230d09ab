"""The friction fit with CG runs: the Langevin γ that slows a CG model to a target mobility.

:func:`fit_friction` evaluates D(γ) with CG runs of :func:`cgforge.workflows.cg.run_cg` (each
in its own subdirectory of the work directory, all with the same seed) and leaves the choice of
γ to the search of :func:`cgforge.methods.friction.search_friction`; the model of D(γ), the
root finder, the stopping rule and the files of the work directory are described in
:mod:`cgforge.methods.friction`. The work directory is a resumable run directory
(:class:`~cgforge.rundir.RunDirectory`): its ``summary.json`` is the search's summary with the
provenance of the fit's settings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cgforge.engines.protocol import MDProtocol, ProgressCallback
from cgforge.errors import InputError
from cgforge.fileio import sha256_file
from cgforge.methods.friction import (
    FrictionConfig,
    FrictionFit,
    fit_from_summary,
    friction_protocol,
    search_friction,
)
from cgforge.provenance import collect
from cgforge.rundir import RunDirectory
from cgforge.workflows.cg import load_reference, run_cg

__all__ = ["fit_friction"]


def fit_friction(
    potential_csv: str | Path,
    out: str | Path,
    *,
    protocol: MDProtocol,
    reference_dir: str | Path | None = None,
    target_diffusion_m2_s: float | None = None,
    target_diffusion_err_m2_s: float | None = None,
    newtonian_diffusion_m2_s: float | None = None,
    newtonian_diffusion_err_m2_s: float | None = None,
    mass_amu: float | None = None,
    n_beads: int | None = None,
    density_g_cm3: float | None = None,
    box_nm: float | list[float] | None = None,
    config: FrictionConfig | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> FrictionFit:
    """Fit the Langevin friction γ (1/ps) of a CG potential so that D(γ) = D_target.

    ``potential_csv``, ``mass_amu``, ``n_beads``, ``density_g_cm3``/``box_nm`` and
    ``reference_dir`` are passed to :func:`~cgforge.workflows.cg.run_cg` for every evaluation
    (mass, beads and start density default to the reference's, and each run's summary then
    carries the comparison with it). ``protocol`` is the CG protocol (temperature K, pressure
    bar, time step, equilibration and production ps, seed); its production ensemble is replaced
    by ``langevin``. The target D (m²/s) and its standard error default to the reference's.
    ``newtonian_diffusion_m2_s``: D_0 of the model under ``protocol`` as it is (e.g. the IBI
    production); when None it is measured first in ``out/newtonian``. Rerunning into the same
    ``out`` resumes; a finished fit returns its result.
    """
    config = FrictionConfig() if config is None else config
    if not isinstance(config, FrictionConfig):
        raise InputError(f"config must be a FrictionConfig, got {type(config).__name__}")
    path = Path(potential_csv)
    if not path.is_file():
        raise InputError(f"potential file {path} not found")
    reference = None if reference_dir is None else load_reference(reference_dir)
    if target_diffusion_m2_s is None:
        if reference is None:
            raise InputError("give the target diffusion coefficient or a reference directory")
        target = reference.diffusion_m2_s
        target_err = (
            reference.diffusion_err_m2_s
            if target_diffusion_err_m2_s is None
            else target_diffusion_err_m2_s
        )
    else:
        target = float(target_diffusion_m2_s)
        target_err = float(target_diffusion_err_m2_s or 0.0)
    if not (math.isfinite(target) and target > 0):
        raise InputError(f"the target diffusion coefficient must be positive (m2/s), got {target}")
    if not (math.isfinite(target_err) and target_err >= 0):
        raise InputError(f"the target's error must be non-negative (m2/s), got {target_err}")
    if mass_amu is not None:
        mass = float(mass_amu)
    elif reference is not None:
        mass = reference.bead_mass_amu
    else:
        raise InputError("give the bead mass (amu) or a reference directory")
    if protocol.production_ensemble == "langevin" and newtonian_diffusion_m2_s is None:
        raise InputError(
            "the friction fit needs the model's Newtonian D: give newtonian_diffusion_m2_s or a "
            "protocol with the nvt or nve production ensemble"
        )
    base = friction_protocol(protocol)
    run_settings = {
        "mass_amu": mass_amu,
        "n_beads": n_beads,
        "density_g_cm3": density_g_cm3,
        "box_nm": box_nm,
        "reference_dir": None if reference is None else reference.path,
    }
    fit_config = {
        "potential_sha256": sha256_file(path),
        "reference_sha256": None if reference is None else reference.fingerprint(),
        "target_diffusion_m2_s": target,
        "target_diffusion_err_m2_s": target_err,
        "newtonian_diffusion_m2_s": newtonian_diffusion_m2_s,
        "newtonian_diffusion_err_m2_s": newtonian_diffusion_err_m2_s,
        "mass_amu": mass,
        "n_beads": n_beads,
        "density_g_cm3": density_g_cm3,
        "box_nm": box_nm,
        "protocol": base.to_dict(),
        "friction": config.to_dict(),
    }
    rundir = RunDirectory(out, fit_config, overwrite=overwrite)
    if rundir.prepare() == "complete":
        return fit_from_summary(rundir.path, rundir.read_summary())
    root = rundir.path

    def evaluate(name: str, proto: MDProtocol) -> dict[str, Any]:
        return run_cg(path, protocol=proto, out=root / name, progress=progress, **run_settings)

    summary = search_friction(
        evaluate,
        root,
        base=base,
        target=target,
        target_err=target_err,
        mass=mass,
        newtonian_diffusion_m2_s=newtonian_diffusion_m2_s,
        newtonian_diffusion_err_m2_s=newtonian_diffusion_err_m2_s,
        config=config,
    )
    summary["provenance"] = collect(fit_config, seed=base.seed)
    rundir.write_summary(summary)
    return fit_from_summary(root, rundir.read_summary())
