"""Staged molecular dynamics on OpenMM with sampling, checkpoints and resume.

One runner serves all-atom and coarse-grained systems alike: a system, its particle positions and a
``groups`` array that maps each particle to its bead (molecule index for all-atom runs, the identity
for CG runs). The protocol is

1. energy minimisation,
2. NPT equilibration (Langevin middle integrator + Monte Carlo barostat; stochastic dynamics are fine
   here because nothing dynamic is measured),
3. the box set to the mean volume of the second half of the NPT stage (bead centres scaled),
4. production at that volume under Newtonian dynamics (``nve``, velocity Verlet) or a global
   Nosé–Hoover chain thermostat (``nvt``), so that diffusion is the model's own; or, on request,
   under Langevin dynamics (``langevin``, Langevin middle integrator with friction
   ``production_friction_per_ps``). Langevin friction slows diffusion by design: it is the
   production ensemble of the friction baseline (:mod:`cgforge.methods.friction`), which adds
   the friction a CG model lacks, never a way to measure a model's Newtonian mobility.
   ``npt`` keeps the equilibration's Monte Carlo barostat (same pressure and interval) in
   production, started from that mean volume, with the Nosé–Hoover chain of ``nvt`` as
   thermostat (not the equilibration's Langevin integrator, whose friction would slow
   diffusion); the volume then fluctuates and every sample records its box
   (:attr:`MDResult.frame_box_nm`).

A fixed production density (:attr:`MDProtocol.production_density_scale` × the NPT mean density,
or an absolute :attr:`MDProtocol.production_density_g_cm3`; force matching at a compressed or
expanded state point) replaces step 3's volume by the one of that density, bead centres scaled
the same way, and inserts a discarded ``relax`` stage before production: ``density_relax_ps`` of
Langevin dynamics (the equilibration's integrator and friction) at the new, fixed volume, so that
production starts from a configuration relaxed at its density. Its thermo rows carry the stage
``relax`` and it holds no samples.

Bead positions (mass-weighted centres, unwrapped), mapped forces (sum over each bead's particles),
and thermodynamics (energies, temperature, volume, density, instantaneous molecular pressure) are
sampled during production. Work is done in segments; after each segment the samples are written to a
chunk file, then an OpenMM checkpoint, then a small JSON state that commits both. A run that is
killed resumes from its last committed segment with nothing lost and nothing duplicated.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import openmm
import openmm.app as app

from cgforge.errors import InputError, SimulationError
from cgforge.fileio import atomic_path, read_state, write_json, write_npz, write_text
from cgforge.mapping import center_of_mass, map_forces
from cgforge.units import KB_KJ_MOL_K, density_g_cm3

STATE_FILE = "state.json"
#: Production ensembles of :class:`MDProtocol`.
PRODUCTION_ENSEMBLES = ("nvt", "nve", "langevin", "npt")
#: Allowed range of :attr:`MDProtocol.production_density_scale` (and of the ratio an absolute
#: production density makes with the NPT mean density): beyond it a liquid state point is
#: unphysical (or the input a typo).
DENSITY_SCALE_RANGE = (0.5, 1.5)
#: CG MD engines of :class:`MDProtocol` (see :mod:`cgforge.engines.cg_engine`); all-atom runs
#: ignore the field.
CG_ENGINES = ("auto", "lammps", "openmm", "torch")

#: (stage name, steps done in stage, steps in stage, ns/day of the last segment)
ProgressCallback = Callable[[str, int, int, float], None]


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
        for name, ok in checks.items():
            if not ok:
                raise InputError(f"invalid MD setting {name}={getattr(self, name)!r}")
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
    names = {code: name for name, code in MDRunner.STAGE_IDS.items()}
    columns = list(thermo)
    lines = [",".join(columns)]
    for row in np.column_stack([thermo[c] for c in columns]):
        cells = (
            names[int(v)] if c == "stage" else f"{v:.8g}" for c, v in zip(columns, row, strict=True)
        )
        lines.append(",".join(cells))
    write_text(path, "\n".join(lines) + "\n")


def select_platform(name: str) -> tuple[openmm.Platform, dict[str, str]]:
    """OpenMM platform by name: ``auto`` picks CUDA when present, else CPU."""
    available = {
        openmm.Platform.getPlatform(i).getName().lower(): openmm.Platform.getPlatform(i)
        for i in range(openmm.Platform.getNumPlatforms())
    }
    wanted = name.lower()
    if wanted == "auto":
        for candidate in ("cuda", "cpu", "reference"):
            if candidate in available:
                wanted = candidate
                break
    if wanted not in available:
        raise InputError(
            f"platform '{name}' is not available to OpenMM here (available: "
            f"{', '.join(sorted(available))}); use platform='auto'",
            parameters="platform",
        )
    properties = {"Precision": "mixed"} if wanted in ("cuda", "opencl") else {}
    return available[wanted], properties


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


class MDRunner:
    """Runs :class:`MDProtocol` on an OpenMM system in a work directory with resume."""

    def __init__(
        self,
        system: openmm.System,
        topology: app.Topology,
        positions_nm: np.ndarray,
        box_nm: np.ndarray,
        groups: np.ndarray,
        protocol: MDProtocol,
        workdir: str | Path,
        *,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.system = system
        self.topology = topology
        self.positions_nm = np.asarray(positions_nm, dtype=float)
        self.box_nm = np.asarray(box_nm, dtype=float)
        self.groups = np.asarray(groups, dtype=int)
        self.protocol = protocol
        self.workdir = Path(workdir)
        self.progress = progress
        n = system.getNumParticles()
        if self.positions_nm.shape != (n, 3) or self.groups.shape != (n,):
            raise InputError(
                f"system has {n} particles but positions have shape {self.positions_nm.shape} "
                f"and groups {self.groups.shape}"
            )
        self.masses = np.array(
            [system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(n)]
        )
        self.n_beads = int(self.groups.max()) + 1
        self.bead_masses = np.bincount(self.groups, weights=self.masses, minlength=self.n_beads)
        if np.any(self.bead_masses <= 0):
            raise InputError(
                "every bead needs a positive mass (check the system's particle masses)"
            )
        self.n_constraints = system.getNumConstraints()
        # Every context gets a CMMotionRemover (see _make_simulation): no collective drift, whose
        # ballistic motion would otherwise add to the MSD, and 3 fewer degrees of freedom.
        self.dof = 3 * n - self.n_constraints - 3
        self.platform, self.platform_properties = select_platform(protocol.platform)
        self._segment_speed = 0.0

    # ------------------------------------------------------------------ state on disk
    def _state_path(self) -> Path:
        return self.workdir / STATE_FILE

    def _load_state(self) -> dict[str, Any]:
        fresh = {"stage": "minimize", "step": 0, "chunks": [], "checkpoint": None}
        return read_state(self._state_path(), fresh)

    def _commit(self, state: dict[str, Any]) -> None:
        write_json(self._state_path(), state)

    # ------------------------------------------------------------------ contexts
    def _make_simulation(self, stage: str, box_nm: np.ndarray) -> app.Simulation:
        p = self.protocol
        system = openmm.XmlSerializer.clone(self.system)
        if not any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
            system.addForce(openmm.CMMotionRemover())
        T = p.temperature_K * openmm.unit.kelvin
        barostat = openmm.MonteCarloBarostat(
            p.pressure_bar * openmm.unit.bar, T, p.barostat_interval
        )
        barostat.setRandomNumberSeed(p.seed + 17)
        if stage in ("minimize", "equilibration"):
            integrator: openmm.Integrator = openmm.LangevinMiddleIntegrator(
                T, p.friction_per_ps / openmm.unit.picosecond, p.dt_ps * openmm.unit.picosecond
            )
            integrator.setRandomNumberSeed(p.seed + 1)
        elif stage == "relax":
            # the equilibration's integrator at the fixed production volume
            integrator = openmm.LangevinMiddleIntegrator(
                T, p.friction_per_ps / openmm.unit.picosecond, p.dt_ps * openmm.unit.picosecond
            )
            integrator.setRandomNumberSeed(p.seed + 7)
            barostat.setFrequency(0)  # present only to compute the molecular pressure
        else:
            if p.production_ensemble == "npt":
                # the equilibration's barostat, its own random stream (a checkpoint restores it)
                barostat.setRandomNumberSeed(p.seed + 19)
            else:
                barostat.setFrequency(0)  # present only to compute the molecular pressure
            if p.production_ensemble in ("nvt", "npt"):
                integrator = openmm.NoseHooverIntegrator(
                    T,
                    p.thermostat_collision_per_ps / openmm.unit.picosecond,
                    p.dt_ps * openmm.unit.picosecond,
                )
            elif p.production_ensemble == "langevin":
                integrator = openmm.LangevinMiddleIntegrator(
                    T,
                    p.production_friction_per_ps / openmm.unit.picosecond,
                    p.dt_ps * openmm.unit.picosecond,
                )
                # its own stream (the equilibration's is seed + 1); a checkpoint restores it
                integrator.setRandomNumberSeed(p.seed + 5)
            else:
                integrator = openmm.VerletIntegrator(p.dt_ps * openmm.unit.picosecond)
        system.addForce(barostat)
        self._barostat_index = system.getNumForces() - 1
        a = openmm.Vec3(box_nm[0], 0, 0)
        b = openmm.Vec3(0, box_nm[1], 0)
        c = openmm.Vec3(0, 0, box_nm[2])
        system.setDefaultPeriodicBoxVectors(a, b, c)
        topology = app.Topology()  # the context does not need atom names
        simulation = app.Simulation(
            topology, system, integrator, self.platform, self.platform_properties
        )
        return simulation

    def _barostat(self, simulation: app.Simulation) -> openmm.MonteCarloBarostat:
        return simulation.system.getForce(self._barostat_index)

    def _save_checkpoint(self, simulation: app.Simulation, name: str) -> str:
        with atomic_path(self.workdir / name) as tmp:
            simulation.saveCheckpoint(str(tmp))
        return name

    def _load_checkpoint(self, simulation: app.Simulation, name: str) -> None:
        try:
            simulation.loadCheckpoint(str(self.workdir / name))
        except Exception as exc:  # OpenMM raises plain Exception for a foreign checkpoint
            raise InputError(
                f"cannot resume from {self.workdir / name} ({exc}); it comes from other hardware "
                "or another OpenMM version: rerun with the same platform or start afresh",
                parameters="platform",
            ) from exc

    # ------------------------------------------------------------------ sampling
    def _check_energy(self, potential: float, stage: str, step: int) -> None:
        limit = self.protocol.max_energy_kj_mol_per_particle * self.system.getNumParticles()
        if not math.isfinite(potential) or abs(potential) > limit:
            raise SimulationError(
                f"the simulation blew up in {stage} at step {step} (potential energy {potential:.3g} "
                "kJ/mol); the last good checkpoint is kept. Check the force field, use a smaller "
                "time step or a longer equilibration"
            )

    def _thermo_row(self, simulation: app.Simulation, t_ps: float, stage_id: int) -> list[float]:
        state = simulation.context.getState(getEnergy=True)
        pot = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        kin = state.getKineticEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        volume = float(box[0, 0] * box[1, 1] * box[2, 2])
        temperature = 2.0 * kin / (self.dof * KB_KJ_MOL_K) if self.dof > 0 else float("nan")
        pressure = self._barostat(simulation).computeCurrentPressure(simulation.context)
        if openmm.unit.is_quantity(pressure):
            pressure = pressure.value_in_unit(openmm.unit.bar)
        density = density_g_cm3(float(self.masses.sum()), volume)
        return [t_ps, stage_id, pot, kin, pot + kin, temperature, volume, density, pressure]

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
    #: the discarded NVT stage at a fixed production density is ``relax``
    STAGE_IDS: ClassVar[dict[str, int]] = {"equilibration": 0, "production": 1, "relax": 2}

    def _sample(self, simulation: app.Simulation) -> dict[str, np.ndarray]:
        want_forces = self.protocol.save_forces
        state = simulation.context.getState(
            getPositions=True, getForces=want_forces, enforcePeriodicBox=False
        )
        xyz = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        out = {"bead_positions_nm": center_of_mass(xyz, self.masses, self.groups)}
        if want_forces:
            f = state.getForces(asNumpy=True).value_in_unit(
                openmm.unit.kilojoule_per_mole / openmm.unit.nanometer
            )
            out["bead_forces_kj_mol_nm"] = map_forces(f, self.groups)
        if self.protocol.save_particles:
            out["particle_positions_nm"] = xyz.astype(np.float32)
        if self.protocol.production_ensemble == "npt":
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(openmm.unit.nanometer)
            out["box_nm"] = np.diag(np.asarray(box, dtype=float)).copy()
        return out

    # ------------------------------------------------------------------ stages
    def run(self) -> MDResult:
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        started = time.perf_counter()
        p = self.protocol

        if state["stage"] == "minimize":
            simulation = self._make_simulation("minimize", self.box_nm)
            simulation.context.setPositions(self.positions_nm)
            if p.minimize:
                self._report("minimize", 0, 1)
                simulation.minimizeEnergy(maxIterations=2000)
                self._report("minimize", 1, 1)
            potential = simulation.context.getState(getEnergy=True).getPotentialEnergy()
            self._check_energy(
                potential.value_in_unit(openmm.unit.kilojoule_per_mole), "minimisation", 0
            )
            simulation.context.setVelocitiesToTemperature(
                p.temperature_K * openmm.unit.kelvin, p.seed + 3
            )
            state = {"stage": "equilibration", "step": 0, "chunks": [], "checkpoint": None}
            state["checkpoint"] = self._save_checkpoint(simulation, "equilibration-0.chk")
            self._commit(state)

        if state["stage"] == "equilibration":
            state = self._run_stage(
                "equilibration", p.steps(p.equilibration_ps), self.box_nm, state
            )
            # Production volume: the mean NPT volume over the second half of equilibration.
            eq = self._load_thermo(state, stage="equilibration")
            volumes = eq["volume_nm3"]
            simulation = self._make_simulation("equilibration", self.box_nm)
            self._load_checkpoint(simulation, state["checkpoint"])
            current = simulation.context.getState(
                getPositions=True, getVelocities=True, enforcePeriodicBox=False
            )
            box_now = np.diag(
                current.getPeriodicBoxVectors(asNumpy=True).value_in_unit(openmm.unit.nanometer)
            )
            npt_volume = (
                float(np.mean(volumes[len(volumes) // 2 :]))
                if len(volumes) >= 2
                else float(np.prod(box_now))
            )
            target_volume = npt_volume
            if p.fixed_density:
                target_volume = p.production_volume(npt_volume, float(self.masses.sum()))
            if len(volumes) >= 2 or p.fixed_density:
                box_prod = box_now * (target_volume / np.prod(box_now)) ** (1.0 / 3.0)
            else:
                box_prod = box_now
            following = "relax" if p.relax_steps > 0 else "production"
            if p.steps(p.equilibration_ps) > 0:
                state = dict(state, npt_volume_nm3=npt_volume)
            state = self._start_stage(current, box_now, box_prod, following, state)

        if state["stage"] == "relax":
            # discarded NVT stage at the fixed production density, then production from its end
            box_prod = np.array(state["box_nm"])
            state = self._run_stage("relax", p.relax_steps, box_prod, state)
            simulation = self._make_simulation("relax", box_prod)
            self._load_checkpoint(simulation, state["checkpoint"])
            current = simulation.context.getState(
                getPositions=True, getVelocities=True, enforcePeriodicBox=False
            )
            state = self._start_stage(current, box_prod, box_prod, "production", state)

        if state["stage"] == "production":
            box_prod = np.array(state["box_nm"])
            state = self._run_stage("production", p.steps(p.production_ps), box_prod, state)
            state["stage"] = "done"
            self._commit(state)

        return self._result(state, time.perf_counter() - started)

    def _start_stage(
        self,
        current: openmm.State,
        box_from: np.ndarray,
        box_to: np.ndarray,
        stage: str,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        """Commit the start of ``stage`` (relax or production) in the box ``box_to``: the
        positions and velocities of ``current`` (in ``box_from``), bead centres scaled."""
        positions = self._scale_beads(
            current.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer),
            box_from,
            box_to,
        )
        velocities = current.getVelocities(asNumpy=True).value_in_unit(
            openmm.unit.nanometer / openmm.unit.picosecond
        )
        simulation = self._make_simulation(stage, box_to)
        simulation.context.setPositions(positions)
        simulation.context.setVelocities(velocities)
        simulation.context.applyConstraints(1e-6)
        simulation.context.applyVelocityConstraints(1e-6)
        previous = state["checkpoint"]
        new = {
            "stage": stage,
            "step": 0,
            "chunks": state["chunks"],
            "checkpoint": self._save_checkpoint(simulation, f"{stage}-0.chk"),
            "box_nm": np.asarray(box_to, dtype=float).tolist(),
        }
        if state.get("npt_volume_nm3") is not None:
            new["npt_volume_nm3"] = state["npt_volume_nm3"]
        self._commit(new)
        if previous != new["checkpoint"]:
            (self.workdir / previous).unlink(missing_ok=True)
        return new

    def _scale_beads(self, xyz: np.ndarray, box_from: np.ndarray, box_to: np.ndarray) -> np.ndarray:
        """Scale bead centres affinely to the new box, keeping each bead's internal geometry."""
        shift = center_of_mass(xyz, self.masses, self.groups) * (box_to / box_from - 1.0)
        return xyz + shift[self.groups]

    def _run_stage(
        self, stage: str, n_steps: int, box_nm: np.ndarray, state: dict[str, Any]
    ) -> dict[str, Any]:
        p = self.protocol
        simulation = self._make_simulation(stage, box_nm)
        self._load_checkpoint(simulation, state["checkpoint"])
        thermo_stride = p.stride(p.thermo_interval_ps)
        sample_stride = p.stride(p.sample_interval_ps) if stage == "production" else 0
        strides = [thermo_stride] + ([sample_stride] if sample_stride else [])
        segment = max(p.stride(p.checkpoint_interval_ps), max(strides))
        segment = math.ceil(segment / math.lcm(*strides)) * math.lcm(*strides)
        stage_id = self.STAGE_IDS[stage]
        step = int(state["step"])
        dt = p.dt_ps
        while step < n_steps:
            end = min(n_steps, step + segment)
            thermo_rows: list[list[float]] = []
            samples: dict[str, list[np.ndarray]] = {}
            sample_times: list[float] = []
            tic = time.perf_counter()
            done = step
            while done < end:
                next_stop = end
                for stride in strides:
                    next_stop = min(next_stop, (done // stride + 1) * stride)
                simulation.step(next_stop - done)
                done = next_stop
                t_ps = done * dt
                if done % thermo_stride == 0:
                    row = self._thermo_row(simulation, t_ps, stage_id)
                    self._check_energy(row[2], stage, done)
                    thermo_rows.append(row)
                if sample_stride and done % sample_stride == 0:
                    for key, value in self._sample(simulation).items():
                        samples.setdefault(key, []).append(value)
                    sample_times.append(t_ps)
                self._report(stage, done, n_steps)
            elapsed = time.perf_counter() - tic
            if elapsed > 0:
                self._segment_speed = (end - step) * dt * 1e-3 / elapsed * 86400.0
            chunk_name = f"{stage}-{len(state['chunks']):05d}.npz"
            arrays: dict[str, Any] = {
                "stage": np.array(stage),
                "thermo": np.array(thermo_rows, dtype=float).reshape(-1, len(self.THERMO_COLUMNS)),
                "times_ps": np.array(sample_times, dtype=float),
            }
            arrays.update({k: np.array(v) for k, v in samples.items()})
            write_npz(self.workdir / chunk_name, **arrays)
            checkpoint = self._save_checkpoint(simulation, f"{stage}-{end}.chk")
            previous = state.get("checkpoint")
            state = dict(
                state, step=end, checkpoint=checkpoint, chunks=[*state["chunks"], chunk_name]
            )
            self._commit(state)
            if previous and previous != checkpoint and (self.workdir / previous).exists():
                (self.workdir / previous).unlink()
            step = end
        return state

    def _load_thermo(
        self, state: dict[str, Any], *, stage: str | None = None
    ) -> dict[str, np.ndarray]:
        rows = []
        for name in state["chunks"]:
            with np.load(self.workdir / name) as data:
                if stage is None or str(data["stage"]) == stage:
                    rows.append(data["thermo"])
        table = np.concatenate(rows) if rows else np.empty((0, len(self.THERMO_COLUMNS)))
        return {col: table[:, i] for i, col in enumerate(self.THERMO_COLUMNS)}

    def _result(self, state: dict[str, Any], wall_s: float) -> MDResult:
        times, positions, forces, chunks = production_samples(self.workdir, state["chunks"])
        frame_box = production_boxes(self.workdir, state["chunks"])
        return MDResult(
            times_ps=times,
            bead_positions_nm=positions,
            bead_forces_kj_mol_nm=forces,
            box_nm=np.array(state["box_nm"]) if frame_box is None else frame_box.mean(axis=0),
            bead_masses_amu=self.bead_masses,
            thermo=self._load_thermo(state),
            platform=self.platform.getName(),
            ns_per_day=self._segment_speed,
            wall_s=wall_s,
            particle_chunks=chunks,
            frame_box_nm=frame_box,
            npt_volume_nm3=state.get("npt_volume_nm3"),
        )

    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total, self._segment_speed)
