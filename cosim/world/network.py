"""Links and shared media: real payload bytes moved at the rate the channel gives at each moment.

A transfer is a fluid flow. Each access point has an uplink and a downlink medium (FDD: each
direction its own `bandwidth_hz`) whose bandwidth is split among the flows active at that moment
and re-split whenever a flow starts or ends, or a flow's channel changes (a new fading block, or
the device has moved `reevaluate_distance_m`). Between those instants every rate is constant, so a
flow's progress is exact: bits_left -= rate × dt.

The radio chain per link is `channels/`: path loss (3GPP TR 38.901 or free space) from the current
positions, log-normal shadowing correlated over distance (Gudmundson), small-scale fading redrawn
every coherence time, SNR over the flow's share of the band, Shannon rate.
Coverage is decided on the downlink large-scale SNR (no fast fading) over the full band: a device
whose large-scale SNR is below `snr_threshold_db`, or that has left the area, is out of coverage and its
flows stall; the outage policy then waits, drops the client, or fails the round. A flow in coverage
whose rate is 0 stalls the same way (`outage.max_wait_s` of rate 0, then the policy).
A device beyond its path-loss model's valid distance (TR 38.901: 5 km, RMa LOS 10 km) is out of
coverage there, never given the loss at the range's edge nor an extrapolated one: one `out_of_range`
row each time it goes beyond (free-space loss has no upper range; its SNR decides).

Several access points: the serving one is re-chosen (nearest or strongest) as devices move, a
handover is a trace row, and a hop in progress finishes where it started (see `Network`). Schemes
can subscribe to a device entering/leaving an AP's coverage (`Network.watch_coverage`). An AP can
use the THz-ISAC link of `cosim.world.thz_link` (a UAV with an ultra-massive array) instead of the
3GPP chain.

`NetworkConfig` (the scenario's `network:` block) is what `Network` and its links take.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

import channels
from channels import fading as fading_models
from channels import rate as rate_models
from channels import shadowing, sharing, tr38901

from ..config import Strict
from .channel_lattice import PathLattice, block_draw
from .thz_link import IsacConfig, ThzConfig

BITS_PER_BYTE = 8
#: A flow is done when less than this much airtime is left: below the resolution of the simulated
#: clock's float at long run times, so waiting for it would never advance time.
_DONE_AIRTIME_S = 1e-9
_DONE_BITS = 1e-6


class TransferDropped(Exception):
    """A transfer gave up: its device stayed out of coverage past the outage policy's patience."""

    def __init__(self, device: str, t_s: float, reason: str):
        super().__init__(device, t_s, reason)  # plain args: SimPy re-raises it as type(e)(*e.args)
        self.device, self.t_s, self.reason = device, t_s, reason

    def __str__(self) -> str:
        return f"{self.device}: {self.reason}, gave up at t={self.t_s:.3f}s"


class MediumConfig(Strict):
    bandwidth_hz: float = Field(20e6, gt=0, description="per direction (FDD)")
    sharing: Literal["equal", "proportional", "allocated"] = Field(
        "equal", description="how a direction of an AP's band is split among active flows: equal, proportional "
                             "to bits left, or allocated: each device its decided share (cosim.control), devices "
                             "without one splitting the rest equally")


class PathlossConfig(Strict):
    model: Literal["fspl", "3gpp-uma", "3gpp-umi", "3gpp-rma"] = Field("3gpp-uma", description="fspl: free space; "
                                                                                               "3gpp-uma / 3gpp-umi / "
                                                                                               "3gpp-rma: TR 38.901 "
                                                                                               "urban macro, urban "
                                                                                               "micro, rural macro")
    los: Literal["auto", "los", "nlos"] = Field("auto", description="auto: drawn from TR 38.901 Table 7.4.2-1")

    def ut_height_range_m(self) -> tuple[float, float] | None:
        """Device antenna heights the model is defined for (TR 38.901 Table 7.4.1-1); None: any."""
        if self.model == "fspl":
            return None
        return tr38901.H_UT_RANGE_M[self.model.removeprefix("3gpp-")]


class ChannelConfig(Strict):
    pathloss: PathlossConfig = Field(default_factory=PathlossConfig, description="the path-loss model and "
                                                                                 "line-of-sight state")
    shadowing: bool = Field(True, description="log-normal shadowing with TR 38.901's std, correlated over distance "
                                              "(Gudmundson 1991)")
    fading: Literal["none", "rayleigh", "rician"] = Field("rayleigh", description="small-scale fading, redrawn every "
                                                                                  "coherence time")
    k_factor: float = Field(10.0, ge=0, description="Rician K (linear)")
    static_coherence_s: float = Field(1.0, gt=0, description="fading block of a device standing still "
                                      "(scatterers move)")
    min_block_s: float = Field(0.01, gt=0, description="fading is held at least one NR radio frame (10 ms)")


class OutagePolicy(Strict):
    """What a transfer does while its device is out of coverage."""

    policy: Literal["wait", "drop", "fail"] = Field("wait", description="wait: up to max_wait_s, then drop the "
                                                                        "client; drop: drop the client at once; fail: "
                                                                        "the round fails")
    max_wait_s: float = Field(30.0, gt=0, description="wait: give up (drop the client) after this long")


class BackhaulConfig(Strict):
    rate_bps: float = Field(10e9, gt=0, description="rate of a wired hop")
    latency_s: float = Field(0.005, ge=0, description="latency added to each wired hop")


class NetworkConfig(Strict):
    """The radio of every device–access-point link, the media, outage policy and backhaul."""

    association: Literal["nearest", "strongest"] = Field(
        "nearest", description="serving AP: nearest, or best large-scale SNR; re-chosen as devices move")
    link: Literal["3gpp", "thz-isac"] = Field("3gpp", description="link model of every AP (edge.*.link overrides)")
    thz: ThzConfig = Field(default_factory=ThzConfig, description="the THz radio of thz-isac access points")
    isac: IsacConfig = Field(default_factory=IsacConfig, description="the share of time or band thz-isac access "
                                                                     "points spend sensing")
    medium: MediumConfig = Field(default_factory=MediumConfig, description="each access point's band per direction "
                                                                           "and how its flows share it")
    channel: ChannelConfig = Field(default_factory=ChannelConfig, description="the 3GPP link chain: path loss, "
                                                                              "shadowing, fading")
    frequency_hz: float = Field(3.5e9, gt=0, description="carrier of the 3GPP links")
    tx_power_dbm: float = Field(23.0, le=60, description="device (3GPP power class 3 UE)")
    ap_tx_power_dbm: float = Field(43.0, le=80, description="access point, spread over the downlink band")
    noise_figure_db: float = Field(7.0, ge=0, description="receiver noise figure of the 3GPP links")
    antenna_gain_db: float = Field(0.0, description="gain added to every 3GPP link budget")
    snr_threshold_db: float = Field(-5.0, description="coverage: a device whose large-scale downlink SNR over the "
                                                      "full band is below this is out of coverage (its flows stall)")
    reevaluate_distance_m: float = Field(10.0, gt=0, description="path loss and shadowing are re-evaluated each time "
                                                                 "a device has moved this far")
    outage: OutagePolicy = Field(default_factory=OutagePolicy, description="what a transfer does while its device is "
                                                                           "out of coverage")
    backhaul: BackhaulConfig = Field(default_factory=BackhaulConfig, description="the wired link between servers "
                                                                                 "(edge ↔ cloud, edge ↔ edge)")


class RadioLink:
    """One device ↔ access point link: large-scale state on the device's path lattice, fading on a
    grid of coherence blocks — both pure functions of (seed, link, position/time) (see
    `cosim.world.channel_lattice`), so every scheme of a compare sees the same channel."""

    def __init__(self, device, ap, config: NetworkConfig, seed: int, stream: str, network=None):
        """`stream`: the link's name for its counter-based draws (`channel/<device>` for the first AP).
        `network.record_out_of_range(link, t_s, detail)` is told each time the device goes beyond
        the path-loss model's valid distance (an `out_of_range` row). An object, not a bound method:
        a checkpoint saves the link with plain references (cosim.checkpoint builds no callables)."""
        self.device, self.ap = device, ap
        self.seed, self.stream = int(seed), stream
        self.config = config
        self.network = network
        chain = config.channel
        scenario = None if chain.pathloss.model == "fspl" else chain.pathloss.model.removeprefix("3gpp-")
        # the lattice's processes: shadow fading of LOS and of NLOS, generated separately with their own
        # correlation distances (TR 38.901 §7.6.3.1, Table 7.5-6), and the LOS state's (Table 7.6.3.1-2)
        decorrelation = () if scenario is None else (
            float(tr38901.shadow_decorrelation_distance_m(scenario, True)),
            float(tr38901.shadow_decorrelation_distance_m(scenario, False)),
            float(tr38901.los_state_decorrelation_distance_m(scenario)))
        self._lattice = PathLattice(device.mobility, config.reevaluate_distance_m, seed, stream, decorrelation)
        self._beyond = False      # beyond the model's valid distance when last asked
        self._point = None        # the lattice point whose loss is in _loss_db
        self._loss_db = math.inf   # path loss minus shadowing gain, dB
        self._gone = False
        self._fading_db, self._block = 0.0, (None, math.inf)   # gain of the block (start, end) last drawn
        self._snr_key, self._snr_db = None, -math.inf   # large-scale SNR of the last (loss, band)
        self._ls_asked_s, self._ls_answer = None, None
        self._block_speed_mps, self._block_s = None, math.inf   # fading block length at that speed
        #: a valid-until that depends on when it was asked (the medium re-asks such links near it):
        #: never here, every valid-until is a lattice point's or a block's own time
        self.until_moves = False

    # --- large scale ----------------------------------------------------------------------------
    def _large_scale(self, t_s: float) -> tuple[float, float]:
        """(loss_db, valid_until_s) with loss = path loss − shadowing; loss is inf once gone."""
        if t_s != self._ls_asked_s:   # asked again at the same time (coverage, then rate): same answer
            self._ls_asked_s, self._ls_answer = t_s, self._large_scale_now(t_s)
        return self._ls_answer

    def _large_scale_now(self, t_s: float) -> tuple[float, float]:
        mob = self.device.mobility
        exit_s = mob.exit_time_s()
        if self._gone and t_s >= exit_s:
            return math.inf, math.inf
        pos = self.device.position_m(t_s)
        if pos is None:
            if t_s >= exit_s:  # left for good
                self._gone = True
                return math.inf, math.inf
            # not entered yet (a vehicle still to arrive): out of coverage until it enters
            change_s = mob.motion_change_s(t_s) if hasattr(mob, "motion_change_s") else math.inf
            entry_s = mob.entry_time_s() if hasattr(mob, "entry_time_s") else math.inf
            return math.inf, min(entry_s if entry_s > t_s else math.inf, change_s)
        k, point_m, until_s, values = self._lattice.at(t_s)
        if self._point != (k, self._lattice._t):
            self._point = (k, self._lattice._t)
            self._update_large_scale(point_m, values, t_s)
        return self._loss_db, min(until_s, exit_s)

    @property
    def spec(self) -> NetworkConfig:
        """The network config, under the name `Network` reads on every kind of link."""
        return self.config

    @property
    def channel(self) -> ChannelConfig:
        return self.config.channel

    def _update_large_scale(self, pos: np.ndarray, values: np.ndarray, t_s: float) -> None:
        """The loss at lattice point `pos`, with the lattice's process `values` there (SF of LOS, SF of
        NLOS, LOS state; unit normals)."""
        net, ap_pos = self.config, self.ap.position_m(0.0)
        chain = net.channel
        d2d = float(np.hypot(*(pos[:2] - ap_pos[:2])))
        d3d = float(np.linalg.norm(pos - ap_pos))
        if chain.pathloss.model == "fspl":
            pl, los, scenario = float(channels.fspl_db(max(d3d, 1.0), net.frequency_hz)), True, None
        else:
            scenario = chain.pathloss.model.removeprefix("3gpp-")
            # a height the scenario could not check before the run (a trace's z, a UAV's jitter) is
            # held inside this scenario's UT range (Table 7.4.1-1: UMa/UMi 1.5-22.5 m, RMa 1-10 m)
            h_ut_m = float(np.clip(pos[2], *tr38901.H_UT_RANGE_M[scenario]))
            if chain.pathloss.los == "auto":   # spatially consistent LOS state (§7.6.3.3)
                los = bool(tr38901.los_from_gaussian(scenario, d2d, float(values[2]), min(h_ut_m, 23.0)))
            else:
                los = chain.pathloss.los == "los"
            # beyond the model's valid range (Table 7.4.1-1: 5 km, RMa LOS 10 km) there is no model to
            # extrapolate: out of coverage, never a loss clamped at the edge of the range
            max_m = tr38901.MAX_DISTANCE_2D_RMA_LOS_M if scenario == "rma" and los else tr38901.MAX_DISTANCE_2D_M
            if d2d > max_m:
                self._loss_db = math.inf
                if not self._beyond and self.network is not None:
                    self.network.record_out_of_range(self, t_s, f"d2d_m={d2d:.6g} beyond {chain.pathloss.model}'s "
                                         f"valid {max_m:g} m (TR 38.901 Table 7.4.1-1): out of coverage")
                self._beyond = True
                return
            self._beyond = False
            pl = float(tr38901.pathloss_db(scenario, d2d, net.frequency_hz, los, h_bs_m=float(ap_pos[2]),
                                           h_ut_m=h_ut_m))
        shadow_db = 0.0
        if chain.shadowing and scenario is not None:
            std = float(tr38901.shadow_fading_std_db(scenario, los, d2d, net.frequency_hz))
            shadow_db = std * float(values[0] if los else values[1])
        self._loss_db = pl - shadow_db

    # --- small scale ----------------------------------------------------------------------------
    def _fading(self, t_s: float) -> tuple[float, float]:
        """(gain_db, valid_until) of the coherence block covering t: blocks of the coherence time at the
        device's speed (held at least `min_block_s`; `static_coherence_s` standing still) on a fixed
        grid in time; a velocity change the mobility model announces starts the new speed's grid."""
        if self.channel.fading == "none":
            return 0.0, math.inf
        start, end = self._block
        if start is not None and start <= t_s < end:
            return self._fading_db, end
        mob = self.device.mobility
        speed = mob.speed_mps(t_s)
        if speed != self._block_speed_mps:   # the block length follows the speed (often constant)
            block = (self.channel.static_coherence_s if speed <= 0
                     else float(fading_models.coherence_time_s(speed, self.spec.frequency_hz)))
            self._block_speed_mps, self._block_s = speed, max(block, self.channel.min_block_s)
        gen, end = block_draw(self.seed, f"{self.stream}/fade", self._block_s, t_s)
        if self.channel.fading == "rician":
            gain = fading_models.rician_power_gain(gen, self.channel.k_factor)
        else:
            gain = fading_models.rayleigh_power_gain(gen)
        self._fading_db = 10.0 * math.log10(max(float(gain), 1e-12))
        change_s = mob.motion_change_s(t_s) if hasattr(mob, "motion_change_s") else math.inf
        if change_s > t_s:
            end = min(end, change_s)
        self._block = (t_s, end)
        return self._fading_db, end

    # --- what the medium asks -------------------------------------------------------------------
    def large_scale_snr_db(self, t_s: float, full_bandwidth_hz: float) -> float:
        """The AP's signal over the full band, no fast fading (what an RSRP measurement reflects);
        -inf once the device is gone or beyond the model's range."""
        loss, _ = self._large_scale(t_s)
        if math.isinf(loss):
            return -math.inf
        # the SNR changes only with the large-scale loss: computed once per update, not per question
        if self._snr_key != (loss, full_bandwidth_hz):
            self._snr_key = (loss, full_bandwidth_hz)
            self._snr_db = float(rate_models.snr_db(self.spec.ap_tx_power_dbm, loss, full_bandwidth_hz,
                                                    self.spec.noise_figure_db, self.spec.antenna_gain_db))
        return self._snr_db

    def in_coverage(self, t_s: float, full_bandwidth_hz: float) -> bool:
        """Coverage as a cell decides it: the large-scale SNR is at least the threshold (and the
        device is there: `conditions.available`, cosim.world.conditions)."""
        if not _conditions(self.device).available(t_s):
            return False
        return self.large_scale_snr_db(t_s, full_bandwidth_hz) >= self.spec.snr_threshold_db

    def tx_power_dbm(self, uplink: bool) -> float:
        return self.spec.tx_power_dbm if uplink else self.spec.ap_tx_power_dbm

    def next_change_s(self, t_s: float) -> float:
        """When the large-scale state may next change (the device will have moved far enough), or
        its dynamic conditions may (availability, radio share)."""
        return min(self._large_scale(t_s)[1], _conditions(self.device).next_change_s(t_s))

    def rate_terms(self, t_s: float, full_bandwidth_hz: float, *, fading: bool = True):
        """((loss_db, gain_db, radio_share), valid_until): what the rate over any share of the band
        depends on now, and until when it holds; (None, until) out of coverage. A medium keeps
        these between changes, so a new split of the band only re-evaluates `shannon_rate_bps`."""
        loss, ls_until = self._large_scale(t_s)
        if math.isinf(loss) or not self.in_coverage(t_s, full_bandwidth_hz):
            return None, ls_until
        fade_db, fade_until = self._fading(t_s) if fading else (0.0, math.inf)
        cond = _conditions(self.device)   # the radio level of its dynamic conditions scales the rate
        other = min(fade_until, cond.next_change_s(t_s))
        return (loss, self.spec.antenna_gain_db + fade_db, cond.radio_share(t_s)), min(ls_until, other)

    def rate_bps(self, t_s: float, uplink: bool, share_hz: float, full_bandwidth_hz: float, *,
                 fading: bool = True) -> tuple[float, float]:
        """(rate, valid_until): Shannon rate over `share_hz` now, and until when it holds.

        Uplink: the device's whole power over its share. Downlink: the AP's power is spread over
        the band, so the share gets its proportional part (same SNR as the full band). `fading`
        off: the large-scale rate a controller can estimate (no fast fading drawn or consumed).
        """
        terms, until = self.rate_terms(t_s, full_bandwidth_hz, fading=fading)
        if terms is None:
            return 0.0, until
        loss_db, gain_db, radio_share = terms
        return float(shannon_rate_bps(uplink, share_hz, full_bandwidth_hz, self.tx_power_dbm(uplink), loss_db,
                                      self.spec.noise_figure_db, gain_db, radio_share)), until


def shannon_rate_bps(uplink: bool, share_hz, full_bandwidth_hz: float, tx_power_dbm, loss_db, noise_figure_db,
                     gain_db, radio_share):
    """Rate over `share_hz` of a band of `full_bandwidth_hz`: Shannon over the link budget
    (channels.rate), times the device's radio share (cosim.world.conditions). Scalars, or arrays
    of many flows of one medium at once (the same float operations either way).

    Uplink: the transmitter's whole power over its share. Downlink: the AP's power is spread over
    the band, so a share gets its proportional part, P + 10 log10(share / band).
    """
    if not uplink:
        tx_power_dbm = tx_power_dbm + _share_db(share_hz, full_bandwidth_hz)
    snr = rate_models.snr_db(tx_power_dbm, loss_db, share_hz, noise_figure_db, gain_db)
    return rate_models.shannon_rate_bps(share_hz, snr) * radio_share


def _share_db(share_hz, full_bandwidth_hz: float):
    """10 log10(share / band), by `math.log10` per value (numpy's log10 may differ in the last bit)."""
    if np.ndim(share_hz) == 0:
        return 10.0 * math.log10(share_hz / full_bandwidth_hz)
    if share_hz.size and (share_hz == share_hz[0]).all():   # an equal split: one logarithm
        return 10.0 * math.log10(float(share_hz[0]) / full_bandwidth_hz)
    return np.array([10.0 * math.log10(v / full_bandwidth_hz) for v in share_hz.tolist()])


def large_scale_rate_bps(link, t_s: float, uplink: bool, share_hz: float, full_bandwidth_hz: float) -> float:
    """The rate `link` gives over `share_hz` at its large-scale state (no fast fading): what a
    controller estimates from averaged channel reports (cosim.control.view)."""
    return link.rate_bps(t_s, uplink, share_hz, full_bandwidth_hz, fading=False)[0]


def _conditions(node):
    """A node's dynamic conditions (cosim.world.conditions); static for nodes built without them."""
    cond = getattr(node, "conditions", None)
    if cond is None:
        from .conditions import StaticConditions
        cond = StaticConditions()
    return cond


class WiredLink:
    """A wired hop (edge ↔ cloud backhaul): fixed capacity shared equally, plus a latency."""

    def __init__(self, rate_bps: float, latency_s: float):
        self.rate_bps_capacity = rate_bps
        self.latency_s = latency_s

    def rate_bps(self, t_s, uplink, share, full):
        return share, math.inf

    def next_change_s(self, t_s):
        return math.inf

    def in_coverage(self, t_s, full):
        return True


#: How a medium computes a flow's rate: over `channels` from the link's cached terms, all flows at
#: once (`RadioLink.rate_terms`); the share itself (a wired pipe); or by asking the link at every
#: re-split (any other link, e.g. the THz-ISAC one, whose state and trace rows follow each question).
_SHANNON, _WIRED, _ASK = 0, 1, 2
#: A link whose cached state holds until less than this after now is asked again now. Asking early
#: changes nothing (a link's state changes only at its own valid-until), and a valid-until computed
#: from a moving position differs from one computed a moment later only by float rounding (~1e-14 s).
_RECHECK_S = 1e-6


class _Flow:
    """One transfer on a medium; its numbers live in the medium's arrays at the flow's index."""

    __slots__ = ("link", "done", "name", "stalled_since", "model", "nbits")

    def __init__(self, link, done, name: str, model: int, nbits: float):
        self.link, self.done, self.name, self.model, self.nbits = link, done, name, model, nbits
        self.stalled_since = None


class Medium:
    """One direction of one access point's band (or one wired pipe), shared by its active flows.

    Flows are kept in arrival order with their numbers in arrays (bits left, rate, airtime, and the
    rate terms of their link), so a re-split costs a few vectorised operations over the flows
    rather than a pass through the channel chain per flow: a link is asked again only when its
    cached state may have changed (its valid-until is reached: a new fading block, the device
    moved `reevaluate_distance_m`, its conditions changed), and otherwise only its share of the
    band is new, which `shannon_rate_bps` turns into rates for all flows in one call. Progress is
    the same stepwise bits_left -= rate × dt at every re-split as a per-flow loop would do.

    A re-split is O(flows), vectorised: an uplink's rate is not proportional to its share (the
    device's whole power over a narrower band has a higher SNR), so when the number of flows
    changes every flow's rate changes by its own factor and the order of finish times can change;
    a heap of finish times in a shared virtual time (processor sharing) would hold only for a
    downlink. Flows that start in one instant join before a single re-split.
    """

    _COLUMNS = ("bits", "rate", "air", "loss", "gain", "radio", "tx", "nf", "until", "asked", "model", "starved")
    _FLAGS = ("covered", "moves")   # in coverage when last asked; its valid-until moves (RadioLink.until_moves)
    _joining = False   # a re-split is scheduled for the flows joining at this instant (_reallocate_once_joined)

    def __init__(self, sim, name: str, capacity: float, uplink: bool, sharing: str, outage: OutagePolicy):
        self.sim, self.name, self.capacity, self.uplink = sim, name, capacity, uplink
        self.sharing, self.outage = sharing, outage
        self.flows: list[_Flow] = []
        self.allocation: dict[str, float] = {}   # device name -> share of the band (sharing: allocated)
        self._t = 0.0
        self._generation = 0
        self._split_n = -1   # flows the band was split equally among last time (-1: none, or not equal)
        self._arrays(16)

    # --- the flow table -------------------------------------------------------------------------
    def _arrays(self, size: int) -> None:
        old = {c: getattr(self, f"_{c}", None) for c in (*self._COLUMNS, *self._FLAGS)}
        n = len(self.flows)
        for c in self._COLUMNS:
            a = np.zeros(size)
            if old[c] is not None:
                a[:n] = old[c][:n]
            setattr(self, f"_{c}", a)
        for c in self._FLAGS:
            a = np.zeros(size, dtype=bool)
            if old[c] is not None:
                a[:n] = old[c][:n]
            setattr(self, f"_{c}", a)

    def _add(self, flow: _Flow, nbits: float) -> None:
        n = len(self.flows)
        if n == len(self._bits):
            self._arrays(2 * n)
        self.flows.append(flow)
        for c in self._COLUMNS:
            getattr(self, f"_{c}")[n] = 0.0
        self._bits[n] = nbits
        self._until[n] = -math.inf   # asked at once
        self._asked[n] = math.nan
        self._starved[n] = math.nan   # since when its rate is 0 while in coverage (nan: it is not)
        self._covered[n] = self._moves[n] = False
        self._model[n] = flow.model
        if flow.model == _SHANNON:
            self._tx[n] = flow.link.tx_power_dbm(self.uplink)
            self._nf[n] = flow.link.spec.noise_figure_db

    def _keep(self, keep: np.ndarray) -> None:
        """Drop the flows whose `keep` is False, keeping the others' order."""
        n = len(self.flows)
        for i in reversed(np.flatnonzero(~keep).tolist()):   # a step per flow leaving, not a list rebuilt
            del self.flows[i]
        m = len(self.flows)
        for c in (*self._COLUMNS, *self._FLAGS):
            a = getattr(self, f"_{c}")
            a[:m] = a[:n][keep]

    # --- flows ----------------------------------------------------------------------------------
    def carry(self, link, nbits: float, name: str):
        """Move `nbits` over `link`; returns (airtime_s, carried_bits): the time it was on the air
        and Σ rate × dt over that time (`nbits` within the done tolerance). Raises TransferDropped."""
        if isinstance(link, WiredLink):
            model = _WIRED
        elif hasattr(link, "rate_terms"):
            model = _SHANNON
        else:
            model = _ASK
        flow = _Flow(link, self.sim.env.event(), name, model, float(nbits))
        self._advance()
        self._add(flow, float(nbits))
        self._reallocate_once_joined()
        return (yield flow.done)

    def _reallocate_once_joined(self) -> None:
        """Re-split the band once every flow starting at this instant has joined: a server sending
        to N devices at once starts N flows in one instant, and re-splitting at each would cost N
        re-splits of up to N flows where one does. Scheduled at the current time behind what is
        already queued for it (the processes started or resumed in this instant, each of which may
        add a flow); no time passes in between, so every rate, finish time and trace row is the one
        a re-split at each arrival gives (tests/test_network_scale.py)."""
        if self._joining:
            return
        self._joining = True
        joined = self.sim.env.event()
        joined.callbacks.append(self._joined)
        joined.succeed()   # queued now, behind the events already queued for this instant

    def _joined(self, _event) -> None:
        self._joining = False   # no time has passed since the carries advanced the flows
        self._reallocate()

    def fail_all(self, make_error) -> None:
        """Every flow on this medium fails now with `make_error(flow's device name)` (its server went
        down, cosim.world.failures); the bits already moved are lost with it."""
        if not self.flows:
            return
        self._advance()
        for f in self.flows:
            f.done.fail(make_error(f.name))
        self._keep(np.zeros(len(self.flows), dtype=bool))
        self._reallocate()

    def _advance(self) -> None:
        dt = self.sim.now - self._t
        n = len(self.flows)
        if dt > 0 and n:
            moving = self._rate[:n] > 0
            bits, air = self._bits[:n], self._air[:n]
            bits[moving] -= self._rate[:n][moving] * dt
            air[moving] += dt
        self._t = self.sim.now

    def _shares(self, flows: list[_Flow], demand_bits: np.ndarray | None = None) -> np.ndarray:
        if self.sharing == "allocated" and self.allocation:
            return self._allocated(flows)
        if self.sharing == "proportional" and demand_bits is not None:
            demand = np.maximum(demand_bits, 0.0)
            if demand.sum() > 0:
                return sharing.proportional_split(self.capacity, demand)
        return sharing.equal_split(self.capacity, len(flows))

    def _allocated(self, flows: list[_Flow]) -> np.ndarray:
        """Each device's decided share of the band (split among its own flows); the band no device
        was given is split equally among the flows of devices without a share. A share is a
        reservation: it is not lent to others while its device is idle (OFDMA resource blocks).
        A device without a share never gets nothing: when the decided shares leave less than an
        equal split would give it, every share is scaled down so that it gets 1/n of the band
        (n = devices with a share or a flow here) until the controller decides again."""
        per_device: dict[str, int] = {}
        for f in flows:
            per_device[f.name] = per_device.get(f.name, 0) + 1
        without = {f.name for f in flows if f.name not in self.allocation}
        given = sum(self.allocation.values())
        n = len(self.allocation) + len(without)
        scale, rest = 1.0, max(0.0, 1.0 - given)
        if without and rest < len(without) / n:
            scale, rest = 1.0 - len(without) / n, len(without) / n
        per_without = rest * self.capacity / max(len(without), 1)
        return np.array([self.allocation[f.name] * scale * self.capacity / per_device[f.name]
                         if f.name in self.allocation else per_without / per_device[f.name] for f in flows])

    def set_allocation(self, shares: dict[str, float]) -> None:
        """Apply decided shares at once: progress so far at the old rates, then re-split."""
        self._advance()
        self.allocation = dict(shares)
        self._reallocate()

    def _reallocate(self) -> None:
        now, cap = self.sim.now, self.capacity
        n = len(self.flows)
        if n:   # finished flows leave first, in arrival order
            finished = self._bits[:n] <= _DONE_BITS + self._rate[:n] * _DONE_AIRTIME_S
            if finished.any():
                for i in np.flatnonzero(finished).tolist():
                    f = self.flows[i]
                    f.done.succeed((float(self._air[i]), f.nbits - float(self._bits[i])))
                self._keep(~finished)
        wake = math.inf
        n = len(self.flows)
        # coverage first, so a stalled flow gives its share to the others; only links whose state
        # may have changed are asked, and stalled flows count their patience
        due = np.zeros(n, dtype=bool)
        if n:
            due = (self._until[:n] <= now + _RECHECK_S) | (self._model[:n] == _ASK)
        patience = self.outage.max_wait_s if self.outage.policy == "wait" else 0.0
        dropped = None
        for i in np.flatnonzero(due | ~self._covered[:n]).tolist():
            f = self.flows[i]
            if due[i]:
                self._covered[i] = self._ask(f, i, now) if f.model == _SHANNON else f.link.in_coverage(now, cap)
            if self._covered[i]:
                f.stalled_since = None
                continue
            if f.stalled_since is None:
                f.stalled_since = now
            if now - f.stalled_since >= patience:
                if dropped is None:
                    dropped = np.zeros(n, dtype=bool)
                dropped[i] = True
                f.done.fail(TransferDropped(f.name, now, f"out of coverage since t={f.stalled_since:.3f}s"))
                continue
            self._rate[i] = 0.0
            if due[i]:
                self._until[i] = f.link.next_change_s(now)
                self._asked[i], self._moves[i] = now, getattr(f.link, "until_moves", True)
            wake = min(wake, f.stalled_since + patience)
        if dropped is not None:
            self._keep(~dropped)
            due = due[~dropped]
            n = len(self.flows)
        active = np.flatnonzero(self._covered[:n])
        if len(active):
            self._rates(now, active, due)
            active, wake = self._starve(now, active, due, patience, wake)
        if len(active):
            rate = self._rate[active]
            moving = rate > 0
            if moving.any():
                wake = min(wake, float(np.min(now + self._bits[active][moving] / rate[moving])))
        if self.flows:
            wake = self._earliest_change(now, wake)
        self._generation += 1
        if math.isfinite(wake):
            generation = self._generation
            # never wake at `now` again: a state valid "until now" would loop without advancing time
            timer = self.sim.env.timeout(max(wake - now, _DONE_AIRTIME_S))
            timer.callbacks.append(lambda _e: self._wake(generation))

    def _starve(self, now: float, active: np.ndarray, due: np.ndarray, patience: float, wake: float):
        """A flow in coverage whose rate is 0 (a radio share or an allocated band of 0) is stalled
        like one out of coverage: after `patience` of rate 0 it is dropped per the outage policy,
        and the band is split again among the others. Returns (the active flows, the next wake)."""
        n = len(self.flows)
        starved = self._starved[:n]
        zero = np.zeros(n, dtype=bool)
        zero[active] = self._rate[active] <= 0
        starved[~zero] = math.nan
        if not zero.any():
            return active, wake
        starved[zero & np.isnan(starved)] = now
        expired = zero & (now - starved >= patience)
        if expired.any():
            for i in np.flatnonzero(expired).tolist():
                self.flows[i].done.fail(TransferDropped(self.flows[i].name, now,
                                                        f"rate 0 in coverage since t={starved[i]:.3f}s"))
            self._keep(~expired)
            due, zero = due[~expired], zero[~expired]
            n = len(self.flows)
            active = np.flatnonzero(self._covered[:n])
            self._split_n = -1   # fewer flows share the band: every share is new
            if len(active):
                self._rates(now, active, due)
        waiting = self._starved[:n][zero[:n]] if zero[:n].any() else np.empty(0)
        if len(waiting):
            wake = min(wake, float(np.min(waiting)) + patience)
        return active, wake

    def _rates(self, now: float, active: np.ndarray, due: np.ndarray) -> None:
        """Rates of the active flows (indices in arrival order) over their shares of the band. An
        equal split among as many flows as last time leaves the shares as they were: then only the
        flows whose link was asked again get new rates."""
        cap, flows = self.capacity, self.flows
        if self.sharing == "equal" and len(active) == self._split_n:
            active = active[due[active]]
            shares = np.full(len(active), cap / self._split_n)   # = sharing.equal_split's B / n
        else:
            self._split_n = len(active) if self.sharing == "equal" else -1
            split = [flows[i] for i in active.tolist()] if self.sharing == "allocated" else active
            shares = self._shares(split, self._bits[active] if self.sharing == "proportional" else None)
        models = self._model[active]
        shannon = np.flatnonzero(models == _SHANNON)
        if len(shannon):
            idx = active[shannon]
            share = shares[shannon]
            if self.sharing == "equal":
                share = float(share[0])   # one value: one logarithm for all
            self._rate[idx] = shannon_rate_bps(self.uplink, share, cap, self._tx[idx], self._loss[idx], self._nf[idx],
                                               self._gain[idx], self._radio[idx])
        for j in np.flatnonzero(models != _SHANNON).tolist():
            i, share = int(active[j]), float(shares[j])
            if models[j] == _WIRED:
                self._rate[i], self._until[i] = share, math.inf
            else:
                self._rate[i], self._until[i] = flows[i].link.rate_bps(now, self.uplink, share, cap)
                self._asked[i] = now

    def _ask(self, f: _Flow, i: int, now: float) -> bool:
        """Ask flow i's radio link for its rate terms now (coverage included); whether it is covered."""
        terms, self._until[i] = f.link.rate_terms(now, self.capacity)
        self._asked[i], self._moves[i] = now, f.link.until_moves
        if terms is None:
            return False
        self._loss[i], self._gain[i], self._radio[i] = terms
        return True

    def _earliest_change(self, now: float, wake: float) -> float:
        """The earliest valid-until among the flows, with the moving ones close to it asked again
        now: a valid-until computed from a moving device's position depends in its last bit on
        when it was asked, and the value to wake at is the one asked now (as a per-flow pass at
        every re-split would have it)."""
        n = len(self.flows)
        until = self._until[:n]
        earliest = min(wake, float(until.min()))
        if not math.isfinite(earliest):
            return earliest
        close = (until <= earliest + _RECHECK_S) & self._moves[:n] & (self._asked[:n] != now)
        for i in np.flatnonzero(close).tolist():
            f = self.flows[i]
            if self._covered[i]:
                self._until[i] = f.link.rate_terms(now, self.capacity)[1]
            else:
                self._until[i] = f.link.next_change_s(now)
            self._asked[i], self._moves[i] = now, f.link.until_moves
        return min(wake, float(until.min()))

    def _wake(self, generation: int) -> None:
        if generation != self._generation:
            return  # superseded by a later reallocation
        self._advance()
        self._reallocate()


class Network:
    """Routes a payload between two nodes over the media and records each hop in the trace.

    Several access points: a device is served by one of them, chosen by `association` ("nearest":
    smallest 3D distance; "strongest": best large-scale downlink SNR over the AP's full band) when
    the device is first seen and again whenever the device or an AP has moved
    `reevaluate_distance_m` since the last choice (checked when the network is next asked about
    the device: positions are lazy). A change is a "handover" row in the trace (node = device,
    peer = new AP, detail = old AP).

    A transfer is routed when it starts: a hop in progress on the old AP's medium finishes there as
    long as the device stays in the old AP's coverage (if it leaves, the outage policy applies to
    that hop as to any other); the device's next transfers go through the new AP.

    Link models per AP: "3gpp" (`RadioLink`, the chain of `spec.channel`) or "thz-isac"
    (`cosim.world.thz_link.ThzIsacLink` with `spec.thz`, the AP's media then carry `thz.bandwidth_hz`).
    """

    def __init__(self, sim, config: NetworkConfig, *, link_models: dict[str, str] | None = None):
        """`config` is the scenario's network block; `link_models` overrides `config.link` per AP name."""
        self.sim, self.spec = sim, config          # `spec`: the config every link reads
        self.bandwidth_hz, self.outage = config.medium.bandwidth_hz, config.outage
        self.association = config.association
        self.link_models = {ap.name: (link_models or {}).get(ap.name, config.link) for ap in sim.edge}
        self._links: dict[tuple[str, str], object] = {}
        self._serving: dict[str, object] = {}
        #: associations decided by a controller (cosim.control): device name -> AP, kept until changed
        self._pinned: dict[str, object] = {}
        self._assoc_positions: dict[str, list] = {}
        self._capacity: dict[str, float] = {}
        self._up: dict[str, Medium] = {}
        self._down: dict[str, Medium] = {}
        for ap in sim.edge:
            cap = config.thz.bandwidth_hz if self.link_models[ap.name] == "thz-isac" else self.bandwidth_hz
            self._capacity[ap.name] = cap
            self._up[ap.name] = Medium(sim, f"{ap.name}/up", cap, True, config.medium.sharing, self.outage)
            self._down[ap.name] = Medium(sim, f"{ap.name}/down", cap, False, config.medium.sharing, self.outage)
        self._backhaul = WiredLink(config.backhaul.rate_bps, config.backhaul.latency_s)
        self._wired: dict[tuple[str, str], Medium] = {}

    def bandwidth_of(self, ap) -> float:
        """The band (Hz, each direction) of access point `ap`."""
        return self._capacity[ap.name]

    def set_bandwidth_shares(self, shares: dict[str, float], devices_by_ap: dict[str, list[str]]) -> None:
        """Decided shares (device name -> share of its AP's band) for `sharing: allocated` media,
        applied at once in both directions of each AP to the devices it serves now."""
        for ap in self.sim.edge:
            mine = {d: shares[d] for d in devices_by_ap.get(ap.name, []) if d in shares}
            for medium in (self._up[ap.name], self._down[ap.name]):
                if medium.sharing == "allocated":
                    medium.set_allocation(mine)

    # --- links and association ------------------------------------------------------------------
    def link_to(self, device, ap):
        """The link between `device` and access point `ap` (made on first use, kept for the run)."""
        key = (device.name, ap.name)
        if key not in self._links:
            # the first AP keeps the historical stream name, so single-cell runs draw as before
            stream = f"channel/{device.name}" if ap is self.sim.edge[0] else f"channel/{device.name}/{ap.name}"
            if self.link_models[ap.name] == "thz-isac":
                from .thz_link import ThzIsacLink

                self._links[key] = ThzIsacLink(device, ap, self.spec, self.sim.seed, stream,
                                               on_sense=self._record_sense)
            else:
                self._links[key] = RadioLink(device, ap, self.spec, self.sim.seed, stream, network=self)
        return self._links[key]

    def _record_sense(self, link, t_s: float, sensing_snr_db: float, rate_bps: float, error_rad: float,
                      distance_m: float) -> None:
        """A THz-ISAC link re-evaluated its state: the sensing SNR of the device as radar target,
        and the full-band communication rate left after sensing."""
        self.sim.trace.record(t_s, t_s, link.ap.name, "sense", self.sim.current_round, peer=link.device.name,
                              detail=f"sensing_snr_db={sensing_snr_db:.3f} comm_rate_bps={rate_bps:.6g} "
                                     f"pointing_error_rad={error_rad:.6g} distance_m={distance_m:.6g}")

    def record_out_of_range(self, link, t_s: float, detail: str) -> None:
        self.sim.trace.record(t_s, t_s, link.device.name, "out_of_range", self.sim.current_round, peer=link.ap.name,
                              detail=detail)

    def _positions(self, device, t_s: float) -> list:
        return [device.position_m(t_s), *(ap.position_m(t_s) for ap in self.sim.edge)]

    def _association_due(self, device, t_s: float) -> bool:
        if len(self.sim.edge) == 1:
            return False
        last, now = self._assoc_positions[device.name], self._positions(device, t_s)
        if now[0] is None:
            return False  # gone (or not there yet): keep the AP it has
        if last[0] is None:
            return True
        reach = self.spec.reevaluate_distance_m
        return any(float(np.linalg.norm(np.asarray(b) - np.asarray(a))) >= reach for a, b in zip(last, now))

    def _choose_ap(self, device, t_s: float, current):
        pos = device.position_m(t_s)
        if pos is None:
            return current if current is not None else self.sim.edge[0]
        if self.association == "strongest":
            def score(ap):
                return -self.link_to(device, ap).large_scale_snr_db(t_s, self._capacity[ap.name])
        else:
            def score(ap):
                return float(np.linalg.norm(ap.position_m(t_s) - pos))
        # on a tie the current AP stays
        ranked = sorted(self.sim.edge, key=lambda ap: (score(ap), ap is not current))
        return ranked[0]

    def set_association(self, device, ap) -> None:
        """Serve `device` by `ap` from now on, instead of the network's own choice (a controller's
        association decision); its hops in progress finish where they started, as at a handover."""
        self._pinned[device.name] = ap
        self.serving_ap(device)

    def serving_ap(self, device):
        """The access point serving `device` now (re-chosen once it has moved; see the class doc),
        or the one a controller associated it with (`set_association`)."""
        now = self.sim.now
        current = self._serving.get(device.name)
        pinned = self._pinned.get(device.name)
        if pinned is not None and pinned is not current or \
                pinned is None and (current is None or self._association_due(device, now)):
            chosen = pinned if pinned is not None else self._choose_ap(device, now, current)
            if current is not None and chosen is not current:
                self.sim.trace.record(now, now, device.name, "handover", self.sim.current_round, peer=chosen.name,
                                      detail=current.name)
            self._serving[device.name] = chosen
            self._assoc_positions[device.name] = self._positions(device, now)
        return self._serving[device.name]

    def link(self, device):
        """The link to the serving access point."""
        return self.link_to(device, self.serving_ap(device))

    def in_coverage(self, device, t_s: float | None = None) -> bool:
        ap = self.serving_ap(device)
        return self.link_to(device, ap).in_coverage(self.sim.now if t_s is None else t_s, self._capacity[ap.name])

    def next_coverage_change_s(self, device, t_s: float) -> float:
        """The next instant `device`'s coverage may change: it or an access point has moved
        `reevaluate_distance_m`, it enters or leaves for good, a mobility model announces a
        velocity change, its availability may change (`conditions`); at most 1 s ahead for a
        mover standing still that does not say when it moves again. inf when none can happen
        (everything static, or the device has left for good): its coverage is final."""
        from .mobility import Static

        mob = device.mobility
        exit_s = mob.exit_time_s()
        if t_s >= exit_s:
            return math.inf
        times = [exit_s, _conditions(device).next_change_s(t_s)]
        entry = getattr(mob, "entry_time_s", None)
        if entry is not None and entry() > t_s:
            times.append(entry())
        for m in (mob, *(ap.mobility for ap in self.sim.edge)):
            if hasattr(m, "motion_change_s"):
                times.append(m.motion_change_s(t_s))
            speed = m.speed_mps(t_s)
            if speed > 0:
                times.append(t_s + self.spec.reevaluate_distance_m / speed)
            elif not (isinstance(m, Static) or hasattr(m, "motion_change_s")):
                times.append(t_s + 1.0)
        return max(min(times), t_s + _DONE_AIRTIME_S)

    # --- coverage events ------------------------------------------------------------------------
    def watch_coverage(self, device, ap, on_enter=None, on_leave=None, radius_m: float | None = None,
                       snr_threshold_db: float | None = None):
        """Subscribe to `device` entering and leaving `ap`'s coverage; returns the watching process.

        Coverage is the ground (2D) distance to the AP within `radius_m` when given, else the
        large-scale SNR of the device↔AP link at least `snr_threshold_db` (default: the link's own
        threshold). Subscribing when the device is inside fires `enter` at once. Each event is a
        trace row (kind "enter"/"leave", node = device, peer = AP) and calls `callback(device, ap)`.

        Only subscribed devices are watched, and never per tick: the watcher looks ahead to the
        next time the geometry can have changed (the device and AP together moved
        min(reevaluate_distance_m, radius_m / 2), the device's entry or exit, a velocity change a
        mobility model announces with `motion_change_s`; at most 1 s apart for a mover that stands
        still and does not announce when it moves again). With a radius the crossing is then found by bisection
        on the lazy positions (to 1 ns), so the event lies on the exact crossing time; a pass through
        the disc shorter than one look-ahead step can be missed. With an SNR threshold the event
        is at the instant the link's large-scale state changes (its `next_change_s`).
        """
        if radius_m is not None and radius_m <= 0:
            raise ValueError(f"radius_m: must be > 0 (given {radius_m!r})")
        return self.sim.process(self._watch(device, ap, on_enter, on_leave, radius_m, snr_threshold_db))

    def _inside(self, device, ap, t_s: float, radius_m, snr_threshold_db) -> bool:
        pos = device.position_m(t_s)
        if pos is None:
            return False
        if radius_m is not None:
            return float(np.hypot(*(np.asarray(pos)[:2] - np.asarray(ap.position_m(t_s))[:2]))) <= radius_m
        link = self.link_to(device, ap)
        threshold = link.spec.snr_threshold_db if snr_threshold_db is None else snr_threshold_db
        return link.large_scale_snr_db(t_s, self._capacity[ap.name]) >= threshold

    def _next_look_s(self, device, ap, t_s: float, radius_m) -> float:
        from .mobility import Static

        dev, apm = device.mobility, ap.mobility
        exit_s = dev.exit_time_s()
        if t_s >= exit_s:
            return math.inf
        times = [exit_s]
        entry = getattr(dev, "entry_time_s", None)
        if entry is not None and entry() > t_s:
            times.append(entry())
        if radius_m is None:
            times.append(self.link_to(device, ap).next_change_s(t_s))
        step_m = self.spec.reevaluate_distance_m if radius_m is None else min(self.spec.reevaluate_distance_m,
                                                                             radius_m / 2)
        for mob in (dev, apm):   # models whose velocity changes (a pause ends, a SUMO step) say when
            if hasattr(mob, "motion_change_s"):
                times.append(mob.motion_change_s(t_s))
        speed = dev.speed_mps(t_s) + apm.speed_mps(t_s)
        if speed > 0:
            times.append(t_s + step_m / speed)
        elif not all(isinstance(m, Static) or hasattr(m, "motion_change_s") for m in (dev, apm)):
            times.append(t_s + 1.0)   # a standing mover that does not say when it moves again
        return min(times)

    def _watch(self, device, ap, on_enter, on_leave, radius_m, snr_threshold_db):
        detail = f"radius_m={radius_m:g}" if radius_m is not None else \
            f"snr_threshold_db={snr_threshold_db if snr_threshold_db is not None else self.spec.snr_threshold_db:g}"

        def fire(entering: bool):
            kind = "enter" if entering else "leave"
            self.sim.trace.record(self.sim.now, self.sim.now, device.name, kind, self.sim.current_round,
                                  peer=ap.name, detail=detail)
            callback = on_enter if entering else on_leave
            if callback is not None:
                callback(device, ap)

        t = self.sim.now
        inside = self._inside(device, ap, t, radius_m, snr_threshold_db)
        if inside:
            fire(True)
        while True:
            nxt = max(self._next_look_s(device, ap, t, radius_m), t + _DONE_AIRTIME_S)
            if not math.isfinite(nxt):
                return
            if radius_m is not None:   # positions are pure functions of t: look ahead, then bisect
                if self._inside(device, ap, nxt, radius_m, None) != inside:
                    lo, hi = t, nxt
                    while hi - lo > _DONE_AIRTIME_S:
                        mid = 0.5 * (lo + hi)
                        if self._inside(device, ap, mid, radius_m, None) == inside:
                            lo = mid
                        else:
                            hi = mid
                    nxt = hi
                yield self.sim.timeout(nxt - self.sim.now)
            else:                      # link state changes only when asked at that time: wait, then ask
                yield self.sim.timeout(nxt - self.sim.now)
            t = self.sim.now
            now_inside = self._inside(device, ap, t, radius_m, snr_threshold_db)
            if now_inside != inside:
                inside = now_inside
                fire(inside)

    def _hops(self, src, dst) -> list[tuple]:
        """(from, to, medium, link) per hop: device↔AP over the air, AP↔cloud over the backhaul."""
        if src.role == "device" and dst.role == "device":
            mid = self.serving_ap(src)
            return self._hops(src, mid) + self._hops(mid, dst)
        if src.role == "device":
            ap = self.serving_ap(src)
            hops = [(src, ap, self._up[ap.name], self.link(src))]
            return hops + (self._hops(ap, dst) if dst is not ap else [])
        if dst.role == "device":
            ap = self.serving_ap(dst)
            hops = self._hops(src, ap) if src is not ap else []
            return hops + [(ap, dst, self._down[ap.name], self.link(dst))]
        if src is dst:
            return []
        key = (src.name, dst.name)
        if key not in self._wired:
            self._wired[key] = Medium(self.sim, f"{src.name}->{dst.name}", self._backhaul.rate_bps_capacity, True,
                                      "equal", OutagePolicy(policy="wait", max_wait_s=math.inf))
        return [(src, dst, self._wired[key], self._backhaul)]

    def fail_flows_of(self, node, make_error) -> None:
        """`node` went down: every flow on its radio media and wired links fails now."""
        media = [self._up.get(node.name), self._down.get(node.name),
                 *(m for key, m in self._wired.items() if node.name in key)]
        for medium in media:
            if medium is not None:
                medium.fail_all(make_error)

    def transfer(self, src, dst, nbytes: int, kind: str, rnd: int, detail: str = ""):
        """Move `nbytes` from src to dst, hop by hop (store and forward). Raises TransferDropped
        (`ServerFailed` when src, dst or a hop's end fails meanwhile; a hop waits while one is down)."""
        from .failures import failure_counts, hop_ready   # failures.py builds on this module

        ends = (src, dst)
        seen = failure_counts(*ends)
        verifier = getattr(self.sim, "verifier", None)
        for a, b, medium, link in self._hops(src, dst):
            t0 = self.sim.now
            try:
                yield from hop_ready(self.sim, ends, seen, a, b)
                if isinstance(link, WiredLink) and link.latency_s > 0:
                    yield self.sim.env.timeout(link.latency_s)
                airtime, carried_bits = yield from medium.carry(link, nbytes * BITS_PER_BYTE,
                                                                name=(a if a.role == "device" else b).name)
            except TransferDropped as drop:
                self.sim.trace.record(t0, self.sim.now, a.name, "drop", rnd, peer=b.name, detail=f"{kind}: {drop}")
                raise
            tx_w = 0.0
            if not isinstance(link, WiredLink):
                tx_dbm = link.tx_power_dbm(uplink=a.role == "device")
                tx_w = 10 ** ((tx_dbm - 30) / 10)
            energy = tx_w * airtime
            if verifier is not None:
                verifier.carried(a.name, b.name, carried_bits, airtime, tx_w)
            a.radio_energy_j += energy
            a.bytes_sent += nbytes
            b.bytes_received += nbytes
            self.sim.trace.record(t0, self.sim.now, a.name, kind, rnd, peer=b.name, nbytes=nbytes, energy_j=energy,
                                  mem_bytes=b.memory.total, detail=detail)
