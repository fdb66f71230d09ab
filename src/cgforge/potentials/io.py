"""Reading and writing tabulated pair potentials: CSV, LAMMPS, GROMACS and VOTCA tables.

Units are converted only here; every file states its units. A small registry maps a format
name to its reader and writer (:data:`FORMATS`, :func:`read_potential`,
:func:`write_potential`); formats can be guessed from the file suffix.

Formats
-------
``csv``
    Header ``r_nm,U_kJ_mol,F_kJ_mol_nm`` (F optional on reading: derived from U), ``#``
    comment lines for metadata (``# cutoff_nm: 1.2``, ``# wall_below_nm: …``,
    ``# provenance: …``).
``lammps``
    ``pair_style table`` file for ``units real``: r in Å, energy in kcal/mol, force in
    kcal/mol/Å; a ``# DATE: … UNITS: real`` header, then a section ``KEYWORD`` /
    ``N n R rlo rhi FPRIME fplo fphi`` / blank / ``index r e f`` rows. The table ends at the
    cutoff; :func:`lammps_pair_commands` writes the matching ``pair_style``/``pair_coeff``.
``gromacs``
    User table ``table_X.xvg`` for ``vdwtype = user``: seven columns r, f, −f′, g, −g′, h, −h′
    in nm and kJ/mol, r from 0 in steps of 0.002 nm to cutoff + table-extension. The pair
    potential V(r) goes into the **h column** (the repulsion / C12 term) and −V′ into −h′; f
    and g are zero. In the topology set C6 = 0 and C12 = 1 for the bead pair so that
    C12·h(r) = V(r). Below the table's first point a repulsive wall (see
    :meth:`TabulatedPotential.extend_repulsive`) fills in down to r = 0.
``votca``
    VOTCA table ``r U flag`` (nm, kJ/mol; flags ``i`` in range, ``o`` out of range = wall
    extension, ``u`` undefined). With ``with_force=True`` the rows are ``r U F flag`` and a
    ``# columns:`` comment says so; VOTCA itself reads a four-column table as
    ``x y yerr flag``, so the default is the three-column form.

Every write is atomic (:func:`cgforge.fileio.write_text`): the text goes to a temporary file in
the target directory and is then moved over the target with :func:`os.replace`, so an
interrupted write never leaves a partial table. The directory must exist already.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cgforge import __version__
from cgforge.errors import InputError
from cgforge.fileio import write_text
from cgforge.potentials.table import TabulatedPotential
from cgforge.units import ANGSTROM_TO_NM, KCAL_TO_KJ

PathLike = str | os.PathLike[str]

#: GROMACS default table spacing (mixed precision), nm.
GROMACS_SPACING_NM = 0.002
#: GROMACS default ``table-extension``, nm.
GROMACS_TABLE_EXTENSION_NM = 1.0

_CSV_HEADER = ("r_nm", "U_kJ_mol", "F_kJ_mol_nm")
_VOTCA_FLAGS = ("i", "o", "u")
_LAMMPS_KEYWORD_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


# ---------------------------------------------------------------------- helpers
def _write_table(path: PathLike, text: str) -> Path:
    """Write a table's ``text`` atomically (:func:`cgforge.fileio.write_text`) into a directory
    that must exist (a table is not the place to create one); an existing file keeps its
    permission bits."""
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        raise InputError(f"cannot write {target}: directory {directory} does not exist")
    return write_text(target, text)


def _data_lines(path: str | Path, meta: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """(``file line N``, tokens) of each data line; ``#``/``@`` lines go into ``meta``."""
    name = Path(path).name
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        if line[0] in "#@":
            _collect_metadata(line, meta)
            continue
        yield f"{name} line {lineno}", line.split()


def _read_lines(path: PathLike) -> list[str]:
    source = Path(path)
    try:
        return source.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InputError(f"potential table {source} not found; check the path") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{source} is a directory, not a potential table") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not a text table ({exc.reason})") from exc


def _default_provenance() -> str:
    return f"written by cgforge {__version__}"


def _metadata_lines(potential: TabulatedPotential, provenance: str | None) -> list[str]:
    text = _default_provenance() if provenance is None else " ".join(provenance.split())
    lines = [f"# provenance: {text}", f"# cutoff_nm: {potential.cutoff_nm:.12g}"]
    if potential.wall_below_nm is not None:
        lines.append(f"# wall_below_nm: {potential.wall_below_nm:.12g}")
    return lines


_META_RE = re.compile(r"^[#@]\s*([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.*?)\s*$")


def _metadata_value(meta: dict[str, str], key: str, source: str) -> float | None:
    if key not in meta:
        return None
    try:
        value = float(meta[key])
    except ValueError as exc:
        raise InputError(f"{source}: metadata '{key}: {meta[key]}' is not a number") from exc
    if not math.isfinite(value):
        raise InputError(f"{source}: metadata '{key}' must be finite, got {meta[key]}")
    return value


def _collect_metadata(line: str, meta: dict[str, str]) -> None:
    match = _META_RE.match(line.strip())
    if match:
        meta.setdefault(match.group(1), match.group(2))


def _parse_float(token: str, where: str, what: str) -> float:
    try:
        return float(token)
    except ValueError as exc:
        raise InputError(f"{where}: cannot read {what} from '{token}'; expected a number") from exc


def _fmt(value: float) -> str:
    return f"{value:.12g}"


# ---------------------------------------------------------------------- CSV
def write_csv(
    path: PathLike, potential: TabulatedPotential, *, provenance: str | None = None
) -> Path:
    """Write ``r_nm,U_kJ_mol,F_kJ_mol_nm`` with ``#`` metadata (cutoff, provenance)."""
    lines = ["# cgforge tabulated pair potential (nm, kJ/mol, kJ/mol/nm)"]
    lines += _metadata_lines(potential, provenance)
    lines.append(",".join(_CSV_HEADER))
    for r, u, f in zip(potential.r_nm, potential.u_kj_mol, potential.f_kj_mol_nm, strict=True):
        lines.append(f"{_fmt(r)},{_fmt(u)},{_fmt(f)}")
    return _write_table(path, "\n".join(lines) + "\n")


def read_csv(path: PathLike) -> TabulatedPotential:
    """Read a CSV table; the header must name ``r_nm`` and ``U_kJ_mol`` (``F_kJ_mol_nm``
    optional). ``#`` lines are comments; ``cutoff_nm``/``wall_below_nm`` metadata are used."""
    name = Path(path).name
    meta: dict[str, str] = {}
    header: list[str] | None = None
    rows: list[list[float]] = []
    labels: list[str] = []
    columns: tuple[int, int, int | None] = (0, 1, None)
    for lineno, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            _collect_metadata(line, meta)
            continue
        fields = [field.strip() for field in line.split(",")]
        where = f"{name} line {lineno}"
        if header is None:
            header = fields
            if "r_nm" not in header or "U_kJ_mol" not in header:
                raise InputError(
                    f"{where}: header {line!r} lacks r_nm and U_kJ_mol; the CSV header must be "
                    "'r_nm,U_kJ_mol,F_kJ_mol_nm' (distances in nm, energies in kJ/mol)"
                )
            force_col = header.index("F_kJ_mol_nm") if "F_kJ_mol_nm" in header else None
            columns = (header.index("r_nm"), header.index("U_kJ_mol"), force_col)
            continue
        if len(fields) != len(header):
            raise InputError(
                f"{where}: {len(fields)} fields where the header has {len(header)}; "
                "fix the row or the header"
            )
        ir, iu, jf = columns
        row = [
            _parse_float(fields[ir], where, "r_nm"),
            _parse_float(fields[iu], where, "U_kJ_mol"),
        ]
        if jf is not None:
            row.append(_parse_float(fields[jf], where, "F_kJ_mol_nm"))
        rows.append(row)
        labels.append(where)
    if header is None or not rows:
        raise InputError(f"{name} holds no table rows; expected a header r_nm,U_kJ_mol,...")
    data = np.array(rows, dtype=np.float64)
    return TabulatedPotential(
        data[:, 0],
        data[:, 1],
        force_kj_mol_nm=data[:, 2] if columns[2] is not None else None,
        cutoff_nm=_metadata_value(meta, "cutoff_nm", name),
        wall_below_nm=_metadata_value(meta, "wall_below_nm", name),
        row_labels=labels,
    )


# ---------------------------------------------------------------------- LAMMPS
_KJ_MOL_TO_KCAL_MOL = 1.0 / KCAL_TO_KJ
_NM_TO_ANGSTROM = 1.0 / ANGSTROM_TO_NM
_F_TO_LAMMPS = ANGSTROM_TO_NM / KCAL_TO_KJ  # kJ/mol/nm -> kcal/mol/Å
_FPRIME_TO_LAMMPS = ANGSTROM_TO_NM**2 / KCAL_TO_KJ  # kJ/mol/nm² -> kcal/mol/Å²


def _check_keyword(keyword: str) -> str:
    if not _LAMMPS_KEYWORD_RE.match(keyword):
        raise InputError(
            f"LAMMPS table keyword {keyword!r} must be one word of letters, digits, '_', '-', '.'"
        )
    return keyword


def _lammps_table(potential: TabulatedPotential, extend_to_nm: float | None) -> TabulatedPotential:
    """The table as written for LAMMPS: optional wall, ends at the cutoff, starts at r > 0."""
    table = potential if extend_to_nm is None else potential.extend_repulsive(extend_to_nm)
    table = table.truncate()
    if table.r_min_nm <= 0.0:  # LAMMPS refuses an inner table distance rlo <= 0
        table = table.resample(table.r_nm[1:])
    return table


def write_lammps(
    path: PathLike,
    potential: TabulatedPotential,
    *,
    keyword: str = "CG_CG",
    extend_to_nm: float | None = None,
    provenance: str | None = None,
) -> Path:
    """Write a LAMMPS ``pair_style table`` file (``units real``) that ends at the cutoff.

    Rows are ``index r[Å] e[kcal/mol] f[kcal/mol/Å]`` on the table's uniform grid, declared
    with ``R rlo rhi`` (so LAMMPS recomputes r exactly) and ``FPRIME`` (dF/dr at both ends).
    LAMMPS stops a run when a pair comes closer than rlo and needs rlo > 0: pass
    ``extend_to_nm`` (e.g. 0.05) to add the repulsive wall of
    :meth:`TabulatedPotential.extend_repulsive` first; a row at r = 0 is left out.
    """
    _check_keyword(keyword)
    table = _lammps_table(potential, extend_to_nm)
    r_a = table.r_nm * _NM_TO_ANGSTROM
    e = table.u_kj_mol * _KJ_MOL_TO_KCAL_MOL
    f = table.f_kj_mol_nm * _F_TO_LAMMPS
    fprime = np.asarray(table.force_derivative(table.r_nm[[0, -1]])) * _FPRIME_TO_LAMMPS
    date = _dt.date.today().isoformat()
    lines = [
        f"# DATE: {date}  UNITS: real  CONTRIBUTOR: cgforge {__version__}",
        "# cgforge tabulated pair potential: r in Angstrom, energy in kcal/mol, "
        "force in kcal/mol/Angstrom",
        *_metadata_lines(table, provenance),
        "",
        keyword,
        f"N {len(table)} R {_fmt(r_a[0])} {_fmt(r_a[-1])} "
        f"FPRIME {_fmt(fprime[0])} {_fmt(fprime[1])}",
        "",
    ]
    lines += [
        f"{i} {_fmt(ri)} {_fmt(ei)} {_fmt(fi)}"
        for i, (ri, ei, fi) in enumerate(zip(r_a, e, f, strict=True), start=1)
    ]
    return _write_table(path, "\n".join(lines) + "\n")


def lammps_pair_commands(
    table_path: PathLike,
    potential: TabulatedPotential,
    *,
    keyword: str = "CG_CG",
    style: str = "linear",
    n_points: int | None = None,
    extend_to_nm: float | None = None,
    types: tuple[int | str, int | str] = (1, 1),
) -> str:
    """LAMMPS input lines using a table written by :func:`write_lammps` (``units real``).

    ``pair_style table <style> N`` with N defaulting to the number of rows in the file
    (no second interpolation) and ``pair_coeff i j file KEYWORD cutoff`` with the cutoff in Å.
    Pass the same ``keyword`` and ``extend_to_nm`` as to :func:`write_lammps`.
    """
    if style not in ("lookup", "linear", "spline"):
        raise InputError(f"LAMMPS table style {style!r}: use lookup, linear or spline")
    _check_keyword(keyword)
    table = _lammps_table(potential, extend_to_nm)
    n = len(table) if n_points is None else int(n_points)
    if n < 2:
        raise InputError(f"LAMMPS table needs N >= 2 interpolation points, got {n_points}")
    cutoff_a = table.r_max_nm * _NM_TO_ANGSTROM
    return (
        "# cgforge tabulated CG pair potential; requires 'units real'\n"
        f"pair_style table {style} {n}\n"
        f"pair_coeff {types[0]} {types[1]} {table_path} {keyword} {_fmt(cutoff_a)}\n"
    )


def _parse_lammps_params(tokens: list[str], where: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        key = tokens[i].upper()
        if key == "N":
            if i + 1 >= len(tokens):
                raise InputError(f"{where}: 'N' needs the number of table rows")
            try:
                params["N"] = int(tokens[i + 1])
            except ValueError as exc:
                raise InputError(f"{where}: N must be an integer, got {tokens[i + 1]!r}") from exc
            i += 2
        elif key in ("R", "RSQ", "BITMAP", "FPRIME"):
            if i + 2 >= len(tokens):
                raise InputError(f"{where}: '{tokens[i]}' needs two numbers")
            params[key] = (
                _parse_float(tokens[i + 1], where, key),
                _parse_float(tokens[i + 2], where, key),
            )
            i += 3
        else:
            raise InputError(
                f"{where}: unknown table parameter {tokens[i]!r}; expected N, R, RSQ or FPRIME"
            )
    if "N" not in params:
        raise InputError(f"{where}: the parameter line must give 'N <rows>'")
    if "BITMAP" in params:
        raise InputError(f"{where}: BITMAP tables are not supported; write the table with R")
    if "R" in params and "RSQ" in params:
        raise InputError(f"{where}: give either R or RSQ, not both")
    return params


def read_lammps(path: PathLike, *, keyword: str | None = None) -> TabulatedPotential:
    """Read one section of a LAMMPS ``pair_style table`` file in ``units real``.

    ``keyword`` selects the section (default: the first). Distances come from ``R``/``RSQ``
    when given, else from the r column; an uneven grid (RSQ or free r) is interpolated onto
    a uniform one. A ``UNITS:`` tag other than ``real`` is refused.
    """
    name = Path(path).name
    lines = _read_lines(path)
    meta: dict[str, str] = {}
    sections_seen: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        lineno = i + 1
        if not line:
            i += 1
            continue
        if line.startswith("#"):
            units = re.search(r"UNITS:\s*(\S+)", line)
            if units and units.group(1).lower() != "real":
                raise InputError(
                    f"{name} line {lineno}: table is in LAMMPS units '{units.group(1)}'; "
                    "cgforge reads 'real' tables (Å, kcal/mol)"
                )
            _collect_metadata(line, meta)
            i += 1
            continue
        section = line.split()[0]
        sections_seen.append(section)
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].lstrip().startswith("#")):
            j += 1
        if j >= len(lines):
            raise InputError(f"{name} line {lineno}: section {section} has no parameter line")
        params = _parse_lammps_params(lines[j].split(), f"{name} line {j + 1}")
        n_rows = int(params["N"])
        rows: list[tuple[float, float, float]] = []
        labels: list[str] = []
        k = j + 1
        while len(rows) < n_rows and k < len(lines):
            text = lines[k].strip()
            k += 1
            if not text or text.startswith("#"):
                continue
            where = f"{name} line {k}"
            tokens = text.split()
            if len(tokens) < 4:
                raise InputError(f"{where}: expected 'index r energy force', got {text!r}")
            if tokens[0] != str(len(rows) + 1):
                raise InputError(
                    f"{where}: row index {tokens[0]!r} where {len(rows) + 1} was expected; "
                    "rows must be numbered 1..N without gaps"
                )
            rows.append(
                (
                    _parse_float(tokens[1], where, "r"),
                    _parse_float(tokens[2], where, "energy"),
                    _parse_float(tokens[3], where, "force"),
                )
            )
            labels.append(where)
        if len(rows) < n_rows:
            raise InputError(
                f"{name}: section {section} declares N {n_rows} but has {len(rows)} rows"
            )
        if keyword is not None and section != keyword:
            i = k
            continue
        data = np.array(rows, dtype=np.float64)
        if "R" in params:
            lo, hi = params["R"]
            r_a = np.linspace(lo, hi, n_rows)
        elif "RSQ" in params:
            lo, hi = params["RSQ"]
            r_a = np.sqrt(np.linspace(lo * lo, hi * hi, n_rows))
        else:
            r_a = data[:, 0]
        r_nm = r_a * ANGSTROM_TO_NM
        u = data[:, 1] * KCAL_TO_KJ
        f = data[:, 2] / _F_TO_LAMMPS
        cutoff = _metadata_value(meta, "cutoff_nm", name)
        wall = _metadata_value(meta, "wall_below_nm", name)
        steps = np.diff(r_nm)
        uneven = steps.size > 0 and float(np.ptp(steps)) > 1.0e-3 * float(np.median(steps))
        if uneven and np.all(steps > 0):
            # RSQ or freely spaced r (allowed by LAMMPS): interpolate onto a uniform grid
            return TabulatedPotential.from_nonuniform(
                r_nm,
                u,
                force_kj_mol_nm=f,
                cutoff_nm=cutoff,
                wall_below_nm=wall,
                row_labels=labels,
            )
        return TabulatedPotential(
            r_nm,
            u,
            force_kj_mol_nm=f,
            cutoff_nm=cutoff,
            wall_below_nm=wall,
            row_labels=labels,
        )
    if keyword is None:
        raise InputError(f"{name} holds no table section; expected KEYWORD, N ... and rows")
    found = ", ".join(sections_seen) or "none"
    raise InputError(f"{name} has no section {keyword!r} (sections: {found})")


# ---------------------------------------------------------------------- GROMACS
def _gromacs_column(column: str) -> int:
    if column not in ("g", "h"):
        raise InputError(f"GROMACS column {column!r}: use 'h' (repulsion, C12) or 'g' (C6)")
    return 5 if column == "h" else 3


def write_gromacs_xvg(
    path: PathLike,
    potential: TabulatedPotential,
    *,
    spacing_nm: float = GROMACS_SPACING_NM,
    table_extension_nm: float = GROMACS_TABLE_EXTENSION_NM,
    column: str = "h",
    provenance: str | None = None,
) -> Path:
    """Write a GROMACS user table (``table_X.xvg``) with V(r) in the h (C12) column.

    r runs from 0 to cutoff + ``table_extension_nm`` in steps of ``spacing_nm``; V = 0 beyond
    the cutoff (apply :meth:`TabulatedPotential.smooth_cutoff` first so V and F reach zero
    smoothly). Below the table's first point the default repulsive wall is used. Set C6 = 0,
    C12 = 1 for the pair in the topology (or C6 = 1, C12 = 0 with ``column='g'``).
    """
    col = _gromacs_column(column)
    step = float(spacing_nm)
    extension = float(table_extension_nm)
    if not (math.isfinite(step) and step > 0):
        raise InputError(f"GROMACS table spacing must be positive, got {spacing_nm} nm")
    if not (math.isfinite(extension) and extension >= 0):
        raise InputError(f"table extension must be >= 0 nm, got {table_extension_nm}")
    full = potential if potential.r_min_nm <= 0.0 else potential.extend_repulsive(0.0)
    n = math.ceil((full.cutoff_nm + extension) / step - 1.0e-9)
    r = step * np.arange(n + 1)
    v = np.asarray(full.energy(r))
    f = np.asarray(full.force(r))
    c12, c6 = ("1", "0") if column == "h" else ("0", "1")
    lines = [
        "# cgforge tabulated pair potential, GROMACS user table (vdwtype = user)",
        "# columns: r_nm  f  -f'  g  -g'  h  -h'   (kJ/mol, kJ/mol/nm)",
        f"# V(r) is in the {column} column and F = -dV/dr in -{column}'; "
        f"set C6 = {c6}, C12 = {c12} for this pair",
        *_metadata_lines(full, provenance),
    ]
    for ri, vi, fi in zip(r, v, f, strict=True):
        cols = [0.0] * 7
        cols[0], cols[col], cols[col + 1] = ri, vi, fi
        lines.append(" ".join(f"{x:.10e}" for x in cols))
    return _write_table(path, "\n".join(lines) + "\n")


def read_gromacs_xvg(path: PathLike, *, column: str = "h") -> TabulatedPotential:
    """Read V(r) and −V′ from the h (default) or g column of a GROMACS user table.

    Leading rows where V and F are both zero (GROMACS tables often blank the core) are
    dropped. The cutoff is the ``cutoff_nm`` metadata if present, else the start of the
    trailing all-zero block, else the last r.
    """
    col = _gromacs_column(column)
    name = Path(path).name
    meta: dict[str, str] = {}
    rows: list[tuple[float, float, float]] = []
    labels: list[str] = []
    for where, tokens in _data_lines(path, meta):
        if len(tokens) != 7:
            raise InputError(
                f"{where}: {len(tokens)} columns; a GROMACS user table has 7 (r f -f' g -g' h -h')"
            )
        rows.append(
            (
                _parse_float(tokens[0], where, "r"),
                _parse_float(tokens[col], where, f"{column}(r)"),
                _parse_float(tokens[col + 1], where, f"-{column}'(r)"),
            )
        )
        labels.append(where)
    if not rows:
        raise InputError(f"{name} holds no table rows")
    data = np.array(rows, dtype=np.float64)
    nonzero = np.flatnonzero((data[:, 1] != 0.0) | (data[:, 2] != 0.0))
    if nonzero.size == 0:
        raise InputError(
            f"{name}: the {column} column is zero everywhere; the potential is in another "
            "column (try column='g' or 'h')"
        )
    first = int(nonzero[0])
    data = data[first:]
    labels = labels[first:]
    cutoff = _metadata_value(meta, "cutoff_nm", name)
    if cutoff is None:
        last = int(nonzero[-1]) - first
        cutoff = float(data[min(last + 1, len(data) - 1), 0])
    return TabulatedPotential(
        data[:, 0],
        data[:, 1],
        force_kj_mol_nm=data[:, 2],
        cutoff_nm=cutoff,
        wall_below_nm=_metadata_value(meta, "wall_below_nm", name),
        row_labels=labels,
    )


# ---------------------------------------------------------------------- VOTCA
def write_votca(
    path: PathLike,
    potential: TabulatedPotential,
    *,
    with_force: bool = False,
    provenance: str | None = None,
) -> Path:
    """Write a VOTCA table ``r U flag`` (or ``r U F flag``) in nm, kJ/mol, kJ/mol/nm.

    Rows below ``wall_below_nm`` (the repulsive-wall extension) are flagged ``o``, the rest
    ``i``. Only rows up to the cutoff are written.
    """
    table = potential.truncate()
    columns = "r_nm U_kJ_mol F_kJ_mol_nm flag" if with_force else "r_nm U_kJ_mol flag"
    lines = [
        "# cgforge tabulated pair potential (VOTCA table)",
        f"# columns: {columns}",
        "# flags: i = in range (data), o = out of range (repulsive wall), u = undefined",
        *_metadata_lines(table, provenance),
    ]
    wall = table.wall_below_nm
    for r, u, f in zip(table.r_nm, table.u_kj_mol, table.f_kj_mol_nm, strict=True):
        flag = "o" if wall is not None and r < wall - 1e-9 else "i"
        middle = f"{u:.10e} {f:.10e}" if with_force else f"{u:.10e}"
        lines.append(f"{r:.10e} {middle} {flag}")
    return _write_table(path, "\n".join(lines) + "\n")


def read_votca(path: PathLike, *, force_column: bool | None = None) -> TabulatedPotential:
    """Read a VOTCA table: rows ``r U``, ``r U flag``, ``r U X`` or ``r U X flag``.

    The third number X is read as the force F only when ``force_column`` is True or, by
    default, when a ``# columns: r_nm U_kJ_mol F_kJ_mol_nm flag`` comment says so (VOTCA's
    own four-column tables carry an error estimate there); otherwise it is ignored and F is
    derived from U. Leading ``u`` rows are dropped; a ``u`` row later on is
    an error. Leading ``o`` rows mark a wall extension (``wall_below_nm``).
    """
    name = Path(path).name
    meta: dict[str, str] = {}
    rows: list[tuple[float, float, float, str]] = []
    labels: list[str] = []
    width: int | None = None
    for where, tokens in _data_lines(path, meta):
        if len(tokens) == 1 and not rows:
            continue  # optional row count, as VOTCA allows
        flag = "i"
        if tokens[-1] in _VOTCA_FLAGS:
            flag = tokens.pop()
        if width is None:
            width = len(tokens)
        if len(tokens) not in (2, 3) or len(tokens) != width:
            raise InputError(
                f"{where}: expected 'r U flag' or 'r U F flag' like the rows before, got {' '.join(tokens)!r}"
            )
        force = _parse_float(tokens[2], where, "F") if len(tokens) == 3 else math.nan
        rows.append(
            (_parse_float(tokens[0], where, "r"), _parse_float(tokens[1], where, "U"), force, flag)
        )
        labels.append(where)
    if not rows:
        raise InputError(f"{name} holds no table rows")
    declared = meta.get("columns", "").split()
    wants_force = "F_kJ_mol_nm" in declared if force_column is None else force_column
    use_force = width == 3 and wants_force
    flags = [row[3] for row in rows]
    first = next((i for i, flag in enumerate(flags) if flag != "u"), None)
    if first is None:
        raise InputError(f"{name}: every row is flagged 'u' (undefined); no potential to read")
    undefined = [i for i in range(first, len(flags)) if flags[i] == "u"]
    if undefined:
        raise InputError(
            f"{labels[undefined[0]]}: row flagged 'u' (undefined) inside the table; fill it "
            "or cut the table before it"
        )
    data = np.array([row[:3] for row in rows[first:]], dtype=np.float64)
    wall = _metadata_value(meta, "wall_below_nm", name)
    if wall is None and flags[first] == "o":
        inside = next((i for i in range(first, len(flags)) if flags[i] == "i"), None)
        if inside is not None:
            wall = float(rows[inside][0])
    return TabulatedPotential(
        data[:, 0],
        data[:, 1],
        force_kj_mol_nm=data[:, 2] if use_force else None,
        cutoff_nm=_metadata_value(meta, "cutoff_nm", name),
        wall_below_nm=wall,
        row_labels=labels[first:],
    )


# ---------------------------------------------------------------------- registry
@dataclass(frozen=True)
class TableFormat:
    """A table file format: its name, file suffixes, reader and writer."""

    name: str
    suffixes: tuple[str, ...]
    read: Callable[..., TabulatedPotential]
    write: Callable[..., Path]
    description: str


#: Registered formats by name.
FORMATS: dict[str, TableFormat] = {}


def register_format(fmt: TableFormat) -> None:
    """Add (or replace) a format in the registry."""
    FORMATS[fmt.name] = fmt


def available_formats() -> list[str]:
    """Names of the registered formats."""
    return sorted(FORMATS)


def get_format(name: str) -> TableFormat:
    """The registered format ``name``; InputError listing the choices otherwise."""
    try:
        return FORMATS[name.lower()]
    except KeyError:
        raise InputError(
            f"unknown potential table format {name!r}; choose one of "
            f"{', '.join(available_formats())}"
        ) from None


def guess_format(path: PathLike) -> TableFormat:
    """The format whose suffix matches ``path`` (e.g. ``.csv``, ``.table``, ``.xvg``)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    for fmt in FORMATS.values():
        if suffixes and suffixes[-1] in fmt.suffixes:
            return fmt
    for fmt in FORMATS.values():
        if any(s in fmt.suffixes for s in suffixes):
            return fmt
    known = ", ".join(f"{f.name} ({' '.join(f.suffixes)})" for f in FORMATS.values())
    raise InputError(f"cannot tell the table format of {path} from its suffix; name it: {known}")


def read_potential(path: PathLike, fmt: str | None = None, **options: Any) -> TabulatedPotential:
    """Read a potential table, format by name or guessed from the suffix."""
    table_format = guess_format(path) if fmt is None else get_format(fmt)
    return table_format.read(path, **options)


def write_potential(
    path: PathLike, potential: TabulatedPotential, fmt: str | None = None, **options: Any
) -> Path:
    """Write a potential table atomically, format by name or guessed from the suffix."""
    table_format = guess_format(path) if fmt is None else get_format(fmt)
    return table_format.write(path, potential, **options)


register_format(
    TableFormat("csv", (".csv",), read_csv, write_csv, "r_nm,U_kJ_mol,F_kJ_mol_nm with metadata")
)
register_format(
    TableFormat(
        "lammps",
        (".table", ".lammps"),
        read_lammps,
        write_lammps,
        "LAMMPS pair_style table file, units real (Å, kcal/mol)",
    )
)
register_format(
    TableFormat(
        "gromacs",
        (".xvg",),
        read_gromacs_xvg,
        write_gromacs_xvg,
        "GROMACS user table (V in the h/C12 column), nm and kJ/mol",
    )
)
register_format(
    TableFormat(
        "votca",
        (".pot", ".votca"),
        read_votca,
        write_votca,
        "VOTCA table r U [F] flag, nm and kJ/mol",
    )
)
