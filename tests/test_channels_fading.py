"""Fading gains have unit mean and the right spread; coherence time follows Doppler."""

import math

import numpy as np
import pytest

from channels import fading

N = 200_000


def test_rayleigh_unit_mean_exponential():
    g = fading.rayleigh_power_gain(np.random.default_rng(0), N)
    assert g.mean() == pytest.approx(1.0, abs=0.01)
    assert g.var() == pytest.approx(1.0, abs=0.03)  # Exponential(1): variance 1
    # P(g < 0.1) = 1 - exp(-0.1): the deep-fade probability a link budget margin is built on
    assert (g < 0.1).mean() == pytest.approx(1 - math.exp(-0.1), abs=0.005)


@pytest.mark.parametrize("k", [0.0, 1.0, 10.0])
def test_rician_unit_mean_and_variance(k):
    g = fading.rician_power_gain(np.random.default_rng(1), k, N)
    assert g.mean() == pytest.approx(1.0, abs=0.01)
    # Var|h|^2 = (1 + 2K) / (K + 1)^2 for unit-mean Rician power (Rice moments)
    assert g.var() == pytest.approx((1 + 2 * k) / (k + 1) ** 2, rel=0.03)


def test_rician_array_k():
    g = fading.rician_power_gain(np.random.default_rng(2), np.array([0.0, 5.0, 100.0]))
    assert g.shape == (3,)


@pytest.mark.parametrize("m", [0.5, 1.0, 4.0])
def test_nakagami_unit_mean_and_variance(m):
    g = fading.nakagami_power_gain(np.random.default_rng(3), m, N)
    assert g.mean() == pytest.approx(1.0, abs=0.015)
    assert g.var() == pytest.approx(1.0 / m, rel=0.04)  # Gamma(m, 1/m): variance 1/m


def test_same_seed_same_draws():
    a = fading.rayleigh_power_gain(np.random.default_rng(7), 5)
    b = fading.rayleigh_power_gain(np.random.default_rng(7), 5)
    np.testing.assert_array_equal(a, b)


def test_doppler_and_coherence_time():
    # 30 m/s at 3.5 GHz: fD = 30 * 3.5e9 / 299792458 = 350.25 Hz; Tc = 0.423 / fD = 1.208 ms
    fd = 30 * 3.5e9 / 299_792_458
    assert fading.doppler_hz(30.0, 3.5e9) == pytest.approx(fd, rel=1e-12)
    assert fading.coherence_time_s(30.0, 3.5e9) == pytest.approx(math.sqrt(9 / (16 * math.pi)) / fd, rel=1e-12)
    assert fading.coherence_time_s(30.0, 3.5e9) == pytest.approx(0.423 / fd, rel=1e-3)
    assert fading.coherence_time_s(0.0, 3.5e9) == math.inf
    tc = fading.coherence_time_s(np.array([1.0, 10.0]), 28e9)
    assert tc[0] == pytest.approx(10 * tc[1])


def test_fading_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"k_factor=-1 .*\[0, inf\)"):
        fading.rician_power_gain(rng, -1.0)
    with pytest.raises(ValueError, match=r"m=0.3 .*\[0.5, inf\)"):
        fading.nakagami_power_gain(rng, 0.3)
    with pytest.raises(ValueError, match=r"speed_mps=-2"):
        fading.coherence_time_s(-2.0, 3.5e9)
