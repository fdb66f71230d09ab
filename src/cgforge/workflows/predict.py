"""``cgforge predict``: all-atom reference → mobility-network CG potential → CG MD → report.

:func:`predict_potential`
    One prediction of the mobility network (:class:`~cgforge.methods.mobility.MobilityModel`)
    for a bead mass, a diffusion coefficient and an RDF: the simulation-ready table, the
    ensemble's uncertainty band and the out-of-distribution flag with its reasons. Models are
    cached per directory (reloaded when ``model.json`` changes).

:func:`run_predict`
    An all-atom reference directory (:func:`~cgforge.workflows.cg.load_reference`: its bead
    mass, D_AA, g(r), temperature, pressure and density) → the prediction for (m, D_AA, g_AA)
    → a CG production with it (:func:`~cgforge.workflows.cg.run_cg`, compared with the
    reference) → ``report.html`` (:func:`cgforge.report.html.write_report`). Output::

        OUT/predicted_potential.csv              the table (r_nm,U_kJ_mol,F_kJ_mol_nm)
        OUT/predicted_potential_uncertainty.csv  r_nm,U_kJ_mol,U_std_kJ_mol (ensemble band)
        OUT/prediction.json, OUT/prediction.png  inputs, OOD flag and reasons; U ± band
        OUT/cg/                                  the CG run directory (resumable)
        OUT/report.html                          AA vs CG side by side
        OUT/summary.json                         status, numbers, files, provenance (last)

    A predicted potential that makes the CG run fail (:class:`~cgforge.errors.SimulationError`:
    a blow-up, a collapsed box) is not a result: its table is renamed
    ``rejected_potential.csv``, no report is written, and ``summary.json`` says
    ``"status": "failed"`` with the reason (the command exits non-zero). With ``run_md=False``
    the status is ``"predicted"``.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.engines.protocol import ProgressCallback, check_cg_threads
from cgforge.errors import InputError, SimulationError
from cgforge.fileio import atomic_path, check_creatable_dir, write_json
from cgforge.methods.mobility.model_io import MANIFEST
from cgforge.methods.mobility.potential_from_mobility import MobilityModel
from cgforge.methods.mobility.prediction import Prediction
from cgforge.observables.rdf import RDFResult
from cgforge.provenance import collect
from cgforge.workflows.cg import (
    DEFAULT_CG_TIMESTEP_FS,
    AAReference,
    beads_for_reference,
    box_from_density,
    load_reference,
    reference_protocol,
    run_cg,
)

__all__ = [
    "DEFAULT_EQUILIBRATION_PS",
    "DEFAULT_PRODUCTION_PS",
    "Prediction",
    "load_mobility_model",
    "predict_potential",
    "run_predict",
]

#: Default NPT equilibration and production of the CG run with a predicted potential, ps.
DEFAULT_EQUILIBRATION_PS = 20.0
DEFAULT_PRODUCTION_PS = 100.0
#: Summary fields of the CG run copied into the prediction summary.
_CG_KEYS = (
    "n_molecules",
    "density_g_cm3",
    "density_err_g_cm3",
    "pressure_bar",
    "pressure_err_bar",
    "diffusion_m2_s",
    "diffusion_err_m2_s",
    "acceleration_factor",
    "acceleration_factor_err",
    "rdf_deviation",
    "rdf_r2",
    "density_error",
    "ns_per_day",
    "engine",
    "cg_threads",
    "platform",
)


@functools.lru_cache(maxsize=8)
def _cached_model(path: str, stamp: tuple[int, int]) -> MobilityModel:
    return MobilityModel.load(path)


def load_mobility_model(model_dir: str | Path) -> MobilityModel:
    """The mobility model in ``model_dir`` (cached; reloaded when its manifest changes)."""
    path = Path(model_dir)
    manifest = path / MANIFEST
    if not manifest.is_file():
        return MobilityModel.load(path)  # raises the InputError that names the problem
    stat = manifest.stat()
    return _cached_model(str(path.resolve()), (stat.st_mtime_ns, stat.st_size))


def predict_potential(
    model_dir: str | Path | None,
    *,
    mass_amu: float,
    diffusion_m2_s: float,
    rdf: RDFResult | tuple[np.ndarray, np.ndarray],
    temperature_K: float | None = None,
) -> Prediction:
    """Predict a mobility-preserving CG potential with the model in ``model_dir``.

    ``mass_amu``: the bead mass (amu); ``diffusion_m2_s``: the target diffusion coefficient
    (m²/s, usually D_AA); ``rdf``: the target centre-of-mass g(r) (an RDFResult or
    ``(r_nm, g)``); ``temperature_K`` (optional) is only checked against the training data.
    Returns a :class:`~cgforge.methods.mobility.prediction.Prediction`: ``potential`` (a
    simulation-ready TabulatedPotential), ``r_nm``/``u_kj_mol``/``u_std_kj_mol`` (mean and
    ensemble spread), ``out_of_distribution`` with ``ood_reasons``, ``inputs`` and ``model``.
    Raises InputError for a missing or incompatible model or invalid inputs, SimulationError
    when the predicted potential has no repulsive core. ``model_dir`` None takes the model
    shipped with cgforge.
    """
    from cgforge.methods.mobility.model_io import resolve_model_dir

    return load_mobility_model(resolve_model_dir(model_dir)).predict(
        mass_amu, diffusion_m2_s, rdf, temperature_K=temperature_K
    )


def predicted_acceleration(model_dir: str | Path, reference: AAReference) -> dict[str, Any]:
    """The acceleration factor α = D_CG/D_AA that the acceleration model in ``model_dir``
    (``cgforge train acceleration``) predicts for the IBI model of ``reference``: the model's
    inputs are the molecule's own OPLS-AA bonded parameters and the reference's D_AA.

    Returns :meth:`~cgforge.methods.mobility.acceleration.AccelerationModel.predict`'s fields
    plus ``alpha`` (the network's α) and ``alpha_err`` (its ensemble spread, α · ln 10 ·
    σ(log₁₀ α)). A model trained on another molecule is an InputError that says which.
    """
    from cgforge.methods.mobility.acceleration import AccelerationModel
    from cgforge.molecules.build import load_molecule
    from cgforge.molecules.library import normalize_name
    from cgforge.molecules.randomize import parameter_vector

    model = AccelerationModel.load(model_dir)
    trained_on = str(model.loaded.manifest.get("molecule") or "")
    if normalize_name(trained_on) != normalize_name(reference.molecule):
        raise InputError(
            f"the acceleration model {model_dir} was trained on {trained_on or 'another molecule'}"
            f", not {reference.molecule}; train one on {reference.molecule}'s stage-A records "
            f"(cgforge train acceleration DB --molecule '{reference.molecule}')",
            parameters="alpha_model",
        )
    names, values = parameter_vector(load_molecule(reference.molecule))
    if tuple(names) != model.names:
        raise InputError(
            f"the acceleration model {model_dir} takes other bonded parameters than "
            f"{reference.molecule} has; retrain it on this cgforge version's database",
            parameters="alpha_model",
        )
    out = model.predict(values, reference.diffusion_m2_s)
    alpha = float(out["network"])
    out.update(alpha=alpha, alpha_err=alpha * math.log(10.0) * float(out["network_log10_std"]))
    return out


def _cg_beads(reference: AAReference, cutoff_nm: float, n_beads: int | None) -> int:
    """The CG run's beads: ``n_beads``, checked against the potential's cutoff, or by default
    the reference's molecules, or more where the cutoff needs a larger box."""
    needed = beads_for_reference(reference, cutoff_nm)
    if n_beads is None:
        return needed
    box = box_from_density(int(n_beads), reference.bead_mass_amu, reference.density_g_cm3)
    edge = float(box[0])
    if cutoff_nm > 0.5 * edge:
        raise InputError(
            f"n_beads {n_beads} gives a box of {edge:.3g} nm, less than twice the predicted "
            f"potential's cutoff {cutoff_nm:.4g} nm; use n_beads {needed} or more (or leave "
            "n_beads out)",
            parameters="n_beads",
        )
    return int(n_beads)


def check_reference_for_prediction(reference: AAReference) -> None:
    """Refuse a reference that a mobility model cannot take as input: no positive all-atom D
    or bead mass."""
    d = reference.diffusion_m2_s
    if not (math.isfinite(d) and d > 0):
        raise InputError(
            f"{reference.path / 'summary.json'} has diffusion_m2_s = {d!r}; the prediction needs "
            "the all-atom D (rerun cgforge aa with a production long enough to fit it)"
        )
    mass = reference.bead_mass_amu
    if not (math.isfinite(mass) and mass > 0):
        raise InputError(f"{reference.path / 'summary.json'} has no positive bead_mass_amu")


def _plot(path: Path, prediction: Prediction, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r, u, s = prediction.r_nm, prediction.u_kj_mol, prediction.u_std_kj_mol
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.fill_between(r, u - s, u + s, color="tab:blue", alpha=0.3, label="ensemble ± 1 sd")
    table = prediction.potential
    grid = table.r_nm[table.r_nm >= 0.8 * prediction.start_nm]
    ax.plot(grid, table.energy(grid), "k-", lw=1.2, label="simulated table")
    low = float(min(u.min(), 0.0))
    ax.set_ylim(1.5 * low - 0.5, max(5.0, -3.0 * low))
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.axvline(prediction.start_nm, color="grey", ls=":", lw=0.8)
    ax.set(xlabel="r / nm", ylabel="U / kJ mol⁻¹", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def run_predict(
    reference_dir: str | Path,
    model_dir: str | Path | None,
    out: str | Path,
    *,
    n_beads: int | None = None,
    equilibration_ps: float = DEFAULT_EQUILIBRATION_PS,
    production_ps: float = DEFAULT_PRODUCTION_PS,
    timestep_fs: float = DEFAULT_CG_TIMESTEP_FS,
    platform: str = "auto",
    seed: int = 0,
    run_md: bool = True,
    engine: str = "auto",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cg_threads: int = 1,
) -> dict[str, Any]:
    """Predict the CG potential of an all-atom reference, simulate it and report (see the
    module docstring for the files). The CG run uses ``n_beads`` beads (default: the
    reference's molecules) of the reference's bead mass, starts at its density, equilibrates
    ``equilibration_ps`` under NPT at its barostat pressure and runs ``production_ps`` of
    Nosé–Hoover NVT at its temperature, on the CG engine ``engine`` (auto, lammps, openmm,
    torch) with ``cg_threads`` CPU threads. ``model_dir`` None takes the model shipped with cgforge. Returns the summary (also ``OUT/summary.json``)."""
    from cgforge.methods.mobility.model_io import resolve_model_dir

    check_cg_threads(cg_threads)  # before any work
    model_dir = resolve_model_dir(model_dir)  # None: the model shipped with cgforge

    reference = load_reference(reference_dir)
    check_reference_for_prediction(reference)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"out {folder} is a file; give a directory path", parameters="out")
    if n_beads is not None and (
        isinstance(n_beads, bool) or int(n_beads) != n_beads or int(n_beads) < 2
    ):
        raise InputError(f"n_beads must be an integer >= 2, got {n_beads!r}", parameters="n_beads")
    check_creatable_dir(folder)
    protocol = (
        reference_protocol(
            reference,
            equilibration_ps,
            production_ps,
            timestep_fs=timestep_fs,
            platform=platform,
            seed=seed,
            engine=engine,
            cg_threads=cg_threads,
        )
        if run_md
        else None
    )
    prediction = predict_potential(
        model_dir,
        mass_amu=reference.bead_mass_amu,
        diffusion_m2_s=reference.diffusion_m2_s,
        rdf=reference.rdf,
        temperature_K=reference.temperature_K,
    )
    if protocol is not None:  # a box in which the cutoff stays legal, before any file
        n_beads = _cg_beads(reference, prediction.potential.cutoff_nm, n_beads)
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / "rejected_potential.csv"
    if stale.exists():
        stale.unlink()
    files = prediction.write(folder)
    _plot(folder / "prediction.png", prediction, f"{reference.molecule}: predicted CG potential")
    files["plot"] = "prediction.png"
    config = {
        "reference_dir": str(reference.path),
        "reference_sha256": reference.fingerprint(),
        "model_dir": str(Path(model_dir).resolve()),
        "n_beads": n_beads,
        "protocol": None if protocol is None else protocol.to_dict(),
        "run_md": run_md,
    }
    summary: dict[str, Any] = {
        "status": "predicted",
        "reason": None,
        "molecule": reference.molecule,
        "reference_dir": str(reference.path),
        "model_dir": str(Path(model_dir).resolve()),
        "out_of_distribution": prediction.out_of_distribution,
        "ood_reasons": list(prediction.ood_reasons),
        "prediction": prediction.to_dict(),
        "reference": {
            "diffusion_m2_s": reference.diffusion_m2_s,
            "density_g_cm3": reference.density_g_cm3,
            "bead_mass_amu": reference.bead_mass_amu,
            "temperature_K": reference.temperature_K,
        },
        "cg": None,
        "acceleration_factor": None,
        "rdf_deviation": None,
        "rdf_r2": None,
        "density_error": None,
    }
    if protocol is not None:
        try:
            cg = run_cg(
                folder / files["potential"],
                mass_amu=None,
                n_beads=n_beads,
                protocol=protocol,
                out=folder / "cg",
                reference_dir=reference.path,
                overwrite=overwrite,
                progress=progress,
            )
        except SimulationError as exc:
            (folder / files["potential"]).replace(stale)
            files["potential"] = stale.name
            (folder / "report.html").unlink(missing_ok=True)  # of an earlier, other run
            summary.update(
                status="failed",
                reason=f"the CG run with the predicted potential failed: {exc}",
            )
        else:
            from cgforge.report.html import write_report

            write_report(
                folder / "report.html",
                reference.path,
                folder / "cg",
                title=f"{reference.molecule}: all-atom → one-bead CG (mobility network)",
                method="mobility network",
            )
            files.update(cg="cg", report="report.html")
            summary.update(
                status="ok",
                cg={k: cg.get(k) for k in _CG_KEYS},
                **{
                    k: cg.get(k)
                    for k in ("acceleration_factor", "rdf_deviation", "rdf_r2", "density_error")
                },
            )
    summary["files"] = files
    summary["provenance"] = collect(config, seed=seed)
    write_json(folder / "summary.json", summary)
    return summary
