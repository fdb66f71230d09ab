"""The staged MD protocol every engine runs, and the result every engine returns.

:class:`MDProtocol` holds the settings of a staged run whatever the engine: the OpenMM runner
(:class:`~cgforge.engines.openmm_md.MDRunner`, all-atom and CG), GROMACS
(:class:`~cgforge.engines.gromacs.GromacsRunner`, all-atom) and the CG engines behind
:mod:`cgforge.engines.cg_engine` (LAMMPS, OpenMM, torch). The stages are

1. energy minimisation,
2. NPT equilibration (stochastic dynamics and a barostat: fine here because nothing dynamic is
   measured),
3. the box set to the mean volume of the second half of the NPT stage (bead centres scaled),
4. production at that volume under ``nvt`` (Nosé–Hoover chain thermostat) or ``nve``, so that
   diffusion is the model's own; under ``langevin`` (friction ``production_friction_per_ps``),
   the production ensemble of the friction baseline (:mod:`cgforge.methods.friction`), never a
   way to measure a model's Newtonian mobility; or ``npt`` (the equilibration's barostat kept,
   started from that mean volume, with the ``nvt`` thermostat), where every sample records its
   box (:attr:`MDResult.frame_box_nm`).

A fixed production density (:attr:`MDProtocol.production_density_scale` × the NPT mean density,
or an absolute :attr:`MDProtocol.production_density_g_cm3`) replaces step 3's volume by the one
of that density and inserts a discarded ``relax`` stage of ``density_relax_ps`` at the new,
fixed volume before production. Each runner's module says how it realises the stages
(integrators, barostats) and which production ensembles it supports; the torch engine
(:mod:`cgforge.engines.torch_cg`) has no minimiser, runs both stages at the start volume for an
``nvt`` or ``nve`` production and both under its Monte Carlo barostat for ``npt``.

:class:`MDResult` is what a production run produced, in cgforge units. Its thermo table has the
columns :data:`THERMO_COLUMNS` for every engine, stages coded by :data:`STAGE_IDS`
(:func:`write_thermo_csv` writes it). Runners that keep their samples in chunk files read the
production back with :func:`production_samples` and :func:`production_boxes`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.errors import InputError, SimulationError, check_settings
from cgforge.fileio import read_state, write_json, write_npz, write_text
from cgforge.units import density_g_cm3

#: Production ensembles of :class:`MDProtocol`.
PRODUCTION_ENSEMBLES = ("nvt", "nve", "langevin", "npt")
#: Allowed range of :attr:`MDProtocol.production_density_scale` (and of the ratio an absolute
#: production density makes with the NPT mean density): beyond it a liquid state point is
#: unphysical (or the input a typo).
DENSITY_SCALE_RANGE = (0.5, 1.5)
#: CG MD engines of :class:`MDProtocol` (see :mod:`cgforge.engines.cg_engine`); all-atom runs
#: ignore the field.
CG_ENGINES = ("auto", "lammps", "openmm", "torch")

#: Thermo columns of :attr:`MDResult.thermo` for every engine, units in the names.
THERMO_COLUMNS = (
    "t_ps",
    "stage",
    "potential_kJ_mol",
    "kinetic_kJ_mol",
    "total_kJ_mol",
    "temperature_K",
    "volume_nm3",
    "density_g_cm3",
    "pressure_bar",
)
#: Stage codes of the ``stage`` thermo column; the discarded NVT stage at a fixed production
#: density is ``relax``.
STAGE_IDS: dict[str, int] = {"equilibration": 0, "production": 1, "relax": 2}

#: (stage name, steps done in stage, steps in stage, ns/day of the last segment)
ProgressCallback = Callable[[str, int, int, float], None]
#: The committed state of a chunked run (:class:`ChunkedRunner`) in its work directory.
STATE_FILE = "state.json"


def check_cg_threads(threads: Any) -> int:
    """``threads`` as the CPU threads of a CG engine (:attr:`MDProtocol.cg_threads`); an
    :class:`InputError` naming ``cg_threads`` unless it is a positive integer."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(
            f"cg_threads must be a positive integer (CPU threads of the CG engine), "
            f"got {threads!r}",
            parameters="cg_threads",
        )
    return threads


@dataclass(frozen=True)
class MDProtocol:
    """Settings of a staged MD run. Times in ps, temperature in K, pressure in bar."""

    temperature_K: float = 298.15
    pressure_bar: float = 1.0
    timestep_fs: float = 2.0
    minimize: bool = True
    equilibration_ps: float = 100.0
    production_ps: float = 1000.0
    sample_interval_ps: float = 1.0
    thermo_interval_ps: float = 0.1
    # "nvt" (Nosé–Hoover chain), "nve", "langevin" or "npt" (Nosé–Hoover chain + barostat)
    production_ensemble: str = "nvt"
    thermostat_collision_per_ps: float = 1.0  # Nosé–Hoover coupling frequency
    friction_per_ps: float = 1.0  # Langevin friction of the equilibration stage only
    barostat_interval: int = 25
    save_forces: bool = False
    save_particles: bool = True  # keep every particle's positions for a trajectory file
    checkpoint_interval_ps: float = 50.0
    platform: str = "auto"
    seed: int = 0
    max_energy_kj_mol_per_particle: float = 1.0e4  # blow-up detector
    # Langevin friction γ of a "langevin" production, 1/ps; required there, unused otherwise
    production_friction_per_ps: float | None = None
    # CG MD engine (one of CG_ENGINES); "auto" is resolved by cgforge.engines.cg_engine
    engine: str = "auto"
    # Fixed production density: production_density_scale × the mean NPT density of the second
    # half of equilibration (1.0: that density itself), or an absolute density in g/cm³; not
    # both. A fixed density other than the NPT mean gets a discarded NVT (Langevin) stage of
    # density_relax_ps at the new volume before production.
    production_density_scale: float = 1.0
    production_density_g_cm3: float | None = None
    density_relax_ps: float = 50.0
    # CPU threads of a CG engine (cgforge.engines.cg_engine): LAMMPS runs the OPENMP package on
    # that many threads (1: serial); OpenMM's CPU platform and the torch engine on the CPU take
    # a count above 1 as their thread count (1 leaves them at their own default); GPUs ignore
    # it. All-atom runs ignore it.
    cg_threads: int = 1

    def __post_init__(self) -> None:
        checks = {
            "temperature_K": self.temperature_K > 0,
            "pressure_bar": math.isfinite(self.pressure_bar),
            "timestep_fs": 0 < self.timestep_fs <= 50,
            "equilibration_ps": self.equilibration_ps >= 0,
            "production_ps": self.production_ps > 0,
            "sample_interval_ps": self.sample_interval_ps > 0,
            "thermo_interval_ps": self.thermo_interval_ps > 0,
            "checkpoint_interval_ps": self.checkpoint_interval_ps > 0,
            "barostat_interval": self.barostat_interval > 0,
        }
        check_settings(self, checks, "MD")
        if self.production_ensemble not in PRODUCTION_ENSEMBLES:
            raise InputError(
                f"production ensemble '{self.production_ensemble}' is not supported; use "
                f"{', '.join(PRODUCTION_ENSEMBLES)}"
            )
        gamma = self.production_friction_per_ps
        if gamma is not None and (
            isinstance(gamma, bool)
            or not isinstance(gamma, int | float)
            or not (math.isfinite(gamma) and gamma > 0)
        ):
            raise InputError(
                f"invalid MD setting production_friction_per_ps={gamma!r}; give a positive "
                "Langevin friction in 1/ps"
            )
        if self.engine not in CG_ENGINES:
            raise InputError(
                f"unknown CG engine {self.engine!r}; use one of {', '.join(CG_ENGINES)}"
            )
        if self.production_ensemble == "langevin" and gamma is None:
            raise InputError(
                "the langevin production ensemble needs production_friction_per_ps "
                "(the Langevin friction, 1/ps)"
            )
        check_cg_threads(self.cg_threads)
        self._check_density()

    def _check_density(self) -> None:
        scale, density = self.production_density_scale, self.production_density_g_cm3
        low, high = DENSITY_SCALE_RANGE
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not (math.isfinite(scale) and low <= scale <= high)
        ):
            raise InputError(
                f"production_density_scale must be a factor on the NPT mean density within "
                f"{low:g}-{high:g}, got {scale!r}",
                parameters="production_density_scale",
            )
        if density is not None and (
            isinstance(density, bool)
            or not isinstance(density, int | float)
            or not (math.isfinite(density) and 0.0 < density <= 5.0)
        ):
            raise InputError(
                f"production_density_g_cm3 must be a liquid density in g/cm³ (0-5), "
                f"got {density!r}",
                parameters="production_density_g_cm3",
            )
        if density is not None and scale != 1.0:
            raise InputError(
                "give production_density_scale or production_density_g_cm3, not both",
                parameters=("production_density_scale", "production_density_g_cm3"),
            )
        relax = self.density_relax_ps
        if isinstance(relax, bool) or not (isinstance(relax, int | float) and relax >= 0):
            raise InputError(
                f"invalid MD setting density_relax_ps={relax!r}; give a non-negative time in ps",
                parameters="density_relax_ps",
            )
        if not self.fixed_density:
            return
        which = "production_density_g_cm3" if density is not None else "production_density_scale"
        if self.production_ensemble == "npt":
            raise InputError(
                f"{which} fixes the production density, which an npt production does not keep; "
                "use production_ensemble nvt, nve or langevin",
                parameters=(which, "production_ensemble"),
            )
        if self.steps(self.equilibration_ps) == 0:
            raise InputError(
                f"{which} needs an NPT equilibration (equilibration_ps > 0) before the "
                "production at the fixed density",
                parameters=(which, "equilibration_ps"),
            )

    @property
    def dt_ps(self) -> float:
        return self.timestep_fs * 1.0e-3

    def steps(self, t_ps: float) -> int:
        return round(t_ps / self.dt_ps)

    def stride(self, interval_ps: float) -> int:
        return max(1, round(interval_ps / self.dt_ps))

    @property
    def fixed_density(self) -> bool:
        """Whether production runs at a density other than the NPT mean (a scale other than
        1 or an absolute density)."""
        return self.production_density_g_cm3 is not None or self.production_density_scale != 1.0

    @property
    def relax_steps(self) -> int:
        """Steps of the discarded NVT stage at the fixed production density (0: none)."""
        return self.steps(self.density_relax_ps) if self.fixed_density else 0

    def production_volume(self, npt_volume_nm3: float, total_mass_amu: float) -> float:
        """The production volume (nm³) given the mean NPT volume: that volume divided by
        :attr:`production_density_scale`, or the volume of :attr:`production_density_g_cm3`.
        An absolute density more than :data:`DENSITY_SCALE_RANGE` away from the NPT mean one
        is an :class:`InputError`."""
        if self.production_density_g_cm3 is None:
            return npt_volume_nm3 / self.production_density_scale
        npt_density = density_g_cm3(total_mass_amu, npt_volume_nm3)
        ratio = self.production_density_g_cm3 / npt_density
        low, high = DENSITY_SCALE_RANGE
        if not low <= ratio <= high:
            raise InputError(
                f"production_density_g_cm3 {self.production_density_g_cm3:g} is {ratio:.3g} "
                f"times the NPT mean density {npt_density:.4f} g/cm³, outside {low:g}-{high:g}; "
                "give a density near the liquid's",
                parameters="production_density_g_cm3",
            )
        return npt_volume_nm3 / ratio

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict; ``production_friction_per_ps`` only when it is set and
        ``engine`` only when it names an engine other than OpenMM, so that protocols without
        Langevin production run on OpenMM (and all-atom protocols, which leave ``engine`` at
        ``"auto"``) keep the run-directory hashes they had before these fields existed. CG
        workflows resolve ``"auto"`` to an engine before they hash a protocol. Not a round trip
        for ``engine="openmm"``: copy protocols with ``dataclasses.replace``. Likewise the
        fixed-density fields appear only for a fixed density (``production_density_scale`` other
        than 1, ``production_density_g_cm3`` set; ``density_relax_ps`` with either), the only
        case they act in, and ``cg_threads`` only when it is not 1 (a threaded run is a run of
        its own: OpenMP reductions change the trajectory's last bits)."""
        out = asdict(self)
        if out["production_friction_per_ps"] is None:
            del out["production_friction_per_ps"]
        if out["engine"] in ("auto", "openmm"):
            del out["engine"]
        if out["production_density_scale"] == 1.0:
            del out["production_density_scale"]
        if out["production_density_g_cm3"] is None:
            del out["production_density_g_cm3"]
        if not self.fixed_density:
            del out["density_relax_ps"]
        if out["cg_threads"] == 1:
            del out["cg_threads"]
        return out


@dataclass
class MDResult:
    """What a production run produced, in cgforge units."""

    times_ps: np.ndarray  # (F,)
    bead_positions_nm: np.ndarray  # (F, B, 3) unwrapped bead centres
    bead_forces_kj_mol_nm: np.ndarray | None  # (F, B, 3)
    box_nm: np.ndarray  # (3,) production box; the mean of frame_box_nm for an npt production
    bead_masses_amu: np.ndarray  # (B,)
    thermo: dict[str, np.ndarray]  # columns with units in the names, production and equilibration
    platform: str
    ns_per_day: float
    wall_s: float
    particle_chunks: list[Path] = field(default_factory=list)  # chunk files with particle positions
    # the engine's conserved energy at every thermo row (kJ/mol; for a thermostatted stage the
    # total energy minus the energy the thermostat put in), where the engine tracks it, else None
    conserved_kJ_mol: np.ndarray | None = None
    # (F, 3) box of every sample of an npt production (its volume varies); None where the
    # production box is constant (box_nm)
    frame_box_nm: np.ndarray | None = None
    # the mean NPT volume (nm³, second half of equilibration) the production volume was set
    # from (a fixed production density scales it); None without equilibration
    npt_volume_nm3: float | None = None
    # the Monte Carlo barostat's moves over the whole run (target pressure in bar, frequency in
    # steps, attempts, accepted, acceptance, the current ln V step), where the engine counts
    # them (the torch engine); None otherwise
    barostat: dict[str, float] | None = None

    @property
    def frame_boxes_nm(self) -> np.ndarray:
        """(F, 3) box of every production sample: :attr:`frame_box_nm`, else :attr:`box_nm`
        repeated."""
        if self.frame_box_nm is not None:
            return np.asarray(self.frame_box_nm, dtype=float)
        return np.tile(np.asarray(self.box_nm, dtype=float), (len(self.times_ps), 1))

    def iter_particle_frames(self):
        """Yield (time_ps, positions_nm (P,3)) of production frames from the chunk files."""
        for path in self.particle_chunks:
            with np.load(path) as data:
                if "particle_positions_nm" not in data:
                    continue
                for t, xyz in zip(data["times_ps"], data["particle_positions_nm"], strict=True):
                    yield float(t), np.asarray(xyz, dtype=float)


def write_thermo_csv(path: str | Path, thermo: dict[str, np.ndarray]) -> None:
    """``thermo.csv``: one row per sample, units in the column names, stages by name."""
    names = {code: name for name, code in STAGE_IDS.items()}
    columns = list(thermo)
    lines = [",".join(columns)]
    for row in np.column_stack([thermo[c] for c in columns]):
        cells = (
            names[int(v)] if c == "stage" else f"{v:.8g}" for c, v in zip(columns, row, strict=True)
        )
        lines.append(",".join(cells))
    write_text(path, "\n".join(lines) + "\n")


def write_chunk(
    workdir: Path,
    stage: str,
    index: int,
    thermo_rows: list[Any],
    sample_times: list[float],
    samples: dict[str, list[Any]],
) -> str:
    """Write a run's chunk ``index`` of ``stage`` (its thermo rows, sample times in ps and the
    sampled arrays) as ``<stage>-<index>.npz`` in ``workdir``; returns its name."""
    name = f"{stage}-{index:05d}.npz"
    arrays: dict[str, Any] = {
        "stage": np.array(stage),
        "thermo": np.array(thermo_rows, dtype=float).reshape(-1, len(THERMO_COLUMNS)),
        "times_ps": np.array(sample_times, dtype=float),
    }
    arrays.update({k: np.array(v) for k, v in samples.items()})
    write_npz(workdir / name, **arrays)
    return name


def chunk_thermo(
    workdir: Path, chunk_names: list[str], stage: str | None = None
) -> dict[str, np.ndarray]:
    """The thermo rows of a run's chunks (their ``thermo`` arrays), of one ``stage`` or all, as
    columns of :data:`THERMO_COLUMNS`."""
    rows = []
    for name in chunk_names:
        with np.load(workdir / name) as data:
            if stage is None or str(data["stage"]) == stage:
                rows.append(data["thermo"])
    table = np.concatenate(rows) if rows else np.empty((0, len(THERMO_COLUMNS)))
    return {col: table[:, i] for i, col in enumerate(THERMO_COLUMNS)}


def production_boxes(workdir: Path, chunk_names: list[str]) -> np.ndarray | None:
    """(F, 3) per-sample boxes (nm) of a run's production chunks (their ``box_nm`` arrays), or
    None where a production chunk with samples has none (a constant-volume production)."""
    boxes = []
    for name in chunk_names:
        with np.load(workdir / name) as data:
            if str(data["stage"]) != "production" or not len(data["times_ps"]):
                continue
            if "box_nm" not in data:
                return None
            boxes.append(np.asarray(data["box_nm"], dtype=float).reshape(-1, 3))
    return np.concatenate(boxes) if boxes else None


def production_samples(
    workdir: Path, chunk_names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[Path]]:
    """The production samples of a run's sample chunks (``.npz`` files of ``workdir`` written
    with ``stage``, ``times_ps``, ``bead_positions_nm`` and optionally
    ``bead_forces_kj_mol_nm``): times (ps), unwrapped bead positions (nm), forces
    (kJ/mol/nm) or None, and the production chunk paths. A production without samples is an
    error that says how to get some."""
    times, positions, forces, chunks = [], [], [], []
    for name in chunk_names:
        with np.load(workdir / name) as data:
            if str(data["stage"]) != "production":
                continue
            chunks.append(workdir / name)
            if len(data["times_ps"]):
                times.append(data["times_ps"])
                positions.append(data["bead_positions_nm"])
                if "bead_forces_kj_mol_nm" in data:
                    forces.append(data["bead_forces_kj_mol_nm"])
    if not times:
        raise SimulationError(
            "production produced no samples; lengthen the production or shorten the sample interval"
        )
    return (
        np.concatenate(times),
        np.concatenate(positions),
        np.concatenate(forces) if forces else None,
        chunks,
    )


@dataclass
class Segment:
    """What one checkpointed segment of a stage gathers before it goes to a chunk file: thermo
    rows, sample times (ps) and the sampled arrays by name; ``started`` is its wall clock."""

    thermo_rows: list[Any] = field(default_factory=list)
    sample_times: list[float] = field(default_factory=list)
    samples: dict[str, list[Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def add_sample(self, t_ps: float, sample: dict[str, Any]) -> None:
        """Keep the arrays of one sample at ``t_ps``."""
        for key, value in sample.items():
            self.samples.setdefault(key, []).append(value)
        self.sample_times.append(t_ps)


class ChunkedRunner:
    """The bookkeeping of the runners that run an :class:`MDProtocol` in segments and keep
    each segment in a chunk file (the OpenMM :class:`~cgforge.engines.openmm_md.MDRunner` and
    the LAMMPS :class:`~cgforge.engines.lammps_md.LammpsRunner`): the state committed to
    :data:`STATE_FILE` (stage, step within it, chunk names, and the engine's restart file under
    :attr:`restart_key`), the segment length, the end of a segment, progress reports and the
    result read back from the chunks. A subclass sets ``protocol``, ``workdir``, ``progress``
    and ``_segment_speed`` (ns/day of the last segment)."""

    #: The state's key of the file a run resumes from, and that file's ending.
    restart_key = "checkpoint"
    restart_suffix = ".chk"

    protocol: MDProtocol
    workdir: Path
    progress: ProgressCallback | None
    _segment_speed: float

    def _load_state(self) -> dict[str, Any]:
        fresh = {"stage": "minimize", "step": 0, "chunks": [], self.restart_key: None}
        return read_state(self.workdir / STATE_FILE, fresh)

    def _commit(self, state: dict[str, Any]) -> None:
        write_json(self.workdir / STATE_FILE, state)

    def _strides(self, stage: str) -> tuple[int, int, list[int], int]:
        """Thermo stride, sample stride (0 outside production), the strides in use, and the
        steps of a segment: the checkpoint interval (at least the longest stride) rounded up to
        a multiple of every stride."""
        p = self.protocol
        thermo_stride = p.stride(p.thermo_interval_ps)
        sample_stride = p.stride(p.sample_interval_ps) if stage == "production" else 0
        strides = [thermo_stride] + ([sample_stride] if sample_stride else [])
        lcm = math.lcm(*strides)
        segment = max(p.stride(p.checkpoint_interval_ps), max(strides))
        return thermo_stride, sample_stride, strides, math.ceil(segment / lcm) * lcm

    def _end_segment(
        self,
        state: dict[str, Any],
        stage: str,
        step: int,
        end: int,
        segment: Segment,
        save: Callable[[str], str],
    ) -> dict[str, Any]:
        """Close the segment of ``stage`` from ``step`` to ``end``: its speed, its chunk file,
        the engine's restart file (``save(name)`` writes it, returns its name), then the
        committed state that holds both; the previous restart file is removed. Returns the
        new state."""
        elapsed = time.perf_counter() - segment.started
        if elapsed > 0:
            self._segment_speed = (end - step) * self.protocol.dt_ps * 1e-3 / elapsed * 86400.0
        chunk_name = write_chunk(
            self.workdir,
            stage,
            len(state["chunks"]),
            segment.thermo_rows,
            segment.sample_times,
            segment.samples,
        )
        restart = save(f"{stage}-{end}{self.restart_suffix}")
        previous = state.get(self.restart_key)
        state = dict(state, step=end, chunks=[*state["chunks"], chunk_name])
        state[self.restart_key] = restart
        self._commit(state)
        if previous and previous != restart:
            (self.workdir / previous).unlink(missing_ok=True)
        return state

    def _chunk_result(
        self, state: dict[str, Any], wall_s: float, *, bead_masses: np.ndarray, platform: str
    ) -> MDResult:
        """The :class:`MDResult` of a finished run, read back from its chunks."""
        times, positions, forces, chunks = production_samples(self.workdir, state["chunks"])
        frame_box = production_boxes(self.workdir, state["chunks"])
        return MDResult(
            times_ps=times,
            bead_positions_nm=positions,
            bead_forces_kj_mol_nm=forces,
            box_nm=np.array(state["box_nm"]) if frame_box is None else frame_box.mean(axis=0),
            bead_masses_amu=bead_masses,
            thermo=chunk_thermo(self.workdir, state["chunks"]),
            platform=platform,
            ns_per_day=self._segment_speed,
            wall_s=wall_s,
            particle_chunks=chunks,
            frame_box_nm=frame_box,
            npt_volume_nm3=state.get("npt_volume_nm3"),
        )

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total, self._segment_speed)
