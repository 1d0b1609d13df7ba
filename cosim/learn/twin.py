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
  its values mean nothing.
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
schemes' own (`SchemeConfig.twin_problems`): `scheme.order: grab` (split, splitfed, splitlora,
splitfrozen, sequential_fl, cyclicfl: herding of the clients' update directions), mavfl with
`selection: ucb` and `loss_weight` > 0 (its UCB1 utility reads the clients' training loss).
Workers (`runtime.workers`, `batch_clients`) are not started: there is nothing to compute ahead.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable

from .accounting import StepCost, StepMeter


class TwinMeter(StepMeter):
    """A StepMeter that runs each step signature once (measured, as a real run does) and replays
    its cost and result afterwards without calling the step (module doc)."""

    def __init__(self):
        super().__init__()
        self._results: dict[Hashable, Any] = {}
        self.replayed = 0   # steps answered from the cache (for tests and the benchmark)

    def _run(self, key: Hashable, fn: Callable[..., Any], *args, **kwargs) -> tuple[Any, StepCost]:
        if key in self._results:
            self.replayed += 1
            return self._results[key], self._cache[key]
        # first time (or a cost restored from a checkpoint without its result): a real step
        result, cost = super()._run(key, fn, *args, **kwargs)
        self._results[key] = result
        return result, cost


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
