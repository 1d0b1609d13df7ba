"""Run-time invariants (`runtime.verify`, `cosim run --verify`, COSIM_VERIFY=1): what must hold of
every run, checked on the trace as it is written, so that a bookkeeping bug stops the run at the
event that broke it instead of skewing a table.

Checked at every trace row (a few comparisons each):
- **time**: simulated time never goes back; a row ends no earlier than it starts, and not after now;
- **transfer bytes**: a transfer row's bytes are what its flow carried: Σ rate × dt over the flow's
  airtime (`Medium.carry`) equals 8 × bytes, within the medium's done tolerance;
- **one job at a time**: a node's compute steps (and steps lost to a failure) never overlap — except
  shared steps (processor sharing, `node.compute(..., share=)`, a `share=` in the row's detail),
  which overlap only each other, with the shares in use at any instant adding up to at most 1
  (counted as each starts: `share_started`);
- **energy per row**: a step's energy is the node's compute power × its duration (× its share for a
  shared step: it kept that fraction of the node busy), a transfer's the transmit power × its
  airtime;
- **buffers**: no received buffer outlives its exchange (a `leaked_buffer` row, `report_leaks`);
- **memory**: no step runs with its node over capacity (that step is an `oom` event instead).

Checked at every round end and when the run ends, per node, from the trace:
- **energy**: compute energy = compute power × busy time, with busy time = Σ of the node's step
  durations in the trace (× share for shared steps); radio energy = Σ transmit power × airtime of what it sent;
- **memory**: a ledger whose peak exceeded the node's capacity has an `oom` row.

A violation raises `InvariantViolation` naming the invariant and the event. Cost: one call per
trace row and one pass over the nodes per round.
"""
from __future__ import annotations

import math
import os
import re

#: Simulated-time slack for comparing instants: far below any step or transfer, above float rounding.
TIME_EPS_S = 1e-9
#: Relative slack of sums of many floats (busy time, energy) against their running totals.
REL_TOL = 1e-6
#: Bits a finished flow may be off by: its done rule leaves < 1e-6 bits + rate × 1 ns (network.py),
#: and a 100 Gbit/s wired pipe moves 100 bits in 1 ns.
BITS_SLACK = 128.0
#: The environment variable that turns verification on for every run (the test suite sets it).
ENV_VAR = "COSIM_VERIFY"
#: A shared step's row says its share in its detail (cosim.world.nodes: `share=<float>`).
_SHARE = re.compile(r"(?:^| )share=([0-9.eE+-]+)(?: |$)")


def share_of(detail: str) -> float | None:
    """The compute share a step row ran at (None: it had its node to itself)."""
    found = _SHARE.search(detail)
    return float(found.group(1)) if found else None


class InvariantViolation(RuntimeError):
    """A run-time invariant does not hold: the message names the invariant and the event."""


def wanted(runtime_verify: bool) -> bool:
    """Whether a run verifies: `runtime.verify`, or COSIM_VERIFY=1 in the environment."""
    return bool(runtime_verify) or os.environ.get(ENV_VAR, "") not in ("", "0")


def describe(row: tuple) -> str:
    t0, t1, node, peer, kind, rnd, nbytes, flops, energy, mem, detail = row[:11]
    parts = [f"{kind} t={t0:.9g}..{t1:.9g}s node={node or '-'}"]
    if peer:
        parts.append(f"peer={peer}")
    parts.append(f"round={rnd}")
    for name, value in (("bytes", nbytes), ("flops", flops), ("energy_j", energy), ("mem_bytes", mem)):
        if value:
            parts.append(f"{name}={value:.9g}")
    if detail:
        parts.append(f"detail={detail!r}")
    return " ".join(parts)


class Verifier:
    """Watches one simulation's trace (`Trace.observer`) and its round ends."""

    def __init__(self, sim):
        self.sim = sim
        self._nodes = {n.name: n for n in sim.nodes}
        self._last_now = -math.inf
        self._busy_until: dict[str, float] = {}      # end of the latest step of either kind
        self._alone_until: dict[str, float] = {}     # end of the latest step that had its node to itself
        self._shared_load: dict[str, float] = {}     # Σ shares of the shared steps running now
        self._busy_s: dict[str, float] = {}      # Σ step durations per node, from the trace
        self._airtime_j: dict[str, float] = {}   # Σ tx power × airtime per sender, from the carried flows
        self._oom: set[str] = set()
        self._carried = None                     # the flow whose transfer row comes next
        sim.trace.observer = self.row
        sim.on_round_end.append(lambda rec: self.totals(f"the end of round {rec.round}"))

    def fail(self, invariant: str, event: str, why: str):
        raise InvariantViolation(f"invariant '{invariant}' violated by {event}: {why}")

    # --- per row -----------------------------------------------------------------------------------
    def carried(self, src: str, dst: str, bits: float, airtime_s: float, tx_w: float) -> None:
        """A hop's flow finished (Network.transfer): its row comes next."""
        self._carried = (src, dst, bits, airtime_s, tx_w)

    def share_started(self, node: str, share: float) -> None:
        """A shared step took its share of `node` (cosim.world.nodes): the shares in use ≤ 1."""
        load = self._shared_load.get(node, 0.0) + share
        if load > 1.0 + 1e-6:
            self.fail("one job at a time", f"a shared step starting at t={self.sim.now:.9g}s node={node}",
                      f"the shares in use add up to {load:.9g} > 1")
        self._shared_load[node] = load

    def row(self, row: tuple) -> None:
        t0, t1, node, peer, kind, _rnd, nbytes, _flops, energy, mem, _detail, category = row
        now = self.sim.now
        if now < self._last_now or t1 < t0 - TIME_EPS_S or t1 > now + TIME_EPS_S:
            self.fail("time", describe(row), f"simulated time went back (now {now:.9g}s, last seen "
                                             f"{self._last_now:.9g}s) or the row ends before it starts / after now")
        self._last_now = now
        if category == "compute" or kind == "lost_step":
            self._step(row, t0, t1, node, energy, mem, category, share_of(_detail))
        elif category == "transfer":
            self._transfer(row, t0, t1, node, peer, nbytes, energy)
        elif kind == "leaked_buffer":
            self.fail("buffers", describe(row), "a received buffer outlived its exchange")
        elif kind == "oom":
            self._oom.add(node)

    def _step(self, row, t0, t1, node, energy, mem, category, share=None) -> None:
        n = self._nodes.get(node)
        if n is None:
            return
        # a step alone starts after every step before it; a shared one after every step alone
        until = (self._busy_until if share is None else self._alone_until).get(node, -math.inf)
        if t0 < until - TIME_EPS_S:
            self.fail("one job at a time", describe(row), f"{node} was still computing until t={until:.9g}s")
        self._busy_until[node] = max(t1, self._busy_until.get(node, -math.inf))
        if share is None:
            self._alone_until[node] = t1
        else:
            self._shared_load[node] = self._shared_load.get(node, 0.0) - share
        busy = (t1 - t0) * (1.0 if share is None else share)
        self._busy_s[node] = self._busy_s.get(node, 0.0) + busy
        expected = n.profile.compute_power_w * busy
        if not math.isclose(energy, expected, rel_tol=REL_TOL, abs_tol=1e-12):
            self.fail("energy", describe(row), f"a step's energy should be power × duration = {expected:.9g} J")
        if category == "compute" and mem > n.memory.capacity_bytes:
            self.fail("memory", describe(row), f"the step ran with {node} over its capacity "
                                               f"({n.memory.capacity_bytes:.0f} B) without an oom event")

    def _transfer(self, row, t0, t1, node, peer, nbytes, energy) -> None:
        carried, self._carried = self._carried, None
        if carried is None or carried[:2] != (node, peer):
            self.fail("transfer bytes", describe(row), "no flow carried this transfer")
        _, _, bits, airtime_s, tx_w = carried
        if abs(bits - 8 * nbytes) > BITS_SLACK + 1e-9 * bits:
            self.fail("transfer bytes", describe(row), f"airtime × rates integrates to {bits:.9g} bits, "
                                                       f"the row says {8 * nbytes} bits")
        if airtime_s > (t1 - t0) + TIME_EPS_S:
            self.fail("transfer bytes", describe(row), f"airtime {airtime_s:.9g}s is longer than the transfer")
        if not math.isclose(energy, tx_w * airtime_s, rel_tol=REL_TOL, abs_tol=1e-12):
            self.fail("energy", describe(row), f"a transfer's energy should be tx power × airtime = "
                                               f"{tx_w * airtime_s:.9g} J")
        self._airtime_j[node] = self._airtime_j.get(node, 0.0) + tx_w * airtime_s

    # --- per round ---------------------------------------------------------------------------------
    def totals(self, when: str) -> None:
        """Per node: energy = compute power × busy (busy from the trace) + tx power × airtime, and
        no memory peak over capacity without an `oom` row."""
        for name, n in self._nodes.items():
            event = f"{when} (node {name})"
            busy = self._busy_s.get(name, 0.0)
            if not math.isclose(n.busy_s, busy, rel_tol=REL_TOL, abs_tol=1e-9):
                self.fail("energy", event, f"busy time {n.busy_s:.9g}s but its steps in the trace last {busy:.9g}s")
            compute_j = n.profile.compute_power_w * busy
            if not math.isclose(n.compute_energy_j, compute_j, rel_tol=REL_TOL, abs_tol=1e-9):
                self.fail("energy", event, f"compute energy {n.compute_energy_j:.9g} J, power × busy = "
                                           f"{compute_j:.9g} J")
            radio_j = self._airtime_j.get(name, 0.0)
            if not math.isclose(n.radio_energy_j, radio_j, rel_tol=REL_TOL, abs_tol=1e-9):
                self.fail("energy", event, f"radio energy {n.radio_energy_j:.9g} J, Σ tx power × airtime = "
                                           f"{radio_j:.9g} J")
            if n.memory.peak > n.memory.capacity_bytes and name not in self._oom:
                self.fail("memory", event, f"peak {n.memory.peak} B over the capacity "
                                           f"{n.memory.capacity_bytes:.0f} B without an oom event")

    def finish(self) -> None:
        """The run ended: the per-node totals once more (rows after the last round included)."""
        if self._carried is not None:
            self.fail("transfer bytes", f"the run's end (flow {self._carried[0]}->{self._carried[1]})",
                      "a finished flow never got its transfer row")
        self.totals("the run's end")
