"""The device ↔ UAV THz-ISAC link: the `RadioLink` interface over the `channels` THz chain.

Per link state, one per pointing block: blocks of `pointing_block_s` on a fixed grid in time, each
evaluated at its start and drawn from its own counter-based seed (`channel_lattice.block_draw`), so the
link at time t is the same whoever asked before (common random numbers across a compare). At the
default 0.1 s blocks, the geometry moves less than `reevaluate_distance_m` within a block below 100 m/s:

* spreading + molecular absorption loss from the current 3D distance (`channels.thz.los_pathloss_db`,
  Kokkoniemi 2021 below 450 GHz, ITU-R P.676 above);
* array gain 10 log10 N of the access point's square array (`channels.antenna.array_gain_db`) plus
  the ground device's own antenna gain;
* pointing loss 12 (θ/θ3dB)² (`channels.antenna.pointing_loss_db`, beamwidth
  `upa_beamwidth_3db_rad(N)`) with θ drawn from the UAV's current body jitter
  (`channels.antenna.draw_pointing_error_rad` with `UavPath.jitter_std_rad(t)`: hovering vs flying);
  a static access point has no jitter. θ is held for the block;
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

The link takes the network's config (`cosim.world.network.NetworkConfig`): its `thz` radio
(`ThzConfig`), its `isac` split (`IsacConfig`), and the coverage threshold and re-evaluation
distance every link of the network shares.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from channels import antenna, isac

from ..config import Strict
from .channel_lattice import block_draw


class ThzConfig(Strict):
    """The THz radio of `thz-isac` access points."""

    frequency_hz: float = Field(300e9, ge=100e9, le=1e12, description="carrier, 100 GHz - 1 THz")
    bandwidth_hz: float = Field(10e9, gt=0, description="per direction, of each thz-isac access point")
    num_elements: int = Field(1024, ge=1, description="access point's (UAV's) square array")
    tx_power_dbm: float = Field(20.0, le=60, description="access point (UAV)")
    device_tx_power_dbm: float = Field(10.0, le=60, description="ground device's transmit power (uplink)")
    device_gain_db: float = Field(20.0, description="ground device's antenna gain (a small horn / array)")
    noise_figure_db: float = Field(10.0, ge=0, description="receiver noise figure")
    relative_humidity: float = Field(0.5, ge=0, le=1, description="fraction, not %")
    temperature_c: float = Field(25.0, ge=-20, le=50, description="air temperature of the molecular-absorption model")
    pointing_block_s: float = Field(0.1, gt=0, description="pointing error redrawn this often")


class IsacConfig(Strict):
    """How much of its time or band a thz-isac access point spends sensing."""

    sensing_fraction: float = Field(0.0, ge=0, lt=1, description="share α of the time (mode time) or band (mode "
                                                                 "bandwidth) spent sensing; the link gets the rest")
    mode: Literal["time", "bandwidth"] = Field("time", description="time: sensing takes α of each frame over the "
                                                                   "whole band; bandwidth: α of the band (and power) "
                                                                   "for the whole frame")
    rcs_m2: float = Field(1.0, gt=0, description="radar cross-section of a sensed device")
    frame_duration_s: float = Field(1e-3, gt=0, description="ISAC frame; mode time senses for α × frame_duration_s "
                                                            "of it")


class ThzIsacLink:
    """One device ↔ THz-ISAC access point link; same interface as `RadioLink`."""

    def __init__(self, device, ap, config, seed: int, stream: str, on_sense=None):
        """`config`: the network's (NetworkConfig); `spec` keeps it under the name `Network` reads.
        `seed`, `stream`: where the pointing blocks' counter-based draws come from."""
        self.device, self.ap, self.spec = device, ap, config
        self.seed, self.stream = int(seed), stream
        self.thz, self.isac = config.thz, config.isac
        self.on_sense = on_sense            # callback(link, t_s, sensing_snr_db, rate_bps, error_rad, distance_m)
        self._block = None                  # (start, end) of the pointing block whose state is held
        self._distance_m = math.inf
        self._error_rad = 0.0
        self._gone = False
        self._snr_ls_db = -math.inf

    # --- state ----------------------------------------------------------------------------------
    def _jitter_std_rad(self, t_s: float) -> float:
        mob = self.ap.mobility
        return float(mob.jitter_std_rad(t_s)) if hasattr(mob, "jitter_std_rad") else 0.0

    def _state(self, t_s: float) -> float:
        """Re-evaluate if due; returns until when the state holds (inf once gone)."""
        exit_s = self.device.mobility.exit_time_s()
        if self._gone and t_s >= exit_s:
            return math.inf
        pos = self.device.position_m(t_s)
        if pos is None:
            if t_s >= exit_s:
                self._gone = True
                self._distance_m, self._snr_ls_db = math.inf, -math.inf
                return math.inf
            self._block, self._snr_ls_db = None, -math.inf   # not there yet
            entry = getattr(self.device.mobility, "entry_time_s", lambda: math.inf)()
            return entry if entry > t_s else t_s + self.thz.pointing_block_s
        if self._block is None or not self._block[0] <= t_s < self._block[1]:
            self._update(t_s)
        return min(self._block[1], exit_s)

    def _update(self, t_s: float) -> None:
        """The state of the pointing block covering t (a fixed grid of `pointing_block_s` in time,
        `cosim.world.channel_lattice.block_draw`): distance at the block's start (or the device's entry
        within it), pointing error from the block's counter-based draw."""
        t = self.thz
        gen, end = block_draw(self.seed, f"{self.stream}/pointing", t.pointing_block_s, t_s)
        start = max(end - t.pointing_block_s, getattr(self.device.mobility, "entry_time_s", lambda: 0.0)())
        if self.device.position_m(start) is None:
            start = t_s
        rel = np.asarray(self.device.position_m(start), dtype=float) - np.asarray(self.ap.position_m(start),
                                                                                  dtype=float)
        self._block = (start, end)
        self._distance_m = max(float(np.linalg.norm(rel)), 1.0)
        self._error_rad = float(antenna.draw_pointing_error_rad(gen, jitter_std_rad=self._jitter_std_rad(start)))
        self._snr_ls_db = float(self._tradeoff(0.0, t.bandwidth_hz, t.tx_power_dbm, 0.0).comm_snr_db)
        if self.on_sense is not None:
            full = self._tradeoff(self.isac.sensing_fraction, t.bandwidth_hz, t.tx_power_dbm, self._error_rad)
            self.on_sense(self, t_s, float(full.sensing_snr_db), float(full.comm_rate_bps), self._error_rad,
                          self._distance_m)

    def _tradeoff(self, sensing_fraction: float, bandwidth_hz: float, tx_power_dbm: float, error_rad: float):
        t, i = self.thz, self.isac
        return isac.isac_tradeoff(sensing_fraction, i.mode, frequency_hz=t.frequency_hz,
                                  bandwidth_hz=bandwidth_hz, tx_power_dbm=tx_power_dbm,
                                  num_elements=t.num_elements, target_distance_m=self._distance_m,
                                  rcs_m2=i.rcs_m2, user_distance_m=self._distance_m, user_gain_db=t.device_gain_db,
                                  noise_figure_db=t.noise_figure_db, frame_duration_s=i.frame_duration_s,
                                  pointing_error_rad=error_rad, relative_humidity=t.relative_humidity,
                                  temperature_c=t.temperature_c)

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
        return self.thz.device_tx_power_dbm if uplink else self.thz.tx_power_dbm

    def rate_bps(self, t_s: float, uplink: bool, share_hz: float, full_bandwidth_hz: float, *,
                 fading: bool = True) -> tuple[float, float]:
        """(rate, valid_until): the communication rate over `share_hz` left after sensing. (`fading`
        is accepted for the common link interface: this link's small-scale part is its pointing
        error, which belongs to the state it has at t either way.)"""
        until = self._state(t_s)
        if not self.in_coverage(t_s, full_bandwidth_hz):
            return 0.0, until
        if uplink:
            tx_dbm = self.thz.device_tx_power_dbm
        else:  # the UAV's power is spread over the band: a share gets its proportional part
            tx_dbm = self.thz.tx_power_dbm + 10.0 * math.log10(share_hz / full_bandwidth_hz)
        res = self._tradeoff(self.isac.sensing_fraction, share_hz, tx_dbm, self._error_rad)
        return float(res.comm_rate_bps), until
