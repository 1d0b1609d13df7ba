"""Array gain, 3GPP parabolic pointing loss and UAV jitter draws."""

import math

import numpy as np
import pytest

from channels import antenna


def test_array_gain_is_10log10_n():
    assert antenna.array_gain_db(1) == 0.0
    assert antenna.array_gain_db(1024) == pytest.approx(10 * math.log10(1024), abs=1e-12)  # 30.10 dB
    assert antenna.array_gain_db(1024) == pytest.approx(30.10, abs=0.01)
    np.testing.assert_allclose(antenna.array_gain_db([4, 64, 4096]), [6.02, 18.06, 36.12], atol=0.01)


def test_pointing_loss_tr38901_table_7_3_1():
    bw = math.radians(3.0)
    assert antenna.pointing_loss_db(0.0, bw) == 0.0
    assert antenna.pointing_loss_db(bw / 2, bw) == pytest.approx(3.0, abs=1e-12)  # half-power point
    assert antenna.pointing_loss_db(-bw / 2, bw) == pytest.approx(3.0, abs=1e-12)
    assert antenna.pointing_loss_db(bw, bw) == pytest.approx(12.0, abs=1e-12)
    assert antenna.pointing_loss_db(10 * bw, bw) == 30.0  # capped at A_max = 30 dB
    err = np.array([0.1, 0.5, 1.0]) * bw
    np.testing.assert_allclose(antenna.pointing_loss_db(err, bw), 12 * (err / bw) ** 2)


def test_upa_beamwidth_balanis():
    # 32 x 32 array: HPBW = 2 asin(1.391 * 2 / (pi * 32)) = 0.05535 rad (3.17 deg)
    assert antenna.upa_beamwidth_3db_rad(1024) == pytest.approx(2 * math.asin(1.391 * 2 / (math.pi * 32)))
    assert antenna.upa_beamwidth_3db_rad(1024) == pytest.approx(1.772 / 32, rel=0.01)


def test_jitter_draws_rayleigh_and_flying_is_worse():
    rng = np.random.default_rng(0)
    hover = antenna.draw_pointing_error_rad(rng, "hovering", size=50_000)
    fly = antenna.draw_pointing_error_rad(rng, "flying", size=50_000)
    s = antenna.UAV_JITTER_STD_RAD["hovering"]
    assert hover.mean() == pytest.approx(s * math.sqrt(math.pi / 2), rel=0.02)  # Rayleigh mean
    assert fly.mean() > 5 * hover.mean()
    custom = antenna.draw_pointing_error_rad(rng, jitter_std_rad=0.02, size=50_000)
    assert np.sqrt((custom ** 2).mean() / 2) == pytest.approx(0.02, rel=0.02)
    bw = antenna.upa_beamwidth_3db_rad(1024)
    assert antenna.pointing_loss_db(fly, bw).mean() > antenna.pointing_loss_db(hover, bw).mean()


@pytest.mark.parametrize("call, pattern", [
    (lambda: antenna.array_gain_db(0), r"num_elements=0 .*\[1, inf\)"),
    (lambda: antenna.pointing_loss_db(0.1, 0.0), r"beamwidth_3db_rad=0 .*\(0, inf\) rad"),
    (lambda: antenna.draw_pointing_error_rad(np.random.default_rng(0), "falling"), r"uav_state='falling'"),
    (lambda: antenna.draw_pointing_error_rad(np.random.default_rng(0), jitter_std_rad=-1.0), r"jitter_std_rad=-1"),
])
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
