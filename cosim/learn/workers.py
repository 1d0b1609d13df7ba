"""The host's workers: learning work that is independent in event time runs ahead of the clock.

DESIGN §1: a step's simulated duration never depends on the host clock, so compute whose inputs are
fixed at its simulated start — the clients of a FedAvg round all start from the same global model,
an evaluation reads one fixed state — may run early, on other cores or machines, and its results
are consumed in simulated order. Tables are identical to the serial run: a worker runs the same
torch operations on the same inputs with one thread, and counts FLOPs the way the main process does.

Backends (`runtime.backend`): "process" — worker processes forked from the run once the learner is
built, so each holds the frozen model in pages shared with the parent (copy-on-write; nothing is
pickled but states, batches' cursors and results); "ray" — Ray actors, each unpickling the learner
once from the object store (`ray.put`), on a local Ray bound to 127.0.0.1 or a cluster
(`runtime.address`). `workers: 1` is the serial path: nothing runs ahead.

A job is a module-level function of this module run with the worker's learner (`_job_*`).
"""
from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .accounting import StepCost, StepMeter
from .activation import Activation

BACKENDS = ("process", "ray")


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | str) -> int:
    """`auto` → the usable cores; a number as given."""
    return usable_cores() if workers == "auto" else int(workers)


# --- what a worker holds ---------------------------------------------------------------------------
#: The learner of this worker process (set before the fork, or by the Ray actor's constructor).
_LEARNER = None
_METER: StepMeter | None = None


def _install(learner, one_thread: bool = True) -> None:
    global _LEARNER, _METER
    if one_thread:   # one thread per worker process: the workers are the parallelism
        torch.set_num_threads(1)
    _LEARNER, _METER = learner, None


def _ready() -> bool:
    return _LEARNER is not None


def _meter() -> StepMeter:
    global _METER
    if _METER is None:
        _METER = StepMeter()
        _METER.exclude_parameters(_LEARNER.model)
    return _METER


@dataclass
class Steps:
    """What a client's steps computed ahead produced: each step's result and counted cost, the
    client's data cursor after each step's batch, and (training) the trained state."""

    results: list
    costs: list[StepCost]
    cursors: list[tuple]
    state: dict | None = None


def _job_train(client: str, state: dict, steps: int, cursor: tuple) -> Steps:
    """`steps` plain local steps (`LocalModel.train_step`) of `client` from `state`, its batches drawn
    from `cursor` — the operations `common.local_step` runs in the main process. Results: the losses."""
    torch.set_grad_enabled(True)   # a worker forked inside no_grad (an evaluation) would inherit it
    learner, meter = _LEARNER, _meter()
    local = learner.local(state)
    out = _steps(client, cursor, steps, lambda batch: meter.run(meter.signature(local.train_step, (batch,), {}),
                                                                  local.train_step, batch))
    out.state = local.state()
    return out


def _job_train_batched(clients: list[str], state: dict, steps: int, cursors: list[tuple]) -> list[Steps]:
    """`_job_train` for several clients at once, step k of all of them as one batched step
    (cosim.learn.batched, runtime.batch_clients). Each client's step is charged the count of its
    own `train_step` (measured once per signature on a throwaway copy): host batching never
    changes what a simulated device spends."""
    torch.set_grad_enabled(True)
    learner, meter = _LEARNER, _meter()
    locals_ = [learner.local(state) for _ in clients]
    outs = [Steps([], [], []) for _ in clients]
    with _cursors_kept(learner, clients):
        for client, cursor in zip(clients, cursors):
            learner.clients[client].restore(cursor)
        _batched_steps(learner, meter, clients, locals_, steps, outs)
    for out, local in zip(outs, locals_):
        out.state = local.state()
    return outs


def _batched_steps(learner, meter, clients, locals_, steps, outs) -> None:
    from .batched import batched_train_step

    for _ in range(steps):
        batches = [learner.next_batch(c) for c in clients]
        costs = []
        for local, batch in zip(locals_, batches):
            key = meter.signature(local.train_step, (batch,), {})
            cost = meter.cost(key)
            if cost is None:   # count a throwaway copy's step: the client's own must not run twice
                cost = meter.run(key, local.copy().train_step, batch)[1]
            costs.append(cost)
        losses = batched_train_step(locals_, batches)
        for out, client, loss, cost in zip(outs, clients, losses, costs):
            out.results.append(loss)
            out.costs.append(cost)
            out.cursors.append(learner.clients[client].cursor())


class _cursors_kept:
    """The clients' data cursors as they were before a job drew batches ahead: an inline job runs on
    the run's own learner, whose cursors move only when a step is collected (`AheadStep.collect`)."""

    def __init__(self, learner, clients):
        self.data = [learner.clients[c] for c in clients]

    def __enter__(self):
        self.saved = [d.cursor() for d in self.data]

    def __exit__(self, *exc):
        for d, cursor in zip(self.data, self.saved):
            d.restore(cursor)


def _job_split_turn(client: str, bottom_state: dict, top_state: dict, steps: int, cut: int, codec,
                    cursor: tuple) -> Steps:
    """A SplitFed v1 client's turn (`common.device_turn` with its own server-side copy): `steps`
    split steps (`protocol.split_step`) with the bottom from `bottom_state` and the top from
    `top_state`, the activation and the gradient passed through `codec` as the sends pass them.
    Results per step: (batch, the cut activation, loss, the gradient sent back); costs per step:
    (bottom forward, top step, bottom backward). State: (bottom, top) trained."""
    torch.set_grad_enabled(True)
    learner, meter = _LEARNER, _meter()
    bottom, top = learner.local(bottom_state, 0, cut), learner.local(top_state, start=cut)

    def counted(fn, *args):
        return meter.run(meter.signature(fn, args, {}), fn, *args)

    def one(batch):
        hidden, fwd = counted(bottom.bottom_forward, batch, cut)
        act = _as_received(codec, Activation.of(hidden, batch))
        (loss, grad), train = counted(top.top_step, act.hidden, act.mask, act.labels, cut)
        _, bwd = counted(bottom.bottom_backward, hidden, _as_received(codec, [grad])[0])
        return (batch, hidden.detach(), loss, grad), (fwd, train, bwd)
    out = _steps(client, cursor, steps, one)
    out.state = (bottom.state(), top.state())
    return out


def _as_received(codec, payload):
    """`payload` as `Simulation.send` hands it to the receiver: coded and decoded by `codec`."""
    message = payload.to_message() if hasattr(payload, "to_message") else payload
    _, value, _ = codec.round_trip(message)
    return type(payload).from_message(value) if message is not payload else value


def _job_forward(client: str, method: str, args: tuple, steps: int, cursor: tuple) -> Steps:
    """`steps` frozen forwards `learner.<method>(batch, *args)` of `client`'s next batches (a
    SplitFrozen or MobiLLM device). Results: (batch, output) per step."""
    learner, meter = _LEARNER, _meter()
    fn = getattr(learner, method)

    def one(batch):
        output, cost = meter.run(meter.signature(fn, (batch, *args), {}), fn, batch, *args)
        return (batch, output), cost
    return _steps(client, cursor, steps, one)


def _steps(client: str, cursor: tuple, steps: int, step) -> Steps:
    learner = _LEARNER
    data = learner.clients[client]
    out = Steps([], [], [])
    with _cursors_kept(learner, [client]):
        data.restore(cursor)
        for _ in range(steps):
            result, cost = step(learner.next_batch(client))
            out.results.append(result)
            out.costs.append(cost)
            out.cursors.append(data.cursor())
    return out


def _job_shared(known: dict, job_name: str, args: tuple):
    """Run job `job_name` with the step costs other workers counted already (a signature is counted
    once per run, not once per worker); returns (its result, the costs it counted itself)."""
    meter = _meter()
    before = set(meter._cache)
    meter._cache.update(known)
    result = globals()[job_name](*args)
    return result, {k: v for k, v in meter._cache.items() if k not in before and k not in known}


def _job_score(state: dict, batch_indices: list[int]) -> list[tuple[int, float, int]]:
    """(correct, summed loss, counted) of the held-out batches `batch_indices` under `state`."""
    return _LEARNER.score_batches(state, batch_indices)


# --- backends --------------------------------------------------------------------------------------
class _RayFuture:
    def __init__(self, ray, ref):
        self._ray, self._ref = ray, ref

    def result(self):
        return self._ray.get(self._ref)

    def done(self) -> bool:
        ready, _ = self._ray.wait([self._ref], timeout=0)
        return bool(ready)


class _Done:
    """A future already resolved (the inline worker)."""

    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value

    def done(self) -> bool:
        return True


class InlineWorker:
    """One worker that is this process: a job runs when submitted (batched clients without other
    processes: the batching is the gain)."""

    count = 1

    def __init__(self, learner):
        _install(learner, one_thread=False)   # this process keeps runtime.torch_threads

    def submit(self, job, *args) -> _Done:
        return _Done(job(*args))

    def close(self) -> None:
        pass


class Workers:
    """`count` workers, each holding `learner`; `submit(job, *args)` returns a future (`.result()`).
    Forked processes take jobs from one queue, in submission order, as they come free; Ray actors
    take them in turn (round robin)."""

    def __init__(self, learner, count: int, backend: str = "process", address: str | None = None,
                 temp_dir: Path | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}; allowed: {', '.join(BACKENDS)}")
        self.count, self.backend = count, backend
        self._next = 0
        self._ray = self._ray_started = self._ray_dir = None
        if backend == "process":
            import multiprocessing

            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the tokenizer's own pool is not fork-safe
            _install(learner)   # the forked workers inherit it: the frozen model's pages are shared
            context = multiprocessing.get_context("fork")
            # one queue for all: a job goes to whichever worker is free
            self._pool = ProcessPoolExecutor(count, mp_context=context)
            for f in [self._pool.submit(_ready) for _ in range(count)]:   # fork them all now, in a known state
                f.result()
        else:
            self._ray_dir = None if address else ray_temp_dir(temp_dir)
            try:
                self._ray, self._ray_started = start_ray(address, count, self._ray_dir)
            except ImportError:
                raise RuntimeError("runtime.backend: 'ray' needs Ray, which is not installed; allowed: "
                                   "pip install 'cosim[ray]', or backend 'process'") from None
            except ConnectionError as err:
                raise RuntimeError(f"runtime.address: no Ray cluster answered at {address!r} ({err}); allowed: "
                                   "the address of a running cluster's head, or none for a local Ray") from None
            shared = self._ray.put(learner)
            actor = self._ray.remote(num_cpus=1)(_RayWorker)
            self._actors = [actor.remote(shared) for _ in range(count)]

    def submit(self, job, *args) -> Future | _RayFuture:
        if self.backend == "process":
            return self._pool.submit(job, *args)
        i = self._next
        self._next = (i + 1) % self.count
        return _RayFuture(self._ray, self._actors[i].run.remote(job.__name__, *args))

    def close(self) -> None:
        if self.backend == "process":
            self._pool.shutdown(wait=True, cancel_futures=True)
        elif self._ray_started:
            self._ray.shutdown()
            if self._ray_dir is not None:   # the session's sockets and logs: nothing a result needs
                import shutil

                shutil.rmtree(self._ray_dir, ignore_errors=True)


class _RayWorker:
    """A Ray actor holding the learner (unpickled once from the object store)."""

    def __init__(self, learner):
        _install(learner)

    def run(self, job_name: str, *args):
        return globals()[job_name](*args)


def import_ray(local: bool):
    """Ray, set up for a `local` start (a cluster keeps its own settings: these variables are read
    when Ray is imported). Raises ImportError when Ray is not installed."""
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")     # a one-user instance on 127.0.0.1
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local run reports nothing anywhere
    import ray

    return ray


def start_ray(address: str | None, cpus: int, temp_dir: Path | None):
    """Ray, connected to the cluster at `address`, or started locally on 127.0.0.1 with `cpus`, its
    session folder `temp_dir` and no dashboard. Returns (ray, whether this call started it: then the
    caller shuts it down). Raises ImportError without Ray, ConnectionError when no cluster answers."""
    ray = import_ray(local=not address)
    if ray.is_initialized():
        return ray, False
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as err:  # noqa: BLE001 - Ray's errors vary by version; all mean "not reached"
            raise ConnectionError(f"{type(err).__name__}: {err}") from None
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=str(temp_dir or ray_temp_dir(None)),
                 _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    return ray, True


#: AF_UNIX socket paths hold at most 107 bytes on Linux (103 on macOS); Ray puts its sockets at
#: <temp_dir>/session_<YYYY-mm-dd_HH-MM-SS_ffffff>_<pid>/sockets/plasma_store.
_SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
_RAY_SOCKET_TAIL = "/session_2000-01-01_00-00-00_000000_4194304/sockets/plasma_store"


def ray_temp_dir(parent: Path | None) -> Path:
    """Ray's session folder: `parent/ray` when its socket paths fit the AF_UNIX limit, else a short
    folder under the system temp dir (the caller removes it when done)."""
    if parent is not None:
        inside = (Path(parent) / "ray").resolve()
        if len(str(inside) + _RAY_SOCKET_TAIL) <= _SOCKET_PATH_MAX:
            return inside
    return Path(tempfile.mkdtemp(prefix="cosim-ray-"))


# --- running ahead of the clock ------------------------------------------------------------------------
class AheadStep:
    """Step `k` of a client's steps computed ahead: `Node.compute` takes it in place of a function
    and, at the step's simulated start, collects its result and counted cost; the client's data
    cursor then stands where the serial step would have left it."""

    __slots__ = ("ticket", "k")

    def __init__(self, ticket: "Ticket", k: int):
        self.ticket, self.k = ticket, k

    def collect(self) -> tuple[Any, StepCost]:
        done = self.ticket.done()
        self.ticket.ahead.learner.clients[self.ticket.client].restore(done.cursors[self.k])
        return done.results[self.k], done.costs[self.k]


class SplitStepAhead:
    """Split step k computed ahead, as `protocol.split_step` charges it: the bottom forward (result:
    (batch, activation)), the top step (result: (loss, gradient)) and the bottom backward."""

    def __init__(self, ticket: "Ticket", k: int):
        self.fwd, self.top, self.bwd = (_Part(ticket, k, i) for i in range(3))


class _Part(AheadStep):
    __slots__ = ("part",)

    def __init__(self, ticket, k, part):
        super().__init__(ticket, k)
        self.part = part

    def collect(self) -> tuple[Any, StepCost]:
        done = self.ticket.done()
        batch, hidden, loss, grad = done.results[self.k]
        if self.part == 0:   # the batch is drawn: the cursor moves as the serial step's draw moves it
            self.ticket.ahead.learner.clients[self.ticket.client].restore(done.cursors[self.k])
        result = ((batch, hidden), (loss, grad), None)[self.part]
        return result, done.costs[self.k][self.part]


class Ticket:
    """One client's steps submitted ahead (`step(k)`), and what they trained (`state()`)."""

    def __init__(self, ahead: "Ahead", client: str, inputs, steps: int, cursor: tuple, future, index=None):
        self.ahead, self.client, self.inputs, self.steps, self.cursor = ahead, client, inputs, steps, cursor
        self._future, self._done, self._index = future, None, index

    def done(self) -> Steps:
        """What the worker computed (waiting for it); one client's share of a batched job."""
        if self._done is None:
            result = self._future.result()
            self._done = result if self._index is None else result[self._index]
        return self._done

    def step(self, k: int) -> AheadStep:
        return AheadStep(self, k)

    def split_step(self, k: int) -> SplitStepAhead:
        return SplitStepAhead(self, k)

    def state(self) -> dict:
        return self.done().state


class Ahead:
    """Where a run's work goes ahead of the clock: the steps of a round's clients submitted at its
    start and claimed by each client when it reaches them; held-out scoring split over the workers."""

    def __init__(self, learner, workers: "Workers | InlineWorker", batch_clients: bool = False):
        self.learner, self.workers, self.batch_clients = learner, workers, batch_clients
        self._tickets: dict[tuple[str, str], Ticket] = {}
        self._known: dict = {}   # step costs counted on any worker, handed to the others
        self._later: list["PendingScore"] = []   # evaluations waiting to be queued behind training

    def _submit(self, job, *args) -> "_Shared":
        return _Shared(self, self.workers.submit(_job_shared, dict(self._known), job.__name__, args))

    def local_training(self, clients, state: dict, steps: int) -> None:
        """Submit every client's `steps` local steps from `state` (a FedAvg round's clients): one job
        per client, or with `batch_clients` one batched job per worker over its share of them."""
        if self.batch_clients:
            n = min(self.workers.count, len(clients))
            for share in (clients[i::n] for i in range(n)):
                cursors = [self.learner.clients[dev.name].cursor() for dev in share]
                future = self._submit(_job_train_batched, [dev.name for dev in share], state, steps, cursors)
                for i, (dev, cursor) in enumerate(zip(share, cursors)):
                    self._tickets[(dev.name, "train")] = Ticket(self, dev.name, state, steps, cursor, future, i)
        else:
            for dev in clients:
                cursor = self.learner.clients[dev.name].cursor()
                future = self._submit(_job_train, dev.name, state, steps, cursor)
                self._tickets[(dev.name, "train")] = Ticket(self, dev.name, state, steps, cursor, future)
        self.queue_later()

    def split_turns(self, clients, bottom_state: dict, top_state: dict, steps: int, cut: int, codec) -> None:
        """Submit every client's SplitFed v1 turn (`_job_split_turn`): its own server-side copy from
        `top_state`, so nothing it computes depends on another client or on the clock."""
        for dev in clients:
            cursor = self.learner.clients[dev.name].cursor()
            future = self._submit(_job_split_turn, dev.name, bottom_state, top_state, steps, cut, codec, cursor)
            self._tickets[(dev.name, "split")] = Ticket(self, dev.name, (bottom_state, top_state), steps, cursor,
                                                        future)
        self.queue_later()

    def frozen_forwards(self, clients, method: str, args_of, steps: int) -> None:
        """Submit every client's `steps` frozen forwards `learner.<method>(batch, *args_of(dev))`."""
        for dev in clients:
            cursor, args = self.learner.clients[dev.name].cursor(), tuple(args_of(dev))
            future = self._submit(_job_forward, dev.name, method, args, steps, cursor)
            self._tickets[(dev.name, method)] = Ticket(self, dev.name, args, steps, cursor, future)
        self.queue_later()

    def pending(self, client: str, job: str) -> bool:
        """Whether a ticket for `client`'s `job` waits to be claimed."""
        return (client, job) in self._tickets

    def claim(self, client: str, job: str, inputs, steps: int) -> Ticket | None:
        """The ticket submitted for `client`'s `job` ("train", or a frozen forward's method) if it was
        computed from exactly `inputs` (the start state, or the forward's arguments) and the client's
        data cursor as it is now; else None (the caller computes in this process)."""
        ticket = self._tickets.pop((client, job), None)
        if ticket is None or ticket.steps != steps or not self._fits(ticket, ticket.cursor, inputs):
            return None
        return ticket

    def claim_step(self, client: str, job: str, inputs, k: int) -> AheadStep | None:
        """Step `k` of the ticket submitted for `client`'s `job`, if computed from exactly `inputs`
        and the client's data cursor as it is now (the cursor step k - 1 left); else None."""
        ticket = self._tickets.get((client, job))
        if ticket is None or k >= ticket.steps:
            return None
        expected = ticket.cursor if k == 0 else ticket.done().cursors[k - 1]
        return ticket.step(k) if self._fits(ticket, expected, inputs) else None

    def _fits(self, ticket: Ticket, cursor: tuple, inputs) -> bool:
        return (_same_cursor(cursor, self.learner.clients[ticket.client].cursor())
                and (ticket.inputs is inputs or _same_inputs(ticket.inputs, inputs)))

    def discard(self) -> None:
        """Forget the tickets nobody claimed (clients whose download was dropped)."""
        self._tickets.clear()

    def _score_shards(self, state: dict, batches: int, shards: int) -> list:
        """Futures of the shards in batch order, submitted longest first: the held-out batches are
        sorted by length, so the last shards are the heaviest and the light ones fill the gaps."""
        n = min(shards, batches)
        bounds = [round(i * batches / n) for i in range(n + 1)]
        futures = {i: self._submit(_job_score, state, list(range(bounds[i], bounds[i + 1])))
                   for i in reversed(range(n))}
        return [futures[i] for i in range(n)]

    def evaluate(self, state: dict) -> tuple[float, float]:
        """(accuracy, mean loss) of `state`, scored on the workers now."""
        return PendingScore(self, state).result()

    def evaluate_later(self, state: dict) -> "PendingScore":
        """The held-out evaluation of `state`, queued behind the next steps submitted (so a worker
        that finishes its clients early scores while the others train), in shards small enough to
        fill such gaps. `.result()` is (accuracy, mean loss), as `Learner.evaluate` gives."""
        pending = PendingScore(self, state)
        self._later.append(pending)
        return pending

    def queue_later(self) -> None:
        """Submit the evaluations waiting to be queued behind training (`evaluate_later`)."""
        for pending in self._later:
            pending.submit()
        self._later.clear()

    def close(self) -> None:
        self.discard()
        self.workers.close()


class _Shared:
    """A worker's future whose step costs join the run's shared table when collected."""

    def __init__(self, ahead: "Ahead", future):
        self.ahead, self.future = ahead, future

    def result(self):
        result, counted = self.future.result()
        self.ahead._known.update(counted)
        return result


class PendingScore:
    """An evaluation on the workers (`Ahead.evaluate_later`): per-batch scores in shards, folded in
    batch order — the same figures `Learner.evaluate` gives here."""

    #: held-out batches per shard (a shard of a 1,000-row split at batch 64: ~1/4 of a client's round)
    SHARD_BATCHES = 2

    def __init__(self, ahead: "Ahead", state: dict):
        self.ahead, self.state, self.futures = ahead, state, None

    def submit(self) -> None:
        if self.futures is None:
            batches = len(self.ahead.learner._test_batches)
            self.futures = self.ahead._score_shards(self.state, batches, -(-batches // self.SHARD_BATCHES))

    def done(self) -> bool:
        """Whether every shard's scores are in (`result` would not wait)."""
        return self.futures is not None and all(f.future.done() for f in self.futures)

    def result(self) -> tuple[float, float]:
        from .training import _fold

        self.submit()
        return _fold(s for f in self.futures for s in f.result())


def _same_inputs(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_inputs(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_inputs(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def _same_cursor(a: tuple, b: tuple) -> bool:
    import numpy as np

    return all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a, b))
