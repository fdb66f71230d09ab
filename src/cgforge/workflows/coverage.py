"""``cgforge db coverage``: which real liquids a mobility model covers, and why not the others.

:func:`coverage`
    Feeds every shipped all-atom reference (:func:`cgforge.workflows.references.shipped_references`)
    to a mobility model through the input path of ``cgforge predict``
    (:func:`~cgforge.workflows.cg.load_reference`, the same reference checks, and
    :meth:`~cgforge.methods.mobility.MobilityModel.predict` with the bead mass, D_AA, g_AA and
    temperature) and records whether the prediction is flagged out of distribution and why.
    Coverage is the fraction of references that are *not* flagged (a reference that cannot be
    predicted at all counts as not covered).

:func:`input_cloud`
    The database's mobility inputs as the network sees them
    (:func:`~cgforge.database.learning.read_records`: every usable stage-A, -B and -C
    record): per record the bead mass,
    D_CG and the height and position of the first peak of g_CG (:func:`first_peak`).

:func:`sampling_advice`
    Data-based statements of the direction in which the database must grow for the liquids to
    fall inside it: how far the liquids' D lies below the database's smallest D; what D the
    database's potentials reach at the liquids' own masses (each potential's stage-B mass scan
    fitted by D ∝ m^s, s measured); what upper stage-B mass would bring D down far enough; and
    which fraction of records have higher first peaks than the liquids.

:func:`run_coverage` writes ``OUT/coverage.json`` and ``OUT/coverage.png`` (the database's
(log D, first-peak height) scatter with the liquids marked and labelled, OOD ones in red, and a
(mass, D) panel).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import CGForgeError, InputError
from cgforge.fileio import atomic_path, check_creatable_dir, write_json
from cgforge.grids import LearningGrids, resample_rdf

__all__ = [
    "SHIPPED_DATABASE",
    "coverage",
    "first_peak",
    "input_cloud",
    "resolve_database",
    "run_coverage",
    "sampling_advice",
]

#: The demonstration database of the source tree (``data/``; not part of an installed wheel).
SHIPPED_DATABASE = Path(__file__).resolve().parents[3] / "data" / "ffdb-cpu-quick.sqlite"


def resolve_database(database: str | Path | None) -> Path:
    """``database``, or the shipped demonstration database when None; an InputError naming
    the path when there is no such file."""
    if database is None:
        if not SHIPPED_DATABASE.is_file():
            raise InputError(
                f"there is no shipped demonstration file {SHIPPED_DATABASE} (it ships with the "
                "source tree, not the installed package); give database, the path of a file that "
                "cgforge db generate made",
                parameters="database",
            )
        return SHIPPED_DATABASE
    path = Path(database)
    if not path.is_file():
        raise InputError(
            f"there is no file at '{path}'; give database, the path of a file that cgforge db "
            "generate made",
            parameters="database",
        )
    return path


def first_peak(r_nm: NDArray[np.float64], g: NDArray[np.float64]) -> tuple[float, float]:
    """Height and position (nm) of the first peak of g(r): its largest value, which for a
    one-bead liquid is the first coordination shell."""
    g = np.asarray(g, dtype=np.float64)
    i = int(np.argmax(g))
    return float(g[i]), float(np.asarray(r_nm)[i])


# ---------------------------------------------------------------------- the database cloud
def input_cloud(database: str | Path) -> dict[str, Any]:
    """Mobility inputs of the usable records of ``database``: ``records`` (key, stage,
    molecule, group = the potential it runs (stage A and B: the stage-A key; stage C: its
    own), mass_amu, diffusion_m2_s = D_CG, peak_height, peak_r_nm) and ``summary`` (counts,
    ranges, peak-height quantiles)."""
    from cgforge.database.learning import read_records

    records = read_records(resolve_database(database), ("A", "B", "C"))
    r = records.grids.rdf_r_nm
    rows = []
    for i in range(len(records)):
        height, position = first_peak(r, records.g_cg[i])
        potential = records.keys[i] if records.stages[i] == "C" else records.groups[i]
        rows.append(
            {
                "key": records.keys[i][:12],
                "stage": records.stages[i],
                "molecule": records.molecules[i],
                "group": potential[:12],
                "mass_amu": float(records.mass_amu[i]),
                "diffusion_m2_s": float(records.d_cg[i]),
                "peak_height": height,
                "peak_r_nm": position,
                "diffusion_aa_m2_s": _finite_or_none(records.d_aa[i]),
                "acceleration_factor": _finite_or_none(records.acceleration[i]),
            }
        )
    return {"database": str(records.source), "records": rows, "summary": _cloud_summary(rows)}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _span(values: list[float]) -> list[float] | None:
    finite = [v for v in values if math.isfinite(v)]
    return [min(finite), max(finite)] if finite else None


def _cloud_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    heights = np.array([row["peak_height"] for row in rows], dtype=float)
    return {
        "n_records": len(rows),
        "n_stage_a": sum(row["stage"] == "A" for row in rows),
        "n_stage_b": sum(row["stage"] == "B" for row in rows),
        "n_stage_c": sum(row["stage"] == "C" for row in rows),
        "mass_amu": _span([row["mass_amu"] for row in rows]),
        "diffusion_m2_s": _span([row["diffusion_m2_s"] for row in rows]),
        "peak_height": _span(list(heights)),
        "peak_height_quartiles": (
            [float(q) for q in np.quantile(heights, [0.25, 0.5, 0.75])] if heights.size else None
        ),
        "peak_r_nm": _span([row["peak_r_nm"] for row in rows]),
        "diffusion_aa_m2_s": _span(
            [r["diffusion_aa_m2_s"] for r in rows if r["diffusion_aa_m2_s"]]
        ),
        "acceleration_factor": _span(
            [r["acceleration_factor"] for r in rows if r["acceleration_factor"]]
        ),
    }


# ---------------------------------------------------------------------- the liquids
def _load_model(model: Any) -> Any:
    from cgforge.methods.mobility.model_io import resolve_model_dir
    from cgforge.methods.mobility.potential_from_mobility import MobilityModel
    from cgforge.workflows.predict import load_mobility_model

    if isinstance(model, MobilityModel):
        return model
    return load_mobility_model(resolve_model_dir(model))


def _reference_paths(references: Any) -> list[Path]:
    if references is None:
        from cgforge.workflows.references import shipped_references

        return [Path(s["path"]) for s in shipped_references()]
    return [Path(r) for r in references]


def _liquid(model: Any, path: Path, grids: LearningGrids) -> dict[str, Any]:
    """One reference through the input path of ``cgforge predict``."""
    from cgforge.workflows.cg import load_reference
    from cgforge.workflows.predict import check_reference_for_prediction

    row: dict[str, Any] = {
        "liquid": path.name,
        "path": str(path),
        "mass_amu": None,
        "diffusion_m2_s": None,
        "temperature_K": None,
        "peak_height": None,
        "peak_r_nm": None,
        "out_of_distribution": True,
        "ood_reasons": [],
        "error": None,
    }
    try:
        reference = load_reference(path)
        row.update(
            liquid=reference.molecule,
            mass_amu=reference.bead_mass_amu,
            diffusion_m2_s=reference.diffusion_m2_s,
            temperature_K=reference.temperature_K,
        )
        row["peak_height"], row["peak_r_nm"] = first_peak(
            grids.rdf_r_nm, resample_rdf(reference.rdf, grids).g
        )
        check_reference_for_prediction(reference)
        prediction = model.predict(
            reference.bead_mass_amu,
            reference.diffusion_m2_s,
            reference.rdf,
            temperature_K=reference.temperature_K,
        )
    except CGForgeError as exc:  # not predictable: not covered, with the reason
        row["error"] = " ".join(str(exc).split())
        row["ood_reasons"] = [f"no prediction: {row['error']}"]
        return row
    row["out_of_distribution"] = bool(prediction.out_of_distribution)
    row["ood_reasons"] = list(prediction.ood_reasons)
    return row


def coverage(model: Any = None, references: Any = None) -> dict[str, Any]:
    """Which references the mobility ``model`` (a MobilityModel, a model directory, or None
    for the shipped model) predicts in distribution. ``references``: reference directories
    (default: the shipped references). Returns ``liquids`` (one row each: liquid, mass_amu,
    diffusion_m2_s, temperature_K, peak_height, peak_r_nm, out_of_distribution, ood_reasons,
    error), ``n_references``, ``n_covered`` and ``coverage`` (None when there are none)."""
    loaded = _load_model(model)
    rows = [_liquid(loaded, path, loaded.grids) for path in _reference_paths(references)]
    covered = sum(not row["out_of_distribution"] for row in rows)
    return {
        "model": str(loaded.loaded.path),
        "training_data": loaded.training_data,
        "liquids": rows,
        "n_references": len(rows),
        "n_covered": covered,
        "coverage": covered / len(rows) if rows else None,
    }


# ---------------------------------------------------------------------- sampling advice
def _mass_slope(records: list[dict[str, Any]]) -> float | None:
    """Common slope of log D against log m within potentials (groups with ≥ 2 masses)."""
    by_group: dict[str, list[tuple[float, float]]] = {}
    for row in records:
        by_group.setdefault(row["group"], []).append(
            (math.log10(row["mass_amu"]), math.log10(row["diffusion_m2_s"]))
        )
    xs, ys = [], []
    for points in by_group.values():
        if len({p[0] for p in points}) < 2:
            continue
        x = np.array([p[0] for p in points])
        y = np.array([p[1] for p in points])
        xs.append(x - x.mean())
        ys.append(y - y.mean())
    if not xs:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    return float(np.sum(x * y) / np.sum(x * x))


def _d_at_mass(records: list[dict[str, Any]], slope: float, mass: float) -> float:
    """Smallest D any potential of the database gives at ``mass`` (its records moved along
    D ∝ m^slope; each group from its geometric-mean point)."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for row in records:
        by_group.setdefault(row["group"], []).append(row)
    values = []
    for rows in by_group.values():
        log_m = np.mean([math.log10(r["mass_amu"]) for r in rows])
        log_d = np.mean([math.log10(r["diffusion_m2_s"]) for r in rows])
        values.append(10 ** (log_d + slope * (math.log10(mass) - log_m)))
    return float(min(values))


def sampling_advice(cloud: dict[str, Any], liquids: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers and sentences on where the database must grow to contain the ``liquids``
    (rows of :func:`coverage`) given its input ``cloud`` (:func:`input_cloud`)."""
    records = cloud["records"]
    usable = [
        row
        for row in liquids
        if row.get("diffusion_m2_s") and row.get("mass_amu") and row.get("peak_height")
    ]
    if not records or not usable:
        return {"statements": ["no records or no liquids with D, mass and g: nothing to compare"]}
    d_db = np.array([r["diffusion_m2_s"] for r in records])
    m_db = np.array([r["mass_amu"] for r in records])
    h_db = np.array([r["peak_height"] for r in records])
    d_liq = np.array([r["diffusion_m2_s"] for r in usable])
    m_liq = np.array([r["mass_amu"] for r in usable])
    h_liq = np.array([r["peak_height"] for r in usable])
    out: dict[str, Any] = {
        "database_d_min_m2_s": float(d_db.min()),
        "database_d_max_m2_s": float(d_db.max()),
        "liquids_d_m2_s": [float(d_liq.min()), float(d_liq.max())],
        "database_mass_amu": [float(m_db.min()), float(m_db.max())],
        "liquids_mass_amu": [float(m_liq.min()), float(m_liq.max())],
    }
    statements = []
    below = d_liq < d_db.min()
    factors = d_db.min() / d_liq
    out["d_factor_below_database_min"] = [float(factors.min()), float(factors.max())]
    if below.any():
        statements.append(
            f"D: {int(below.sum())} of {len(usable)} liquids have D_AA "
            f"({d_liq.min():.2g}–{d_liq.max():.2g} m²/s) below the database's smallest D_CG "
            f"{d_db.min():.2g} m²/s, by a factor of {factors[below].min():.2g}–"
            f"{factors[below].max():.2g}: the database must grow towards slower CG liquids."
        )
    elif (d_liq > d_db.max()).any():
        statements.append(
            f"D: liquids reach {d_liq.max():.2g} m²/s, above the database's largest D_CG "
            f"{d_db.max():.2g} m²/s: the database must grow towards faster CG liquids."
        )
    else:
        statements.append(
            f"D: every liquid's D_AA lies within the database's D_CG range "
            f"{d_db.min():.2g}–{d_db.max():.2g} m²/s."
        )
    slope = _mass_slope(records)
    out["log_d_log_m_slope"] = slope
    if slope is not None and slope < 0:
        at_mass = np.array([_d_at_mass(records, slope, m) for m in m_liq])
        ratio = at_mass / d_liq
        out["database_d_at_liquid_mass_over_d_aa"] = [float(ratio.min()), float(ratio.max())]
        needed = np.array([_needed_mass(records, slope, d) for d in d_liq])
        out["stage_b_mass_needed_amu"] = [float(needed.min()), float(needed.max())]
        if (ratio > 1).any():
            statements.append(
                f"At the liquids' own bead masses ({m_liq.min():.0f}–{m_liq.max():.0f} amu) the "
                f"slowest potential of the database (moved along its measured D ∝ m^{slope:.2f}) "
                f"is still {ratio.min():.2g}–{ratio.max():.2g} × faster than the liquids: "
                "the records need slower potentials at these masses (stage A: draws whose IBI "
                "models are less accelerated, or slower CG potentials), not only heavier beads."
            )
        if (needed > m_db.max()).any():
            statements.append(
                f"With the present potentials, stage B would reach the liquids' D only at bead "
                f"masses of {needed.min():.0f}–{needed.max():.0f} amu (today's largest: "
                f"{m_db.max():.0f} amu): widening the stage-B mass range (mass_range_amu) upwards covers the D axis but "
                "places those records far from the liquids' masses."
            )
    accel = [r["acceleration_factor"] for r in records if r.get("acceleration_factor")]
    d_aa_db = [r["diffusion_aa_m2_s"] for r in records if r.get("diffusion_aa_m2_s")]
    ibi_d = np.array([r["diffusion_m2_s"] for r in records if r["stage"] != "C"])
    slow_d = np.array([r["diffusion_m2_s"] for r in records if r["stage"] == "C"])
    if slow_d.size:
        out["stage_c_d_m2_s"] = [float(slow_d.min()), float(slow_d.max())]
    if ibi_d.size:
        out["stage_ab_d_m2_s"] = [float(ibi_d.min()), float(ibi_d.max())]
    if slow_d.size and ibi_d.size and slow_d.min() < ibi_d.min():
        statements.append(
            f"The slow region comes from stage C: its {slow_d.size} perturbed potentials span "
            f"D_CG {slow_d.min():.2g}–{slow_d.max():.2g} m²/s, {int((slow_d < ibi_d.min()).sum())} "
            f"of them below the slowest IBI record (stages A and B, {ibi_d.min():.2g} m²/s)."
        )
    if accel and d_aa_db:
        out["database_acceleration_factor"] = [min(accel), max(accel)]
        out["database_d_aa_m2_s"] = [min(d_aa_db), max(d_aa_db)]
    if accel and d_aa_db and ibi_d.size and (d_liq < ibi_d.min()).any():
        statements.append(
            ("Stages A and B alone do not reach the liquids" if slow_d.size else "Why")
            + f": the database's own all-atom liquids move like the real ones (D_AA "
            f"{min(d_aa_db):.2g}–{max(d_aa_db):.2g} m²/s), but their IBI potentials run "
            f"{min(accel):.2g}–{max(accel):.2g} × faster (D_CG/D_AA), and only D_CG enters the "
            "network: every stage-A potential and its stage-B copies sit above the liquids' D."
        )
    r_db = np.array([r["peak_r_nm"] for r in records])
    r_liq = np.array([r["peak_r_nm"] for r in usable])
    names = [str(r["liquid"]) for r in usable]
    higher = np.array([float(np.mean(h_db > h)) for h in h_liq])
    out["liquids_peak_height"] = [float(h_liq.min()), float(h_liq.max())]
    out["database_peak_height"] = [float(h_db.min()), float(h_db.max())]
    out["liquids_peak_r_nm"] = [float(r_liq.min()), float(r_liq.max())]
    out["database_peak_r_nm"] = [float(r_db.min()), float(r_db.max())]
    out["fraction_records_with_higher_peak"] = dict(zip(names, map(float, higher), strict=True))
    text = (
        f"Structure: the database's first peaks are g_max {h_db.min():.2f}–{h_db.max():.2f} at "
        f"r {r_db.min():.3f}–{r_db.max():.3f} nm, the liquids' {h_liq.min():.2f}–"
        f"{h_liq.max():.2f} at {r_liq.min():.3f}–{r_liq.max():.3f} nm"
    )
    above = [f"{n} ({h:.2f})" for n, h in zip(names, h_liq, strict=True) if h > h_db.max()]
    under = [f"{n} ({h:.2f})" for n, h in zip(names, h_liq, strict=True) if h < h_db.min()]
    parts = []
    if above:
        parts.append(f"higher than every record: {', '.join(above)}")
    if under:
        parts.append(f"lower than every record: {', '.join(under)}")
    inside = [
        f"{n} ({100 * f:.0f}% of records peak higher)"
        for n, f, h in zip(names, higher, h_liq, strict=True)
        if h_db.min() <= h <= h_db.max()
    ]
    if inside:
        parts.append("within the range: " + ", ".join(inside))
    closer = [n for n, r in zip(names, r_liq, strict=True) if r < r_db.min() - 1e-9]
    if closer:
        parts.append(
            f"first shell closer than every record's ({', '.join(closer)}): the database needs "
            "smaller or more tightly packed beads (other molecules)"
        )
    statements.append(text + ("; " + "; ".join(parts) if parts else "") + ".")
    out["statements"] = statements
    return out


def _needed_mass(records: list[dict[str, Any]], slope: float, diffusion: float) -> float:
    """Smallest bead mass at which some potential of the database reaches ``diffusion``."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for row in records:
        by_group.setdefault(row["group"], []).append(row)
    masses = []
    for rows in by_group.values():
        log_m = np.mean([math.log10(r["mass_amu"]) for r in rows])
        log_d = np.mean([math.log10(r["diffusion_m2_s"]) for r in rows])
        masses.append(10 ** (log_m + (math.log10(diffusion) - log_d) / slope))
    return float(min(masses))


# ---------------------------------------------------------------------- command
def run_coverage(
    database: str | Path | None = None,
    model: str | Path | None = None,
    out: str | Path = "coverage",
    references: Any = None,
) -> dict[str, Any]:
    """Coverage of the shipped references by ``model``, the input cloud of ``database``
    (defaults: the shipped database and model) and the sampling advice; writes
    ``OUT/coverage.json`` and ``OUT/coverage.png`` and returns the JSON content."""
    from cgforge.provenance import collect

    db_path = resolve_database(database)
    folder = Path(out)
    check_creatable_dir(folder)  # a file, or a path that cannot be made: refused before work
    result = coverage(model, references)
    cloud = input_cloud(db_path)
    result = {
        "database": str(db_path),
        **result,
        "cloud": cloud["summary"],
        "advice": sampling_advice(cloud, result["liquids"]),
        "records": cloud["records"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    result["files"] = {"json": "coverage.json", "plot": "coverage.png"}
    result["provenance"] = collect({"database": str(db_path), "model": result["model"]}, seed=0)
    plot_coverage(folder / "coverage.png", cloud["records"], result["liquids"])
    write_json(folder / "coverage.json", result)
    return result


def plot_coverage(path: Path, records: list[dict[str, Any]], liquids: list[dict[str, Any]]) -> None:
    """(D, first-peak height) and (mass, D) panels of the records with the liquids marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for stage, colour in (("A", "tab:blue"), ("B", "tab:grey"), ("C", "tab:orange")):
        rows = [r for r in records if r["stage"] == stage]
        if not rows:
            continue
        label = f"database stage {stage} ({len(rows)})"
        ax1.scatter(
            [r["diffusion_m2_s"] for r in rows],
            [r["peak_height"] for r in rows],
            s=18,
            c=colour,
            alpha=0.7,
            label=label,
        )
        ax2.scatter(
            [r["mass_amu"] for r in rows],
            [r["diffusion_m2_s"] for r in rows],
            s=18,
            c=colour,
            alpha=0.7,
            label=label,
        )
    for ood, colour, text in ((True, "tab:red", "liquid, OOD"), (False, "tab:green", "liquid, in")):
        rows = [
            r
            for r in liquids
            if r["out_of_distribution"] == ood and r["diffusion_m2_s"] and r["peak_height"]
        ]
        if not rows:
            continue
        d = [r["diffusion_m2_s"] for r in rows]
        ax1.scatter(d, [r["peak_height"] for r in rows], marker="*", s=140, c=colour, label=text)
        ax2.scatter([r["mass_amu"] for r in rows], d, marker="*", s=140, c=colour, label=text)
        for r in rows:
            ax1.annotate(
                r["liquid"],
                (r["diffusion_m2_s"], r["peak_height"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
            ax2.annotate(
                r["liquid"],
                (r["mass_amu"], r["diffusion_m2_s"]),
                fontsize=7,
                xytext=(4, 3),
                textcoords="offset points",
            )
    ax1.set_xscale("log")
    ax1.set(xlabel="D / m² s⁻¹ (database: D_CG; liquids: D_AA)", ylabel="first-peak height g_max")
    ax1.set_title("mobility inputs: D and structure", fontsize=10)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set(xlabel="bead mass / amu", ylabel="D / m² s⁻¹")
    ax2.set_title("mobility inputs: mass and D", fontsize=10)
    from matplotlib.ticker import LogLocator

    for axis in (ax1.xaxis, ax2.xaxis, ax2.yaxis):  # label 2× and 5× the decades only
        axis.set_minor_locator(LogLocator(base=10.0, subs=(2.0, 5.0)))
    ax1.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
