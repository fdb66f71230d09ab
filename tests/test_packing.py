import numpy as np
import pytest

from cgforge.errors import InputError
from cgforge.molecules import load_molecule
from cgforge.packing import box_edge_nm, min_intermolecular_distance, pack_liquid
from cgforge.units import AMU_NM3_TO_G_CM3


@pytest.fixture(scope="module")
def mp3():
    return load_molecule("3-methylpentane")


def test_box_holds_the_requested_density(mp3):
    edge = box_edge_nm(mp3, 100, 0.66)
    assert 100 * mp3.mass_amu * AMU_NM3_TO_G_CM3 / edge**3 == pytest.approx(0.66, rel=1e-12)


def test_packing_is_periodic_overlap_free_and_reproducible(mp3):
    a = pack_liquid(mp3, 40, 0.6, seed=7)
    b = pack_liquid(mp3, 40, 0.6, seed=7)
    c = pack_liquid(mp3, 40, 0.6, seed=8)
    np.testing.assert_array_equal(a.positions_nm, b.positions_nm)
    assert not np.allclose(a.positions_nm, c.positions_nm)
    assert a.positions_nm.shape == (40 * mp3.n_atoms, 3)
    # molecules are whole (no bond spans the box) with their centres inside the box
    xyz = a.positions_nm.reshape(40, mp3.n_atoms, 3)
    centres = xyz.mean(axis=1)
    assert np.all((centres >= 0) & (centres < a.box_nm))
    bonds = np.array(mp3.bonds)
    lengths = np.linalg.norm(xyz[:, bonds[:, 0]] - xyz[:, bonds[:, 1]], axis=-1)
    assert lengths.max() < 0.2
    assert min_intermolecular_distance(a.positions_nm, 40, mp3.n_atoms, a.box_nm) > 0.1
    # molecules keep their geometry: intramolecular distances equal the conformer's (up to wrapping)
    delta = xyz[0] - xyz[0, 0]
    ref = mp3.positions_nm - mp3.positions_nm[0]
    np.testing.assert_allclose(
        np.linalg.norm(delta, axis=1), np.linalg.norm(ref, axis=1), atol=1e-3
    )


def test_min_distance_sees_periodic_images():
    pos = np.array([[0.05, 0.5, 0.5], [1.95, 0.5, 0.5]])
    assert min_intermolecular_distance(pos, 2, 1, 2.0) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("n", "density", "fragment"),
    [
        (1, 0.6, "at least 2"),
        (10, 0.0, "outside"),
        (10, 3.0, "outside"),
    ],
)
def test_impossible_requests_are_refused(mp3, n, density, fragment):
    with pytest.raises(InputError, match=fragment):
        pack_liquid(mp3, n, density)
