"""Coarse-grained trajectories: the one-bead-per-molecule trajectory every observable consumes.

:class:`CGTrajectory` holds bead positions that are *unwrapped* (continuous in time, as needed
for the mean-squared displacement), orthorhombic box edges, times, bead masses and, when
available, mapped bead forces. :func:`read_trajectory` builds one from all-atom simulation files
through MDAnalysis: GROMACS (.gro/.tpr + .xtc/.trr), LAMMPS (data + dump) and PDB/PSF + DCD.

Units: positions and boxes in nm, times in ps, masses in amu, forces in kJ/mol/nm. MDAnalysis
works in Å, ps and kJ/(mol·Å) internally and reads LAMMPS dump files without any conversion;
the conversions happen here and nowhere else.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cgforge import mapping, units
from cgforge.errors import InputError

__all__ = ["FORMAT_VERSION", "CGTrajectory", "read_trajectory", "readonly_view"]

#: Version of the .npz layout written by :meth:`CGTrajectory.save`.
FORMAT_VERSION = 1
_FORMAT_TAG = "cgforge.CGTrajectory"
_LAMMPS_DUMP_SUFFIXES = (".lammpstrj", ".dump", ".lammpsdump")


def readonly_view(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr`` (no copy; ``arr`` itself stays as writeable as it was)."""
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class CGTrajectory:
    """A one-bead-per-molecule trajectory in an orthorhombic periodic box.

    Attributes
    ----------
    positions_nm
        ``(n_frames, n_beads, 3)`` unwrapped bead positions in nm (continuous in time).
    box_nm
        ``(n_frames, 3)`` orthorhombic box edge lengths in nm.
    times_ps
        ``(n_frames,)`` strictly increasing times in ps.
    masses_amu
        ``(n_beads,)`` bead masses in amu.
    forces_kj_mol_nm
        ``(n_frames, n_beads, 3)`` bead forces in kJ/mol/nm, or ``None``.

    Arrays are stored as read-only float64 views; slicing (``traj[10:]``, ``traj[::2]``,
    ``traj[5]``) selects frames and returns a new trajectory.
    """

    positions_nm: np.ndarray
    box_nm: np.ndarray
    times_ps: np.ndarray
    masses_amu: np.ndarray
    forces_kj_mol_nm: np.ndarray | None = None

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions_nm, dtype=np.float64)
        if pos.ndim != 3 or pos.shape[2] != 3 or pos.shape[0] < 1 or pos.shape[1] < 1:
            raise InputError(
                f"positions_nm must have shape (n_frames, n_beads, 3) with at least one frame "
                f"and bead, got {pos.shape}"
            )
        n_frames, n_beads, _ = pos.shape
        box = np.asarray(self.box_nm, dtype=np.float64)
        if box.shape == (3,):
            box = np.broadcast_to(box, (n_frames, 3)).copy()
        if box.shape != (n_frames, 3):
            raise InputError(f"box_nm must have shape ({n_frames}, 3) or (3,), got {box.shape}")
        times = np.asarray(self.times_ps, dtype=np.float64)
        if times.shape != (n_frames,):
            raise InputError(f"times_ps must have shape ({n_frames},), got {times.shape}")
        masses = np.asarray(self.masses_amu, dtype=np.float64)
        if masses.shape != (n_beads,):
            raise InputError(f"masses_amu must have shape ({n_beads},), got {masses.shape}")
        for name, arr in (
            ("positions_nm", pos),
            ("box_nm", box),
            ("times_ps", times),
            ("masses_amu", masses),
        ):
            if not np.all(np.isfinite(arr)):
                raise InputError(f"{name} holds NaN or infinite values")
        if np.any(box <= 0):
            raise InputError("box_nm edge lengths must be positive")
        if np.any(masses <= 0):
            raise InputError("masses_amu must be positive")
        if n_frames > 1 and np.any(np.diff(times) <= 0):
            raise InputError("times_ps must increase strictly from frame to frame")
        forces = self.forces_kj_mol_nm
        if forces is not None:
            forces = np.asarray(forces, dtype=np.float64)
            if forces.shape != pos.shape:
                raise InputError(
                    f"forces_kj_mol_nm must have the shape of positions {pos.shape}, "
                    f"got {forces.shape}"
                )
            if not np.all(np.isfinite(forces)):
                raise InputError("forces_kj_mol_nm holds NaN or infinite values")
            forces = readonly_view(forces)
        object.__setattr__(self, "positions_nm", readonly_view(pos))
        object.__setattr__(self, "box_nm", readonly_view(box))
        object.__setattr__(self, "times_ps", readonly_view(times))
        object.__setattr__(self, "masses_amu", readonly_view(masses))
        object.__setattr__(self, "forces_kj_mol_nm", forces)

    # ----------------------------------------------------------------- properties
    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.positions_nm.shape[0])

    @property
    def n_beads(self) -> int:
        """Number of beads (molecules)."""
        return int(self.positions_nm.shape[1])

    @property
    def has_forces(self) -> bool:
        """Whether mapped forces are present."""
        return self.forces_kj_mol_nm is not None

    @property
    def total_mass_amu(self) -> float:
        """Total mass of the beads in amu."""
        return float(self.masses_amu.sum())

    @property
    def volume_nm3(self) -> np.ndarray:
        """Box volume per frame in nm³, ``(n_frames,)``."""
        return np.prod(self.box_nm, axis=1)

    @property
    def density_g_cm3(self) -> np.ndarray:
        """Mass density per frame in g/cm³, ``(n_frames,)``."""
        return np.asarray(units.density_g_cm3(self.total_mass_amu, self.volume_nm3))

    @property
    def number_density_nm3(self) -> np.ndarray:
        """Bead number density per frame in 1/nm³, ``(n_frames,)``."""
        return self.n_beads / self.volume_nm3

    def __len__(self) -> int:
        return self.n_frames

    def wrapped(self) -> np.ndarray:
        """Positions wrapped into the primary box ``[0, L)`` per axis, nm, ``(F, N, 3)``."""
        box = self.box_nm[:, None, :]
        out = self.positions_nm - box * np.floor(self.positions_nm / box)
        # floating point can give exactly L for tiny negative inputs
        return np.where(out >= box, out - box, out)

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> CGTrajectory:
        """Select frames; an integer gives a one-frame trajectory."""
        if isinstance(key, int | np.integer):
            if not -self.n_frames <= int(key) < self.n_frames:
                raise IndexError(f"frame {key} out of range for {self.n_frames} frames")
            key = slice(int(key), int(key) + 1 if int(key) != -1 else None)
        elif not isinstance(key, slice):
            key = np.asarray(key)
            if key.dtype == bool:
                key = np.flatnonzero(key)
            if key.ndim != 1:
                raise IndexError("frames must be selected by an integer, a slice or a 1-D index")
        forces = None if self.forces_kj_mol_nm is None else self.forces_kj_mol_nm[key]
        return CGTrajectory(
            positions_nm=self.positions_nm[key],
            box_nm=self.box_nm[key],
            times_ps=self.times_ps[key],
            masses_amu=self.masses_amu,
            forces_kj_mol_nm=forces,
        )

    # ----------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write the trajectory as a compressed ``.npz`` with units in the array names.

        Arrays: ``positions_nm``, ``box_nm``, ``times_ps``, ``masses_amu``, optionally
        ``forces_kj_mol_nm``, plus ``format`` and ``format_version``. Returns the path written
        (numpy appends ``.npz`` when missing).
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT_TAG),
            "format_version": np.array(FORMAT_VERSION),
            "positions_nm": np.asarray(self.positions_nm),
            "box_nm": np.asarray(self.box_nm),
            "times_ps": np.asarray(self.times_ps),
            "masses_amu": np.asarray(self.masses_amu),
        }
        if self.forces_kj_mol_nm is not None:
            arrays["forces_kj_mol_nm"] = np.asarray(self.forces_kj_mol_nm)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **arrays)
        except OSError as exc:
            raise InputError(f"cannot write trajectory '{path}': {exc.strerror or exc}") from exc
        return path

    @classmethod
    def load(cls, path: str | Path) -> CGTrajectory:
        """Read a trajectory written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"trajectory file '{path}' not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read '{path}' as a cgforge .npz trajectory: {exc}") from exc
        if str(arrays.get("format", "")) != _FORMAT_TAG:
            raise InputError(
                f"'{path}' is not a cgforge CG trajectory (.npz from CGTrajectory.save)"
            )
        version = int(arrays.get("format_version", -1))
        if version > FORMAT_VERSION or version < 1:
            raise InputError(
                f"'{path}' has trajectory format version {version}; this cgforge reads "
                f"versions 1..{FORMAT_VERSION} (upgrade cgforge)"
            )
        missing = [
            k for k in ("positions_nm", "box_nm", "times_ps", "masses_amu") if k not in arrays
        ]
        if missing:
            raise InputError(f"'{path}' lacks the arrays {', '.join(missing)}; the file is damaged")
        return cls(
            positions_nm=arrays["positions_nm"],
            box_nm=arrays["box_nm"],
            times_ps=arrays["times_ps"],
            masses_amu=arrays["masses_amu"],
            forces_kj_mol_nm=arrays.get("forces_kj_mol_nm"),
        )


# ====================================================================== reading


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_exists(paths: Sequence[Path]) -> None:
    for p in paths:
        if not p.is_file():
            raise InputError(f"file '{p}' not found; check the path")


def _atom_masses(universe, where: str) -> np.ndarray:
    """Atomic masses in amu from the topology; missing ones (0 after MDAnalysis' own guess from
    atom names and types) are looked up from the elements, if the topology has them."""
    from MDAnalysis.exceptions import NoDataError
    from MDAnalysis.guesser.tables import masses as mass_table

    atoms = universe.atoms
    try:
        masses = np.asarray(atoms.masses, dtype=np.float64)
    except NoDataError:
        masses = np.zeros(len(atoms))
    bad = ~np.isfinite(masses) | (masses <= 0)
    if np.any(bad):
        try:
            elements = np.asarray(atoms.elements)
        except NoDataError:
            elements = None
        if elements is not None:
            for i in np.flatnonzero(bad):
                guess = mass_table.get(str(elements[i]).strip().capitalize())
                if guess is not None and guess > 0:
                    masses[i] = guess
            bad = ~np.isfinite(masses) | (masses <= 0)
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        name = getattr(atoms[first], "name", "?")
        raise InputError(
            f"{where}: no mass for {int(bad.sum())} atoms (first: index {first}, name {name!r}); "
            "use a topology with masses (.tpr, .psf, LAMMPS data with a Masses section)"
        )
    return masses


def _molecule_labels(universe, how: str, where: str) -> tuple[np.ndarray, str]:
    """Per-atom molecule index (0..M-1) and how it was found."""
    from MDAnalysis.exceptions import NoDataError

    atoms = universe.atoms
    if how not in ("auto", "fragments", "residues"):
        raise InputError(f"molecules must be 'auto', 'fragments' or 'residues', got {how!r}")
    has_bonds = True
    try:
        n_bonds = len(atoms.bonds)
    except NoDataError:
        has_bonds, n_bonds = False, 0
    if how == "fragments" or (how == "auto" and has_bonds and n_bonds > 0):
        if not has_bonds:
            raise InputError(f"{where}: molecules='fragments' needs bonds, the topology has none")
        labels, source = np.asarray(atoms.fragindices), "fragments"
    else:
        labels, source = np.asarray(atoms.resindices), "residues"
    _, labels = np.unique(labels, return_inverse=True)
    return labels.astype(np.int64), source


def _length_and_force_factors(reader, lammps_units: str, where: str) -> tuple[float, float]:
    """Factors converting the reader's positions to nm and forces to kJ/mol/nm."""
    fmt = str(getattr(reader, "format", "")).upper()
    if fmt == "LAMMPSDUMP":
        # DumpReader returns the file's numbers unconverted.
        if lammps_units != "real":
            raise InputError(
                f"{where}: LAMMPS units '{lammps_units}' are not supported; write the dump with "
                "'units real' (Å, fs, kcal/mol/Å)"
            )
        return units.ANGSTROM_TO_NM, units.KCAL_TO_KJ / units.ANGSTROM_TO_NM
    # Every other MDAnalysis reader converts to Å and kJ/(mol·Å).
    return units.ANGSTROM_TO_NM, 1.0 / units.ANGSTROM_TO_NM


def _is_lammps_dump(reader) -> bool:
    fmt = str(getattr(reader, "format", "")).upper()
    if fmt == "LAMMPSDUMP":
        return True
    inner = getattr(reader, "readers", None)  # ChainReader
    return bool(inner) and any(str(getattr(r, "format", "")).upper() == "LAMMPSDUMP" for r in inner)


def read_trajectory(
    topology: str | Path,
    trajectory: str | Path | Sequence[str | Path] | None = None,
    *,
    topology_format: str | None = None,
    trajectory_format: str | None = None,
    lammps_atom_style: str | None = None,
    lammps_timestep: str | None = None,
    lammps_units: Literal["real"] = "real",
    molecules: Literal["auto", "fragments", "residues"] = "auto",
    select: str | None = None,
    forces: bool | None = None,
    start: int | None = None,
    stop: int | None = None,
    step: int | None = None,
) -> CGTrajectory:
    """Read an all-atom trajectory and map it to one bead per molecule.

    Parameters
    ----------
    topology
        Topology file (.gro, .tpr, .pdb, .psf, LAMMPS .data, ...). Masses come from it; missing
        masses are guessed from elements or atom types, and an atom without one is an error.
    trajectory
        Trajectory file(s) (.xtc, .trr, .dcd, LAMMPS dump, ...); several files are chained.
        ``None`` reads the coordinates in ``topology`` (e.g. a multi-frame .gro or .pdb).
    topology_format, trajectory_format
        MDAnalysis format names (``"GRO"``, ``"DATA"``, ``"LAMMPSDUMP"``, ...) when the file
        extension does not tell.
    lammps_atom_style
        ``atom_style`` of a LAMMPS data file when it is not the default ``full``
        (e.g. ``"id resid type x y z"``).
    lammps_timestep
        MD timestep with its unit (``"1fs"``); required for LAMMPS dumps, which store step
        numbers instead of times. LAMMPS ``units real`` is assumed (Å, fs, kcal/mol/Å).
    molecules
        ``"auto"``: bonded fragments when the topology has bonds, else residues.
    select
        MDAnalysis selection of whole molecules to map (default: all atoms).
    forces
        ``None``: read forces when every frame has them; ``True``: require them;
        ``False``: skip them.
    start, stop, step
        Frame slice of the trajectory.

    Molecules are made whole per frame by the minimum image relative to their first atom
    (valid for molecules shorter than half the box), mapped to their centre of mass, and the
    centres are unwrapped in time by accumulating minimum-image displacements. Bead forces
    are the sums of the atomic forces, in kJ/mol/nm.
    """
    import MDAnalysis as mda
    from MDAnalysis.exceptions import NoDataError

    top_path = Path(topology)
    if trajectory is None:
        traj_paths: list[Path] = []
    elif isinstance(trajectory, str | Path):
        traj_paths = [Path(trajectory)]
    else:
        traj_paths = [Path(p) for p in trajectory]
        if not traj_paths:
            raise InputError("the list of trajectory files is empty")
    _check_exists([top_path, *traj_paths])
    where = "'" + "' + '".join(str(p) for p in [top_path, *traj_paths]) + "'"

    kwargs: dict[str, object] = {}
    if (
        trajectory_format is None
        and traj_paths
        and all(p.suffix.lower() in _LAMMPS_DUMP_SUFFIXES for p in traj_paths)
    ):
        trajectory_format = "LAMMPSDUMP"
    if topology_format is not None:
        kwargs["topology_format"] = topology_format
    if trajectory_format is not None:
        kwargs["format"] = trajectory_format
    if lammps_atom_style is not None:
        kwargs["atom_style"] = lammps_atom_style
    if lammps_timestep is not None:
        kwargs["dt"] = units.parse_time_ps(
            lammps_timestep, what="lammps_timestep", allow_zero=False
        )
    args = [str(top_path)]
    if len(traj_paths) == 1:
        args.append(str(traj_paths[0]))
    elif traj_paths:
        args.append([str(p) for p in traj_paths])

    errors = (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        EOFError,
        RuntimeError,
        NoDataError,
        AttributeError,
        UnicodeDecodeError,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MDAnalysis guesser chatter; masses are checked below
            universe = mda.Universe(*args, **kwargs)
    except errors as exc:
        raise InputError(f"cannot read {where}: {_first_line(exc)}") from exc

    reader = universe.trajectory
    if _is_lammps_dump(reader) and lammps_timestep is None:
        raise InputError(
            f"{where}: a LAMMPS dump stores step numbers, not times; pass the MD timestep, "
            "e.g. lammps_timestep='1fs'"
        )
    length_to_nm, force_to_kj_mol_nm = _length_and_force_factors(
        getattr(reader, "readers", [reader])[0], lammps_units, where
    )

    mol_index, _ = _molecule_labels(universe, molecules, where)
    masses = _atom_masses(universe, where)
    atom_ix = np.arange(len(universe.atoms))
    if select is not None:
        try:
            chosen = universe.select_atoms(select).indices
        except errors as exc:
            raise InputError(f"bad selection {select!r}: {_first_line(exc)}") from exc
        if chosen.size == 0:
            raise InputError(f"selection {select!r} matches no atoms in {where}")
        chosen_mols = np.unique(mol_index[chosen])
        full = np.flatnonzero(np.isin(mol_index, chosen_mols))
        if full.size != chosen.size:
            raise InputError(
                f"selection {select!r} cuts through molecules; select whole molecules "
                "(e.g. by residue name)"
            )
        atom_ix = full
        _, mol_index = np.unique(mol_index[full], return_inverse=True)
        masses = masses[full]

    first = mapping.first_atoms(mol_index)
    ref_of_atom = first[mol_index]
    mol_mass = np.bincount(mol_index, weights=masses)

    try:
        frames = reader[slice(start, stop, step)]
        n_frames = len(frames)
    except errors as exc:
        raise InputError(
            f"cannot slice frames {start}:{stop}:{step} of {where}: {_first_line(exc)}"
        ) from exc
    if n_frames == 0:
        raise InputError(
            f"no frames selected from {where} (start={start}, stop={stop}, step={step})"
        )

    n_mol = int(mol_mass.size)
    com = np.empty((n_frames, n_mol, 3))
    boxes = np.empty((n_frames, 3))
    times = np.empty(n_frames)
    want_forces = forces is not False
    bead_forces: np.ndarray | None = np.empty((n_frames, n_mol, 3)) if want_forces else None
    frames_with_forces = 0
    try:
        for i, ts in enumerate(frames):
            dims = ts.dimensions
            if dims is None or not np.all(np.isfinite(dims[:3])) or np.any(dims[:3] <= 0):
                raise InputError(
                    f"{where}: frame {ts.frame} has no periodic box; CG mapping needs one"
                )
            if np.any(np.abs(np.asarray(dims[3:], dtype=float) - 90.0) > 1e-3):
                raise InputError(
                    f"{where}: frame {ts.frame} has a triclinic box (angles {dims[3:]}); "
                    "only orthorhombic boxes are supported"
                )
            box = np.asarray(dims[:3], dtype=np.float64) * length_to_nm
            pos = np.asarray(ts.positions, dtype=np.float64)[atom_ix] * length_to_nm
            whole = mapping.make_whole(pos, box, mol_index)
            if np.any(np.abs(whole - whole[ref_of_atom]) > 0.45 * box):
                raise InputError(
                    f"{where}: a molecule spans nearly half the box in frame {ts.frame}; "
                    "minimum-image whole-making needs molecules smaller than half the box"
                )
            com[i] = mapping.center_of_mass(whole, masses, mol_index)
            boxes[i] = box
            times[i] = ts.time
            if bead_forces is not None:
                if ts.has_forces:
                    frames_with_forces += 1
                    f = np.asarray(ts.forces, dtype=np.float64)[atom_ix] * force_to_kj_mol_nm
                    bead_forces[i] = mapping.map_forces(f, mol_index)
                elif forces:
                    raise InputError(f"{where}: frame {ts.frame} has no forces but forces=True")
                else:
                    bead_forces = None
            elif ts.has_forces:
                frames_with_forces += 1
    except InputError:
        raise
    except errors as exc:
        raise InputError(f"cannot read frames of {where}: {_first_line(exc)}") from exc

    if n_frames > 1 and np.any(np.diff(times) <= 0):
        raise InputError(
            f"{where}: frame times do not increase (duplicate or restarted frames?); "
            "remove overlaps, e.g. with gmx trjcat"
        )
    if want_forces and bead_forces is None and frames_with_forces > 0:
        warnings.warn(
            f"{where}: only some frames have forces; the CG trajectory carries none "
            "(pass forces=True to make this an error)",
            stacklevel=2,
        )
    positions = mapping.unwrap_in_time(com, boxes)
    bead_masses = mol_mass
    return CGTrajectory(
        positions_nm=positions,
        box_nm=boxes,
        times_ps=times,
        masses_amu=bead_masses,
        forces_kj_mol_nm=bead_forces,
    )
