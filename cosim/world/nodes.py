"""Devices, edge servers and cloud servers: where compute happens, what memory is held, and what
energy is spent.

`compute` runs the real step at its simulated start, then advances the clock by its duration
(`step_duration_s`: FLOPs / effective FLOP/s, or under the roofline model the larger of that and
bytes moved / effective memory bandwidth); one job at a time per node (a FIFO queue), so a server serving many
clients serializes them in simulated time as a real accelerator would — unless the step asks for a
`share` of the node (processor sharing, decided by a controller: cosim.control): then it runs
beside the node's other shared steps at share × its speed, as long as the shares in use add up to at
most 1 (a step waits for its share to be free), and is busy for share × its elapsed time. A step that
brings the node over its memory capacity is an `oom` event, and a server that fails loses the step it was computing
(cosim.world.failures).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable

import simpy

from .events import kind as _kind
from .failures import ServerFailed, out_of_memory
from .profiles import DeviceProfile

#: Shares of a node's compute are counted in these units (integers: shares that add up to 1 in
#: floats never leave a step waiting for 1e-16 of the node).
SHARE_UNITS = 10**9


class Hold:
    """Bytes a node holds for a while: a received buffer, activations saved for backward, a stash.

    SimPy-style scoped resource: `release()` (idempotent) or `with ledger.hold(...) as h:` gives the
    bytes back; `resize(n)` changes what it holds (e.g. the saved activations a step measured). A
    Hold still open when its round closes is reported by the round (see `Simulation.close_round`)."""

    __slots__ = ("ledger", "label", "nbytes", "peer", "reported")

    def __init__(self, ledger: "MemoryLedger", label: str, nbytes: int, peer: str = ""):
        self.ledger, self.label, self.nbytes, self.peer, self.reported = ledger, label, 0, peer, False
        ledger._open[id(self)] = self
        self.resize(nbytes)

    @property
    def open(self) -> bool:
        return id(self) in self.ledger._open

    def resize(self, nbytes: int) -> "Hold":
        if not self.open:
            raise ValueError(f"{self.label}: resize of a released hold")
        self.ledger._change(int(nbytes) - self.nbytes)
        self.nbytes = int(nbytes)
        return self

    def release(self) -> None:
        if self.ledger._open.pop(id(self), None) is not None:
            self.ledger._change(-self.nbytes)

    def __enter__(self) -> "Hold":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Hold {self.label} {self.nbytes} B{'' if self.open else ' released'}>"


class MemoryLedger:
    """What a node holds, in bytes, and the peak of the total.

    Two kinds of entry: long-lived *resident* ones, one per name, set and replaced by name
    (`resident("weights", n)`, `evict("weights")`), and scoped `Hold`s for what an exchange or a
    step holds for a while (`hold(label, n)` returns it; the holder releases it)."""

    def __init__(self, capacity_bytes: float):
        self.capacity_bytes = capacity_bytes
        self.residents: dict[str, int] = {}
        self._open: dict[int, Hold] = {}
        self.total = 0
        self.peak = 0

    def _change(self, delta: int) -> None:
        self.total += delta
        self.peak = max(self.peak, self.total)

    def resident(self, name: str, nbytes: int) -> None:
        """Hold `nbytes` under `name` for as long as the node keeps it (replacing what that name held)."""
        self._change(int(nbytes) - self.residents.get(name, 0))
        self.residents[name] = int(nbytes)

    def evict(self, name: str) -> None:
        """Give back what `name` holds (nothing if it holds nothing)."""
        self.total -= self.residents.pop(name, 0)

    def hold(self, label: str, nbytes: int = 0, *, peer: str = "") -> Hold:
        """A scoped hold of `nbytes` labelled `label` (several may share a label); release it when done."""
        return Hold(self, label, nbytes, peer)

    @property
    def holds(self) -> list[Hold]:
        """The scoped holds still open, oldest first."""
        return list(self._open.values())

    @property
    def held(self) -> dict[str, int]:
        """Bytes by name: residents, and open holds summed by label (a read-only view, for tables and tests)."""
        view = dict(self.residents)
        for h in self._open.values():
            view[h.label] = view.get(h.label, 0) + h.nbytes
        return view


class Node:
    """A machine in the simulation: device ("device"), edge server ("edge") or cloud server ("cloud")."""

    def __init__(self, sim, name: str, role: str, profile_name: str, profile: DeviceProfile, mobility):
        self.sim = sim
        self.name = name
        self.role = role
        self.profile_name = profile_name
        self.profile = profile
        self.mobility = mobility
        self.memory = MemoryLedger(profile.memory_bytes)
        self.processor = simpy.Resource(sim.env, capacity=1)
        self._lanes = None   # simpy.Container of SHARE_UNITS, made by the first shared step
        self.flops = 0.0
        self.busy_s = 0.0
        self.compute_energy_j = 0.0
        self.radio_energy_j = 0.0
        self.bytes_sent = 0
        self.bytes_received = 0
        #: the counted cost of this node's latest step (FLOPs, saved-activation bytes)
        self.last_cost = None
        from .conditions import StaticConditions
        #: dynamic compute share / radio share / availability (cosim.world.conditions); run.py sets it
        self.conditions = StaticConditions()
        #: when this server is down (cosim.world.failures.Downtime); None: it never fails
        self.downtime = None
        #: how a step's duration is worked out (`step_duration_s`): "roofline" or "flops" (runtime.compute_model)
        self.compute_model = "roofline"

    def __repr__(self) -> str:
        return f"<{self.role} {self.name} ({self.profile_name})>"

    def position_m(self, t_s: float):
        """Position [x, y, z] at simulated time t, or None once the node has left the area."""
        return self.mobility.position_m(t_s)

    def effective_flops(self, t_s: float) -> float:
        """FLOP/s a training step reaches on this node at time t: the profile's, times the compute
        share its background load leaves at t (`conditions.compute_share`). A compute step runs at
        the share of its start for its whole duration."""
        return self.profile.effective_flops * self.conditions.compute_share(t_s)

    def step_duration_s(self, cost, t_s: float) -> float:
        """Simulated seconds of a step of `cost` (a StepCost) started at t. "flops": FLOPs / effective
        FLOP/s. "roofline" (Williams, Waterman & Patterson, "Roofline", CACM 52(4), 2009): the step is
        bound by whichever takes longer, its arithmetic or its memory traffic,
        max(FLOPs / effective FLOP/s, bytes moved / effective bandwidth) — FLOPs alone where the profile
        has no bandwidth or the step's traffic was not counted. Background load (the compute share at
        t) slows both."""
        duration = cost.flops / self.effective_flops(t_s)
        bandwidth = self.profile.effective_bandwidth_bytes_per_s
        moved = getattr(cost, "bytes_moved", 0)
        if self.compute_model == "roofline" and bandwidth is not None and moved:
            duration = max(duration, moved / (bandwidth * self.conditions.compute_share(t_s)))
        return duration

    def compute(self, fn: Callable[..., Any], *args, kind: str, key: Hashable | None = None, rnd: int | None = None,
                keep: Hold | None = None, detail: str = "", share: float | None = None, **kwargs):
        """Run `fn(*args, **kwargs)` for real and spend its counted FLOPs of simulated time.

        The FLOP cache key is derived from this node's role, `fn` and the shapes of what it is given
        (`StepMeter.signature`); `key` overrides it for a step whose cost depends on state its
        arguments do not show. Saved activations are held for the step, or parked in `keep` (a
        `Hold` the caller releases, e.g. a device's forward waiting for the server's gradient).
        `rnd` defaults to the current round. `fn` may be a step computed ahead of the clock (an
        `AheadStep` of cosim.learn.workers): its result and counted cost are collected at the step's
        simulated start. Raises `OutOfMemory` (or `RunAborted`, per `failures.oom`) when the step's
        saved activations bring the node over its capacity, `ServerFailed` when the node fails
        mid-step; a step waits while its node is down. `share` in (0, 1]: run beside other shared
        steps at share × FLOP/s (processor sharing), for duration / share, busy for the duration
        (its row's detail says `share=`). Use as `result = yield from node.compute(...)`.
        """
        kind = _kind(kind, category="compute").name
        rnd = self.sim.current_round if rnd is None else rnd
        ahead = hasattr(fn, "collect")   # computed ahead of the clock on a worker (cosim.learn.workers)
        if key is None and not ahead:
            key = self.sim.meter.signature(fn, args, kwargs)
        if share is not None:
            detail = f"{detail} share={share:.9g}".strip()
        with self._turn(share) as turn:
            yield turn
            back = self.conditions.next_available_s(self.sim.now)
            if back > self.sim.now:  # away (availability off): nothing computes until it is back
                yield self.sim.env.timeout(back - self.sim.now) if math.isfinite(back) else self.sim.env.event()
            if self.downtime is not None:   # a failed server computes nothing until it is back
                yield from self.downtime.wait_up()
            t0 = self.sim.now
            result, cost = fn.collect() if ahead else self.sim.meter.run((self.role, key), fn, *args, **kwargs)
            self.last_cost = cost
            duration = self.step_duration_s(cost, t0)
            saved = keep.resize(cost.saved_activation_bytes) if keep is not None else \
                self.memory.hold(f"activations:{kind}", cost.saved_activation_bytes)
            mem = self.memory.total
            if mem > self.memory.capacity_bytes:   # the step does not fit: failures.oom decides
                if keep is None:
                    saved.release()
                out_of_memory(self, f"{kind} step", mem, rnd)
            elapsed_s = duration if share is None else duration / share   # processor sharing: share × FLOP/s
            if duration > 0:
                if self.downtime is None:
                    yield self.sim.env.timeout(elapsed_s)
                elif not (yield from self.downtime.run_for(elapsed_s)):
                    if keep is None:
                        saved.release()
                    self._lose_step(kind, rnd, t0, cost.flops, elapsed_s, share)
            if keep is None:
                saved.release()
            energy = self.profile.compute_power_w * duration
            self.flops += cost.flops
            self.busy_s += duration
            self.compute_energy_j += energy
            self.sim.trace.record(t0, self.sim.now, self.name, kind, rnd, flops=cost.flops, energy_j=energy,
                                  mem_bytes=mem, detail=detail)
        return result

    def _turn(self, share: float | None):
        """What a step waits for: the processor (one step at a time), or its share of the node."""
        if share is None and self._lanes is None:
            return self.processor.request()
        if share is None:   # the node is shared out: a step without a share waits for all of it
            return _Lane(self, SHARE_UNITS, None)
        if not 0.0 < share <= 1.0 + 1e-6:
            raise ValueError(f"{self.name}: compute share {share!r} outside (0, 1]")
        if self._lanes is None:
            self._lanes = simpy.Container(self.sim.env, capacity=SHARE_UNITS, init=SHARE_UNITS)
        return _Lane(self, min(SHARE_UNITS, max(1, round(share * SHARE_UNITS))), share)

    def _lose_step(self, kind: str, rnd: int, t0: float, flops: float, duration_s: float,
                   share: float | None = None) -> None:
        """The server failed `now - t0` into a step of `duration_s`: the time spent so far is busy
        (× its share, for a shared step) and its energy spent, the result is lost (a `lost_step`
        row), the caller sees ServerFailed."""
        spent_s = self.sim.now - t0
        busy_s = spent_s if share is None else spent_s * share
        energy = self.profile.compute_power_w * busy_s
        self.busy_s += busy_s
        self.compute_energy_j += energy
        self.sim.trace.record(t0, self.sim.now, self.name, "lost_step", rnd, flops=flops * spent_s / duration_s,
                              energy_j=energy, mem_bytes=self.memory.total,
                              detail=f"{kind}: {self.name} failed" + ("" if share is None else f" share={share:.9g}"))
        raise ServerFailed(self.name, self.sim.now, f"{kind} step lost: {self.name} failed")

    @property
    def energy_j(self) -> float:
        return self.compute_energy_j + self.radio_energy_j


class _Lane:
    """A shared step's hold on `units` of its node's compute (`Node._turn`): the get event to wait
    for on entry; the units back (or the wait cancelled) on exit. The run's verifier hears of each
    start, to check that the shares in use never add up to more than 1 (cosim.world.invariants)."""

    def __init__(self, node: Node, units: int, share: float | None):
        self.node, self.units, self.share = node, units, share
        self.get = node._lanes.get(units)
        self.get.callbacks.append(self._started)

    def _started(self, _event) -> None:
        verifier = getattr(self.node.sim, "verifier", None)
        if verifier is not None and self.share is not None:   # (a step alone is checked as one)
            verifier.share_started(self.node.name, self.share)

    def __enter__(self):
        return self.get

    def __exit__(self, *exc) -> None:
        if self.get.triggered:
            self.node._lanes.put(self.units)
        else:
            self.get.cancel()
