"""``cgforge tradeoff``: the structure–mobility trade-off curve of one liquid, with CG MD in the loop.

:func:`run_tradeoff` runs :func:`cgforge.methods.tradeoff.trace_tradeoff` from a
structure-preserving potential (an IBI result) against an all-atom reference: every potential it
tries is a short CG run at the reference's density, temperature and bead mass (NVT, Nosé–Hoover,
on the CG engine: LAMMPS on CPUs), with the same start configuration and seed for all, so that
their differences are not blurred by independent noise. Every evaluation is kept in
``OUT/evaluations/NNN/`` (``measurement.json``, ``rdf.csv``, ``potential.csv``) as soon as it is
measured: a killed search resumes from them (the search is deterministic given its measurements).

Writes into ``OUT``: ``tradeoff.csv`` (one row per target ratio: the kept evaluation's
D_CG/D_AA ± error, RDF deviation and R², pressure, whether the target was reached),
``evaluations.csv`` (every run), ``curve_NN_potential.csv`` (the potential of each curve point,
``curve_00`` the start), ``tradeoff.png`` and ``summary.json`` (written last, with the full
configuration and provenance).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.engines.cg_engine import CGSystem, resolve_engine_name, run_cg_md
from cgforge.engines.cg_system import timestep_limit_fs
from cgforge.engines.protocol import MDProtocol, ProgressCallback
from cgforge.errors import InputError
from cgforge.fileio import write_json, write_text
from cgforge.methods.measure import Measurement, measure_production
from cgforge.methods.tradeoff import TradeoffConfig, TradeoffResult, trace_tradeoff
from cgforge.observables import RDF
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.io import read_potential, write_csv
from cgforge.potentials.table import TabulatedPotential
from cgforge.provenance import collect
from cgforge.rundir import RunDirectory
from cgforge.workflows.cg import AAReference, beads_for_reference, box_from_density, load_reference

#: Default CG MD of one evaluation: discarded start and measured production (ps), time step
#: (fs; shortened to the potential's own limit), sampling interval (ps).
EQUILIBRATION_PS = 20.0
PRODUCTION_PS = 100.0
TIMESTEP_FS = 5.0
SAMPLE_INTERVAL_PS = 0.5

CURVE_COLUMNS = (
    "target_ratio",
    "reached",
    "ratio",
    "ratio_err",
    "rdf_deviation",
    "rdf_r2",
    "diffusion_m2_s",
    "diffusion_err_m2_s",
    "pressure_bar",
    "pressure_err_bar",
    "temperature_K",
    "evaluation",
)
EVALUATION_COLUMNS = (
    "evaluation",
    "purpose",
    "ratio",
    "ratio_err",
    "rdf_deviation",
    "rdf_r2",
    "diffusion_m2_s",
    "pressure_bar",
    "temperature_K",
    "failure",
)


def _time(value: float, parameter: str, *, allow_zero: bool = False) -> float:
    number = float(value)
    if not (math.isfinite(number) and (number > 0 or (allow_zero and number == 0))):
        raise InputError(
            f"{parameter} must be {'non-negative' if allow_zero else 'positive'}, got {value!r}",
            parameters=parameter,
        )
    return number


class _Evaluator:
    """CG MD of one potential at the reference's state point; measurements kept on disk."""

    def __init__(
        self,
        root: Path,
        work: Path,
        reference: AAReference,
        n_beads: int,
        box_nm: np.ndarray,
        settings: dict[str, Any],
        progress: ProgressCallback | None,
    ) -> None:
        self.root = root
        self.work = work
        self.reference = reference
        self.n_beads = n_beads
        self.box_nm = box_nm
        self.s = settings
        self.progress = progress
        width = float(reference.rdf.bin_width_nm)
        top = min(float(reference.rdf.r_max_nm), 0.5 * float(np.min(box_nm)))
        self.rdf = RDF(r_max_nm=math.floor(top / width + 1e-9) * width, bin_width_nm=width)

    def _protocol(self, potential: TabulatedPotential) -> MDProtocol:
        s = self.s
        limit = timestep_limit_fs(
            potential, self.reference.bead_mass_amu, self.reference.temperature_K
        )
        dt_fs = min(s["timestep_fs"], math.floor(limit * 10.0) / 10.0)
        dt_ps = dt_fs * 1e-3

        def on_step(t_ps: float) -> float:
            return max(dt_ps, round(t_ps / dt_ps) * dt_ps)

        return MDProtocol(
            temperature_K=self.reference.temperature_K,
            timestep_fs=dt_fs,
            minimize=True,
            equilibration_ps=0.0,
            production_ps=on_step(s["equilibration_ps"] + s["production_ps"]),
            sample_interval_ps=on_step(s["sample_interval_ps"]),
            thermo_interval_ps=on_step(0.1),
            production_ensemble="nvt",
            save_particles=False,
            checkpoint_interval_ps=50.0,
            seed=s["seed"],
            engine=s["engine"],
        )

    def __call__(self, potential: TabulatedPotential, index: int, purpose: str) -> Measurement:
        folder = self.root / "evaluations" / f"{index:03d}"
        digest = _potential_digest(potential)
        stored = folder / "measurement.json"
        if stored.is_file():
            data = json.loads(stored.read_text())
            if data.get("potential_sha256") == digest:
                rdf = RDFResult(
                    np.array(data["rdf"]["r_nm"]),
                    np.array(data["rdf"]["g"]),
                    np.array(data["rdf"]["g_err"]),
                    int(data["rdf"]["n_frames"]),
                    float(data["rdf"]["r_max_nm"]),
                    float(data["rdf"]["bin_width_nm"]),
                )
                return Measurement(
                    rdf=rdf,
                    diffusion_m2_s=float(data["diffusion_m2_s"]),
                    diffusion_err_m2_s=float(data["diffusion_err_m2_s"]),
                    pressure_bar=float(data["pressure_bar"]),
                    pressure_err_bar=float(data["pressure_err_bar"]),
                    temperature_K=float(data["temperature_K"]),
                )
        protocol = self._protocol(potential)
        system = CGSystem(
            potential,
            self.n_beads,
            self.box_nm,
            self.reference.bead_mass_amu,
            label=f"trade-off evaluation {index} ({purpose})",
        )
        result = run_cg_md(system, protocol, self.work / f"md_{index:03d}", progress=self.progress)
        measured = measure_production(
            result,
            self.s["equilibration_ps"],
            self.rdf,
            what=f"trade-off evaluation {index} ({purpose})",
        )
        rdf = measured.rdf
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(folder / "potential.csv", potential, provenance=f"cgforge tradeoff, {purpose}")
        rdf.to_csv(folder / "rdf.csv")
        write_json(
            stored,
            {
                "evaluation": index,
                "purpose": purpose,
                "potential_sha256": digest,
                "timestep_fs": protocol.timestep_fs,
                "diffusion_m2_s": measured.diffusion_m2_s,
                "diffusion_err_m2_s": measured.diffusion_err_m2_s,
                "pressure_bar": measured.pressure_bar,
                "pressure_err_bar": measured.pressure_err_bar,
                "temperature_K": measured.temperature_K,
                "wall_s": result.wall_s,
                "rdf": {  # exact, so that a resumed search takes the same steps
                    "r_nm": rdf.r_nm.tolist(),
                    "g": rdf.g.tolist(),
                    "g_err": rdf.g_err.tolist(),
                    "n_frames": rdf.n_frames,
                    "r_max_nm": rdf.r_max_nm,
                    "bin_width_nm": rdf.bin_width_nm,
                },
            },
        )
        return measured


def _potential_digest(potential: TabulatedPotential) -> str:
    digest = hashlib.sha256()
    for array in (potential.r_nm, potential.u_kj_mol, potential.f_kj_mol_nm):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    digest.update(repr(potential.cutoff_nm).encode())
    return digest.hexdigest()


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], header: str) -> str:
    """The CSV text of ``tradeoff.csv`` and ``evaluations.csv``: the comment line(s)
    ``header`` (ending in a newline), the ``columns`` row, then one row per mapping of
    ``rows`` with floats to 6 significant digits."""
    buffer = io.StringIO()
    buffer.write(header)
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in columns])
    return buffer.getvalue()


def run_tradeoff(
    reference: str | Path,
    potential: str | Path | TabulatedPotential,
    out: str | Path,
    config: TradeoffConfig | None = None,
    *,
    n_beads: int | None = None,
    equilibration_ps: float = EQUILIBRATION_PS,
    production_ps: float = PRODUCTION_PS,
    timestep_fs: float = TIMESTEP_FS,
    sample_interval_ps: float = SAMPLE_INTERVAL_PS,
    engine: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Trace the trade-off curve of ``reference`` from ``potential`` into ``out``; return the
    summary (a finished run returns its stored summary; an unfinished one resumes).

    ``reference``: a reference directory or a shipped reference's name; ``potential``: the
    structure-preserving start (a table file, e.g. IBI's ``potential.csv``, or a table).
    Each evaluation runs ``equilibration_ps`` (discarded) + ``production_ps`` of NVT MD at the
    reference's density with ``n_beads`` beads (default: its molecule count, or more where the
    cutoff needs a larger box).
    """
    cfg = config or TradeoffConfig()
    ref = load_reference(reference)
    if not (math.isfinite(ref.diffusion_m2_s) and ref.diffusion_m2_s > 0):
        raise InputError(
            f"the reference {ref.path} has D = {ref.diffusion_m2_s!r} m2/s; the trade-off needs "
            "its all-atom diffusion coefficient"
        )
    if isinstance(potential, TabulatedPotential):
        start, source = potential, "in memory"
    else:
        path = Path(potential)
        if not path.is_file():
            raise InputError(
                f"start potential {path} not found; give a table file, e.g. the potential.csv "
                "of 'cgforge ibi' or of a compare run's ibi/ directory"
            )
        start, source = read_potential(path), str(path.resolve())
    settings = {
        "equilibration_ps": _time(equilibration_ps, "equilibration_ps", allow_zero=True),
        "production_ps": _time(production_ps, "production_ps"),
        "timestep_fs": _time(timestep_fs, "timestep_fs"),
        "sample_interval_ps": _time(sample_interval_ps, "sample_interval_ps"),
        "seed": int(seed),
        "engine": resolve_engine_name(engine),
    }
    if settings["production_ps"] < 20 * settings["sample_interval_ps"]:
        raise InputError(
            "the production gives fewer than 20 samples for the MSD; lengthen production_ps or "
            "shorten sample_interval_ps",
            parameters=("production_ps", "sample_interval_ps"),
        )
    beads = beads_for_reference(ref, start.cutoff_nm) if n_beads is None else int(n_beads)
    if isinstance(n_beads, bool) or beads < 2:
        raise InputError(f"n_beads must be an integer >= 2, got {n_beads!r}", parameters="n_beads")
    box = box_from_density(beads, ref.bead_mass_amu, ref.density_g_cm3)
    CGSystem(start, beads, box, ref.bead_mass_amu, label=source)  # checks the cutoff fits
    run_config = {
        "method": "tradeoff",
        "reference_dir": str(ref.path),
        "reference_sha256": ref.fingerprint(),
        "start_potential": source,
        "start_potential_sha256": _potential_digest(start),
        "n_beads": beads,
        "box_nm": box.tolist(),
        "tradeoff": asdict(cfg),
        **settings,
    }
    rundir = RunDirectory(out, run_config, overwrite=overwrite)
    if rundir.prepare() == "complete":
        return rundir.read_summary()
    root = rundir.path
    evaluator = _Evaluator(root, rundir.work, ref, beads, box, settings, progress)

    def tick(what: str, done: int, total: int) -> None:
        if progress is not None:
            progress("tradeoff", done, total, 0.0)

    result = trace_tradeoff(
        start, ref.rdf, ref.diffusion_m2_s, ref.temperature_K, evaluator, cfg, progress=tick
    )
    return _write(rundir, result, ref, run_config)


def _write(
    rundir: RunDirectory, result: TradeoffResult, ref: AAReference, run_config: dict[str, Any]
) -> dict[str, Any]:
    root = rundir.path
    curve = [p.row() for p in result.curve]
    evaluations = [e.row() for e in result.evaluations]
    units = (
        f"# cgforge tradeoff of {ref.molecule} against {ref.path}; ratio = D_CG/D_AA "
        f"(D_AA {ref.diffusion_m2_s:.4g} m2/s), rdf_deviation as cgforge's integrated "
        "|g - g_AA| / g_AA, pressure bar, temperature K\n"
    )
    write_text(root / "tradeoff.csv", csv_text(curve, CURVE_COLUMNS, units))
    write_text(root / "evaluations.csv", csv_text(evaluations, EVALUATION_COLUMNS, units))
    potentials = [result.basis.potential(p.evaluation.coefficients) for p in result.curve]
    for k, (point, potential) in enumerate(zip(result.curve, potentials, strict=True)):
        write_csv(
            root / f"curve_{k:02d}_potential.csv",
            potential,
            provenance=(
                f"cgforge tradeoff point {k}: D_CG/D_AA {point.evaluation.ratio:.3g} "
                f"(target {point.target_ratio:.3g}), RDF deviation "
                f"{point.evaluation.rdf_deviation:.3%}"
            ),
        )
    _plot(root / "tradeoff.png", result, potentials, ref)
    unreached = [p for p in result.curve if not p.reached]
    notes = [
        f"target D_CG/D_AA = {p.target_ratio:.3g} not reached; the closest point found has "
        f"{p.evaluation.ratio:.3g} (RDF deviation {p.evaluation.rdf_deviation:.2%})"
        for p in unreached
    ]
    failed = [e for e in result.evaluations if e.failure]
    if failed:
        notes.append(f"{len(failed)} of {len(result.evaluations)} CG runs failed (evaluations.csv)")
    summary = {
        "molecule": ref.molecule,
        "method": "structure-mobility trade-off (cgforge.methods.tradeoff)",
        "reference_dir": str(ref.path),
        "reference_diffusion_m2_s": ref.diffusion_m2_s,
        "curve": curve,
        "evaluations": len(result.evaluations),
        "basis": result.basis.to_dict(),
        "notes": notes,
        "files": {
            "curve": "tradeoff.csv",
            "evaluations": "evaluations.csv",
            "potentials": "curve_NN_potential.csv",
            "plot": "tradeoff.png",
        },
        "provenance": collect(run_config, seed=int(run_config["seed"])),
    }
    rundir.write_summary(summary)
    rundir.clean_work()
    return summary


def _plot(
    path: Path,
    result: TradeoffResult,
    potentials: list[TabulatedPotential],
    ref: AAReference,
) -> None:
    """The curve, the RDFs and the potentials (``potentials``: one per curve point)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_g, ax_u) = plt.subplots(1, 3, figsize=(14, 4.2))
    ok = [e for e in result.evaluations if math.isfinite(e.ratio)]
    ax.scatter(
        [e.ratio for e in ok], [100 * e.rdf_deviation for e in ok], s=12, c="0.7", label="all runs"
    )
    xs = [p.evaluation.ratio for p in result.curve]
    ys = [100 * p.evaluation.rdf_deviation for p in result.curve]
    ax.plot(xs, ys, "-", color="C0")
    for p, x, y in zip(result.curve, xs, ys, strict=True):
        ax.plot(x, y, "o", color="C0", mfc="C0" if p.reached else "white")
    ax.plot(xs[0], ys[0], "s", color="C3", label="start (IBI)")
    ax.axvline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("D_CG / D_AA")
    ax.set_ylabel("RDF deviation (%)")
    ax.set_title(f"{ref.molecule}: structure vs mobility")
    ax.legend(fontsize=8)
    ax_g.plot(ref.rdf.r_nm, ref.rdf.g, "k-", lw=2, label="AA")
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(result.curve)))
    for p, u, colour in zip(result.curve, potentials, colours, strict=True):
        m = p.evaluation.measurement
        if m is None:
            continue
        ax_g.plot(m.rdf.r_nm, m.rdf.g, color=colour, lw=1, label=f"{p.evaluation.ratio:.2f}")
        r = u.r_nm[u.r_nm <= u.cutoff_nm]
        ax_u.plot(r, u.energy(r), color=colour, lw=1)
    ax_g.set_xlabel("r (nm)")
    ax_g.set_ylabel("g(r)")
    ax_g.legend(title="D_CG/D_AA", fontsize=7)
    ax_u.set_xlabel("r (nm)")
    ax_u.set_ylabel("U (kJ/mol)")
    ax_u.set_ylim(min(float(np.min(u.u_kj_mol)) for u in potentials) * 1.3 - 0.5, 5.0)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
