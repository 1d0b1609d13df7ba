"""THz line-of-sight path loss: free-space spreading plus molecular (water-vapour) absorption.

Two absorption models, because no single closed form covers 100 GHz - 1 THz:

* ``"kokkoniemi"`` (100-450 GHz): the simplified line model of Kokkoniemi, Lehtomaki & Juntti,
  "A line-of-sight channel model for the 100-450 gigahertz frequency band", EURASIP JWCN 2021:88,
  Sec. 3: six Lorentz-like lines y1..y6 at 3.96, 6.11, 10.84, 12.68, 14.65 and
  14.94 cm^-1 (the 119 GHz oxygen line and the 183, 325, 380, 439 and 448 GHz water lines)
  plus a small polynomial g(f), all fitted to the HITRAN line-by-line response.
* ``"itu"`` (1 GHz - 1 THz): ITU-R P.676-12 Annex 1 line-by-line oxygen + water-vapour
  attenuation, computed by the ``itur`` package (not re-implemented here).

How they differ in the window bands: P.676 adds the dry-air (Debye / pressure-induced nitrogen)
term and its water-vapour line shapes carry the far-wing continuum, whereas the Kokkoniemi fit
keeps only six lines and a small polynomial. Between the lines - the 220-340 GHz window in
particular (220-310 GHz, below the 325 GHz line) - P.676 therefore gives roughly 2-3x the
absorption of the Kokkoniemi model (300 GHz, 25 C, 50 % RH: 1.76e-3 vs 0.68e-3 1/m, i.e. 7.7 vs
2.9 dB/km). On the line centres (183, 325, 380, 448 GHz) the two agree within about 10 %.
Use ``model="itu"`` for a conservative link budget.

Absorption coefficients are in 1/m for power, so the loss over d metres is exp(kappa d), i.e.
10 log10(e) kappa d dB (Kokkoniemi 2021: PL = (4 pi d f / c)^2 exp(kappa d)).
"""

from __future__ import annotations

import numpy as np

from ._checks import choice, in_range, positive, scalar_or_array
from .constants import SPEED_OF_LIGHT_MPS
from .freespace import fspl_db

#: Valid band of the Kokkoniemi 2021 model, Hz.
KOKKONIEMI_RANGE_HZ = (100e9, 450e9)
#: Valid band of ITU-R P.676-12 Annex 1 (line-by-line), Hz; itur does not refuse beyond it.
ITU_RANGE_HZ = (1e9, 1e12)
#: Band served by ``los_pathloss_db(model="auto")``: Kokkoniemi up to 450 GHz, ITU above.
THZ_RANGE_HZ = (100e9, 1e12)
#: Temperature range of Buck's saturation-vapour-pressure fit (Buck 1981, e_w over water), C.
TEMPERATURE_RANGE_C = (-20.0, 50.0)
DB_PER_NEPER_POWER = 10.0 * np.log10(np.e)  # 4.343 dB per unit of kappa*d

# Kokkoniemi 2021, Sec. 3: line-strength A, C, E, G, I, K and width B, D, F, H, J, L
# polynomials in the water-vapour volume mixing ratio mu; line centres c1..c6 in cm^-1.
_LINE_CENTRES_PER_CM = (3.96, 6.11, 10.84, 12.68, 14.65, 14.94)


def _kokkoniemi_lines(mu):
    one_minus = 1.0 - mu
    strengths = (
        5.159e-5 * one_minus * (-6.65e-5 * one_minus + 0.0159),  # A(mu)
        0.1925 * mu * (0.135 * mu + 0.0318),                      # C(mu)
        0.2251 * mu * (0.1314 * mu + 0.0297),                     # E(mu)
        2.053 * mu * (0.1717 * mu + 0.0306),                      # G(mu)
        0.177 * mu * (0.0832 * mu + 0.0213),                      # I(mu)
        2.146 * mu * (0.1206 * mu + 0.0277),                      # K(mu)
    )
    widths = (
        (-2.09e-4 * one_minus + 0.05) ** 2,                       # B(mu)
        (0.4241 * mu + 0.0998) ** 2,                              # D(mu)
        (0.4127 * mu + 0.0932) ** 2,                              # F(mu)
        (0.5394 * mu + 0.0961) ** 2,                              # H(mu)
        (0.2615 * mu + 0.0668) ** 2,                              # J(mu)
        (0.3789 * mu + 0.0871) ** 2,                              # L(mu)
    )
    return strengths, widths


def saturation_vapour_pressure_hpa(temperature_c, pressure_hpa=1013.25):
    """Saturation water-vapour pressure in hPa, Buck's equation as used by Kokkoniemi 2021 (eq. 15 of arXiv:2002.04918).

    p_w = 6.1121 (1.0007 + 3.46e-6 p) exp(17.502 T / (T + 240.97)), T in C, p in hPa
    (Buck 1981, "New equations for computing vapor pressure and enhancement factor").
    """
    t = in_range("temperature_c", temperature_c, *TEMPERATURE_RANGE_C, "C")
    p = positive("pressure_hpa", pressure_hpa, "hPa")
    return scalar_or_array(6.1121 * (1.0007 + 3.46e-6 * p) * np.exp(17.502 * t / (t + 240.97)))


def water_vapour_mixing_ratio(relative_humidity=0.5, temperature_c=25.0, pressure_hpa=1013.25):
    """Volume mixing ratio of water vapour mu = RH p_w(T, p) / p (Kokkoniemi 2021, eq. 14 of arXiv:2002.04918)."""
    rh = in_range("relative_humidity", relative_humidity, 0.0, 1.0, "(fraction, not %)")
    p = positive("pressure_hpa", pressure_hpa, "hPa")
    return scalar_or_array(rh * np.asarray(saturation_vapour_pressure_hpa(temperature_c, p)) / p)


def kokkoniemi_absorption_coefficient_per_m(frequency_hz, relative_humidity=0.5,
                                            temperature_c=25.0, pressure_hpa=1013.25):
    """Molecular absorption coefficient kappa (1/m), Kokkoniemi et al. 2021, 100-450 GHz.

    kappa(f, mu) = sum_i y_i(f, mu) + g(f, mu)
    y_i = S_i(mu) / (W_i(mu) + (f / (100 c) - c_i)^2), f/(100c) in cm^-1, i = 1..6
    g   = mu / 0.0157 * (2e-4 + 0.915e-112 f^9.42), f in Hz
    """
    f = in_range("frequency_hz", frequency_hz, *KOKKONIEMI_RANGE_HZ, "Hz")
    mu = np.asarray(water_vapour_mixing_ratio(relative_humidity, temperature_c, pressure_hpa))
    wavenumber_per_cm = f / (100.0 * SPEED_OF_LIGHT_MPS)
    strengths, widths = _kokkoniemi_lines(mu)
    kappa = mu / 0.0157 * (2e-4 + 0.915e-112 * f ** 9.42)
    for s, w, c in zip(strengths, widths, _LINE_CENTRES_PER_CM):
        kappa = kappa + s / (w + (wavenumber_per_cm - c) ** 2)
    return scalar_or_array(kappa)


def water_vapour_density_g_m3(relative_humidity=0.5, temperature_c=25.0, pressure_hpa=1013.25):
    """Water-vapour density rho = e * 216.7 / T (ITU-R P.453-14, e = rho T / 216.7), e = RH * e_s (Buck)."""
    rh = in_range("relative_humidity", relative_humidity, 0.0, 1.0, "(fraction, not %)")
    e = rh * np.asarray(saturation_vapour_pressure_hpa(temperature_c, pressure_hpa))
    return scalar_or_array(e * 216.7 / (np.asarray(temperature_c, dtype=float) + 273.15))


def itu_absorption_coefficient_per_m(frequency_hz, relative_humidity=0.5, temperature_c=25.0,
                                     pressure_hpa=1013.25):
    """Gaseous absorption coefficient kappa (1/m) from ITU-R P.676-12 Annex 1 via ``itur``.

    gamma (dB/km) = gamma_o + gamma_w = 0.1820 f (N''_ox(f) + N''_wv(f))          (P.676 eq. 1)
    with dry-air pressure p = p_total - e and e = rho T / 216.7; kappa = gamma / (1000 * 4.343).
    Evaluated once per distinct (f, RH, T, p) so a million links on one carrier cost one call.
    """
    from itur.models import itu676  # imported lazily: itur pulls in astropy

    f = in_range("frequency_hz", frequency_hz, *ITU_RANGE_HZ, "Hz")
    p_total = positive("pressure_hpa", pressure_hpa, "hPa")
    rho = np.asarray(water_vapour_density_g_m3(relative_humidity, temperature_c, p_total))
    t_k = np.asarray(temperature_c, dtype=float) + 273.15
    e = rho * t_k / 216.7
    f_b, p_dry, rho_b, t_b = np.broadcast_arrays(f, p_total - e, rho, t_k)
    rows = np.stack([f_b.ravel(), p_dry.ravel(), rho_b.ravel(), t_b.ravel()], axis=1)
    unique_rows, inverse = np.unique(rows, axis=0, return_inverse=True)
    gamma_db_per_km = np.array([
        float(np.asarray(itu676.gamma_exact(r[0] / 1e9, r[1], r[2], r[3]).value))
        for r in unique_rows])
    kappa = gamma_db_per_km[inverse.ravel()] / (1000.0 * DB_PER_NEPER_POWER)
    return scalar_or_array(kappa.reshape(f_b.shape))


MODELS = ("auto", "kokkoniemi", "itu")


def absorption_coefficient_per_m(frequency_hz, relative_humidity=0.5, temperature_c=25.0,
                                 pressure_hpa=1013.25, model="kokkoniemi"):
    """Molecular absorption coefficient kappa in 1/m (power).

    ``model="kokkoniemi"`` (default, 100-450 GHz, Kokkoniemi 2021), ``"itu"`` (1 GHz-1 THz,
    ITU-R P.676-12), or ``"auto"`` (Kokkoniemi up to 450 GHz, ITU above, up to 1 THz). See the
    module docstring for how the two differ in the window bands.
    """
    model = choice("model", model, MODELS)
    if model == "kokkoniemi":
        return kokkoniemi_absorption_coefficient_per_m(frequency_hz, relative_humidity,
                                                       temperature_c, pressure_hpa)
    if model == "itu":
        return itu_absorption_coefficient_per_m(frequency_hz, relative_humidity,
                                                temperature_c, pressure_hpa)
    f = in_range("frequency_hz", frequency_hz, *THZ_RANGE_HZ, "Hz")
    low = f <= KOKKONIEMI_RANGE_HZ[1]
    f_b, rh, t, p = np.broadcast_arrays(f, relative_humidity, temperature_c, pressure_hpa)
    kappa = np.empty(f_b.shape)
    low = np.broadcast_to(low, f_b.shape)
    if low.any():
        kappa[low] = kokkoniemi_absorption_coefficient_per_m(f_b[low], rh[low], t[low], p[low])
    if (~low).any():
        kappa[~low] = itu_absorption_coefficient_per_m(f_b[~low], rh[~low], t[~low], p[~low])
    return scalar_or_array(kappa)


def absorption_loss_db(distance_m, frequency_hz, relative_humidity=0.5, temperature_c=25.0,
                       pressure_hpa=1013.25, model="auto"):
    """Molecular absorption loss in dB over ``distance_m``: 10 log10(e) * kappa * d."""
    d = positive("distance_m", distance_m, "m")
    kappa = absorption_coefficient_per_m(frequency_hz, relative_humidity, temperature_c,
                                         pressure_hpa, model)
    return scalar_or_array(DB_PER_NEPER_POWER * np.asarray(kappa) * d)


def los_pathloss_db(distance_m, frequency_hz, relative_humidity=0.5, temperature_c=25.0,
                    pressure_hpa=1013.25, model="auto"):
    """THz LOS path loss in dB: Friis spreading + molecular absorption (Kokkoniemi 2021).

    PL = 20 log10(4 pi d f / c) + 10 log10(e) kappa(f) d. Valid 100 GHz - 1 THz with
    ``model="auto"``; frequencies outside the chosen model's band raise ``ValueError``.
    """
    absorption = absorption_loss_db(distance_m, frequency_hz, relative_humidity, temperature_c,
                                    pressure_hpa, model)
    return scalar_or_array(fspl_db(distance_m, frequency_hz) + np.asarray(absorption))
