"""Free-space loss and the SNR -> rate chain match Friis, kT0 and Shannon to 0.01 dB."""

import math

import numpy as np
import pytest

import channels
from channels import rate

C = 299_792_458.0


@pytest.mark.parametrize("d, f", [(1.0, 1e9), (1000.0, 2.4e9), (50.0, 28e9), (10.0, 300e9),
                                  (5000.0, 0.5e9)])
def test_fspl_matches_friis(d, f):
    expected = 20 * math.log10(4 * math.pi * d * f / C)
    assert channels.fspl_db(d, f) == pytest.approx(expected, abs=0.01)


def test_fspl_textbook_value():
    # 1 km at 2.4 GHz: 32.45 + 20log10(1 km) + 20log10(2400 MHz) = 100.05 dB (free-space rule).
    assert channels.fspl_db(1000.0, 2.4e9) == pytest.approx(100.05, abs=0.01)


def test_fspl_is_vectorized_and_rises_6db_per_doubling():
    d = np.array([10.0, 20.0, 40.0])
    pl = channels.fspl_db(d, 3.5e9)
    assert pl.shape == (3,)
    assert np.allclose(np.diff(pl), 20 * math.log10(2), atol=1e-9)


@pytest.mark.parametrize("kwargs, name", [
    (dict(distance_m=-1.0, frequency_hz=1e9), "distance_m=-1"),
    (dict(distance_m=10.0, frequency_hz=0.0), "frequency_hz=0"),
])
def test_fspl_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        channels.fspl_db(**kwargs)


def test_noise_power_is_kT_plus_bandwidth_plus_nf():
    # 20 MHz, NF 9 dB: -174 + 10log10(2e7) + 9 = -91.99 dBm
    assert rate.noise_power_dbm(20e6, 9.0) == pytest.approx(-174 + 10 * math.log10(20e6) + 9, abs=0.01)
    assert rate.noise_power_dbm(1.0, 0.0) == pytest.approx(-174.0, abs=0.01)


def test_snr_is_link_budget_sum():
    # 23 dBm, 120 dB loss, 100 MHz, NF 7 dB, 10 dB gains
    expected = 23 - 120 + 10 - (-174 + 10 * math.log10(100e6) + 7)
    assert rate.snr_db(23.0, 120.0, 100e6, 7.0, gain_db=10.0) == pytest.approx(expected, abs=0.01)
    got = rate.snr_db(23.0, np.array([100.0, 120.0]), 100e6, 7.0)
    assert got[0] - got[1] == pytest.approx(20.0, abs=1e-9)


def test_shannon_rate():
    assert rate.shannon_rate_bps(1e6, 0.0) == pytest.approx(1e6, rel=1e-12)  # log2(2) = 1
    snr = 20.0
    assert rate.shannon_rate_bps(20e6, snr) == pytest.approx(20e6 * math.log2(1 + 10 ** (snr / 10)),
                                                             rel=1e-12)
    assert rate.shannon_rate_bps(1e6, -200.0) == pytest.approx(0.0, abs=1e-6)


def test_rate_rejects_bad_bandwidth():
    with pytest.raises(ValueError, match=r"bandwidth_hz=-5 .*valid range \(0, inf\) Hz"):
        rate.shannon_rate_bps(-5.0, 10.0)
    with pytest.raises(ValueError, match="noise_figure_db=-1"):
        rate.noise_power_dbm(1e6, -1.0)
