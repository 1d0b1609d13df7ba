"""How much faster do C clients' LoRA steps run as one batched step (cosim/learn/batched.py) than
one at a time? Host throughput only: simulated time never depends on it.

For C in --clients, the same C clients train from the same state on the same pre-drawn batches
(batch 16, 64 tokens) for --steps steps, first one at a time (`LocalModel.train_step`), then
batched (`batched_train_step`); one warm-up step of each way at every C is not timed. Models: the
tiny BERT of the tests (scenarios/tiny.yaml, LoRA r 8) and the pretrained all-MiniLM-L6-v2
(scenarios/fedavg.yaml), both built by cosim's own `cosim.build`. Prints client-steps per second,
the speed-up, the largest parameter difference between the two ways and the share of parameter
elements that differ by more than OFF (float rounding only, magnified by AdamW where a gradient
nearly cancels).

    .venv/bin/python benchmarks/batched_clients.py [--models tiny minilm] [--clients 1 4 16]
        [--steps 2] [--threads 1] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import cosim
from cosim.learn.batched import batched_train_step
from cosim.learn.training import Batch

ROOT = Path(__file__).resolve().parents[1]
BATCH_SIZE, MAX_LENGTH = 16, 64
#: A parameter element "off" between the two ways: well above float32 rounding of values ~1e-2 (the
#: rare ones are AdamW steps of gradients that nearly cancel to its eps, see cosim/learn/batched.py).
OFF = 1e-6
MODELS = {  # scenario file and overrides that make it a LoRA run with enough clients at batch 16 × 64
    "tiny": ("tiny.yaml", {"devices": [{"count": 16, "profile": "jetson-nano"}], "scheme.lora": {"r": 8, "alpha": 16}}),
    "minilm": ("fedavg.yaml", {}),
}


def build_learner(model: str, threads: int, device: str):
    scenario, overrides = MODELS[model]
    overrides = dict(overrides, **{"scheme.batch_size": BATCH_SIZE, "model.max_length": MAX_LENGTH,
                                   "runtime.torch_threads": threads,
                                   "outputs.dir": tempfile.mkdtemp(prefix="cosim-batched-")})
    learner = cosim.build(cosim.load(ROOT / "scenarios" / scenario, overrides)).learner
    learner.model.to(device)
    return learner


def on(device: str, b: Batch) -> Batch:
    return Batch(b.input_ids.to(device), b.attention_mask.to(device), b.labels.to(device))


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def compare(learner, clients: int, steps: int, device: str) -> dict:
    """Seconds for `steps` steps of `clients` clients, one at a time and batched, same batches."""
    names = sorted(learner.clients)[:clients]
    if len(names) < clients:
        raise SystemExit(f"the scenario has {len(names)} clients, fewer than {clients}")
    batches = [[on(device, learner.next_batch(n)) for n in names] for _ in range(steps + 1)]
    state = learner.initial_state()
    learner.local(state).train_step(batches[0][0])                                 # warm-up
    batched_train_step([learner.local(state) for _ in names], batches[0])          # warm-up
    alone = [learner.local(state) for _ in names]
    together = [learner.local(state) for _ in names]

    def one_at_a_time():
        for step in batches[1:]:
            for m, b in zip(alone, step):
                m.train_step(b)

    def batched():
        for step in batches[1:]:
            batched_train_step(together, step)

    alone_s, together_s = timed(one_at_a_time, device), timed(batched, device)
    diffs = torch.cat([(a.params[k] - t.params[k]).abs().flatten() for a, t in zip(alone, together) for k in a.params])
    return {"alone_s": alone_s, "batched_s": together_s, "max_param_diff": diffs.max().item(),
            "share_off": (diffs > OFF).float().mean().item()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--clients", nargs="+", type=int, default=[1, 4, 16])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here; nothing measured")
        return
    print(f"device {args.device}, torch threads {args.threads}, batch {BATCH_SIZE} x {MAX_LENGTH} tokens, "
          f"{args.steps} timed steps per client")
    print(f"{'model':8} {'clients':>7} {'one-at-a-time':>18} {'batched':>18} {'speed-up':>9} {'max |dparam|':>13} "
          f"{'share > ' + format(OFF, '.0e'):>13}")
    for model in args.models:
        learner = build_learner(model, args.threads, args.device)
        for clients in args.clients:
            r = compare(learner, clients, args.steps, args.device)
            client_steps = clients * args.steps
            print(f"{model:8} {clients:7d} {client_steps / r['alone_s']:10.2f} steps/s {client_steps / r['batched_s']:10.2f} "
                  f"steps/s {r['alone_s'] / r['batched_s']:8.2f}x {r['max_param_diff']:13.2e} {r['share_off']:13.1e}", flush=True)


if __name__ == "__main__":
    main()
