"""Faults a run survives, as trace events with a policy: a step that overflows its node's memory,
and servers that fail and recover.

- **Out of memory** (`failures.oom`). A node's memory ledger (`nodes.MemoryLedger`) holds what it
  really holds; a compute step that brings it over the node's capacity (its saved activations on
  top of weights, training state and received buffers), or a received buffer that does, is an
  `oom` fault row (node, bytes held, capacity) and then, per policy:
  `drop` — the step (or the receive) fails with `OutOfMemory`, a `TransferDropped`, so every
  scheme loses that client's update for the round exactly as it loses one whose transfer an
  outage dropped; `fail_round` — as drop, and a gathered round (`Simulation.gather`) closes with
  no update applied (a `round_failed` row, as under `outage.policy: fail`; schemes that visit
  their clients one after another skip the client as under drop); `abort` — the run stops with
  `stop_reason` naming the node and the bytes (`RunAborted`).
- **Server failures** (`failures.servers`). An edge or cloud node goes down and comes back on a
  schedule (`schedule: [[down_s, up_s], ...]`) or a Poisson process (exponential times between
  failures, mean `mtbf_s`, and to repair, mean `mttr_s`, drawn from the seeded stream `stream`).
  Going down is a `server_down` fault row, coming back a `server_up` marker. What was in flight is
  lost: the step it was computing (a `lost_step` row charging the busy time spent) and every
  transfer on its radio or wired links, or addressed to it or from it, fail with `ServerFailed`
  (a `TransferDropped`: the client's participation is lost, the round closes with what survived).
  Work that would start on it, or a transfer that would cross it, while it is down waits until it
  is back (like a device away, `conditions.available`).

The default (`oom: drop`, no servers failing) changes nothing in a run whose nodes fit their memory.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..config import Strict
from .network import TransferDropped

FiniteTime = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ServerFailureConfig(Strict):
    """When one server is down: a fixed schedule, or a Poisson process of failures and repairs."""

    node: str = Field(description="the edge or cloud node's name (edge.N.name, or edgeN / cloudN by position)")
    schedule: list[tuple[FiniteTime, FiniteTime]] | None = Field(
        None, description="[[down_s, up_s], ...]: down at down_s, back at up_s (simulated seconds), in order, "
                          "not overlapping")
    mtbf_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="Poisson: mean time between "
                                 "failures (exponential up times)")
    mttr_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="Poisson: mean time to repair "
                                 "(exponential down times)")
    stream: str | None = Field(None, description="Poisson: the named seeded stream drawn from; default "
                               "failures/<node>")

    @model_validator(mode="after")
    def _one_model(self):
        poisson = self.mtbf_s is not None or self.mttr_s is not None
        if (self.schedule is None) == (not poisson):
            raise ValueError("give either schedule: [[down_s, up_s], ...] or mtbf_s and mttr_s (Poisson), not both "
                             "and not neither")
        if poisson and (self.mtbf_s is None or self.mttr_s is None):
            raise ValueError("a Poisson failure process needs both mtbf_s and mttr_s")
        last_up = -math.inf
        for down_s, up_s in self.schedule or []:
            if not down_s < up_s:
                raise ValueError(f"schedule: [{down_s:g}, {up_s:g}] comes back before it goes down; allowed: "
                                 "down_s < up_s")
            if down_s < last_up:
                raise ValueError(f"schedule: [{down_s:g}, {up_s:g}] starts before the previous interval ends "
                                 f"(t={last_up:g}); allowed: intervals in order, not overlapping")
            last_up = up_s
        return self


class FailuresConfig(Strict):
    """What goes wrong during a run, and what the run does about it (cosim.world.failures)."""

    oom: Literal["drop", "fail_round", "abort"] = Field(
        "drop", description="a step or received buffer that overflows its node's memory: drop (that client's update "
                            "is lost for the round, like an outage), fail_round (the round closes with no update "
                            "applied), abort (the run stops, stop_reason naming the node and the bytes)")
    servers: list[ServerFailureConfig] = Field([], description="edge/cloud nodes that fail and recover: "
                                               "{node, schedule: [[down_s, up_s], ...]} or {node, mtbf_s, mttr_s}")

    def problems(self, server_names: list[str]) -> list[str]:
        """A failing node that is not a server of the scenario, or one named twice."""
        problems, seen = [], set()
        for i, s in enumerate(self.servers):
            if s.node not in server_names:
                problems.append(f"failures.servers.{i}.node: no edge or cloud node of that name (given {s.node!r}); "
                                f"allowed: {', '.join(server_names)}")
            if s.node in seen:
                problems.append(f"failures.servers.{i}.node: {s.node!r} already has a failure process; allowed: "
                                "one entry per server")
            seen.add(s.node)
        return problems


# --- what the schemes see -----------------------------------------------------------------------------


class OutOfMemory(TransferDropped):
    """A step (or a received buffer) needed more memory than its node has (`failures.oom` drop or
    fail_round). A `TransferDropped`, so a scheme loses the client's update wherever it loses a
    dropped one."""


class ServerFailed(TransferDropped):
    """A server went down while this client's exchange with it was in flight (`failures.servers`)."""


class RunAborted(Exception):
    """The run stops here, for `reason` (its `stop_reason`): e.g. `failures.oom: abort`."""

    def __init__(self, reason: str):
        super().__init__(reason)   # plain args: SimPy re-raises it as type(e)(*e.args)
        self.reason = reason


# --- out of memory --------------------------------------------------------------------------------------


def out_of_memory(node, what: str, held_bytes: int, rnd: int | None = None) -> None:
    """`node` would hold `held_bytes`, over its capacity, in `what` (a step, a received buffer):
    record the `oom` row and raise per `failures.oom` (RunAborted, else OutOfMemory)."""
    sim, held, capacity = node.sim, held_bytes, node.memory.capacity_bytes
    detail = f"{what}: {held} B held, capacity {capacity:.0f} B"
    sim.trace.record(sim.now, sim.now, node.name, "oom", rnd, mem_bytes=held, detail=detail)
    policy = sim.failures.config.oom if getattr(sim, "failures", None) is not None else "drop"
    if policy == "abort":
        raise RunAborted(f"out of memory: {node.name} held {held} B of {capacity:.0f} B ({what}) at "
                         f"t={sim.now:.3f}s")
    raise OutOfMemory(node.name, sim.now, f"out of memory ({detail})")


def fails_round(sim, failures: list) -> bool:
    """Whether the clients' failures of a gathered round fail the whole round: any under
    `outage.policy: fail`, an out-of-memory one under `failures.oom: fail_round`."""
    if not failures:
        return False
    if sim.network.outage.policy == "fail":
        return True
    oom_fails = getattr(sim, "failures", None) is not None and sim.failures.config.oom == "fail_round"
    return oom_fails and any(isinstance(f, OutOfMemory) for f in failures)


# --- server failures -----------------------------------------------------------------------------------


class Downtime:
    """One server's failures: whether it is down now, and the events its work waits on.

    `failures` counts the failures so far: an exchange that notes it at its start and finds it
    changed later knows the server failed meanwhile, even if it is back by then."""

    def __init__(self, sim, node, intervals):
        self.sim, self.node = sim, node
        self.down = False
        self.failures = 0
        self.up_at_s = math.inf
        self._failed = sim.env.event()    # succeeds when the server goes down (then replaced)
        self._back = sim.env.event()      # succeeds when it comes back (then replaced)
        sim.process(self._run(intervals))

    def _run(self, intervals):
        for down_s, up_s in intervals:
            yield self.sim.timeout(max(down_s - self.sim.now, 0.0))
            self._go_down(up_s)
            yield self.sim.timeout(max(up_s - self.sim.now, 0.0))
            self._come_back()

    def _go_down(self, up_s: float) -> None:
        sim = self.sim
        self.down, self.up_at_s = True, up_s
        self.failures += 1
        sim.trace.record(sim.now, sim.now, self.node.name, "server_down", detail=f"back at t={up_s:.6g}s")
        failed, self._failed = self._failed, sim.env.event()
        failed.succeed()
        sim.network.fail_flows_of(self.node, lambda name: ServerFailed(name, sim.now, f"{self.node.name} failed"))

    def _come_back(self) -> None:
        sim = self.sim
        self.down, self.up_at_s = False, math.inf
        sim.trace.record(sim.now, sim.now, self.node.name, "server_up")
        back, self._back = self._back, sim.env.event()
        back.succeed()

    def wait_up(self):
        """Wait until the server is up (at once if it is). Use as `yield from downtime.wait_up()`."""
        while self.down:
            yield self._back

    def run_for(self, duration_s: float):
        """Spend `duration_s` of work on the server; returns False if it failed meanwhile (the
        work is lost at the failure's instant), True if the work finished."""
        before = self.failures
        yield self.sim.timeout(duration_s) | self._failed
        return self.failures == before


def server_intervals(sim, cfg: ServerFailureConfig):
    """The (down_s, up_s) intervals of `cfg`, in order: its schedule, or drawn lazily from its stream
    (up times ~ Exp(mtbf_s), down times ~ Exp(mttr_s))."""
    if cfg.schedule is not None:
        yield from cfg.schedule
        return
    rng = sim.rng(cfg.stream or f"failures/{cfg.node}")
    t = 0.0
    while True:
        down_s = t + float(rng.exponential(cfg.mtbf_s))
        t = down_s + float(rng.exponential(cfg.mttr_s))
        yield down_s, t


class Failures:
    """The run's failure settings and processes (`sim.failures`): the OOM policy, and a `Downtime`
    on every server that fails (`node.downtime`)."""

    def __init__(self, sim, config: FailuresConfig):
        self.sim, self.config = sim, config
        servers = {n.name: n for n in [*sim.edge, *sim.cloud]}
        for cfg in config.servers:
            node = servers[cfg.node]
            node.downtime = Downtime(sim, node, server_intervals(sim, cfg))


def failure_counts(*nodes) -> tuple:
    """How often each of `nodes` has failed so far (0 for nodes that never fail)."""
    return tuple(n.downtime.failures if getattr(n, "downtime", None) is not None else 0 for n in nodes)


def hop_ready(sim, ends: tuple, seen: tuple, a, b):
    """Before a transfer's next hop a → b: raise `ServerFailed` if an end of the transfer (`ends`,
    whose failure counts were `seen` at its start) failed since; wait while a or b is down."""
    now = failure_counts(*ends)
    for node, before, after in zip(ends, seen, now):
        if after != before:
            raise ServerFailed(a.name if a.role == "device" else b.name, sim.now, f"{node.name} failed")
    for node in (a, b):
        if getattr(node, "downtime", None) is not None:
            yield from node.downtime.wait_up()
