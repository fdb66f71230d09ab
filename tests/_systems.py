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
