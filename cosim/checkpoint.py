"""Checkpoints at round boundaries: what a killed run needs to go on as if it had never stopped.

A scheme is one SimPy generator, and a generator cannot be saved. A scheme written as a round
loop over a state object (`schemes.common.round_loop`) can: between two rounds the only live
things are the world's objects (nodes and their ledgers, mobility, links and fading, conditions,
the network's media, the controller, every named RNG stream, the clients' data cursors), the
scheme's state (trainable parameters, optimizers), a few pending background events (the control
loop's ticker) and the writer's offsets. `capture` takes all of them at the boundary, `write`
puts the latest capture into the run folder atomically (temp file + os.replace), `restore` puts
them back onto a freshly built `Simulation` so that the events after round k come out the same,
in the same order, as in a run that never stopped.

File format (`checkpoint.pt`): `torch.save` of a dict of plain types — the tensors in a list,
torch's RNG state, and `world`, the bytes of a pickle of cosim's own objects whose tensors are
references into that list — read back with `torch.load(weights_only=True)`. The pickle is read
by `_Unpickler`, which builds only classes of cosim/channels (never a function, never the run
loop, writer or workers), numpy arrays and generators, builtin containers and torch optimizers,
and resolves references (anchors, tensors, devices, dtypes, idle processors: `_reference` in the
pickle) through its own resolver: a checkpoint can rebuild objects of these types but call nothing
else, so a tampered file cannot run code through it. The heavy, rebuildable parts (the model,
tokenizer, datasets, SimPy environment, workers) are never saved: they are anchors, rebuilt from the scenario and relinked.

What is refused rather than resumed wrongly: a boundary at which something else is still pending
(a transfer in flight, a process waiting on a timer this module does not know) is not captured
(`Snapshot.reason` says why), and `restore` refuses a folder without a checkpoint.
"""
from __future__ import annotations

import io
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simpy
import torch

from .results import write_atomic

#: The checkpoint file in a run folder.
FILE = "checkpoint.pt"
#: Why a run's boundaries could not be captured (written while no checkpoint exists).
REFUSED = "checkpoint.refused"
#: Bumped when the layout changes: an older file is refused, not misread.
VERSION = 2
#: Simulation attributes that are rebuilt (anchors) or transient, never saved. `interrupted`: a
#: signal that came while the round's last step computed is set before its boundary is captured;
#: saved, it would stop the resumed run at once.
_NOT_SAVED = {"env", "trace", "on_round_end", "on_round_boundary", "on_interrupt", "learner", "meter", "_unsettled",
              "checkpoints", "resumed",
              "rescore", "interrupted"}


class CheckpointError(RuntimeError):
    """A run cannot be checkpointed here, or a folder cannot be resumed; the message says why."""


@dataclass
class Snapshot:
    """One round boundary, serialized (`data`: the bytes of checkpoint.pt), or why it could not be."""

    round: int
    sim_time_s: float
    data: bytes | None
    reason: str = ""


# --- what stays behind: anchors rebuilt from the scenario ---------------------------------------------


def _anchors(sim) -> dict[str, Any]:
    """Objects a rebuilt Simulation has anew (the same scenario builds the same ones), by name."""
    learner = sim.learner
    anchors = {"sim": sim, "env": sim.env, "learner": learner, "meter": sim.meter, "trace": sim.trace,
               "model": learner.model, "tokenizer": learner.tokenizer, "train": learner.train,
               "test": learner.test, "host_cache": learner.host_cache}
    return {k: v for k, v in anchors.items() if v is not None}


def _reference(tag: str, value):
    """What a reference in the pickle calls on load. Never run: the unpickler's `find_class` hands
    out its own resolver under this name (the references point into the rebuilt run)."""
    raise CheckpointError(f"a checkpoint reference ({tag!r}) was loaded without cosim's unpickler")


class _Pickler(pickle.Pickler):
    """References instead of values for the run's anchors, tensors, devices, dtypes and idle
    processors. Hooked as `reducer_override`, not `persistent_id`: the C pickler calls it for every
    object except None, bools and exact str/bytes/int/float/dict/list/tuple/set, so the state of
    a thousand clients costs a third of the Python calls (persistent_id is asked about every
    object; 506k calls took 0.9 s at a 1,000-device boundary)."""

    def __init__(self, file, anchors: dict[str, Any]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._anchor_of = {id(v): k for k, v in anchors.items()}
        self.tensors: list[torch.Tensor] = []

    def reducer_override(self, obj):
        reference = self._reference_of(obj)
        return NotImplemented if reference is None else (_reference, reference)

    def _reference_of(self, obj) -> tuple[str, Any] | None:
        name = self._anchor_of.get(id(obj))
        if name is not None:
            return ("anchor", name)
        if isinstance(obj, torch.Tensor):   # kept once per object (the pickle's memo): optimizers key their state by parameter
            self.tensors.append(obj.detach().clone().requires_grad_(obj.requires_grad) if obj.is_leaf
                                else obj.detach().clone())
            return ("tensor", len(self.tensors) - 1)
        if isinstance(obj, torch.device):
            return ("device", str(obj))
        if isinstance(obj, torch.dtype):
            return ("dtype", str(obj).removeprefix("torch."))
        if isinstance(obj, simpy.Resource):   # a node's processor: idle between rounds, rebuilt empty
            if obj.users or obj.queue:
                raise CheckpointError(f"a processor is busy at the round boundary ({len(obj.users)} job(s))")
            return ("resource", obj.capacity)
        if isinstance(obj, (simpy.Event, simpy.Environment)):
            raise CheckpointError(f"a pending {type(obj).__name__} is part of the world's state at the round "
                                  "boundary; it cannot be saved")
        if isinstance(obj, torch.nn.Module):
            raise CheckpointError(f"a torch module ({type(obj).__name__}) other than the run's model is part of "
                                  "the state; save its tensors instead")
        return None


#: Modules whose classes a checkpoint may never build (they start processes or write files).
_DENIED = ("cosim.run", "cosim.cli", "cosim.sweep", "cosim.compare", "cosim.results", "cosim.plots",
           "cosim.checkpoint", "cosim.learn.workers")
#: Callables a pickle needs besides classes: object reconstruction, numpy arrays, generators, scalars.
_ALLOWED_CALLABLES = {
    ("copyreg", "_reconstructor"), ("copyreg", "__newobj__"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.random._pickle", "__generator_ctor"), ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"), ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
}
_ALLOWED_BUILTINS = {"set", "frozenset", "complex", "slice", "range", "bytearray", "object", "dict", "list", "tuple",
                     "float", "int", "bool", "str"}


def _allowed_class(module: str, name: str, obj) -> bool:
    if not isinstance(obj, type):
        return False
    if module.split(".")[0] in ("cosim", "channels"):
        return not any(module == d or module.startswith(d + ".") for d in _DENIED)
    if module.startswith("numpy"):
        return issubclass(obj, (np.ndarray, np.dtype, np.generic, np.random.Generator, np.random.BitGenerator,
                                np.random.SeedSequence))
    if module == "collections":
        return name in ("OrderedDict", "defaultdict", "deque")
    if module.startswith("torch.optim"):
        return issubclass(obj, torch.optim.Optimizer)
    if module.startswith("pydantic"):   # what pydantic models pickle as (their fields-set bookkeeping)
        return False
    return module == "builtins" and name in _ALLOWED_BUILTINS


class _Unpickler(pickle.Unpickler):
    """Builds only what `_allowed_class` / `_ALLOWED_CALLABLES` permit (see the module docstring)."""

    def __init__(self, file, anchors: dict[str, Any], tensors: list[torch.Tensor], env):
        super().__init__(file)
        self._anchors, self._tensors, self._env = anchors, tensors, env

    def find_class(self, module: str, name: str):
        import importlib

        if (module, name) == ("cosim.checkpoint", "_reference"):
            return self._resolve

        obj = getattr(importlib.import_module(module), name) if module in _importable(module) else None
        if obj is not None and ((module, name) in _ALLOWED_CALLABLES or _allowed_class(module, name, obj)):
            return obj
        raise CheckpointError(f"checkpoint refers to {module}.{name}, which a checkpoint may not build")

    def _resolve(self, tag: str, value):
        if tag == "anchor":
            if value not in self._anchors:
                raise CheckpointError(f"checkpoint refers to {value!r}, which this run does not have")
            return self._anchors[value]
        if tag == "tensor":
            return self._tensors[value]
        if tag == "device":
            return torch.device(value)
        if tag == "dtype":
            return getattr(torch, value)
        if tag == "resource":
            return simpy.Resource(self._env, capacity=value)
        raise CheckpointError(f"unknown reference {tag!r} in checkpoint")


def _importable(module: str) -> tuple[str, ...]:
    """`module` if it is one a checkpoint may name at all (no import of anything else happens)."""
    top = module.split(".")[0]
    return (module,) if top in ("cosim", "channels", "numpy", "collections", "copyreg", "builtins", "torch") else ()


# --- pending events between rounds -----------------------------------------------------------------


def _pending(sim) -> list[tuple]:
    """The background events still queued at a round boundary, as what restores them: a list of
    (kind, time) in queue order. No-ops (a released processor's wake-up with nobody waiting, a
    medium's superseded timer) are left out; anything else makes the boundary uncapturable."""
    out = []
    for t, priority, eid, event in sorted(sim.env._queue, key=lambda e: e[:3]):
        callbacks = event.callbacks or []
        if isinstance(event, simpy.resources.base.Put) or isinstance(event, simpy.resources.resource.Release):
            if all(not getattr(cb, "__self__", None) or not cb.__self__.put_queue for cb in callbacks):
                continue   # the processor was released and nobody waits for it: nothing happens
        if len(callbacks) == 1 and _is_stale_medium_timer(callbacks[0]):
            continue
        owner = _process_of(callbacks)
        if owner is not None and getattr(owner._generator, "gi_code", None) is _control_ticker_code():
            out.append(("control_small", float(t)))
            continue
        raise CheckpointError(f"an event is pending at the round boundary ({type(event).__name__} at t={t:.6g}s"
                              f"{', process ' + owner._generator.__qualname__ if owner is not None else ''}): "
                              "something runs across rounds that a checkpoint cannot restore")
    return out


def _process_of(callbacks):
    for cb in callbacks:
        owner = getattr(cb, "__self__", None)
        if isinstance(owner, simpy.Process):
            return owner
    return None


def _control_ticker_code():
    from .control.loop import ControlLoop

    return ControlLoop._every.__code__


def _is_stale_medium_timer(callback) -> bool:
    """A medium's wake-up superseded by a later reallocation (`Medium._wake` ignores it)."""
    from .world.network import Medium

    cells = [c.cell_contents for c in (getattr(callback, "__closure__", None) or ())]
    mediums = [c for c in cells if isinstance(c, Medium)]
    generations = [c for c in cells if isinstance(c, int)]
    return bool(mediums and generations) and generations[0] != mediums[0]._generation and not mediums[0].flows


# --- capture, write, restore ----------------------------------------------------------------------


def capture(sim, state, writer_offsets: dict) -> Snapshot:
    """Serialize the run at a round boundary (the scheme's `state` included), or say why not."""
    rnd, now = sim.current_round, sim.now
    try:
        pending = _pending(sim)
        world = {k: v for k, v in sim.__dict__.items() if k not in _NOT_SAVED}
        buf = io.BytesIO()
        pickler = _Pickler(buf, _anchors(sim))
        meter = sim.meter
        pickler.dump({"world": world, "clients": sim.learner.clients, "state": state,
                      "meter": (meter._cache, meter.measured), "pending": pending,
                      "trace": _trace_state(sim.trace), "unsettled": _unsettled(sim)})
    except (CheckpointError, pickle.PicklingError, TypeError, AttributeError) as err:
        return Snapshot(rnd, now, None, f"{type(err).__name__}: {err}" if not isinstance(err, CheckpointError)
                        else str(err))
    payload = {"version": VERSION, "round": rnd, "sim_time_s": now, "world": buf.getvalue(),
               "tensors": pickler.tensors, "torch_rng": torch.get_rng_state(), "writer": dict(writer_offsets),
               "wall_s": time.time()}
    out = io.BytesIO()
    torch.save(payload, out)
    return Snapshot(rnd, now, out.getvalue())


def _trace_state(trace) -> dict:
    """The rows not yet written (from a held evaluation row on) and where they stand."""
    return {"rows": list(trace.rows), "base": trace._base, "held": sorted(trace._held)}


def _unsettled(sim) -> list[tuple]:
    """Rounds closed whose evaluation (on the workers) is still running: the record, its eval row
    and the state being scored — scored again after a resume (the same figures: scoring is pure)."""
    out = []
    for rec, row, measure in sim._unsettled:
        state = getattr(measure, "state", None)
        if state is None:
            raise CheckpointError(f"round {rec.round}'s evaluation is a custom callable still running")
        out.append((rec, row, state))
    return out


def write(sim, run_dir) -> Path | None:
    """Put the latest captured boundary into `run_dir`/checkpoint.pt atomically (temp + rename +
    fsync); the hook an interrupt handler calls. Returns the path, None when nothing is captured."""
    book = getattr(sim, "checkpoints", None)
    if book is None or book.latest is None or book.latest.data is None:
        return None
    if book.written is book.latest:
        return Path(run_dir) / FILE
    path = Path(run_dir) / FILE
    write_atomic(path, book.latest.data)
    book.written = book.latest
    return path


class Checkpoints:
    """The run's checkpointing: capture at every round boundary, write at most every `every_s`
    wall seconds (None or 0: at every round end). `sim.checkpoints`; `write(sim, dir)` flushes it."""

    def __init__(self, run_dir: Path, every_s: float | None, writer):
        self.dir, self.every_s, self.writer = Path(run_dir), every_s or 0.0, writer
        self.latest: Snapshot | None = None
        self.written: Snapshot | None = None
        self.refused: str = ""   # why the last boundary could not be captured
        self._last_write = -float("inf")

    def boundary(self, sim, state) -> None:
        # what is finished reaches the disk first; an evaluation still running on the workers is
        # kept in the checkpoint (its state, record and held row), not waited for
        sim.settle(wait=False)
        if sim.trace.rows and not sim._unsettled:
            self.writer.flush(sim)
        snap = capture(sim, state, self.writer.offsets())
        if snap.data is None:
            if not self.refused and self.latest is None:
                write_atomic(self.dir / REFUSED, f"round {snap.round} could not be checkpointed: {snap.reason}\n"
                              .encode())
            self.refused = snap.reason
            return
        self.refused = ""
        self.latest = snap
        (self.dir / REFUSED).unlink(missing_ok=True)
        if time.monotonic() - self._last_write >= self.every_s:
            write(sim, self.dir)
            self._last_write = time.monotonic()

    def close(self, sim) -> None:
        """The run ended: a finished run needs no checkpoint (resuming it has nothing to do)."""
        (self.dir / FILE).unlink(missing_ok=True)
        (self.dir / REFUSED).unlink(missing_ok=True)


def read(run_dir) -> dict:
    """The checkpoint of `run_dir`, as saved (tensors loaded with weights_only=True)."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no checkpoint ({FILE}) to resume from")
    payload = torch.load(path, weights_only=True, map_location="cpu")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')}, this cosim reads {VERSION}")
    return payload


def restore(sim, payload: dict):
    """Put a checkpoint back onto `sim`, freshly built from the same scenario (nothing run yet):
    clock, world, data cursors, step costs, torch RNG and pending background events. Returns the
    scheme's state for `round_loop` to go on from."""
    env = sim.env
    if env.now != 0 or env._queue:
        raise CheckpointError("restore needs a freshly built simulation")
    device = sim.learner.device
    tensors = [t.to(device) if t.device != device else t for t in payload["tensors"]]
    anchors = _anchors(sim)
    data = _Unpickler(io.BytesIO(payload["world"]), anchors, tensors, env).load()
    env._now = float(payload["sim_time_s"])
    sim.__dict__.update(data["world"])
    sim.learner.clients = data["clients"]
    sim.meter._cache, sim.meter.measured = data["meter"]
    torch.set_rng_state(payload["torch_rng"])
    if getattr(sim, "verifier", None) is not None:   # the restored verifier watches the rebuilt trace
        sim.trace.observer = sim.verifier.row
    trace = data["trace"]
    sim.trace.rows, sim.trace._base, sim.trace._held = list(trace["rows"]), trace["base"], set(trace["held"])
    sim.rescore = data["unsettled"]   # queued again once the run's workers exist (`Simulation.rescore_pending`)
    for kind, t in data["pending"]:   # in queue order: ties at one time keep their order
        if kind == "control_small":
            sim.process(sim.control._every(first_wait_s=t - env.now))
    return data["state"]
