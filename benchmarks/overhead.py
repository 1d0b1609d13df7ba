"""How much of a run's wall time is NOT real torch compute (engine, channels, bookkeeping, I/O)?

Runs the quickstart workload (by default shortened to 2 rounds; --rounds to change) and splits
the wall time of `cosim.run` into: torch training steps (inside `node.compute`), torch evaluation,
and everything else. Goal: everything else under 5 %.

    .venv/bin/python benchmarks/overhead.py [--rounds N] [--scenario scenarios/quickstart.yaml]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cosim
from _host import torch_timers   # benchmarks/ is this script's folder

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "quickstart.yaml"))
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    meters, learners = torch_timers()
    t0 = time.perf_counter()
    result = cosim.run(args.scenario, overrides={"scheme.rounds": args.rounds, "outputs.dir": "/tmp/cosim-bench"},
                       progress=False, plots=False)
    wall = time.perf_counter() - t0
    steps, evals = meters[-1].host_s, learners[-1].eval_host_s
    build = result.summary["wall_time_s"]  # from the clock start (after building the world)
    setup = wall - build
    other = build - steps - evals
    print(f"scenario {args.scenario}, {args.rounds} rounds, {len(result.events)} events")
    print(f"  wall time of cosim.run          {wall:8.2f} s")
    print(f"  building the world (load model, data, tokenize test split) {setup:8.2f} s")
    print(f"  torch training steps            {steps:8.2f} s")
    print(f"  torch evaluation                {evals:8.2f} s")
    print(f"  everything else during the run  {other:8.2f} s  = {100 * other / build:.2f} % of the run "
          f"(engine, channels, tokenization, writing results)")


if __name__ == "__main__":
    main()
