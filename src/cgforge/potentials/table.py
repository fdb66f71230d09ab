"""Tabulated pair potentials U(r) for one-bead coarse-grained models.

A :class:`TabulatedPotential` holds U(r) in kJ/mol and the scalar force F(r) = −dU/dr in
kJ/mol/nm on a **uniform** grid of pair distances r in nm, ending at or beyond a cutoff.
Between grid points both are evaluated from one piecewise-cubic Hermite interpolant of U
whose node slopes are −F, so the force is *exactly* minus the derivative of the energy
everywhere (not only at the nodes). When no forces are given they are taken from a
not-a-knot cubic spline of U; the interpolant is then that spline.

Grid policy: the constructor accepts only evenly spaced, strictly increasing r (up to a
relative spacing error of 1e-3, from finite precision in files; the grid is then snapped to
exact even spacing). IBI works on uniform grids and OpenMM's ``Continuous1DFunction``,
GROMACS and LAMMPS ``R`` tables need one. Data on an uneven grid go through
:meth:`TabulatedPotential.from_nonuniform`, which interpolates them onto a uniform grid.

Range policy: :meth:`~TabulatedPotential.energy` and :meth:`~TabulatedPotential.force` are
zero beyond the cutoff (a truncated potential: use :meth:`~TabulatedPotential.smooth_cutoff`
to make U and F go to zero continuously) and refuse distances below the first grid point
(use :meth:`~TabulatedPotential.extend_repulsive` to add a short-range wall).

Objects are immutable: every operation returns a new table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import CubicHermiteSpline, CubicSpline
from scipy.signal import savgol_filter

from cgforge.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import openmm

#: Smallest number of grid points a table may have.
MIN_POINTS = 4
#: Allowed relative deviation of a grid spacing from the table's spacing.
SPACING_RTOL = 1.0e-3
#: A spacing this many times the table's spacing is reported as a gap (missing rows).
GAP_FACTOR = 1.5
#: Default energy (kJ/mol) at which the repulsive wall of extend_repulsive stops steepening.
DEFAULT_WALL_CAP_KJ_MOL = 1.0e4

FloatOrArray = float | NDArray[np.float64]


def _labeller(labels: Sequence[str] | None) -> Callable[[int], str]:
    """Row names for error messages: given labels (e.g. file lines) or 1-based rows."""
    if labels is None:
        return lambda i: f"row {i + 1}"
    return lambda i: labels[i] if 0 <= i < len(labels) else f"row {i + 1}"


def _check_rows(
    r: NDArray[np.float64],
    u: NDArray[np.float64],
    f: NDArray[np.float64] | None,
    labels: Sequence[str] | None,
    *,
    uniform: bool,
) -> None:
    """Validate table columns; raise InputError naming the first bad row."""
    name = _labeller(labels)
    if r.ndim != 1 or u.ndim != 1:
        raise InputError("r and U must be one-dimensional columns of a table")
    if r.size == 0:
        raise InputError("the potential table is empty; give at least 4 rows of r, U")
    if u.size != r.size or (f is not None and f.size != r.size):
        sizes = f"{r.size} r, {u.size} U" + ("" if f is None else f", {f.size} F")
        raise InputError(f"table columns differ in length ({sizes}); give one value per row")
    for column, what in ((r, "r"), (u, "U"), (f, "F")):
        if column is None:
            continue
        bad = np.flatnonzero(~np.isfinite(column))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"{name(i)}: {what} = {column[i]} is not a finite number; remove or fill the row "
                "(leading rows where g(r) = 0 can be dropped with TabulatedPotential.from_partial)"
            )
    if r.size < MIN_POINTS:
        raise InputError(f"the potential table has {r.size} rows; at least {MIN_POINTS} are needed")
    if r[0] < 0.0:
        raise InputError(f"{name(0)}: r = {r[0]:.6g} nm is negative; distances start at r >= 0")
    diffs = np.diff(r)
    bad = np.flatnonzero(diffs <= 0.0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(
            f"{name(i)}: r = {r[i]:.8g} nm does not increase after {r[i - 1]:.8g} nm; "
            "sort the table by r and remove duplicate distances"
        )
    if not uniform:
        return
    dr = float(np.median(diffs))
    gaps = np.flatnonzero(diffs > GAP_FACTOR * dr)
    if gaps.size:
        i = int(gaps[0])
        raise InputError(
            f"gap in the table between {name(i)} (r = {r[i]:.8g} nm) and {name(i + 1)} "
            f"(r = {r[i + 1]:.8g} nm): spacing {diffs[i]:.6g} nm where the table uses "
            f"{dr:.6g} nm; fill the missing rows or use TabulatedPotential.from_nonuniform"
        )
    uneven = np.flatnonzero(np.abs(diffs - dr) > SPACING_RTOL * dr)
    if uneven.size:
        i = int(uneven[0]) + 1
        raise InputError(
            f"{name(i)}: r = {r[i]:.8g} nm breaks the even spacing of {dr:.6g} nm; "
            "resample onto a uniform grid with TabulatedPotential.from_nonuniform"
        )
    exact = np.linspace(r[0], r[-1], r.size)
    drift = np.abs(r - exact)
    worst = int(np.argmax(drift))
    if drift[worst] > SPACING_RTOL * dr:
        raise InputError(
            f"{name(worst)}: r = {r[worst]:.8g} nm drifts {drift[worst]:.3g} nm off an even "
            "grid; resample with TabulatedPotential.from_nonuniform"
        )


def _as_array(values: ArrayLike, what: str) -> NDArray[np.float64]:
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must be a sequence of numbers ({exc})") from exc
    return np.atleast_1d(arr)


def _uniform_grid(start: float, stop: float, dr_max: float) -> NDArray[np.float64]:
    """Uniform grid from start to stop (both included) with spacing at most dr_max."""
    n_int = max(math.ceil((stop - start) / dr_max - 1.0e-6), MIN_POINTS - 1)
    return np.linspace(start, stop, n_int + 1)


def _on_grid(value: float, r0: float, dr: float) -> int | None:
    """Index of the grid point at value, or None if value is not on the grid."""
    k = (value - r0) / dr
    nearest = round(k)
    return int(nearest) if abs(k - nearest) < 1.0e-6 else None


def _smoothstep(x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Quintic switch S(x) = 1 − 10x³ + 15x⁴ − 6x⁵ on [0, 1] and dS/dx (S', S'' vanish at ends)."""
    x = np.clip(x, 0.0, 1.0)
    s = 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)
    ds = -30.0 * x**2 * (1.0 - x) ** 2
    return s, ds


@dataclass(frozen=True)
class OpenMMTable:
    """Arguments for ``openmm.Continuous1DFunction`` holding a pair potential.

    ``values`` are U in kJ/mol at ``len(values)`` evenly spaced r from ``min_nm`` (0) to
    ``max_nm`` (the cutoff), with U(max_nm) = 0. OpenMM interpolates them with a natural cubic
    spline and treats the function as zero outside [min_nm, max_nm]; the table starts at r = 0
    so that overlapping beads feel the repulsive wall. ``energy_shift_kj_mol`` was added to
    every value to make U(cutoff) = 0 (zero after :meth:`TabulatedPotential.smooth_cutoff`).
    Use it as ``CustomNonbondedForce(table.expression)`` with
    ``addTabulatedFunction(table.function_name, table.continuous1d())`` and a cutoff of
    ``max_nm`` and no switching function.
    """

    values: tuple[float, ...]
    min_nm: float
    max_nm: float
    energy_shift_kj_mol: float
    function_name: str = "U_cg"

    @property
    def expression(self) -> str:
        """Energy expression for ``openmm.CustomNonbondedForce``, e.g. ``'U_cg(r)'``."""
        return f"{self.function_name}(r)"

    @property
    def spacing_nm(self) -> float:
        """Grid spacing of ``values`` in nm."""
        return (self.max_nm - self.min_nm) / (len(self.values) - 1)

    def args(self) -> tuple[list[float], float, float]:
        """``(values, min, max)`` as positional arguments of ``Continuous1DFunction``."""
        return list(self.values), self.min_nm, self.max_nm

    def continuous1d(self) -> openmm.Continuous1DFunction:
        """Build the ``openmm.Continuous1DFunction`` (non-periodic)."""
        import openmm

        return openmm.Continuous1DFunction(*self.args(), False)


class TabulatedPotential:
    """An immutable pair potential U(r) on a uniform grid, with its force F = −dU/dr.

    Parameters
    ----------
    r_nm:
        Pair distances in nm: at least 4, non-negative, strictly increasing, evenly spaced.
    u_kj_mol:
        Energies in kJ/mol, finite, one per distance.
    cutoff_nm:
        Distance in nm beyond which the potential is zero; default: the last grid point.
        Must lie inside the grid (r[0] < cutoff <= r[-1]).
    force_kj_mol_nm:
        Scalar forces −dU/dr in kJ/mol/nm at the grid points (positive = repulsive). If
        given they set the slopes of the Hermite interpolant of U; if omitted they are
        derived from a cubic spline of U.
    wall_below_nm:
        Distance in nm below which the values are a repulsive wall added by
        :meth:`extend_repulsive` rather than data (None when the table has no such wall).
    row_labels:
        Names of the rows used in error messages (file readers pass e.g. ``"pot.csv line 7"``).

    Raises
    ------
    InputError
        Empty or short table, non-finite values, r not increasing, a gap or uneven spacing;
        the message names the first bad row.
    """

    __slots__ = ("_cutoff", "_f", "_r", "_spline", "_u", "_wall_below")

    def __init__(
        self,
        r_nm: ArrayLike,
        u_kj_mol: ArrayLike,
        *,
        cutoff_nm: float | None = None,
        force_kj_mol_nm: ArrayLike | None = None,
        wall_below_nm: float | None = None,
        row_labels: Sequence[str] | None = None,
    ) -> None:
        r = _as_array(r_nm, "r_nm")
        u = _as_array(u_kj_mol, "u_kj_mol")
        f = None if force_kj_mol_nm is None else _as_array(force_kj_mol_nm, "force_kj_mol_nm")
        _check_rows(r, u, f, row_labels, uniform=True)
        r = np.linspace(r[0], r[-1], r.size)  # snap to exact even spacing
        dr = float(r[1] - r[0])
        if cutoff_nm is None:
            cutoff = float(r[-1])
        else:
            cutoff = float(cutoff_nm)
            if not math.isfinite(cutoff) or not r[0] < cutoff <= r[-1] + SPACING_RTOL * dr:
                raise InputError(
                    f"cutoff {cutoff_nm} nm lies outside the table ({r[0]:.6g} to "
                    f"{r[-1]:.6g} nm); choose a cutoff inside the tabulated range"
                )
            cutoff = min(cutoff, float(r[-1]))
        if wall_below_nm is not None and not (
            math.isfinite(wall_below_nm) and r[0] <= wall_below_nm <= r[-1]
        ):
            raise InputError(
                f"wall_below_nm = {wall_below_nm} nm lies outside the table "
                f"({r[0]:.6g} to {r[-1]:.6g} nm)"
            )
        if f is None:
            f = -CubicSpline(r, u, bc_type="not-a-knot")(r, 1)
        for arr in (r, u, f):
            arr.setflags(write=False)
        self._r = r
        self._u = u
        self._f = np.asarray(f, dtype=np.float64)
        self._f.setflags(write=False)
        self._cutoff = cutoff
        self._wall_below = None if wall_below_nm is None else float(wall_below_nm)
        self._spline = CubicHermiteSpline(r, u, -self._f)

    # ------------------------------------------------------------------ properties
    @property
    def r_nm(self) -> NDArray[np.float64]:
        """Grid distances in nm (read-only array)."""
        return self._r

    @property
    def u_kj_mol(self) -> NDArray[np.float64]:
        """Energies at the grid points in kJ/mol (read-only array)."""
        return self._u

    @property
    def f_kj_mol_nm(self) -> NDArray[np.float64]:
        """Forces −dU/dr at the grid points in kJ/mol/nm (read-only array)."""
        return self._f

    @property
    def cutoff_nm(self) -> float:
        """Cutoff in nm; U = F = 0 beyond it."""
        return self._cutoff

    @property
    def dr_nm(self) -> float:
        """Grid spacing in nm."""
        return float(self._r[1] - self._r[0])

    @property
    def r_min_nm(self) -> float:
        """First grid distance in nm (the table is undefined below it)."""
        return float(self._r[0])

    @property
    def r_max_nm(self) -> float:
        """Last grid distance in nm."""
        return float(self._r[-1])

    @property
    def wall_below_nm(self) -> float | None:
        """Distance below which values come from :meth:`extend_repulsive`, or None."""
        return self._wall_below

    def __len__(self) -> int:
        return int(self._r.size)

    def __repr__(self) -> str:
        return (
            f"TabulatedPotential({len(self)} points, r = {self.r_min_nm:.4g}..{self.r_max_nm:.4g}"
            f" nm, dr = {self.dr_nm:.4g} nm, cutoff = {self.cutoff_nm:.4g} nm)"
        )

    # ------------------------------------------------------------------ evaluation
    def _check_range(self, r: NDArray[np.float64]) -> None:
        if r.size and not np.all(np.isfinite(r)):
            raise InputError("distances must be finite numbers")
        if r.size and float(r.min()) < self._r[0] - 1.0e-9 * max(1.0, abs(self._r[0])):
            raise InputError(
                f"r = {float(r.min()):.6g} nm is below the table start {self._r[0]:.6g} nm; "
                "add a short-range wall with extend_repulsive(r_min_nm)"
            )

    def _raw(self, r: NDArray[np.float64], nu: int) -> NDArray[np.float64]:
        """Interpolant (nu=0) or its derivative (nu=1) without the cutoff, clipped to the grid."""
        return self._spline(np.clip(r, self._r[0], self._r[-1]), nu)

    def energy(self, r_nm: ArrayLike) -> FloatOrArray:
        """U(r) in kJ/mol; zero beyond the cutoff. Scalar in, float out."""
        r = np.asarray(r_nm, dtype=np.float64)
        flat = np.atleast_1d(r)
        self._check_range(flat)
        out = np.where(flat <= self._cutoff, self._raw(flat, 0), 0.0)
        return float(out[0]) if r.ndim == 0 else out.reshape(r.shape)

    def force(self, r_nm: ArrayLike) -> FloatOrArray:
        """F(r) = −dU/dr in kJ/mol/nm (positive = repulsive); zero beyond the cutoff."""
        r = np.asarray(r_nm, dtype=np.float64)
        flat = np.atleast_1d(r)
        self._check_range(flat)
        out = np.where(flat <= self._cutoff, -self._raw(flat, 1), 0.0)
        return float(out[0]) if r.ndim == 0 else out.reshape(r.shape)

    def force_derivative(self, r_nm: ArrayLike) -> FloatOrArray:
        """dF/dr = −d²U/dr² in kJ/mol/nm² (what LAMMPS calls FPRIME); zero beyond the cutoff."""
        r = np.asarray(r_nm, dtype=np.float64)
        flat = np.atleast_1d(r)
        self._check_range(flat)
        rc = np.clip(flat, self._r[0], self._r[-1])
        out = np.where(flat <= self._cutoff, -self._spline(rc, 2), 0.0)
        return float(out[0]) if r.ndim == 0 else out.reshape(r.shape)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_function(
        cls,
        u: Callable[[NDArray[np.float64]], ArrayLike],
        r_grid_nm: ArrayLike,
        *,
        force: Callable[[NDArray[np.float64]], ArrayLike] | None = None,
        cutoff_nm: float | None = None,
    ) -> TabulatedPotential:
        """Tabulate a vectorised function U(r) (kJ/mol, r in nm) on a uniform grid.

        ``force`` (−dU/dr in kJ/mol/nm) is optional; without it forces come from a spline of U.
        """
        r = _as_array(r_grid_nm, "r_grid_nm")
        if r.size == 0:
            raise InputError("the r grid is empty; give at least 4 evenly spaced distances")
        u_values = _as_array(u(r), "U(r)")
        f_values = None if force is None else _as_array(force(r), "F(r)")
        return cls(r, u_values, cutoff_nm=cutoff_nm, force_kj_mol_nm=f_values)

    @classmethod
    def lj(
        cls,
        epsilon_kj_mol: float,
        sigma_nm: float,
        r_grid_nm: ArrayLike,
        *,
        cutoff_nm: float | None = None,
    ) -> TabulatedPotential:
        """Lennard-Jones 4ε[(σ/r)¹² − (σ/r)⁶] with its analytic force (ε kJ/mol, σ nm)."""
        if not (epsilon_kj_mol > 0 and sigma_nm > 0):
            raise InputError(
                f"Lennard-Jones needs epsilon > 0 and sigma > 0, got {epsilon_kj_mol}, {sigma_nm}"
            )

        def u(r: NDArray[np.float64]) -> NDArray[np.float64]:
            sr6 = (sigma_nm / r) ** 6
            return 4.0 * epsilon_kj_mol * (sr6 * sr6 - sr6)

        def f(r: NDArray[np.float64]) -> NDArray[np.float64]:
            sr6 = (sigma_nm / r) ** 6
            return 24.0 * epsilon_kj_mol * (2.0 * sr6 * sr6 - sr6) / r

        r = _as_array(r_grid_nm, "r_grid_nm")
        if r.size and float(r.min()) <= 0.0:
            raise InputError("a Lennard-Jones table must start at r > 0 (it diverges at r = 0)")
        return cls.from_function(u, r, force=f, cutoff_nm=cutoff_nm)

    @classmethod
    def from_nonuniform(
        cls,
        r_nm: ArrayLike,
        u_kj_mol: ArrayLike,
        *,
        force_kj_mol_nm: ArrayLike | None = None,
        cutoff_nm: float | None = None,
        dr_nm: float | None = None,
        wall_below_nm: float | None = None,
        row_labels: Sequence[str] | None = None,
        max_points: int = 20001,
    ) -> TabulatedPotential:
        """Interpolate a table on an uneven (strictly increasing) grid onto a uniform one.

        The new spacing is ``dr_nm`` or else the smallest input spacing, coarsened if needed
        so that the table has at most ``max_points`` points; it is adjusted slightly so that the
        grid ends exactly at the last input distance.
        """
        r = _as_array(r_nm, "r_nm")
        u = _as_array(u_kj_mol, "u_kj_mol")
        f = None if force_kj_mol_nm is None else _as_array(force_kj_mol_nm, "force_kj_mol_nm")
        _check_rows(r, u, f, row_labels, uniform=False)
        if f is None:
            spline: CubicSpline | CubicHermiteSpline = CubicSpline(r, u, bc_type="not-a-knot")
        else:
            spline = CubicHermiteSpline(r, u, -f)
        span = float(r[-1] - r[0])
        step = float(np.min(np.diff(r))) if dr_nm is None else float(dr_nm)
        if not (math.isfinite(step) and step > 0):
            raise InputError(f"dr_nm must be a positive spacing in nm, got {dr_nm}")
        step = max(step, span / (max_points - 1))
        grid = _uniform_grid(float(r[0]), float(r[-1]), step)
        return cls(
            grid,
            spline(grid),
            cutoff_nm=cutoff_nm,
            force_kj_mol_nm=-spline(grid, 1),
            wall_below_nm=wall_below_nm,
        )

    @classmethod
    def from_partial(
        cls,
        r_nm: ArrayLike,
        u_kj_mol: ArrayLike,
        *,
        cutoff_nm: float | None = None,
        force_kj_mol_nm: ArrayLike | None = None,
    ) -> TabulatedPotential:
        """Build a table from data whose leading rows are undefined (non-finite U).

        IBI gives U = −kT ln g(r) = +inf (or NaN) at short r where g(r) = 0; those leading
        rows are dropped and the table starts at the first finite value. Non-finite values
        after that are errors (a gap). Follow with :meth:`extend_repulsive` to fill the core.
        """
        r = _as_array(r_nm, "r_nm")
        u = _as_array(u_kj_mol, "u_kj_mol")
        f = None if force_kj_mol_nm is None else _as_array(force_kj_mol_nm, "force_kj_mol_nm")
        if u.size != r.size or (f is not None and f.size != r.size):
            raise InputError("table columns differ in length; give one value per row")
        finite = np.isfinite(u) if f is None else np.isfinite(u) & np.isfinite(f)
        if not finite.any():
            raise InputError("the potential has no finite value; check the input g(r) or table")
        first = int(np.argmax(finite))
        labels = [f"row {i + 1}" for i in range(first, r.size)]
        return cls(
            r[first:],
            u[first:],
            cutoff_nm=cutoff_nm,
            force_kj_mol_nm=None if f is None else f[first:],
            row_labels=labels,
        )

    # ------------------------------------------------------------------ transformations
    def _with(
        self,
        grid: NDArray[np.float64],
        u: NDArray[np.float64],
        f: NDArray[np.float64],
        *,
        cutoff_nm: float | None,
        wall_below_nm: float | None,
    ) -> TabulatedPotential:
        return TabulatedPotential(
            grid, u, cutoff_nm=cutoff_nm, force_kj_mol_nm=f, wall_below_nm=wall_below_nm
        )

    def _grid_ending_at(self, stop: float) -> NDArray[np.float64]:
        """This grid up to ``stop`` if ``stop`` is a node, else a uniform grid ending at it."""
        k = _on_grid(stop, self.r_min_nm, self.dr_nm)
        if k is not None and k < self._r.size:
            return self._r[: k + 1].copy()
        return _uniform_grid(self.r_min_nm, stop, self.dr_nm)

    def resample(self, r_grid_nm: ArrayLike) -> TabulatedPotential:
        """Evaluate this potential on a new uniform grid (which may end beyond the cutoff).

        The cutoff is kept, or becomes the last new grid point if that is shorter.
        """
        grid = _as_array(r_grid_nm, "r_grid_nm")
        _check_rows(grid, np.zeros_like(grid), None, None, uniform=True)
        self._check_range(grid)
        cutoff = min(self._cutoff, float(grid[-1]))
        wall = self._wall_below
        if wall is not None and not grid[0] <= wall <= grid[-1]:
            wall = None
        return self._with(
            grid,
            np.asarray(self.energy(grid)),
            np.asarray(self.force(grid)),
            cutoff_nm=cutoff,
            wall_below_nm=wall,
        )

    def truncate(self, cutoff_nm: float | None = None) -> TabulatedPotential:
        """The table cut at ``cutoff_nm`` (default: its cutoff), ending exactly there.

        If the cutoff is not a grid point the table is resampled onto a grid of at most the
        same spacing that ends on it. U is not shifted: U(cutoff) may be non-zero.
        """
        rc = self._cutoff if cutoff_nm is None else float(cutoff_nm)
        if not (math.isfinite(rc) and self.r_min_nm < rc <= self.r_max_nm + 1e-9):
            raise InputError(
                f"cutoff {cutoff_nm} nm lies outside the table ({self.r_min_nm:.6g} to "
                f"{self.r_max_nm:.6g} nm)"
            )
        rc = min(rc, self.r_max_nm)
        grid = self._grid_ending_at(rc)
        return self._with(
            grid,
            self._raw(grid, 0),
            -self._raw(grid, 1),
            cutoff_nm=float(grid[-1]),
            wall_below_nm=self._wall_below,
        )

    def shifted(self, delta_kj_mol: float) -> TabulatedPotential:
        """U + delta (kJ/mol) at every grid point; forces unchanged."""
        return self._with(
            self._r,
            self._u + float(delta_kj_mol),
            self._f.copy(),
            cutoff_nm=self._cutoff,
            wall_below_nm=self._wall_below,
        )

    def smooth_cutoff(
        self, width_nm: float, *, cutoff_nm: float | None = None
    ) -> TabulatedPotential:
        """Shift and taper U so that U and F reach zero continuously at the cutoff.

        With rc the cutoff and rs = rc − width, the new potential is
        ``(U(r) − U(rc)) · S((r − rs)/width)`` with the quintic switch
        S(x) = 1 − 10x³ + 15x⁴ − 6x⁵ (S = 1 below rs). U, F and dF/dr are continuous and
        U(rc) = F(rc) = 0. Below rs forces are unchanged; energies are shifted by −U(rc).
        The returned table ends exactly at rc (resampled if rc is not a grid point).
        """
        rc = self._cutoff if cutoff_nm is None else float(cutoff_nm)
        width = float(width_nm)
        if not (math.isfinite(rc) and self.r_min_nm < rc <= self.r_max_nm + 1e-9):
            raise InputError(
                f"cutoff {cutoff_nm} nm lies outside the table ({self.r_min_nm:.6g} to "
                f"{self.r_max_nm:.6g} nm)"
            )
        rc = min(rc, self.r_max_nm)
        if not (math.isfinite(width) and 0.0 < width < rc - self.r_min_nm):
            raise InputError(
                f"switching width {width_nm} nm must be positive and shorter than the table "
                f"below the cutoff ({rc - self.r_min_nm:.4g} nm)"
            )
        grid = self._grid_ending_at(rc)
        u_c = float(self._raw(np.array([rc]), 0)[0])
        du = self._raw(grid, 0) - u_c
        f = -self._raw(grid, 1)
        s, ds_dx = _smoothstep((grid - (rc - width)) / width)
        u_new = du * s
        f_new = f * s - du * ds_dx / width
        u_new[-1] = 0.0
        f_new[-1] = 0.0
        return self._with(grid, u_new, f_new, cutoff_nm=rc, wall_below_nm=self._wall_below)

    def extend_repulsive(
        self,
        r_min_nm: float,
        *,
        match_at_nm: float | None = None,
        exponent: float = 12.0,
        cap_kj_mol: float = DEFAULT_WALL_CAP_KJ_MOL,
    ) -> TabulatedPotential:
        """Continue the table to shorter distances with a repulsive wall.

        Below the match point rm (default: the first grid point; data below a given
        ``match_at_nm`` are replaced) the energy is ``B + A / r**n`` with n = ``exponent``,
        A and B chosen so that U and F = −dU/dr equal the table's at rm. This needs a
        repulsive force F(rm) > 0; the wall then rises monotonically towards r → 0. Where it
        would exceed ``cap_kj_mol`` (or from rm on, if U(rm) is already above the cap) it
        continues linearly with the force it has there, so U stays finite (also at r = 0),
        monotone and continuous in U and F.

        The grid keeps its spacing and nodes when rm − r_min is a whole number of steps;
        otherwise the table is resampled onto a grid of at most the same spacing that starts
        at ``r_min_nm``. Returns the table itself when it already starts at or below r_min.
        """
        r_min = float(r_min_nm)
        if not (math.isfinite(r_min) and r_min >= 0.0):
            raise InputError(f"r_min_nm must be a distance >= 0 nm, got {r_min_nm}")
        rm = self.r_min_nm if match_at_nm is None else float(match_at_nm)
        if match_at_nm is None and r_min >= self.r_min_nm - 1e-12:
            return self
        j = _on_grid(rm, self.r_min_nm, self.dr_nm)
        if j is None or not 0 <= j < self._r.size - 1:
            raise InputError(
                f"match_at_nm = {match_at_nm} nm is not a grid point of the table "
                f"(r = {self.r_min_nm:.6g} + k * {self.dr_nm:.6g} nm)"
            )
        rm = float(self._r[j])
        if not r_min < rm:
            raise InputError(f"r_min_nm = {r_min:.6g} nm must be below the match point {rm:.6g} nm")
        u_m, f_m = float(self._u[j]), float(self._f[j])
        if not f_m > 0.0:
            repulsive = np.flatnonzero(self._f[j:] > 0.0)
            if repulsive.size == 0:
                raise InputError(
                    f"the table has no repulsive region (F <= 0 from {rm:.6g} nm on); "
                    "a monotone wall cannot be joined to it"
                )
            hint = float(self._r[j + int(repulsive[0])])
            raise InputError(
                f"the force at r = {rm:.6g} nm is {f_m:.4g} kJ/mol/nm, not repulsive, so no "
                f"monotone wall can join there; pass match_at_nm={hint:.6g} (the first grid "
                "point with a repulsive force)"
            )
        n = float(exponent)
        if not (math.isfinite(n) and n > 0):
            raise InputError(f"wall exponent must be positive, got {exponent}")
        cap = float(cap_kj_mol)
        if not math.isfinite(cap):
            raise InputError(f"cap_kj_mol must be finite, got {cap_kj_mol}")
        a = f_m * rm ** (n + 1.0) / n
        b = u_m - f_m * rm / n
        if cap <= u_m:
            r_cap, u_cap, f_cap = rm, u_m, f_m
        else:
            r_cap = (a / (cap - b)) ** (1.0 / n)
            u_cap, f_cap = cap, n * a / r_cap ** (n + 1.0)

        def wall(r: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
            steep = r >= r_cap
            rs = np.where(steep, r, r_cap)
            u_w = np.where(steep, b + a / rs**n, u_cap + f_cap * (r_cap - r))
            f_w = np.where(steep, n * a / rs ** (n + 1.0), f_cap)
            return u_w, f_w

        k = _on_grid(rm, r_min, self.dr_nm)
        if k is not None:
            below = rm - self.dr_nm * np.arange(k, 0, -1)
            below[0] = r_min
            u_w, f_w = wall(below)
            grid = np.concatenate([below, self._r[j:]])
            u_new = np.concatenate([u_w, self._u[j:]])
            f_new = np.concatenate([f_w, self._f[j:]])
        else:
            grid = _uniform_grid(r_min, self.r_max_nm, self.dr_nm)
            inside = grid >= rm
            u_w, f_w = wall(np.minimum(grid, rm))
            u_new = np.where(inside, self._raw(grid, 0), u_w)
            f_new = np.where(inside, -self._raw(grid, 1), f_w)
        wall_below = rm if self._wall_below is None else max(rm, self._wall_below)
        return self._with(grid, u_new, f_new, cutoff_nm=self._cutoff, wall_below_nm=wall_below)

    def smoothed(self, window: int, *, polyorder: int = 3) -> TabulatedPotential:
        """Savitzky–Golay smoothing of U over ``window`` grid points (odd, > polyorder).

        Used to damp noise in IBI updates. Forces are re-derived from the smoothed U, so
        they stay consistent with it; ends are fitted with a polynomial (``mode='interp'``).
        """
        w = int(window)
        if w != window or w % 2 == 0 or w <= polyorder or w > len(self):
            raise InputError(
                f"smoothing window must be an odd number of points > {polyorder} and <= "
                f"{len(self)}, got {window}"
            )
        u_s = savgol_filter(self._u, w, polyorder, mode="interp")
        return TabulatedPotential(
            self._r, u_s, cutoff_nm=self._cutoff, wall_below_nm=self._wall_below
        )

    # ------------------------------------------------------------------ export
    def openmm_function(
        self, *, function_name: str = "U_cg", spacing_nm: float | None = None
    ) -> OpenMMTable:
        """Arguments for ``openmm.Continuous1DFunction``: U on a uniform grid from 0 to rc.

        If the table starts above r = 0 it is first extended with :meth:`extend_repulsive`
        (default wall), since OpenMM treats the function as zero below its range. Values are
        shifted so that U(cutoff) = 0. ``spacing_nm`` defaults to the table spacing.
        """
        if not function_name.isidentifier():
            raise InputError(f"function name {function_name!r} is not a valid identifier")
        full = self if self.r_min_nm <= 0.0 else self.extend_repulsive(0.0)
        step = full.dr_nm if spacing_nm is None else float(spacing_nm)
        if not (math.isfinite(step) and step > 0):
            raise InputError(f"spacing_nm must be a positive spacing in nm, got {spacing_nm}")
        rc = full.cutoff_nm
        grid = _uniform_grid(0.0, rc, step)
        u = full._raw(grid, 0)
        shift = -float(u[-1])
        values = u + shift
        values[-1] = 0.0
        return OpenMMTable(
            values=tuple(float(v) for v in values),
            min_nm=0.0,
            max_nm=float(rc),
            energy_shift_kj_mol=shift,
            function_name=function_name,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, nm, kJ/mol) for JSON/YAML provenance records."""
        return {
            "r_nm": self._r.tolist(),
            "U_kJ_mol": self._u.tolist(),
            "F_kJ_mol_nm": self._f.tolist(),
            "cutoff_nm": self._cutoff,
            "wall_below_nm": self._wall_below,
        }
