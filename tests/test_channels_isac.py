"""THz-ISAC split: radar-equation sensing SNR, c/(2B) resolution, leftover downlink rate."""

import math

import numpy as np
import pytest

from channels import antenna, isac, thz

C = 299_792_458.0
KT0_MW_PER_HZ = 10 ** (-174 / 10)


def radar_snr_linear(p_t_dbm, g_lin, f, rcs, r, t, nf_db, kappa):
    """Radar equation, energy form: P G^2 lambda^2 sigma T / ((4 pi)^3 R^4 k T0 F) e^{-2 kappa R}."""
    lam = C / f
    return (10 ** (p_t_dbm / 10) * g_lin ** 2 * lam ** 2 * rcs * t
            / ((4 * math.pi) ** 3 * r ** 4 * KT0_MW_PER_HZ * 10 ** (nf_db / 10))
            * math.exp(-2 * kappa * r))


def test_radar_snr_matches_radar_equation():
    f, r, t = 300e9, 80.0, 1e-4
    kappa = thz.kokkoniemi_absorption_coefficient_per_m(f)
    expected = 10 * math.log10(radar_snr_linear(20.0, 1024, f, 0.5, r, t, 10.0, kappa))
    got = isac.radar_snr_db(20.0, 10 * math.log10(1024), 10 * math.log10(1024), f, 0.5, r, t, 10.0)
    assert got == pytest.approx(expected, abs=0.01)


def test_time_split_trades_snr_for_rate_at_fixed_resolution():
    alpha = np.array([0.1, 0.5, 0.9])
    res = isac.isac_tradeoff(alpha, "time", bandwidth_hz=10e9)
    np.testing.assert_allclose(res.range_resolution_m, C / (2 * 10e9))  # 1.5 cm
    assert np.all(np.diff(res.sensing_snr_db) > 0) and np.all(np.diff(res.comm_rate_bps) < 0)
    # sensing SNR grows as 10 log10(alpha): dwell time alpha * T_frame
    assert res.sensing_snr_db[1] - res.sensing_snr_db[0] == pytest.approx(10 * math.log10(5), abs=0.01)


def test_bandwidth_split_changes_resolution():
    res = isac.isac_tradeoff(np.array([0.25, 0.5]), "bandwidth", bandwidth_hz=4e9)
    np.testing.assert_allclose(res.range_resolution_m, [C / (2 * 1e9), C / (2 * 2e9)])
    # flat PSD: same energy and same leftover rate as the time split
    time_res = isac.isac_tradeoff(np.array([0.25, 0.5]), "time", bandwidth_hz=4e9)
    np.testing.assert_allclose(res.sensing_snr_db, time_res.sensing_snr_db, atol=1e-9)
    np.testing.assert_allclose(res.comm_rate_bps, time_res.comm_rate_bps, rtol=1e-12)


def test_default_point_written_out():
    # alpha = 0.3, time split, defaults: 300 GHz, 10 GHz, 20 dBm, 1024 elements, sigma 1 m^2,
    # target and user at 100 m, user gain 20 dB, NF 10 dB, 1 ms frame, no pointing error.
    f, b, alpha = 300e9, 10e9, 0.3
    kappa = thz.kokkoniemi_absorption_coefficient_per_m(f)
    res = isac.isac_tradeoff(alpha, "time")
    snr_s = 10 * math.log10(radar_snr_linear(20.0, 1024, f, 1.0, 100.0, alpha * 1e-3, 10.0, kappa))
    assert res.sensing_snr_db == pytest.approx(snr_s, abs=0.01)
    pl = 20 * math.log10(4 * math.pi * 100 * f / C) + 10 * math.log10(math.e) * kappa * 100
    snr_c = 20.0 - pl + 10 * math.log10(1024) + 20.0 - (-174 + 10 * math.log10(b) + 10.0)
    assert res.comm_snr_db == pytest.approx(snr_c, abs=0.01)
    assert res.comm_rate_bps == pytest.approx((1 - alpha) * b * math.log2(1 + 10 ** (snr_c / 10)), rel=1e-9)


def test_edges_of_the_split():
    res = isac.isac_tradeoff(np.array([0.0, 1.0]), "bandwidth")
    assert res.sensing_snr_db[0] == -math.inf and res.range_resolution_m[0] == math.inf
    assert res.comm_rate_bps[1] == 0.0


def test_flying_jitter_costs_rate():
    rng = np.random.default_rng(0)
    bw = antenna.upa_beamwidth_3db_rad(4096)
    hover = antenna.draw_pointing_error_rad(rng, "hovering", size=2000)
    fly = antenna.draw_pointing_error_rad(rng, "flying", jitter_std_rad=0.02, size=2000)
    r_h = isac.isac_tradeoff(0.2, num_elements=4096, pointing_error_rad=hover, beamwidth_3db_rad=bw)
    r_f = isac.isac_tradeoff(0.2, num_elements=4096, pointing_error_rad=fly, beamwidth_3db_rad=bw)
    assert r_f.comm_rate_bps.mean() < r_h.comm_rate_bps.mean()
    assert r_f.sensing_snr_db.mean() < r_h.sensing_snr_db.mean()


def test_bad_input():
    with pytest.raises(ValueError, match=r"mode='code'"):
        isac.isac_tradeoff(0.5, "code")
    with pytest.raises(ValueError, match=r"sensing_fraction=1.5 .*\[0, 1\]"):
        isac.isac_tradeoff(1.5)
    with pytest.raises(ValueError, match=r"frequency_hz=2.8e10 .*\[1e11, 1e12\] Hz"):
        isac.isac_tradeoff(0.5, frequency_hz=28e9)
    with pytest.raises(ValueError, match=r"rcs_m2=0"):
        isac.isac_tradeoff(0.5, rcs_m2=0.0)
