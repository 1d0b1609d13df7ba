"""Twin mode's speed-up over a real run, and a 10,000-device twin in one process (issue 14 §1).

Two measurements, each run in a fresh subprocess (so peak RSS is that run's own):

- `--quickstart`: scenarios/quickstart.yaml (MiniLM + LoRA, ten devices, six rounds) with
  `runtime.mode: real`, and `twin` twice: cold (an empty step-cost store: each signature measured
  by one real step) and warm (the store the cold run left: no step runs). Prints each run's wall
  time — build included (`total_s`: what a user waits for) and from the clock start (`run_s`:
  summary wall_time_s) — its CPU seconds (`cpu_s`, build included: less noisy on a shared host),
  peak RSS, the steps actually run (`measured`), replayed and `loaded` from the store, and each
  twin's speed-ups over the real run. Checks that the delay columns are identical.
- `--devices N ...`: benchmarks/scale.py's scenario (one FedAvg round of a tiny BERT, every device
  in it, one local step each; 60 % static, 40 % on a loop road, or `--static 1`) in twin mode; a
  count given twice runs cold, then warm (the step-cost store is kept between its runs).

    .venv/bin/python benchmarks/twin.py --quickstart
    .venv/bin/python benchmarks/twin.py --devices 1000 10000 --static 1
    .venv/bin/python benchmarks/twin.py --devices 10000 --static 1 --profile /tmp/twin.prof   # cProfile it
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DELAY_COLUMNS = ["t_start", "t_end", "node", "peer", "kind", "round", "bytes", "flops"]


def run_one(what: str, mode: str, devices: int, static: float, profile: str | None, out_dir: str) -> dict:
    """One run in this process; its row (and its events' delay columns saved for the comparison)."""
    import torch

    import cosim
    from cosim.learn.twin import TwinMeter
    from cosim.learn.accounting import StepMeter

    torch.set_num_threads(1)
    meters = []
    for cls in (StepMeter, TwinMeter):   # the run's meter, to count the steps really run
        init = cls.__init__

        def spy(self, *args, _init=init):
            _init(self, *args)
            meters.append(self)
        cls.__init__ = spy
    os.environ["COSIM_TWIN_CACHE_DIR"] = str(Path(out_dir) / "twin-cache")
    if what == "quickstart":
        raw = ROOT / "scenarios" / "quickstart.yaml"
        overrides = {"runtime.mode": mode, "outputs.dir": out_dir, "outputs.progress": False}
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale import scenario

        raw, overrides = scenario(devices, out_dir, static), {"runtime.mode": mode}
    t0, cpu0 = time.perf_counter(), time.process_time()
    if profile:
        import cProfile

        prof = cProfile.Profile()
        result = prof.runcall(cosim.run, raw, overrides, progress=False, plots=False)
        prof.dump_stats(profile)
    else:
        result = cosim.run(raw, overrides, progress=False, plots=False)
    total_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    result.events[DELAY_COLUMNS].to_parquet(Path(out_dir) / f"{what}-{mode}-delays.parquet")
    meter = meters[-1]
    return {"what": what if what == "quickstart" else f"{devices} devices", "mode": mode,
            "total_s": total_s, "cpu_s": cpu_s, "run_s": float(result.summary["wall_time_s"]),
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,   # KiB on Linux
            "measured": meter.measured, "replayed": getattr(meter, "replayed", 0),
            "loaded": getattr(meter, "loaded", 0), "events": len(result.events),
            "sim_time_s": float(result.summary["sim_time_s"])}


def _child(what: str, mode: str, args, n: int = 0) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", what, mode, str(n), "--static", str(args.static),
           "--out", args.out] + (["--profile", args.profile] if args.profile else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quickstart", action="store_true", help="real against twin on scenarios/quickstart.yaml")
    ap.add_argument("--devices", type=int, nargs="*", default=[], help="twin runs of the scale scenario")
    ap.add_argument("--static", type=float, default=0.6, help="fraction of devices standing still (scale scenario)")
    ap.add_argument("--profile", default=None, help="cProfile each run into this file")
    ap.add_argument("--out", default="/tmp/cosim-twin-bench")
    ap.add_argument("--one", nargs=3, default=None, help=argparse.SUPPRESS)   # the child: what, mode, devices
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.one is not None:
        what, mode, n = args.one
        print(json.dumps(run_one(what, mode, int(n), args.static, args.profile, args.out)))
        return

    import pandas as pd

    rows = []
    if args.quickstart:
        shutil.rmtree(Path(args.out) / "twin-cache", ignore_errors=True)   # the first twin starts cold
        delays = Path(args.out) / "quickstart-twin-delays.parquet"
        cold = _child("quickstart", "twin", args)
        cold["mode"], cold_delays = "twin (cold)", pd.read_parquet(delays)
        warm = _child("quickstart", "twin", args)
        warm["mode"], warm_delays = "twin (warm)", pd.read_parquet(delays)
        real = _child("quickstart", "real", args)
        real_delays = pd.read_parquet(Path(args.out) / "quickstart-real-delays.parquet")
        for twin, twin_delays in ((cold, cold_delays), (warm, warm_delays)):
            twin["speedup_total"] = real["total_s"] / twin["total_s"]
            twin["speedup_run"] = real["run_s"] / twin["run_s"]
            twin["speedup_cpu"] = real["cpu_s"] / twin["cpu_s"]   # CPU seconds: less noisy on a shared host
            twin["same_delays"] = real_delays.equals(twin_delays)
        rows += [real, cold, warm]
    for n in args.devices:
        rows.append(_child("scale", "twin", args, n))
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
