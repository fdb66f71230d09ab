"""The LAMMPS CG engine: a tabulated one-bead liquid run in-process through the ``lammps`` module.

The protocol is that of :class:`~cgforge.engines.openmm_md.MDRunner`, in LAMMPS ``units real``
(Å, fs, kcal/mol, atm) at the boundary only; everything returned is in cgforge units:

1. **Pair table.** The :class:`~cgforge.potentials.TabulatedPotential` is written by
   :func:`~cgforge.potentials.io.write_lammps` with the default repulsive wall of
   :meth:`~cgforge.potentials.TabulatedPotential.extend_repulsive` down to
   :data:`TABLE_INNER_NM`, ending at the cutoff and shifted so that U(cutoff) = 0 (the OpenMM
   engine's convention), and read as ``pair_style table linear`` with :data:`TABLE_POINTS`
   points. Measured against the table's own interpolant for a Lennard-Jones bead table
   (ε = 2.5 kJ/mol, σ = 0.55 nm, 0.005 nm grid, tapered to zero at 1.4 nm; r from 0.42 to 1.39 nm,
   where U < 80 kT): ``linear`` with N = 1,000 / 2,000 / 5,000 / 10,000 / 20,000 points has a
   largest energy error of 0.14 / 0.039 / 0.0058 / 0.0015 / 0.0004 kJ/mol and largest force
   error of 5.4 / 1.5 / 0.42 / 0.27 / 0.24 kJ/mol/nm; ``spline`` reaches 1e-4 kJ/mol at 1,000
   points but costs a cubic per pair; ``lookup`` with 10,000 points is off by 0.7 kJ/mol.
   The force error floor, 0.24 kJ/mol/nm (0.004 % of the largest force), is the difference of
   LAMMPS's spline through the file's forces from the Hermite interpolant, not the table
   size. N = 10,000 puts the energy error at 6e-4 kT and the force within 10 % of that floor;
   ``tests/test_lammps_engine.py`` checks energies, forces and the virial against OpenMM.
2. **Start.** Beads at the system's start configuration (default: the jittered lattice),
   energy minimisation (conjugate gradient), Gaussian velocities at the protocol temperature
   with zero total momentum (``velocity ... mom yes``); 3N − 3 degrees of freedom.
3. **NPT equilibration.** The first :data:`MELT_FRACTION` of it at constant volume under a
   Langevin thermostat (damping :data:`MELT_DAMP_PS`, zero net random force), the rest under
   the Nosé–Hoover thermostat and Martyna–Tobias–Klein barostat of ``fix npt ... iso``
   (``Tdamp`` = 100 steps, ``Pdamp`` = 1000 steps, the LAMMPS manual's advice). MTK samples the
   isothermal–isobaric ensemble exactly (mean volume and its fluctuations) and deterministically;
   started on a cold minimised lattice, whose pressure is far from the liquid's, its barostat
   would ring in large, slowly damped volume oscillations (period ≈ Pdamp), which the short
   Langevin start at the start density removes. The production box is the mean NPT volume of
   the second half of equilibration (all of it under MTK); bead positions are scaled to it.
4. **Production** at that volume: ``nvt`` (``fix nvt``, a Nosé–Hoover chain of 3 with damping
   1/``thermostat_collision_per_ps``), ``nve`` (``fix nve``), ``langevin`` (``fix nve`` +
   ``fix langevin`` with damping 1/``production_friction_per_ps`` and ``zero yes``, so the net
   random force vanishes and the friction only damps the total momentum, which starts at zero:
   no drift), or ``npt``: the equilibration's ``fix npt ... iso`` (same damping, the protocol's
   pressure), started afresh at that volume, so that the volume fluctuates; each sample then
   records its box. The unwrapped positions (``xu``: wrapped position plus image flag times
   the current edge) are dilated with the box about its centre, as ``fix npt`` remaps the
   atoms; the MSD and D come from these positions as they are (see
   :func:`cgforge.workflows.cg.analyse_cg_result`). Samples are gathered from the library:
   unwrapped positions (``compute property/atom xu yu zu``, from image flags) and forces
   through ``lammps.gather`` ordered by atom ID, thermodynamics (every ``thermo_interval_ps``) from a ``fix vector`` of the
   thermo keywords, read after each ``run``; one ``run`` per position sample (every LAMMPS
   ``run`` costs one extra force evaluation, so fewer, longer runs keep cgforge's overhead over
   a plain LAMMPS input small).
5. **Checkpoints.** Work is done in segments; after each, the samples go to a chunk file, the
   LAMMPS state to a restart file (``write_restart``, positions, velocities, image flags, box
   and the thermostat/barostat state), then a small JSON state commits both. A killed run
   resumes from the last committed segment (``read_restart``).
6. **Failures.** Lost atoms, a pair closer than the table's inner distance, any other LAMMPS
   error, a non-finite potential energy or one above
   ``max_energy_kj_mol_per_particle`` per bead raise :class:`~cgforge.errors.SimulationError`
   naming the potential, the stage and the step; no result is returned.

Speed (2-core CPU, 1,000 beads, see ``benchmarks/cg_md.py``): ~25× OpenMM's CPU platform.
Threads: serial unless :attr:`MDProtocol.cg_threads` (or the engine's own ``threads``) asks for
more, which run the OPENMP package's styles (``-sf omp``): no gain at 1,000 beads on 2 cores,
~2× with 2 threads at 8,000 beads (``benchmarks/results/cg_md.json``).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.engines.cg_engine import CGSystem, require_table
from cgforge.engines.lammps_lib import Lammps
from cgforge.engines.protocol import (
    STAGE_IDS,
    ChunkedRunner,
    MDProtocol,
    MDResult,
    ProgressCallback,
    Segment,
    chunk_thermo,
)
from cgforge.errors import InputError, SimulationError
from cgforge.potentials.io import write_lammps
from cgforge.potentials.table import TabulatedPotential
from cgforge.units import ANGSTROM_TO_NM, KCAL_TO_KJ, density_g_cm3

#: Interpolation of the pair table (see the module docstring for the measurement).
TABLE_STYLE = "linear"
TABLE_POINTS = 10_000
#: The table's repulsive wall reaches down to this distance, nm (closer pairs are a blow-up).
TABLE_INNER_NM = 0.02
TABLE_KEYWORD = "CG"
TABLE_FILE = "pair.table"
#: Share of the equilibration run at constant volume with a Langevin thermostat.
MELT_FRACTION = 0.2
#: Langevin damping time of that start, ps.
MELT_DAMP_PS = 0.1
#: Nosé–Hoover and MTK damping times of the NPT stage, in time steps.
NPT_TDAMP_STEPS = 100
NPT_PDAMP_STEPS = 1000
#: Neighbour-list skin, Å (LAMMPS's default for ``units real``).
NEIGHBOR_SKIN_A = 2.0

ATM_TO_BAR = 1.01325
_NM_TO_A = 1.0 / ANGSTROM_TO_NM
_FORCE_TO_KJ_NM = KCAL_TO_KJ / ANGSTROM_TO_NM  # kcal/mol/Å -> kJ/mol/nm
_THERMO_FIX = "cg_thermo"


def lammps_table(potential: TabulatedPotential) -> TabulatedPotential:
    """The table LAMMPS reads: wall down to :data:`TABLE_INNER_NM`, U(cutoff) = 0."""
    table = potential.extend_repulsive(TABLE_INNER_NM).truncate()
    return table.shifted(-float(table.u_kj_mol[-1]))


def write_pair_table(potential: TabulatedPotential, path: str | Path) -> str:
    """Write the LAMMPS table file; return the ``pair_style``/``pair_coeff`` input lines."""
    table = lammps_table(potential)
    write_lammps(path, table, keyword=TABLE_KEYWORD, provenance="cgforge LAMMPS CG engine")
    cutoff_a = table.r_max_nm * _NM_TO_A
    return (
        f"pair_style table {TABLE_STYLE} {TABLE_POINTS}\n"
        f"pair_coeff 1 1 {Path(path).resolve()} {TABLE_KEYWORD} {cutoff_a:.10g}\n"
    )


def _lammps_seed(seed: int, stream: int) -> int:
    """A positive LAMMPS random seed (< 2^30) for one random stream of a run."""
    return (int(seed) * 7919 + stream * 104_729) % 900_000_000 + 1


class LammpsRunner(ChunkedRunner):
    """Runs an :class:`MDProtocol` on a :class:`CGSystem` with LAMMPS in a work directory."""

    restart_key = "restart"
    restart_suffix = ".restart"

    def __init__(
        self,
        system: CGSystem,
        protocol: MDProtocol,
        workdir: str | Path,
        *,
        progress: ProgressCallback | None = None,
        threads: int | None = None,
    ) -> None:
        if not isinstance(system, CGSystem):
            raise InputError(f"expected a CGSystem, got {type(system).__name__}")
        self.system = system
        self.protocol = protocol
        self.workdir = Path(workdir)
        self.progress = progress
        # None: the protocol's cg_threads
        self.threads = protocol.cg_threads if threads is None else threads
        self.n = system.n_beads
        self.total_mass = system.mass_amu * self.n
        self._segment_speed = 0.0
        self._lmp: Lammps | None = None
        self._fixes: tuple[str, ...] = ()
        self._thermo_vars = False

    # ------------------------------------------------------------------ state on disk
    def _write_restart(self, name: str) -> str:
        tmp = self.workdir / f".{name}.tmp"
        self.lmp.command(f"write_restart {tmp}")
        os.replace(tmp, self.workdir / name)
        # write_restart wraps atoms into the box and rebuilds the ghost atoms, which leaves the
        # neighbour lists stale: the next run must set up afresh (pre yes)
        self._fresh = True
        return name

    # ------------------------------------------------------------------ LAMMPS set-up
    @property
    def lmp(self) -> Lammps:
        assert self._lmp is not None
        return self._lmp

    def _settings(self) -> None:
        """Everything a restart file does not hold: pair table, neighbours, computes, output."""
        p = self.protocol
        self.lmp.commands(self._pair_lines)
        self.lmp.commands(
            [
                f"neighbor {NEIGHBOR_SKIN_A} bin",
                "neigh_modify every 1 delay 0 check yes",
                f"timestep {p.timestep_fs}",
                "compute cg_xu all property/atom xu yu zu",
                "thermo_style custom step pe ke etotal temp vol press",
                "thermo_modify norm no lost error flush no",
                "thermo 0",
            ]
        )

    def _create(self, positions_nm: np.ndarray) -> None:
        box_a = self.system.box_nm * _NM_TO_A
        self.lmp.commands(
            [
                "units real",
                "atom_style atomic",
                "atom_modify map array",
                "boundary p p p",
                f"region cg_box block 0 {box_a[0]:.12g} 0 {box_a[1]:.12g} 0 {box_a[2]:.12g}",
                "create_box 1 cg_box",
                f"mass 1 {self.system.mass_amu:.12g}",
            ]
        )
        wrapped = positions_nm - self.system.box_nm * np.floor(positions_nm / self.system.box_nm)
        xyz = (wrapped * _NM_TO_A).ravel().tolist()
        made = self.lmp.handle.create_atoms(self.n, list(range(1, self.n + 1)), [1] * self.n, xyz)
        if made != self.n:
            raise SimulationError(
                f"LAMMPS created {made} of {self.n} beads of {self.system.label}; check the start "
                "configuration and the box"
            )
        self._settings()

    def _restore(self, restart: str) -> None:
        self.lmp.commands(["units real", "atom_modify map array"])
        self.lmp.command(f"read_restart {self.workdir / restart}")
        self._settings()
        self._fixes = ()
        self._thermo_vars = False

    def _set_fixes(self, stage: str, phase: str, step: int) -> None:
        """Define the integrator fixes of ``phase`` at ``step`` (IDs are stable so restarts
        restore the thermostat and barostat state; Langevin seeds include the step, so a resumed
        run draws new random forces)."""
        p = self.protocol
        T = p.temperature_K
        for fix in self._fixes:
            self.lmp.command(f"unfix {fix}")
        dt = p.timestep_fs
        if phase == "melt":
            lines = [
                "fix cg_int all nve",
                f"fix cg_bath all langevin {T} {T} {MELT_DAMP_PS * 1000.0:.10g} "
                f"{_lammps_seed(p.seed, 1 + 2 * step)} zero yes",
            ]
        elif phase == "npt" or p.production_ensemble == "npt":
            p_atm = p.pressure_bar / ATM_TO_BAR
            lines = [
                f"fix cg_int all npt temp {T} {T} {NPT_TDAMP_STEPS * dt:.10g} "
                f"iso {p_atm:.10g} {p_atm:.10g} {NPT_PDAMP_STEPS * dt:.10g}"
            ]
        elif p.production_ensemble == "nvt":
            tdamp_fs = 1000.0 / p.thermostat_collision_per_ps
            lines = [f"fix cg_int all nvt temp {T} {T} {tdamp_fs:.10g}"]
        elif p.production_ensemble == "nve":
            lines = ["fix cg_int all nve"]
        else:  # langevin
            assert p.production_friction_per_ps is not None
            damp_fs = 1000.0 / p.production_friction_per_ps
            lines = [
                "fix cg_int all nve",
                f"fix cg_bath all langevin {T} {T} {damp_fs:.10g} {_lammps_seed(p.seed, 5 + 2 * step)} "
                "zero yes",
            ]
        self.lmp.commands(lines)
        self._fixes = tuple(line.split()[1] for line in lines)
        self._phase = (stage, phase)

    # ------------------------------------------------------------------ sampling
    def _define_thermo_fix(self, stride: int) -> None:
        """A ``fix vector`` that records the thermo values every ``stride`` steps of the next
        run (and one row at its first step). :meth:`_thermo_rows` reads and removes it after
        that run: in LAMMPS 2025.7.22 its rows are only reliable within the first run after its
        definition (later runs leave rows of uninitialised memory) and ``write_restart``
        fails while it is defined."""
        names = ("step", "pe", "ke", "temp", "press", "vol")
        if not self._thermo_vars:
            self.lmp.commands([f"variable cg_{name} equal {name}" for name in names])
            self._thermo_vars = True
        values = " ".join(f"v_cg_{name}" for name in names)
        self.lmp.command(f"fix {_THERMO_FIX} all vector {stride} {values}")
        self._fresh = True

    def _thermo_rows(self, after: int, stride: int, stage_id: int) -> list[list[float]]:
        """Thermo rows of the last run at steps after ``after`` that are multiples of ``stride``
        (LAMMPS units converted), each checked for a blow-up; removes the ``fix vector``."""
        extract = self.lmp.handle.extract_fix
        n_rows = int(extract(_THERMO_FIX, 0, 4))  # LMP_STYLE_GLOBAL, LMP_SIZE_ROWS
        table = [[float(extract(_THERMO_FIX, 0, 2, i, j)) for j in range(6)] for i in range(n_rows)]
        self.lmp.command(f"unfix {_THERMO_FIX}")
        stage = next(k for k, v in STAGE_IDS.items() if v == stage_id)
        rows = []
        for step, pe, ke, temp, press, vol in table:
            step_i = round(step)
            if step_i <= after or step_i % stride:
                continue
            pot = pe * KCAL_TO_KJ
            self._check_energy(pot, stage, step_i)
            kin = ke * KCAL_TO_KJ
            volume = vol * ANGSTROM_TO_NM**3
            density = density_g_cm3(self.total_mass, volume)
            rows.append(
                [
                    step_i * self.protocol.dt_ps,
                    stage_id,
                    pot,
                    kin,
                    pot + kin,
                    temp,
                    volume,
                    density,
                    press * ATM_TO_BAR,
                ]
            )
        return rows

    def _check_energy(self, potential: float, stage: str, step: int) -> None:
        limit = self.protocol.max_energy_kj_mol_per_particle * self.n
        if not math.isfinite(potential) or abs(potential) > limit:
            raise SimulationError(
                f"the LAMMPS run of {self.system.label} blew up in {stage} at step {step} "
                f"(potential energy {potential:.3g} kJ/mol); the last good checkpoint is kept. "
                "Check the potential, use a smaller time step or a longer equilibration"
            )

    def _gather(self, name: str) -> np.ndarray:
        data = self.lmp.handle.gather(name, 1, 3)
        return np.ctypeslib.as_array(data).reshape(self.n, 3).astype(np.float64)

    def _sample(self) -> dict[str, np.ndarray]:
        xyz = self._gather("c_cg_xu") * ANGSTROM_TO_NM
        out = {"bead_positions_nm": xyz}
        if self.protocol.save_forces:
            out["bead_forces_kj_mol_nm"] = self._gather("f") * _FORCE_TO_KJ_NM
        if self.protocol.save_particles:
            out["particle_positions_nm"] = xyz.astype(np.float32)
        if self.protocol.production_ensemble == "npt":
            out["box_nm"] = self._box_nm()
        return out

    def _box_nm(self) -> np.ndarray:
        lo, hi = self.lmp.handle.extract_box()[:2]
        return (np.array(hi) - np.array(lo)) * ANGSTROM_TO_NM

    def _run(self, n_steps: int, stage: str, step: int) -> None:
        self.lmp.context = (
            f"the LAMMPS run of {self.system.label} ({stage}, steps {step}-{step + n_steps})"
        )
        pre = "yes" if self._fresh else "no"
        self.lmp.command(f"run {n_steps} pre {pre} post no")
        self._fresh = False

    # ------------------------------------------------------------------ stages
    def run(self) -> MDResult:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pair_lines = write_pair_table(self.system.potential, self.workdir / TABLE_FILE)
        state = self._load_state()
        started = time.perf_counter()
        self._lmp = Lammps(threads=self.threads)
        self._fresh = True
        try:
            state = self._stages(state)
        finally:
            self.lmp.close()
            self._lmp = None
        return self._result(state, time.perf_counter() - started)

    def _stages(self, state: dict[str, Any]) -> dict[str, Any]:
        p = self.protocol
        loaded = False
        if state["stage"] == "minimize":
            self._create(self.system.start_positions(p.seed))
            self.lmp.context = f"the LAMMPS minimisation of {self.system.label}"
            if p.minimize:
                self._report("minimize", 0, 1)
                self.lmp.command("min_style cg")
                self.lmp.command("minimize 1.0e-8 1.0e-6 2000 20000")
                self._report("minimize", 1, 1)
            else:
                self.lmp.command("run 0 post no")
            self._fresh = True
            self._check_energy(
                float(self.lmp.handle.last_thermo()["PotEng"]) * KCAL_TO_KJ, "minimisation", 0
            )
            self.lmp.commands(
                [
                    "reset_timestep 0",
                    f"velocity all create {p.temperature_K} {_lammps_seed(p.seed, 3)} "
                    "mom yes rot no dist gaussian",
                ]
            )
            state = {"stage": "equilibration", "step": 0, "chunks": [], "restart": None}
            state["restart"] = self._write_restart("equilibration-0.restart")
            self._commit(state)
            loaded = True

        if state["stage"] == "equilibration":
            if not loaded:
                self._restore(state["restart"])
            state = self._run_stage("equilibration", p.steps(p.equilibration_ps), state)
            volumes = chunk_thermo(self.workdir, state["chunks"], "equilibration")["volume_nm3"]
            box_now = self._box_nm()
            for fix in self._fixes:
                self.lmp.command(f"unfix {fix}")
            self._fixes = ()
            if len(volumes) >= 2:
                target = float(np.mean(volumes[len(volumes) // 2 :]))
                scale = (target / float(np.prod(box_now))) ** (1.0 / 3.0)
                self.lmp.command(
                    f"change_box all x scale {scale:.15g} y scale {scale:.15g} "
                    f"z scale {scale:.15g} remap"
                )
                self._fresh = True
            self.lmp.command("reset_timestep 0")
            previous = state["restart"]
            state = {
                "stage": "production",
                "step": 0,
                "chunks": state["chunks"],
                "restart": self._write_restart("production-0.restart"),
                "box_nm": self._box_nm().tolist(),
            }
            self._commit(state)
            if previous != state["restart"]:
                (self.workdir / previous).unlink(missing_ok=True)
            loaded = True

        if state["stage"] == "production":
            if not loaded:
                self._restore(state["restart"])
            state = self._run_stage("production", p.steps(p.production_ps), state)
            state["stage"] = "done"
            self._commit(state)
        return state

    def _phase_of(self, stage: str, step: int, n_steps: int) -> tuple[str, int]:
        """The integrator phase at ``step`` of ``stage`` and the step where it ends."""
        if stage == "equilibration":
            melt = round(MELT_FRACTION * n_steps)
            return ("melt", melt) if step < melt else ("npt", n_steps)
        return ("production", n_steps)

    def _run_stage(self, stage: str, n_steps: int, state: dict[str, Any]) -> dict[str, Any]:
        p = self.protocol
        thermo_stride, sample_stride, _, segment = self._strides(stage)
        stage_id = STAGE_IDS[stage]
        step = int(state["step"])
        dt = p.dt_ps
        self._phase = ("", "")
        # one LAMMPS run per sample (or per 10 thermo rows): every run costs a set-up
        chunk = sample_stride or 10 * thermo_stride
        while step < n_steps:
            end = min(n_steps, step + segment)
            seg = Segment()
            done = step
            while done < end:
                phase, phase_end = self._phase_of(stage, done, n_steps)
                if self._phase != (stage, phase):
                    self._set_fixes(stage, phase, done)
                    self._fresh = True
                next_stop = min(end, phase_end, (done // chunk + 1) * chunk)
                self._define_thermo_fix(thermo_stride)
                self._run(next_stop - done, stage, done)
                seg.thermo_rows += self._thermo_rows(done, thermo_stride, stage_id)
                done = next_stop
                if sample_stride and done % sample_stride == 0:
                    seg.add_sample(done * dt, self._sample())
                self._report(stage, done, n_steps)
            state = self._end_segment(state, stage, step, end, seg, self._write_restart)
            step = end
        return state

    # ------------------------------------------------------------------ results
    def _result(self, state: dict[str, Any], wall_s: float) -> MDResult:
        return self._chunk_result(
            state,
            wall_s,
            bead_masses=np.full(self.n, self.system.mass_amu),
            platform=f"LAMMPS (CPU, {self.threads} thread{'s' if self.threads > 1 else ''})",
        )


class LammpsEngine:
    """The LAMMPS adapter of the CG-engine interface (:mod:`cgforge.engines.cg_engine`)."""

    name = "lammps"

    def __init__(self, *, threads: int | None = None) -> None:
        # None: each run's MDProtocol.cg_threads; a number overrides it (benchmarks)
        self.threads = threads

    def run(
        self,
        system: CGSystem,
        protocol: MDProtocol,
        workdir: str | Path,
        *,
        progress: ProgressCallback | None = None,
    ) -> MDResult:
        require_table(system, self.name)
        return LammpsRunner(
            system, protocol, workdir, progress=progress, threads=self.threads
        ).run()
