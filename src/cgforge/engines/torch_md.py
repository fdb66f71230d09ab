"""Coarse-grained molecular dynamics in PyTorch with any :class:`~cgforge.methods.gnn.EnergyModel`.

:class:`TorchMD` integrates bead positions in an orthorhombic periodic box (NVE or NVT at a
given density, or NPT at a given pressure) with forces from a torch energy model, on the CPU or
a CUDA device:

* velocity Verlet; for NVT followed once per step by the stochastic velocity rescaling of
  Bussi, Donadio & Parrinello (J. Chem. Phys. 126, 014101, 2007), a *global* thermostat: it
  rescales all velocities by one factor, so it leaves the dynamics that set the diffusion
  coefficient essentially untouched (unlike Langevin friction, which cgforge never uses for a
  production that measures D);
* with ``pressure_bar``, an isotropic Monte Carlo barostat as OpenMM's ``MonteCarloBarostat``
  (Chow & Ferguson, Comput. Phys. Commun. 91, 283, 1995; Åqvist et al., Chem. Phys. Lett.
  384, 288, 2004): every ``barostat_frequency`` steps it proposes ln V' = ln V + δ, δ uniform
  in [−Δ, Δ], scales the box and every bead (one bead is one molecule's centre) by
  (V'/V)^(1/3), evaluates the model at the trial state and accepts with the Metropolis
  probability min(1, exp(−w/kT)),

      w = U(V') − U(V) + P (V' − V) − (N + 1) kT ln(V'/V),

  the isothermal–isobaric acceptance rule for moves uniform in ln V (Frenkel & Smit,
  *Understanding Molecular Simulation*, 2nd ed., section 5.4.2: N from the scaled
  coordinates, one more from the ln V measure; OpenMM's moves, uniform in V, carry N). It
  samples the volume density ∝ V^N exp(−(U + PV)/kT), so that an ideal gas has
  <V> = (N + 1) kT / P. Velocities are left as they are; the energy jump of an accepted move
  is booked like the thermostat's work, so that the conserved energy follows the integration
  error alone. Δ adapts as OpenMM's does: after at least 10 attempts it shrinks by 1.1 when
  fewer than 25 % were accepted, grows by 1.1 (to at most :data:`BAROSTAT_MAX_STEP`) when
  more than 75 % were, and the count restarts; the acceptance so settles between 25 and 75 %.
  The random numbers come from the engine's generator. A trial box shorter than twice the
  model's cutoff on any edge raises :class:`~cgforge.errors.SimulationError` (the system needs
  more beads). Positions stay unwrapped: scaling an unwrapped position about the origin scales
  its wrapped image and its periodic offset alike (image count × new edge), as LAMMPS's ``xu``
  under ``fix npt`` and OpenMM's scaled molecule centres do; every sample records its box;
* Maxwell–Boltzmann start velocities from a seed, with zero net momentum; the number of
  degrees of freedom is 3N − 3;
* thermodynamics at every sample: kinetic, potential, total and conserved energy (total minus
  the energy the thermostat and the barostat's moves put in), temperature, density, volume
  and the pressure from the virial,
  P = (2K + W) / (3V) with W = Σ r_ij·f_ij obtained by autograd as −dE/dε under a uniform
  scaling of positions and box by (1 + ε) (exact for pair and many-body models alike);
* unwrapped positions (and optionally forces) and the box every sample, returned as a
  :class:`~cgforge.trajectory.CGTrajectory`;
* blow-up detection after every force evaluation: a non-finite energy or force, a force above
  ``max_force_kj_mol_nm``, or a bead moving more than ``max_step_nm`` in one step raises
  :class:`~cgforge.errors.SimulationError` naming the step and the fix;
* checkpoints: with ``checkpoint_dir`` the samples are written in chunks and the full state
  (positions, velocities, forces, box, thermostat energy, barostat step size and counters,
  random-number state) atomically every ``checkpoint_interval`` steps; calling
  :meth:`TorchMD.run` again with the same directory (in a new process, on a new engine built
  with the same arguments) resumes where the last checkpoint left off and, on the CPU in
  float64, gives bitwise the same trajectory as an uninterrupted run. Checkpoints of the
  format before the barostat (version 1, constant volume) are still read.

The state (positions, velocities) is held in float64 whatever the model's dtype; forces are
evaluated in the model's dtype and accumulated in float64. Neighbour searches are reused
between steps through a Verlet list (:class:`~cgforge.potentials.neural.neighbors.NeighborCache`,
rebuilt when a bead has moved more than half the skin, and after every change of the box) that
does not change any result. A step reads numbers back from the device twice: the Verlet list's
largest displacement and, in one transfer, the energy, virial, largest force, largest
displacement and kinetic energy that the blow-up checks and the thermostat need (a volume move
adds one transfer).

Memory on the CPU: a force evaluation allocates and frees tens of megabytes of autograd
intermediates (about 10 MB for 216 SchNet beads, 45 MB for 1,000). With glibc's default
settings malloc hands that memory back to the operating system after every step (it trims the
heap, and serves large blocks by fresh ``mmap``), so the next step page-faults it in again:
2,000 to 11,000 page faults per step, a third of the step's time. A CPU engine therefore calls
:func:`retain_freed_memory` (once per process; ``retain_freed_memory=False`` opts out), which
keeps freed memory in the heap for reuse. It changes no number, only where memory comes from.

Units: positions nm, velocities nm/ps, masses amu, time step fs (converted to ps inside),
energies kJ/mol, forces kJ/mol/nm, pressure bar. amu·nm²/ps² = kJ/mol, so F/m is in nm/ps².
"""

from __future__ import annotations

import ctypes
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from cgforge.errors import InputError, SimulationError, require_positive
from cgforge.fileio import atomic_path, write_npz
from cgforge.potentials.neural.base import EnergyModel
from cgforge.potentials.neural.neighbors import NeighborCache, use_neighbor_cache
from cgforge.trajectory import CGTrajectory
from cgforge.units import KB_KJ_MOL_K, KJ_MOL_NM3_TO_BAR, density_g_cm3

#: Thermostats of :class:`TorchMD`: ``"bussi"`` (NVT) and ``"none"`` (NVE).
THERMOSTATS = ("bussi", "none")
#: Default coupling time of the Bussi thermostat, ps.
DEFAULT_TAU_PS = 0.5
#: Default force above which a step is reported as a blow-up, kJ/mol/nm.
DEFAULT_MAX_FORCE_KJ_MOL_NM = 1.0e6
#: Default largest displacement of a bead in one step before it is reported as a blow-up, nm.
DEFAULT_MAX_STEP_NM = 0.1
#: Default Verlet-list skin, nm.
DEFAULT_SKIN_NM = 0.1
#: Default number of steps between Monte Carlo volume moves (OpenMM's default).
DEFAULT_BAROSTAT_FREQUENCY = 25
#: Start half-width Δ of the barostat's ln V moves (1 % of the volume, OpenMM's start).
BAROSTAT_START_STEP = 0.01
#: Largest Δ the adaptation reaches (volume changes up to ~30 %, OpenMM's bound).
BAROSTAT_MAX_STEP = 0.3
#: Attempts before the barostat's step size is adapted, the acceptance range it keeps and the
#: factor of one adaptation (OpenMM's values).
BAROSTAT_ADAPT_ATTEMPTS = 10
BAROSTAT_ACCEPTANCE_RANGE = (0.25, 0.75)
BAROSTAT_ADAPT_FACTOR = 1.1
#: Columns of :attr:`TorchMDResult.thermo`, units in the names.
THERMO_COLUMNS = (
    "step",
    "t_ps",
    "potential_kJ_mol",
    "kinetic_kJ_mol",
    "total_kJ_mol",
    "conserved_kJ_mol",
    "temperature_K",
    "pressure_bar",
    "density_g_cm3",
    "volume_nm3",
)
_CHECKPOINT_FORMAT = "cgforge-torch-md-checkpoint"
#: Version 2 adds the box, the barostat state and per-sample boxes and volumes; version 1
#: checkpoints (constant volume) are read as well.
_CHECKPOINT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_STATE_FILE = "state.pt"

#: Called after every sample as ``callback(engine, step)``; may raise to stop the run.
SampleCallback = Callable[["TorchMD", int], None]


#: Largest block glibc malloc may serve from the heap when :func:`retain_freed_memory` has run
#: (glibc's upper bound for ``M_MMAP_THRESHOLD`` on 64-bit systems), bytes.
MALLOC_MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory at the top of the heap that glibc malloc keeps after :func:`retain_freed_memory`
#: instead of returning it to the operating system, bytes.
MALLOC_TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # mallopt parameters of glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_malloc_tuned: bool | None = None


def retain_freed_memory() -> bool:
    """Make glibc malloc keep freed memory for reuse instead of returning it to the system.

    Sets ``M_MMAP_THRESHOLD`` to :data:`MALLOC_MMAP_THRESHOLD_BYTES` (blocks up to 32 MB come
    from the heap, not from a fresh ``mmap`` each) and ``M_TRIM_THRESHOLD`` to
    :data:`MALLOC_TRIM_THRESHOLD_BYTES` (up to 1 GB of free heap is kept). Autograd on the CPU
    allocates and frees the same tens of megabytes at every MD step; with glibc's defaults each
    step page-faults them in again (see the module docstring). Process-wide and permanent
    (glibc cannot restore its adaptive defaults); applied once, later calls return the first
    answer. Returns whether the settings were applied (False where the C library is not glibc).
    """
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            mmap_ok = mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES)
            trim_ok = mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES)
            _malloc_tuned = bool(mmap_ok and trim_ok)
    return _malloc_tuned


_retain_freed_memory = retain_freed_memory


def select_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for ``device``: ``"auto"`` → CUDA when available, else CPU; ``"cpu"``,
    ``"cuda"``, ``"cuda:1"`` as named. CUDA without a GPU, or another kind, is an InputError.

    The one device choice of cgforge (MD with neural models, training, the ``--device`` flags).
    """
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown torch device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but torch sees no CUDA GPU; use cpu/auto")
    if chosen.type not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported; use auto, cpu or cuda")
    return chosen


@dataclass(frozen=True)
class TorchMDResult:
    """Samples of one :meth:`TorchMD.run`.

    ``trajectory`` holds the unwrapped positions (and forces when recorded) and the box of
    every sample, the first at the run's start; ``thermo`` one array per
    :data:`THERMO_COLUMNS` entry. ``wall_s`` and ``steps_per_s`` count only the steps
    integrated in this call (not those recovered from a checkpoint). ``barostat`` (None
    without one): :meth:`TorchMD.barostat_stats` at the end of the run.
    """

    trajectory: CGTrajectory
    thermo: dict[str, np.ndarray]
    n_steps: int
    timestep_fs: float
    wall_s: float
    steps_per_s: float
    device: str
    neighbor_builds: int
    resumed_from_step: int | None
    barostat: dict[str, float] | None = None


class TorchMD:
    """Velocity-Verlet MD of beads with a torch energy model in a periodic box (fixed, or
    under a Monte Carlo barostat).

    Parameters
    ----------
    model:
        Energy model (kJ/mol of positions in nm and box in nm); moved to ``device`` and put
        in eval mode (in place, as ``Module.to`` does). Its parameters are left as they are:
        forces are gradients with respect to positions only.
    positions_nm:
        Start positions (N, 3), nm (wrapped or not).
    box_nm:
        Box edge(s), nm: one number (cubic) or three.
    masses_amu:
        Bead mass(es), amu: one number or N.
    timestep_fs:
        Time step, fs.
    temperature_K:
        Thermostat temperature and temperature of the start velocities, K (needed unless
        ``velocities_nm_ps`` are given and ``thermostat="none"``).
    thermostat:
        ``"bussi"`` (NVT, stochastic velocity rescaling) or ``"none"`` (NVE).
    tau_ps:
        Bussi coupling time, ps.
    seed:
        Seed of the start velocities and of the thermostat's random numbers.
    device:
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    velocities_nm_ps:
        Start velocities (N, 3), nm/ps, instead of Maxwell–Boltzmann ones.
    neighbor_skin_nm:
        Verlet-list skin, nm (0 searches every step).
    max_force_kj_mol_nm, max_step_nm:
        Blow-up thresholds (see the module docstring).
    retain_freed_memory:
        On the CPU, call :func:`retain_freed_memory` (process-wide; see the module docstring).
    pressure_bar:
        Barostat pressure, bar (>= 0): NPT with the Monte Carlo barostat of the module
        docstring (needs the ``bussi`` thermostat and ``temperature_K``). None: the box is
        fixed.
    barostat_frequency:
        Steps between Monte Carlo volume moves (>= 1).
    """

    def __init__(
        self,
        model: EnergyModel,
        positions_nm: ArrayLike,
        box_nm: float | ArrayLike,
        masses_amu: float | ArrayLike,
        *,
        timestep_fs: float,
        temperature_K: float | None = None,
        thermostat: str = "bussi",
        tau_ps: float = DEFAULT_TAU_PS,
        seed: int = 0,
        device: str | torch.device = "auto",
        velocities_nm_ps: ArrayLike | None = None,
        neighbor_skin_nm: float = DEFAULT_SKIN_NM,
        max_force_kj_mol_nm: float = DEFAULT_MAX_FORCE_KJ_MOL_NM,
        max_step_nm: float = DEFAULT_MAX_STEP_NM,
        retain_freed_memory: bool = True,
        pressure_bar: float | None = None,
        barostat_frequency: int = DEFAULT_BAROSTAT_FREQUENCY,
    ) -> None:
        if not isinstance(model, EnergyModel):
            raise InputError(f"TorchMD needs an EnergyModel, got {type(model).__name__}")
        self.device = select_device(device)
        if retain_freed_memory and self.device.type == "cpu":
            _retain_freed_memory()
        self.model = model.to(self.device)
        self.model.eval()
        pos = np.array(positions_nm, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] < 2:
            raise InputError(f"positions must have shape (N >= 2, 3) in nm, got {pos.shape}")
        if not np.all(np.isfinite(pos)):
            raise InputError("start positions hold NaN or infinite values")
        n = pos.shape[0]
        box = np.array(box_nm, dtype=np.float64)
        box = np.full(3, float(box)) if box.ndim == 0 else box
        if box.shape != (3,) or not (np.all(np.isfinite(box)) and np.all(box > 0)):
            raise InputError(f"box must be one or three positive edge lengths in nm, got {box_nm}")
        if float(model.cutoff_nm) > 0.5 * float(box.min()) * (1.0 + 1e-12):
            raise InputError(
                f"the model's cutoff {model.cutoff_nm:.4g} nm exceeds half the shortest box edge "
                f"({box.min():.4g} nm); simulate more beads (a larger box)"
            )
        masses = np.array(masses_amu, dtype=np.float64)
        masses = np.full(n, float(masses)) if masses.ndim == 0 else masses
        if masses.shape != (n,) or not (np.all(np.isfinite(masses)) and np.all(masses > 0)):
            raise InputError(f"masses must be one or {n} positive values in amu")
        self.timestep_fs = require_positive(timestep_fs, "time step (fs)")
        self.dt_ps = self.timestep_fs * 1.0e-3
        if thermostat not in THERMOSTATS:
            raise InputError(f"unknown thermostat {thermostat!r}; use one of {THERMOSTATS}")
        self.thermostat = thermostat
        self.tau_ps = require_positive(tau_ps, "thermostat coupling time tau (ps)")
        if temperature_K is None and (thermostat != "none" or velocities_nm_ps is None):
            raise InputError("give the temperature (K) for the thermostat or the start velocities")
        self.temperature_K = (
            None if temperature_K is None else require_positive(temperature_K, "temperature (K)")
        )
        self.target_pressure_bar: float | None = None
        self.barostat_frequency = _count(
            barostat_frequency, "barostat frequency (steps between volume moves)", minimum=1
        )
        if pressure_bar is not None:
            target = float(pressure_bar)
            if isinstance(pressure_bar, bool) or not (math.isfinite(target) and target >= 0.0):
                raise InputError(
                    f"barostat pressure must be a finite pressure >= 0 bar, got {pressure_bar!r}"
                )
            if thermostat != "bussi" or self.temperature_K is None:
                raise InputError(
                    "the Monte Carlo barostat needs a temperature: use thermostat='bussi' with "
                    "temperature_K (NPT)"
                )
            self.target_pressure_bar = target
        self.barostat_step = BAROSTAT_START_STEP
        self.barostat_attempts = 0
        self.barostat_accepted = 0
        self._window_attempts = 0
        self._window_accepted = 0
        self.seed = int(seed)
        self.max_force_kj_mol_nm = require_positive(max_force_kj_mol_nm, "max_force_kj_mol_nm")
        self.max_step_nm = require_positive(max_step_nm, "max_step_nm")
        self.n_beads = n
        self.n_dof = 3 * n - 3
        self._rng = np.random.default_rng(self.seed)
        f64 = {"dtype": torch.float64, "device": self.device}
        self._model_dtype = model.dtype
        self._total_mass_amu = float(masses.sum())
        self._set_box(box)
        self._run_box = [float(v) for v in box]
        self.masses_amu = torch.tensor(masses, **f64)
        self._inv_mass = (1.0 / self.masses_amu)[:, None]
        self.positions_nm = torch.tensor(pos, **f64)
        if velocities_nm_ps is None:
            assert self.temperature_K is not None
            self.velocities_nm_ps = self._maxwell_boltzmann(self.temperature_K)
        else:
            vel = np.array(velocities_nm_ps, dtype=np.float64)
            if vel.shape != (n, 3) or not np.all(np.isfinite(vel)):
                raise InputError(f"velocities must be finite with shape ({n}, 3) in nm/ps")
            self.velocities_nm_ps = torch.tensor(vel, **f64)
        self.step = 0
        self.bath_energy_kj_mol = 0.0
        self.cache = NeighborCache(neighbor_skin_nm)
        self.potential_kj_mol = math.nan
        self.virial_kj_mol = math.nan
        self.forces_kj_mol_nm = torch.zeros_like(self.positions_nm)
        self._evaluate()

    # ------------------------------------------------------------------ box
    def _set_box(self, box: np.ndarray) -> None:
        """Make ``box`` (3,) nm the box: the float64 and model-dtype tensors, volume, density."""
        self._box_host = np.array(box, dtype=np.float64)
        self.box_nm = torch.tensor(self._box_host, dtype=torch.float64, device=self.device)
        self._box_model = self.box_nm.to(self._model_dtype)
        self.volume_nm3 = float(np.prod(self._box_host))
        self.density_g_cm3 = density_g_cm3(self._total_mass_amu, self.volume_nm3)

    def _check_box(self, box: np.ndarray) -> None:
        """Raise SimulationError where an edge of ``box`` is shorter than twice the cutoff."""
        cutoff = float(self.model.cutoff_nm)
        if float(box.min()) < 2.0 * cutoff * (1.0 - 1e-12):
            raise SimulationError(
                f"at step {self.step} the barostat shrank the box to {float(box.min()):.4g} nm, "
                f"shorter than twice the model's cutoff ({2.0 * cutoff:.4g} nm): the liquid is "
                "denser than the start box allows; simulate more beads (a larger box)"
            )

    def set_volume(self, volume_nm3: float) -> None:
        """Scale the box and every bead position uniformly (about the origin) to the volume
        ``volume_nm3`` (nm³) and evaluate the forces there (SimulationError on a blow-up or a
        box shorter than twice the model's cutoff). Velocities are kept."""
        volume = require_positive(volume_nm3, "volume (nm3)")
        scale = (volume / self.volume_nm3) ** (1.0 / 3.0)
        box = self._box_host * scale
        self._check_box(box)
        self.positions_nm = self.positions_nm * scale
        self._set_box(box)
        self.cache.clear()
        self._evaluate()

    def _barostat_move(self) -> bool:
        """One Monte Carlo volume move (see the module docstring); return whether it was
        accepted. Two random numbers per attempt from the engine's generator."""
        assert self.temperature_K is not None and self.target_pressure_bar is not None
        kt = KB_KJ_MOL_K * self.temperature_K
        delta = self.barostat_step * (2.0 * float(self._rng.random()) - 1.0)
        uniform = float(self._rng.random())
        scale = math.exp(delta / 3.0)
        box = self._box_host * scale
        self._check_box(box)
        old_box, old_volume = self._box_host, self.volume_nm3
        old = (self.positions_nm, self.forces_kj_mol_nm, self.potential_kj_mol, self.virial_kj_mol)
        self.positions_nm = old[0] * scale
        self._set_box(box)
        energy, virial = self._forces()
        e_new, w_new, fmax = torch.stack(
            [energy, virial, self.forces_kj_mol_nm.abs().max()]
        ).tolist()
        pressure = self.target_pressure_bar / KJ_MOL_NM3_TO_BAR  # kJ/mol/nm³
        work = (
            e_new
            - old[2]
            + pressure * (self.volume_nm3 - old_volume)
            - (self.n_beads + 1) * kt * math.log(self.volume_nm3 / old_volume)
        )
        accepted = math.isfinite(work) and (work <= 0.0 or uniform < math.exp(-work / kt))
        if accepted:
            self._accept(e_new, w_new, fmax)
            self.bath_energy_kj_mol -= e_new - old[2]
        else:
            self.positions_nm, self.forces_kj_mol_nm = old[0], old[1]
            self.potential_kj_mol, self.virial_kj_mol = old[2], old[3]
            self._set_box(old_box)
        self.cache.retain_box(self._box_model)
        self.barostat_attempts += 1
        self.barostat_accepted += int(accepted)
        self._window_attempts += 1
        self._window_accepted += int(accepted)
        if self._window_attempts >= BAROSTAT_ADAPT_ATTEMPTS:
            low, high = BAROSTAT_ACCEPTANCE_RANGE
            if self._window_accepted < low * self._window_attempts:
                self.barostat_step /= BAROSTAT_ADAPT_FACTOR
                self._window_attempts = self._window_accepted = 0
            elif self._window_accepted > high * self._window_attempts:
                self.barostat_step = min(
                    self.barostat_step * BAROSTAT_ADAPT_FACTOR, BAROSTAT_MAX_STEP
                )
                self._window_attempts = self._window_accepted = 0
        return accepted

    def barostat_stats(self) -> dict[str, float] | None:
        """The barostat's target pressure (bar), move frequency (steps), attempts and
        acceptances so far, their ratio and the current step size Δ of ln V; None without a
        barostat."""
        if self.target_pressure_bar is None:
            return None
        attempts = self.barostat_attempts
        return {
            "pressure_bar": self.target_pressure_bar,
            "frequency_steps": self.barostat_frequency,
            "attempts": attempts,
            "accepted": self.barostat_accepted,
            "acceptance": self.barostat_accepted / attempts if attempts else math.nan,
            "ln_volume_step": self.barostat_step,
        }

    # ------------------------------------------------------------------ physics
    def _maxwell_boltzmann(self, temperature_K: float) -> torch.Tensor:
        """Velocities (N, 3) nm/ps from the Maxwell–Boltzmann distribution, zero net momentum."""
        sigma = np.sqrt(KB_KJ_MOL_K * temperature_K / self.masses_amu.cpu().numpy())[:, None]
        vel = self._rng.standard_normal((self.n_beads, 3)) * sigma
        v = torch.tensor(vel, dtype=torch.float64, device=self.device)
        return self._remove_momentum(v)

    def _remove_momentum(self, v: torch.Tensor) -> torch.Tensor:
        m = self.masses_amu[:, None]
        return v - (m * v).sum(0) / m.sum()

    def kinetic_energy(self) -> float:
        """Kinetic energy, kJ/mol."""
        return float(self._kinetic())

    def _kinetic(self) -> torch.Tensor:
        return 0.5 * (self.masses_amu[:, None] * self.velocities_nm_ps**2).sum()

    def temperature(self, kinetic_kj_mol: float | None = None) -> float:
        """Instantaneous temperature 2K / (N_dof k_B), K (N_dof = 3N − 3)."""
        k = self.kinetic_energy() if kinetic_kj_mol is None else kinetic_kj_mol
        return 2.0 * k / (self.n_dof * KB_KJ_MOL_K)

    def pressure_bar(self, kinetic_kj_mol: float | None = None) -> float:
        """Instantaneous pressure (2K + W) / (3V), bar."""
        k = self.kinetic_energy() if kinetic_kj_mol is None else kinetic_kj_mol
        return (2.0 * k + self.virial_kj_mol) / (3.0 * self.volume_nm3) * KJ_MOL_NM3_TO_BAR

    def _forces(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Set the forces at the current positions; return the energy and virial (tensors)."""
        pos = self.positions_nm.to(self._model_dtype)
        with use_neighbor_cache(self.cache):
            energy, forces, virial = self.model.energy_forces_virial(pos, self._box_model)
        self.forces_kj_mol_nm = forces.to(torch.float64)
        return energy.to(torch.float64), virial.to(torch.float64)

    def _evaluate(self) -> None:
        """Energy, forces and virial at the current positions; raise on a blow-up."""
        energy, virial = self._forces()
        values = torch.stack([energy, virial, self.forces_kj_mol_nm.abs().max()]).tolist()
        self._accept(*values)

    def _accept(
        self, energy: float, virial: float, fmax: float, step_max: float | None = None
    ) -> None:
        """Keep the energy and virial of a force evaluation; raise on a blow-up."""
        self.potential_kj_mol, self.virial_kj_mol = energy, virial
        if not all(math.isfinite(v) for v in (energy, virial, fmax)):
            self._blow_up("the energy or the forces are not finite numbers")
        if fmax > self.max_force_kj_mol_nm:
            self._blow_up(
                f"a force of {fmax:.3g} kJ/mol/nm exceeds {self.max_force_kj_mol_nm:.3g} kJ/mol/nm "
                "(beads overlap)"
            )
        if step_max is not None and step_max > self.max_step_nm:
            self._blow_up(
                f"a bead moved {step_max:.3g} nm in one step (more than {self.max_step_nm:g} nm)"
            )

    def _blow_up(self, what: str) -> None:
        raise SimulationError(
            f"the simulation blew up at step {self.step} (t = {self.step * self.dt_ps:.4g} ps): "
            f"{what}; use a smaller time step (now {self.timestep_fs:g} fs) or give the model a "
            "repulsive short-range prior so that beads cannot overlap"
        )

    def _bussi(self, kinetic: float) -> float:
        """Rescale velocities (Bussi et al. 2007) over one time step; return the new K."""
        assert self.temperature_K is not None
        target = 0.5 * self.n_dof * KB_KJ_MOL_K * self.temperature_K
        c = math.exp(-self.dt_ps / self.tau_ps)
        r1 = float(self._rng.standard_normal())
        rest = float(self._rng.chisquare(self.n_dof - 1)) if self.n_dof > 1 else 0.0
        if kinetic <= 0.0:
            return kinetic
        new = (
            kinetic
            + (1.0 - c) * (target * (rest + r1 * r1) / self.n_dof - kinetic)
            + 2.0 * r1 * math.sqrt(kinetic * target / self.n_dof * (1.0 - c) * c)
        )
        alpha = math.sqrt(max(new, 0.0) / kinetic)
        self.velocities_nm_ps.mul_(alpha)
        self.bath_energy_kj_mol -= new - kinetic
        return new

    def step_once(self) -> None:
        """One velocity-Verlet step (plus the thermostat for NVT, and every
        ``barostat_frequency`` steps a Monte Carlo volume move for NPT).

        The blow-up checks and the thermostat's kinetic energy share one transfer of five
        numbers to the host per step (one device synchronisation on a GPU).
        """
        dt = self.dt_ps
        self.velocities_nm_ps.add_(self.forces_kj_mol_nm * self._inv_mass, alpha=0.5 * dt)
        displacement = self.velocities_nm_ps * dt
        self.positions_nm.add_(displacement)
        self.step += 1
        energy, virial = self._forces()
        self.velocities_nm_ps.add_(self.forces_kj_mol_nm * self._inv_mass, alpha=0.5 * dt)
        energy, virial, fmax, step_max, kinetic = torch.stack(
            [
                energy,
                virial,
                self.forces_kj_mol_nm.abs().max(),
                displacement.abs().max(),
                self._kinetic(),
            ]
        ).tolist()
        self._accept(energy, virial, fmax, step_max)
        if self.thermostat == "bussi":
            self._bussi(kinetic)
        if self.target_pressure_bar is not None and self.step % self.barostat_frequency == 0:
            self._barostat_move()

    # ------------------------------------------------------------------ running
    def thermo_row(self) -> list[float]:
        """The current :data:`THERMO_COLUMNS` values."""
        k = self.kinetic_energy()
        u = self.potential_kj_mol
        return [
            float(self.step),
            self.step * self.dt_ps,
            u,
            k,
            k + u,
            k + u + self.bath_energy_kj_mol,
            self.temperature(k),
            self.pressure_bar(k),
            self.density_g_cm3,
            self.volume_nm3,
        ]

    def run(
        self,
        n_steps: int,
        *,
        sample_interval: int = 100,
        checkpoint_dir: str | Path | None = None,
        checkpoint_interval: int | None = None,
        record_forces: bool = False,
        callback: SampleCallback | None = None,
    ) -> TorchMDResult:
        """Integrate ``n_steps`` steps, sampling every ``sample_interval`` steps.

        The first sample is the state at the start of the run, so a run of n steps gives
        n // sample_interval + 1 samples (n must be a multiple of ``sample_interval``).
        With ``checkpoint_dir`` the state is committed every ``checkpoint_interval`` steps
        (default: 10 samples; a multiple of ``sample_interval``) and at the end; when the
        directory already holds a checkpoint of this run, the run continues from it (a
        finished run returns its samples at once).
        """
        n_steps = _count(n_steps, "number of steps", minimum=1)
        interval = _count(sample_interval, "sample interval (steps)", minimum=1)
        if n_steps % interval:
            raise InputError(
                f"the number of steps ({n_steps}) must be a multiple of the sample interval "
                f"({interval})"
            )
        every = 10 * interval if checkpoint_interval is None else int(checkpoint_interval)
        if every < interval or every % interval:
            raise InputError(
                f"checkpoint interval {checkpoint_interval} must be a positive multiple of the "
                f"sample interval ({interval})"
            )
        store = None if checkpoint_dir is None else _CheckpointStore(Path(checkpoint_dir))
        samples = _Samples(record_forces)
        self._run_box = [float(v) for v in self._box_host]
        start = self.step
        resumed: int | None = None
        if store is not None and store.exists():
            start = self._restore(store, samples, n_steps, interval, record_forces)
            resumed = self.step
        else:
            samples.add(self)
            if store is not None:
                store.clear()
        end = start + n_steps
        builds_before = self.cache.builds
        t0 = time.perf_counter()
        done_here = 0
        while self.step < end:
            self.step_once()
            done_here += 1
            if (self.step - start) % interval == 0:
                self.velocities_nm_ps = self._remove_momentum(self.velocities_nm_ps)
                samples.add(self)
                if store is not None and ((self.step - start) % every == 0 or self.step == end):
                    self._commit(store, samples, start, n_steps, interval)
                if callback is not None:
                    callback(self, self.step)
        wall = time.perf_counter() - t0
        traj, thermo = samples.result(self)
        return TorchMDResult(
            trajectory=traj,
            thermo=thermo,
            n_steps=n_steps,
            timestep_fs=self.timestep_fs,
            wall_s=wall,
            steps_per_s=done_here / wall if wall > 0 and done_here else math.nan,
            device=str(self.device),
            neighbor_builds=self.cache.builds - builds_before,
            resumed_from_step=resumed,
            barostat=self.barostat_stats(),
        )

    # ------------------------------------------------------------------ checkpoints
    def _signature(self, start: int, n_steps: int, interval: int, forces: bool) -> dict[str, Any]:
        barostat = self.target_pressure_bar is not None
        return {
            "n_beads": self.n_beads,
            "box_nm": list(self._run_box),  # at the start of the run
            "timestep_fs": self.timestep_fs,
            "thermostat": self.thermostat,
            "temperature_K": self.temperature_K,
            "tau_ps": self.tau_ps,
            "seed": self.seed,
            "model": self.model.model_name,
            "start_step": start,
            "n_steps": n_steps,
            "sample_interval": interval,
            "record_forces": forces,
            # absent from version-1 checkpoints: None there, as for a run without a barostat
            "pressure_bar": self.target_pressure_bar,
            "barostat_frequency": self.barostat_frequency if barostat else None,
        }

    def _commit(
        self, store: _CheckpointStore, samples: _Samples, start: int, n_steps: int, interval: int
    ) -> None:
        chunk = samples.flush()
        if chunk is not None:
            store.write_chunk(samples.n_chunks - 1, chunk)
        store.write_state(
            {
                "format": _CHECKPOINT_FORMAT,
                "version": _CHECKPOINT_VERSION,
                "signature": self._signature(start, n_steps, interval, samples.record_forces),
                "step": self.step,
                "n_chunks": samples.n_chunks,
                "positions_nm": self.positions_nm.cpu(),
                "velocities_nm_ps": self.velocities_nm_ps.cpu(),
                "forces_kj_mol_nm": self.forces_kj_mol_nm.cpu(),
                "potential_kj_mol": self.potential_kj_mol,
                "virial_kj_mol": self.virial_kj_mol,
                "bath_energy_kj_mol": self.bath_energy_kj_mol,
                "rng_state": _rng_state_to_plain(self._rng),
                "box_nm": torch.tensor(self._box_host),
                "barostat": {
                    "step": self.barostat_step,
                    "attempts": self.barostat_attempts,
                    "accepted": self.barostat_accepted,
                    "window_attempts": self._window_attempts,
                    "window_accepted": self._window_accepted,
                },
            }
        )

    def _restore(
        self,
        store: _CheckpointStore,
        samples: _Samples,
        n_steps: int,
        interval: int,
        record_forces: bool,
    ) -> int:
        state = store.read_state()
        stored = state["signature"]
        start = int(stored.get("start_step", -1))
        wanted = self._signature(start, n_steps, interval, record_forces)
        differ = [k for k in wanted if stored.get(k) != wanted[k]]
        if differ:
            raise InputError(
                f"the checkpoint in {store.path} belongs to another run (differs in "
                f"{', '.join(differ)}); use a new checkpoint directory"
            )
        f64 = {"dtype": torch.float64, "device": self.device}
        self.step = int(state["step"])
        self.positions_nm = state["positions_nm"].to(**f64)
        self.velocities_nm_ps = state["velocities_nm_ps"].to(**f64)
        self.forces_kj_mol_nm = state["forces_kj_mol_nm"].to(**f64)
        self.potential_kj_mol = float(state["potential_kj_mol"])
        self.virial_kj_mol = float(state["virial_kj_mol"])
        self.bath_energy_kj_mol = float(state["bath_energy_kj_mol"])
        self._rng.bit_generator.state = state["rng_state"]
        if "box_nm" in state:  # version 2; a version-1 run kept its box (the signature's)
            self._set_box(state["box_nm"].numpy())
            baro = state["barostat"]
            self.barostat_step = float(baro["step"])
            self.barostat_attempts = int(baro["attempts"])
            self.barostat_accepted = int(baro["accepted"])
            self._window_attempts = int(baro["window_attempts"])
            self._window_accepted = int(baro["window_accepted"])
        self.cache.clear()
        for k in range(int(state["n_chunks"])):
            samples.load_chunk(store.read_chunk(k), np.array(self._run_box))
        return start


class _Samples:
    """Samples of one run: chunks already on disk (loaded) plus those not yet flushed."""

    def __init__(self, record_forces: bool) -> None:
        self.record_forces = record_forces
        self.done: list[dict[str, np.ndarray]] = []
        self.pending_positions: list[np.ndarray] = []
        self.pending_forces: list[np.ndarray] = []
        self.pending_boxes: list[np.ndarray] = []
        self.pending_thermo: list[list[float]] = []
        self.n_chunks = 0

    @property
    def pending(self) -> int:
        return len(self.pending_positions)

    def add(self, engine: TorchMD) -> None:
        self.pending_positions.append(engine.positions_nm.cpu().numpy().copy())
        if self.record_forces:
            self.pending_forces.append(engine.forces_kj_mol_nm.cpu().numpy().copy())
        self.pending_boxes.append(engine._box_host.copy())
        self.pending_thermo.append(engine.thermo_row())

    def _pending(self) -> dict[str, np.ndarray]:
        chunk = {
            "positions_nm": np.stack(self.pending_positions),
            "box_nm": np.stack(self.pending_boxes),
            "thermo": np.array(self.pending_thermo, dtype=np.float64),
        }
        if self.record_forces:
            chunk["forces_kj_mol_nm"] = np.stack(self.pending_forces)
        return chunk

    def flush(self) -> dict[str, np.ndarray] | None:
        if not self.pending_positions:
            return None
        chunk = self._pending()
        self.pending_positions, self.pending_forces = [], []
        self.pending_boxes, self.pending_thermo = [], []
        self.done.append(chunk)
        self.n_chunks += 1
        return chunk

    def load_chunk(self, chunk: dict[str, np.ndarray], run_box_nm: np.ndarray) -> None:
        """Add a chunk read from disk; one of a version-1 checkpoint (constant volume: no
        boxes, no volume column) gets the run's box and its volume."""
        chunk = dict(chunk)
        n = len(chunk["positions_nm"])
        if "box_nm" not in chunk:
            chunk["box_nm"] = np.tile(run_box_nm, (n, 1))
        thermo = chunk["thermo"]
        if thermo.shape[1] == len(THERMO_COLUMNS) - 1:
            volume = np.full((n, 1), float(np.prod(run_box_nm)))
            chunk["thermo"] = np.concatenate([thermo, volume], axis=1)
        self.done.append(chunk)
        self.n_chunks += 1

    def result(self, engine: TorchMD) -> tuple[CGTrajectory, dict[str, np.ndarray]]:
        chunks = [*self.done]
        if self.pending_positions:
            chunks.append(self._pending())
        positions = np.concatenate([c["positions_nm"] for c in chunks])
        table = np.concatenate([c["thermo"] for c in chunks])
        thermo = {name: table[:, i] for i, name in enumerate(THERMO_COLUMNS)}
        forces = (
            np.concatenate([c["forces_kj_mol_nm"] for c in chunks]) if self.record_forces else None
        )
        traj = CGTrajectory(
            positions_nm=positions,
            box_nm=np.concatenate([c["box_nm"] for c in chunks]),
            times_ps=thermo["t_ps"],
            masses_amu=engine.masses_amu.cpu().numpy(),
            forces_kj_mol_nm=forces,
        )
        return traj, thermo


class _CheckpointStore:
    """A checkpoint directory: ``state.pt`` (committed last) and ``samples_NNNNN.npz`` chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def state_path(self) -> Path:
        return self.path / _STATE_FILE

    def exists(self) -> bool:
        return self.state_path.is_file()

    def clear(self) -> None:
        if self.path.exists():
            for item in self.path.glob("samples_*.npz"):
                item.unlink()
            if self.state_path.exists():
                self.state_path.unlink()
        self.path.mkdir(parents=True, exist_ok=True)

    def chunk_path(self, k: int) -> Path:
        return self.path / f"samples_{k:05d}.npz"

    def write_chunk(self, k: int, chunk: dict[str, np.ndarray]) -> None:
        write_npz(self.chunk_path(k), **chunk)

    def read_chunk(self, k: int) -> dict[str, np.ndarray]:
        path = self.chunk_path(k)
        if not path.is_file():
            raise InputError(f"checkpoint chunk {path} is missing; delete {self.path} to restart")
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def write_state(self, state: dict[str, Any]) -> None:
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)

    def read_state(self) -> dict[str, Any]:
        try:
            state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, ValueError) as exc:
            raise InputError(
                f"cannot read the checkpoint {self.state_path} ({exc}); delete {self.path} "
                "to restart the run"
            ) from exc
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise InputError(f"{self.state_path} is not a cgforge torch MD checkpoint")
        if state.get("version") not in _READABLE_VERSIONS:
            raise InputError(
                f"{self.state_path} has checkpoint version {state.get('version')}, this cgforge "
                f"reads {' and '.join(map(str, _READABLE_VERSIONS))}; delete {self.path} to "
                "restart the run"
            )
        return state


def _rng_state_to_plain(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's state as plain Python data (ints, strings, dicts)."""
    state = rng.bit_generator.state

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, np.integer):
            return int(value)
        return value

    return plain(state)


def _count(value: int, what: str, *, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < minimum:
        raise InputError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)
