"""TR 38.901 path loss, LOS probability and shadow fading match Tables 7.4.1-1 / 7.4.2-1."""

import math

import numpy as np
import pytest

from channels import tr38901

C_3GPP = 3.0e8  # Table 7.4.1-1 notes 1 and 5


def d3(d2d, h_bs, h_ut):
    return math.hypot(d2d, h_bs - h_ut)


# ---- Table 7.4.1-1, UMa (hBS = 25 m, hE = 1 m) -------------------------------------------
def uma_los(d2d, fc_ghz, h_bs=25.0, h_ut=1.5):
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * fc_ghz * 1e9 / C_3GPP
    d = d3(d2d, h_bs, h_ut)
    if d2d <= d_bp:
        return 28.0 + 22 * math.log10(d) + 20 * math.log10(fc_ghz)
    return (28.0 + 40 * math.log10(d) + 20 * math.log10(fc_ghz)
            - 9 * math.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))


def uma_nlos(d2d, fc_ghz, h_bs=25.0, h_ut=1.5):
    d = d3(d2d, h_bs, h_ut)
    prime = 13.54 + 39.08 * math.log10(d) + 20 * math.log10(fc_ghz) - 0.6 * (h_ut - 1.5)
    return max(uma_los(d2d, fc_ghz, h_bs, h_ut), prime)


# ---- Table 7.4.1-1, UMi-Street Canyon (hBS = 10 m, hE = 1 m) -----------------------------
def umi_los(d2d, fc_ghz, h_bs=10.0, h_ut=1.5):
    d_bp = 4 * (h_bs - 1) * (h_ut - 1) * fc_ghz * 1e9 / C_3GPP
    d = d3(d2d, h_bs, h_ut)
    if d2d <= d_bp:
        return 32.4 + 21 * math.log10(d) + 20 * math.log10(fc_ghz)
    return (32.4 + 40 * math.log10(d) + 20 * math.log10(fc_ghz)
            - 9.5 * math.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))


def umi_nlos(d2d, fc_ghz, h_bs=10.0, h_ut=1.5):
    d = d3(d2d, h_bs, h_ut)
    prime = 35.3 * math.log10(d) + 22.4 + 21.3 * math.log10(fc_ghz) - 0.3 * (h_ut - 1.5)
    return max(umi_los(d2d, fc_ghz, h_bs, h_ut), prime)


# ---- Table 7.4.1-1, RMa (hBS = 35 m, h = 5 m, W = 20 m) ----------------------------------
def rma_pl1(d, fc_ghz, h=5.0):
    return (20 * math.log10(40 * math.pi * d * fc_ghz / 3) + min(0.03 * h ** 1.72, 10) * math.log10(d)
            - min(0.044 * h ** 1.72, 14.77) + 0.002 * math.log10(h) * d)


def rma_los(d2d, fc_ghz, h_bs=35.0, h_ut=1.5):
    d_bp = 2 * math.pi * h_bs * h_ut * fc_ghz * 1e9 / C_3GPP
    d = d3(d2d, h_bs, h_ut)
    if d2d <= d_bp:
        return rma_pl1(d, fc_ghz)
    return rma_pl1(d_bp, fc_ghz) + 40 * math.log10(d / d_bp)


def rma_nlos(d2d, fc_ghz, h_bs=35.0, h_ut=1.5, w=20.0, h=5.0):
    d = d3(d2d, h_bs, h_ut)
    prime = (161.04 - 7.1 * math.log10(w) + 7.5 * math.log10(h)
             - (24.37 - 3.7 * (h / h_bs) ** 2) * math.log10(h_bs)
             + (43.42 - 3.1 * math.log10(h_bs)) * (math.log10(d) - 3) + 20 * math.log10(fc_ghz)
             - (3.2 * math.log10(11.75 * h_ut) ** 2 - 4.97))
    return max(rma_los(d2d, fc_ghz, h_bs, h_ut), prime)


REFERENCE = {"uma": (uma_los, uma_nlos), "umi": (umi_los, umi_nlos), "rma": (rma_los, rma_nlos)}
POINTS = {
    # (d2D m, fc GHz, hUT m): table minimum distance, around the breakpoint, table maximum,
    # band edges, and UT heights at the edges of the applicability range.
    "uma": [(10, 0.5, 1.5), (100, 3.5, 1.5), (559, 3.5, 1.5), (561, 3.5, 1.5), (1500, 28, 1.5),
            (5000, 100, 1.5), (300, 6, 22.5), (2000, 2, 10.0)],
    "umi": [(10, 0.5, 1.5), (50, 3.5, 1.5), (209, 3.5, 1.5), (211, 3.5, 1.5), (800, 28, 1.5),
            (5000, 100, 1.5), (120, 60, 22.5)],
    "rma": [(10, 0.5, 1.5), (500, 0.7, 1.5), (1000, 3.5, 1.5), (4000, 3.5, 1.5), (5000, 30, 1.5),
            (2500, 6, 10.0), (200, 1.8, 1.0)],
}


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma"])
@pytest.mark.parametrize("los", [True, False])
def test_pathloss_matches_table_7_4_1_1(scenario, los):
    ref = REFERENCE[scenario][0 if los else 1]
    for d2d, fc, h_ut in POINTS[scenario]:
        expected = ref(d2d, fc, h_ut=h_ut)
        got = tr38901.pathloss_db(scenario, d2d, fc * 1e9, los, h_ut_m=h_ut)
        assert got == pytest.approx(expected, abs=0.01), (scenario, los, d2d, fc, h_ut)


def test_rma_los_reaches_10_km():
    assert tr38901.pathloss_db("rma", 10000, 3.5e9, True) == pytest.approx(rma_los(10000, 3.5), abs=0.01)


def test_rma_custom_bs_height():
    got = tr38901.pathloss_db("rma", 3000, 2e9, False, h_bs_m=60.0, h_ut_m=3.0)
    assert got == pytest.approx(rma_nlos(3000, 2, h_bs=60.0, h_ut=3.0), abs=0.01)


def test_uma_literal_value():
    # UMa LOS, d2D = 100 m, fc = 3.5 GHz: d3D = sqrt(100^2 + 23.5^2) = 102.724 m (< d'BP = 560 m)
    # PL1 = 28 + 22 log10(102.724) + 20 log10(3.5) = 28 + 44.2575 + 10.8814 = 83.14 dB
    assert tr38901.pathloss_db("uma", 100.0, 3.5e9, True) == pytest.approx(83.14, abs=0.01)


def test_pathloss_vectorized_with_los_array():
    d = np.array([50.0, 500.0, 3000.0, 50.0])
    los = np.array([True, False, True, False])
    got = tr38901.pathloss_db("umi", d, 28e9, los)
    expected = [umi_los(50, 28), umi_nlos(500, 28), umi_los(3000, 28), umi_nlos(50, 28)]
    np.testing.assert_allclose(got, expected, atol=0.01)


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma"])
def test_nlos_never_below_los(scenario):
    d = np.linspace(10, 5000, 2000)
    for fc in (0.5e9, 3.5e9, 28e9):
        assert np.all(tr38901.pathloss_db(scenario, d, fc, False)
                      >= tr38901.pathloss_db(scenario, d, fc, True))


def test_below_10_m_is_evaluated_at_10_m():
    assert tr38901.pathloss_db("uma", 0.0, 3.5e9, True) == pytest.approx(uma_los(10, 3.5), abs=0.01)


@pytest.mark.parametrize("call, pattern", [
    (lambda: tr38901.pathloss_db("uma", -1.0, 3.5e9, True), r"distance_2d_m=-1 .*\[0, inf\) m"),
    (lambda: tr38901.pathloss_db("uma", 6000.0, 3.5e9, True), r"distance_2d_m=6000 .*\[0, 5000\] m"),
    (lambda: tr38901.pathloss_db("rma", 6000.0, 3.5e9, False), r"distance_2d_m=6000 .*\[0, 5000\] m"),
    (lambda: tr38901.pathloss_db("rma", 3000.0, 40e9, True), r"frequency_hz=4e10 is outside the model\'s valid range \[5e8, 3e10\] Hz"),
    (lambda: tr38901.pathloss_db("umi", 100.0, 150e9, True), r"frequency_hz=1.5e11 .*\[5e8, 1e11\] Hz"),
    (lambda: tr38901.pathloss_db("uma", 100.0, 0.4e9, True), r"frequency_hz=4e8 "),
    (lambda: tr38901.pathloss_db("inh", 100.0, 3.5e9, True), r"scenario='inh' .*'rma', 'uma', 'umi'"),
    (lambda: tr38901.pathloss_db("uma", 100.0, 3.5e9, True, h_ut_m=30.0), r"h_ut_m=30 .*\[1.5, 22.5\] m"),
    (lambda: tr38901.pathloss_db("rma", 100.0, 3.5e9, True, h_bs_m=5.0), r"h_bs_m=5 .*\[10, 150\] m"),
    (lambda: tr38901.los_probability("uma", -3.0), r"distance_2d_m=-3"),
])
def test_bad_input_names_argument_value_and_range(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# ---- Table 7.4.2-1 LOS probability -----------------------------------------------------------
def p_los_ref(scenario, d, h_ut=1.5):
    if scenario == "rma":
        return 1.0 if d <= 10 else math.exp(-(d - 10) / 1000)
    if d <= 18:
        return 1.0
    if scenario == "umi":
        return 18 / d + math.exp(-d / 36) * (1 - 18 / d)
    c = 0.0 if h_ut <= 13 else ((h_ut - 13) / 10) ** 1.5
    return (18 / d + math.exp(-d / 63) * (1 - 18 / d)) * (1 + c * 5 / 4 * (d / 100) ** 3 * math.exp(-d / 150))


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma"])
def test_los_probability_matches_table_7_4_2_1(scenario):
    for d in (0.0, 5.0, 10.0, 18.0, 19.0, 50.0, 200.0, 1000.0, 5000.0):
        for h_ut in (1.5, 13.0, 17.0, 22.5):
            if scenario == "rma" and h_ut > 10:
                continue
            assert tr38901.los_probability(scenario, d, h_ut) == pytest.approx(
                p_los_ref(scenario, d, h_ut), abs=1e-9), (scenario, d, h_ut)


@pytest.mark.parametrize("scenario", ["uma", "umi", "rma"])
def test_los_probability_is_one_near_bs_and_falls_with_distance(scenario):
    d = np.linspace(0, 5000, 501)
    p = tr38901.los_probability(scenario, d)
    assert np.all(p[d <= 10.0] == 1.0)  # certain LOS next to the BS (10 m RMa, 18 m UMa/UMi)
    assert np.all(p[d >= 20.0] < 1.0)
    assert np.all(np.diff(p) <= 1e-12)  # never rises with distance
    assert p[-1] < 0.01


def test_sample_los_frequency():
    rng = np.random.default_rng(1)
    draws = tr38901.sample_los(rng, "umi", np.full(20000, 100.0))
    assert draws.mean() == pytest.approx(p_los_ref("umi", 100.0), abs=0.02)


# ---- shadow fading ------------------------------------------------------------------------
def test_shadow_fading_std_table_values():
    assert tr38901.shadow_fading_std_db("uma", True) == 4.0
    assert tr38901.shadow_fading_std_db("uma", False) == 6.0
    assert tr38901.shadow_fading_std_db("umi", True) == 4.0
    assert tr38901.shadow_fading_std_db("umi", False) == 7.82
    assert tr38901.shadow_fading_std_db("rma", False) == 8.0
    # RMa LOS: 4 dB up to dBP, 6 dB after; dBP(3.5 GHz, 35 m, 1.5 m) = 2 pi 35 1.5 3.5e9 / 3e8 = 3848 m
    got = tr38901.shadow_fading_std_db("rma", True, [1000.0, 5000.0], frequency_hz=3.5e9)
    np.testing.assert_array_equal(got, [4.0, 6.0])
    with pytest.raises(ValueError, match="distance_2d_m"):
        tr38901.shadow_fading_std_db("rma", True)


def test_breakpoint_distance_notes():
    assert tr38901.breakpoint_distance_m("uma", 3.5e9) == pytest.approx(4 * 24 * 0.5 * 3.5e9 / 3e8)
    assert tr38901.breakpoint_distance_m("rma", 3.5e9) == pytest.approx(2 * math.pi * 35 * 1.5 * 3.5e9 / 3e8)


def test_decorrelation_distances_table_7_5_6():
    assert tr38901.shadow_decorrelation_distance_m("uma", True) == 37.0
    assert tr38901.shadow_decorrelation_distance_m("uma", False) == 50.0
    assert tr38901.shadow_decorrelation_distance_m("umi", True) == 10.0
    assert tr38901.shadow_decorrelation_distance_m("umi", False) == 13.0
    assert tr38901.shadow_decorrelation_distance_m("rma", True) == 37.0
    assert tr38901.shadow_decorrelation_distance_m("rma", False) == 120.0
