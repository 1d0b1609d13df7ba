"""The device ↔ UAV THz-ISAC link: the `RadioLink` interface over the `channels` THz chain.

Per link state, re-evaluated when the device and the access point have moved apart or together by
`reevaluate_distance_m` (3D, relative), when a pointing block ends, or when the device leaves:

* spreading + molecular absorption loss from the current 3D distance (`channels.thz.los_pathloss_db`,
  Kokkoniemi 2021 below 450 GHz, ITU-R P.676 above);
* array gain 10 log10 N of the access point's square array (`channels.antenna.array_gain_db`) plus
  the ground device's own antenna gain;
* pointing loss 12 (θ/θ3dB)² (`channels.antenna.pointing_loss_db`, beamwidth
  `upa_beamwidth_3db_rad(N)`) with θ drawn from the UAV's current body jitter
  (`channels.antenna.draw_pointing_error_rad` with `UavPath.jitter_std_rad(t)`: hovering vs flying);
  a static access point has no jitter. θ is held for `pointing_block_s`;
* the share of time or bandwidth spent sensing (`channels.isac.isac_tradeoff`): the flow gets the
  communication rate that is left, and each re-evaluation records the sensing SNR of the device
  (as the radar target at the same distance) in the trace (kind "sense").

There is no small-scale fading: a THz pencil beam is line of sight, its fluctuation is the pointing
error. Coverage, as for the 3GPP link, is the large-scale downlink SNR over the full band (no
pointing error, no sensing share) against `snr_threshold_db`.

Uplink: the device transmits with `device_tx_power_dbm` over its share, received through the
UAV's array (reciprocity: the same gains and pointing loss). While the UAV senses it cannot serve
either direction, so both directions lose the sensing share; in "bandwidth" mode the transmitter
keeps its power spectral density over the (1 − α) of its share that is left (isac_tradeoff's
flat-PSD split).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from channels import antenna, isac


@dataclass(frozen=True)
class ThzIsacSpec:
    """The THz-ISAC radio of one UAV (or mast) access point (see `cosim.scenario.ThzConfig`)."""

    frequency_hz: float = 300e9
    bandwidth_hz: float = 10e9          # per direction; the access point's media use this capacity
    num_elements: int = 1024            # UAV's square array
    tx_power_dbm: float = 20.0          # UAV
    device_tx_power_dbm: float = 10.0
    device_gain_db: float = 20.0        # ground device's antenna (a small horn / array)
    noise_figure_db: float = 10.0
    relative_humidity: float = 0.5
    temperature_c: float = 25.0
    sensing_fraction: float = 0.0       # share of time or bandwidth spent sensing
    isac_mode: str = "time"             # time | bandwidth
    rcs_m2: float = 1.0                 # radar cross-section of a sensed ground device
    frame_duration_s: float = 1e-3
    pointing_block_s: float = 0.1       # pointing error held this long
    snr_threshold_db: float = -5.0
    reevaluate_distance_m: float = 10.0


class ThzIsacLink:
    """One device ↔ THz-ISAC access point link; same interface as `RadioLink`."""

    def __init__(self, device, ap, spec: ThzIsacSpec, rng: np.random.Generator, on_sense=None):
        self.device, self.ap, self.spec, self.rng = device, ap, spec, rng
        self.on_sense = on_sense            # callback(link, t_s, sensing_snr_db, rate_bps, error_rad, distance_m)
        self._anchor = None                 # relative position (device − AP) at the last update
        self._distance_m = math.inf
        self._error_rad = 0.0
        self._block_end_s = -math.inf
        self._gone = False
        self._snr_ls_db = -math.inf

    # --- state ----------------------------------------------------------------------------------
    def _jitter_std_rad(self, t_s: float) -> float:
        mob = self.ap.mobility
        return float(mob.jitter_std_rad(t_s)) if hasattr(mob, "jitter_std_rad") else 0.0

    def _state(self, t_s: float) -> float:
        """Re-evaluate if due; returns until when the state holds (inf once gone)."""
        if self._gone:
            return math.inf
        pos = self.device.position_m(t_s)
        if pos is None:
            if t_s >= self.device.mobility.exit_time_s():
                self._gone = True
                self._distance_m, self._snr_ls_db = math.inf, -math.inf
                return math.inf
            self._anchor, self._snr_ls_db = None, -math.inf   # not there yet
            entry = getattr(self.device.mobility, "entry_time_s", lambda: math.inf)()
            return entry if entry > t_s else t_s + self.spec.pointing_block_s
        rel = np.asarray(pos, dtype=float) - np.asarray(self.ap.position_m(t_s), dtype=float)
        moved = math.inf if self._anchor is None else float(np.linalg.norm(rel - self._anchor))
        if moved >= self.spec.reevaluate_distance_m or t_s >= self._block_end_s:
            self._update(t_s, rel)
        speed = self.device.mobility.speed_mps(t_s) + self.ap.mobility.speed_mps(t_s)
        until = min(self._block_end_s, self.device.mobility.exit_time_s())
        for mob in (self.device.mobility, self.ap.mobility):   # a velocity change a model announces
            if hasattr(mob, "motion_change_s"):
                until = min(until, mob.motion_change_s(t_s))
        if speed > 0:
            left = self.spec.reevaluate_distance_m - float(np.linalg.norm(rel - self._anchor))
            until = min(until, t_s + max(left, 0.0) / speed)
        return until

    def _tradeoff(self, sensing_fraction: float, bandwidth_hz: float, tx_power_dbm: float, error_rad: float):
        s = self.spec
        return isac.isac_tradeoff(sensing_fraction, s.isac_mode, frequency_hz=s.frequency_hz,
                                  bandwidth_hz=bandwidth_hz, tx_power_dbm=tx_power_dbm,
                                  num_elements=s.num_elements, target_distance_m=self._distance_m,
                                  rcs_m2=s.rcs_m2, user_distance_m=self._distance_m, user_gain_db=s.device_gain_db,
                                  noise_figure_db=s.noise_figure_db, frame_duration_s=s.frame_duration_s,
                                  pointing_error_rad=error_rad, relative_humidity=s.relative_humidity,
                                  temperature_c=s.temperature_c)

    def _update(self, t_s: float, rel: np.ndarray) -> None:
        s = self.spec
        self._anchor = rel
        self._distance_m = max(float(np.linalg.norm(rel)), 1.0)
        self._error_rad = float(antenna.draw_pointing_error_rad(self.rng, jitter_std_rad=self._jitter_std_rad(t_s)))
        self._block_end_s = t_s + s.pointing_block_s
        self._snr_ls_db = float(self._tradeoff(0.0, s.bandwidth_hz, s.tx_power_dbm, 0.0).comm_snr_db)
        if self.on_sense is not None:
            full = self._tradeoff(s.sensing_fraction, s.bandwidth_hz, s.tx_power_dbm, self._error_rad)
            self.on_sense(self, t_s, float(full.sensing_snr_db), float(full.comm_rate_bps), self._error_rad,
                          self._distance_m)

    # --- what the medium asks -------------------------------------------------------------------
    def large_scale_snr_db(self, t_s: float, full_bandwidth_hz: float) -> float:
        """Downlink SNR over the full band with a perfectly pointed beam and no sensing share."""
        self._state(t_s)
        return self._snr_ls_db

    def in_coverage(self, t_s: float, full_bandwidth_hz: float) -> bool:
        return self.large_scale_snr_db(t_s, full_bandwidth_hz) >= self.spec.snr_threshold_db

    def next_change_s(self, t_s: float) -> float:
        return self._state(t_s)

    def tx_power_dbm(self, uplink: bool) -> float:
        return self.spec.device_tx_power_dbm if uplink else self.spec.tx_power_dbm

    def rate_bps(self, t_s: float, uplink: bool, share_hz: float, full_bandwidth_hz: float) -> tuple[float, float]:
        """(rate, valid_until): the communication rate over `share_hz` left after sensing."""
        until = self._state(t_s)
        if not self.in_coverage(t_s, full_bandwidth_hz):
            return 0.0, until
        if uplink:
            tx_dbm = self.spec.device_tx_power_dbm
        else:  # the UAV's power is spread over the band: a share gets its proportional part
            tx_dbm = self.spec.tx_power_dbm + 10.0 * math.log10(share_hz / full_bandwidth_hz)
        res = self._tradeoff(self.spec.sensing_fraction, share_hz, tx_dbm, self._error_rad)
        return float(res.comm_rate_bps), until
