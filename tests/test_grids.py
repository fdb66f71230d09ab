"""Fixed learning grids: defaults, metadata round trip, RDF and potential resampling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cgforge.errors import InputError
from cgforge.grids import (
    LearningGrids,
    resample_potential,
    resample_rdf,
    uniform_grid,
)
from cgforge.observables.rdf import RDFResult
from cgforge.potentials.table import TabulatedPotential

SIGMA, EPS = 0.5, 2.0


def _lj(r):
    return 4 * EPS * ((SIGMA / r) ** 12 - (SIGMA / r) ** 6)


def test_default_grids():
    grids = LearningGrids()
    assert grids.n_rdf == 150 and grids.n_potential == 241
    assert grids.rdf_r_nm[0] == pytest.approx(0.005) and grids.rdf_r_nm[-1] == pytest.approx(1.495)
    np.testing.assert_allclose(np.diff(grids.rdf_r_nm), 0.01)
    assert grids.potential_r_nm[0] == pytest.approx(0.2)
    assert grids.potential_r_nm[-1] == pytest.approx(1.4)
    np.testing.assert_allclose(np.diff(grids.potential_r_nm), 0.005)
    assert not grids.rdf_r_nm.flags.writeable


def test_round_trip_through_json():
    grids = LearningGrids(uniform_grid(0.01, 1.2, 0.01), uniform_grid(0.25, 1.0, 0.01))
    data = json.loads(json.dumps(grids.to_dict()))
    assert set(data) == {"rdf_r_nm", "potential_r_nm"}
    back = LearningGrids.from_dict(data)
    assert back == grids
    assert back != LearningGrids()
    np.testing.assert_array_equal(back.potential_r_nm, grids.potential_r_nm)


@pytest.mark.parametrize(
    "data",
    [
        {"rdf_r_nm": [0.1, 0.2]},
        {"rdf_r_nm": [0.2, 0.1], "potential_r_nm": [0.1, 0.2]},
        {"rdf_r_nm": [0.1, float("nan")], "potential_r_nm": [0.1, 0.2]},
        {"rdf_r_nm": [0.1], "potential_r_nm": [0.1, 0.2]},
    ],
)
def test_bad_grids(data):
    with pytest.raises(InputError):
        LearningGrids.from_dict(data)


def test_uniform_grid_refuses_partial_steps():
    with pytest.raises(InputError, match="whole number"):
        uniform_grid(0.0, 1.0, 0.3)


def test_resample_known_rdf():
    # data on a coarser grid (0.02 nm bins from 0.2 to 1.0 nm), g linear in r so interpolation
    # is exact inside the data
    r = np.arange(0.21, 1.0, 0.02)
    g = 0.5 + 0.8 * (r - 0.21)
    rdf = RDFResult(
        r_nm=r, g=g, g_err=np.zeros_like(r), n_frames=1, r_max_nm=1.0, bin_width_nm=0.02
    )
    grids = LearningGrids()
    out = resample_rdf(rdf, grids)
    x = grids.rdf_r_nm
    assert out.g.dtype == np.float64 and out.g.shape == (150,)
    inside = (x >= r[0]) & (x <= r[-1])
    np.testing.assert_allclose(out.g[inside], 0.5 + 0.8 * (x[inside] - 0.21), atol=1e-12)
    assert np.all(out.g[x < r[0]] == 0.0)
    assert np.all(out.g[x > r[-1]] == 1.0)
    np.testing.assert_array_equal(out.beyond_data, x > r[-1] + 1e-9)
    assert out.extended
    # data covering the grid are not flagged; a plain (r, g) pair works as well
    full = resample_rdf((x, np.sin(x) + 1.0), grids)
    np.testing.assert_allclose(full.g, np.sin(x) + 1.0)
    assert not full.extended


def test_resample_rdf_bad_input():
    with pytest.raises(InputError, match="equal length"):
        resample_rdf((np.arange(3.0), np.ones(4)))
    with pytest.raises(InputError, match="increase"):
        resample_rdf((np.array([0.3, 0.2]), np.ones(2)))


def test_resample_lj_table():
    r = np.linspace(0.45, 1.2, 301)
    table = TabulatedPotential(r, _lj(r), cutoff_nm=1.0)
    grids = LearningGrids()
    u = resample_potential(table, grids)
    x = grids.potential_r_nm
    assert u.dtype == np.float64 and u.shape == (241,)
    data = (x >= 0.45) & (x <= 1.0)
    np.testing.assert_allclose(u[data], _lj(x[data]), atol=2e-4 * EPS)
    assert np.all(u[x > 1.0 + 1e-9] == 0.0)
    wall = x < 0.45
    assert wall.sum() == 50
    # the wall continues the table: above U(0.45), rising monotonically towards small r
    assert np.all(u[wall] > _lj(0.45)) and np.all(np.diff(u[wall]) < 0)
    assert np.all(np.isfinite(u))


def test_resample_potential_without_repulsive_start():
    r = np.linspace(0.6, 1.2, 61)  # starts in the attractive tail: no wall can join
    table = TabulatedPotential(r, _lj(r))
    with pytest.raises(InputError, match="repulsive wall"):
        resample_potential(table)
