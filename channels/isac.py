"""THz integrated sensing and communication (ISAC) from a UAV: one split, both sides' numbers.

A UAV with an ultra-massive array spends a fraction ``alpha`` of its time or of its bandwidth
on monostatic sensing and the rest on a downlink. ``isac_tradeoff`` returns, for a given split
(or an array of splits, to sweep it), the sensing SNR from the radar equation with two-way THz
absorption, the range resolution c / (2 B_sensing), and the communication rate left over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import antenna, thz
from ._checks import choice, in_range, positive
from .constants import SPEED_OF_LIGHT_MPS, THERMAL_NOISE_DBM_PER_HZ
from .rate import shannon_rate_bps

MODES = ("time", "bandwidth")


@dataclass(frozen=True)
class IsacResult:
    """Both sides of one sensing/communication split (arrays broadcast over the inputs)."""

    sensing_fraction: np.ndarray
    sensing_snr_db: np.ndarray        # matched-filter SNR over the sensing dwell
    range_resolution_m: np.ndarray    # c / (2 B_sensing)
    comm_rate_bps: np.ndarray         # frame-averaged Shannon rate of the downlink
    comm_snr_db: np.ndarray
    sensing_bandwidth_hz: np.ndarray
    sensing_time_s: np.ndarray


def radar_snr_db(tx_power_dbm, gain_tx_db, gain_rx_db, frequency_hz, rcs_m2, distance_m,
                 dwell_time_s, noise_figure_db, extra_loss_db=0.0, relative_humidity=0.5,
                 temperature_c=25.0):
    """Monostatic radar SNR (dB) after coherent integration over ``dwell_time_s``.

    Radar range equation in energy form, E = P_t T (Richards, Fundamentals of Radar Signal
    Processing, 2nd ed., §2.2; Skolnik, Introduction to Radar Systems, 3rd ed., ch. 2):
        SNR = P_t G_t G_r lambda^2 sigma T / ((4 pi)^3 R^4 k T0 F) * exp(-2 kappa R) / L
    i.e. the per-sample SNR P_r / (k T0 F B) times the time-bandwidth product B T. The factor
    exp(-2 kappa R) is the two-way molecular absorption (``thz.absorption_coefficient_per_m``,
    model "auto"), so ``frequency_hz`` must lie in 100 GHz - 1 THz.
    """
    r = positive("distance_m", distance_m, "m")
    sigma = positive("rcs_m2", rcs_m2, "m^2")
    t = in_range("dwell_time_s", dwell_time_s, 0.0, np.inf, "s", high_open=True)
    f = np.asarray(frequency_hz, dtype=float)
    wavelength_m = SPEED_OF_LIGHT_MPS / f
    two_way_absorption_db = 2.0 * np.asarray(thz.absorption_loss_db(
        r, f, relative_humidity, temperature_c, model="auto"))
    with np.errstate(divide="ignore"):
        return (np.asarray(tx_power_dbm) + gain_tx_db + gain_rx_db
                + 20.0 * np.log10(wavelength_m) + 10.0 * np.log10(sigma) + 10.0 * np.log10(t)
                - 30.0 * np.log10(4.0 * np.pi) - 40.0 * np.log10(r)
                - THERMAL_NOISE_DBM_PER_HZ - noise_figure_db
                - two_way_absorption_db - extra_loss_db)


def isac_tradeoff(sensing_fraction, mode="time", *, frequency_hz=300e9, bandwidth_hz=10e9,
                  tx_power_dbm=20.0, num_elements=1024, target_distance_m=100.0, rcs_m2=1.0,
                  user_distance_m=100.0, user_gain_db=20.0, noise_figure_db=10.0,
                  frame_duration_s=1e-3, pointing_error_rad=0.0, beamwidth_3db_rad=None,
                  relative_humidity=0.5, temperature_c=25.0) -> IsacResult:
    """Sensing and communication performance of a THz UAV for a time or bandwidth split.

    mode="time": sensing uses all B for alpha T_frame; the downlink uses all B for the rest.
    mode="bandwidth": sensing uses alpha B for the whole frame with power alpha P_t (flat PSD);
    the downlink uses (1 - alpha) B with (1 - alpha) P_t. With a flat PSD both modes give the
    same sensing energy and the same downlink rate (1 - alpha) B log2(1 + SNR); they differ in
    range resolution, c / (2 B) vs c / (2 alpha B) - the knob a scenario sweeps.

    The UAV's array (``num_elements``, gain 10 log10 N, beamwidth of a square lambda/2 array
    unless ``beamwidth_3db_rad`` is given) transmits and receives the radar echo (pointing loss
    counted twice) and transmits the downlink (once). ``pointing_error_rad`` can be a draw from
    ``antenna.draw_pointing_error_rad`` (hovering vs flying jitter).
    """
    mode = choice("mode", mode, MODES)
    alpha = in_range("sensing_fraction", sensing_fraction, 0.0, 1.0, "")
    b = positive("bandwidth_hz", bandwidth_hz, "Hz")
    frame = positive("frame_duration_s", frame_duration_s, "s")
    f = in_range("frequency_hz", frequency_hz, *thz.THZ_RANGE_HZ, "Hz")
    array_gain = np.asarray(antenna.array_gain_db(num_elements))
    bw3 = antenna.upa_beamwidth_3db_rad(num_elements) if beamwidth_3db_rad is None \
        else beamwidth_3db_rad
    pointing_db = np.asarray(antenna.pointing_loss_db(pointing_error_rad, bw3))

    with np.errstate(divide="ignore"):
        if mode == "time":
            sensing_bw, sensing_time = b * np.ones_like(alpha), alpha * frame
            sensing_power_dbm = tx_power_dbm * np.ones_like(alpha)
            comm_bw, comm_power_dbm = b * np.ones_like(alpha), tx_power_dbm * np.ones_like(alpha)
            comm_time_share = 1.0 - alpha
        else:
            sensing_bw, sensing_time = alpha * b, frame * np.ones_like(alpha)
            sensing_power_dbm = tx_power_dbm + 10.0 * np.log10(alpha)
            comm_bw = (1.0 - alpha) * b
            comm_power_dbm = tx_power_dbm + 10.0 * np.log10(1.0 - alpha)
            comm_time_share = np.ones_like(alpha)

        sensing_snr = radar_snr_db(sensing_power_dbm, array_gain, array_gain, f, rcs_m2,
                                   target_distance_m, sensing_time, noise_figure_db,
                                   extra_loss_db=2.0 * pointing_db,
                                   relative_humidity=relative_humidity,
                                   temperature_c=temperature_c)
        sensing_snr = np.where(alpha > 0, sensing_snr, -np.inf)
        has_sensing_bw = sensing_bw > 0
        range_resolution = np.where(  # c / (2 B_sensing)
            has_sensing_bw,
            SPEED_OF_LIGHT_MPS / (2.0 * np.where(has_sensing_bw, sensing_bw, 1.0)), np.inf)

        has_comm_bw = comm_bw > 0
        safe_comm_bw = np.where(has_comm_bw, comm_bw, 1.0)
        pathloss = np.asarray(thz.los_pathloss_db(user_distance_m, f, relative_humidity,
                                                  temperature_c))
        noise_dbm = THERMAL_NOISE_DBM_PER_HZ + 10.0 * np.log10(safe_comm_bw) + noise_figure_db
        comm_snr = comm_power_dbm - pathloss + array_gain + user_gain_db - pointing_db - noise_dbm
        comm_snr = np.where(has_comm_bw, comm_snr, -np.inf)
        rate = comm_time_share * has_comm_bw * shannon_rate_bps(safe_comm_bw, comm_snr)

    return IsacResult(sensing_fraction=alpha, sensing_snr_db=sensing_snr,
                      range_resolution_m=range_resolution, comm_rate_bps=rate,
                      comm_snr_db=comm_snr, sensing_bandwidth_hz=sensing_bw,
                      sensing_time_s=sensing_time)
