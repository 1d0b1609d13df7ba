"""THz-ISAC: what does sensing cost the fine-tuning?

A UAV edge server circles over ten ground devices and serves them on a 300 GHz THz-ISAC link that
spends a share of its time sensing (scenarios/uav_thz_isac.yaml: split learning of MiniLM). We run
the same scenario (same seed: the same model steps) for several sensing fractions with
`cosim.run(path, overrides=...)` and read two things from each run: the simulated training time
(summary), the time its transfers took (the trace's transfer rows) and the sensing SNR the link
recorded (its "sense" rows). With `mode: time` the link gets (1 - fraction) of each frame, so
transfers stretch by 1 / (1 - fraction), while the sensing SNR grows with the time spent sensing;
how much of that reaches the training time depends on how much of a round is spent on the radio
rather than computing (at 10 GHz of THz band, little).

    python examples/isac_sensing_vs_delay.py            # MiniLM, 5 fractions, a few minutes on 2 cores
    python examples/isac_sensing_vs_delay.py --quick    # a tiny BERT, 3 fractions, seconds
"""
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cosim  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "uav_thz_isac.yaml"


def mean_sensing_snr_db(events) -> float:
    """Mean of the sensing SNR over the run's "sense" rows (detail: sensing_snr_db=… comm_rate_bps=…)."""
    sense = events[events["kind"] == "sense"]["detail"]
    snr = sense.str.extract(r"sensing_snr_db=(-?[\d.]+|-?inf)")[0].astype(float)
    return float(snr.mean())


def transfer_time_s(events) -> float:
    """Seconds the run's transfers took, summed over every hop (the trace's transfer rows)."""
    moved = events[events["category"] == "transfer"]
    return float((moved["t_end"] - moved["t_start"]).sum())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("COSIM_EXAMPLES_QUICK") == "1",
                        help="a tiny model and fewer fractions (also COSIM_EXAMPLES_QUICK=1)")
    parser.add_argument("--out", default="results/examples", help="where the figure and the runs go")
    args = parser.parse_args()
    out = Path(args.out)

    fractions = [0.05, 0.2, 0.4, 0.6, 0.8]
    common = {"outputs.dir": str(out / "runs"), "outputs.plots": [], "outputs.progress": False,
              "scheme.rounds": 2}
    if args.quick:
        fractions = [0.05, 0.4, 0.8]
        common.update({"model.source": "tiny-bert", "model.max_length": 32, "data.test_samples": 32,
                       "scheme.rounds": 1, "scheme.local_steps": 2, "scheme.batch_size": 8})

    times_s, airtime_s, snr_db = [], [], []
    for fraction in fractions:
        r = cosim.run(SCENARIO, overrides={**common, "network.isac.sensing_fraction": fraction})
        times_s.append(r.summary["sim_time_s"])
        airtime_s.append(transfer_time_s(r.events))
        snr_db.append(mean_sensing_snr_db(r.events))
        print(f"sensing {fraction:.0%}: training {times_s[-1]:.4g} s, transfers {airtime_s[-1]:.4g} s (simulated), "
              f"mean sensing SNR {snr_db[-1]:.1f} dB")

    percent = [100 * f for f in fractions]
    fig, (ax, snr_ax) = plt.subplots(1, 2, figsize=(10.0, 4.0), layout="constrained")
    ax.plot(percent, times_s, marker="o", color="tab:blue", label="training time (end of the last round)")
    ax.plot(percent, airtime_s, marker="^", color="tab:orange", label="time in transfers (all hops summed)")
    ax.set_yscale("log")   # transfers are a small part of a round on a 10 GHz THz band
    ax.set_ylabel("simulated time (s, log scale)")
    ax.legend(loc="center left", fontsize=8)
    snr_ax.plot(percent, snr_db, marker="s", color="tab:red")
    snr_ax.set_ylabel("mean sensing SNR of the devices (dB)")
    for a in (ax, snr_ax):
        a.set_xlabel("share of the UAV's time spent sensing (%)")
        a.set_xticks(percent)
        a.grid(True, alpha=0.3)
    fig.suptitle("THz-ISAC UAV: what sensing costs split fine-tuning" + (" (quick)" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "isac_sensing_vs_delay.png", dpi=120)
    print(f"figure: {out / 'isac_sensing_vs_delay.png'}")


if __name__ == "__main__":
    main()
