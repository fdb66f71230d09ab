"""Liquid packing: N copies of a molecule packed without overlaps into a periodic cubic box.

Packing is done by Packmol (installed from PyPI with cgforge) with periodic boundary conditions,
seeded so that the same inputs always give the same box. The packed configuration is checked
independently: no two atoms of different molecules closer than the requested tolerance, taking
periodic images into account.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from cgforge.errors import InputError
from cgforge.molecules.topology import MoleculeTopology
from cgforge.units import AMU_NM3_TO_G_CM3, ANGSTROM_TO_NM

#: Densities above this (g/cm³) are refused for hydrocarbon packing: no organic liquid of the
#: covered families is that dense, and Packmol cannot place molecules there.
MAX_PACKING_DENSITY_G_CM3 = 1.5


@dataclass(frozen=True)
class PackedLiquid:
    """A packed box: atom positions (n_molecules × atoms_per_molecule, 3) in nm, each molecule whole
    with its centre inside the box; cubic box edge in nm."""

    positions_nm: np.ndarray
    box_nm: float
    n_molecules: int
    density_g_cm3: float
    seed: int


def box_edge_nm(molecule: MoleculeTopology, n_molecules: int, density_g_cm3: float) -> float:
    """Edge of the cubic box that holds ``n_molecules`` at ``density_g_cm3``."""
    volume_nm3 = n_molecules * molecule.mass_amu * AMU_NM3_TO_G_CM3 / density_g_cm3
    return float(volume_nm3 ** (1.0 / 3.0))


def packmol_executable() -> str:
    exe = shutil.which("packmol")
    if exe is None:
        try:
            import packmol

            candidate = Path(packmol.__file__).parent / "binaries" / "packmol"
            if candidate.exists():
                return str(candidate)
        except ImportError:
            pass
        raise InputError("packmol is not installed; install it with 'pip install packmol'")
    return exe


def _write_xyz(path: Path, molecule: MoleculeTopology) -> None:
    coords_A = molecule.positions_nm / ANGSTROM_TO_NM
    lines = [str(molecule.n_atoms), molecule.name]
    for atom, (x, y, z) in zip(molecule.atoms, coords_A, strict=True):
        lines.append(f"{atom.element} {x:.6f} {y:.6f} {z:.6f}")
    path.write_text("\n".join(lines) + "\n")


def _read_xyz(path: Path, n_atoms: int) -> np.ndarray:
    lines = path.read_text().splitlines()
    rows = [line.split()[1:4] for line in lines[2 : 2 + n_atoms]]
    return np.array(rows, dtype=float) * ANGSTROM_TO_NM


def pack_liquid(
    molecule: MoleculeTopology,
    n_molecules: int,
    density_g_cm3: float,
    *,
    seed: int = 0,
    tolerance_nm: float = 0.2,
    timeout_s: float = 600.0,
) -> PackedLiquid:
    """Pack ``n_molecules`` copies of ``molecule`` into a periodic cube at ``density_g_cm3``.

    Raises :class:`InputError` if the request is impossible (bad numbers, density too high for
    Packmol to find a configuration without overlaps).
    """
    if n_molecules < 2:
        raise InputError(f"a liquid needs at least 2 molecules, got {n_molecules}")
    if not (0.0 < density_g_cm3 <= MAX_PACKING_DENSITY_G_CM3):
        raise InputError(
            f"packing density {density_g_cm3} g/cm3 is outside (0, {MAX_PACKING_DENSITY_G_CM3}]; "
            "give a liquid-like density such as 0.6-0.9 g/cm3"
        )
    edge_nm = box_edge_nm(molecule, n_molecules, density_g_cm3)
    extent = np.ptp(molecule.positions_nm, axis=0).max()
    if extent + tolerance_nm > edge_nm:
        raise InputError(
            f"a {edge_nm:.2f} nm box for {n_molecules} molecules is smaller than one molecule "
            f"({extent:.2f} nm); use more molecules"
        )
    edge_A = edge_nm / ANGSTROM_TO_NM
    tol_A = tolerance_nm / ANGSTROM_TO_NM
    with tempfile.TemporaryDirectory(prefix="cgforge-pack-") as tmpdir:
        tmp = Path(tmpdir)
        _write_xyz(tmp / "molecule.xyz", molecule)
        script = "\n".join(
            [
                f"tolerance {tol_A:.4f}",
                "filetype xyz",
                "output packed.xyz",
                f"seed {int(seed) + 1}",  # packmol treats seed -1 as time-based; keep it positive
                f"pbc 0. 0. 0. {edge_A:.6f} {edge_A:.6f} {edge_A:.6f}",
                "nloop 400",
                "structure molecule.xyz",
                f"  number {n_molecules}",
                f"  inside box 0. 0. 0. {edge_A:.6f} {edge_A:.6f} {edge_A:.6f}",
                "end structure",
                "",
            ]
        )
        (tmp / "pack.inp").write_text(script)
        try:
            with open(tmp / "pack.inp") as stdin:
                proc = subprocess.run(
                    [packmol_executable()],
                    stdin=stdin,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    timeout=timeout_s,
                )
        except subprocess.TimeoutExpired as exc:
            raise InputError(
                f"packmol did not pack {n_molecules} molecules at {density_g_cm3} g/cm3 within "
                f"{timeout_s:.0f} s; use a lower packing density"
            ) from exc
        output = tmp / "packed.xyz"
        if not output.exists():
            reason = _packmol_reason(proc.stdout + proc.stderr)
            raise InputError(
                f"packmol could not pack {n_molecules} molecules at {density_g_cm3} g/cm3 "
                f"({reason}); use a lower packing density"
            )
        positions = _read_xyz(output, n_molecules * molecule.n_atoms)
    if positions.shape != (n_molecules * molecule.n_atoms, 3):
        raise InputError("packmol wrote an incomplete configuration; use a lower packing density")
    positions = _wrap_whole_molecules(positions, n_molecules, molecule.n_atoms, edge_nm)
    # Packmol's "solution not found" still writes its best try; accept it only without overlaps.
    min_sep = min_intermolecular_distance(positions, n_molecules, molecule.n_atoms, edge_nm)
    if min_sep < 0.5 * tolerance_nm:
        raise InputError(
            f"cannot pack {n_molecules} molecules at {density_g_cm3} g/cm3 without overlaps "
            f"(closest atoms {min_sep:.3f} nm apart); use a lower packing density"
        )
    return PackedLiquid(positions, edge_nm, n_molecules, density_g_cm3, seed)


def _wrap_whole_molecules(
    positions_nm: np.ndarray, n_molecules: int, atoms_per_molecule: int, edge_nm: float
) -> np.ndarray:
    """Put each molecule's centre in the box, keeping the molecule whole (bonds never span the box)."""
    xyz = positions_nm.reshape(n_molecules, atoms_per_molecule, 3)
    # make whole relative to the first atom (molecules are far smaller than half the box)
    delta = xyz - xyz[:, :1]
    xyz = xyz[:, :1] + delta - edge_nm * np.round(delta / edge_nm)
    centre = xyz.mean(axis=1, keepdims=True)
    xyz = xyz - edge_nm * np.floor(centre / edge_nm)
    return xyz.reshape(-1, 3)


def min_intermolecular_distance(
    positions_nm: np.ndarray, n_molecules: int, atoms_per_molecule: int, edge_nm: float
) -> float:
    """Smallest distance between atoms of different molecules in a periodic cube."""
    tree = cKDTree(np.mod(positions_nm, edge_nm), boxsize=edge_nm)
    molecule = np.repeat(np.arange(n_molecules), atoms_per_molecule)
    radius = 0.5
    pairs = tree.query_pairs(radius, output_type="ndarray")
    inter = pairs[molecule[pairs[:, 0]] != molecule[pairs[:, 1]]]
    if len(inter) == 0:
        return radius
    delta = positions_nm[inter[:, 0]] - positions_nm[inter[:, 1]]
    delta -= edge_nm * np.round(delta / edge_nm)
    return float(np.sqrt((delta**2).sum(axis=1)).min())


def _packmol_reason(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if "ERROR" in stripped.upper():
            return stripped
    return "no solution found"
