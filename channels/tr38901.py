"""3GPP TR 38.901 (v17/v18) path loss, LOS probability and shadow fading for UMa, UMi and RMa.

The standard's large-scale models in vectorized numpy so a whole network's links are one call.
Equations are Table 7.4.1-1 (path loss, shadow-fading std), Table 7.4.2-1 (LOS probability) and
Table 7.5-6 Part-1 (shadow-fading decorrelation distance). Inside the formulas f_c is in GHz and
distances in m; breakpoint distances use f_c in Hz and c = 3.0e8 m/s as the table notes say.

Conventions chosen here (the table leaves them open):
* ``distance_2d_m`` below the table's 10 m minimum is evaluated at 10 m (the model has no near
  range); beyond the maximum (5 km, RMa LOS 10 km) it raises ``ValueError``.
* UMa/UMi effective environment height h_E = 1 m (Note 1). For UMa the table draws h_E at random
  when h_UT > 13 m; here h_E = 1 m always, which is the value for every h_UT <= 13 m.
* UMi is UMi-Street Canyon. The optional (simplified) NLOS formulas are not used.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import choice, in_range, non_negative, scalar_or_array
from .constants import SPEED_OF_LIGHT_TR38901_MPS

SCENARIOS = ("uma", "umi", "rma")

#: Default BS heights, m (Table 7.4.1-1 applicability column: UMa 25, UMi 10, RMa 35).
DEFAULT_H_BS_M = {"uma": 25.0, "umi": 10.0, "rma": 35.0}
#: Valid carrier range, Hz (Table 7.4.1-1 note: 0.5 GHz <= fc <= f_H, f_H = 30 GHz for RMa
#: and 100 GHz for the other scenarios).
FREQUENCY_RANGE_HZ = {"uma": (0.5e9, 100e9), "umi": (0.5e9, 100e9), "rma": (0.5e9, 30e9)}
#: UT height range, m (Table 7.4.1-1: UMa/UMi 1.5 <= h_UT <= 22.5; RMa 1 <= h_UT <= 10).
H_UT_RANGE_M = {"uma": (1.5, 22.5), "umi": (1.5, 22.5), "rma": (1.0, 10.0)}
#: BS height range, m. RMa: 10 <= h_BS <= 150 (Table 7.4.1-1). UMa/UMi fix h_BS (25/10 m); other
#: heights are accepted as an extrapolation, kept above h_E so the effective height stays > 0.
H_BS_RANGE_M = {"uma": (1.5, 150.0), "umi": (1.5, 150.0), "rma": (10.0, 150.0)}
#: Minimum 2D distance of every row of Table 7.4.1-1, m.
MIN_DISTANCE_2D_M = 10.0
#: Maximum 2D distance, m: 5 km everywhere except RMa LOS (PL2 row: up to 10 km).
MAX_DISTANCE_2D_M = 5000.0
MAX_DISTANCE_2D_RMA_LOS_M = 10000.0
#: Effective environment height for UMa/UMi breakpoint distance, m (Table 7.4.1-1 note 1).
H_E_M = 1.0
#: RMa average building height and street width, m (Table 7.4.1-1 RMa defaults).
RMA_BUILDING_HEIGHT_M = 5.0
RMA_STREET_WIDTH_M = 20.0
#: Shadow-fading std, dB (Table 7.4.1-1). RMa LOS: 4 dB before the breakpoint, 6 dB after.
SHADOW_FADING_STD_DB = {
    ("uma", True): 4.0, ("uma", False): 6.0,
    ("umi", True): 4.0, ("umi", False): 7.82,
    ("rma", True): 4.0, ("rma", False): 8.0,
}
SHADOW_FADING_STD_RMA_LOS_AFTER_BP_DB = 6.0
#: Shadow-fading decorrelation distance, m (Table 7.5-6 Part-1, "SF correlation distance").
SHADOW_DECORRELATION_DISTANCE_M = {
    ("uma", True): 37.0, ("uma", False): 50.0,
    ("umi", True): 10.0, ("umi", False): 13.0,
    ("rma", True): 37.0, ("rma", False): 120.0,
}
#: LOS/NLOS-state correlation distance, m (Table 7.6.3.1-2, spatial consistency).
LOS_STATE_DECORRELATION_DISTANCE_M = {"uma": 50.0, "umi": 50.0, "rma": 60.0}
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _scenario(scenario: str) -> str:
    return choice("scenario", scenario, SCENARIOS)


def _heights(sc: str, h_bs_m, h_ut_m):
    h_bs = DEFAULT_H_BS_M[sc] if h_bs_m is None else h_bs_m
    h_bs = in_range("h_bs_m", h_bs, *H_BS_RANGE_M[sc], "m")
    h_ut = in_range("h_ut_m", h_ut_m, *H_UT_RANGE_M[sc], "m")
    return h_bs, h_ut


def breakpoint_distance_m(scenario, frequency_hz, h_bs_m=None, h_ut_m=1.5):
    """Breakpoint distance in m (Table 7.4.1-1 notes 1 and 5).

    UMa/UMi: d'_BP = 4 h'_BS h'_UT f_c / c with h' = h - h_E, h_E = 1 m (note 1).
    RMa:     d_BP = 2 pi h_BS h_UT f_c / c (note 5). f_c in Hz, c = 3.0e8 m/s.
    """
    sc = _scenario(scenario)
    f = in_range("frequency_hz", frequency_hz, *FREQUENCY_RANGE_HZ[sc], "Hz")
    h_bs, h_ut = _heights(sc, h_bs_m, h_ut_m)
    return scalar_or_array(_breakpoint(sc, f, h_bs, h_ut))


def _breakpoint(sc, f_hz, h_bs, h_ut):
    c = SPEED_OF_LIGHT_TR38901_MPS
    if sc == "rma":
        return 2.0 * np.pi * h_bs * h_ut * f_hz / c
    return 4.0 * (h_bs - H_E_M) * (h_ut - H_E_M) * f_hz / c


def _rma_pl1(d3d, fc_ghz, h=RMA_BUILDING_HEIGHT_M):
    # Table 7.4.1-1 RMa LOS PL1 = 20log10(40 pi d3D fc / 3) + min(0.03 h^1.72, 10) log10(d3D)
    #                            - min(0.044 h^1.72, 14.77) + 0.002 log10(h) d3D
    return (20.0 * np.log10(40.0 * np.pi * d3d * fc_ghz / 3.0)
            + min(0.03 * h ** 1.72, 10.0) * np.log10(d3d)
            - min(0.044 * h ** 1.72, 14.77)
            + 0.002 * np.log10(h) * d3d)


def _pathloss_los_nlos(sc, d2d, d3d, f_hz, h_bs, h_ut):
    """Both LOS and NLOS path loss (dB) for the same geometry; NLOS already max'ed with LOS."""
    fc = f_hz / 1e9
    d_bp = _breakpoint(sc, f_hz, h_bs, h_ut)
    if sc == "uma":
        # Table 7.4.1-1 UMa LOS: PL1 = 28.0 + 22 log10(d3D) + 20 log10(fc)   (10 m <= d2D <= d'BP)
        #                        PL2 = 28.0 + 40 log10(d3D) + 20 log10(fc)
        #                              - 9 log10(d'BP^2 + (hBS - hUT)^2)    (d'BP <= d2D <= 5 km)
        pl1 = 28.0 + 22.0 * np.log10(d3d) + 20.0 * np.log10(fc)
        pl2 = (28.0 + 40.0 * np.log10(d3d) + 20.0 * np.log10(fc)
               - 9.0 * np.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))
        los = np.where(d2d <= d_bp, pl1, pl2)
        # UMa NLOS: PL' = 13.54 + 39.08 log10(d3D) + 20 log10(fc) - 0.6 (hUT - 1.5)
        nlos_prime = 13.54 + 39.08 * np.log10(d3d) + 20.0 * np.log10(fc) - 0.6 * (h_ut - 1.5)
    elif sc == "umi":
        # Table 7.4.1-1 UMi-Street Canyon LOS: PL1 = 32.4 + 21 log10(d3D) + 20 log10(fc)
        #                                      PL2 = 32.4 + 40 log10(d3D) + 20 log10(fc)
        #                                            - 9.5 log10(d'BP^2 + (hBS - hUT)^2)
        pl1 = 32.4 + 21.0 * np.log10(d3d) + 20.0 * np.log10(fc)
        pl2 = (32.4 + 40.0 * np.log10(d3d) + 20.0 * np.log10(fc)
               - 9.5 * np.log10(d_bp ** 2 + (h_bs - h_ut) ** 2))
        los = np.where(d2d <= d_bp, pl1, pl2)
        # UMi NLOS: PL' = 35.3 log10(d3D) + 22.4 + 21.3 log10(fc) - 0.3 (hUT - 1.5)
        nlos_prime = 35.3 * np.log10(d3d) + 22.4 + 21.3 * np.log10(fc) - 0.3 * (h_ut - 1.5)
    else:
        # Table 7.4.1-1 RMa LOS: PL1 as in _rma_pl1 (10 m <= d2D <= dBP);
        #                        PL2 = PL1(dBP) + 40 log10(d3D / dBP) (dBP <= d2D <= 10 km)
        pl1 = _rma_pl1(d3d, fc)
        pl2 = _rma_pl1(d_bp, fc) + 40.0 * np.log10(d3d / d_bp)
        los = np.where(d2d <= d_bp, pl1, pl2)
        # RMa NLOS: PL' = 161.04 - 7.1 log10(W) + 7.5 log10(h) - (24.37 - 3.7 (h/hBS)^2) log10(hBS)
        #                 + (43.42 - 3.1 log10(hBS)) (log10(d3D) - 3) + 20 log10(fc)
        #                 - (3.2 (log10(11.75 hUT))^2 - 4.97)
        w, h = RMA_STREET_WIDTH_M, RMA_BUILDING_HEIGHT_M
        nlos_prime = (161.04 - 7.1 * np.log10(w) + 7.5 * np.log10(h)
                      - (24.37 - 3.7 * (h / h_bs) ** 2) * np.log10(h_bs)
                      + (43.42 - 3.1 * np.log10(h_bs)) * (np.log10(d3d) - 3.0)
                      + 20.0 * np.log10(fc)
                      - (3.2 * np.log10(11.75 * h_ut) ** 2 - 4.97))
    # All three scenarios: PL_NLOS = max(PL_LOS, PL'_NLOS).
    return los, np.maximum(los, nlos_prime)


def pathloss_db(scenario, distance_2d_m, frequency_hz, los, h_bs_m=None, h_ut_m=1.5):
    """Basic path loss in dB (no shadowing) per TR 38.901 Table 7.4.1-1.

    ``los`` is a bool or a boolean array broadcast against the distances. d_3D is computed from
    d_2D and the antenna heights: d_3D = sqrt(d_2D^2 + (h_BS - h_UT)^2) (Figure 7.4.1-1).
    ``h_bs_m=None`` takes the scenario default (UMa 25 m, UMi 10 m, RMa 35 m).
    """
    sc = _scenario(scenario)
    f = in_range("frequency_hz", frequency_hz, *FREQUENCY_RANGE_HZ[sc], "Hz")
    h_bs, h_ut = _heights(sc, h_bs_m, h_ut_m)
    los_mask = np.asarray(los, dtype=bool)
    d2d = non_negative("distance_2d_m", distance_2d_m, "m")
    d2d, los_mask = np.broadcast_arrays(d2d, los_mask)
    max_d = np.where(los_mask & (sc == "rma"), MAX_DISTANCE_2D_RMA_LOS_M, MAX_DISTANCE_2D_M)
    if (d2d > max_d).any():
        bad = d2d > max_d
        raise ValueError(
            f"distance_2d_m={d2d[bad].flat[0]:g} is outside the model's valid range "
            f"[0, {max_d[bad].flat[0]:g}] m for scenario {sc!r} "
            f"({'LOS' if los_mask[bad].flat[0] else 'NLOS'}); "
            f"distances below {MIN_DISTANCE_2D_M:g} m are evaluated at {MIN_DISTANCE_2D_M:g} m")
    d2d = np.maximum(d2d, MIN_DISTANCE_2D_M)
    d3d = np.sqrt(d2d ** 2 + (h_bs - h_ut) ** 2)
    pl_los, pl_nlos = _pathloss_los_nlos(sc, d2d, d3d, f, h_bs, h_ut)
    return scalar_or_array(np.where(los_mask, pl_los, pl_nlos))


def los_probability(scenario, distance_2d_m, h_ut_m=1.5):
    """Probability that a UT at 2D distance d_2D has line of sight (TR 38.901 Table 7.4.2-1).

    RMa: 1 for d2D <= 10 m, else exp(-(d2D - 10)/1000).
    UMi-Street Canyon: 1 for d2D <= 18 m, else 18/d2D + exp(-d2D/36) (1 - 18/d2D).
    UMa: 1 for d2D <= 18 m, else [18/d2D + exp(-d2D/63)(1 - 18/d2D)]
         * (1 + C'(hUT) 5/4 (d2D/100)^3 exp(-d2D/150)),
         C'(hUT) = 0 for hUT <= 13 m, ((hUT - 13)/10)^1.5 for 13 m < hUT <= 23 m.
    """
    sc = _scenario(scenario)
    d = non_negative("distance_2d_m", distance_2d_m, "m")
    if sc == "rma":
        p = np.exp(-(d - 10.0) / 1000.0)
        return scalar_or_array(np.where(d <= 10.0, 1.0, p))
    h_ut = in_range("h_ut_m", h_ut_m, 1.0, 23.0, "m")
    d_safe = np.maximum(d, 18.0)  # avoids 18/0; the d <= 18 m branch is 1 anyway
    if sc == "umi":
        p = 18.0 / d_safe + np.exp(-d_safe / 36.0) * (1.0 - 18.0 / d_safe)
    else:
        c_prime = np.where(h_ut <= 13.0, 0.0, (np.maximum(h_ut - 13.0, 0.0) / 10.0) ** 1.5)
        p = ((18.0 / d_safe + np.exp(-d_safe / 63.0) * (1.0 - 18.0 / d_safe))
             * (1.0 + c_prime * 1.25 * (d_safe / 100.0) ** 3 * np.exp(-d_safe / 150.0)))
    return scalar_or_array(np.where(d <= 18.0, 1.0, p))


def shadow_fading_std_db(scenario, los, distance_2d_m=None, frequency_hz=None,
                         h_bs_m=None, h_ut_m=1.5):
    """Log-normal shadow-fading standard deviation in dB (TR 38.901 Table 7.4.1-1, sigma_SF).

    UMa 4 (LOS) / 6 (NLOS); UMi 4 / 7.82; RMa NLOS 8. RMa LOS is 4 dB up to the breakpoint
    distance and 6 dB beyond it, so for RMa LOS pass ``distance_2d_m`` and ``frequency_hz``.
    """
    sc = _scenario(scenario)
    los_mask = np.asarray(los, dtype=bool)
    std = np.where(los_mask, SHADOW_FADING_STD_DB[(sc, True)], SHADOW_FADING_STD_DB[(sc, False)])
    if sc == "rma" and los_mask.any():
        if distance_2d_m is None or frequency_hz is None:
            raise ValueError(
                "distance_2d_m=None is outside the model's valid range: RMa LOS shadow fading is "
                "4 dB before the breakpoint and 6 dB after, so distance_2d_m (>= 0 m) and "
                "frequency_hz ([5e8, 3e10] Hz) are required")
        d = non_negative("distance_2d_m", distance_2d_m, "m")
        f = in_range("frequency_hz", frequency_hz, *FREQUENCY_RANGE_HZ[sc], "Hz")
        h_bs, h_ut = _heights(sc, h_bs_m, h_ut_m)
        los_std = np.where(d <= _breakpoint(sc, f, h_bs, h_ut),
                           SHADOW_FADING_STD_DB[(sc, True)], SHADOW_FADING_STD_RMA_LOS_AFTER_BP_DB)
        std = np.where(los_mask, los_std, std)
    elif distance_2d_m is not None:
        d = non_negative("distance_2d_m", distance_2d_m, "m")
        std = std * np.ones_like(d)
    return scalar_or_array(std)


def shadow_decorrelation_distance_m(scenario, los):
    """Shadow-fading decorrelation distance in m (TR 38.901 Table 7.5-6 Part-1).

    UMa 37 (LOS) / 50 (NLOS); UMi 10 / 13; RMa 37 / 120.
    """
    sc = _scenario(scenario)
    los_mask = np.asarray(los, dtype=bool)
    return scalar_or_array(np.where(los_mask, SHADOW_DECORRELATION_DISTANCE_M[(sc, True)],
                                    SHADOW_DECORRELATION_DISTANCE_M[(sc, False)]))


def sample_los(rng, scenario, distance_2d_m, h_ut_m=1.5):
    """Draw LOS/NLOS states (bool array) with the Table 7.4.2-1 probability."""
    p = np.asarray(los_probability(scenario, distance_2d_m, h_ut_m))
    return scalar_or_array(rng.random(p.shape) < p)


def los_state_decorrelation_distance_m(scenario):
    """Correlation distance of the LOS/NLOS state in m (TR 38.901 Table 7.6.3.1-2): UMa 50, UMi 50, RMa 60."""
    return LOS_STATE_DECORRELATION_DISTANCE_M[_scenario(scenario)]


def los_from_gaussian(scenario, distance_2d_m, gaussian, h_ut_m=1.5):
    """Spatially consistent LOS state (TR 38.901 §7.6.3.3, hard LOS state): LOS where a uniform
    variable u is below Pr_LOS(d_2D) of Table 7.4.2-1, with u = Phi(g) for a standard normal g
    that is spatially correlated over ``los_state_decorrelation_distance_m`` (e.g. a Gauss-Markov
    process along the path, ``channels.shadowing.gauss_markov_next``). Independent g: ``sample_los``'s law."""
    p = np.asarray(los_probability(scenario, distance_2d_m, h_ut_m))
    u = 0.5 * np.asarray(_ERFC(-np.asarray(gaussian, dtype=float) / math.sqrt(2.0)), dtype=float)   # Phi(g)
    return scalar_or_array(u < p)
