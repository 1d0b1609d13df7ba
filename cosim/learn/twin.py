"""Twin mode (`runtime.mode: twin`): the same world and schemes, run without training, so the
same delays come out in a fraction of the wall time (a digital twin of the network, DESIGN §8).

A step's simulated duration is its counted FLOPs and a transfer's its bytes over the channel;
neither reads what the model learned, for every scheme whose *decisions* do not either. So twin
mode is not a second engine, only three substitutions:

- **Steps** (`TwinMeter`, in place of the run's `StepMeter`): a step signature seen before returns
  its cached cost — the whole `StepCost` object (FLOPs, saved-activation bytes, and whatever the
  cost gains later) — and, as its result, the result of that signature's first step, without
  running torch. A signature never seen before is **measured once with a real step**, on the
  arguments the twin has at that moment (real data batches; activations and gradients that are
  earlier results, so of the right shapes), under the same counters as a real run. Measured, not
  computed from the model config: the identity with a real run is then exact by construction
  (the same FlopCounterMode and saved-tensor hooks see the same ops on the same shapes), a
  formula would be a second cost model to keep in step with attention kernels, LoRA, masks and
  every new model; and a run has few signatures (per role and step kind, one per batch length —
  at most max_length / pad_multiple with bucket padding), so the real steps are a fixed cost that
  does not grow with rounds or devices. The batch cannot be shrunk for the probe: the FLOPs are
  those of the exact shape. A replayed result is the same object each time (placeholders of the
  right shapes, dtypes and structure, so later steps' signatures and payload sizes are right);
  its values mean nothing. Measurements are also kept across runs (`CostStore`, `runtime.twin_cache`,
  one JSON file per `fingerprint`: model, data set, scheme block, library versions and cosim's own
  source), so a later twin of the same setup — another seed, other devices or network, the next
  episode of an RL environment — runs no step at all: a stored result is rebuilt from its recorded
  shapes (zeros). The output of a graph is never stored (a backward through it must be measured on
  the real graph), so the step that makes it is measured once per run.
- **Transfers** (`Simulation.send`): the payload is not encoded; its bytes are the codec's
  `wire_bytes(message)`, the exact `len(encode(message))` from shapes and dtypes (TensorCodec,
  QuantCodec, CompressedCodec's top-k and quantization all have sizes that follow from shapes;
  tests/test_twin.py checks the formula against real encodings). A lossless coder's (zstd, zlib)
  output length depends on the values, which a twin does not have, and a probe's encoded size
  would be that of the placeholder's values, not the real payload's: twin mode refuses it
  (`scheme.compression.lossless`, `control.controller: sft`). The receiver gets the sender's
  tensors (no copy). Stochastic rounding draws nothing (its stream is the codec's own).
- **Evaluation** (`Simulation.close_round`): nothing is scored. rounds.csv's `loss`, `accuracy`,
  `eval_loss` (and `perplexity`) are NaN, summary.json's `final_accuracy` / `final_loss` null and
  `mode: twin`; the `eval` rows stay (as markers, `accuracy=nan`). A scheme's own columns computed
  from learned values (dfl's `kd_alpha`) are computed from placeholders: meaningless.

What is refused (`problems`, a ScenarioError naming the field; exit 2 from the CLI): decisions that
read learned values or values' coded sizes, because a twin would decide otherwise than a real run —
`stop.target_accuracy`; `control.controller: sft` (its cuts and keep ratios come from the
distortion and zstd size of real activations); a lossless coder in `scheme.compression`; and the
schemes' own (`SchemeConfig.twin_problems`): `scheme.order: grab` (split, sequential_fl, cyclicfl:
herding of the clients' update directions), mavfl with
`selection: ucb` and `loss_weight` > 0 (its UCB1 utility reads the clients' training loss).
Workers (`runtime.workers`, `batch_clients`) are not started: there is nothing to compute ahead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Hashable

import torch

from .accounting import StepCost, StepMeter

#: where measured step costs are kept across runs (one JSON file per fingerprint); the environment
#: variable COSIM_TWIN_CACHE_DIR moves it
CACHE_DIR_ENV = "COSIM_TWIN_CACHE_DIR"


def cache_dir() -> Path:
    """$COSIM_TWIN_CACHE_DIR, else $XDG_CACHE_HOME/cosim/twin, else ~/.cache/cosim/twin."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cosim" / "twin"


class TwinMeter(StepMeter):
    """A StepMeter that runs each step signature once (measured, as a real run does) and replays
    its cost and result afterwards without calling the step (module doc).

    With a `store` (`CostStore`), signatures measured by earlier runs of the same fingerprint are
    not run at all: their cost comes from the store and their result is rebuilt from its recorded
    structure (zeros of the recorded shapes and dtypes)."""

    def __init__(self, store: "CostStore | None" = None):
        super().__init__()
        self._results: dict[Hashable, Any] = {}
        self.store = store
        self.replayed = 0   # steps answered from the cache (for tests and the benchmark)
        self.loaded = 0     # of which first seen in this run but measured by an earlier one (the store)

    def _run(self, key: Hashable, fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, StepCost]:
        if key in self._results:
            self.replayed += 1
            return self._results[key], self._cache[key]
        stored = self.store.get(key) if self.store is not None else None
        if stored is not None:
            cost, result = stored
            self._cache[key], self._results[key] = cost, result
            self.replayed += 1
            self.loaded += 1
            return result, cost
        # first time (or a cost restored from a checkpoint without its result): a real step
        result, cost = super()._run(key, fn, *args, **kwargs)
        self._results[key] = result
        if self.store is not None:
            self.store.put(key, cost, result)
        return result, cost


class CostStore:
    """Measured step costs kept across runs in one JSON file per fingerprint (`fingerprint`): the
    cost (every StepCost field) and the structure of the result (`result_spec`) of each signature.

    A signature is kept only when its key has a stable text form and its result rebuilds faithfully
    from shapes: numbers, strings, tensors that are not the output of a graph (a graph cannot be
    rebuilt: a later backward through it must be measured for real) and lists, tuples and
    str-keyed dicts of those. Anything else is measured once per run, as without a store. The file
    is JSON (no pickle: nothing in it can run code), written atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._entries: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._entries = {}   # unreadable: measured again and rewritten

    def get(self, key: Hashable) -> tuple[StepCost, Any] | None:
        entry = self._entries.get(_key_text(key) or "")
        if entry is None:
            return None
        try:
            return StepCost(**entry["cost"]), _rebuild(entry["result"])
        except (TypeError, KeyError, ValueError):
            return None   # written by another StepCost or format: measured again

    def put(self, key: Hashable, cost: StepCost, result: Any) -> None:
        text, spec = _key_text(key), result_spec(result)
        if text is None or spec is None:
            return
        self._entries[text] = {"cost": dataclasses.asdict(cost), "result": spec}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self._entries, f)
        os.replace(tmp, self.path)


def fingerprint(sc) -> str:
    """What decides a signature's cost and result beyond the signature itself: the scenario's
    model, data set and scheme blocks, where the steps run, the libraries that count and build
    them, and cosim's own source (any change to it starts a new file, so a store never outlives
    the code that measured it). The seed, the devices and the network are not in it: runs that
    differ only there share their measurements."""
    import peft
    import transformers

    parts = {"model": sc.model.model_dump(mode="json"), "dataset": sc.data.dataset,
             "scheme": sc.scheme.model_dump(mode="json"), "device": sc.runtime.device,
             "versions": [torch.__version__, transformers.__version__, peft.__version__], "source": _source_digest()}
    config = Path(sc.model.source) / "config.json"
    if config.is_file():   # a local Hugging Face folder: its architecture
        parts["config"] = hashlib.sha256(config.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def store_for(sc) -> CostStore:
    return CostStore(cache_dir() / f"{fingerprint(sc)}.json")


@lru_cache(maxsize=1)
def _source_digest() -> str:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _key_text(key: Hashable) -> str | None:
    """The key's repr when it is made of stable parts (no object addresses), else None."""
    text = repr(key)
    return None if " at 0x" in text or " object>" in text else text


def result_spec(x) -> Any:
    """A JSON structure `_rebuild` turns into a stand-in for `x`, or None when `x` cannot be
    rebuilt faithfully (CostStore doc)."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return {"value": x}
    if isinstance(x, torch.Tensor):
        if x.grad_fn is not None:
            return None
        return {"tensor": list(x.shape), "dtype": str(x.dtype).removeprefix("torch."), "device": x.device.type,
                "requires_grad": x.requires_grad}
    if isinstance(x, (list, tuple)):
        items = [result_spec(v) for v in x]
        return None if any(i is None for i in items) else {type(x).__name__: items}
    if isinstance(x, dict) and all(isinstance(k, str) for k in x):
        items = [[k, result_spec(v)] for k, v in x.items()]
        return None if any(i is None for _, i in items) else {"dict": items}
    return None


def _rebuild(spec) -> Any:
    if "value" in spec:
        return spec["value"]
    if "tensor" in spec:
        dtype = getattr(torch, spec["dtype"])
        device = spec["device"] if spec["device"] == "cpu" or torch.cuda.is_available() else "cpu"
        t = torch.zeros(spec["tensor"], dtype=dtype, device=device)
        return t.requires_grad_(True) if spec["requires_grad"] else t
    if "list" in spec:
        return [_rebuild(v) for v in spec["list"]]
    if "tuple" in spec:
        return tuple(_rebuild(v) for v in spec["tuple"])
    if "dict" in spec:
        return {k: _rebuild(v) for k, v in spec["dict"]}
    raise ValueError(f"not a result spec: {spec!r}")


def problems(sc) -> list[str]:
    """Why scenario `sc` cannot run as a twin: one line per field whose decisions would read
    learned values or content-dependent sizes (module doc); [] when it can."""
    out = []
    if sc.stop.target_accuracy is not None:
        out.append(f"stop.target_accuracy: twin mode scores no accuracy, so it can never be reached (given "
                   f"{sc.stop.target_accuracy:g}); allowed in runtime.mode twin: null (stop on rounds or "
                   "sim_time_s), or runtime.mode: real")
    if sc.control.controller == "sft":
        out.append("control.controller: 'sft' decides cuts and compression from the distortion and zstd size of "
                   "real activations, which a twin does not compute (given 'sft'); allowed in runtime.mode twin: "
                   "fixed, equal, or runtime.mode: real")
    out += [f"{p}; or runtime.mode: real" for p in sc.scheme.twin_problems()]
    return out
