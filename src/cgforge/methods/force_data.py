"""Mapped-force data of all-atom runs: the input of force matching (linear MS-CG and GNNs).

An all-atom run directory written by ``cgforge aa ... --forces`` (or :func:`~cgforge.workflows.
aa.run_aa` with ``protocol.save_forces=True``) holds ``summary.json`` and ``cg_trajectory.npz``
with the molecules' centres of mass and the summed atomic forces on each molecule (the mapped
forces). :func:`load_force_data` reads one :class:`ForceDataset` per run directory, each labelled
with the :class:`StatePoint` it was sampled at (molecule, temperature, density, size, source).

:func:`time_block_split` splits the frames of a trajectory into training and validation sets made
of whole contiguous time blocks, so that correlated neighbouring frames do not end up on both
sides of the split.

Units: positions and boxes nm, forces kJ/mol/nm, times ps, masses amu, temperature K,
density g/cm³.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cgforge.errors import InputError
from cgforge.runsummary import SUMMARY as SUMMARY_FILE
from cgforge.runsummary import read_summary
from cgforge.trajectory import CGTrajectory, readonly_view

__all__ = [
    "ForceDataset",
    "ForceFrame",
    "StatePoint",
    "load_force_data",
    "load_force_dataset",
    "time_block_split",
]

#: Files an all-atom run directory must hold for force matching.
TRAJECTORY_FILE = "cg_trajectory.npz"
#: Keys of ``summary.json`` that label the state point.
STATE_KEYS = ("molecule", "temperature_K", "density_g_cm3", "n_molecules")
#: How to make an all-atom run with mapped forces, on the command line and in Python.
#: How error messages name the all-atom run that force matching needs; they name the parameter
#: ``save_forces`` (``parameters="save_forces"``), which the command line shows as its flag.
FORCES_RUN = "an all-atom run (run_aa, cgforge aa) with save_forces=True"


@dataclass(frozen=True)
class StatePoint:
    """The thermodynamic state an all-atom run sampled.

    ``molecule`` (name), ``temperature_K`` (K), ``density_g_cm3`` (mean density of the run,
    g/cm³), ``n_molecules`` (beads) and ``source`` (the run directory, absolute path).
    """

    molecule: str
    temperature_K: float
    density_g_cm3: float
    n_molecules: int
    source: str

    @property
    def label(self) -> str:
        """Short human-readable label, e.g. ``'hexane 298.15 K 0.655 g/cm3'``."""
        return (
            f"{self.molecule} {self.temperature_K:g} K {self.density_g_cm3:.4g} g/cm3 "
            f"({self.n_molecules} molecules)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for JSON."""
        return {
            "molecule": self.molecule,
            "temperature_K": self.temperature_K,
            "density_g_cm3": self.density_g_cm3,
            "n_molecules": self.n_molecules,
            "source": self.source,
        }


class ForceFrame(NamedTuple):
    """One frame of mapped-force data: positions ``(N, 3)`` nm (any periodic image), box
    ``(3,)`` nm and forces ``(N, 3)`` kJ/mol/nm."""

    positions_nm: np.ndarray
    box_nm: np.ndarray
    forces_kj_mol_nm: np.ndarray


@dataclass(frozen=True, eq=False)
class ForceDataset:
    """Bead positions and mapped forces of one state point.

    Attributes
    ----------
    positions_nm
        ``(F, N, 3)`` bead positions in nm (unwrapped; force matching uses minimum images).
    box_nm
        ``(F, 3)`` orthorhombic box edges in nm.
    forces_kj_mol_nm
        ``(F, N, 3)`` mapped forces (sum of the atomic forces of each molecule), kJ/mol/nm.
    times_ps
        ``(F,)`` frame times in ps, strictly increasing.
    masses_amu
        ``(N,)`` bead masses in amu.
    state
        The :class:`StatePoint` the frames were sampled at.

    Arrays are read-only float64. Indexing with :meth:`select` returns a new dataset.
    """

    positions_nm: np.ndarray
    box_nm: np.ndarray
    forces_kj_mol_nm: np.ndarray
    times_ps: np.ndarray
    masses_amu: np.ndarray
    state: StatePoint

    def __post_init__(self) -> None:
        # CGTrajectory checks shapes, finiteness, positive boxes and masses, increasing times
        traj = CGTrajectory(
            positions_nm=self.positions_nm,
            box_nm=self.box_nm,
            times_ps=self.times_ps,
            masses_amu=self.masses_amu,
            forces_kj_mol_nm=self.forces_kj_mol_nm,
        )
        if traj.forces_kj_mol_nm is None:
            raise InputError("a ForceDataset needs mapped forces (forces_kj_mol_nm)")
        if not isinstance(self.state, StatePoint):
            raise InputError(f"state must be a StatePoint, got {type(self.state).__name__}")
        for name in ("positions_nm", "box_nm", "forces_kj_mol_nm", "times_ps", "masses_amu"):
            object.__setattr__(self, name, readonly_view(getattr(traj, name)))

    @classmethod
    def from_trajectory(cls, traj: CGTrajectory, state: StatePoint) -> ForceDataset:
        """A dataset from a CG trajectory that carries forces."""
        if traj.forces_kj_mol_nm is None:
            raise InputError(
                f"{state.source}: the trajectory has no mapped forces; rerun {FORCES_RUN} to save "
                "mapped forces",
                parameters="save_forces",
            )
        return cls(
            positions_nm=traj.positions_nm,
            box_nm=traj.box_nm,
            forces_kj_mol_nm=traj.forces_kj_mol_nm,
            times_ps=traj.times_ps,
            masses_amu=traj.masses_amu,
            state=state,
        )

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.positions_nm.shape[0])

    @property
    def n_beads(self) -> int:
        """Number of beads per frame."""
        return int(self.positions_nm.shape[1])

    def __len__(self) -> int:
        return self.n_frames

    def frame(self, index: int) -> ForceFrame:
        """Frame ``index`` as a :class:`ForceFrame`."""
        i = int(index)
        if not -self.n_frames <= i < self.n_frames:
            raise IndexError(f"frame {index} out of range for {self.n_frames} frames")
        return ForceFrame(self.positions_nm[i], self.box_nm[i], self.forces_kj_mol_nm[i])

    def select(self, frames: slice | Sequence[int] | np.ndarray) -> ForceDataset:
        """A dataset of the selected frames (a slice or an increasing index array)."""
        key: slice | np.ndarray = frames if isinstance(frames, slice) else np.asarray(frames)
        if isinstance(key, np.ndarray):
            if key.dtype == bool:
                key = np.flatnonzero(key)
            if key.ndim != 1 or key.size == 0:
                raise InputError("select frames with a slice or a non-empty 1-D index array")
        return ForceDataset(
            positions_nm=self.positions_nm[key],
            box_nm=self.box_nm[key],
            forces_kj_mol_nm=self.forces_kj_mol_nm[key],
            times_ps=self.times_ps[key],
            masses_amu=self.masses_amu,
            state=self.state,
        )

    def to_trajectory(self) -> CGTrajectory:
        """The frames as a :class:`~cgforge.trajectory.CGTrajectory` (with forces)."""
        return CGTrajectory(
            positions_nm=self.positions_nm,
            box_nm=self.box_nm,
            times_ps=self.times_ps,
            masses_amu=self.masses_amu,
            forces_kj_mol_nm=self.forces_kj_mol_nm,
        )


# ====================================================================== loading
def _number(summary: dict[str, Any], key: str, where: Path) -> float:
    try:
        value = float(summary[key])
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {key} = {summary[key]!r} is not a number") from exc
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{where}: {key} = {summary[key]!r} must be a positive number")
    return value


def _load_trajectory(run_dir: Path) -> CGTrajectory:
    path = run_dir / TRAJECTORY_FILE
    if not path.is_file():
        raise InputError(
            f"{path} is missing; {run_dir} is not a complete all-atom run (rerun {FORCES_RUN} "
            "into a new directory)",
            parameters="save_forces",
        )
    try:
        return CGTrajectory.load(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as exc:
        raise InputError(
            f"{path} is damaged ({type(exc).__name__}: {exc}); rerun {FORCES_RUN}",
            parameters="save_forces",
        ) from exc


def load_force_dataset(
    run_dir: str | Path,
    *,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
) -> ForceDataset:
    """Read one all-atom run directory with mapped forces.

    ``start``, ``stop`` and ``stride`` select frames (Python slice semantics; ``start`` drops
    an unequilibrated beginning, ``stride`` thins correlated frames).

    Raises
    ------
    InputError
        The directory, ``summary.json`` or ``cg_trajectory.npz`` is missing or damaged; the run
        saved no forces; the summary and the trajectory disagree on the number of molecules; the
        frame selection is empty.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(
            f"run directory {path} not found; give the run directory of {FORCES_RUN}",
            parameters="save_forces",
        )
    for value, what in ((start, "start"), (stride, "stride")):
        if isinstance(value, bool) or int(value) != value:
            raise InputError(f"frame {what} must be an integer, got {value!r}")
    if int(stride) < 1:
        raise InputError(f"frame stride must be >= 1, got {stride}")
    if int(start) < 0:
        raise InputError(f"frame start must be >= 0, got {start}")
    summary = read_summary(path, what="all-atom run", command="'cgforge aa'", required=STATE_KEYS)
    if summary.get("has_forces") is False:
        raise InputError(
            f"{path} holds no mapped forces (has_forces is false); rerun {FORCES_RUN} to save "
            "mapped forces",
            parameters="save_forces",
        )
    traj = _load_trajectory(path)
    if traj.forces_kj_mol_nm is None:
        raise InputError(
            f"{path / TRAJECTORY_FILE} holds no mapped forces; rerun {FORCES_RUN} to save mapped "
            "forces",
            parameters="save_forces",
        )
    where = path / SUMMARY_FILE
    n_molecules = _number(summary, "n_molecules", where)
    if int(n_molecules) != traj.n_beads:
        raise InputError(
            f"{path}: summary.json says {int(n_molecules)} molecules but {TRAJECTORY_FILE} has "
            f"{traj.n_beads} beads; the directory mixes two runs (rerun into a new directory)"
        )
    state = StatePoint(
        molecule=str(summary["molecule"]),
        temperature_K=_number(summary, "temperature_K", where),
        density_g_cm3=_number(summary, "density_g_cm3", where),
        n_molecules=traj.n_beads,
        source=str(path.resolve()),
    )
    frames = np.arange(traj.n_frames)[slice(int(start), stop, int(stride))]
    if frames.size == 0:
        raise InputError(
            f"{path}: no frames selected from {traj.n_frames} (start={start}, stop={stop}, "
            f"stride={stride})"
        )
    return ForceDataset.from_trajectory(traj[frames], state)


def load_force_data(
    run_dirs: str | Path | Sequence[str | Path],
    *,
    start: int = 0,
    stop: int | None = None,
    stride: int = 1,
    single_molecule: bool = False,
) -> list[ForceDataset]:
    """Read all-atom run directories with mapped forces: one :class:`ForceDataset` each.

    Each run directory is one state point (its molecule, temperature and density label the
    dataset). The same frame selection (``start``, ``stop``, ``stride``) applies to every
    directory. With ``single_molecule`` every directory must hold the same molecule (a pair
    potential of one liquid); mixing molecules is then an error.
    """
    if isinstance(run_dirs, str | Path):
        run_dirs = [run_dirs]
    paths = [Path(p) for p in run_dirs]
    if not paths:
        raise InputError(
            f"no run directories given; name at least one run of {FORCES_RUN}",
            parameters="save_forces",
        )
    seen: set[Path] = set()
    for p in paths:
        resolved = p.resolve()
        if resolved in seen:
            raise InputError(f"run directory {p} is given twice; name each run once")
        seen.add(resolved)
    datasets = [load_force_dataset(p, start=start, stop=stop, stride=stride) for p in paths]
    if single_molecule:
        molecules = sorted({d.state.molecule for d in datasets})
        if len(molecules) > 1:
            raise InputError(
                f"the runs hold different molecules ({', '.join(molecules)}); one pair potential "
                "needs runs of one molecule"
            )
    return datasets


# ====================================================================== splitting
def time_block_split(
    n_frames: int,
    n_blocks: int,
    validation_fraction: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Split frames ``0..n_frames-1`` into training and validation sets of whole time blocks.

    The frames, in time order, are cut into ``n_blocks`` contiguous blocks of (nearly) equal
    length; ``round(validation_fraction * n_blocks)`` of them (at least one when the fraction
    is positive, at most ``n_blocks - 1``) are drawn at random with ``seed`` for validation.
    Neighbouring frames are correlated, so a frame-by-frame random split would leak training
    data into the validation set; whole blocks keep that leak to the block edges.

    Returns ``(train_idx, val_idx)``: sorted int64 frame indices, disjoint, together all frames.
    ``validation_fraction = 0`` gives every frame to training and an empty validation set.
    """
    for value, what in ((n_frames, "n_frames"), (n_blocks, "n_blocks"), (seed, "seed")):
        if isinstance(value, bool) or int(value) != value:
            raise InputError(f"{what} must be an integer, got {value!r}")
    n, k = int(n_frames), int(n_blocks)
    fraction = float(validation_fraction)
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise InputError(f"validation fraction must be in [0, 1), got {validation_fraction!r}")
    if k < 1:
        raise InputError(f"n_blocks must be >= 1, got {n_blocks}")
    if n < k:
        raise InputError(
            f"cannot cut {n} frames into {k} time blocks; use fewer blocks or more frames"
        )
    frames = np.arange(n, dtype=np.int64)
    if fraction == 0.0:
        return frames, np.empty(0, dtype=np.int64)
    if k < 2:
        raise InputError("a validation set needs at least 2 time blocks (n_blocks >= 2)")
    n_val = min(k - 1, max(1, round(fraction * k)))
    blocks = np.array_split(frames, k)
    rng = np.random.default_rng(int(seed))
    chosen = np.zeros(k, dtype=bool)
    chosen[rng.choice(k, size=n_val, replace=False)] = True
    val = np.concatenate([b for b, c in zip(blocks, chosen, strict=True) if c])
    train = np.concatenate([b for b, c in zip(blocks, chosen, strict=True) if not c])
    return train, val
