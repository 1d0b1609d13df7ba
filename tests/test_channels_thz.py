"""THz absorption matches Kokkoniemi et al. 2021 (100-450 GHz) and ITU-R P.676 (via itur)."""

import math

import numpy as np
import pytest

from channels import thz

C = 299_792_458.0
DB_PER_NEPER = 10 * math.log10(math.e)


def kokkoniemi_kappa(f_hz, rh=0.5, t_c=25.0, p_hpa=1013.25):
    """Kokkoniemi, Lehtomaki, Juntti, EURASIP JWCN 2021:88, Sec. 3, written out."""
    # Buck: saturated water vapour pressure (hPa), then the volume mixing ratio mu
    p_w = 6.1121 * (1.0007 + 3.46e-6 * p_hpa) * math.exp(17.502 * t_c / (t_c + 240.97))
    mu = rh * p_w / p_hpa
    A = 5.159e-5 * (1 - mu) * (-6.65e-5 * (1 - mu) + 0.0159)
    B = (-2.09e-4 * (1 - mu) + 0.05) ** 2
    Cc = 0.1925 * mu * (0.135 * mu + 0.0318)
    D = (0.4241 * mu + 0.0998) ** 2
    E = 0.2251 * mu * (0.1314 * mu + 0.0297)
    F = (0.4127 * mu + 0.0932) ** 2
    G = 2.053 * mu * (0.1717 * mu + 0.0306)
    H = (0.5394 * mu + 0.0961) ** 2
    I = 0.177 * mu * (0.0832 * mu + 0.0213)
    J = (0.2615 * mu + 0.0668) ** 2
    K = 2.146 * mu * (0.1206 * mu + 0.0277)
    L = (0.3789 * mu + 0.0871) ** 2
    nu = f_hz / (100 * C)  # wavenumber, cm^-1
    y1 = A / (B + (nu - 3.96) ** 2)
    y2 = Cc / (D + (nu - 6.11) ** 2)
    y3 = E / (F + (nu - 10.84) ** 2)
    y4 = G / (H + (nu - 12.68) ** 2)
    y5 = I / (J + (nu - 14.65) ** 2)
    y6 = K / (L + (nu - 14.94) ** 2)
    g = mu / 0.0157 * (2e-4 + 0.915e-112 * f_hz ** 9.42)
    return y1 + y2 + y3 + y4 + y5 + y6 + g


@pytest.mark.parametrize("f_ghz", [100, 140, 183.3, 220, 300, 325, 380, 420, 450])
@pytest.mark.parametrize("rh, t_c", [(0.0, 25.0), (0.5, 25.0), (1.0, 25.0), (0.3, -20.0), (0.9, 50.0)])
def test_kokkoniemi_coefficient_matches_paper(f_ghz, rh, t_c):
    expected = kokkoniemi_kappa(f_ghz * 1e9, rh, t_c)
    got = thz.absorption_coefficient_per_m(f_ghz * 1e9, rh, t_c)
    assert got == pytest.approx(expected, rel=1e-9)
    # and the loss it implies over 1 km agrees to 0.01 dB
    assert thz.absorption_loss_db(1000.0, f_ghz * 1e9, rh, t_c, model="kokkoniemi") == pytest.approx(
        DB_PER_NEPER * expected * 1000.0, abs=0.01)


def test_kokkoniemi_dry_air_keeps_only_oxygen_line():
    # mu = 0: every water term vanishes, only y1 (119 GHz O2 line) remains
    f = 118.75e9
    nu = f / (100 * C)
    y1 = 5.159e-5 * (-6.65e-5 + 0.0159) / ((-2.09e-4 + 0.05) ** 2 + (nu - 3.96) ** 2)
    assert thz.absorption_coefficient_per_m(f, relative_humidity=0.0) == pytest.approx(y1, rel=1e-12)


@pytest.mark.parametrize("d, f_ghz", [(1.0, 100), (10.0, 300), (100.0, 300), (50.0, 380), (500.0, 450)])
def test_los_pathloss_is_friis_plus_absorption(d, f_ghz):
    f = f_ghz * 1e9
    expected = 20 * math.log10(4 * math.pi * d * f / C) + DB_PER_NEPER * kokkoniemi_kappa(f) * d
    assert thz.los_pathloss_db(d, f) == pytest.approx(expected, abs=0.01)


def itu_reference_db_per_km(f_hz, rh=0.5, t_c=25.0, p_hpa=1013.25):
    """ITU-R P.676-12 gaseous attenuation over a 1 km terrestrial path (itur, 'exact' mode),
    with rho from P.453 (e = RH e_s, rho = 216.7 e / T) and dry pressure p - e."""
    from itur.models import itu676
    e_s = 6.1121 * (1.0007 + 3.46e-6 * p_hpa) * math.exp(17.502 * t_c / (t_c + 240.97))
    e = rh * e_s
    t_k = t_c + 273.15
    rho = 216.7 * e / t_k
    att = itu676.gaseous_attenuation_terrestrial_path(1.0, f_hz / 1e9, 0.0, rho, p_hpa - e, t_k, "exact")
    return float(att.value)


@pytest.mark.parametrize("f_ghz, rh", [(500, 0.5), (650, 0.2), (850, 0.8), (1000, 0.5), (300, 0.5)])
def test_itu_coefficient_matches_p676(f_ghz, rh):
    expected_db_per_km = itu_reference_db_per_km(f_ghz * 1e9, rh)
    got = thz.itu_absorption_coefficient_per_m(f_ghz * 1e9, rh)
    assert got * DB_PER_NEPER * 1000.0 == pytest.approx(expected_db_per_km, abs=0.01)


def test_auto_model_switches_at_450_ghz():
    f = np.array([300e9, 450e9, 451e9, 900e9])
    got = thz.absorption_coefficient_per_m(f, model="auto")
    assert got[0] == pytest.approx(kokkoniemi_kappa(300e9), rel=1e-9)
    assert got[1] == pytest.approx(kokkoniemi_kappa(450e9), rel=1e-9)
    assert got[3] * DB_PER_NEPER * 1000 == pytest.approx(itu_reference_db_per_km(900e9), abs=0.01)
    assert thz.los_pathloss_db(10.0, 700e9) > thz.los_pathloss_db(10.0, 300e9)


def test_itu_gives_two_to_three_times_kokkoniemi_in_the_220_340_ghz_window():
    # Between the lines ITU-R P.676 (continuum + dry air) absorbs 2-3x more ...
    f = np.linspace(220e9, 310e9, 19)
    ratio = thz.itu_absorption_coefficient_per_m(f) / thz.absorption_coefficient_per_m(f)
    assert 2.0 <= ratio.mean() <= 3.0
    assert np.all((ratio > 2.0) & (ratio < 3.3))
    # ... while on the 325 GHz water line the two models agree within 10 %.
    at_line = thz.itu_absorption_coefficient_per_m(325.15e9) / thz.absorption_coefficient_per_m(325.15e9)
    assert at_line == pytest.approx(1.0, abs=0.1)


def test_more_humidity_more_absorption():
    k = thz.absorption_coefficient_per_m(300e9, np.array([0.1, 0.5, 0.9]))
    assert np.all(np.diff(k) > 0)


@pytest.mark.parametrize("call, pattern", [
    (lambda: thz.absorption_coefficient_per_m(5e11),
     r"frequency_hz=5e11 is outside the model's valid range \[1e11, 4.5e11\] Hz"),
    (lambda: thz.absorption_coefficient_per_m(90e9), r"frequency_hz=9e10 .*\[1e11, 4.5e11\] Hz"),
    (lambda: thz.los_pathloss_db(10.0, 1.2e12), r"frequency_hz=1.2e12 .*\[1e11, 1e12\] Hz"),
    (lambda: thz.los_pathloss_db(10.0, 600e9, model="kokkoniemi"), r"frequency_hz=6e11 .*\[1e11, 4.5e11\]"),
    (lambda: thz.itu_absorption_coefficient_per_m(2e12), r"frequency_hz=2e12 .*\[1e9, 1e12\] Hz"),
    (lambda: thz.los_pathloss_db(-5.0, 300e9), r"distance_m=-5 .*\(0, inf\) m"),
    (lambda: thz.los_pathloss_db(5.0, 300e9, relative_humidity=50), r"relative_humidity=50 .*\[0, 1\]"),
    (lambda: thz.los_pathloss_db(5.0, 300e9, temperature_c=80), r"temperature_c=80 .*\[-20, 50\] C"),
    (lambda: thz.los_pathloss_db(5.0, 300e9, model="hitran"), r"model='hitran'"),
])
def test_bad_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
