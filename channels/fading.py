"""Small-scale fading power gains and the Doppler clock that says when to redraw them.

Gains are unit-mean linear power gains |h|^2 (multiply the received power, or add
10 log10(gain) to the SNR in dB). ``rng`` is always a ``numpy.random.Generator`` so a scenario
seed reproduces every draw. ``coherence_time_s`` tells a moving node how often its fading
sample must be redrawn.
"""

from __future__ import annotations

import numpy as np

from ._checks import in_range, non_negative, positive, scalar_or_array
from .constants import SPEED_OF_LIGHT_MPS

#: Coherence-time constant: Tc = 9/(16 pi f_D) ~= 0.423 / f_D (Rappaport, Wireless
#: Communications, 2nd ed., eq. 5.40.c: geometric mean of 1/f_D and 9/(16 pi f_D)).
COHERENCE_TIME_CONSTANT = np.sqrt(9.0 / (16.0 * np.pi))


def rayleigh_power_gain(rng, size=None):
    """Rayleigh fading power gain: |h|^2 with h ~ CN(0, 1), i.e. Exponential(1), mean 1."""
    return rng.exponential(1.0, size=size)


def rician_power_gain(rng, k_factor, size=None):
    """Rician fading power gain with linear K factor (LOS-to-scattered power ratio), mean 1.

    h = sqrt(K/(K+1)) + sqrt(1/(K+1)) CN(0, 1), so 2(K+1)|h|^2 is non-central chi-square with
    2 degrees of freedom and non-centrality 2K (Simon & Alouini, Digital Communication over
    Fading Channels, 2nd ed., §2.2.1.3). K = 0 is Rayleigh.
    """
    k = in_range("k_factor", k_factor, 0.0, np.inf, "(linear)", high_open=True)
    if size is None:
        size = k.shape or None
    chi2 = rng.noncentral_chisquare(2.0, 2.0 * k, size=size)  # nonc = 0 is plain chi-square
    return scalar_or_array(chi2 / (2.0 * (k + 1.0)))


def nakagami_power_gain(rng, m, size=None):
    """Nakagami-m fading power gain, mean 1: |h|^2 ~ Gamma(shape=m, scale=1/m), m >= 1/2.

    (Nakagami 1960; Simon & Alouini §2.2.1.4). m = 1 is Rayleigh; m -> inf is no fading.
    """
    m_arr = in_range("m", m, 0.5, np.inf, "", high_open=True)
    if size is None:
        size = m_arr.shape or None
    return scalar_or_array(rng.gamma(m_arr, 1.0 / m_arr, size=size))


def doppler_hz(speed_mps, frequency_hz):
    """Maximum Doppler shift f_D = v f / c in Hz."""
    v = non_negative("speed_mps", speed_mps, "m/s")
    f = positive("frequency_hz", frequency_hz, "Hz")
    return scalar_or_array(v * f / SPEED_OF_LIGHT_MPS)


def coherence_time_s(speed_mps, frequency_hz):
    """Channel coherence time in s: Tc ~= 0.423 / f_D (Rappaport eq. 5.40.c).

    A node standing still (f_D = 0) has an infinite coherence time: its fading never changes.
    """
    fd = np.asarray(doppler_hz(speed_mps, frequency_hz), dtype=float)
    with np.errstate(divide="ignore"):
        tc = np.where(fd > 0, COHERENCE_TIME_CONSTANT / np.where(fd > 0, fd, 1.0), np.inf)
    return scalar_or_array(tc)
