"""Small test systems shared by several test modules."""

from __future__ import annotations

import numpy as np
import openmm
import openmm.app as app


def lj_fluid(
    n_side: int = 5,
    density_nm3: float = 20.0,
    mass_amu: float = 40.0,
    sigma_nm: float = 0.34,
    epsilon_kj_mol: float = 0.996,
    cutoff_nm: float = 0.8,
):
    """A Lennard-Jones fluid on a cubic lattice (argon-like by default): system, topology, positions, box."""
    n = n_side**3
    edge = (n / density_nm3) ** (1.0 / 3.0)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(
        openmm.Vec3(edge, 0, 0), openmm.Vec3(0, edge, 0), openmm.Vec3(0, 0, edge)
    )
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(min(cutoff_nm, 0.49 * edge))
    force.setUseDispersionCorrection(True)
    for _ in range(n):
        system.addParticle(mass_amu)
        force.addParticle(0.0, sigma_nm, epsilon_kj_mol)
    system.addForce(force)
    grid = (np.arange(n_side) + 0.5) * edge / n_side
    positions = np.array(np.meshgrid(grid, grid, grid, indexing="ij")).reshape(3, -1).T
    topology = app.Topology()
    chain = topology.addChain()
    element = app.Element.getBySymbol("Ar")
    for i in range(n):
        residue = topology.addResidue("LJ", chain)
        topology.addAtom(f"A{i}", element, residue)
    return system, topology, positions, np.full(3, edge)


def lj_protocol(**overrides):
    """A short staged protocol for the small LJ fluid (120 K, 50 bar, Reference platform)."""
    from cgforge.engines.protocol import MDProtocol

    settings = dict(
        temperature_K=120.0,
        pressure_bar=50.0,
        timestep_fs=5.0,
        equilibration_ps=1.0,
        production_ps=2.0,
        sample_interval_ps=0.05,
        thermo_interval_ps=0.05,
        checkpoint_interval_ps=0.5,
        platform="reference",
        seed=3,
    )
    settings.update(overrides)
    return MDProtocol(**settings)


def lj_runner(workdir, protocol, progress=None):
    """An MDRunner of the 64-particle LJ fluid, one group per particle."""
    from cgforge.engines.openmm_md import MDRunner

    system, topology, positions, box = lj_fluid(n_side=4)
    groups = np.arange(system.getNumParticles())
    return MDRunner(system, topology, positions, box, groups, protocol, workdir, progress=progress)


def stable_ranges():
    """Narrow random bonded ranges around OPLS-AA, so tiny randomised liquids stay stable."""
    from cgforge.molecules.randomize import ParameterRanges

    return ParameterRanges(
        bond_k_kcal_mol_A2=(250.0, 350.0),
        bond_cc_r0_A=(1.48, 1.58),
        bond_ch_r0_A=(1.05, 1.12),
        angle_k_kcal_mol_rad2=(35.0, 60.0),
        angle_theta0_deg=(106.0, 114.0),
        dihedral_v_kcal_mol=(-1.0, 1.0),
    )


#: A small argon-like CG liquid used as an "all-atom" reference by CG method tests.
LJ_REFERENCE = {"temperature_K": 180.0, "mass_amu": 40.0, "n_beads": 125, "cutoff_nm": 0.85}


def lj_table():
    """The reference liquid's pair potential: LJ (0.996 kJ/mol, 0.34 nm), smoothed to 0.85 nm."""
    from cgforge.potentials import TabulatedPotential

    grid = np.arange(0.2, LJ_REFERENCE["cutoff_nm"] + 1e-9, 0.002)
    return TabulatedPotential.lj(0.996, 0.34, grid).smooth_cutoff(0.1)


def lj_reference(root, production_ps: float = 20.0):
    """A reference directory (summary.json, rdf.csv) of the LJ liquid run with its own table
    (NPT at 285 bar, then NVT), and the table's CSV; returns (reference dir, table path)."""
    from cgforge.potentials import write_csv
    from cgforge.units import AMU_NM3_TO_G_CM3
    from cgforge.workflows.aa import default_protocol
    from cgforge.workflows.cg import run_cg

    write_csv(root / "lj.csv", lj_table())
    protocol = default_protocol(
        10.0,
        production_ps,
        temperature_K=LJ_REFERENCE["temperature_K"],
        pressure_bar=285.0,
        timestep_fs=10.0,
        seed=1,
        save_particles=False,
    )
    run_cg(
        root / "lj.csv",
        mass_amu=LJ_REFERENCE["mass_amu"],
        n_beads=LJ_REFERENCE["n_beads"],
        protocol=protocol,
        out=root / "ref",
        density_g_cm3=12.7 * LJ_REFERENCE["mass_amu"] * AMU_NM3_TO_G_CM3,
    )
    return root / "ref", root / "lj.csv"
