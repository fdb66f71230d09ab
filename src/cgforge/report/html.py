"""``report.html``: one self-contained page (figures embedded) for an AA → CG comparison.

Shows both sides of the structure/mobility trade: the RDF overlay, the MSD curves, the CG potential,
the IBI convergence history (for IBI models) and a table of the numbers (density, pressure, D,
acceleration factor, RDF deviation and R²). The CG side is labelled by its method (IBI, mobility
network, ...).
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.fileio import write_text
from cgforge.runsummary import read_summary

#: How the page introduces the CG model of each method label.
_METHOD_TEXT = {
    "IBI": "by iterative Boltzmann inversion. An IBI model reproduces g(r), but its dynamics "
    "run faster than the all-atom ones (acceleration factor &gt; 1).",
    "mobility network": "predicted by the mobility network from the bead mass, g(r) and D of "
    "the reference. The network trades some structure for mobility: compare the RDF "
    "deviation with the acceleration factor.",
}


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open() as handle:
        rows = [row for row in csv.reader(line for line in handle if not line.startswith("#"))]
    header, data = rows[0], np.array(rows[1:], dtype=float).reshape(-1, len(rows[0]))
    return {name: data[:, i] for i, name in enumerate(header)}


def _figure_to_data_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figures(aa_dir: Path, cg_dir: Path, label: str) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: dict[str, str] = {}
    g_aa, g_cg = _read_csv(aa_dir / "rdf.csv"), _read_csv(cg_dir / "rdf.csv")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(g_aa["r_nm"], g_aa["g"], "k-", lw=1.5, label="all-atom (centres of mass)")
    ax.plot(g_cg["r_nm"], g_cg["g"], "r--", lw=1.5, label=label)
    ax.axhline(1.0, color="grey", lw=0.6)
    ax.set(xlabel="r / nm", ylabel="g(r)", title="Structure")
    ax.legend()
    fig.tight_layout()
    figures["rdf"] = _figure_to_data_uri(fig)

    m_aa, m_cg = _read_csv(aa_dir / "msd.csv"), _read_csv(cg_dir / "msd.csv")
    fig, ax = plt.subplots(figsize=(6, 4))
    for data, style, name in ((m_aa, "k-", "all-atom"), (m_cg, "r--", label)):
        mask = data["t_ps"] > 0
        ax.loglog(data["t_ps"][mask], data["msd_nm2"][mask], style, lw=1.5, label=name)
    ax.set(xlabel="t / ps", ylabel="MSD / nm²", title="Mobility")
    ax.legend()
    fig.tight_layout()
    figures["msd"] = _figure_to_data_uri(fig)

    pot = _read_csv(cg_dir / "potential.csv")
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = np.isfinite(pot["U_kJ_mol"])
    ax.plot(pot["r_nm"][finite], pot["U_kJ_mol"][finite], "b-", lw=1.5)
    well = pot["U_kJ_mol"][finite]
    ax.set_ylim(min(well.min() * 1.3, -0.5), max(5.0, -3.0 * well.min()))
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set(xlabel="r / nm", ylabel="U / kJ mol⁻¹", title="CG pair potential")
    fig.tight_layout()
    figures["potential"] = _figure_to_data_uri(fig)

    history_path = cg_dir / "ibi" / "history.csv"
    if history_path.exists():
        hist = _read_csv(history_path)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax1.semilogy(hist["iteration"], hist["rdf_deviation"], "o-")
        ax1.set(xlabel="iteration", ylabel="RDF deviation", title="IBI: structure")
        ax2.errorbar(
            hist["iteration"], hist["pressure_bar"], yerr=hist["pressure_err_bar"], fmt="o-"
        )
        ax2.set(xlabel="iteration", ylabel="P / bar", title="IBI: pressure")
        fig.tight_layout()
        figures["convergence"] = _figure_to_data_uri(fig)
    return figures


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return format(value, spec)
    return html.escape(str(value))


def _pm(value: Any, err: Any, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    return _fmt(value, spec) + ("" if err is None else f" ± {_fmt(err, '.2g')}")


def write_report(path: Path, aa_dir: Path, cg_dir: Path, title: str, method: str = "IBI") -> None:
    """Write the report page for an AA reference directory and a CG run directory whose
    potential came from ``method`` (a label: ``"IBI"``, ``"mobility network"``, ...)."""
    aa = read_summary(aa_dir, what="all-atom reference run", command="'cgforge aa'")
    cg = read_summary(cg_dir, what="CG run")
    label = f"CG ({method})"
    figures = _figures(aa_dir, cg_dir, label)
    rows = [
        (
            "density / g cm⁻³",
            _pm(aa["density_g_cm3"], aa.get("density_err_g_cm3")),
            _pm(cg["density_g_cm3"], cg.get("density_err_g_cm3")),
        ),
        (
            "pressure / bar",
            _pm(aa.get("pressure_bar"), aa.get("pressure_err_bar")),
            _pm(cg.get("pressure_bar"), cg.get("pressure_err_bar")),
        ),
        (
            "D / m² s⁻¹",
            _pm(aa["diffusion_m2_s"], aa["diffusion_err_m2_s"]),
            _pm(cg["diffusion_m2_s"], cg["diffusion_err_m2_s"]),
        ),
        (
            "D fit window / ps",
            "{:.3g}–{:.3g}".format(*aa["diffusion_fit_window_ps"]),
            "{:.3g}–{:.3g}".format(*cg["diffusion_fit_window_ps"]),
        ),
        (
            "acceleration factor D_CG/D_AA",
            "1",
            _pm(cg.get("acceleration_factor"), cg.get("acceleration_factor_err"), ".3g"),
        ),
        ("RDF deviation (integrated, relative)", "–", _fmt(cg.get("rdf_deviation"), ".3%")),
        ("RDF R²", "–", _fmt(cg.get("rdf_r2"), ".4f")),
        ("density error (relative)", "–", _fmt(cg.get("density_error"), "+.2%")),
    ]
    if "iterations" in cg:
        rows.append(
            (
                "IBI iterations / converged",
                "–",
                f"{_fmt(cg.get('iterations'))} / {_fmt(cg.get('converged'))}",
            )
        )
    rows += [
        ("molecules / beads", _fmt(aa["n_molecules"]), _fmt(cg["n_molecules"])),
        ("bead mass / amu", _fmt(aa["bead_mass_amu"], ".3f"), _fmt(cg["bead_mass_amu"], ".3f")),
        (
            "speed",
            f"{_fmt(aa.get('ns_per_day'), '.3g')} ns/day ({_fmt(aa.get('platform'))})",
            f"{_fmt(cg.get('ns_per_day'), '.3g')} ns/day ({_fmt(cg.get('platform'))})",
        ),
    ]
    table = "\n".join(f"<tr><th>{name}</th><td>{a}</td><td>{c}</td></tr>" for name, a, c in rows)
    notes = [*aa.get("notes", []), *cg.get("notes", [])]
    notes_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    images = "\n".join(
        f'<figure><img src="{uri}" alt="{name}"><figcaption>{name}</figcaption></figure>'
        for name, uri in figures.items()
    )
    prov = cg.get("provenance", {})
    intro = _METHOD_TEXT.get(method, f"made by {html.escape(method)}.")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
th {{ background: #f4f4f4; font-weight: normal; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 520px; }}
.small {{ color: #666; font-size: 0.85em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>All-atom reference (<code>{html.escape(str(aa_dir))}</code>) and its one-bead CG model
(<code>{html.escape(str(cg_dir))}</code>) {intro} Structure, thermodynamics and dynamics side by
side.</p>
<table><tr><th></th><th>all-atom</th><th>{html.escape(label)}</th></tr>
{table}
</table>
{f"<h2>Notes</h2><ul>{notes_html}</ul>" if notes_html else ""}
<h2>Figures</h2>
{images}
<p class="small">cgforge {html.escape(str(prov.get("cgforge_version", "")))},
git {html.escape(str((prov.get("git") or {}).get("commit", "unknown")))},
created {html.escape(str(prov.get("created_utc", "")))}. Full provenance in the summary.json files.</p>
</body></html>
"""
    write_text(path, page)


#: How the comparison page introduces each method of ``cgforge compare``.
_COMPARE_TEXT = {
    "ibi": "keeps the structure: g(r) by iterative Boltzmann inversion; its dynamics run fast "
    "(D_CG/D_AA &gt; 1).",
    "ml": "the mobility network's potential from (bead mass, g, D): trades structure for mobility.",
    "friction": "keeps structure and mobility: the IBI potential under Langevin dynamics with the "
    "friction fitted so that D_CG = D_AA.",
    "rescale": "the IBI run on a stretched clock (time × α): D matches by construction when α is "
    "measured on the same run.",
}


def write_comparison_report(path: Path, comparison: dict[str, Any], figure: Path) -> None:
    """``report.html`` of ``cgforge compare``: every method's structure, thermodynamics and
    dynamics beside the all-atom reference, and the comparison figure."""
    uri = "data:image/png;base64," + base64.b64encode(Path(figure).read_bytes()).decode()
    rows = []
    for row in comparison["rows"]:
        method = str(row["method"])
        ok = row.get("status") == "ok"
        rows.append(
            "<tr>"
            f"<th>{html.escape(method)}</th>"
            f"<td>{html.escape(str(row.get('status')))}</td>"
            f"<td>{_pm(row.get('acceleration_factor'), row.get('acceleration_factor_err'), '.3g') if ok else '–'}</td>"
            f"<td>{_fmt(row.get('rdf_r2'), '.4f') if ok else '–'}</td>"
            f"<td>{_fmt(row.get('rdf_deviation'), '.2%') if ok else '–'}</td>"
            f"<td>{_fmt(row.get('density_error'), '+.2%') if ok else '–'}</td>"
            f"<td>{_pm(row.get('pressure_bar'), row.get('pressure_err_bar'), '.3g') if ok else '–'}</td>"
            f"<td>{_COMPARE_TEXT.get(method, '')}"
            f"<br><span class='small'>{html.escape(str(row.get('notes') or ''))}</span></td>"
            "</tr>"
        )
    title = f"{comparison['molecule']}: CG models that keep structure and mobility"
    d_aa, d_err = comparison["reference_diffusion_m2_s"], comparison["reference_diffusion_err_m2_s"]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }}
th {{ background: #f4f4f4; font-weight: normal; }}
img {{ max-width: 100%; }} .small {{ color: #666; font-size: 0.85em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>All-atom reference <code>{html.escape(str(comparison["reference_dir"]))}</code>:
{comparison["temperature_K"]:.2f} K, density {comparison["reference_density_g_cm3"]:.4f} g/cm³,
D_AA = {_pm(d_aa, d_err, ".3e")} m²/s; {comparison["n_beads"]} beads in every CG run.
By Henderson's theorem no pair potential with the true bead mass matches both g(r) and D
where IBI runs fast: read the RDF columns and the D_CG/D_AA column together.</p>
<table><tr><th>method</th><th>status</th><th>D_CG/D_AA</th><th>RDF R²</th>
<th>RDF deviation</th><th>density error (NPT)</th><th>pressure / bar</th><th>what it is</th></tr>
{"".join(rows)}
</table>
<figure><img src="{uri}" alt="comparison"><figcaption>RDFs, MSDs and D_CG/D_AA of every
method against the all-atom reference</figcaption></figure>
<p class="small">Numbers and settings: comparison.json and comparison.csv beside this page; each
method's run directory holds its own summary.json with provenance.</p>
</body></html>
"""
    write_text(path, page)
