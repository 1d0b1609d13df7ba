"""How wall time, peak memory and the engine's own cost grow with the number of devices.

One FedAvg round on a tiny BERT (built from a transformers config), every device in the round,
one local step each: the server sends the model to all devices at once, each trains one batch
and sends its update back, so all N flows share the cell's band at the same time. Three fifths of
the devices stand still (Jetson Nano, drawn in the area), two fifths drive a loop road
(Raspberry Pi 4), as in scenarios/tiny.yaml. Each device count runs in a fresh subprocess, so
peak RSS is that run's own.

Columns: setup_s (building the world: model, data, tokenizing), wall_s (the run itself, from the
simulation's clock start: summary wall_time_s), torch_s (host seconds inside torch training steps
and evaluation: StepMeter.host_s + Learner.eval_host_s), engine_s = wall_s - torch_s (SimPy,
network, channels, bookkeeping, writing results), engine_share = engine_s / wall_s, network_s
(host seconds inside the media's re-splits, `Medium._advance` and `Medium._reallocate`, where the
channel chain is evaluated), network_share = network_s / wall_s, pipeline_s (host seconds of the
work outside torch's steps that a plain FedAvg loop of the same steps does too: tokenizing each
batch, each client's parameter copy and optimizer, copying states out, averaging the updates:
`Learner._encode`, `Learner.local`, `LocalModel.state`, `Learner.average`), sim_s = engine_s -
pipeline_s (what only the simulation spends), sim_share = sim_s / wall_s, peak_rss_MB,
events (rows of the trace) and events_per_s (events / engine_s).

    .venv/bin/python benchmarks/scale.py --devices 10 100 1000
    .venv/bin/python benchmarks/scale.py --devices 1000 --profile /tmp/scale.prof   # cProfile one run
    .venv/bin/python benchmarks/scale.py --devices 10 100 1000 10000 --static 1      # every device static
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC_FRACTION = 0.6   # as in scenarios/tiny.yaml: 3 of 5 devices stand still


def scenario(devices: int, out_dir: str, static_fraction: float = STATIC_FRACTION) -> dict:
    """The scale scenario for `devices` devices: one round of FedAvg, everyone in it."""
    static = max(1, round(devices * static_fraction)) if devices > 1 else 1
    groups = [{"count": static, "profile": "jetson-nano"}]
    if devices - static > 0:
        groups.append({"count": devices - static, "profile": "raspberry-pi-4",
                       "mobility": {"kind": "road", "speed_mps": [15, 25], "wrap": True}})
    return {
        "name": f"scale-{devices}",
        "seed": 1,
        "model": {"source": "tiny-bert", "max_length": 32},
        "data": {"dataset": "movie_reviews", "test_samples": 64, "partition": {"kind": "iid"}},
        "scheme": {"name": "fedavg", "rounds": 1, "local_steps": 1, "batch_size": 8, "lr": 0.005},
        "devices": groups,
        "edge": [{"profile": "edge-t4", "position_m": [0, 0, 25]}],
        "network": {"medium": {"bandwidth_hz": 20e6}},
        "outputs": {"dir": out_dir, "progress": False, "plots": []},
    }


def run_one(devices: int, profile: str | None, static_fraction: float = STATIC_FRACTION) -> dict:
    """Run one device count in this process and return its row."""
    import torch

    import cosim
    from _host import torch_timers   # benchmarks/ is this script's folder
    from cosim.world.network import Medium

    torch.set_num_threads(1)
    meters, learners = torch_timers()
    from cosim.learn.training import Learner, LocalModel

    network_s, pipeline_s = [0.0], [0.0]

    def timed(method, into: list[float]):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return method(*a, **k)
            finally:
                into[0] += time.perf_counter() - t
        return wrapper

    Medium._advance, Medium._reallocate = timed(Medium._advance, network_s), timed(Medium._reallocate, network_s)
    Learner._encode, Learner.local = timed(Learner._encode, pipeline_s), timed(Learner.local, pipeline_s)
    Learner.average = staticmethod(timed(Learner.average, pipeline_s))
    LocalModel.state = timed(LocalModel.state, pipeline_s)
    raw = scenario(devices, "/tmp/cosim-scale", static_fraction)
    t0 = time.perf_counter()
    if profile:
        import cProfile

        prof = cProfile.Profile()
        result = prof.runcall(cosim.run, raw, progress=False, plots=False)
        prof.dump_stats(profile)
    else:
        result = cosim.run(raw, progress=False, plots=False)
    total_s = time.perf_counter() - t0
    wall_s = float(result.summary["wall_time_s"])  # from the clock start, after building the world
    torch_s = meters[-1].host_s + learners[-1].eval_host_s
    events = len(result.events)
    engine_s = wall_s - torch_s
    return {"devices": devices, "setup_s": total_s - wall_s, "wall_s": wall_s, "torch_s": torch_s, "engine_s": engine_s,
            "engine_share": engine_s / wall_s, "network_s": network_s[0], "network_share": network_s[0] / wall_s,
            "pipeline_s": pipeline_s[0], "sim_s": engine_s - pipeline_s[0], "sim_share": (engine_s - pipeline_s[0]) / wall_s,
            # ru_maxrss is in KiB on Linux
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "events": events,
            "events_per_s": events / engine_s if engine_s > 0 else float("nan"),
            "sim_time_s": float(result.summary["sim_time_s"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--profile", default=None, help="cProfile the run (one device count) into this file")
    ap.add_argument("--static", type=float, default=STATIC_FRACTION,
                    help="fraction of devices standing still (the others drive a loop road: their fading blocks "
                         "end every few ms, each a re-split of the band)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the child process's count
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.profile, args.static)))
        return

    import pandas as pd

    rows = []
    for n in args.devices:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", str(n), "--static", str(args.static)]
        if args.profile:
            cmd += ["--profile", args.profile]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
