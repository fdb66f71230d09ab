"""Staged molecular dynamics on OpenMM with sampling, checkpoints and resume.

:class:`MDRunner` runs an :class:`~cgforge.engines.protocol.MDProtocol` and returns an
:class:`~cgforge.engines.protocol.MDResult`. One runner serves all-atom and coarse-grained
systems alike: a system, its particle positions and a ``groups`` array that maps each particle
to its bead (molecule index for all-atom runs, the identity for CG runs). On OpenMM the
protocol is

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
   (:attr:`~cgforge.engines.protocol.MDResult.frame_box_nm`).

A fixed production density (:attr:`~cgforge.engines.protocol.MDProtocol.production_density_scale` ×
the NPT mean density, or an absolute
:attr:`~cgforge.engines.protocol.MDProtocol.production_density_g_cm3`; force matching at a
compressed or expanded state point) replaces step 3's volume by the one of that density, bead
centres scaled the same way, and inserts a discarded ``relax`` stage before production:
``density_relax_ps`` of Langevin dynamics (the equilibration's integrator and friction) at the new,
fixed volume, so that production starts from a configuration relaxed at its density. Its thermo rows
carry the stage ``relax`` and it holds no samples.

Bead positions (mass-weighted centres, unwrapped), mapped forces (sum over each bead's particles),
and thermodynamics (energies, temperature, volume, density, instantaneous molecular pressure) are
sampled during production. Work is done in segments; after each segment the samples are written to a
chunk file, then an OpenMM checkpoint, then a small JSON state that commits both. A run that is
killed resumes from its last committed segment with nothing lost and nothing duplicated.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import openmm
import openmm.app as app

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
from cgforge.fileio import atomic_path
from cgforge.mapping import center_of_mass, map_forces
from cgforge.units import KB_KJ_MOL_K, density_g_cm3


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


class MDRunner(ChunkedRunner):
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
            eq = chunk_thermo(self.workdir, state["chunks"], "equilibration")
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
        thermo_stride, sample_stride, strides, segment = self._strides(stage)
        stage_id = STAGE_IDS[stage]
        step = int(state["step"])
        dt = p.dt_ps
        while step < n_steps:
            end = min(n_steps, step + segment)
            seg = Segment()
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
                    seg.thermo_rows.append(row)
                if sample_stride and done % sample_stride == 0:
                    seg.add_sample(t_ps, self._sample(simulation))
                self._report(stage, done, n_steps)
            state = self._end_segment(
                state, stage, step, end, seg, lambda name: self._save_checkpoint(simulation, name)
            )
            step = end
        return state

    def _result(self, state: dict[str, Any], wall_s: float) -> MDResult:
        return self._chunk_result(
            state, wall_s, bead_masses=self.bead_masses, platform=self.platform.getName()
        )
