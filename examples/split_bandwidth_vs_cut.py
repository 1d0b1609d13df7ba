"""Split learning: how much does the uplink bandwidth matter, and what does the cut layer cost?

A `cosim.sweep` over scenarios/sweep_bandwidth.yaml: vanilla split learning of MiniLM on four
Raspberry Pis taking turns, the cell's bandwidth from 2 to 100 MHz, for a cut after block 1 and
after block 4. Each grid point is an ordinary run in a process of its own. The figure plots the
simulated training time against bandwidth, one line per cut: the activations at the cut are the
same size at every cut, so the radio costs both cuts alike, and the gap between the lines is the
Pis' compute of the extra blocks they hold.

    python examples/split_bandwidth_vs_cut.py            # 8 runs of MiniLM, a few minutes on 2 cores
    python examples/split_bandwidth_vs_cut.py --quick    # a tiny BERT, 4 runs, seconds each
"""
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cosim  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "sweep_bandwidth.yaml"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("COSIM_EXAMPLES_QUICK") == "1",
                        help="a tiny model and fewer points (also COSIM_EXAMPLES_QUICK=1)")
    parser.add_argument("--out", default="results/examples", help="where the figure and the runs go")
    args = parser.parse_args()
    out = Path(args.out)

    # The grid: every combination is one run. Keys are dotted scenario paths (see the scenario reference).
    grid = {"network.medium.bandwidth_hz": [2e6, 5e6, 20e6, 100e6], "scheme.cut_layer": [1, 4]}
    # Overrides apply to every point: here only where runs are written, and no per-run plots.
    overrides = {"outputs.dir": str(out / "runs"), "outputs.plots": [], "outputs.progress": False}
    if args.quick:   # a tiny BERT (4 blocks), one round of two steps: seconds per point
        grid = {"network.medium.bandwidth_hz": [2e6, 100e6], "scheme.cut_layer": [1, 3]}
        overrides.update({"model.source": "tiny-bert", "model.max_length": 32, "data.test_samples": 32,
                          "scheme.rounds": 1, "scheme.local_steps": 2, "scheme.batch_size": 8})

    table = cosim.sweep(SCENARIO, grid=grid, overrides=overrides, workers=2, progress=False)
    print(table[["network.medium.bandwidth_hz", "scheme.cut_layer", "sim_time_s", "bytes_up", "final_accuracy"]])

    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    for cut, rows in table.groupby("scheme.cut_layer"):
        rows = rows.sort_values("network.medium.bandwidth_hz")
        ax.plot(rows["network.medium.bandwidth_hz"] / 1e6, rows["sim_time_s"], marker="o",
                label=f"cut after block {cut}")
    ax.set_xscale("log")
    ticks = sorted(table["network.medium.bandwidth_hz"].unique() / 1e6)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("cell bandwidth per direction (MHz, log scale)")
    ax.set_ylabel("simulated training time (s)")
    ax.set_ylim(bottom=0)
    ax.set_title("Split learning: training time against bandwidth" + (" (quick)" if args.quick else ""))
    ax.grid(True, alpha=0.3)
    ax.legend()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "split_bandwidth_vs_cut.png", dpi=120)
    print(f"figure: {out / 'split_bandwidth_vs_cut.png'}")


if __name__ == "__main__":   # sweep runs points in spawned processes: the guard is required
    main()
