"""SFT: what does its controller buy against fixed settings?

SFT (split fine-tuning, arXiv 2501.09237) lets a two-timescale controller pick each device's cut
and compression every round and share the band every second. `cosim.compare` runs the four entries
of scenarios/compare_sft.yaml on the same world (same seed, devices, data): uncompressed fixed-cut
split fine-tuning with equal band shares, compression only, the controller's cuts and shares
without compression, and the whole SFT. The figure shows, per entry, the simulated time, the bytes
on the wire and the held-out accuracy after the same rounds.

    python examples/sft_controller_vs_fixed.py            # MiniLM, 4 entries x 4 rounds, minutes on 2 cores
    python examples/sft_controller_vs_fixed.py --quick    # a tiny BERT, 1 round each, seconds
"""
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cosim  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "compare_sft.yaml"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("COSIM_EXAMPLES_QUICK") == "1",
                        help="a tiny model and one round (also COSIM_EXAMPLES_QUICK=1)")
    parser.add_argument("--out", default="results/examples", help="where the figure and the runs go")
    args = parser.parse_args()
    out = Path(args.out)

    overrides = {"outputs.dir": str(out / "runs"), "outputs.plots": [], "outputs.progress": False}
    if args.quick:
        overrides.update({"model.source": "tiny-bert", "model.max_length": 32, "data.test_samples": 32,
                          "scheme.rounds": 1, "scheme.local_steps": 2, "scheme.batch_size": 8})

    # None: every entry of the file's `compare:` list; a list of labels would pick some.
    table = cosim.compare(SCENARIO, None, overrides=overrides, progress=False)
    table["bytes_mb"] = (table["bytes_up"] + table["bytes_down"]) / 1e6
    print(table[["sim_time_s", "bytes_mb", "final_accuracy"]])

    panels = [("sim_time_s", "simulated time (s)"), ("bytes_mb", "bytes on the wire, up + down (MB)"),
              ("final_accuracy", "held-out accuracy")]
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 4.2), layout="constrained")
    colors = ["#888888", "tab:orange", "tab:green", "tab:blue"]
    for ax, (column, label) in zip(axes, panels):
        bars = ax.bar(range(len(table)), table[column], color=colors[:len(table)])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(table)), table.index, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.set_ylim(0, (1.0 if column == "final_accuracy" else table[column].max() * 1.15))
        ax.grid(True, axis="y", alpha=0.3)
    rounds = int(table["rounds"].iloc[0])
    fig.suptitle(f"SFT against fixed settings after {rounds} round{'s' if rounds != 1 else ''}"
                 + (" (quick)" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "sft_controller_vs_fixed.png", dpi=120)
    print(f"figure: {out / 'sft_controller_vs_fixed.png'}")


if __name__ == "__main__":
    main()
