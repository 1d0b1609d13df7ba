"""The simulation: one SimPy environment, named seeded RNG streams, and the event trace.

A scheme is a SimPy process written against `Simulation`; everything it does (compute, send,
evaluate) records itself in the trace. Kept small on purpose: nodes, network and learning live in
their own modules and are attached to the simulation by `cosim.run` when it builds the world.
"""
from __future__ import annotations

import hashlib
import math
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import simpy

from . import events

#: Columns of the events table, in order (DESIGN §6); `category` is the declared kind's (events.py).
EVENT_COLUMNS = ("t_start", "t_end", "node", "peer", "kind", "round", "bytes", "flops", "energy_j",
                 "mem_bytes", "detail", "category")


class Trace:
    """Append-only list of event rows; a sink (the run writer) drains it as rounds finish.

    Every row's kind must be declared (cosim.world.events); its category is written beside it.
    `rnd` defaults to the round in progress (`current_round()`)."""

    def __init__(self, current_round: Callable[[], int] = lambda: 0):
        self.rows: list[tuple] = []
        self.current_round = current_round
        self._base = 0   # the absolute index of rows[0] (rows before it were drained)
        self._held: set[int] = set()   # rows awaiting `amend`: a drain stops before the first
        #: called with every row as it is recorded (cosim.world.invariants.Verifier under runtime.verify)
        self.observer: Callable[[tuple], None] | None = None

    def record(self, t_start: float, t_end: float, node: str, kind: str, rnd: int | None = None, *, peer: str = "",
               nbytes: int = 0, flops: float = 0.0, energy_j: float = 0.0, mem_bytes: int = 0,
               detail: str = "", hold: bool = False) -> int:
        """Append a row; returns its index for `amend`. A row recorded with `hold` (an evaluation
        whose result is still being computed) stays, with every row after it, until amended."""
        declared = events.kind(kind)
        rnd = self.current_round() if rnd is None else rnd
        row = (float(t_start), float(t_end), node, peer, declared.name, int(rnd), int(nbytes), float(flops),
               float(energy_j), int(mem_bytes), detail, declared.category)
        self.rows.append(row)
        if self.observer is not None:
            self.observer(row)
        index = self._base + len(self.rows) - 1
        if hold:
            self._held.add(index)
        return index

    def amend(self, index: int, detail: str) -> None:
        """Set the detail of row `index` (held since it was recorded) and release it: an
        evaluation's result that arrives after the row took its place in the trace."""
        i = index - self._base
        self.rows[i] = (*self.rows[i][:10], detail, self.rows[i][11])
        self._held.discard(index)

    def drain(self) -> list[tuple]:
        """The rows recorded since the last drain, up to the first one still held."""
        cut = min(self._held) - self._base if self._held else len(self.rows)
        rows, self.rows = self.rows[:cut], self.rows[cut:]
        self._base += cut
        return rows


@dataclass
class StopRule:
    """Stop after `rounds`, at `sim_time_s`, or at `target_accuracy`, whichever comes first; or
    after `max_wall_s` of host time (runtime.max_wall_s: only ever read to stop, never to time).

    `rounds` and `target_accuracy` are read between rounds; `sim_time_s` and `max_wall_s` between
    any two events (`Simulation.drive`), so they end a run mid-round."""

    rounds: int
    sim_time_s: float = float("inf")
    target_accuracy: float | None = None
    max_wall_s: float = float("inf")


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
    return np.random.SeedSequence([int(seed), *struct.unpack("=4I", digest[:16])])   # four native uint32


def stream_generator(seed: int, name: str) -> np.random.Generator:
    """The generator of stream `name` (`np.random.default_rng(stream_seed(seed, name))`, the same
    numbers): built directly, as a moving device's radio link builds one per fading block (~90,000
    in a 1,000-device round); default_rng's wrapper and numpy's frombuffer took ~16 -> ~14.5 µs
    of each here."""
    return np.random.Generator(np.random.PCG64(stream_seed(seed, name)))


class Simulation:
    """SimPy environment + RNG streams + trace + the round loop a scheme iterates."""

    def __init__(self, seed: int, stop: StopRule):
        self.env = simpy.Environment()
        self.seed = int(seed)
        self.stop = stop
        self.trace = Trace(lambda: self.current_round)
        self.round_records: list[RoundRecord] = []
        self._unsettled: list[tuple] = []   # closed rounds whose evaluation is still running (`settle`)
        self.on_round_end: list[Callable[[RoundRecord], None]] = []
        #: called with the scheme's state between two rounds of a resumable scheme (`boundary`)
        self.on_round_boundary: list[Callable[[Any], None]] = []
        self._rngs: dict[str, np.random.Generator] = {}
        self.current_round = 0
        self.stop_reason = ""
        #: the scheme's state a resumed run starts from (cosim.checkpoint; taken by round_loop)
        self.resumed = None
        #: a resumed run's rounds whose evaluation was running at the checkpoint: (record, row, state)
        self.rescore: list[tuple] = []
        #: set by a signal handler (cosim.interrupts): the run stops before the next event
        self.interrupted = ""
        #: called with the simulation after an interrupted run's rows are written, before
        #: `cosim.run` raises RunInterrupted: the place for a checkpoint hook (cosim.checkpoint)
        self.on_interrupt: list[Callable[["Simulation"], None]] = []
        #: whether a round needs a device in coverage to run (false: a scheme without transfers)
        self.rounds_need_coverage = True
        self._wall_start_s = math.inf   # host clock at `drive`'s start, for `stop.max_wall_s` only
        # attached by the builder (cosim.run): nodes, network, learner
        self.devices: list = []
        self.edge: list = []
        self.cloud: list = []
        self.network = None
        self.learner = None
        self.codec = None
        self.meter = None
        self.control = None
        self.failures = None   # cosim.world.failures.Failures: the OOM policy, failing servers
        self.verifier = None   # cosim.world.invariants.Verifier under runtime.verify
        #: runtime.mode twin (cosim.learn.twin): steps replay cached costs (the meter), transfers are
        #: sized from shapes (`send`), nothing is scored (`close_round`)
        self.twin = False

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
            gen = self._rngs[name] = stream_generator(self.seed, name)
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
        """Round numbers 1, 2, … until the stop rule says enough (checked before each round).

        A round that no device could take part in (none in coverage) waits for the next coverage
        change first (`_wait_for_participants`), or the run ends when no device can come back. A
        resumed run goes on after the round its checkpoint closed."""
        rnd = self.current_round
        while True:
            rnd += 1
            reason = self._stop_reason(rnd)
            if not reason:
                self.current_round = rnd   # what happens while it waits for a participant is the round's
                reason = self._wait_for_participants(rnd)
            if reason:
                self.stop_reason = self.stop_reason or reason
                return
            if self.control is not None:   # decisions for this round (cosim.control), before it runs
                self.control.round_started(rnd)
            yield rnd

    def boundary(self, state) -> None:
        """Round `current_round` is over and `state` is all the scheme carries into the next one
        (schemes.common.round_loop): the moment a checkpoint can be taken (cosim.checkpoint)."""
        for callback in self.on_round_boundary:
            callback(state)

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

    # --- progress: the run either advances or stops with its reason ------------------------------
    def drive(self, main: simpy.Process, pause: Callable[[], bool] | None = None) -> None:
        """Step the environment until `main` (the scheme's process) ends, or until the run must stop
        before its next event: that event lies beyond `stop.sim_time_s` (the clock is moved to the
        limit: a round in progress ends there), the host's wall clock passed `stop.max_wall_s`, a
        signal asked to stop (`interrupted`), or no event is left (every process waits on something
        that never comes). `stop_reason` says which. What `env.run(until=main)` does otherwise: an
        error in the scheme's process is raised here. The wall clock counts from the first call.
        `pause()`, asked after every event: when true, return with the run where it is (an agent
        stepping it epoch by epoch, cosim.gym); the next call goes on from there."""
        if not math.isfinite(self._wall_start_s):
            self._wall_start_s = time.monotonic()
        while not main.processed:
            reason = self._halt_reason() or self._stalled()
            if reason:
                self._halt(reason)
                return
            self.env.step()
            if pause is not None and pause():
                return

    def _halt_reason(self) -> str:
        """Why the run must stop before the next event ('' if it need not)."""
        if self.interrupted:
            return self.interrupted
        if self.env.peek() > self.stop.sim_time_s:
            self._advance_to(self.stop.sim_time_s)
            return f"sim_time_s={self.stop.sim_time_s:g} reached"
        if time.monotonic() - self._wall_start_s >= self.stop.max_wall_s:
            return f"max_wall_s={self.stop.max_wall_s:g} reached"
        return ""

    def _stalled(self) -> str:
        if self.env.peek() == math.inf:
            return f"stalled at t={self.now:.3f}s: no event left to process"
        return ""

    def _halt(self, reason: str) -> None:
        """Stop mid-run: the round in progress is not closed (no rounds.csv row: its model never
        reached the server); its events so far stay in the trace, with a `run_stopped` row."""
        self.stop_reason = reason
        closed = max([r.round for r in self.round_records] + [u[0].round for u in self._unsettled], default=-1)
        unfinished = self.current_round if self.current_round > closed else None
        self.trace.record(self.now, self.now, "", "run_stopped", detail=reason + (
            f"; round {unfinished} unfinished" if unfinished is not None else ""))

    def _advance_to(self, t_s: float) -> None:
        """Move the clock to `t_s` when no event comes before it (an urgent event at `t_s`)."""
        if t_s > self.now:
            marker = self.env.event()
            marker._ok, marker._value = True, None
            self.env.schedule(marker, simpy.core.URGENT, t_s - self.now)
            self.env.step()

    def _wait_for_participants(self, rnd: int) -> str:
        """Before round `rnd`: when no device is in coverage, step the simulation (in place: the
        round loop is a plain iterator inside the scheme's process) to each next instant the
        coverage of some device may change, until one is in coverage — one `no_participant` fault
        row spans the wait. Returns a stop reason when no device can ever come back (every link
        state is final: left for good, beyond range and static) or a stop limit comes first."""
        if not self.rounds_need_coverage or self.network is None or not self.devices:
            return ""
        if any(self.network.in_coverage(d) for d in self.devices):
            return ""
        t0, active = self.now, self.env.active_process
        reason = ""
        try:
            while not reason:
                t_next = min(self.network.next_coverage_change_s(d, self.now) for d in self.devices)
                if not math.isfinite(t_next):
                    reason = "no participant can return"
                    break
                reason = self._step_until(t_next)
                if not reason and any(self.network.in_coverage(d) for d in self.devices):
                    break
        finally:
            self.env._active_proc = active   # the nested steps ran other processes
        detail = (f"before round {rnd}: no device in coverage for {self.now - t0:.6g} s" if not reason else
                  f"before round {rnd}: no device in coverage since t={t0:.6g}s; {reason}")
        self.trace.record(t0, self.now, "", "no_participant", rnd, detail=detail)
        if reason and reason != "no participant can return":
            self.stop_reason = reason
        return reason

    def _step_until(self, t_s: float) -> str:
        """Process every event before `t_s`, then move the clock to `t_s`; a stop reason instead
        when the run must stop first (a stop limit, a signal)."""
        while self.env.peek() < t_s:
            reason = self._halt_reason()
            if reason:
                return reason
            self.env.step()
        if t_s > self.stop.sim_time_s:
            return self._halt_reason()
        self._advance_to(t_s)
        return ""

    def close_round(self, rnd: int, state, train_losses, *, evaluate=None, **extra) -> RoundRecord:
        """Evaluate `state` on the held-out split (a measurement: it takes no simulated time) and
        end the round with the mean training loss. Schemes whose model is not the learner's (a side
        network, a student) pass `evaluate`, a callable returning (accuracy, loss)."""
        ahead = self.learner.ahead
        # scored on the workers while the run goes on, the round's record waiting for it (`settle`),
        # unless the stop rule needs the accuracy now
        deferred = evaluate is None and ahead is not None and self.stop.target_accuracy is None
        self.settle(wait=not deferred)   # earlier rounds whose scores are in; the run never waits for one
        self.report_leaks(rnd)
        if self.twin:   # nothing was trained: no score, no training loss (cosim.learn.twin)
            measure, train_losses = _unscored, ()
        elif deferred:
            measure = ahead.evaluate_later(state)
        else:
            measure = evaluate if evaluate is not None else (lambda: self.learner.evaluate(state))
        row = self.trace.record(self.now, self.now, "", "eval", rnd, hold=True)
        losses = list(train_losses)
        loss = sum(losses) / len(losses) if losses else float("nan")
        rec = RoundRecord(rnd, self.now, float(loss), float("nan"), extra)
        self._unsettled.append((rec, row, measure))
        if not deferred:
            self.settle()
        return rec

    def rescore_pending(self) -> None:
        """Queue again the evaluations a resumed run's checkpoint kept (`rescore`), in round order."""
        ahead = self.learner.ahead
        for rec, row, state in self.rescore:
            measure = ahead.evaluate_later(state) if ahead is not None else \
                (lambda state=state: self.learner.evaluate(state))
            self._unsettled.append((rec, row, measure))
        self.rescore = []

    def settle(self, wait: bool = True) -> None:
        """Finish the rounds whose evaluation was still running, in order: their accuracy goes into
        the eval row and the record, and the round ends (the writer flushes). With `wait=False`
        only those whose scores are all in (a deferred evaluation: `PendingScore.done`)."""
        if wait and self.learner is not None and self.learner.ahead is not None:
            self.learner.ahead.queue_later()   # every evaluation on the workers before waiting for the first
        while self._unsettled:
            rec, row, measure = self._unsettled[0]
            if not wait and not getattr(measure, "done", lambda: True)():
                return
            self._unsettled.pop(0)
            accuracy, eval_loss = measure.result() if hasattr(measure, "result") else measure()
            self.trace.amend(row, f"accuracy={accuracy:.4f}")
            extra = {"eval_loss": eval_loss}
            if self.learner.task == "causal_lm":  # accuracy is next-token top-1; perplexity = exp(token cross-entropy)
                extra["perplexity"] = math.exp(eval_loss)
            rec.accuracy, rec.extra = float(accuracy), {**extra, **rec.extra}
            self._end(rec)

    def report_leaks(self, rnd: int) -> None:
        """A received buffer still held when its round closes belongs to a finished exchange that
        nobody released: one `leaked_buffer` fault row per buffer (reported once), so an overstated
        memory peak shows in the trace where it comes from."""
        for node in self.nodes:
            for h in node.memory.holds:
                if h.label.startswith(RECEIVED_PREFIX) and not h.reported:
                    h.reported = True
                    self.trace.record(self.now, self.now, node.name, "leaked_buffer", rnd, peer=h.peer,
                                      mem_bytes=h.nbytes, detail=h.label)

    def end_round(self, rnd: int, loss: float, accuracy: float, **extra) -> RoundRecord:
        """Close round `rnd`: store its record and let the writer flush everything so far."""
        self.settle()
        rec = RoundRecord(rnd, self.now, float(loss), float(accuracy), extra)
        self._end(rec)
        return rec

    def _end(self, rec: RoundRecord) -> None:
        self.round_records.append(rec)
        for callback in self.on_round_end:
            callback(rec)

    # --- what schemes do ------------------------------------------------------------------------
    def send(self, src, dst, payload, kind: str, rnd: int | None = None, codec=None):
        """Encode `payload`, move its real bytes src → dst, and return a `Received` at dst.

        The received buffer (`len(encoded)` bytes) is held in dst's memory until the receiver
        releases it (`received.release()`, or `with`); one still held at the round's close is a
        `leaked_buffer` row. Raises `TransferDropped` per the outage policy (`OutOfMemory` when the
        buffer does not fit dst's memory, `ServerFailed` when an end fails: cosim.world.failures).
        `codec` (default: the run's `sim.codec`) sends one message another way, e.g. quantized. A payload with
        `to_message()` / `from_message()` (an `Activation`) travels as that message.
        Use as `received = yield from sim.send(...)`; the payload is `received.value`.
        """
        kind = events.kind(kind, category="transfer").name
        rnd = self.current_round if rnd is None else rnd
        codec = self.codec if codec is None else codec
        message = payload.to_message() if hasattr(payload, "to_message") else payload
        device = None if self.twin else _device_of(message)
        if device is not None and device.type != "cpu":   # bytes are coded on the host (runtime.device: cuda)
            message = _to_device(message, "cpu")
        if self.twin:   # the bytes the real payload would have, from its shapes, and what a decoder gives dst
            nbytes, value, detail = codec.wire_bytes(message), _as_received(message), ""
        else:   # what dst will have (decoding takes no simulated time)
            nbytes, value, error = codec.round_trip(message)
            # a lossy codec's distortion goes on the transfer's row (relative L2 error, worst tensor)
            detail = f"rel_error={error:.6g}" if error > 0 else ""
        yield from self.network.transfer(src, dst, nbytes, kind, rnd, detail=detail)
        hold = dst.memory.hold(f"{RECEIVED_PREFIX}{kind}:{src.name}", nbytes, peer=src.name)
        if dst.memory.total > dst.memory.capacity_bytes:   # it arrived but does not fit: failures.oom decides
            from .failures import out_of_memory

            held = dst.memory.total
            hold.release()
            out_of_memory(dst, f"received {kind} from {src.name}", held, rnd)
        if device is not None and device.type != "cpu":
            value = _to_device(value, device)
        if message is not payload and hasattr(payload, "from_message"):
            value = type(payload).from_message(value)
        return Received(value, hold, nbytes)

    def gather(self, generators):
        """Run one client process per generator and wait for all of them; a client whose transfer
        was dropped ends with that failure instead of crashing the run (the drop is in the trace).
        Returns `Gathered(results, failures)`; under the outage policy "fail" one failure fails the
        round (and under `failures.oom: fail_round` one out-of-memory failure): a `round_failed` row
        and no results. Use as `g = yield from sim.gather(...)`."""
        from .failures import fails_round
        from .network import TransferDropped

        def guarded(gen):
            try:
                return (yield from gen)
            except TransferDropped as drop:
                return _Failure(drop)

        procs = [self.env.process(guarded(g)) for g in generators]
        if procs:
            yield self.env.all_of(procs)
        values = [p.value for p in procs]
        failures = [v.error for v in values if isinstance(v, _Failure)]
        results = [v for v in values if not isinstance(v, _Failure)]
        if fails_round(self, failures):
            for value in results:   # what the survivors sent is thrown away with the round
                for item in value if isinstance(value, (tuple, list)) else (value,):
                    if isinstance(item, Received):
                        item.release()
            self.trace.record(self.now, self.now, "", "round_failed", detail=f"{len(failures)} of {len(values)} "
                                                                               "clients dropped")
            return Gathered([], failures, failed_round=True)
        return Gathered(results, failures)

    def select(self, count: int | None, among=None) -> list:
        """`count` devices drawn at random (stream "selection") from those in coverage now; all of
        them when count is None or larger than what is available."""
        pool = [d for d in (self.devices if among is None else among) if self.network.in_coverage(d)]
        if count is None or count >= len(pool):
            return pool
        picked = self.rng("selection").choice(len(pool), size=count, replace=False)
        return [pool[i] for i in sorted(picked)]


def _unscored() -> tuple[float, float]:
    """A twin round's evaluation (cosim.learn.twin): (accuracy, loss) = (NaN, NaN)."""
    return math.nan, math.nan


def _as_received(message):
    """What a decoder hands the receiver, without coding the bytes (twin mode): every tensor
    detached, in a fresh contiguous storage of its own — so what dst later saves for backward
    (counted by storage) and its steps' signatures (`requires_grad`) are those of a real run."""
    if hasattr(message, "detach"):
        return message.detach().contiguous().clone()
    if isinstance(message, dict):
        return {k: _as_received(v) for k, v in message.items()}
    if isinstance(message, (list, tuple)):
        return type(message)(_as_received(v) for v in message)
    return message


def _device_of(message):
    """The torch device of the first tensor in a message (None: no tensor)."""
    if hasattr(message, "device") and hasattr(message, "to"):   # a tensor
        return message.device
    items = message.values() if isinstance(message, dict) else message if isinstance(message, (list, tuple)) else ()
    for item in items:
        device = _device_of(item)
        if device is not None:
            return device
    return None


def _to_device(message, device):
    if hasattr(message, "device") and hasattr(message, "to"):
        return message.to(device)
    if isinstance(message, dict):
        return {k: _to_device(v, device) for k, v in message.items()}
    if isinstance(message, (list, tuple)):
        return type(message)(_to_device(v, device) for v in message)
    return message


#: Memory label prefix of a received buffer (`recv:<kind>:<sender>`).
RECEIVED_PREFIX = "recv:"


@dataclass
class Received:
    """A payload that arrived: `value`, and the receive buffer it occupies until `release()`."""

    value: Any
    hold: Any
    nbytes: int

    def release(self) -> None:
        self.hold.release()

    def __enter__(self) -> "Received":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class Gathered:
    """What `Simulation.gather` returns: the results of the clients that finished (in the order
    given), the transfer failures of those that did not, and whether the outage policy failed the
    whole round (then `results` is empty)."""

    results: list
    failures: list
    failed_round: bool = False


@dataclass
class _Failure:
    error: Exception
