"""The control loop: asks the run's controller at its timescales, checks and applies its decisions,
and records every one (a `decision` row in the trace, a row in decisions.csv).

Applying: bandwidth shares go to the network at once (`network.medium.sharing: allocated`), and so
does an association (`network.set_association`: the device is served by that access point until
another decision); cuts and compression are kept here for the scheme to read at its next round
boundary (`cut_of`, `compression_of`), since a cut can only change between rounds (the device's
part is re-sent then, its bytes counted); compute shares and retraining flags are kept for the
scheme to read when it starts a step (`compute_share_of`, `retrain_of`).

Decision epochs: every time the loop asks its controller (a round start, a tick of `small_every_s`)
is an epoch, counted in `epochs`; an agent outside the simulation (cosim.gym) steps the run until
the next epoch begins (`Simulation.drive(main, pause=...)`) and applies its own decision there.
"""
from __future__ import annotations

from ..world.events import declare
from .decision import Decision, DecisionError, check
from .view import observe

declare("decision", "marker", "a controller's decision for one device and setting (detail: timescale setting=value)",
        by="control")


class ControlLoop:
    def __init__(self, sim, config, controller):
        self.sim, self.config, self.controller = sim, config, controller
        self.current = Decision()
        self.log: list[dict] = []
        self._flushed = 0
        #: the scheme says which settings it honours and how to check a cut (`expect`, in its setup)
        self.depth: int | None = None
        self.cut_fits = None
        self.context: dict = {}
        #: decision epochs begun so far (round starts and ticks at which the controller was asked)
        self.epochs = 0

    def expect(self, *, depth: int | None = None, cut_fits=None, **context) -> None:
        """A scheme that takes cut decisions says so (`depth`, `cut_fits(node, cut)`), and publishes
        what its controller needs to predict it (`context`, the view's `extra`)."""
        self.depth, self.cut_fits = depth, cut_fits
        self.context.update(context)

    def _view(self):
        return self.view()

    def view(self):
        """What the controller sees now: `observe`, with the decided compute shares and retraining
        flags and what the scheme publishes per device (`expect(queue=…, drift=…)`: device name -> value)."""
        view = observe(self.sim)
        view.extra = self.context
        queue, drift = self.context.get("queue", {}), self.context.get("drift", {})
        for d in view.devices:
            d.compute_share = self.current.compute_share.get(d.name)
            d.queue, d.drift = float(queue.get(d.name, 0.0)), float(drift.get(d.name, 0.0))
            d.retrain = bool(self.current.retrain.get(d.name, False))
        return view

    @property
    def name(self) -> str:
        return self.controller.name

    def start(self) -> None:
        if self.controller.active and self.config.small_every_s is not None:
            self.sim.process(self._every())

    def _every(self, first_wait_s: float | None = None):
        """Small-timescale decisions every `small_every_s`, for as long as anything else can still
        happen (an empty event queue beside this ticker is a stall or the end: the run's own stall
        detection must see it). `first_wait_s`: the rest of the current period (a resumed run,
        cosim.checkpoint)."""
        wait_s = self.config.small_every_s if first_wait_s is None else first_wait_s
        while True:
            yield self.sim.timeout(wait_s)
            wait_s = self.config.small_every_s
            if self.sim.env.peek() == float("inf"):
                return
            self.epochs += 1
            self.apply(self.controller.small(self.sim, self._view()), "small")

    def round_started(self, rnd: int) -> None:
        """Called by `Simulation.rounds` before round `rnd` runs."""
        if not self.controller.active:
            return
        if self.config.small_every_s is None:
            self.epochs += 1
        if (rnd - 1) % self.config.large_every_rounds == 0:
            self.apply(self.controller.large(self.sim, self._view()), "large")
        if self.config.small_every_s is None:
            self.apply(self.controller.small(self.sim, self._view()), "small")

    def apply(self, decision: Decision | None, timescale: str) -> None:
        if decision is None:
            return
        sim = self.sim
        shares = decision.bandwidth_share or decision.compute_share or decision.association
        groups = _groups(sim, decision.association) if shares else {}
        # a device moved to another access point leaves its shares of the old one behind
        moved = {d for d, ap in decision.association.items() if ap != sim.network.serving_ap(sim.node(d)).name} \
            if decision.association and all(d in {n.name for n in sim.devices} for d in decision.association) else set()
        kept_band = {d: v for d, v in self.current.bandwidth_share.items() if d not in moved}
        kept_compute = {d: v for d, v in self.current.compute_share.items() if d not in moved}
        if not decision.is_empty():
            if decision.cut and self.depth is None:
                raise DecisionError(f"controller {self.name!r}: decides cut layers, which this run's scheme does "
                                    "not take")
            check(decision, self.name, devices={d.name: d for d in sim.devices}, depth=self.depth,
                  cut_fits=self.cut_fits, shares_by_ap=groups,
                  merged_shares={**kept_band, **decision.bandwidth_share},
                  access_points=[ap.name for ap in sim.edge],
                  merged_compute={**kept_compute, **decision.compute_share})
        self.current.bandwidth_share, self.current.compute_share = kept_band, kept_compute
        for table in ("cut", "compression", "bandwidth_share", "compute_share", "association", "retrain"):
            getattr(self.current, table).update(getattr(decision, table))
        for dev, ap in decision.association.items():
            sim.network.set_association(sim.node(dev), sim.node(ap))
        if decision.bandwidth_share or (decision.association and self.current.bandwidth_share):
            sim.network.set_bandwidth_shares(dict(self.current.bandwidth_share), groups)
        rows = decision.rows() + [{"device": "", "setting": k, "value": v} for k, v in decision.predicted.items()]
        for row in rows:
            sim.trace.record(sim.now, sim.now, row["device"], "decision",
                             detail=f"{timescale} {row['setting']}={row['value']}")
            self.log.append({"t_s": sim.now, "round": sim.current_round, "timescale": timescale,
                             "controller": self.name, **row})

    # --- what schemes read ------------------------------------------------------------------------
    def cut_of(self, dev, default: int) -> int:
        return self.current.cut.get(dev.name, default)

    def compression_of(self, dev, default=None):
        return self.current.compression.get(dev.name, default)

    def compute_share_of(self, dev, default: float | None = None) -> float | None:
        """The share of its server's compute decided for `dev` (None: none decided, steps run one
        at a time at the full FLOP/s, `node.compute` without `share=`)."""
        return self.current.compute_share.get(dev.name, default)

    def retrain_of(self, dev, default: bool = False) -> bool:
        return self.current.retrain.get(dev.name, default)

    def new_rows(self) -> list[dict]:
        """Decision rows not handed out before (the writer appends them to decisions.csv)."""
        rows, self._flushed = self.log[self._flushed:], len(self.log)
        return rows


def _groups(sim, association: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Devices by the access point serving them, with `association` (device -> AP) laid over."""
    groups: dict[str, list[str]] = {}
    for dev in sim.devices:
        ap = (association or {}).get(dev.name) or sim.network.serving_ap(dev).name
        groups.setdefault(ap, []).append(dev.name)
    return groups
