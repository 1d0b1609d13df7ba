"""The simulation: one SimPy environment, named seeded RNG streams, and the event trace.

A scheme is a SimPy process written against `Simulation`; everything it does (compute, send,
evaluate) records itself in the trace. Kept small on purpose: nodes, network and learning live in
their own modules and are attached to the simulation by `cosim.run` when it builds the world.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import simpy

#: Columns of the events table, in order (DESIGN §6).
EVENT_COLUMNS = ("t_start", "t_end", "node", "peer", "kind", "round", "bytes", "flops", "energy_j",
                 "mem_bytes", "detail")


class Trace:
    """Append-only list of event rows; a sink (the run writer) drains it as rounds finish."""

    def __init__(self):
        self.rows: list[tuple] = []

    def record(self, t_start: float, t_end: float, node: str, kind: str, rnd: int, *, peer: str = "",
               nbytes: int = 0, flops: float = 0.0, energy_j: float = 0.0, mem_bytes: int = 0,
               detail: str = "") -> None:
        self.rows.append((float(t_start), float(t_end), node, peer, kind, int(rnd), int(nbytes), float(flops),
                          float(energy_j), int(mem_bytes), detail))

    def drain(self) -> list[tuple]:
        rows, self.rows = self.rows, []
        return rows


@dataclass
class StopRule:
    """Stop after `rounds`, at `sim_time_s`, or at `target_accuracy`, whichever comes first."""

    rounds: int
    sim_time_s: float = float("inf")
    target_accuracy: float | None = None


@dataclass
class RoundRecord:
    round: int
    sim_time_s: float
    loss: float
    accuracy: float
    extra: dict = field(default_factory=dict)


def stream_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Seed sequence for stream `name`: independent of every other name and of creation order."""
    digest = hashlib.sha256(name.encode()).digest()
    return np.random.SeedSequence([int(seed), *np.frombuffer(digest[:16], dtype=np.uint32).tolist()])


class Simulation:
    """SimPy environment + RNG streams + trace + the round loop a scheme iterates."""

    def __init__(self, seed: int, stop: StopRule):
        self.env = simpy.Environment()
        self.seed = int(seed)
        self.stop = stop
        self.trace = Trace()
        self.round_records: list[RoundRecord] = []
        self.on_round_end: list[Callable[[RoundRecord], None]] = []
        self._rngs: dict[str, np.random.Generator] = {}
        self.current_round = 0
        self.stop_reason = ""
        # attached by the builder (cosim.run): nodes, network, learner
        self.devices: list = []
        self.edge: list = []
        self.cloud: list = []
        self.network = None
        self.learner = None
        self.codec = None
        self.meter = None

    # --- time and processes --------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.env.now

    def process(self, generator) -> simpy.Process:
        return self.env.process(generator)

    def timeout(self, delay_s: float) -> simpy.Timeout:
        return self.env.timeout(delay_s)

    def all_of(self, events) -> simpy.Event:
        return self.env.all_of(list(events))

    # --- randomness ----------------------------------------------------------------------------
    def rng(self, name: str) -> np.random.Generator:
        """The seeded generator of component `name` (e.g. "selection", "channel/dev3")."""
        gen = self._rngs.get(name)
        if gen is None:
            gen = self._rngs[name] = np.random.default_rng(stream_seed(self.seed, name))
        return gen

    # --- nodes ---------------------------------------------------------------------------------
    @property
    def nodes(self) -> list:
        return [*self.devices, *self.edge, *self.cloud]

    def node(self, name: str):
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    # --- rounds --------------------------------------------------------------------------------
    def rounds(self) -> Iterator[int]:
        """Round numbers 1, 2, … until the stop rule says enough (checked before each round)."""
        rnd = 0
        while True:
            rnd += 1
            reason = self._stop_reason(rnd)
            if reason:
                self.stop_reason = reason
                return
            self.current_round = rnd
            yield rnd

    def _stop_reason(self, next_round: int) -> str:
        if next_round > self.stop.rounds:
            return f"rounds={self.stop.rounds} done"
        if self.now >= self.stop.sim_time_s:
            return f"sim_time_s={self.stop.sim_time_s:g} reached"
        if self.stop.target_accuracy is not None and self.round_records:
            acc = self.round_records[-1].accuracy
            if acc == acc and acc >= self.stop.target_accuracy:
                return f"target_accuracy={self.stop.target_accuracy:g} reached"
        return ""

    def close_round(self, rnd: int, state, train_losses, *, evaluate=None, **extra) -> RoundRecord:
        """Evaluate `state` on the held-out split (a measurement: it takes no simulated time) and
        end the round with the mean training loss. Schemes whose model is not the learner's (a side
        network, a student) pass `evaluate`, a callable returning (accuracy, loss)."""
        accuracy, eval_loss = evaluate() if evaluate is not None else self.learner.evaluate(state)
        self.trace.record(self.now, self.now, "", "eval", rnd, detail=f"accuracy={accuracy:.4f}")
        losses = list(train_losses)
        loss = sum(losses) / len(losses) if losses else float("nan")
        if self.learner.task == "causal_lm":  # accuracy is next-token top-1; perplexity = exp(token cross-entropy)
            extra = {"perplexity": math.exp(eval_loss), **extra}
        return self.end_round(rnd, loss=loss, accuracy=accuracy, eval_loss=eval_loss, **extra)

    def end_round(self, rnd: int, loss: float, accuracy: float, **extra) -> RoundRecord:
        """Close round `rnd`: store its record and let the writer flush everything so far."""
        rec = RoundRecord(rnd, self.now, float(loss), float(accuracy), extra)
        self.round_records.append(rec)
        for callback in self.on_round_end:
            callback(rec)
        return rec

    # --- what schemes do ------------------------------------------------------------------------
    def send(self, src, dst, payload, kind: str, rnd: int, codec=None):
        """Encode `payload`, move its real bytes src → dst, and return it decoded at dst.

        The received buffer is held in dst's memory ledger under `recv:<kind>:<src>` until the
        scheme releases it. Raises `TransferDropped` per the outage policy. `codec` (default: the
        run's `sim.codec`) lets a scheme send one message another way, e.g. quantized.
        Use as `received = yield from sim.send(...)`.
        """
        codec = self.codec if codec is None else codec
        data = codec.encode(payload)
        yield from self.network.transfer(src, dst, len(data), kind, rnd)
        dst.memory.hold(f"recv:{kind}:{src.name}", len(data))
        return codec.decode(data, like=payload)

    def select(self, count: int | None, among=None) -> list:
        """`count` devices drawn at random (stream "selection") from those in coverage now; all of
        them when count is None or larger than what is available."""
        pool = [d for d in (self.devices if among is None else among) if self.network.in_coverage(d)]
        if count is None or count >= len(pool):
            return pool
        picked = self.rng("selection").choice(len(pool), size=count, replace=False)
        return [pool[i] for i in sorted(picked)]

    def client(self, generator) -> simpy.Process:
        """Run a client's part of a round; a dropped transfer ends it with DROPPED instead of
        crashing the run (the drop is already in the trace)."""
        from .network import TransferDropped

        def guarded():
            try:
                return (yield from generator)
            except TransferDropped:
                return DROPPED

        return self.env.process(guarded())

    def survivors(self, finished: dict, rnd: int) -> list | None:
        """Results of the clients that made it; None when the outage policy fails the round."""
        values = list(finished.values())
        kept = [v for v in values if v is not DROPPED]
        if len(kept) < len(values) and self.network.outage.policy == "fail":
            self.trace.record(self.now, self.now, "", "round_failed", rnd,
                              detail=f"{len(values) - len(kept)} of {len(values)} clients dropped")
            return None
        return kept


#: What a client process returns when its transfer was dropped.
DROPPED = type("Dropped", (), {"__repr__": lambda self: "DROPPED"})()
