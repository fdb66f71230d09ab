"""The AA → one-bead map: molecule index, whole-making, centres of mass, forces, unwrapping."""

from __future__ import annotations

import numpy as np
import pytest

from cgforge import mapping
from cgforge.errors import InputError


def test_molecule_index_uniform_and_mixed():
    assert mapping.molecule_index(3, 2).tolist() == [0, 0, 1, 1, 2, 2]
    assert mapping.molecule_index(3, [1, 3, 2]).tolist() == [0, 1, 1, 1, 2, 2]
    with pytest.raises(InputError):
        mapping.molecule_index(2, [1, 2, 3])
    with pytest.raises(InputError):
        mapping.molecule_index(2, 0)


def test_index_must_be_consecutive():
    pos = np.zeros((3, 3))
    with pytest.raises(InputError, match="skips"):
        mapping.center_of_mass(pos, np.ones(3), np.array([0, 2, 2]))
    with pytest.raises(InputError, match="entries"):
        mapping.center_of_mass(pos, np.ones(3), np.array([0, 1]))


def test_center_of_mass_weights_and_shapes():
    # water-like: O at origin, two H; COM pulled towards O by 16:1:1 weights
    pos = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [1.0, 1.0, 1.0]])
    masses = np.array([16.0, 1.0, 1.0, 40.0])
    idx = np.array([0, 0, 0, 1])
    com = mapping.center_of_mass(pos, masses, idx)
    np.testing.assert_allclose(com, [[0.1 / 18, 0.1 / 18, 0.0], [1.0, 1.0, 1.0]])
    frames = np.stack([pos, pos + 0.5])
    com_f = mapping.center_of_mass(frames, masses, idx)
    assert com_f.shape == (2, 2, 3)
    np.testing.assert_allclose(com_f[1], com + 0.5)


def test_center_of_mass_with_interleaved_atoms():
    rng = np.random.default_rng(3)
    pos = rng.normal(size=(4, 6, 3))
    masses = rng.uniform(1, 20, 6)
    idx = np.array([1, 0, 1, 0, 2, 2])
    com = mapping.center_of_mass(pos, masses, idx)
    for mol in range(3):
        sel = idx == mol
        expect = (pos[:, sel] * masses[sel, None]).sum(1) / masses[sel].sum()
        np.testing.assert_allclose(com[:, mol], expect)


def test_make_whole_fixes_molecule_split_across_boundary():
    box = np.array([2.0, 2.0, 2.0])
    # a 3-atom molecule centred on the x=0 face, stored wrapped into [0, 2)
    true = np.array([[-0.05, 1.0, 1.0], [0.07, 1.1, 1.0], [-0.12, 0.9, 1.0]])
    masses = np.array([12.0, 1.0, 16.0])
    wrapped = true % box
    assert np.ptp(wrapped[:, 0]) > 1.5  # broken as stored
    idx = np.zeros(3, dtype=int)
    naive = mapping.center_of_mass(wrapped, masses, idx)
    whole = mapping.make_whole(wrapped, box, idx)
    com = mapping.center_of_mass(whole, masses, idx)
    expect = (true * masses[:, None]).sum(0) / masses.sum()
    # correct up to a whole box vector (the first atom was wrapped to x = 1.95)
    shift = (com[0] - expect) / box
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-12)
    np.testing.assert_allclose(whole - whole[0], true - true[0], atol=1e-12)
    assert abs(naive[0, 0] - expect[0]) > 0.5  # without whole-making the COM is far off


def test_make_whole_per_frame_boxes():
    rng = np.random.default_rng(0)
    boxes = np.array([[3.0, 3.0, 3.0], [2.5, 2.6, 2.7]])
    centre = rng.uniform(0, 2.5, size=(2, 10, 3))
    offsets = rng.uniform(-0.3, 0.3, size=(2, 10, 2, 3))
    true = np.concatenate([centre[:, :, None, :], centre[:, :, None, :] + offsets], axis=2)
    true = true.reshape(2, 30, 3)
    wrapped = true % boxes[:, None, :]
    idx = mapping.molecule_index(10, 3)
    whole = mapping.make_whole(wrapped, boxes, idx)
    rel = whole - whole[:, ::3].repeat(3, axis=1)
    rel_true = true - true[:, ::3].repeat(3, axis=1)
    np.testing.assert_allclose(rel, rel_true, atol=1e-12)


def test_map_forces_sums_per_molecule():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(5, 12, 3))
    idx = mapping.molecule_index(4, 3)
    bead = mapping.map_forces(f, idx)
    np.testing.assert_allclose(bead, f.reshape(5, 4, 3, 3).sum(axis=2))
    # Newton's third law survives the mapping: internal forces cancel
    pair = np.array([[1.0, -2.0, 0.5], [-1.0, 2.0, -0.5]])
    np.testing.assert_allclose(mapping.map_forces(pair, np.array([0, 0])), [[0.0, 0.0, 0.0]])


def test_unwrap_in_time_recovers_wrapped_trajectory():
    rng = np.random.default_rng(2)
    steps = rng.normal(scale=0.1, size=(400, 30, 3))  # steps < half the box
    true = 5.0 + steps.cumsum(axis=0)  # wanders several boxes away
    box = np.array([1.5, 2.0, 2.5])
    wrapped = true % box
    unwrapped = mapping.unwrap_in_time(wrapped, box)
    np.testing.assert_allclose(unwrapped - unwrapped[0], true - true[0], atol=1e-9)
    assert np.abs(true - true[0]).max() > 1.5 * box.max()  # crossed the box


def test_unwrap_in_time_fluctuating_box():
    # NPT: each frame is wrapped into its own box; the per-frame moves must be recovered
    rng = np.random.default_rng(4)
    n_frames = 300
    boxes = 2.0 * (1 + 0.05 * np.sin(np.arange(n_frames) / 7.0))[:, None] * np.ones(3)
    moves = rng.normal(scale=0.15, size=(n_frames, 20, 3))
    moves[0] = rng.uniform(0, 2.0, size=(20, 3))
    true = moves.cumsum(axis=0)
    wrapped = np.empty_like(true)
    wrapped[0] = true[0] % boxes[0]
    for i in range(1, n_frames):
        wrapped[i] = (wrapped[i - 1] + moves[i]) % boxes[i]
    unwrapped = mapping.unwrap_in_time(wrapped, boxes)
    np.testing.assert_allclose(unwrapped - unwrapped[0], true - true[0], atol=1e-9)
