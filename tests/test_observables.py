"""Observables with known answers: RDF, MSD, diffusion coefficients, time-series errors."""

from __future__ import annotations

import numpy as np
import pytest

from cgforge import units
from cgforge.errors import InputError
from cgforge.observables import (
    MSD,
    RDF,
    MSDResult,
    RDFResult,
    TimeSeries,
    block_standard_error,
    density_series,
    fit_diffusion,
    mean_with_error,
    msd_direct,
    msd_fft,
    statistical_inefficiency,
    yeh_hummer_correction,
)
from cgforge.trajectory import CGTrajectory


def _traj(pos: np.ndarray, box: float | np.ndarray, dt: float = 1.0) -> CGTrajectory:
    n_frames, n_beads, _ = pos.shape
    return CGTrajectory(
        pos, np.broadcast_to(box, (n_frames, 3)), np.arange(n_frames) * dt, np.full(n_beads, 18.0)
    )


def _lattice(kind: str, n_cells: int, a: float) -> np.ndarray:
    basis = {
        "sc": np.zeros((1, 3)),
        "fcc": np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]),
    }[kind]
    cells = np.array(np.meshgrid(*[range(n_cells)] * 3, indexing="ij")).reshape(3, -1).T
    return ((cells[:, None, :] + basis[None]) * a).reshape(-1, 3)


# ------------------------------------------------------------------------ RDF


def test_rdf_ideal_gas_is_one_within_error():
    rng = np.random.default_rng(0)
    edge = 3.0
    pos = rng.uniform(0, edge, size=(20, 400, 3))
    res = RDF(bin_width_nm=0.05).compute(_traj(pos, edge))
    assert res.r_max_nm == pytest.approx(1.5)  # default: half the box
    assert res.r_nm[0] == pytest.approx(0.025) and res.r_nm.size == 30
    inner = res.r_nm > 0.2  # tiny shells hold few pairs
    z = (res.g[inner] - 1.0) / res.g_err[inner]
    assert np.mean(z**2) < 2.0
    assert np.mean(np.abs(z) < 3) > 0.95
    # the (N-1)/V normalisation has no 1/N bias: the plateau average is 1 to 0.2 %
    assert abs(np.mean(res.g[inner]) - 1.0) < 2e-3
    assert np.all(res.g_err[inner] < 0.1)


@pytest.mark.parametrize(
    ("kind", "first_shell_nm", "coordination"),
    [
        ("sc", 0.4, 6),
        ("fcc", 0.4 / np.sqrt(2), 12),
    ],
)
def test_rdf_lattice_first_peak_and_coordination(kind, first_shell_nm, coordination):
    rng = np.random.default_rng(1)
    a = 0.4
    lat = _lattice(kind, 5, a)
    edge = 5 * a
    pos = lat[None] + rng.normal(scale=0.004, size=(4, len(lat), 3))
    res = RDF(r_max_nm=0.9 * edge / 2, bin_width_nm=0.004).compute(_traj(pos, edge))
    near = res.r_nm < 1.2 * first_shell_nm
    assert res.r_nm[near][np.argmax(res.g[near])] == pytest.approx(first_shell_nm, abs=0.004)
    assert np.all(res.g[res.r_nm < 0.8 * first_shell_nm] == 0)
    # integrate 4πρr²g over the first shell by hand (neighbour density (N-1)/V)
    rho = (len(lat) - 1) / edge**3
    r_cut = 0.5 * (first_shell_nm + first_shell_nm * (np.sqrt(2) if kind == "sc" else 1.2))
    shell = res.r_nm < r_cut
    n_hand = np.sum(4 * np.pi * rho * res.r_nm[shell] ** 2 * res.g[shell]) * res.bin_width_nm
    assert n_hand == pytest.approx(coordination, rel=0.01)
    assert res.coordination_number(r_cut) == pytest.approx(coordination, abs=1e-9)


def test_rdf_image_independent_streaming_and_merge():
    rng = np.random.default_rng(2)
    edge = 2.5
    pos = rng.uniform(0, edge, size=(6, 150, 3))
    shifted = pos + edge * rng.integers(-3, 4, size=pos.shape)  # other periodic images
    full = RDF(bin_width_nm=0.02).compute(_traj(pos, edge))
    again = RDF(bin_width_nm=0.02).compute(_traj(shifted, edge))
    np.testing.assert_allclose(again.g, full.g, atol=1e-12)
    first = RDF(bin_width_nm=0.02).update(_traj(pos[:3], edge))
    second = RDF(bin_width_nm=0.02).update(_traj(pos[3:], edge))
    merged = first.merge(second).result()
    np.testing.assert_allclose(merged.g, full.g, atol=1e-12)
    np.testing.assert_allclose(merged.g_err, full.g_err, atol=1e-12)
    assert merged.n_frames == 6
    with pytest.raises(InputError, match="different bins"):
        RDF(r_max_nm=1.0).update(_traj(pos[:1], edge)).merge(
            RDF(r_max_nm=0.8).update(_traj(pos[:1], edge))
        )


def test_rdf_matches_brute_force_histogram():
    rng = np.random.default_rng(5)
    box = np.array([2.0, 2.2, 2.4])
    pos = rng.uniform(0, 2.0, size=(1, 60, 3))
    res = RDF(r_max_nm=1.0, bin_width_nm=0.1).compute(_traj(pos, box))
    d = pos[0][:, None, :] - pos[0][None, :, :]
    d -= box * np.round(d / box)
    r = np.linalg.norm(d, axis=-1)[np.triu_indices(60, 1)]
    counts = np.histogram(r, bins=np.linspace(0, 1.0, 11))[0]
    shells = 4 / 3 * np.pi * np.diff(np.linspace(0, 1.0, 11) ** 3)
    expect = counts / (60 * 59 / 2 / np.prod(box) * shells)
    np.testing.assert_allclose(res.g, expect, rtol=1e-12)
    # one frame: counting (Poisson) error
    np.testing.assert_allclose(res.g_err, np.sqrt(counts) / (60 * 59 / 2 / np.prod(box) * shells))


def test_rdf_rejects_r_max_beyond_half_box_and_empty():
    pos = np.random.default_rng(3).uniform(0, 2.0, size=(2, 20, 3))
    with pytest.raises(InputError, match="half the smallest box edge"):
        RDF(r_max_nm=1.2).compute(_traj(pos, 2.0))
    with pytest.raises(InputError, match="no frames"):
        RDF().result()


def test_rdf_csv_round_trip(tmp_path):
    pos = np.random.default_rng(4).uniform(0, 2.0, size=(6, 50, 3))
    res = RDF(bin_width_nm=0.05).compute(_traj(pos, 2.0))
    path = res.to_csv(tmp_path / "rdf.csv")
    assert path.read_text().splitlines()[0] == "r_nm,g,g_err"
    back = RDFResult.from_csv(path)
    np.testing.assert_allclose(back.r_nm, res.r_nm)
    np.testing.assert_allclose(back.g, res.g, rtol=1e-9)
    np.testing.assert_allclose(back.g_err, res.g_err, rtol=1e-9)
    assert back.bin_width_nm == pytest.approx(0.05)
    assert back.r_max_nm == pytest.approx(res.r_max_nm)


# ------------------------------------------------------------------------ MSD


def test_fft_msd_equals_direct_origin_average():
    x = np.random.default_rng(0).normal(size=(64, 5, 3)).cumsum(axis=0)
    np.testing.assert_allclose(msd_fft(x), msd_direct(x), atol=1e-9)
    res = MSD().compute(_traj(x, 100.0, dt=0.5))
    np.testing.assert_allclose(res.msd_nm2, msd_direct(x).mean(axis=1), atol=1e-9)
    np.testing.assert_allclose(res.t_ps, np.arange(64) * 0.5)
    assert res.n_origins[0] == 64 and res.n_origins[-1] == 1


def test_msd_requires_even_spacing():
    x = np.zeros((4, 2, 3))
    traj = CGTrajectory(x, np.full(3, 5.0), np.array([0.0, 1.0, 2.0, 4.0]), np.ones(2))
    with pytest.raises(InputError, match="evenly spaced"):
        MSD().compute(traj)


def test_msd_remove_drift():
    rng = np.random.default_rng(1)
    x = rng.normal(scale=0.05, size=(100, 50, 3)).cumsum(axis=0)
    x -= x.mean(axis=1, keepdims=True)  # no centre-of-mass motion
    drift = 0.3 * np.arange(100)[:, None, None] * np.array([1.0, 0.0, 0.0])
    plain = MSD().compute(_traj(x, 50.0))
    removed = MSD(remove_drift=True).compute(_traj(x + drift, 50.0))
    np.testing.assert_allclose(removed.msd_nm2, plain.msd_nm2, atol=1e-9)


def _random_walk(
    seed: int, n_beads: int = 64, n_frames: int = 800, sigma: float = 0.05, dt: float = 0.2
) -> tuple[CGTrajectory, float]:
    rng = np.random.default_rng(seed)
    pos = rng.normal(scale=sigma, size=(n_frames, n_beads, 3)).cumsum(axis=0)
    return _traj(pos, 10.0, dt=dt), sigma**2 / (2 * dt)


def test_diffusion_of_random_walk_and_error_coverage():
    z = []
    for seed in range(16):
        traj, d_true = _random_walk(seed)
        res = fit_diffusion(MSD().compute(traj))
        assert res.ok, res.warning
        assert res.diffusion_err_nm2_ps > 0
        assert res.slope_loglog == pytest.approx(1.0, abs=0.1)
        z.append((res.diffusion_nm2_ps - d_true) / res.diffusion_err_nm2_ps)
    z = np.array(z)
    assert np.mean(np.abs(z) < 2) >= 0.75  # ~95 % expected
    assert 0.4 < np.std(z) < 1.8  # error bars neither far too small nor far too large
    assert res.diffusion_m2_s == pytest.approx(res.diffusion_nm2_ps * 1e-6)
    assert res.fit_end_ps <= 0.5 * traj.times_ps[-1] + 1e-9


def test_diffusion_skips_ballistic_regime():
    # Langevin (Ornstein-Uhlenbeck velocity): ballistic below 1/gamma, diffusive beyond
    rng = np.random.default_rng(7)
    n, n_frames, dt, gamma, kT_over_m = 100, 3000, 0.01, 5.0, 1.0
    a = np.exp(-gamma * dt)
    v = rng.normal(scale=np.sqrt(kT_over_m), size=(n, 3))
    x = np.zeros((n, 3))
    out = np.empty((n_frames, n, 3))
    for i in range(n_frames):
        out[i] = x
        v_new = a * v + np.sqrt(kT_over_m * (1 - a * a)) * rng.normal(size=(n, 3))
        x = x + 0.5 * (v + v_new) * dt
        v = v_new
    res = fit_diffusion(MSD().compute(_traj(out, 100.0, dt=dt)))
    d_true = kT_over_m / gamma
    assert res.fit_start_ps > 1.0 / gamma  # ballistic part left out
    assert abs(res.diffusion_nm2_ps - d_true) < 3 * res.diffusion_err_nm2_ps + 0.03 * d_true


def test_ballistic_motion_has_slope_two_and_is_flagged():
    v = np.random.default_rng(2).normal(size=(20, 3))
    pos = np.arange(100)[:, None, None] * v[None] * 0.01
    msd = MSD().compute(_traj(pos, 50.0))
    np.testing.assert_allclose(msd.msd_nm2[1:], np.mean(np.sum(v**2, 1)) * 1e-4 * msd.t_ps[1:] ** 2)
    res = fit_diffusion(msd)
    assert res.slope_loglog == pytest.approx(2.0, abs=1e-6)
    assert not res.ok and "diffusive" in res.warning


@pytest.mark.parametrize("n_frames", [2, 3, 5])
def test_short_trajectory_gives_finite_flagged_answer(n_frames):
    traj, _ = _random_walk(0, n_frames=n_frames)
    res = fit_diffusion(MSD().compute(traj))
    assert np.isfinite(res.diffusion_nm2_ps) and res.diffusion_nm2_ps > 0
    assert np.isfinite(res.diffusion_err_nm2_ps)
    assert not res.ok


def test_user_window_and_bad_window():
    traj, d_true = _random_walk(3)
    msd = MSD().compute(traj)
    res = fit_diffusion(msd, t_min_ps=10.0, t_max_ps=40.0)
    assert res.fit_start_ps == pytest.approx(10.0) and res.fit_end_ps == pytest.approx(40.0)
    assert "user window" in res.method
    assert abs(res.diffusion_nm2_ps - d_true) < 4 * res.diffusion_err_nm2_ps
    with pytest.raises(InputError):
        fit_diffusion(msd, t_min_ps=30.0, t_max_ps=30.1)


def test_msd_csv(tmp_path):
    traj, _ = _random_walk(4, n_frames=20)
    res = MSD().compute(traj)
    path = res.to_csv(tmp_path / "msd.csv")
    assert path.read_text().splitlines()[0] == "t_ps,msd_nm2"
    back = MSDResult.from_csv(path)
    np.testing.assert_allclose(back.msd_nm2, res.msd_nm2, rtol=1e-9)
    np.testing.assert_array_equal(back.n_origins, res.n_origins)


def test_yeh_hummer_water_like():
    # SPC/E-like water at 298 K in a 3 nm box, eta = 0.89 mPa s
    d_pbc = 2.3e-3  # nm²/ps = 2.3e-9 m²/s
    d_inf = yeh_hummer_correction(d_pbc, 3.0, 298.0, 0.89e-3)
    kb_j_k = units.KB_KJ_MOL_K * 1e3 / units.AVOGADRO
    expect_si = 2.837297 * kb_j_k * 298.0 / (6 * np.pi * 0.89e-3 * 3.0e-9)  # m²/s
    assert (d_inf - d_pbc) * units.NM2_PS_TO_M2_S == pytest.approx(expect_si, rel=1e-9)
    assert 0.2e-9 < expect_si < 0.3e-9
    # box given per frame, cubic
    per_frame = yeh_hummer_correction(d_pbc, np.full((5, 3), 3.0), 298.0, 0.89e-3)
    assert per_frame == pytest.approx(d_inf)
    with pytest.raises(InputError, match="cubic"):
        yeh_hummer_correction(d_pbc, [3.0, 3.0, 4.0], 298.0, 0.89e-3)


# ------------------------------------------------------------------------ thermo


def _ar1(seed: int, phi: float, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n)
    y = np.empty(n)
    y[0] = e[0] / np.sqrt(1 - phi**2)
    for i in range(1, n):
        y[i] = phi * y[i - 1] + e[i]
    return y


def test_mean_with_error_uncorrelated_and_correlated():
    x = np.random.default_rng(0).normal(loc=3.0, size=4096)
    mean, err = mean_with_error(x)
    assert mean == pytest.approx(3.0, abs=4 * err)
    assert err == pytest.approx(1 / 64, rel=0.1)
    assert block_standard_error(x) == pytest.approx(1 / 64, rel=0.15)
    # AR(1), phi = 0.8: g = (1+phi)/(1-phi) = 9, true SE of the mean = sqrt(g/(1-phi²)/n)
    phi, n = 0.8, 4000
    true_se = np.sqrt((1 + phi) / (1 - phi) / (1 - phi**2) / n)
    errs = [mean_with_error(_ar1(s, phi, n))[1] for s in range(8)]
    assert np.mean(errs) == pytest.approx(true_se, rel=0.15)
    assert statistical_inefficiency(_ar1(0, phi, n)) == pytest.approx(9.0, rel=0.25)
    blocked = np.mean([block_standard_error(_ar1(s, phi, n)) for s in range(8)])
    assert 0.6 * true_se < blocked < 1.2 * true_se


def test_density_series_and_time_series(tmp_path):
    n = 1000
    edge = (n * 18.015 * units.AMU_NM3_TO_G_CM3) ** (1 / 3)  # 1 g/cm³ of water molecules
    boxes = np.array([[edge, edge, edge], [edge * 1.01, edge, edge]])
    traj = CGTrajectory(np.zeros((2, n, 3)), boxes, np.array([0.0, 2.0]), np.full(n, 18.015))
    series = density_series(traj)
    np.testing.assert_allclose(series.values, [1.0, 1.0 / 1.01])
    assert series.column == "density_g_cm3"
    path = series.to_csv(tmp_path / "rho.csv")
    assert path.read_text().splitlines()[0] == "t_ps,density_g_cm3"
    ts = TimeSeries(np.arange(10.0), np.arange(10.0), "U_kJ_mol")
    assert ts.after(5.0).mean == pytest.approx(7.0)
    with pytest.raises(InputError):
        TimeSeries(np.arange(3.0), np.array([1.0, np.nan, 2.0]))
