"""``cgforge compare``: the mobility-preserving CG methods side by side on one all-atom reference.

For one all-atom reference directory (:func:`~cgforge.workflows.cg.load_reference`) the methods

``ibi``
    iterative Boltzmann inversion and a Newtonian (Nosé–Hoover) CG production
    (:func:`~cgforge.workflows.cg.run_ibi_from_reference`): the structure-preserving model,
    accelerated by a factor α = D_CG/D_AA;
``ml``
    the CG potential predicted from (bead mass, D_AA, g_AA) by a trained mobility model
    (:func:`cgforge.workflows.predict.predict_potential`), run like the IBI production;
``friction``
    the IBI potential under Langevin dynamics with the friction γ fitted so that D_CG = D_AA
    (:func:`~cgforge.workflows.friction.fit_friction`); structure as IBI, dynamics slowed;
``rescale``
    the IBI run with its time axis stretched by α (:mod:`cgforge.methods.rescale`): α measured
    on the IBI run (D matches by construction) or predicted (``alpha_model``)

are run, each in its own resumable subdirectory of ``out`` (``ibi/``, ``ml/``, ``friction/``,
``rescale/``; friction and rescale need the IBI run and start it when ``ibi`` is not among the
methods). All CG runs use the same beads, bead mass, temperature, barostat pressure, time step
and seed, and the comparison metrics of :func:`~cgforge.workflows.cg.run_cg` (RDF R² and
deviation, density error, acceleration factor with its error; see
:mod:`cgforge.workflows.cg`).

Written into ``out``:

* ``comparison.csv``: one row per method with ``method,status,rdf_r2,rdf_deviation,
  density_error,acceleration_factor,acceleration_factor_err,d_cg_m2_s,d_cg_err_m2_s,d_aa_m2_s,
  d_aa_err_m2_s,pressure_bar,pressure_err_bar,friction_per_ps,alpha,run_dir,notes``
  (empty cells for what a method does not have; a failed method has ``status`` ``failed`` and
  its reason in ``notes`` instead of stopping the comparison);
* ``comparison.json``: the same rows with the settings and the reference;
* ``report.html``: one page with the table and the figure, each method explained;
* ``comparison.png``: RDFs of all methods over the all-atom one, MSDs (rescale on the
  all-atom-equivalent time axis) and D_CG/D_AA with error bars.

Presets (:data:`COMPARE_PRESETS`): ``tiny`` (a check that everything runs, minutes on a
laptop CPU), ``quick`` (300 beads, up to 10 IBI iterations of 5 + 30 ps: the settings of
the README's ``cgforge compare benzene``, about a minute on two cores; ``cgforge run``'s
quick IBI, 600 beads, 50 ps, up to 30 iterations, is tuned for a 100-molecule target of its
own) and ``standard`` (the CG settings of ``cgforge run``'s standard preset of
:data:`cgforge.presets.PRESETS`).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.engines.protocol import MDProtocol, ProgressCallback, check_cg_threads
from cgforge.errors import CGForgeError, InputError
from cgforge.fileio import atomic_path, check_creatable_dir, write_json, write_text
from cgforge.methods.friction import FrictionConfig
from cgforge.methods.ibi import IBIConfig
from cgforge.methods.rescale import TimeRescaling, acceleration_factor
from cgforge.observables.msd import MSDResult
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.io import write_csv
from cgforge.presets import PRESETS, Preset
from cgforge.provenance import collect
from cgforge.report.html import write_comparison_report
from cgforge.runsummary import read_summary
from cgforge.workflows.cg import (
    AAReference,
    ibi_production_protocol,
    load_reference,
    run_cg,
    run_ibi_from_reference,
)
from cgforge.workflows.friction import fit_friction

#: Methods of :func:`run_compare`, in the order they run.
METHODS = ("ibi", "ml", "friction", "rescale")
#: Columns of ``comparison.csv``.
COLUMNS = (
    "method",
    "status",
    "rdf_r2",
    "rdf_deviation",
    "density_error",
    "acceleration_factor",
    "acceleration_factor_err",
    "d_cg_m2_s",
    "d_cg_err_m2_s",
    "d_aa_m2_s",
    "d_aa_err_m2_s",
    "pressure_bar",
    "pressure_err_bar",
    "friction_per_ps",
    "alpha",
    "run_dir",
    "notes",
)

#: A predicted acceleration factor: a number, (α, σ_α), or a function of the reference.
AlphaModel = float | tuple[float, float] | Callable[[AAReference], tuple[float, float]]


@dataclass(frozen=True)
class CompareSettings:
    """CG settings shared by all methods.

    ``n_beads`` (None: the reference's molecule count), ``ibi`` (IBI iterations; its time step,
    platform and seed serve every CG run), ``cg_equilibration_ps`` / ``cg_production_ps`` of
    every CG production (NPT, then NVT, Langevin for friction), ``friction`` (the fit's
    settings).
    """

    name: str
    n_beads: int | None
    ibi: IBIConfig
    cg_equilibration_ps: float
    cg_production_ps: float
    friction: FrictionConfig = field(default_factory=FrictionConfig)

    @classmethod
    def from_preset(cls, preset: Preset, friction: FrictionConfig | None = None) -> CompareSettings:
        """The CG part of a ``cgforge run`` preset."""
        return cls(
            name=preset.name,
            n_beads=preset.cg_beads,
            ibi=preset.ibi,
            cg_equilibration_ps=preset.cg_equilibration_ps,
            cg_production_ps=preset.cg_production_ps,
            friction=FrictionConfig() if friction is None else friction,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ibi"] = self.ibi.to_dict()
        data["friction"] = self.friction.to_dict()
        return data


#: ``tiny``: 216 beads, 3 short IBI iterations, 5 + 20 ps CG runs, at most 4 friction runs.
TINY = CompareSettings(
    name="tiny",
    n_beads=216,
    ibi=IBIConfig(
        max_iterations=3, equilibration_ps=2.0, production_ps=10.0, sample_interval_ps=0.2
    ),
    cg_equilibration_ps=5.0,
    cg_production_ps=20.0,
    friction=FrictionConfig(max_evaluations=4, tolerance=0.1),
)
#: ``quick``: 300 beads, up to 10 IBI iterations of 5 + 30 ps, 20 + 100 ps CG runs.
QUICK = CompareSettings(
    name="quick",
    n_beads=300,
    ibi=IBIConfig(max_iterations=10, equilibration_ps=5.0, production_ps=30.0),
    cg_equilibration_ps=20.0,
    cg_production_ps=100.0,
)
#: The presets by name: this module's ``tiny`` and ``quick``, the CG part of the ``standard``
#: preset (:data:`cgforge.presets.PRESETS`).
COMPARE_PRESETS: dict[str, CompareSettings] = {
    "tiny": TINY,
    "quick": QUICK,
    "standard": CompareSettings.from_preset(PRESETS["standard"]),
}


def get_settings(preset: str | CompareSettings | Preset) -> CompareSettings:
    """Settings by preset name, from a ``cgforge run`` preset, or as given."""
    if isinstance(preset, CompareSettings):
        return preset
    if isinstance(preset, Preset):
        return CompareSettings.from_preset(preset)
    try:
        return COMPARE_PRESETS[preset]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown preset '{preset}'; choose one of {', '.join(COMPARE_PRESETS)}"
        ) from None


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Methods from ``"ibi,ml"`` or a sequence; unknown or repeated names raise InputError."""
    items = methods.split(",") if isinstance(methods, str) else list(methods)
    names = [str(m).strip().lower() for m in items if str(m).strip()]
    if not names:
        raise InputError(f"give at least one method of {', '.join(METHODS)}")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise InputError(
            f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}"
        )
    if len(set(names)) != len(names):
        raise InputError(f"a method is named twice in {', '.join(names)}")
    return tuple(m for m in METHODS if m in names)


# ====================================================================== rows
def _row(method: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(method=method, status="ok", notes="")
    row.update(values)
    return row


def _from_summary(
    method: str, summary: dict[str, Any], reference: AAReference, run_dir: str, notes: list[str]
) -> dict[str, Any]:
    """A row from a run_cg / run_ibi_from_reference summary (its comparison fields)."""
    notes = [*notes, *[str(n) for n in summary.get("notes") or []]]
    return _row(
        method,
        rdf_r2=summary.get("rdf_r2"),
        rdf_deviation=summary.get("rdf_deviation"),
        density_error=summary.get("density_error"),
        acceleration_factor=summary.get("acceleration_factor"),
        acceleration_factor_err=summary.get("acceleration_factor_err"),
        d_cg_m2_s=summary.get("diffusion_m2_s"),
        d_cg_err_m2_s=summary.get("diffusion_err_m2_s"),
        d_aa_m2_s=reference.diffusion_m2_s,
        d_aa_err_m2_s=reference.diffusion_err_m2_s,
        pressure_bar=summary.get("pressure_bar"),
        pressure_err_bar=summary.get("pressure_err_bar"),
        run_dir=run_dir,
        notes="; ".join(notes),
    )


def _failed(method: str, reason: str) -> dict[str, Any]:
    return _row(method, status="failed", notes=reason)


# ====================================================================== methods
@dataclass
class _Context:
    reference: AAReference
    out: Path
    settings: CompareSettings
    ibi: IBIConfig
    n_beads: int
    progress: ProgressCallback | None
    ibi_summary: dict[str, Any] | None = None
    ibi_error: str | None = None

    def protocol(self) -> MDProtocol:
        """The CG production protocol of every method (that of the IBI production)."""
        return ibi_production_protocol(
            self.reference,
            self.ibi,
            equilibration_ps=self.settings.cg_equilibration_ps,
            production_ps=self.settings.cg_production_ps,
        )


def _run_ibi(ctx: _Context) -> dict[str, Any]:
    if ctx.ibi_summary is None and ctx.ibi_error is None:
        try:
            ctx.ibi_summary = run_ibi_from_reference(
                ctx.reference.path,
                ctx.out / "ibi",
                ctx.ibi,
                n_beads=ctx.n_beads,
                equilibration_ps=ctx.settings.cg_equilibration_ps,
                production_ps=ctx.settings.cg_production_ps,
                progress=ctx.progress,
            )
        except CGForgeError as exc:
            ctx.ibi_error = str(exc)
    if ctx.ibi_summary is None:
        raise _NeedsIBI(ctx.ibi_error or "no IBI run")
    return ctx.ibi_summary


class _NeedsIBI(CGForgeError):
    """The IBI run that a method builds on failed."""


def _method_ibi(ctx: _Context) -> dict[str, Any]:
    summary = _run_ibi(ctx)
    notes = [f"IBI {summary.get('iterations')} iterations, converged: {summary.get('converged')}"]
    return _from_summary("ibi", summary, ctx.reference, "ibi", notes)


def _method_ml(ctx: _Context, model_dir: Path) -> dict[str, Any]:
    try:
        from cgforge.workflows.predict import predict_potential
    except ImportError as exc:
        raise InputError(
            f"the ML potential predictor is not available in this installation ({exc})"
        ) from exc
    ref = ctx.reference
    prediction = predict_potential(
        model_dir,
        mass_amu=ref.bead_mass_amu,
        diffusion_m2_s=ref.diffusion_m2_s,
        rdf=ref.rdf,
        temperature_K=ref.temperature_K,
    )
    root = ctx.out / "ml"
    root.mkdir(parents=True, exist_ok=True)
    table = root / "predicted_potential.csv"
    write_csv(table, prediction.potential, provenance=f"cgforge ML prediction, model {model_dir}")
    notes = []
    if prediction.out_of_distribution:
        reasons = "; ".join(getattr(prediction, "ood_reasons", ()) or ())
        notes.append(
            "input outside the model's training data" + (f": {reasons}" if reasons else "")
        )
    record = prediction.to_dict() if hasattr(prediction, "to_dict") else {}
    record.update(
        model_dir=str(Path(model_dir).resolve()),
        potential=table.name,
        out_of_distribution=bool(prediction.out_of_distribution),
    )
    write_json(root / "prediction.json", record)
    summary = run_cg(
        table,
        mass_amu=ref.bead_mass_amu,
        n_beads=ctx.n_beads,
        protocol=ctx.protocol(),
        out=root / "cg",
        reference_dir=ref.path,
        progress=ctx.progress,
    )
    return _from_summary("ml", summary, ref, "ml/cg", notes)


def _method_friction(ctx: _Context) -> dict[str, Any]:
    ibi = _run_ibi(ctx)
    fit = fit_friction(
        ctx.out / "ibi" / "potential.csv",
        ctx.out / "friction",
        protocol=ctx.protocol(),
        reference_dir=ctx.reference.path,
        newtonian_diffusion_m2_s=ibi["diffusion_m2_s"],
        newtonian_diffusion_err_m2_s=ibi.get("diffusion_err_m2_s"),
        mass_amu=ctx.reference.bead_mass_amu,
        n_beads=ctx.n_beads,
        config=ctx.settings.friction,
        progress=ctx.progress,
    )
    notes = [f"gamma = {fit.gamma_per_ps:.4g} ± {fit.gamma_err_per_ps:.2g} /ps", fit.reason]
    if fit.final_run is None:
        # no Langevin run: the answer is the Newtonian IBI model (gamma = 0)
        row = _from_summary("friction", ibi, ctx.reference, "ibi", notes)
    else:
        final = read_summary(fit.final_run, what="CG run")
        run_dir = str(fit.final_run.relative_to(ctx.out))
        row = _from_summary("friction", final, ctx.reference, run_dir, notes)
    row["friction_per_ps"] = fit.gamma_per_ps
    if not fit.converged:
        row["status"] = "not converged"
    return row


def _check_model(model_dir: Path) -> None:
    """Load the mobility model of ``ml`` once, so that a model without weights, of other grids
    or without torch installed is refused before any method runs."""
    try:
        from cgforge.workflows.predict import load_mobility_model
    except ImportError as exc:
        raise InputError(
            f"ml in methods needs the ML extra, which is not installed ({exc}); install it with "
            "pip install 'cgforge[ml]' or leave ml out of methods",
            parameters="methods",
        ) from None
    try:
        load_mobility_model(model_dir)
    except ImportError as exc:
        raise InputError(
            f"ml in methods needs torch, which is not installed ({exc}); install it with "
            "pip install 'cgforge[ml]' or leave ml out of methods",
            parameters="methods",
        ) from None


def _predicted_alpha(alpha_model: AlphaModel, reference: AAReference) -> tuple[float, float]:
    value = alpha_model(reference) if callable(alpha_model) else alpha_model
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise InputError(f"a predicted alpha is a number or (alpha, error), got {value!r}")
        return float(value[0]), float(value[1])
    return float(value), 0.0


def _method_rescale(ctx: _Context, alpha_model: AlphaModel | None) -> dict[str, Any]:
    ibi = _run_ibi(ctx)
    ref = ctx.reference
    d_cg, d_cg_err = float(ibi["diffusion_m2_s"]), float(ibi.get("diffusion_err_m2_s") or 0.0)
    if alpha_model is None:
        scaling = TimeRescaling.measured(d_cg, d_cg_err, ref.diffusion_m2_s, ref.diffusion_err_m2_s)
        same = True
        notes = ["alpha measured on the IBI run: D_CG/D_AA = 1 by construction (a calibration)"]
    else:
        alpha, alpha_err = _predicted_alpha(alpha_model, ref)
        scaling = TimeRescaling(alpha, alpha_err, "predicted")
        same = False
        notes = ["alpha predicted"]
    d, d_err = scaling.diffusion(d_cg, d_cg_err, same_measurement=same)
    if same:
        factor, factor_err = 1.0, 0.0
    else:
        factor, factor_err = acceleration_factor(
            d, d_err, ref.diffusion_m2_s, ref.diffusion_err_m2_s
        )
    root = ctx.out / "rescale"
    root.mkdir(parents=True, exist_ok=True)
    ibi_dir = ctx.out / "ibi"
    shutil.copyfile(ibi_dir / "rdf.csv", root / "rdf.csv")  # static: unchanged
    scaling.msd(MSDResult.from_csv(ibi_dir / "msd.csv")).to_csv(root / "msd.csv")
    row = _from_summary("rescale", ibi, ref, "rescale", notes)
    row.update(
        acceleration_factor=factor,
        acceleration_factor_err=factor_err,
        d_cg_m2_s=d,
        d_cg_err_m2_s=d_err,
        alpha=scaling.alpha,
    )
    write_json(
        root / "summary.json",
        {
            "method": "time rescaling of the IBI run",
            "alpha": scaling.alpha,
            "alpha_err": scaling.alpha_err,
            "alpha_source": scaling.source,
            "diffusion_m2_s": d,
            "diffusion_err_m2_s": d_err,
            "acceleration_factor": factor,
            "acceleration_factor_err": factor_err,
            "rdf_r2": row["rdf_r2"],
            "rdf_deviation": row["rdf_deviation"],
            "density_error": row["density_error"],
            "base_run": "../ibi",
            "files": {"rdf": "rdf.csv", "msd": "msd.csv (t_ps on the all-atom clock)"},
        },
    )
    return row


# ====================================================================== the workflow
def run_compare(
    reference_dir: str | Path,
    out: str | Path,
    *,
    methods: str | Sequence[str] = METHODS,
    preset: str | CompareSettings | Preset = "quick",
    model_dir: str | Path | None = None,
    alpha_model: AlphaModel | None = None,
    seed: int = 0,
    platform: str = "auto",
    progress: ProgressCallback | None = None,
    engine: str = "auto",
    cg_threads: int = 1,
) -> dict[str, Any]:
    """Run the methods on one all-atom reference and write the comparison into ``out``.

    ``preset``: a name of :data:`COMPARE_PRESETS`, a :class:`CompareSettings` or a ``cgforge
    run`` :class:`~cgforge.presets.Preset`; ``model_dir``: the trained mobility model
    (required for ``ml``); ``alpha_model``: a predicted acceleration factor for ``rescale``
    (None: α measured on the IBI run); ``seed``, ``platform``, the CG ``engine`` (auto,
    lammps, openmm, torch) and its ``cg_threads`` (CPU threads) apply to every CG run.
    Rerunning into the same ``out`` resumes every method where it stopped. Returns the
    comparison (also ``comparison.json``); a method that fails gets a ``failed`` row.
    """
    chosen = parse_methods(methods)
    check_cg_threads(cg_threads)  # before any work
    settings = get_settings(preset)
    reference = load_reference(reference_dir)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"out {out} is a file; give a directory path", parameters="out")
    if "ml" in chosen:
        from cgforge.methods.mobility.model_io import resolve_model_dir

        model_dir = resolve_model_dir(model_dir)  # None: the shipped model
        if not Path(model_dir).exists():
            raise InputError(f"model directory {model_dir} not found")
        _check_model(Path(model_dir))  # before any run: a broken model fails at once
    if alpha_model is not None and not callable(alpha_model):
        alpha, alpha_err = _predicted_alpha(alpha_model, reference)
        if not (math.isfinite(alpha) and alpha > 0):
            name = "alpha_model[0]" if isinstance(alpha_model, tuple | list) else "alpha_model"
            raise InputError(
                f"{name} must be a positive acceleration factor, got {alpha:g}", parameters=name
            )
        if not (math.isfinite(alpha_err) and alpha_err >= 0):
            raise InputError(
                f"alpha_model[1] must be a non-negative error, got {alpha_err:g}",
                parameters="alpha_model[1]",
            )
    check_creatable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    ibi_config = replace(
        settings.ibi, platform=platform, seed=seed, engine=engine, cg_threads=cg_threads
    )
    n_beads = reference.n_molecules if settings.n_beads is None else int(settings.n_beads)
    ctx = _Context(reference, out, settings, ibi_config, n_beads, progress)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "ibi": lambda: _method_ibi(ctx),
        "ml": lambda: _method_ml(ctx, Path(str(model_dir))),
        "friction": lambda: _method_friction(ctx),
        "rescale": lambda: _method_rescale(ctx, alpha_model),
    }
    rows = []
    for method in chosen:
        try:
            rows.append(runners[method]())
        except _NeedsIBI as exc:
            rows.append(_failed(method, f"needs the IBI run, which failed: {exc}"))
        except CGForgeError as exc:
            rows.append(_failed(method, str(exc)))
    write_comparison_csv(out / "comparison.csv", rows)
    plot_comparison(out / "comparison.png", reference, out, rows)
    result = {
        "molecule": reference.molecule,
        "reference_dir": str(reference.path),
        "temperature_K": reference.temperature_K,
        "reference_diffusion_m2_s": reference.diffusion_m2_s,
        "reference_diffusion_err_m2_s": reference.diffusion_err_m2_s,
        "reference_density_g_cm3": reference.density_g_cm3,
        "n_beads": n_beads,
        "settings": settings.to_dict(),
        "rows": rows,
        "files": {"table": "comparison.csv", "plot": "comparison.png", "report": "report.html"},
        "provenance": collect(
            {
                "reference_dir": str(reference.path),
                "reference_sha256": reference.fingerprint(),
                "methods": list(chosen),
                "settings": settings.to_dict(),
                "model_dir": None if model_dir is None else str(Path(model_dir).resolve()),
                "alpha_model": None if alpha_model is None else repr(alpha_model),
                "platform": platform,
            },
            seed=seed,
        ),
    }
    write_json(out / "comparison.json", result)
    write_comparison_report(out / "report.html", result, out / "comparison.png")
    return result


def write_comparison_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``comparison.csv``: :data:`COLUMNS`, empty cells for None, notes quoted."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int | float):
            return f"{value:.8g}"
        text = str(value).replace('"', "'")
        return f'"{text}"' if any(c in text for c in ',"\n') else text

    lines = [",".join(COLUMNS)]
    lines += [",".join(cell(row.get(c)) for c in COLUMNS) for row in rows]
    write_text(path, "\n".join(lines) + "\n")


def _method_files(out: Path, row: dict[str, Any]) -> tuple[Path | None, Path | None]:
    if row["status"] == "failed" or not row.get("run_dir"):
        return None, None
    base = out / row["run_dir"]
    rdf, msd = base / "rdf.csv", base / "msd.csv"
    return (rdf if rdf.is_file() else None), (msd if msd.is_file() else None)


def plot_comparison(
    path: Path, reference: AAReference, out: Path, rows: list[dict[str, Any]]
) -> None:
    """RDFs over the all-atom RDF, MSDs (log-log) and D_CG/D_AA with error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_g, ax_m, ax_a) = plt.subplots(1, 3, figsize=(15, 4.2))
    ax_g.plot(reference.rdf.r_nm, reference.rdf.g, color="black", lw=2.5, label="all-atom")
    aa_msd = reference.path / "msd.csv"
    if aa_msd.is_file():
        msd = MSDResult.from_csv(aa_msd)
        mask = msd.t_ps > 0
        ax_m.loglog(msd.t_ps[mask], msd.msd_nm2[mask], color="black", lw=2.5, label="all-atom")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels, values, errors, bar_colors = [], [], [], []
    for i, row in enumerate(rows):
        color = colors[i % len(colors)]
        rdf_path, msd_path = _method_files(out, row)
        if rdf_path is not None:
            rdf = RDFResult.from_csv(rdf_path)
            style = "--" if row["method"] == "rescale" else "-"
            ax_g.plot(rdf.r_nm, rdf.g, style, color=color, lw=1.3, label=row["method"])
        if msd_path is not None:
            msd = MSDResult.from_csv(msd_path)
            mask = msd.t_ps > 0
            ax_m.loglog(msd.t_ps[mask], msd.msd_nm2[mask], color=color, lw=1.3, label=row["method"])
        factor = row.get("acceleration_factor")
        labels.append(row["method"] if row["status"] != "failed" else f"{row['method']}\n(failed)")
        values.append(float(factor) if factor is not None else math.nan)
        err = row.get("acceleration_factor_err")
        errors.append(float(err) if err is not None and math.isfinite(float(err)) else 0.0)
        bar_colors.append(color)
    ax_g.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax_g.set_xlabel("r / nm")
    ax_g.set_ylabel("g(r), centres of mass")
    ax_g.legend(fontsize=8)
    ax_m.set_xlabel("t / ps (all-atom clock)")
    ax_m.set_ylabel("MSD / nm²")
    ax_m.legend(fontsize=8)
    x = np.arange(len(labels))
    heights = np.nan_to_num(np.array(values, dtype=float))
    ax_a.bar(x, heights, yerr=errors, color=bar_colors, capsize=4)
    ax_a.axhline(1.0, color="black", lw=1.0, ls="--")
    ax_a.set_xticks(x, labels)
    ax_a.set_ylabel("D_CG / D_AA")
    fig.suptitle(f"{reference.molecule}: CG methods against the all-atom reference")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
