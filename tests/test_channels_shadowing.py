"""Shadowing is spatially correlated as exp(-d/d_cor) (Gudmundson; TR 38.901 §7.6.3.1)."""

import math

import numpy as np
import pytest

from channels import shadowing, tr38901


def test_correlation_is_exponential():
    assert shadowing.correlation(0.0, 50.0) == 1.0
    assert shadowing.correlation(50.0, 50.0) == pytest.approx(math.exp(-1))
    np.testing.assert_allclose(shadowing.correlation(np.array([10.0, 100.0]), 37.0),
                               np.exp(-np.array([10.0, 100.0]) / 37.0))


def test_joint_draw_has_the_right_std_and_correlation():
    rng = np.random.default_rng(0)
    positions = np.array([[0.0, 0.0], [30.0, 40.0], [1000.0, 0.0]])  # 50 m and ~1 km apart
    d_cor = tr38901.shadow_decorrelation_distance_m("uma", False)  # 50 m, Table 7.5-6
    draws = np.array([shadowing.correlated_shadowing_db(rng, positions, 6.0, d_cor)
                      for _ in range(8000)])
    assert draws.std(axis=0) == pytest.approx([6.0, 6.0, 6.0], rel=0.04)
    corr = np.corrcoef(draws.T)
    assert corr[0, 1] == pytest.approx(math.exp(-50.0 / 50.0), abs=0.03)
    assert abs(corr[0, 2]) < 0.05


def test_moving_node_update_keeps_variance_and_autocorrelation():
    rng = np.random.default_rng(1)
    n_nodes, step_m, d_cor, std = 20_000, 5.0, 37.0, 4.0
    s0 = std * rng.standard_normal(n_nodes)
    s = s0
    for _ in range(4):  # 20 m travelled
        s = shadowing.update_shadowing_db(rng, s, step_m, std, d_cor)
    assert s.std() == pytest.approx(std, rel=0.03)
    assert np.corrcoef(s0, s)[0, 1] == pytest.approx(math.exp(-20.0 / d_cor), abs=0.02)


def test_moving_shadowing_helper():
    tracker = shadowing.MovingShadowing(np.random.default_rng(2), 8.0, 120.0, size=3)
    before = np.array(tracker.value_db)
    after = tracker.advance(0.0)  # no motion: no change
    np.testing.assert_allclose(after, before)
    assert tracker.advance(1e6).shape == (3,)


def test_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"decorrelation_distance_m=0 .*\(0, inf\) m"):
        shadowing.correlated_shadowing_db(rng, [0.0, 1.0], 4.0, 0.0)
    with pytest.raises(ValueError, match=r"std_db=-4"):
        shadowing.update_shadowing_db(rng, 0.0, 1.0, -4.0, 10.0)
    with pytest.raises(ValueError, match=r"distance_m=-1"):
        shadowing.update_shadowing_db(rng, 0.0, -1.0, 4.0, 10.0)
    with pytest.raises(ValueError, match="positions_m"):
        shadowing.correlated_shadowing_db(rng, np.zeros((3, 4)), 4.0, 10.0)
