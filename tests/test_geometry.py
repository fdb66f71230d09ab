"""The one periodic pair search: pairs and nearest neighbours agree with brute force."""

from __future__ import annotations

import numpy as np
import pytest

from cgforge.errors import InputError
from cgforge.geometry import minimum_image_pairs, nearest_distances, wrap_positions


def _brute(pos, box):
    d = pos[:, None, :] - pos[None, :, :]
    d -= box * np.round(d / box)
    return np.sqrt((d**2).sum(axis=-1))


def test_pairs_and_nearest_match_brute_force():
    rng = np.random.default_rng(7)
    box = np.array([2.0, 2.5, 3.0])
    pos = rng.uniform(-4.0, 4.0, (60, 3))  # any image
    full = _brute(pos, box)
    i, j, d, r = minimum_image_pairs(pos, box, 0.9)
    assert np.all(i < j)
    iu, ju = np.triu_indices(len(pos), k=1)
    close = full[iu, ju] < 0.9
    assert len(r) == int(close.sum())
    np.testing.assert_allclose(r, full[i, j], rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), r, rtol=1e-12)
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(nearest_distances(pos, box), full.min(axis=1), rtol=1e-12)


def test_wrap_puts_positions_in_the_box():
    box = np.array([1.0, 2.0, 3.0])
    wrapped = wrap_positions(np.array([[-1e-17, 2.0, 7.5]]), box)
    assert np.all(wrapped >= 0) and np.all(wrapped < box)


def test_cutoff_over_half_the_box_names_it_and_the_fix():
    with pytest.raises(InputError, match=r"r_max 0.6 nm exceeds half .* use a shorter r_max"):
        minimum_image_pairs(np.zeros((2, 3)), np.ones(3), 0.6, name="r_max")
    with pytest.raises(InputError, match="box must be three positive edge lengths"):
        nearest_distances(np.zeros((2, 3)), np.array([1.0, 0.0, 1.0]))
