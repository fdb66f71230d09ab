"""OpenMM systems of one-bead coarse-grained liquids with a tabulated pair potential.

Every bead is one particle of mass ``mass_amu``; all bead pairs interact through one tabulated
potential U(r) (a :class:`~cgforge.potentials.TabulatedPotential`), put into OpenMM as a
``CustomNonbondedForce`` whose energy is a ``Continuous1DFunction`` of r from 0 to the table's
cutoff (OpenMM interpolates it with a natural cubic spline). The force is evaluated with periodic
boundaries and a plain cutoff at the table's cutoff (``CutoffPeriodic``), without switching
function and without a long-range correction: apply
:meth:`~cgforge.potentials.TabulatedPotential.smooth_cutoff` to the table first so that U and F
reach zero at the cutoff. The energy is shifted so that U(cutoff) = 0.

Units: nm, kJ/mol, amu.
"""

from __future__ import annotations

import math

import numpy as np
import openmm
import openmm.app as app
from numpy.typing import ArrayLike, NDArray

from cgforge.errors import InputError
from cgforge.geometry import box_edges
from cgforge.potentials.table import TabulatedPotential
from cgforge.units import KB_KJ_MOL_K

#: Residue and atom name of a bead in the OpenMM topology.
BEAD_NAME = "CG"
#: Default jitter of :func:`lattice_positions`, as a fraction of the lattice spacing.
DEFAULT_JITTER_FRACTION = 0.1


def _check_beads(n_beads: int) -> int:
    if isinstance(n_beads, bool) or int(n_beads) != n_beads or int(n_beads) < 2:
        raise InputError(f"the number of beads must be an integer >= 2, got {n_beads!r}")
    return int(n_beads)


def check_cutoff(cutoff_nm: float, box_nm: float | ArrayLike) -> None:
    """InputError when ``cutoff_nm`` exceeds half the smallest box edge (minimum image)."""
    box = box_edges(box_nm)
    half = 0.5 * float(box.min())
    if cutoff_nm > half * (1.0 + 1.0e-12):
        raise InputError(
            f"the potential's cutoff {cutoff_nm:.4g} nm exceeds half the smallest box edge "
            f"({half:.4g} nm); use more beads (a larger box) or a shorter cutoff"
        )


#: Largest cutoff relative to the smallest box edge that default bead counts allow: NPT box
#: fluctuations keep the cutoff below half the box (as for the all-atom runs).
CUTOFF_BOX_FRACTION = 0.45


def beads_for_cutoff(
    cutoff_nm: float, number_density_nm3: float, fraction: float = CUTOFF_BOX_FRACTION
) -> int:
    """Fewest beads of a cubic box at ``number_density_nm3`` (beads/nm³) whose edge is at least
    ``cutoff_nm / fraction`` (nm), so that the cutoff stays below half the box under NPT."""
    if not (math.isfinite(cutoff_nm) and cutoff_nm > 0):
        raise InputError(f"cutoff must be a positive length (nm), got {cutoff_nm!r}")
    if not (math.isfinite(number_density_nm3) and number_density_nm3 > 0):
        raise InputError(f"number density must be positive (1/nm3), got {number_density_nm3!r}")
    if not 0.0 < fraction <= 0.5:
        raise InputError(f"fraction must lie in (0, 0.5], got {fraction!r}")
    return max(2, math.ceil(number_density_nm3 * (cutoff_nm / fraction) ** 3 - 1e-9))


#: Time steps per period of the stiffest pair vibration in :func:`timestep_limit_fs`.
STEPS_PER_PERIOD = 10
#: Energy above the potential's minimum, in kT, up to which :func:`timestep_limit_fs` looks
#: for the stiffest curvature (pairs rarely collide with more relative energy than this).
ACCESSIBLE_KT = 4.0


def timestep_limit_fs(
    potential: TabulatedPotential,
    mass_amu: float,
    temperature_K: float,
    *,
    accessible_kT: float = ACCESSIBLE_KT,
    steps_per_period: int = STEPS_PER_PERIOD,
) -> float:
    """Longest time step (fs) that resolves the stiffest pair vibration of ``potential``.

    The curvature k = U''(r) is taken at its largest where U(r) ≤ U_min + ``accessible_kT`` kT
    (the distances pairs reach at ``temperature_K``); two beads of ``mass_amu`` vibrate there with
    ω = √(k / μ), μ = m/2, and the limit is the period 2π/ω over ``steps_per_period``
    (velocity Verlet is unstable beyond period/π and drifts well before). A jagged table (a noisy
    IBI potential) has spikes in U'' and a short limit, which is how a run comes to run hot. It
    is a necessary condition, a check and not a choice: for the argon-like LJ liquid of the tests
    (40 amu, 180 K) it is 22 fs (run at 10 fs; its noisy −kT ln g at 0.006 nm bins: 14 fs); for
    one-bead 3-methylpentane (86 amu, 298 K, run at 5 fs) 60–80 fs smooth, 10 fs jagged.
    """
    mass = float(mass_amu)
    if not (math.isfinite(mass) and mass > 0.0):
        raise InputError(f"the bead mass must be positive (amu), got {mass_amu!r}")
    if not (math.isfinite(temperature_K) and temperature_K > 0.0):
        raise InputError(f"the temperature must be positive (K), got {temperature_K!r}")
    r_low = max(float(potential.r_min_nm), 1e-3 * float(potential.cutoff_nm))
    r = np.linspace(r_low, float(potential.cutoff_nm), 4000)
    u = np.asarray(potential.energy(r), dtype=float)
    accessible = np.isfinite(u) & (u <= np.nanmin(u) + accessible_kT * KB_KJ_MOL_K * temperature_K)
    curvature = -np.asarray(potential.force_derivative(r[accessible]), dtype=float)
    stiffest = float(np.max(curvature)) if curvature.size else 0.0
    if not (math.isfinite(stiffest) and stiffest > 0.0):
        return math.inf
    omega_per_ps = math.sqrt(stiffest / (0.5 * mass))  # kJ/mol = amu nm^2 ps^-2
    return 2.0 * math.pi / omega_per_ps / steps_per_period * 1e3


def create_cg_system(
    potential: TabulatedPotential,
    n_beads: int,
    box_nm: float | ArrayLike,
    mass_amu: float,
    *,
    spacing_nm: float | None = None,
) -> openmm.System:
    """An OpenMM system of ``n_beads`` identical beads interacting through ``potential``.

    Parameters
    ----------
    potential:
        Pair potential U(r) in kJ/mol (r in nm); its cutoff becomes the force's cutoff. A table
        starting above r = 0 gets the default repulsive wall below its first point (see
        :meth:`TabulatedPotential.openmm_function`).
    n_beads:
        Number of beads (>= 2).
    box_nm:
        Edge of a cubic box or three edges of an orthorhombic box, nm.
    mass_amu:
        Bead mass, amu (> 0).
    spacing_nm:
        Grid spacing of the OpenMM table, nm (default: the potential's spacing).

    The system holds a ``CustomNonbondedForce`` (``CutoffPeriodic``, no switching, no long-range
    correction) and a ``CMMotionRemover``.

    Raises
    ------
    InputError
        Mass not positive, fewer than 2 beads, a bad box, or a cutoff beyond half the box.
    """
    n = _check_beads(n_beads)
    mass = float(mass_amu)
    if not (math.isfinite(mass) and mass > 0.0):
        raise InputError(f"the bead mass must be positive (amu), got {mass_amu!r}")
    box = box_edges(box_nm)
    if not isinstance(potential, TabulatedPotential):
        raise InputError(f"expected a TabulatedPotential, got {type(potential).__name__}")
    check_cutoff(potential.cutoff_nm, box)
    table = potential.openmm_function(spacing_nm=spacing_nm)

    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(
        openmm.Vec3(box[0], 0.0, 0.0), openmm.Vec3(0.0, box[1], 0.0), openmm.Vec3(0.0, 0.0, box[2])
    )
    force = openmm.CustomNonbondedForce(table.expression)
    force.addTabulatedFunction(table.function_name, table.continuous1d())
    force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(table.max_nm)
    force.setUseSwitchingFunction(False)
    force.setUseLongRangeCorrection(False)
    for _ in range(n):
        system.addParticle(mass)
        force.addParticle([])
    system.addForce(force)
    system.addForce(openmm.CMMotionRemover())
    return system


def cg_topology(n_beads: int, box_nm: float | ArrayLike) -> app.Topology:
    """An OpenMM topology of ``n_beads`` one-bead residues named ``CG`` with the periodic box."""
    n = _check_beads(n_beads)
    box = box_edges(box_nm)
    topology = app.Topology()
    chain = topology.addChain()
    for i in range(n):
        residue = topology.addResidue(BEAD_NAME, chain, id=str(i + 1))
        topology.addAtom(BEAD_NAME, None, residue)
    topology.setPeriodicBoxVectors(
        [openmm.Vec3(box[0], 0, 0), openmm.Vec3(0, box[1], 0), openmm.Vec3(0, 0, box[2])]
    )
    return topology


def lattice_positions(
    n_beads: int,
    box_nm: float | ArrayLike,
    seed: int = 0,
    *,
    jitter_fraction: float = DEFAULT_JITTER_FRACTION,
) -> NDArray[np.float64]:
    """Start positions (n_beads, 3) in nm on a jittered simple-cubic lattice filling the box.

    The lattice has ``ceil`` of the cube root of ``n_beads`` (scaled by the box's aspect ratio)
    sites per edge; ``n_beads`` sites are chosen at random (so a partly filled lattice has no
    empty slab) and each is displaced uniformly by up to ``jitter_fraction`` of the local
    lattice spacing along each axis. Positions are wrapped into ``[0, L)``.
    """
    n = _check_beads(n_beads)
    box = box_edges(box_nm)
    jitter = float(jitter_fraction)
    if not (math.isfinite(jitter) and 0.0 <= jitter < 0.5):
        raise InputError(f"jitter_fraction must lie in [0, 0.5), got {jitter_fraction!r}")
    per_length = (n / float(np.prod(box))) ** (1.0 / 3.0)  # sites per nm for a cubic lattice
    counts = np.maximum(1, np.ceil(box * per_length - 1.0e-9).astype(int))
    while int(np.prod(counts)) < n:  # rounding in a skewed box: add a plane along the sparsest axis
        counts[int(np.argmin(counts / box))] += 1
    spacing = box / counts
    axes = [(np.arange(c) + 0.5) * s for c, s in zip(counts, spacing, strict=True)]
    sites = np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(sites.shape[0], size=n, replace=False))
    positions = sites[chosen] + rng.uniform(-jitter, jitter, size=(n, 3)) * spacing
    return positions - box * np.floor(positions / box)
