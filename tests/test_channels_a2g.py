"""UAV air-to-ground loss follows Al-Hourani et al. 2014: elevation in degrees, mean in dB."""

import math

import numpy as np
import pytest

from channels import a2g

C = 299_792_458.0
# Al-Hourani, Kandeepan, Lardner, IEEE WCL 2014, parameter table: (a, b, eta_LoS dB, eta_NLoS dB)
TABLE = {
    "suburban": (4.88, 0.43, 0.1, 21.0),
    "urban": (9.61, 0.16, 1.0, 20.0),
    "dense_urban": (12.08, 0.11, 1.6, 23.0),
    "highrise_urban": (27.23, 0.08, 2.3, 34.0),
}


def p_los(theta_deg, env):
    a, b, _, _ = TABLE[env]
    return 1 / (1 + a * math.exp(-b * (theta_deg - a)))  # LOS S-curve, theta in degrees


def mean_pl(h, r, f, env):
    _, _, eta_los, eta_nlos = TABLE[env]
    d = math.hypot(h, r)
    fspl = 20 * math.log10(4 * math.pi * f * d / C)
    p = p_los(math.degrees(math.atan2(h, r)), env)
    return p * (fspl + eta_los) + (1 - p) * (fspl + eta_nlos)  # mean over LOS/NLOS, in dB


@pytest.mark.parametrize("env", sorted(TABLE))
def test_los_probability_matches_eq3(env):
    for theta in (0.0, 5.0, 15.0, 30.0, 45.0, 60.0, 90.0):
        assert a2g.los_probability(theta, env) == pytest.approx(p_los(theta, env), abs=1e-12)


def test_elevation_is_in_degrees():
    # Urban, 45 degrees: P_LoS = 1/(1 + 9.61 exp(-0.16 (45 - 9.61))) = 0.968
    assert a2g.los_probability(45.0, "urban") == pytest.approx(0.968, abs=0.001)
    # The same angle given in radians would be a near-horizon link: P_LoS ~ 0.2
    assert a2g.los_probability(math.pi / 4, "urban") < 0.25
    assert a2g.elevation_deg(100.0, 100.0) == pytest.approx(45.0)


@pytest.mark.parametrize("env", sorted(TABLE))
def test_mean_pathloss_matches_eq5(env):
    for h, r, f in [(100.0, 0.0, 2e9), (100.0, 100.0, 2e9), (300.0, 2000.0, 0.7e9),
                    (50.0, 5000.0, 5.8e9), (1000.0, 500.0, 3.5e9)]:
        assert a2g.mean_pathloss_db(h, r, f, env) == pytest.approx(mean_pl(h, r, f, env), abs=0.01)


def test_mean_is_taken_in_db_not_in_linear_power():
    h, r, f, env = 100.0, 500.0, 2e9, "urban"
    _, _, eta_los, eta_nlos = TABLE[env]
    fspl = 20 * math.log10(4 * math.pi * f * math.hypot(h, r) / C)
    p = p_los(math.degrees(math.atan2(h, r)), env)
    linear_mean = -10 * math.log10(p * 10 ** (-(fspl + eta_los) / 10)
                                   + (1 - p) * 10 ** (-(fspl + eta_nlos) / 10))
    got = a2g.mean_pathloss_db(h, r, f, env)
    assert abs(got - linear_mean) > 1.0
    assert got == pytest.approx(mean_pl(h, r, f, env), abs=0.01)


def test_los_and_nlos_bracket_the_mean():
    r = np.linspace(0, 3000, 50)
    los = a2g.pathloss_db(120.0, r, 2e9, "dense_urban", True)
    nlos = a2g.pathloss_db(120.0, r, 2e9, "dense_urban", False)
    mean = a2g.mean_pathloss_db(120.0, r, 2e9, "dense_urban")
    assert np.all((los <= mean + 1e-9) & (mean <= nlos + 1e-9))
    assert np.allclose(nlos - los, 23.0 - 1.6)


@pytest.mark.parametrize("call, pattern", [
    (lambda: a2g.los_probability(30.0, "rural"), r"environment='rural' is not one of .*'suburban'"),
    (lambda: a2g.los_probability(120.0, "urban"), r"elevation_deg=120 .*\[0, 90\] degrees"),
    (lambda: a2g.mean_pathloss_db(100.0, 10.0, 28e9, "urban"), r"frequency_hz=2.8e10 .*\[7e8, 5.8e9\] Hz"),
    (lambda: a2g.mean_pathloss_db(-100.0, 10.0, 2e9, "urban"), r"altitude_m=-100"),
    (lambda: a2g.mean_pathloss_db(100.0, -10.0, 2e9, "urban"), r"ground_distance_m=-10 .*\[0, inf\) m"),
])
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
