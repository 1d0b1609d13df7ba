"""Link budget to rate: thermal noise, SNR and Shannon capacity, the last step of every link."""

from __future__ import annotations

import numpy as np

from ._checks import in_range, positive, scalar_or_array
from .constants import THERMAL_NOISE_DBM_PER_HZ


def noise_power_dbm(bandwidth_hz, noise_figure_db):
    """Receiver noise power in dBm: N = -174 dBm/Hz + 10 log10(B) + NF.

    -174 dBm/Hz is kT0 at 290 K (see ``constants.THERMAL_NOISE_DBM_PER_HZ``).
    """
    b = positive("bandwidth_hz", bandwidth_hz, "Hz")
    nf = in_range("noise_figure_db", noise_figure_db, 0.0, np.inf, "dB", high_open=True)
    return scalar_or_array(THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(b) + nf)


def snr_db(tx_power_dbm, pathloss_db, bandwidth_hz, noise_figure_db, gain_db=0.0):
    """Received SNR in dB: P_tx - PL + G - N(B, NF).

    ``gain_db`` collects everything else on the link (antenna/array gains, minus pointing loss,
    plus shadowing and fading in dB), so the chain ``pathloss -> ... -> SNR`` stays one sum.
    """
    p = np.asarray(tx_power_dbm, dtype=float)
    pl = np.asarray(pathloss_db, dtype=float)
    g = np.asarray(gain_db, dtype=float)
    return scalar_or_array(p - pl + g - noise_power_dbm(bandwidth_hz, noise_figure_db))


def shannon_rate_bps(bandwidth_hz, snr_db):
    """Shannon capacity in bit/s: C = B log2(1 + 10^(SNR/10)) (Shannon 1948, AWGN channel)."""
    b = positive("bandwidth_hz", bandwidth_hz, "Hz")
    snr_linear = np.power(10.0, np.asarray(snr_db, dtype=float) / 10.0)
    return scalar_or_array(b * np.log2(1.0 + snr_linear))
