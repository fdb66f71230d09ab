"""Fixed learning grids of the database: every RDF and potential as a vector of one length.

Machine-learning models read the target g(r) and the CG pair potential U(r) of every database
entry on the *same* distance grids, kept in the database metadata (:meth:`LearningGrids.to_dict`).

Default grids (nm):

* RDF: bin centres 0.005, 0.015, …, 1.495 (150 points, bins of 0.01 nm from 0 to 1.5 nm).
* potential: 0.20, 0.205, …, 1.40 (241 points, step 0.005 nm). Below 0.2 nm one-bead
  hydrocarbon potentials are a steep wall that carries no learnable information; 1.4 nm
  covers the usual CG cutoffs of 1.0–1.4 nm.

Behaviour outside the data (both functions return float64 vectors of the grid's length):

* :func:`resample_rdf` interpolates g linearly between the data's r points, sets g = 0 below
  the first data point (the excluded core) and g = 1 beyond the last one (the ideal-gas limit),
  and reports which grid points were filled that way (``beyond_data``).
* :func:`resample_potential` evaluates U with :meth:`TabulatedPotential.energy` (its
  interpolant) up to the table's cutoff and gives 0 beyond it; below the table's first point
  it uses the table's repulsive wall (:meth:`TabulatedPotential.extend_repulsive`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from cgforge.errors import InputError
from cgforge.potentials.table import TabulatedPotential

__all__ = [
    "DEFAULT_POTENTIAL_R_NM",
    "DEFAULT_RDF_R_NM",
    "LearningGrids",
    "ResampledRDF",
    "resample_potential",
    "resample_rdf",
    "uniform_grid",
]


def uniform_grid(start_nm: float, stop_nm: float, step_nm: float) -> NDArray[np.float64]:
    """Points ``start, start + step, …, stop`` (both ends included; stop − start a whole
    number of steps within 1e-6 of a step)."""
    values = (float(start_nm), float(stop_nm), float(step_nm))
    if not all(math.isfinite(v) for v in values) or values[2] <= 0 or values[1] <= values[0]:
        raise InputError(
            f"grid from {start_nm} to {stop_nm} nm with step {step_nm} nm needs finite numbers, "
            "start < stop and a positive step"
        )
    n = (values[1] - values[0]) / values[2]
    if abs(n - round(n)) > 1e-6:
        raise InputError(
            f"grid from {start_nm} to {stop_nm} nm is not a whole number of {step_nm} nm steps"
        )
    return np.linspace(values[0], values[1], round(n) + 1)


#: Default RDF grid: bin centres of 0.01 nm bins from 0 to 1.5 nm (150 points).
DEFAULT_RDF_R_NM = uniform_grid(0.005, 1.495, 0.01)
#: Default potential grid: 0.2 to 1.4 nm in steps of 0.005 nm (241 points).
DEFAULT_POTENTIAL_R_NM = uniform_grid(0.2, 1.4, 0.005)


def _check_grid(values: Any, name: str) -> NDArray[np.float64]:
    try:
        grid = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a sequence of distances in nm ({exc})") from exc
    if grid.ndim != 1 or grid.size < 2:
        raise InputError(f"{name} must be a one-dimensional grid of at least 2 distances (nm)")
    if not np.all(np.isfinite(grid)) or grid[0] < 0:
        raise InputError(f"{name} must hold finite, non-negative distances (nm)")
    if np.any(np.diff(grid) <= 0):
        raise InputError(f"{name} must increase strictly")
    grid.setflags(write=False)
    return grid


@dataclass(frozen=True, eq=False)
class LearningGrids:
    """The fixed distance grids (nm) on which RDFs and potentials enter the database.

    ``rdf_r_nm`` and ``potential_r_nm`` are strictly increasing, non-negative, read-only
    float64 arrays (any spacing; the defaults are uniform, see the module docstring).
    """

    rdf_r_nm: NDArray[np.float64] = field(default_factory=lambda: DEFAULT_RDF_R_NM.copy())
    potential_r_nm: NDArray[np.float64] = field(
        default_factory=lambda: DEFAULT_POTENTIAL_R_NM.copy()
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "rdf_r_nm", _check_grid(self.rdf_r_nm, "rdf_r_nm"))
        object.__setattr__(
            self, "potential_r_nm", _check_grid(self.potential_r_nm, "potential_r_nm")
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LearningGrids):
            return NotImplemented
        return bool(
            np.array_equal(self.rdf_r_nm, other.rdf_r_nm)
            and np.array_equal(self.potential_r_nm, other.potential_r_nm)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def n_rdf(self) -> int:
        """Length of an RDF feature vector."""
        return int(self.rdf_r_nm.size)

    @property
    def n_potential(self) -> int:
        """Length of a potential vector."""
        return int(self.potential_r_nm.size)

    def to_dict(self) -> dict[str, list[float]]:
        """Plain-data form for metadata: ``{"rdf_r_nm": [...], "potential_r_nm": [...]}`` (nm)."""
        return {"rdf_r_nm": self.rdf_r_nm.tolist(), "potential_r_nm": self.potential_r_nm.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LearningGrids:
        """Inverse of :meth:`to_dict`; both keys are required."""
        missing = [k for k in ("rdf_r_nm", "potential_r_nm") if k not in data]
        if missing:
            raise InputError(
                f"learning grids lack {', '.join(missing)}; the metadata needs rdf_r_nm and "
                "potential_r_nm (distances in nm)"
            )
        return cls(rdf_r_nm=data["rdf_r_nm"], potential_r_nm=data["potential_r_nm"])


class ResampledRDF(NamedTuple):
    """g on the learning grid and a mask of grid points beyond the data (set to g = 1)."""

    g: NDArray[np.float64]
    beyond_data: NDArray[np.bool_]

    @property
    def extended(self) -> bool:
        """True when some grid points lie beyond the data's last r and were set to 1."""
        return bool(self.beyond_data.any())


def _rdf_columns(rdf: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if hasattr(rdf, "r_nm") and hasattr(rdf, "g"):
        r_raw, g_raw = rdf.r_nm, rdf.g
    else:
        try:
            r_raw, g_raw = rdf
        except (TypeError, ValueError) as exc:
            raise InputError(
                "an RDF must be an RDFResult or a pair (r_nm, g) of equal-length arrays"
            ) from exc
    r = np.asarray(r_raw, dtype=np.float64)
    g = np.asarray(g_raw, dtype=np.float64)
    if r.ndim != 1 or r.shape != g.shape or r.size < 1:
        raise InputError(
            f"RDF columns r_nm and g must be one-dimensional and of equal length, got "
            f"{r.shape} and {g.shape}"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(g))):
        raise InputError("RDF r_nm and g must be finite numbers")
    if np.any(np.diff(r) <= 0):
        raise InputError("RDF r_nm must increase strictly")
    return r, g


def resample_rdf(rdf: Any, grids: LearningGrids | None = None) -> ResampledRDF:
    """g(r) of ``rdf`` (an :class:`~cgforge.observables.rdf.RDFResult` or a pair ``(r_nm, g)``)
    on ``grids.rdf_r_nm``.

    Linear interpolation between data points; g = 0 below the first data r, g = 1 beyond the
    last (flagged in ``beyond_data``). Returns a float64 vector of length ``grids.n_rdf``.
    """
    grids = LearningGrids() if grids is None else grids
    r, g = _rdf_columns(rdf)
    x = grids.rdf_r_nm
    tol = 1e-9 * max(1.0, float(r[-1]))
    below = x < r[0] - tol
    beyond = x > r[-1] + tol
    out = np.interp(x, r, g)
    out[below] = 0.0
    out[beyond] = 1.0
    return ResampledRDF(g=out.astype(np.float64), beyond_data=beyond)


def resample_potential(
    potential: TabulatedPotential, grids: LearningGrids | None = None
) -> NDArray[np.float64]:
    """U(r) in kJ/mol of a tabulated potential on ``grids.potential_r_nm``.

    The table's interpolant up to its cutoff, 0 beyond it, and below its first point the
    repulsive wall of :meth:`TabulatedPotential.extend_repulsive` (default exponent and cap)
    matched at that point. Returns a float64 vector of length ``grids.n_potential``.
    """
    grids = LearningGrids() if grids is None else grids
    if not isinstance(potential, TabulatedPotential):
        raise InputError(
            f"resample_potential needs a TabulatedPotential, got {type(potential).__name__}"
        )
    x = grids.potential_r_nm
    table = potential
    if float(x[0]) < table.r_min_nm:
        try:
            table = table.extend_repulsive(float(x[0]))
        except InputError as exc:
            raise InputError(
                f"the potential starts at {potential.r_min_nm:.6g} nm, above the learning grid's "
                f"{x[0]:.6g} nm, and cannot be continued by a repulsive wall: {exc}"
            ) from exc
    return np.asarray(table.energy(x), dtype=np.float64)
