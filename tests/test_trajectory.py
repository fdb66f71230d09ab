"""CG trajectories: validation, files, and reading AA trajectories through MDAnalysis (units!)."""

from __future__ import annotations

import warnings

import MDAnalysis as mda
import numpy as np
import pytest

from cgforge import units
from cgforge.errors import InputError
from cgforge.trajectory import CGTrajectory, read_trajectory

MASSES = np.array([15.999, 1.008, 1.008])  # O, H, H as MDAnalysis tabulates them
N_MOL, N_FRAMES, BOX_NM, DT_PS = 8, 6, 2.0, 2.0


def _truth(seed: int = 0):
    """Water-like molecules whose COMs random-walk through a periodic box.

    Returns wrapped atom positions (F, A, 3) in nm, true COMs (F, M, 3) in nm and atomic
    forces (F, A, 3) in kJ/mol/nm.
    """
    rng = np.random.default_rng(seed)
    com = rng.uniform(0, BOX_NM, size=(1, N_MOL, 3)) + np.concatenate(
        [np.zeros((1, N_MOL, 3)), rng.normal(scale=0.25, size=(N_FRAMES - 1, N_MOL, 3))]
    ).cumsum(axis=0)
    shape = np.array([[0.0, 0.0, 0.0], [0.0957, 0.0, 0.0], [-0.024, 0.0927, 0.0]])
    atoms = np.empty((N_FRAMES, N_MOL, 3, 3))
    for f in range(N_FRAMES):
        for m in range(N_MOL):
            q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            body = shape @ q.T
            body -= (MASSES[:, None] * body).sum(0) / MASSES.sum()
            atoms[f, m] = com[f, m] + body
    wrapped = (atoms % BOX_NM).reshape(N_FRAMES, N_MOL * 3, 3)
    forces = rng.normal(scale=100.0, size=wrapped.shape)
    return wrapped, com, forces


def _universe(wrapped_nm: np.ndarray, forces: bool = False) -> mda.Universe:
    n_atoms = N_MOL * 3
    u = mda.Universe.empty(
        n_atoms,
        n_residues=N_MOL,
        atom_resindex=np.repeat(np.arange(N_MOL), 3),
        trajectory=True,
        forces=forces,
    )
    u.add_TopologyAttr("name", ["OW", "HW1", "HW2"] * N_MOL)
    u.add_TopologyAttr("type", ["O", "H", "H"] * N_MOL)
    u.add_TopologyAttr("element", ["O", "H", "H"] * N_MOL)
    u.add_TopologyAttr("resname", ["SOL"] * N_MOL)
    u.add_TopologyAttr("resid", np.arange(1, N_MOL + 1))
    u.dimensions = [BOX_NM * 10] * 3 + [90.0] * 3
    u.atoms.positions = wrapped_nm[0] * 10.0  # MDAnalysis works in Å
    return u


def _write(u: mda.Universe, path, wrapped_nm, forces_nm=None, **kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(str(path), u.atoms.n_atoms, **kwargs) as w:
            for f in range(N_FRAMES):
                u.trajectory.ts.time = f * DT_PS
                u.atoms.positions = wrapped_nm[f] * 10.0
                if forces_nm is not None:
                    u.atoms.forces = forces_nm[f] * units.ANGSTROM_TO_NM  # kJ/mol/Å
                w.write(u.atoms)
        u.atoms.positions = wrapped_nm[0] * 10.0


def _check_com(traj: CGTrajectory, com_true: np.ndarray, atol: float):
    assert traj.n_frames == N_FRAMES and traj.n_beads == N_MOL
    np.testing.assert_allclose(traj.box_nm, BOX_NM, rtol=1e-6)
    np.testing.assert_allclose(traj.masses_amu, MASSES.sum(), rtol=1e-6)
    # displacements exact (unwrapped), absolute positions up to whole box vectors
    np.testing.assert_allclose(
        traj.positions_nm - traj.positions_nm[0], com_true - com_true[0], atol=atol
    )
    shift = (traj.positions_nm[0] - com_true[0]) / BOX_NM
    np.testing.assert_allclose(shift, np.round(shift), atol=atol)


@pytest.fixture(scope="module")
def system():
    return _truth()


def test_truth_crosses_boundaries(system):
    wrapped, com, _ = system
    per_mol = wrapped.reshape(N_FRAMES, N_MOL, 3, 3)
    assert np.ptp(per_mol, axis=2).max() > 1.0  # some molecules are split as stored
    assert np.abs(com - com[0]).max() > 0.5 * BOX_NM  # and COMs travel far


def test_gro_xtc(system, tmp_path):
    wrapped, com, _ = system
    u = _universe(wrapped)
    u.atoms.write(str(tmp_path / "sys.gro"))
    _write(u, tmp_path / "sys.xtc", wrapped)
    traj = read_trajectory(tmp_path / "sys.gro", tmp_path / "sys.xtc")
    _check_com(traj, com, atol=2e-3)  # xtc stores 0.001 nm
    np.testing.assert_allclose(traj.times_ps, np.arange(N_FRAMES) * DT_PS)
    assert traj.forces_kj_mol_nm is None
    sub = read_trajectory(tmp_path / "sys.gro", tmp_path / "sys.xtc", start=1, step=2)
    np.testing.assert_allclose(sub.times_ps, [2.0, 6.0, 10.0])
    two = read_trajectory(tmp_path / "sys.gro", [tmp_path / "sys.xtc"] * 1, select="resid 1:4")
    assert two.n_beads == 4


def test_gro_trr_forces(system, tmp_path):
    wrapped, com, forces = system
    u = _universe(wrapped, forces=True)
    u.atoms.write(str(tmp_path / "sys.gro"))
    _write(u, tmp_path / "sys.trr", wrapped, forces_nm=forces)
    # the file itself holds kJ/mol/nm (GROMACS units)
    from MDAnalysis.lib.formats.libmdaxdr import TRRFile

    with TRRFile(str(tmp_path / "sys.trr")) as fh:
        np.testing.assert_allclose(fh.read().f, forces[0], rtol=1e-5, atol=1e-3)
    traj = read_trajectory(tmp_path / "sys.gro", tmp_path / "sys.trr")
    _check_com(traj, com, atol=1e-4)
    expect = forces.reshape(N_FRAMES, N_MOL, 3, 3).sum(axis=2)
    np.testing.assert_allclose(traj.forces_kj_mol_nm, expect, rtol=1e-5, atol=1e-3)
    no_forces = read_trajectory(tmp_path / "sys.gro", tmp_path / "sys.trr", forces=False)
    assert no_forces.forces_kj_mol_nm is None


def test_pdb_dcd(system, tmp_path):
    wrapped, com, _ = system
    u = _universe(wrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(str(tmp_path / "sys.pdb"))
    _write(u, tmp_path / "sys.dcd", wrapped, dt=DT_PS)
    traj = read_trajectory(tmp_path / "sys.pdb", tmp_path / "sys.dcd")
    _check_com(traj, com, atol=1e-4)
    np.testing.assert_allclose(traj.times_ps, np.arange(N_FRAMES) * DT_PS, rtol=1e-4)
    with pytest.raises(InputError, match="forces=True"):
        read_trajectory(tmp_path / "sys.pdb", tmp_path / "sys.dcd", forces=True)


def _write_lammps(tmp_path, wrapped, forces_kj_mol_nm, xlo_A: float):
    """LAMMPS 'units real' files written by hand: Å, kcal/mol/Å, step numbers."""
    n_atoms = N_MOL * 3
    edge_A = BOX_NM * 10.0
    lines = [
        "cgforge test system",
        "",
        f"{n_atoms} atoms",
        f"{2 * N_MOL} bonds",
        "2 atom types",
        "1 bond types",
        "",
        f"{xlo_A} {xlo_A + edge_A} xlo xhi",
        f"{xlo_A} {xlo_A + edge_A} ylo yhi",
        f"{xlo_A} {xlo_A + edge_A} zlo zhi",
        "",
        "Masses",
        "",
        "1 15.999",
        "2 1.008",
        "",
        "Atoms # full",
        "",
    ]
    for i in range(n_atoms):
        x, y, z = wrapped[0, i] * 10.0 + xlo_A
        lines.append(f"{i + 1} {i // 3 + 1} {1 if i % 3 == 0 else 2} 0.0 {x:.6f} {y:.6f} {z:.6f}")
    lines += ["", "Bonds", ""]
    for m in range(N_MOL):
        lines.append(f"{2 * m + 1} 1 {3 * m + 1} {3 * m + 2}")
        lines.append(f"{2 * m + 2} 1 {3 * m + 1} {3 * m + 3}")
    (tmp_path / "sys.data").write_text("\n".join(lines) + "\n")
    dump = []
    f_kcal_A = forces_kj_mol_nm / units.KCAL_TO_KJ * units.ANGSTROM_TO_NM
    for f in range(N_FRAMES):
        dump += [
            "ITEM: TIMESTEP",
            str(f * 1000),
            "ITEM: NUMBER OF ATOMS",
            str(n_atoms),
            "ITEM: BOX BOUNDS pp pp pp",
        ] + [f"{xlo_A} {xlo_A + edge_A}"] * 3
        dump.append("ITEM: ATOMS id type x y z fx fy fz")
        for i in reversed(range(n_atoms)):  # LAMMPS does not sort; the reader must
            x, y, z = wrapped[f, i] * 10.0 + xlo_A
            fx, fy, fz = f_kcal_A[f, i]
            dump.append(
                f"{i + 1} {1 if i % 3 == 0 else 2} {x:.6f} {y:.6f} {z:.6f} "
                f"{fx:.8g} {fy:.8g} {fz:.8g}"
            )
    (tmp_path / "sys.lammpstrj").write_text("\n".join(dump) + "\n")


def test_lammps_data_and_dump_real_units(system, tmp_path):
    wrapped, com, forces = system
    _write_lammps(tmp_path, wrapped, forces, xlo_A=-10.0)
    traj = read_trajectory(tmp_path / "sys.data", tmp_path / "sys.lammpstrj", lammps_timestep="2fs")
    # the dump holds wrapped + xlo; the reader re-bases to a box origin at 0
    _check_com(traj, com, atol=1e-5)
    np.testing.assert_allclose(traj.times_ps, np.arange(N_FRAMES) * 1000 * 0.002)
    expect = forces.reshape(N_FRAMES, N_MOL, 3, 3).sum(axis=2)
    np.testing.assert_allclose(traj.forces_kj_mol_nm, expect, rtol=1e-6, atol=1e-4)
    with pytest.raises(InputError, match="lammps_timestep"):
        read_trajectory(tmp_path / "sys.data", tmp_path / "sys.lammpstrj")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_reader_errors(system, tmp_path):
    wrapped, _, _ = system
    u = _universe(wrapped)
    u.atoms.write(str(tmp_path / "sys.gro"))
    _write(u, tmp_path / "sys.xtc", wrapped)
    with pytest.raises(InputError, match="not found"):
        read_trajectory(tmp_path / "sys.gro", tmp_path / "missing.xtc")
    with pytest.raises(InputError, match="not found"):
        read_trajectory(tmp_path / "missing.gro")
    # topology with fewer atoms than the trajectory
    u.atoms[:-3].write(str(tmp_path / "small.gro"))
    with pytest.raises(InputError, match=r"small\.gro") as err:
        read_trajectory(tmp_path / "small.gro", tmp_path / "sys.xtc")
    assert "\n" not in str(err.value)
    (tmp_path / "junk.xtc").write_text("this is not a trajectory\n")
    with pytest.raises(InputError, match=r"junk\.xtc"):
        read_trajectory(tmp_path / "sys.gro", tmp_path / "junk.xtc")
    with pytest.raises(InputError, match="cuts through molecules"):
        read_trajectory(tmp_path / "sys.gro", select="name OW and resid 1")


def test_triclinic_and_unknown_masses_rejected(system, tmp_path):
    wrapped, _, _ = system
    u = _universe(wrapped)
    u.dimensions = [20.0, 20.0, 20.0, 60.0, 90.0, 90.0]
    u.atoms.write(str(tmp_path / "tri.gro"))
    with pytest.raises(InputError, match="triclinic"):
        read_trajectory(tmp_path / "tri.gro")
    u = _universe(wrapped)
    u.atoms.names = ["QX"] * (N_MOL * 3)
    u.atoms.write(str(tmp_path / "odd.gro"))
    with pytest.raises(InputError, match="no mass"):
        read_trajectory(tmp_path / "odd.gro")


# ------------------------------------------------------------------------ CGTrajectory


def _cg(n_frames=4, n_beads=5, forces=True, seed=0) -> CGTrajectory:
    rng = np.random.default_rng(seed)
    return CGTrajectory(
        positions_nm=rng.normal(scale=3.0, size=(n_frames, n_beads, 3)),
        box_nm=np.tile([2.0, 2.5, 3.0], (n_frames, 1)),
        times_ps=np.arange(n_frames) * 0.5,
        masses_amu=np.full(n_beads, 18.015),
        forces_kj_mol_nm=rng.normal(size=(n_frames, n_beads, 3)) if forces else None,
    )


def test_cg_trajectory_properties_and_slicing():
    traj = _cg()
    assert (traj.n_frames, traj.n_beads, len(traj)) == (4, 5, 4)
    np.testing.assert_allclose(traj.volume_nm3, 15.0)
    np.testing.assert_allclose(traj.density_g_cm3, 5 * 18.015 / 15.0 * units.AMU_NM3_TO_G_CM3)
    w = traj.wrapped()
    assert np.all(w >= 0) and np.all(w < traj.box_nm[:, None, :])
    frac = (traj.positions_nm - w) / traj.box_nm[:, None, :]
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-12)
    assert traj[1:3].n_frames == 2 and traj[::2].times_ps.tolist() == [0.0, 1.0]
    one = traj[-1]
    assert one.n_frames == 1 and one.times_ps[0] == 1.5
    np.testing.assert_array_equal(one.forces_kj_mol_nm[0], traj.forces_kj_mol_nm[-1])
    with pytest.raises(ValueError):
        traj.positions_nm[0, 0, 0] = 1.0  # frozen arrays


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("times_ps", np.array([0.0, 1.0, 1.0, 2.0]), "increase"),
        ("box_nm", np.tile([2.0, -1.0, 3.0], (4, 1)), "positive"),
        ("masses_amu", np.ones(4), "shape"),
        ("positions_nm", np.full((4, 5, 3), np.nan), "NaN"),
        ("forces_kj_mol_nm", np.ones((4, 5, 2)), "shape"),
    ],
)
def test_cg_trajectory_validation(field, value, match):
    base = _cg()
    kwargs = {
        k: getattr(base, k)
        for k in ("positions_nm", "box_nm", "times_ps", "masses_amu", "forces_kj_mol_nm")
    }
    kwargs[field] = value
    with pytest.raises(InputError, match=match):
        CGTrajectory(**kwargs)


@pytest.mark.parametrize("forces", [True, False])
def test_save_load_round_trip(tmp_path, forces):
    traj = _cg(forces=forces)
    path = traj.save(tmp_path / "cg")
    assert path.name == "cg.npz"
    with np.load(path) as data:
        names = set(data.files)
    assert {"positions_nm", "box_nm", "times_ps", "masses_amu", "format_version"} <= names
    back = CGTrajectory.load(path)
    np.testing.assert_array_equal(back.positions_nm, traj.positions_nm)
    np.testing.assert_array_equal(back.box_nm, traj.box_nm)
    assert (back.forces_kj_mol_nm is None) == (not forces)
    with pytest.raises(InputError, match="not found"):
        CGTrajectory.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match="not a cgforge"):
        CGTrajectory.load(tmp_path / "other.npz")
