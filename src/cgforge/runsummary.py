"""Run summaries: reading a run directory's ``summary.json``, and the all-atom reference it holds.

Every cgforge run writes ``summary.json`` last (:mod:`cgforge.rundir`); it marks a finished run
and holds the run's results as one JSON object. :func:`read_summary` reads it with one-line
:class:`~cgforge.errors.InputError`\\ s for a missing directory, a missing summary (naming the
command that makes it), a file that is not JSON or not an object, and missing required keys.
:func:`read_json_object` is the same check for any other JSON file of a run.

:class:`ReferenceSummary` is the typed all-atom reference of a summary (``cgforge aa`` and
``cgforge analyze`` write one, and so does every one-bead CG run): molecule, molecule count,
temperature, density, diffusion coefficient, bead mass, box and pressure, checked as
:meth:`ReferenceSummary.from_dir` reads them. :class:`cgforge.workflows.cg.AAReference` adds the
reference's RDF to it.

Summaries carry no format version of their own (a shipped reference's ``reference.format`` is
checked where shipped references are resolved, :mod:`cgforge.workflows.references`).

Units: temperature K, density g/cm³, D m²/s, mass amu, box nm, pressure bar.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

import numpy as np

from cgforge.errors import InputError
from cgforge.geometry import box_edges
from cgforge.units import AMU_NM3_TO_G_CM3

#: File name of a run's summary.
SUMMARY = "summary.json"
#: Keys an all-atom reference ``summary.json`` must hold.
REFERENCE_KEYS = (
    "molecule",
    "n_molecules",
    "temperature_K",
    "density_g_cm3",
    "diffusion_m2_s",
    "diffusion_err_m2_s",
    "bead_mass_amu",
    "box_nm",
    "pressure_bar",
)
#: Optional keys of a reference summary: read as a finite number, else the default.
_OPTIONAL_ERRORS = ("density_err_g_cm3", "pressure_err_bar")
_TARGET_PRESSURE = "pressure_target_bar"
#: What a reference summary lacking a key should do.
_REFERENCE_HINT = "rerun 'cgforge aa', or 'cgforge analyze' with the temperature"


# ====================================================================== reading
def read_json_object(path: str | Path, *, fix: str) -> dict[str, Any]:
    """The JSON object in ``path`` (which must exist), else an InputError that ends in ``fix``
    (``"rerun the all-atom run"``): the file is not JSON, or holds something else."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); {fix}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} does not hold a JSON object; {fix}")
    return data


def read_summary(
    run_dir: str | Path,
    *,
    what: str = "run",
    command: str | None = None,
    required: Iterable[str] = (),
    hint: str | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` of the finished run in ``run_dir``, as a dict.

    ``what`` names the run for the messages (``"all-atom run"``), ``command`` the command that
    makes it (``"'cgforge aa'"``), ``required`` the keys it must hold (not null) and ``hint``
    what to do when it lacks one. Raises InputError, one line each, when the directory does not
    exist, the summary is missing (an unfinished run: rerunning ``command`` into the same
    directory finishes it), is not valid JSON, is not a JSON object or lacks a required key.
    """
    run_dir = Path(run_dir)
    path = run_dir / SUMMARY
    maker = command or "the command that made it"
    if not run_dir.is_dir():
        raise InputError(
            f"{what} directory {run_dir} not found; give the output directory of {maker}"
        )
    if not path.is_file():
        raise InputError(
            f"{path} is missing: {run_dir} is not a finished {what} (rerun {maker} into the same "
            "directory to finish it)"
        )
    summary = read_json_object(path, fix=f"rerun the {what}")
    missing = [key for key in required if summary.get(key) is None]
    if missing:
        raise InputError(
            f"{path} lacks {', '.join(missing)}; it is not a cgforge {what} summary"
            + (f" ({hint})" if hint else "")
        )
    return summary


def _number_or(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _optional_number(value: Any) -> float | None:
    number = _number_or(value, math.nan)
    return number if math.isfinite(number) else None


# ====================================================================== the reference
@dataclass(frozen=True, kw_only=True)
class ReferenceSummary:
    """The all-atom reference of a run's ``summary.json``, checked and typed.

    Units: temperature K, density g/cm³, D m²/s, mass amu, box nm, pressure bar.
    ``density_err_g_cm3`` and ``pressure_err_bar`` are 0 where the summary gives no finite
    value; ``pressure_target_bar`` (the barostat pressure of the run's NPT stage) is None where
    it gives none. ``extra`` holds every other key of the summary, unchanged (read-only).
    ``path`` is the directory it was read from (None when built in memory); it does not take
    part in comparisons, so a summary written elsewhere and read back compares equal.
    """

    molecule: str
    n_molecules: int
    temperature_K: float
    density_g_cm3: float
    diffusion_m2_s: float
    diffusion_err_m2_s: float
    bead_mass_amu: float
    box_edges_nm: tuple[float, float, float]
    pressure_bar: float
    density_err_g_cm3: float = 0.0
    pressure_err_bar: float = 0.0
    pressure_target_bar: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dir(cls, path: str | Path) -> Self:
        """Read and check the summary of the reference run in directory ``path``.

        Raises InputError naming the missing directory, file or key, a file that is not a
        JSON object, a non-numeric or non-finite value, a non-positive temperature, density,
        bead mass or molecule count, or a box that is not one or three positive lengths.
        """
        path = Path(path)
        summary = read_summary(
            path,
            what="reference run",
            command="'cgforge aa'",
            required=REFERENCE_KEYS,
            hint=_REFERENCE_HINT,
        )
        return cls.from_summary(summary, source=path / SUMMARY, path=path.resolve())

    @classmethod
    def from_summary(
        cls, summary: Mapping[str, Any], *, source: str | Path = SUMMARY, path: Path | None = None
    ) -> Self:
        """Check the reference fields of a summary already read; ``source`` names it in the
        messages (as :meth:`from_dir`'s)."""
        missing = [key for key in REFERENCE_KEYS if summary.get(key) is None]
        if missing:
            raise InputError(
                f"{source} lacks {', '.join(missing)}; it is not a cgforge reference run summary "
                f"({_REFERENCE_HINT})"
            )
        for key in REFERENCE_KEYS:
            if key in ("molecule", "box_nm"):
                continue
            if not math.isfinite(_number_or(summary[key], math.nan)):
                raise InputError(f"{source}: {key} = {summary[key]!r} is not a finite number")
        for key in ("temperature_K", "density_g_cm3", "bead_mass_amu", "n_molecules"):
            if float(summary[key]) <= 0:
                raise InputError(f"{source}: {key} = {summary[key]!r} must be positive")
        box = box_edges(summary["box_nm"])
        typed = {*REFERENCE_KEYS, *_OPTIONAL_ERRORS, _TARGET_PRESSURE}
        return cls(
            molecule=str(summary["molecule"]),
            n_molecules=int(summary["n_molecules"]),
            temperature_K=float(summary["temperature_K"]),
            density_g_cm3=float(summary["density_g_cm3"]),
            diffusion_m2_s=float(summary["diffusion_m2_s"]),
            diffusion_err_m2_s=float(summary["diffusion_err_m2_s"]),
            bead_mass_amu=float(summary["bead_mass_amu"]),
            box_edges_nm=(float(box[0]), float(box[1]), float(box[2])),
            pressure_bar=float(summary["pressure_bar"]),
            density_err_g_cm3=_number_or(summary.get("density_err_g_cm3"), 0.0),
            pressure_err_bar=_number_or(summary.get("pressure_err_bar"), 0.0),
            pressure_target_bar=_optional_number(summary.get(_TARGET_PRESSURE)),
            extra={key: value for key, value in summary.items() if key not in typed},
            path=path,
        )

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict: the typed fields under their summary keys
        (``box_nm`` as three edges), then ``extra``. :meth:`from_summary` reads it back equal."""
        data: dict[str, Any] = {
            "molecule": self.molecule,
            "n_molecules": self.n_molecules,
            "temperature_K": self.temperature_K,
            "density_g_cm3": self.density_g_cm3,
            "density_err_g_cm3": self.density_err_g_cm3,
            "diffusion_m2_s": self.diffusion_m2_s,
            "diffusion_err_m2_s": self.diffusion_err_m2_s,
            "bead_mass_amu": self.bead_mass_amu,
            "box_nm": list(self.box_edges_nm),
            "pressure_bar": self.pressure_bar,
            "pressure_err_bar": self.pressure_err_bar,
        }
        if self.pressure_target_bar is not None:
            data[_TARGET_PRESSURE] = self.pressure_target_bar
        data.update(self.extra)
        return data

    def to_json(self) -> str:
        """:meth:`to_dict` as the text of a ``summary.json`` (as :func:`cgforge.fileio.write_json`
        writes it)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def reference_fields(self) -> dict[str, Any]:
        """The dataclass fields of this summary by name (to build a subclass from it)."""
        return {f.name: getattr(self, f.name) for f in fields(ReferenceSummary)}

    # ------------------------------------------------------------------ derived
    @property
    def box_nm(self) -> np.ndarray:
        """Box edges (3,) in nm."""
        return np.array(self.box_edges_nm, dtype=np.float64)

    @property
    def barostat_pressure_bar(self) -> float:
        """Pressure of the reference's NPT stage (``pressure_target_bar``), else the mean."""
        return self.pressure_bar if self.pressure_target_bar is None else self.pressure_target_bar

    @property
    def number_density_nm3(self) -> float:
        """Molecules per nm³ from the density and the bead mass."""
        return self.density_g_cm3 / (self.bead_mass_amu * AMU_NM3_TO_G_CM3)
