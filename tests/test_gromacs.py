"""The GROMACS engine: same Hamiltonian as OpenMM term by term, same protocol, same output files.

Tests that run GROMACS skip where ``gmx`` is not installed (``apt-get install gromacs``),
except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import openmm
import pytest

from cgforge import mapping
from cgforge.cli.main import main
from cgforge.engines.gromacs import (
    GMX_MISSING,
    GromacsRunner,
    GromacsSystem,
    gmx_executable,
    gromacs_error,
    rerun_energies,
    write_gromacs_topology,
)
from cgforge.engines.openmm_system import create_aa_system, group_energies, openmm_topology
from cgforge.engines.protocol import STAGE_IDS, THERMO_COLUMNS
from cgforge.errors import InputError
from cgforge.molecules import load_molecule
from cgforge.molecules.topology import (
    AngleParameter,
    BondedParameters,
    BondParameter,
    FourierParameter,
)
from cgforge.packing import pack_liquid
from cgforge.workflows.aa import AAConfig, default_protocol, resolve_engine

needs_gmx = pytest.mark.gromacs  # skips without gmx, fails in CI (tests/conftest.py)

N_MOLECULES = 64  # a 2.4-2.5 nm box: room for a 1.0 nm cutoff
CUTOFF_NM = 1.0
#: PME converged far beyond production accuracy on both sides, so the engines can be compared.
TIGHT_GMX_PME = {"fourierspacing": 0.06, "pme-order": 6, "ewald-rtol": 1.0e-6}
TIGHT_OPENMM_EWALD = 1.0e-6


def _randomised(molecule, seed: int):
    """The molecule with every bonded parameter perturbed, V1..V4 of all torsions nonzero."""
    rng = np.random.default_rng(seed)
    p = molecule.parameters
    return molecule.with_parameters(
        BondedParameters(
            bonds={
                k: BondParameter(
                    v.length_nm * rng.uniform(0.95, 1.05), v.k_kj_mol_nm2 * rng.uniform(0.7, 1.3)
                )
                for k, v in p.bonds.items()
            },
            angles={
                k: AngleParameter(
                    v.theta0_rad * rng.uniform(0.97, 1.03), v.k_kj_mol_rad2 * rng.uniform(0.7, 1.3)
                )
                for k, v in p.angles.items()
            },
            dihedrals={k: FourierParameter(*rng.uniform(-6, 6, 4)) for k in p.dihedrals},
            impropers={k: FourierParameter(*rng.uniform(-6, 6, 4)) for k in p.impropers},
        )
    )


def _liquid(name: str, randomise: bool):
    molecule = load_molecule(name)
    if randomise:
        molecule = _randomised(molecule, seed=7)
    packed = pack_liquid(molecule, N_MOLECULES, 0.6, seed=1)
    box = np.full(3, packed.box_nm)
    positions = packed.positions_nm  # whole molecules
    # both engines see the same single-precision coordinates (GROMACS reads them from a .trr)
    return molecule, positions.astype(np.float32).astype(float), box


def _openmm_energies(molecule, positions, box, **kwargs):
    system = create_aa_system(
        molecule,
        N_MOLECULES,
        box,
        cutoff_nm=CUTOFF_NM,
        constraints="none",
        ewald_tolerance=TIGHT_OPENMM_EWALD,
        **kwargs,
    )
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(positions)
    return group_energies(context)


def _dispersion_corrections(molecule, volume_nm3: float) -> tuple[float, float]:
    """Analytic LJ tail corrections (kJ/mol) in OpenMM's and in GROMACS' convention.

    E = 2πN²/V (⟨C12⟩/(9 rc⁹) − ⟨C6⟩/(3 rc³)); OpenMM averages C6, C12 over all N(N+1)/2 pairs
    including i = j, GROMACS over the N(N−1)/2 pairs minus the excluded (1-2, 1-3, 1-4) ones.
    """
    sigma = np.tile([a.sigma_nm for a in molecule.atoms], N_MOLECULES)
    epsilon = np.tile([a.epsilon_kj_mol for a in molecule.atoms], N_MOLECULES)
    n = len(sigma)
    s = np.sqrt(np.outer(sigma, sigma))
    e = np.sqrt(np.outer(epsilon, epsilon))
    c6, c12 = 4 * e * s**6, 4 * e * s**12
    upper, strict = np.triu_indices(n), np.triu_indices(n, 1)
    excluded = sorted(set(molecule.excluded_pairs()) | set(molecule.pairs_14()))
    i, j = np.array(excluded).T
    n_pairs = n * (n - 1) / 2 - N_MOLECULES * len(excluded)
    gmx6 = (c6[strict].sum() - N_MOLECULES * c6[i, j].sum()) / n_pairs
    gmx12 = (c12[strict].sum() - N_MOLECULES * c12[i, j].sum()) / n_pairs

    def tail(c6_mean: float, c12_mean: float) -> float:
        return (
            2
            * math.pi
            * n
            * n
            / volume_nm3
            * (c12_mean / (9 * CUTOFF_NM**9) - c6_mean / (3 * CUTOFF_NM**3))
        )

    return tail(c6[upper].mean(), c12[upper].mean()), tail(gmx6, gmx12)


def _lj14(molecule, positions) -> float:
    """Scaled 1-4 Lennard-Jones energy (kJ/mol), evaluated directly."""
    total = 0.0
    n = molecule.n_atoms
    for i, j in molecule.pairs_14():
        a, b = molecule.atoms[i], molecule.atoms[j]
        sigma = math.sqrt(a.sigma_nm * b.sigma_nm)
        epsilon = 0.5 * math.sqrt(a.epsilon_kj_mol * b.epsilon_kj_mol)
        r = np.linalg.norm(positions[i::n][:N_MOLECULES] - positions[j::n][:N_MOLECULES], axis=1)
        total += float(np.sum(4 * epsilon * ((sigma / r) ** 12 - (sigma / r) ** 6)))
    return total


@needs_gmx
@pytest.mark.parametrize(
    ("name", "randomise"), [("3-methylpentane", False), ("ethylbenzene", True)]
)
def test_energy_terms_match_openmm(tmp_path, name, randomise):
    molecule, positions, box = _liquid(name, randomise)
    top = write_gromacs_topology(molecule, N_MOLECULES, tmp_path / "system.top")
    gmx = rerun_energies(
        top,
        openmm_topology(molecule, N_MOLECULES),
        positions,
        box,
        tmp_path / "rerun",
        cutoff_nm=CUTOFF_NM,
        extra_mdp=TIGHT_GMX_PME,
    )
    omm = _openmm_energies(molecule, positions, box)  # lb_sum: what the OpenMM engine runs
    omm_no_tail = _openmm_energies(molecule, positions, box, dispersion_correction=False)
    split = _openmm_energies(
        molecule, positions, box, dispersion_correction=False, combining="custom"
    )  # LJ alone in "lj", Coulomb + 1-4 in "nonbonded"

    # bonded terms, one by one (all bonds flexible here, so C-H bonds count too)
    assert gmx["Bond"] == pytest.approx(omm["bond"], rel=2e-5)
    assert gmx["Angle"] == pytest.approx(omm["angle"], rel=2e-5)
    assert gmx["Fourier Dih."] == pytest.approx(omm["dihedral"], rel=2e-5, abs=2e-3)
    if molecule.impropers:
        assert gmx["Per. Imp. Dih."] == pytest.approx(omm["improper"], rel=2e-5, abs=2e-3)
        # nearly planar rings: a wrong phase of V1 or V3 would add about V per improper
        assert abs(omm["improper"]) > 0.1
    else:
        assert "Per. Imp. Dih." not in gmx
    # nonbonded: 1-4 LJ directly, LJ within the cutoff, then Coulomb (PME + 1-4) as a sum
    assert gmx["LJ-14"] == pytest.approx(_lj14(molecule, positions), rel=2e-5)
    assert gmx["LJ (SR)"] == pytest.approx(split["lj"], rel=2e-5)
    # GROMACS sums in single precision: 5e-5 of the size of the terms (PME itself is converged)
    terms = ("Coulomb-14", "Coulomb (SR)", "Coul. recip.")
    coulomb = sum(gmx[t] for t in terms)
    scale = sum(abs(gmx[t]) for t in terms)
    assert coulomb == pytest.approx(split["nonbonded"] - gmx["LJ-14"], abs=5e-5 * scale)
    nonbonded = coulomb + gmx["LJ-14"] + gmx["LJ (SR)"]
    scale += abs(gmx["LJ-14"]) + abs(gmx["LJ (SR)"])
    assert nonbonded == pytest.approx(
        omm_no_tail["nonbonded"] + omm_no_tail["lj"], abs=5e-5 * scale
    )
    # long-range LJ correction: each engine its own convention of averaging C6 and C12
    omm_tail = sum(omm.values()) - sum(omm_no_tail.values())
    expected_omm, expected_gmx = _dispersion_corrections(molecule, float(np.prod(box)))
    assert omm_tail == pytest.approx(expected_omm, rel=1e-8)
    assert gmx["Disper. corr."] == pytest.approx(expected_gmx, rel=1e-5)
    assert gmx["Disper. corr."] == pytest.approx(omm_tail, rel=0.01)


def test_topology_file_layout(tmp_path):
    molecule = load_molecule("ethylbenzene")
    text = write_gromacs_topology(molecule, 5, tmp_path / "eb.top").read_text()
    assert "1       3          yes        0.5      0.5" in text
    lines = text.splitlines()
    section = lines[lines.index("[ molecules ]") + 1]
    assert section.split() == ["EBZ", "5"]
    # propers as Fourier (func 5) with V1..V4, impropers as periodic impropers (func 4) with
    # k = V2/2 at 180°; angles in degrees
    improper = molecule.impropers[0]
    v2 = molecule.improper_parameter(improper).v2
    atoms = " ".join(f"{a + 1:5d}" for a in improper)
    assert f"  {atoms} 4 180 {v2 / 2:.10g} 2" in lines
    angle = molecule.angles[0]
    theta = math.degrees(molecule.angle_parameter(angle).theta0_rad)
    assert any(
        line.split()[:4] == [str(a + 1) for a in angle] + ["1"]
        and float(line.split()[4]) == pytest.approx(theta)
        for line in lines
    )


def test_openmm_reads_the_topology_as_cgforge_built_it(tmp_path):
    """OpenMM's own GROMACS reader, an independent interpretation of the .top, gives the energy of
    create_aa_system (vacuum, all pairs, randomised bonded parameters)."""
    from openmm import app, unit

    molecule = _randomised(load_molecule("ethylbenzene"), seed=3)
    n = 3
    shifts = np.array([[0.9, 0.3, 0.1]]) * np.arange(n)[:, None]
    positions = np.concatenate([molecule.positions_nm + shift for shift in shifts])
    top = app.GromacsTopFile(str(write_gromacs_topology(molecule, n, tmp_path / "eb.top")))
    systems = (
        top.createSystem(nonbondedMethod=app.NoCutoff, constraints=None),
        create_aa_system(
            molecule, n, None, nonbonded_method="nocutoff", constraints="none", combining="custom"
        ),
    )
    energies = []
    for system in systems:
        context = openmm.Context(
            system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
        )
        context.setPositions(positions)
        state = context.getState(getEnergy=True)
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert energies[0] == pytest.approx(energies[1], rel=1e-8, abs=1e-6)


def test_missing_gmx_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no gmx here
    with pytest.raises(InputError) as info:
        gmx_executable()
    assert str(info.value) == GMX_MISSING and "use engine='openmm'" in GMX_MISSING
    assert info.value.parameters == ("engine",)  # the CLI shows --engine openmm instead
    assert resolve_engine("auto", "auto") == "openmm"  # auto falls back to OpenMM
    out = tmp_path / "out"
    code = main(
        [
            "aa",
            "3-methylpentane",
            "--molecules",
            "27",
            "--engine",
            "gromacs",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "GROMACS (gmx) is not on the PATH" in err and "--engine openmm" in err
    assert "Traceback" not in err
    assert not (out / "summary.json").exists()


def test_engine_choice():
    with pytest.raises(InputError, match="unknown engine"):
        AAConfig(molecule="3-methylpentane", engine="lammps")
    # naming an OpenMM platform selects OpenMM under auto
    assert resolve_engine("auto", "cpu") == "openmm"
    assert resolve_engine("openmm", "auto") == "openmm"


def test_gromacs_error_message_is_extracted():
    text = (
        "Some output\n-------------------------------------------------------\n"
        "Program:     gmx grompp, version 2022.5\nSource file: src/grompp.cpp (line 2522)\n\n"
        "Fatal error:\nThere was 1 error in input file(s)\n\nFor more information and tips "
        "for troubleshooting, please check the GROMACS\nwebsite\n"
        "-------------------------------------------------------\n"
    )
    text = "ERROR 1 [file a.mdp]:\n  The cut-off length is too long.\n\n" + text
    message = gromacs_error(text)
    assert message.startswith("There was 1 error in input file(s)")
    assert "ERROR 1 [file a.mdp]: The cut-off length is too long." in message
    assert "\n" not in message


def _small_liquid(n=27):
    molecule = load_molecule("3-methylpentane")
    packed = pack_liquid(molecule, n, 0.6, seed=0)
    return molecule, packed.positions_nm, np.full(3, packed.box_nm)


@needs_gmx
def test_gromacs_failure_surfaces_its_message(tmp_path):
    molecule, positions, box = _small_liquid()
    system = GromacsSystem.from_molecule(molecule, 27, tmp_path / "system.top")
    groups = np.repeat(np.arange(27), molecule.n_atoms)
    runner = GromacsRunner(
        system,
        positions,
        box,
        groups,
        default_protocol(1.0, 1.0),
        tmp_path / "work",
        cutoff_nm=0.6 * box[0],
    )
    with pytest.raises(InputError, match="cut-off length is longer than half the shortest box"):
        runner.run()


class _Kill(Exception):
    pass


@needs_gmx
def test_killed_gromacs_run_resumes(tmp_path):
    molecule, positions, box = _small_liquid()
    top = GromacsSystem.from_molecule(molecule, 27, tmp_path / "system.top")
    groups = np.repeat(np.arange(27), molecule.n_atoms)
    protocol = default_protocol(2.0, 10.0, sample_interval_ps=0.2, thermo_interval_ps=0.1)

    def runner(progress=None):
        return GromacsRunner(
            top,
            positions,
            box,
            groups,
            protocol,
            tmp_path / "work",
            cutoff_nm=0.8,
            threads=1,
            progress=progress,
        )

    def kill_in_production(stage, done, total, speed):
        if stage == "production" and 0 < done < total:
            raise _Kill

    with pytest.raises(_Kill):
        runner(kill_in_production).run()
    result = runner().run()
    log = (tmp_path / "work" / "production.log").read_text()
    assert "Restarting from checkpoint" in log  # continued, not restarted
    np.testing.assert_allclose(result.times_ps, np.arange(1, 51) * 0.2, atol=1e-9)
    prod = result.thermo["stage"] == 1
    np.testing.assert_allclose(result.thermo["t_ps"][prod], np.arange(1, 101) * 0.1, atol=1e-9)
    assert tuple(result.thermo) == THERMO_COLUMNS
    # production at the mean NPT volume of the second half of equilibration, constant volume
    eq = result.thermo["stage"] == 0
    volumes = result.thermo["volume_nm3"][eq]
    assert len(volumes) == 20
    assert np.prod(result.box_nm) == pytest.approx(volumes[10:].mean(), rel=1e-5)
    assert np.ptp(result.thermo["volume_nm3"][prod]) == 0.0
    # unwrapped, continuous bead centres; mass-weighted centres of the particle frames
    steps = np.abs(np.diff(result.bead_positions_nm, axis=0))
    assert steps.max() < 0.3 * result.box_nm.min()
    frames = list(result.iter_particle_frames())
    assert len(frames) == 50
    masses = np.tile([a.mass_amu for a in molecule.atoms], 27)
    com = mapping.center_of_mass(frames[-1][1], masses, groups)
    np.testing.assert_allclose(com, result.bead_positions_nm[-1], atol=1e-5)
    assert result.platform.startswith("GROMACS ") and result.ns_per_day > 0


@needs_gmx
def test_cli_gromacs_engine_writes_the_contract(tmp_path):
    out = tmp_path / "3mp"
    code = main(
        [
            "aa",
            "3-methylpentane",
            "--molecules",
            "27",
            "--equilibrate",
            "1ps",
            "--production",
            "2ps",
            "--engine",
            "gromacs",
            "--forces",
            "--ensemble",
            "nve",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "gromacs" and summary["platform"].startswith("GROMACS")
    assert summary["provenance"]["versions"]["gromacs"]
    assert summary["n_molecules"] == 27 and summary["has_forces"]
    assert summary["bead_mass_amu"] == pytest.approx(86.175, abs=0.02)
    assert 0.3 < summary["density_g_cm3"] < 1.0 and summary["diffusion_m2_s"] > 0
    for name in (
        "topology.pdb",
        "trajectory.dcd",
        "cg_trajectory.npz",
        "thermo.csv",
        "rdf.csv",
        "msd.csv",
        "system.top",
        "system.gro",
        "system.tpr",
    ):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "system.xml").exists()
    lines = (out / "thermo.csv").read_text().splitlines()
    assert lines[0].split(",") == list(THERMO_COLUMNS)
    # NVE production conserves the total energy
    rows = [line.split(",") for line in lines[1:] if ",production," in line]
    total = np.array([float(r[4]) for r in rows])
    kinetic = np.array([float(r[3]) for r in rows])
    assert len(rows) == 100 and np.ptp(total) < 0.02 * kinetic.mean()
    with np.load(out / "cg_trajectory.npz") as data:
        assert data["forces_kj_mol_nm"].shape == data["positions_nm"].shape
        # mapped forces of a liquid: large per bead, nearly zero in total (Newton's third law)
        total = np.abs(data["forces_kj_mol_nm"].sum(axis=1)).max()
        assert total < 1e-2 * np.abs(data["forces_kj_mol_nm"]).max()
    # the DCD holds the same unwrapped centres as the CG trajectory
    import MDAnalysis as mda

    universe = mda.Universe(str(out / "topology.pdb"), str(out / "trajectory.dcd"))
    with np.load(out / "cg_trajectory.npz") as data:
        beads = data["positions_nm"]
    universe.trajectory[-1]
    com = np.array([r.atoms.center_of_mass() for r in universe.residues]) * 0.1  # Å → nm
    np.testing.assert_allclose(com, beads[-1], atol=2e-3)


@needs_gmx
@pytest.mark.slow
def test_engines_agree_on_density(tmp_path):
    """64 molecules, 150 ps NPT on each engine: the densities agree within their errors."""
    from cgforge.workflows.aa import run_aa

    densities = {}
    for engine, platform in (("gromacs", "auto"), ("openmm", "cpu")):
        protocol = default_protocol(150.0, 5.0, platform=platform, seed=1)
        config = AAConfig(
            molecule="3-methylpentane", n_molecules=64, protocol=protocol, engine=engine
        )
        summary = run_aa(config, tmp_path / engine)
        assert summary["engine"] == engine and summary["cutoff_nm"] == CUTOFF_NM
        densities[engine] = (summary["density_g_cm3"], summary["density_err_g_cm3"])
    (a, da), (b, db) = densities["gromacs"], densities["openmm"]
    assert abs(a - b) < 3 * math.hypot(da, db) + 0.003, densities


@needs_gmx
def test_user_gromacs_system_runs_on_gromacs(tmp_path):
    """--topology/--coordinates go to grompp as they are; no equilibration: velocities drawn."""
    molecule = load_molecule("toluene")
    packed = pack_liquid(molecule, 24, 0.8, seed=2)
    top = write_gromacs_topology(molecule, 24, tmp_path / "tol.top")
    from cgforge.engines.gromacs import write_gro

    gro = write_gro(
        openmm_topology(molecule, 24),
        packed.positions_nm,
        [packed.box_nm] * 3,
        tmp_path / "tol.gro",
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "aa",
                "--topology",
                str(top),
                "--coordinates",
                str(gro),
                "--engine",
                "gromacs",
                "--equilibrate",
                "0ps",
                "--production",
                "1ps",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "gromacs" and summary["n_molecules"] == 24
    assert summary["bead_mass_amu"] == pytest.approx(92.14, abs=0.02)
    assert summary["density_source"] == "production box"
    assert summary["box_nm"] == pytest.approx([packed.box_nm] * 3, rel=1e-5)
    assert 200 < summary["temperature_measured_K"] < 400


def test_threads_follow_the_batch_system(monkeypatch):
    from cgforge.engines.gromacs import default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == len(os.sched_getaffinity(0))


def test_langevin_production_maps_to_gromacs_stochastic_dynamics():
    """GROMACS' sd friction is mass/tau-t: a Langevin γ of 4/ps must give tau-t = 0.25 ps, and
    the Nosé–Hoover keys must not leak into the stochastic production."""
    from cgforge.engines.gromacs import mdp_settings
    from cgforge.engines.protocol import MDProtocol

    protocol = MDProtocol(
        production_ensemble="langevin", production_friction_per_ps=4.0, production_ps=1.0
    )
    settings = mdp_settings("production", protocol, 1.0, n_steps=500)
    assert settings["integrator"] == "sd"
    assert settings["tau-t"] == pytest.approx(0.25)
    assert settings["ref-t"] == pytest.approx(protocol.temperature_K)
    assert settings["tcoupl"] == "no"
    assert "nh-chain-length" not in settings


def _fixed_density_runner(tmp_path, name, protocol, progress=None):
    molecule, positions, box = _small_liquid()
    top = GromacsSystem.from_molecule(molecule, 27, tmp_path / "system.top")
    groups = np.repeat(np.arange(27), molecule.n_atoms)
    return GromacsRunner(
        top,
        positions,
        box,
        groups,
        protocol,
        tmp_path / name,
        cutoff_nm=0.8,
        threads=1,
        progress=progress,
    )


@needs_gmx
def test_fixed_density_production_follows_a_discarded_relax_stage(tmp_path):
    """--density-scale 1.05: production at exactly 1.05 × the NPT mean density, after an NVT
    relax stage that resumes from its checkpoint and stays out of production."""
    settings = {"sample_interval_ps": 0.2, "thermo_interval_ps": 0.1, "seed": 4}
    dense = default_protocol(
        4.0, 10.0, production_density_scale=1.05, density_relax_ps=4.0, **settings
    )

    def kill_in_relax(stage, done, total, speed):
        if stage == "relax" and 0 < done < total:
            raise _Kill

    with pytest.raises(_Kill):
        _fixed_density_runner(tmp_path, "dense", dense, kill_in_relax).run()
    result = _fixed_density_runner(tmp_path, "dense", dense).run()
    work = tmp_path / "dense"
    assert "Restarting from checkpoint" in (work / "relax.log").read_text()
    th = result.thermo
    eq, prod, relax = (
        th["stage"] == STAGE_IDS[s] for s in ("equilibration", "production", "relax")
    )
    # thermo rows: equilibration, then the relax stage (one run, no duplicates), then production
    np.testing.assert_allclose(th["t_ps"][relax], np.arange(1, 41) * 0.1, atol=1e-9)
    np.testing.assert_allclose(th["t_ps"][prod], np.arange(1, 101) * 0.1, atol=1e-9)
    assert np.flatnonzero(relax).max() < np.flatnonzero(prod).min()
    npt_volume = th["volume_nm3"][eq][20:].mean()
    assert result.npt_volume_nm3 == pytest.approx(npt_volume, rel=1e-9)
    assert npt_volume / np.prod(result.box_nm) == pytest.approx(1.05, rel=1e-3)
    density = th["density_g_cm3"]
    assert density[prod].mean() / density[eq][20:].mean() == pytest.approx(1.05, rel=2e-3)
    for stage in (relax, prod):
        np.testing.assert_allclose(th["volume_nm3"][stage], np.prod(result.box_nm), rtol=1e-6)
    # production samples only: 50 frames from the production run, none from the relax stage
    np.testing.assert_allclose(result.times_ps, np.arange(1, 51) * 0.2, atol=1e-9)
    start = (work / "production-start.gro").read_text().splitlines()
    assert start[0] == "cgforge production start"
    assert _gro_box_of(work / "relax-start.gro") == pytest.approx(result.box_nm, abs=2e-6)
    # The pressure rises on compression, but 27 molecules over 10 ps cannot show it robustly:
    # samples scatter by ~1300 bar, so the means by ~150 bar, against an expected rise of a
    # few hundred bar; the test does not assert it.


def _gro_box_of(path):
    return [float(v) for v in path.read_text().splitlines()[-1].split()]


@needs_gmx
def test_cli_density_scale_records_the_fixed_density(tmp_path):
    out = tmp_path / "dense"
    code = main(
        [
            "aa",
            "3-methylpentane",
            "--molecules",
            "27",
            "--equilibrate",
            "1ps",
            "--production",
            "2ps",
            "--density-scale",
            "1.05",
            "--density-relax",
            "0.5ps",
            "--engine",
            "gromacs",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["density_source"].startswith("fixed: production_density_scale")
    assert summary["density_scale"] == pytest.approx(1.05, rel=1e-3)
    assert summary["density_target_g_cm3"] == pytest.approx(1.05 * summary["density_npt_g_cm3"])
    assert summary["density_g_cm3"] == pytest.approx(summary["density_target_g_cm3"], rel=1e-3)
    assert summary["density_relax_ps"] == pytest.approx(0.5)
    protocol = summary["provenance"]["config"]["protocol"]
    assert protocol["production_density_scale"] == 1.05 and protocol["density_relax_ps"] == 0.5
    rows = (out / "thermo.csv").read_text().splitlines()[1:]
    stages = [row.split(",")[1] for row in rows]
    assert stages.count("relax") == 25 and stages.count("production") == 100
    assert stages == sorted(stages, key=["equilibration", "relax", "production"].index)
