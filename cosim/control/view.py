"""What a real edge controller could know at a decision instant, and nothing more.

Per device: its profile (FLOP/s now, memory), the access point serving it, the large-scale state of
its link (path loss and shadowing, no fast fading — what RSRP/CQI reports average to) as an SNR
and as a rate estimate for any share of the band, its position, and whether it is in coverage.
From the run itself: the band of each access point and the serving server's FLOP/s. What the
controller learns about costs (FLOPs per block, bytes per sample) it measures with the run's own
meter and codecs (`cosim.control.costs`); how long a measured step takes on a node now it asks the
node's own compute model (`step_s`: `Node.step_duration_s`, FLOPs or roofline as the run times it),
so a predicted delay is the one the simulation will charge.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from ..world.network import large_scale_rate_bps


@dataclass
class DeviceView:
    name: str
    profile: str
    flops_per_s: float
    memory_bytes: float
    ap: str
    in_coverage: bool
    snr_db: float                                  # large-scale downlink SNR over the full band
    position_m: np.ndarray | None
    rate_bps: Callable[[float, bool], float] = field(repr=False)   # (share of band, uplink) -> bit/s
    compute_share: float | None = None             # of its server's compute, as decided (None: none)
    queue: float = 0.0                             # work waiting for the next epoch, as the scheme publishes it
    drift: float = 0.0                             # how far its data moved from what its model learned (0..1)
    retrain: bool = False                          # whether its model retrains in this epoch, as decided
    #: seconds a step of a measured StepCost takes on the device now (Node.step_duration_s); None: FLOPs alone
    step_s: Callable[[object], float] | None = field(default=None, repr=False)


@dataclass
class View:
    t_s: float
    round: int
    devices: list[DeviceView]
    bandwidth_hz: dict[str, float]                 # per access point, each direction
    server_flops_per_s: dict[str, float]           # per server
    extra: dict = field(default_factory=dict)      # what a scheme publishes for its controller
    #: per server, seconds a step of a measured StepCost takes on it now (Node.step_duration_s)
    server_step_s: dict[str, Callable[[object], float]] = field(default_factory=dict, repr=False)

    def device(self, name: str) -> DeviceView:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(name)

    def by_ap(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for d in self.devices:
            groups.setdefault(d.ap, []).append(d.name)
        return groups


def observe(sim, devices=None) -> View:
    """The view of `devices` (default: all) at the simulation's current time."""
    net, now = sim.network, sim.now
    views = []
    for dev in (sim.devices if devices is None else devices):
        ap = net.serving_ap(dev)
        link = net.link_to(dev, ap)
        full = net.bandwidth_of(ap)

        def rate(share: float, uplink: bool = True, link=link, full=full) -> float:
            return large_scale_rate_bps(link, now, uplink, share * full, full)

        views.append(DeviceView(
            name=dev.name, profile=dev.profile_name, flops_per_s=dev.effective_flops(now),
            memory_bytes=dev.profile.memory_bytes, ap=ap.name, in_coverage=net.in_coverage(dev),
            snr_db=link.large_scale_snr_db(now, full), position_m=dev.position_m(now), rate_bps=rate,
            step_s=partial(_step_s, dev, now)))
    servers = (*sim.edge, *sim.cloud)
    return View(t_s=now, round=sim.current_round, devices=views,
                bandwidth_hz={ap.name: net.bandwidth_of(ap) for ap in sim.edge},
                server_flops_per_s={s.name: s.effective_flops(now) for s in servers},
                server_step_s={s.name: partial(_step_s, s, now) for s in servers})


def _step_s(node, t_s: float, cost) -> float:
    return node.step_duration_s(cost, t_s)


def step_seconds(cost, flops_per_s: float, step_s=None) -> float:
    """Seconds a step of `cost` (a StepCost) takes: the node's own compute model (`step_s`, from
    the view) where known, else its FLOPs over `flops_per_s`."""
    return step_s(cost) if step_s is not None else cost.flops / flops_per_s
