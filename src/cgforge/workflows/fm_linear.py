"""The workflow of ``cgforge fm linear``: linear force matching (MS-CG) from all-atom runs.

:func:`run_linear_fm`: all-atom run directories with mapped forces → fit of
:mod:`cgforge.methods.force_matching` on training time blocks → statistics on training and
validation blocks → ``potential.csv`` (tapered to zero at the cutoff, repulsive wall below the
sampled range), ``force_table.csv``, ``residuals.csv``, ``fit.json``, ``fm.png``,
``summary.json``; optionally a CG validation run of the potential with
:func:`~cgforge.workflows.cg.run_cg` against each reference.

Units: nm, kJ/mol, kJ/mol/nm, ps, K, amu.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.engines.protocol import ProgressCallback
from cgforge.errors import InputError, require_positive
from cgforge.fileio import atomic_path, sha256_file, write_columns_csv, write_json
from cgforge.geometry import nearest_distances
from cgforge.methods.force_data import (
    SUMMARY_FILE,
    TRAJECTORY_FILE,
    ForceDataset,
    load_force_data,
    time_block_split,
)
from cgforge.methods.force_matching import (
    DEFAULT_CUTOFF_NM,
    DEFAULT_KNOT_SPACING_NM,
    DEFAULT_MIN_PAIR_SAMPLES,
    DEFAULT_N_BLOCKS,
    DEFAULT_REGULARISATION,
    DEFAULT_SWITCH_WIDTH_NM,
    DEFAULT_TABLE_SPACING_NM,
    DEFAULT_VALIDATION_FRACTION,
    HISTOGRAM_BIN_NM,
    PENALTIES,
    BSplineBasis,
    ForceMatchingAccumulator,
    LinearFMResult,
    frame_residuals,
)
from cgforge.potentials.io import write_csv as write_potential_csv
from cgforge.potentials.table import TabulatedPotential
from cgforge.provenance import collect
from cgforge.rundir import RunDirectory
from cgforge.workflows.cg import load_reference, reference_protocol, run_cg

__all__ = [
    "DEFAULT_VALIDATION_EQUILIBRATION_PS",
    "DEFAULT_VALIDATION_PRODUCTION_PS",
    "DEFAULT_VALIDATION_TIMESTEP_FS",
    "run_linear_fm",
]

#: Default CG validation run (NPT equilibration, Nosé–Hoover production), ps; time step fs.
DEFAULT_VALIDATION_EQUILIBRATION_PS = 50.0
DEFAULT_VALIDATION_PRODUCTION_PS = 500.0
DEFAULT_VALIDATION_TIMESTEP_FS = 5.0


def _closest_pair_nm(datasets: Sequence[ForceDataset], frames: Sequence[np.ndarray]) -> float:
    """Smallest minimum-image bead distance over the given frames, nm."""
    best = math.inf
    for ds, idx in zip(datasets, frames, strict=True):
        for k in idx:
            best = min(best, float(nearest_distances(ds.positions_nm[k], ds.box_nm[k]).min()))
    return best


def _plot(path: Path, result: LinearFMResult, table: TabulatedPotential, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r, f = result.force_table()
    start = result.sampled_from_nm if result.sampled_from_nm is not None else result.r_min_nm
    fig, (ax_f, ax_u, ax_h) = plt.subplots(1, 3, figsize=(14, 4))
    ax_f.plot(r, f, lw=1.5, label="fit")
    ax_f.axvline(start, color="grey", lw=0.8, ls="--", label="sampled from")
    ax_f.axhline(0.0, color="grey", lw=0.5)
    low = float(np.min(f[r >= start]))
    ax_f.set_ylim(1.5 * min(low, -1.0), max(5.0 * abs(low), 5.0))
    ax_f.set_xlabel("r / nm")
    ax_f.set_ylabel("f(r) / kJ mol⁻¹ nm⁻¹")
    ax_f.legend()
    keep = table.r_nm >= start - 0.05
    ax_u.plot(table.r_nm[keep], table.u_kj_mol[keep], lw=1.5)
    ax_u.axhline(0.0, color="grey", lw=0.5)
    u_min = float(table.u_kj_mol[table.r_nm >= start].min())
    ax_u.set_ylim(1.5 * min(u_min, -0.5), max(3.0 * abs(u_min), 2.0))
    ax_u.set_xlabel("r / nm")
    ax_u.set_ylabel("U(r) simulated / kJ mol⁻¹")
    edges = result.basis.r_min_nm + HISTOGRAM_BIN_NM * np.arange(result.pair_histogram.size + 1)
    ax_h.stairs(result.pair_histogram, edges, baseline=None)
    ax_h.set_xlabel("r / nm")
    ax_h.set_ylabel(f"pairs per {HISTOGRAM_BIN_NM} nm")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _validate(
    out: Path,
    datasets: Sequence[ForceDataset],
    potential_csv: Path,
    *,
    equilibration_ps: float,
    production_ps: float,
    timestep_fs: float,
    platform: str,
    seed: int,
    progress: ProgressCallback | None,
) -> list[dict[str, Any]]:
    """CG runs of the fitted potential against each all-atom reference."""
    results = []
    for k, ds in enumerate(datasets):
        reference = load_reference(ds.state.source)
        protocol = reference_protocol(
            reference,
            equilibration_ps,
            production_ps,
            timestep_fs=timestep_fs,
            platform=platform,
            seed=seed,
        )
        run_dir = out / "validation" / f"{k:02d}"
        summary = run_cg(
            potential_csv,
            mass_amu=None,
            n_beads=None,
            protocol=protocol,
            out=run_dir,
            reference_dir=reference.path,
            progress=progress,
        )
        results.append(
            {
                "state": ds.state.to_dict(),
                "dir": str(run_dir.relative_to(out)),
                **{
                    key: summary.get(key)
                    for key in (
                        "rdf_deviation",
                        "rdf_r2",
                        "density_g_cm3",
                        "density_error",
                        "pressure_bar",
                        "diffusion_m2_s",
                        "acceleration_factor",
                        "acceleration_factor_err",
                    )
                },
            }
        )
    return results


def run_linear_fm(
    run_dirs: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    cutoff_nm: float | None = None,
    r_min_nm: float | None = None,
    n_knots: int | None = None,
    regularisation: float = DEFAULT_REGULARISATION,
    penalty: str = "smoothness",
    start: int = 0,
    stride: int = 1,
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION,
    n_blocks: int = DEFAULT_N_BLOCKS,
    seed: int = 0,
    min_pair_samples: int = DEFAULT_MIN_PAIR_SAMPLES,
    table_spacing_nm: float = DEFAULT_TABLE_SPACING_NM,
    switch_width_nm: float = DEFAULT_SWITCH_WIDTH_NM,
    validate: bool = False,
    validation_equilibration_ps: float = DEFAULT_VALIDATION_EQUILIBRATION_PS,
    validation_production_ps: float = DEFAULT_VALIDATION_PRODUCTION_PS,
    validation_timestep_fs: float = DEFAULT_VALIDATION_TIMESTEP_FS,
    platform: str = "auto",
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Linear force matching of a one-bead pair potential from all-atom runs with mapped forces.

    Parameters
    ----------
    run_dirs
        ``cgforge aa ... --forces`` run directories of one molecule (one or more state points;
        several state points give one compromise potential).
    out
        Run directory for the results (rerunning a finished run returns its summary).
    cutoff_nm
        Cutoff of the pair force (default: min(1.4 nm, half the smallest box edge)).
    r_min_nm
        Start of the spline range (default: the closest bead pair in the frames, rounded down
        to 0.01 nm).
    n_knots
        Number of uniform knots (default: a spacing of about 0.02 nm).
    regularisation, penalty
        λ and the regulariser of :meth:`~cgforge.methods.force_matching.ForceMatchingAccumulator.solve`.
    start, stride
        Frame selection in every run (drop ``start`` frames, then keep every ``stride``-th).
    validation_fraction, n_blocks, seed
        Time-block split of each run's frames (:func:`~cgforge.methods.force_data.time_block_split`): the fit uses the
        training blocks; statistics are reported on both. ``validation_fraction = 0`` (or
        fewer frames than blocks) fits on every frame.
    min_pair_samples
        Pairs per 0.002 nm bin from which the distance range counts as sampled; the simulated
        table's repulsive wall starts there.
    table_spacing_nm, switch_width_nm
        Grid spacing of the written tables, and width of the taper to zero at the cutoff of
        the simulated table (0: none).
    validate
        Run a CG MD of the fitted potential against each reference (:func:`run_cg`: NPT
        ``validation_equilibration_ps`` at the reference's barostat pressure, then Nosé–Hoover
        ``validation_production_ps``, time step ``validation_timestep_fs`` fs, on
        ``platform``) and report RDF deviation, density error and D_CG/D_AA. MS-CG matches
        forces, not the pressure, so the NPT density of the CG model may differ from the
        reference's (then g(r) is compared at the CG model's own density).

    Files written into ``out``: ``potential.csv`` (the table to simulate: tapered, walled),
    ``force_table.csv`` (``r_nm,F_kJ_mol_nm``: the fitted force on [r_min, r_cut]),
    ``residuals.csv`` (per frame), ``fit.json`` (basis, coefficients, statistics), ``fm.png``,
    ``validation/NN/`` (with ``validate``) and ``summary.json`` (last).
    """
    datasets = load_force_data(run_dirs, start=start, stride=stride, single_molecule=True)
    if penalty not in PENALTIES:
        raise InputError(f"unknown penalty {penalty!r}; choose one of {', '.join(PENALTIES)}")
    lam = float(regularisation)
    if not (math.isfinite(lam) and lam >= 0):
        raise InputError(
            f"regularisation must be a number >= 0, got {regularisation!r}",
            parameters="regularisation",
        )
    dr_table = require_positive(table_spacing_nm, "table spacing (nm)")
    if isinstance(min_pair_samples, bool) or int(min_pair_samples) < 1:
        raise InputError(f"min_pair_samples must be a positive integer, got {min_pair_samples!r}")
    half_box = min(0.5 * float(np.min(ds.box_nm)) for ds in datasets)
    if cutoff_nm is None:
        cutoff = math.floor(min(DEFAULT_CUTOFF_NM, half_box) / 0.01 + 1e-9) * 0.01
    else:
        cutoff = require_positive(cutoff_nm, "cutoff_nm", parameter="cutoff_nm")
        if cutoff > half_box * (1.0 + 1e-12):
            raise InputError(
                f"cutoff_nm {cutoff:g} exceeds half the smallest box edge of the runs "
                f"({half_box:.4g} nm); use a shorter cutoff",
                parameters="cutoff_nm",
            )

    fraction = float(validation_fraction)
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise InputError(f"validation fraction must be in [0, 1), got {validation_fraction!r}")
    if isinstance(n_blocks, bool) or int(n_blocks) != n_blocks or int(n_blocks) < 2:
        raise InputError(f"the number of time blocks must be an integer >= 2, got {n_blocks!r}")
    splits: list[tuple[np.ndarray, np.ndarray]] = []
    notes: list[str] = []
    for k, ds in enumerate(datasets):
        if fraction > 0 and ds.n_frames >= int(n_blocks):
            splits.append(time_block_split(ds.n_frames, int(n_blocks), fraction, seed + k))
        else:
            splits.append((np.arange(ds.n_frames), np.empty(0, dtype=np.int64)))
            if fraction > 0:
                notes.append(
                    f"{ds.state.source}: {ds.n_frames} frames are fewer than {n_blocks} blocks; "
                    "all frames were used for the fit, none for validation"
                )
    if r_min_nm is None:
        closest = _closest_pair_nm(datasets, [tr for tr, _ in splits])
        r_min = max(0.0, math.floor(closest / 0.01) * 0.01)
    else:
        r_min = float(r_min_nm)
    if not r_min < cutoff:
        raise InputError(f"r_min {r_min:g} nm must lie below the cutoff {cutoff:g} nm")
    knots = (
        max(math.ceil((cutoff - r_min) / DEFAULT_KNOT_SPACING_NM - 1e-9), 3) + 1
        if n_knots is None
        else n_knots
    )
    basis = BSplineBasis(r_min, cutoff, knots)

    sources = []
    for ds in datasets:
        path = Path(ds.state.source)
        sources.append(
            {
                "dir": str(path),
                "summary_sha256": sha256_file(path / SUMMARY_FILE),
                "trajectory_sha256": sha256_file(path / TRAJECTORY_FILE),
            }
        )
    config: dict[str, Any] = {
        "method": "linear force matching (MS-CG), cubic B-splines",
        "runs": sources,
        "basis": basis.to_dict(),
        "regularisation": lam,
        "penalty": penalty,
        "start": int(start),
        "stride": int(stride),
        "validation_fraction": fraction,
        "n_blocks": int(n_blocks),
        "seed": int(seed),
        "min_pair_samples": int(min_pair_samples),
        "table_spacing_nm": dr_table,
        "switch_width_nm": float(switch_width_nm),
        "validate": bool(validate),
    }
    if validate:
        config["validation"] = {
            "equilibration_ps": float(validation_equilibration_ps),
            "production_ps": float(validation_production_ps),
            "timestep_fs": float(validation_timestep_fs),
            "platform": platform,
        }
    rundir = RunDirectory(out, config, overwrite=overwrite)
    if rundir.prepare() == "complete":
        return rundir.read_summary()
    out_path = rundir.path

    acc = ForceMatchingAccumulator(basis)
    for ds, (train, _) in zip(datasets, splits, strict=True):
        acc.update_dataset(ds, train, progress=progress)
    result = acc.solve(lam, penalty=penalty, min_pair_samples=int(min_pair_samples))
    table = result.simulation_potential(dr_table, switch_width_nm)

    residual_rows: list[list[float]] = []
    train_res = val_res = train_var = val_var = 0.0
    train_n = val_n = 0
    for k, (ds, (_, val)) in enumerate(zip(datasets, splits, strict=True)):
        per_frame = frame_residuals(result, ds)
        is_val = np.zeros(ds.n_frames, dtype=bool)
        is_val[val] = True
        for i in range(ds.n_frames):
            residual_rows.append(
                [
                    k,
                    i,
                    float(ds.times_ps[i]),
                    float(is_val[i]),
                    float(per_frame.rms_residual_kj_mol_nm[i]),
                    float(per_frame.explained_variance[i]),
                ]
            )
        val_res += float(per_frame.residual_sum[is_val].sum())
        val_var += float(per_frame.variance_sum[is_val].sum())
        val_n += int(is_val.sum()) * ds.n_beads
        train_res += float(per_frame.residual_sum[~is_val].sum())
        train_var += float(per_frame.variance_sum[~is_val].sum())
        train_n += int((~is_val).sum()) * ds.n_beads

    def pooled(res: float, var: float, n: int) -> tuple[float | None, float | None]:
        if n == 0:
            return None, None
        return math.sqrt(res / (3 * n)), (1.0 - res / var if var > 0 else None)

    train_rms, train_explained = pooled(train_res, train_var, train_n)
    val_rms, val_explained = pooled(val_res, val_var, val_n)

    molecule = datasets[0].state.molecule
    provenance = f"cgforge linear force matching of {molecule}"
    write_potential_csv(out_path / "potential.csv", table, provenance=provenance)
    r_tab, f_tab = result.force_table(dr_table)
    write_columns_csv(out_path / "force_table.csv", ("r_nm", "F_kJ_mol_nm"), (r_tab, f_tab))
    columns = list(zip(*residual_rows, strict=True))
    write_columns_csv(
        out_path / "residuals.csv",
        (
            "dataset",
            "frame",
            "time_ps",
            "validation",
            "rms_residual_kJ_mol_nm",
            "explained_variance",
        ),
        columns,
    )
    fit = {
        **result.to_dict(),
        "train_rms_residual_kj_mol_nm": train_rms,
        "train_explained_variance": train_explained,
        "validation_rms_residual_kj_mol_nm": val_rms,
        "validation_explained_variance": val_explained,
    }
    write_json(out_path / "fit.json", fit)
    _plot(out_path / "fm.png", result, table, f"{molecule}: linear force matching (MS-CG)")

    validation = None
    if validate:
        validation = _validate(
            out_path,
            datasets,
            out_path / "potential.csv",
            equilibration_ps=float(validation_equilibration_ps),
            production_ps=float(validation_production_ps),
            timestep_fs=float(validation_timestep_fs),
            platform=platform,
            seed=int(seed),
            progress=progress,
        )
    temperatures = sorted({ds.state.temperature_K for ds in datasets})
    if len(temperatures) > 1:
        notes.append(
            f"the runs span {len(temperatures)} temperatures; one pair force was fitted to all "
            "(a compromise between state points)"
        )
    summary: dict[str, Any] = {
        "molecule": molecule,
        "source": "cgforge fm linear",
        "method": "linear force matching (MS-CG)",
        "state_points": [ds.state.to_dict() for ds in datasets],
        "n_datasets": len(datasets),
        "n_frames_train": int(sum(tr.size for tr, _ in splits)),
        "n_frames_validation": int(sum(v.size for _, v in splits)),
        "bead_mass_amu": float(datasets[0].masses_amu[0]),
        "n_molecules": datasets[0].n_beads,
        "cutoff_nm": basis.r_max_nm,
        "r_min_nm": basis.r_min_nm,
        "n_knots": basis.n_knots,
        "knot_spacing_nm": basis.spacing_nm,
        "regularisation": lam,
        "penalty": penalty,
        "n_pairs": result.n_pairs,
        "n_pairs_below_r_min": result.n_pairs_below_r_min,
        "sampled_from_nm": result.sampled_from_nm,
        "wall_below_nm": table.wall_below_nm,
        "switch_width_nm": float(switch_width_nm),
        "force_rms_kj_mol_nm": result.force_rms_kj_mol_nm,
        "train_rms_residual_kj_mol_nm": train_rms,
        "train_explained_variance": train_explained,
        "validation_rms_residual_kj_mol_nm": val_rms,
        "validation_explained_variance": val_explained,
        "validation_runs": validation,
        "notes": notes,
        "files": {
            "potential": "potential.csv",
            "force_table": "force_table.csv",
            "residuals": "residuals.csv",
            "fit": "fit.json",
            "plot": "fm.png",
        },
        "provenance": collect(config, seed=int(seed)),
    }
    rundir.write_summary(summary)
    rundir.clean_work()
    return summary
