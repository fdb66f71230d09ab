"""The torch adapter of the CG-engine interface: a CG system run by :class:`TorchMD`.

The system's potential is either a table, which becomes a
:class:`~cgforge.potentials.neural.pair.TabulatedPairModel` in float64, or a trained torch energy
model (:func:`~cgforge.engines.cg_engine.is_neural_model`), run as it is (its dtype, moved to
the device). :class:`TorchMD` has no minimiser and no Langevin integrator, so under an
:class:`~cgforge.engines.protocol.MDProtocol` this engine

* starts from the system's configuration with Maxwell–Boltzmann velocities (zero net momentum)
  and does not minimise (``minimize`` is ignored);
* for an ``nvt`` or ``nve`` production, equilibrates for ``equilibration_ps`` at the **start
  volume** (Bussi thermostat, coupling time ``1/thermostat_collision_per_ps``): the box, and so
  the density, is the system's; then runs production under ``nvt`` (Bussi, a global
  thermostat) or ``nve``;
* for an ``npt`` production, equilibrates under the Bussi thermostat and TorchMD's Monte Carlo
  barostat (the protocol's ``pressure_bar``, a volume move every ``barostat_interval`` steps),
  sets the box to the mean volume of the second half of that stage (bead centres scaled, as
  the other engines do), and produces from there with the same thermostat and barostat; every
  sample records its box (:attr:`~cgforge.engines.protocol.MDResult.frame_box_nm`) and
  :attr:`~cgforge.engines.protocol.MDResult.npt_volume_nm3` holds that mean volume;
* refuses ``langevin`` productions (TorchMD has no Langevin integrator).

Thermo and positions are sampled every ``thermo_interval_ps`` (positions kept every
``sample_interval_ps``); the result has the columns of every CG engine
(:data:`~cgforge.engines.protocol.THERMO_COLUMNS`), and
:attr:`~cgforge.engines.protocol.MDResult.conserved_kJ_mol` holds TorchMD's conserved energy (total
minus the energy the Bussi thermostat put in) at every thermo row. The protocol's ``platform``
``cuda`` (or ``cuda:N``) picks the device; ``auto`` and ``cpu`` leave it to the engine's ``device``,
except that ``cpu`` forces the CPU. Checkpoints of both stages live in the work directory
(``equilibration/``, ``production/``), and a killed run resumes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cgforge.engines.cg_engine import CGSystem, is_neural_model
from cgforge.engines.protocol import (
    STAGE_IDS,
    THERMO_COLUMNS,
    MDProtocol,
    MDResult,
    ProgressCallback,
)
from cgforge.errors import InputError


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op CPU threads set to ``threads`` for the block, then restored; 1 leaves
    them as they are (torch's default: the cores)."""
    if threads <= 1:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _load_torch() -> tuple[Any, Any]:
    try:
        from cgforge.engines.torch_md import TorchMD
        from cgforge.potentials.neural.pair import TabulatedPairModel
    except ImportError as exc:
        raise InputError(
            f"the torch engine needs PyTorch ({exc}); install it with pip install 'cgforge[ml]'"
        ) from exc
    return TorchMD, TabulatedPairModel


class TorchEngine:
    """Runs a :class:`CGSystem` with :class:`~cgforge.engines.torch_md.TorchMD` (constant
    volume, or NPT under its Monte Carlo barostat for an ``npt`` production)."""

    name = "torch"

    def __init__(self, *, device: str = "auto") -> None:
        self.device = device

    def run(
        self,
        system: CGSystem,
        protocol: MDProtocol,
        workdir: str | Path,
        *,
        progress: ProgressCallback | None = None,
    ) -> MDResult:
        p = protocol
        if p.production_ensemble == "langevin":
            raise InputError(
                "TorchMD has no Langevin integrator; use engine='lammps' or engine='openmm' for "
                "a langevin production",
                parameters="engine",
            )
        npt = p.production_ensemble == "npt"
        torch_md, pair_model = _load_torch()
        device = self.device if p.platform in ("auto", "cpu") else p.platform
        if p.platform == "cpu":
            device = "cpu"
        if is_neural_model(system.potential):
            model = system.potential
        else:
            model = pair_model.from_potential(system.potential).double()
        engine = torch_md(
            model,
            system.start_positions(p.seed),
            system.box_nm,
            system.mass_amu,
            timestep_fs=p.timestep_fs,
            temperature_K=p.temperature_K,
            thermostat="bussi",
            tau_ps=1.0 / p.thermostat_collision_per_ps,
            seed=p.seed,
            device=device,
            pressure_bar=p.pressure_bar if npt else None,
            barostat_frequency=p.barostat_interval,
        )
        threads = p.cg_threads if str(engine.device).startswith("cpu") else 1
        with _torch_threads(threads):
            return self._run(system, p, engine, Path(workdir), progress, threads)

    def _run(
        self,
        system: CGSystem,
        p: MDProtocol,
        engine: Any,
        workdir: Path,
        progress: ProgressCallback | None,
        threads: int,
    ) -> MDResult:
        interval = p.stride(p.thermo_interval_ps)
        sample_every = max(1, round(p.stride(p.sample_interval_ps) / interval))
        started = time.perf_counter()
        stages: dict[str, Any] = {}
        speed = 0.0
        npt_volume: float | None = None
        for stage, t_ps in (("equilibration", p.equilibration_ps), ("production", p.production_ps)):
            n_steps = math.ceil(p.steps(t_ps) / interval) * interval
            if n_steps == 0:
                continue
            if stage == "production" and p.production_ensemble == "nve":
                engine.thermostat = "none"
            if stage == "production" and "equilibration" in stages and engine.barostat_stats():
                # the mean NPT volume of the second half of equilibration (its thermo rows, the
                # start sample left out), as the other engines start an npt production
                volumes = np.asarray(stages["equilibration"].thermo["volume_nm3"])[1:]
                if len(volumes) >= 2:
                    npt_volume = float(np.mean(volumes[len(volumes) // 2 :]))
                    engine.set_volume(npt_volume)
            first = engine.step
            clock = {"t": time.perf_counter(), "step": first}

            def report(
                eng: Any,
                step: int,
                stage: str = stage,
                first: int = first,
                total: int = n_steps,
                clock: dict[str, float] = clock,
            ) -> None:
                if progress is None:
                    return
                now = time.perf_counter()
                elapsed = now - clock["t"]
                done = step - clock["step"]
                ns_day = done * p.dt_ps * 1e-3 / elapsed * 86400.0 if elapsed > 0 else 0.0
                clock["t"], clock["step"] = now, step
                progress(stage, step - first, total, ns_day)

            result = engine.run(
                n_steps,
                sample_interval=interval,
                checkpoint_dir=workdir / stage,
                checkpoint_interval=max(1, round(p.stride(p.checkpoint_interval_ps) / interval))
                * interval,
                record_forces=p.save_forces,
                callback=report,
            )
            if math.isfinite(result.steps_per_s):
                speed = result.steps_per_s * p.dt_ps * 1e-3 * 86400.0
            stages[stage] = result
        if "production" not in stages:
            raise InputError(
                "production_ps gives no production steps; lengthen it", parameters="production_ps"
            )
        result = self._result(system, stages, sample_every, speed, time.perf_counter() - started)
        result.npt_volume_nm3 = npt_volume
        if threads > 1:
            result.platform = f"torch (cpu, {threads} threads)"
        return result

    def _result(
        self,
        system: CGSystem,
        stages: dict[str, Any],
        sample_every: int,
        ns_per_day: float,
        wall_s: float,
    ) -> MDResult:
        columns: dict[str, list[np.ndarray]] = {c: [] for c in THERMO_COLUMNS}
        conserved: list[np.ndarray] = []
        for stage, result in stages.items():
            th = {k: np.asarray(v)[1:] for k, v in result.thermo.items()}  # drop the start sample
            t0 = float(result.thermo["t_ps"][0])
            n = len(th["t_ps"])
            values = {
                "t_ps": th["t_ps"] - t0,
                "stage": np.full(n, float(STAGE_IDS[stage])),
                "potential_kJ_mol": th["potential_kJ_mol"],
                "kinetic_kJ_mol": th["kinetic_kJ_mol"],
                "total_kJ_mol": th["total_kJ_mol"],
                "temperature_K": th["temperature_K"],
                "volume_nm3": th["volume_nm3"],
                "density_g_cm3": th["density_g_cm3"],
                "pressure_bar": th["pressure_bar"],
            }
            for c in THERMO_COLUMNS:
                columns[c].append(values[c])
            conserved.append(th["conserved_kJ_mol"])
        thermo = {c: np.concatenate(v) for c, v in columns.items()}
        prod = stages["production"]
        traj = prod.trajectory
        t0 = float(traj.times_ps[0])
        keep = np.arange(sample_every, len(traj.times_ps), sample_every)
        forces = getattr(traj, "forces_kj_mol_nm", None)
        frame_box = np.asarray(traj.box_nm)[keep] if prod.barostat is not None else None
        return MDResult(
            times_ps=np.asarray(traj.times_ps)[keep] - t0,
            bead_positions_nm=np.asarray(traj.positions_nm)[keep],
            bead_forces_kj_mol_nm=None if forces is None else np.asarray(forces)[keep],
            box_nm=np.array(system.box_nm) if frame_box is None else frame_box.mean(axis=0),
            bead_masses_amu=np.full(system.n_beads, system.mass_amu),
            thermo=thermo,
            platform=f"torch ({prod.device})",
            ns_per_day=ns_per_day,
            wall_s=wall_s,
            conserved_kJ_mol=np.concatenate(conserved),
            frame_box_nm=frame_box,
            barostat=None if prod.barostat is None else dict(prod.barostat),
        )
