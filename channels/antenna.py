"""Antenna/array gain and beam-pointing loss, including pointing error from UAV jitter.

Large (ultra-massive) arrays buy gain 10 log10 N but narrow the beam, so a platform that shakes
loses part of that gain; these functions put both sides in dB so they add onto the SNR.
"""

from __future__ import annotations

import numpy as np

from ._checks import choice, in_range, non_negative, positive, scalar_or_array

#: Max attenuation of the 3GPP element pattern, dB (TR 38.901 Table 7.3-1: A_max = SLA_V = 30).
POINTING_LOSS_MAX_DB = 30.0

#: Per-axis Gaussian angular jitter of a UAV body, rad (ASSUMED defaults, override per scenario):
#: a hovering multirotor ~1 mrad (order of the hovering fluctuations used by Dabiri, Sadough &
#: Khalighi, IEEE JSAC 36(9), 2018), a UAV in forward flight ten times that.
UAV_JITTER_STD_RAD = {"hovering": 1e-3, "flying": 1e-2}


def array_gain_db(num_elements):
    """Coherent beamforming gain of an N-element array in dB: 10 log10 N."""
    n = in_range("num_elements", num_elements, 1.0, np.inf, "", high_open=True)
    return scalar_or_array(10.0 * np.log10(n))


def upa_beamwidth_3db_rad(num_elements):
    """Half-power beamwidth (rad) of a square sqrt(N) x sqrt(N) array, lambda/2 spacing, broadside.

    Uniform linear array of M elements: HPBW = 2 asin(1.391 lambda / (pi M d)) (Balanis,
    Antenna Theory, 3rd ed., Table 6.1 broadside), with d = lambda/2 and M = sqrt(N) per axis;
    about 1.77 / sqrt(N) rad for large N.
    """
    n = in_range("num_elements", num_elements, 1.0, np.inf, "", high_open=True)
    m = np.sqrt(n)
    return scalar_or_array(2.0 * np.arcsin(np.minimum(1.391 * 2.0 / (np.pi * m), 1.0)))


def pointing_loss_db(error_rad, beamwidth_3db_rad):
    """Gain lost to a pointing error theta, dB: min(12 (theta / theta_3dB)^2, A_max = 30 dB).

    The parabolic main lobe of the 3GPP element/beam pattern, TR 38.901 Table 7.3-1
    (A(theta) = -min{12 ((theta - 90)/theta_3dB)^2, SLA_V}). Sign of the error does not matter.
    """
    err = np.abs(np.asarray(error_rad, dtype=float))
    bw = positive("beamwidth_3db_rad", beamwidth_3db_rad, "rad")
    return scalar_or_array(np.minimum(12.0 * (err / bw) ** 2, POINTING_LOSS_MAX_DB))


def draw_pointing_error_rad(rng, uav_state="hovering", jitter_std_rad=None, size=None):
    """Draw beam pointing errors (rad) caused by UAV body jitter.

    Azimuth and elevation jitter are independent N(0, sigma^2), so the total angular error
    sqrt(e_az^2 + e_el^2) is Rayleigh(sigma) (mean sigma sqrt(pi/2)). sigma defaults to
    ``UAV_JITTER_STD_RAD[uav_state]`` ("hovering" or "flying").
    """
    if jitter_std_rad is None:
        sigma = UAV_JITTER_STD_RAD[choice("uav_state", uav_state, UAV_JITTER_STD_RAD)]
    else:
        sigma = non_negative("jitter_std_rad", jitter_std_rad, "rad")
    return rng.rayleigh(sigma, size=size)
