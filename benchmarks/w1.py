"""Workload W1: cosim against a plain serial PyTorch loop doing the same training steps.

W1: FedAvg + LoRA (r 8, alpha 16, query/value; the head trains) on all-MiniLM-L6-v2, movie reviews,
20 IID clients, 5 per round, 5 rounds, 10 local steps of batch 16, max_length 64, AdamW lr 5e-3,
1,000 held-out rows evaluated after each round, one torch thread per process.

Each contender runs in a fresh subprocess, alternately (`--repeat`), and is measured from outside:
wall time, CPU time (user + system of the process and its children) and peak PSS (proportional set
size summed over the process tree, sampled every 0.2 s: shared model pages count once).

    .venv/bin/python benchmarks/w1.py [--repeat 2] [--rounds 5] [--only cosim,plain,workers] [--device cuda]
    .venv/bin/python benchmarks/w1.py --run plain   # one contender, in this process

Contenders: `plain` (the loop below), `cosim` (the scenario below, `runtime.workers: 1`), `workers`
(the same with `runtime.workers: auto`). `--device cuda` runs both the loop and cosim
(`runtime.device: cuda`) on the GPU; cosim's simulated times are the CPU run's either way.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLIENTS, PER_ROUND, LOCAL_STEPS, BATCH, MAX_LENGTH, LR, TEST_ROWS = 20, 5, 10, 16, 64, 5e-3, 1000
PAD_MULTIPLE = 8   # cosim's model.pad_multiple default


def scenario(rounds: int, workers: str | int = 1, device: str = "cpu") -> dict:
    """W1 as a cosim scenario: 20 phones in a 3GPP urban macro cell around one T4 edge server."""
    return {
        "name": "w1", "seed": 1,
        "model": {"source": "minilm", "max_length": MAX_LENGTH},
        "data": {"dataset": "movie_reviews", "partition": {"kind": "iid"}, "test_samples": TEST_ROWS},
        "scheme": {"name": "fedavg", "rounds": rounds, "local_steps": LOCAL_STEPS, "batch_size": BATCH, "lr": LR,
                   "participants": PER_ROUND, "lora": {"r": 8, "alpha": 16}},
        "devices": [{"count": CLIENTS, "profile": "phone-flagship", "name": "phone"}],
        "edge": [{"profile": "edge-t4", "position_m": [0, 0, 25]}],
        "network": {"medium": {"bandwidth_hz": 20e6, "sharing": "equal"},
                    "channel": {"pathloss": {"model": "3gpp-uma"}, "fading": "rayleigh"}},
        "runtime": {"workers": workers, "device": device},
        # the plain loop evaluates after each round only

        "outputs": {"dir": "/tmp/cosim-w1", "progress": False, "plots": [], "eval_round0": False},
    }


def run_cosim(rounds: int, workers, device: str = "cpu") -> dict:
    import cosim

    result = cosim.run(scenario(rounds, workers, device), progress=False, plots=False)
    rounds_table = result.rounds
    return {"accuracy": float(rounds_table["accuracy"].iloc[-1]), "sim_time_s": float(rounds_table["sim_time_s"].iloc[-1])}


def run_plain(rounds: int, device: str = "cpu") -> dict:
    """The same steps as a plain serial loop: transformers + peft, a mean-pooling linear head, one
    trainable copy per client, FedAvg of the trainable tensors, dynamic padding to a multiple of 8
    (HF's `pad_to_multiple_of=8`, what cosim's default bucket padding gives: the same tensor shapes),
    evaluation batches sorted by length (what a careful hand-written loop does)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, inject_adapter_in_model
    from torch.func import functional_call
    from transformers import AutoModel, AutoTokenizer

    from cosim.learn.data import load_dataset
    from cosim.learn.models import model_folder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ds = load_dataset("movie_reviews")
    folder = str(model_folder("minilm"))
    tok = AutoTokenizer.from_pretrained(folder)
    backbone = AutoModel.from_pretrained(folder)
    inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]), backbone)

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone, self.head = backbone, torch.nn.Linear(backbone.config.hidden_size, ds.num_classes)

        def forward(self, input_ids, attention_mask):
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    model = Classifier().eval().to(device)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("head.") or "lora_" in name)
    global_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}  # on `device`

    order = rng.permutation(len(ds.labels))
    test, train = order[:TEST_ROWS], order[TEST_ROWS:]
    lengths = [len(x) for x in tok([ds.texts[i] for i in test], truncation=True, max_length=MAX_LENGTH)["input_ids"]]
    test = test[np.argsort(lengths, kind="stable")]   # evaluation batches of similar lengths pad little
    shards = np.array_split(rng.permutation(train), CLIENTS)
    cursors = [0] * CLIENTS

    def batch(rows):
        enc = tok([ds.texts[i] for i in rows], padding="longest", pad_to_multiple_of=PAD_MULTIPLE, truncation=True,
                  max_length=MAX_LENGTH, return_tensors="pt")
        y = torch.from_numpy(ds.labels[rows].astype(np.int64))
        return enc["input_ids"].to(device), enc["attention_mask"].to(device), y.to(device)

    @torch.no_grad()
    def evaluate(state):
        correct = 0
        for s in range(0, TEST_ROWS, 64):
            ids, mask, y = batch(test[s:s + 64])
            correct += int((functional_call(model, state, (ids, mask), strict=False).argmax(-1) == y).sum())
        return correct / TEST_ROWS

    accuracy = float("nan")
    for _ in range(rounds):
        states = []
        for c in sorted(rng.choice(CLIENTS, PER_ROUND, replace=False)):
            params = {k: v.clone().requires_grad_(True) for k, v in global_state.items()}
            opt = torch.optim.AdamW(params.values(), lr=LR, weight_decay=0.0)
            for _ in range(LOCAL_STEPS):
                rows = shards[c][np.arange(cursors[c], cursors[c] + BATCH) % len(shards[c])]
                cursors[c] += BATCH
                ids, mask, y = batch(rows)
                F.cross_entropy(functional_call(model, params, (ids, mask), strict=False), y).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            states.append({k: v.detach() for k, v in params.items()})
        global_state = {k: torch.stack([s[k] for s in states]).mean(0) for k in global_state}
        accuracy = evaluate(global_state)
    return {"accuracy": accuracy}


# --- measuring from outside ---------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [pid, *(c.pid for c in p.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


#: How often peak PSS is sampled. Reading smaps_rollup makes the kernel walk the process's mappings:
#: ~15 ms per cosim process here. Sampled every 0.2 s (as before), the sampler took ~20 % of a core
#: from the contender, which cost a run whose workers keep both cores busy ~15 % of its wall time
#: (101 s against 87 s unsampled) and a serial one nothing (the other core was idle).
PSS_EVERY_S = 2.0


def _pss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def measure(contender: str, rounds: int, device: str = "cpu") -> dict:
    """Run one contender in a fresh process; wall, CPU (process tree) and peak PSS."""
    cmd = [sys.executable, __file__, "--run", contender, "--rounds", str(rounds), "--device", device]
    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak = 0
    while True:
        peak = max(peak, _pss_bytes(_tree(proc.pid)))
        try:
            proc.wait(timeout=PSS_EVERY_S)
            break
        except subprocess.TimeoutExpired:
            pass
    wall = time.perf_counter() - t0
    after = os.times()
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{contender} failed ({proc.returncode})")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"contender": contender, "wall_s": wall, "cpu_s": cpu, "peak_pss_gb": peak / 1e9,
            **json.loads(out.strip().splitlines()[-1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="plain,cosim,workers")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--run", default=None, help="run one contender here and print its result (internal)")
    args = ap.parse_args()
    if args.run:
        if args.run == "plain":
            out = run_plain(args.rounds, args.device)
        else:
            out = run_cosim(args.rounds, "auto" if args.run == "workers" else 1, args.device)
        print(json.dumps(out))
        return

    import pandas as pd

    contenders = args.only.split(",")
    rows = []
    for rep in range(args.repeat):
        for c in contenders:
            rows.append({"repeat": rep, **measure(c, args.rounds, args.device)})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    med = table.groupby("contender")[["wall_s", "cpu_s", "peak_pss_gb", "accuracy"]].median()
    if "plain" in med.index:
        med["wall_vs_plain"] = med["wall_s"] / med.loc["plain", "wall_s"]
        med["cpu_vs_plain"] = med["cpu_s"] / med.loc["plain", "cpu_s"]
    print(f"\nW1, {args.rounds} rounds, medians of {args.repeat} alternated runs, {os.cpu_count()} cores, "
          f"device {args.device}:")
    print(med.round(3).to_string())
    print("\nmin/max wall:", table.groupby("contender")["wall_s"].agg(["min", "max"]).round(1).to_dict("index"))


if __name__ == "__main__":
    main()
