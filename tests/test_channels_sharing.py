"""Spectrum sharing: equal, proportional, and the split that minimises the slowest finish."""

import numpy as np
import pytest
from scipy.optimize import linprog

from channels import sharing

B = 100e6
DEMAND = np.array([8e6, 2e6, 40e6, 0.0, 10e6])
SE = np.array([2.0, 6.0, 4.0, 3.0, 1.0])


def test_equal_split():
    np.testing.assert_allclose(sharing.equal_split(B, 4), [25e6] * 4)


def test_proportional_split():
    got = sharing.proportional_split(B, DEMAND)
    np.testing.assert_allclose(got, B * DEMAND / DEMAND.sum())
    assert got.sum() == pytest.approx(B)


def test_min_max_equalises_finish_times_and_matches_lp():
    got = sharing.min_max_finish_split(B, DEMAND, SE)
    assert got.sum() == pytest.approx(B)
    t = sharing.finish_times_s(got, DEMAND, SE)
    busy = DEMAND > 0
    assert np.ptp(t[busy]) < 1e-12
    assert t[busy][0] == pytest.approx((DEMAND / SE).sum() / B)
    # Independent check: maximise tau s.t. b_i se_i >= tau d_i, sum b = B (tau = 1 / T, LP).
    n = len(DEMAND)
    c = np.r_[np.zeros(n), -1.0]
    a_ub = np.c_[-np.diag(SE), DEMAND]
    res = linprog(c, A_ub=a_ub, b_ub=np.zeros(n), A_eq=np.r_[np.ones(n), 0.0][None, :],
                  b_eq=[B], bounds=[(0, None)] * (n + 1))
    assert res.success
    assert 1.0 / res.x[-1] == pytest.approx(t[busy].max(), rel=1e-6)


def test_min_max_beats_the_others_on_the_slowest_flow():
    busy = DEMAND > 0
    worst = {name: sharing.finish_times_s(split, DEMAND, SE)[busy].max() for name, split in {
        "equal": sharing.equal_split(B, len(DEMAND)),
        "proportional": sharing.proportional_split(B, DEMAND),
        "min_max": sharing.min_max_finish_split(B, DEMAND, SE)}.items()}
    assert worst["min_max"] <= worst["equal"] and worst["min_max"] <= worst["proportional"]


def test_bad_input():
    with pytest.raises(ValueError, match=r"n_flows=0"):
        sharing.equal_split(B, 0)
    with pytest.raises(ValueError, match=r"bandwidth_hz=-1"):
        sharing.proportional_split(-1.0, DEMAND)
    with pytest.raises(ValueError, match=r"demand_bits=-5"):
        sharing.proportional_split(B, [1.0, -5.0])
    with pytest.raises(ValueError, match=r"spectral_efficiency_bps_per_hz=0"):
        sharing.min_max_finish_split(B, DEMAND, 0.0)
