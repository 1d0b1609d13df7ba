"""Devices, edge servers and cloud servers: where compute happens, what memory is held, and what
energy is spent.

`compute` runs the real step at its simulated start, then advances the clock by
FLOPs / effective FLOP/s; one job at a time per node (a FIFO queue), so a server serving many
clients serializes them in simulated time as a real accelerator would.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Hashable

import simpy

from .profiles import DeviceProfile


class MemoryLedger:
    """What a node holds, by name, in bytes; tracks the peak of the total."""

    def __init__(self, capacity_bytes: float):
        self.capacity_bytes = capacity_bytes
        self.held: dict[str, int] = {}
        self.total = 0
        self.peak = 0

    def hold(self, name: str, nbytes: int) -> None:
        """Hold `nbytes` under `name` (replacing what that name held before)."""
        self.total += int(nbytes) - self.held.get(name, 0)
        self.held[name] = int(nbytes)
        self.peak = max(self.peak, self.total)

    def release(self, name: str) -> None:
        self.total -= self.held.pop(name, 0)

    def releases_with_prefix(self, prefix: str) -> None:
        for name in [n for n in self.held if n.startswith(prefix)]:
            self.release(name)


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
        self.flops = 0.0
        self.busy_s = 0.0
        self.compute_energy_j = 0.0
        self.radio_energy_j = 0.0
        self.bytes_sent = 0
        self.bytes_received = 0
        from .conditions import StaticConditions
        #: dynamic compute share / radio share / availability (cosim.world.conditions); run.py sets it
        self.conditions = StaticConditions()

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

    def compute(self, fn: Callable[..., Any], *args, kind: str, key: Hashable, rnd: int, hold: str | None = None,
                detail: str = "", **kwargs):
        """Run `fn(*args, **kwargs)` for real and spend its counted FLOPs of simulated time.

        Saved activations are held in the memory ledger for the duration of the step, or under
        `hold` until the caller releases that name (e.g. a device's forward waiting for the
        gradient from the server). Use as `result = yield from node.compute(...)`.
        """
        with self.processor.request() as turn:
            yield turn
            back = self.conditions.next_available_s(self.sim.now)
            if back > self.sim.now:  # away (availability off): nothing computes until it is back
                yield self.sim.env.timeout(back - self.sim.now) if math.isfinite(back) else self.sim.env.event()
            t0 = self.sim.now
            result, cost = self.sim.meter.run((self.role, key), fn, *args, **kwargs)
            duration = cost.flops / self.effective_flops(t0)
            activations = hold or f"activations:{kind}"
            self.memory.hold(activations, cost.saved_activation_bytes)
            mem = self.memory.total
            if duration > 0:
                yield self.sim.env.timeout(duration)
            if hold is None:
                self.memory.release(activations)
            energy = self.profile.compute_power_w * duration
            self.flops += cost.flops
            self.busy_s += duration
            self.compute_energy_j += energy
            self.sim.trace.record(t0, self.sim.now, self.name, kind, rnd, flops=cost.flops, energy_j=energy,
                                  mem_bytes=mem, detail=detail)
        return result

    @property
    def energy_j(self) -> float:
        return self.compute_energy_j + self.radio_energy_j
