"""The two-timescale digital-twin manager of arXiv 2411.18329 (`control.controller: dt`).

Large timescale (every `large_every_rounds` rounds), from the twin's statistics — the large-scale
rate of every device to every access point, the servers' FLOP/s, and what the scheme publishes of
each device's expected work (`work_flops`, `upload_bytes`, `retrain_flops`) and data drift
(`drift`):
- association: `nearest` (the baseline), or `twin`: devices in decreasing order of expected work
  each join the access point that minimizes their expected epoch delay — upload at the rate of an
  equal share of that AP's band plus the server's queued work, theirs included, at its FLOP/s —
  the load-aware association the paper's large-timescale problem makes (its §IV-A, solved there
  by a matching; a greedy pass here);
- retraining: `drift` retrains the devices whose drift indicator reached `drift_threshold` (their
  data moved to a domain their model has not learned), `always` every device, `never` none.
Small timescale (every round): each server splits its compute among the devices it serves —
`equal`, `greedy` (in proportion to each device's expected work: they all finish together), or
`ppo`, a policy trained with PPO in cosim.gym (the paper's DRL agent, §IV-B), loaded from
`control.policy` (cosim.control.rl).
"""
from __future__ import annotations

import numpy as np

from ..world.network import large_scale_rate_bps
from .controllers import Controller
from .decision import Decision


class DtController(Controller):
    name = "dt"

    def __init__(self, config):
        super().__init__(config)
        self.policy = None   # loaded at the first small decision (the device count comes from the run)
        self._retrain_decided = False   # a large decision's retraining holds for its own epoch only

    def large(self, sim, view) -> Decision:
        extra = view.extra
        names = [d.name for d in view.devices]
        if self.config.retrain == "always":
            retrain = dict.fromkeys(names, True)
        elif self.config.retrain == "never":
            retrain = dict.fromkeys(names, False)
        else:
            retrain = {d.name: d.drift >= self.config.drift_threshold for d in view.devices}
        if self.config.association == "nearest":
            association = {d.name: _nearest(sim, d) for d in view.devices}
        else:
            association = _twin_association(sim, view, retrain, extra)
        self._retrain_decided = True
        return Decision(association=association, retrain=retrain)

    def small(self, sim, view) -> Decision:
        again = self._retrain_decided
        if not again:   # an epoch after the large one: nobody retrains again (the view shows it already)
            for d in view.devices:
                d.retrain = False
        decision = self._shares(sim, view)
        if not again:
            decision.retrain = {d.name: False for d in view.devices}
        self._retrain_decided = False
        return decision

    def _shares(self, sim, view) -> Decision:
        if self.config.compute == "ppo":
            if self.policy is None:
                from .rl import Policy

                self.policy = Policy(self.config.policy_path(), len(view.devices))
            return self.policy.decide(view)
        work = _work(sim, view, view.extra)
        shares = {}
        for _ap, members in view.by_ap().items():
            weight = {d: (work[d] if self.config.compute == "greedy" else 1.0) for d in members}
            total = sum(weight.values())
            shares.update({d: (w / total if total > 0 else 1.0 / len(members)) for d, w in weight.items()})
        return Decision(compute_share=shares)


def _work(sim, view, extra, retrain=None) -> dict[str, float]:
    """Expected FLOPs of each device's next epoch at its server: its requests, and a retraining."""
    work_flops, retrain_flops = extra.get("work_flops", {}), float(extra.get("retrain_flops", 0.0))
    out = {}
    for d in view.devices:
        again = d.retrain if retrain is None else retrain[d.name]
        out[d.name] = float(work_flops.get(d.name, 1.0)) + (retrain_flops if again else 0.0)
    return out


def _nearest(sim, d) -> str:
    if d.position_m is None:
        return d.ap
    return min(sim.edge, key=lambda ap: float(np.linalg.norm(ap.position_m(sim.now) - d.position_m))).name


def _twin_association(sim, view, retrain, extra) -> dict[str, str]:
    """Greedy load-aware association on the twin's expected delays (see the module doc)."""
    work = _work(sim, view, extra, retrain)
    upload = extra.get("upload_bytes", {})
    load = {ap.name: 0.0 for ap in sim.edge}
    members = {ap.name: 0 for ap in sim.edge}
    chosen = {}
    for d in sorted(view.devices, key=lambda d: (-work[d.name], d.name)):
        dev = sim.node(d.name)

        def delay_s(ap):
            full = sim.network.bandwidth_of(ap)
            link = sim.network.link_to(dev, ap)
            if not link.in_coverage(sim.now, full):
                return np.inf
            rate = large_scale_rate_bps(link, sim.now, True, full / (members[ap.name] + 1), full)
            up = 8.0 * float(upload.get(d.name, 0.0)) / rate if rate > 0 else np.inf
            return up + (load[ap.name] + work[d.name]) / ap.effective_flops(sim.now)

        best = min(sim.edge, key=lambda ap: (delay_s(ap), ap.name))
        chosen[d.name] = best.name
        load[best.name] += work[d.name]
        members[best.name] += 1
    return chosen
