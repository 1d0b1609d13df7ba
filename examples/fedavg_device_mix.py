"""FedAvg: how does the device mix set the round time?

FedAvg's server waits for every selected client before it averages, so a round lasts as long as its
slowest client. Here eight devices fine-tune with FedAvg + LoRA; we replace fast devices (Jetson AGX
Orin) by slow ones (Raspberry Pi 4) one group at a time and run the same scenario with
`cosim.run(path, overrides=...)`, overriding the whole `devices:` list. The figure plots the mean
round time and the devices' energy per round against how many of the eight are Raspberry Pis: the
first slow device sets most of the pace for everyone (the straggler effect), while energy grows
with every Pi: it computes ~130x longer than an Orin at ~1/9 of its power.

    python examples/fedavg_device_mix.py            # MiniLM, 5 mixes x 2 rounds, a few minutes on 2 cores
    python examples/fedavg_device_mix.py --quick    # a tiny BERT, 3 mixes x 1 round, seconds
"""
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import cosim  # noqa: E402

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "fedavg.yaml"
DEVICES = 8


def devices(slow: int) -> list[dict]:
    """The `devices:` list of a mix: `slow` Raspberry Pis and the rest Jetson AGX Orins, all static
    in the cell (drawn around the access point), so only compute differs between the mixes."""
    groups = []
    if slow:
        groups.append({"count": slow, "profile": "raspberry-pi-4", "name": "rpi"})
    if DEVICES - slow:
        groups.append({"count": DEVICES - slow, "profile": "jetson-agx-orin", "name": "orin"})
    return groups


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("COSIM_EXAMPLES_QUICK") == "1",
                        help="a tiny model and fewer mixes (also COSIM_EXAMPLES_QUICK=1)")
    parser.add_argument("--out", default="results/examples", help="where the figure and the runs go")
    args = parser.parse_args()
    out = Path(args.out)

    mixes = [0, 1, 2, 4, 8]
    # Every device in every round, IID data (the mix, not the data, should explain the times).
    common = {"outputs.dir": str(out / "runs"), "outputs.plots": [], "outputs.progress": False,
              "scheme.rounds": 2, "scheme.participants": None, "data.partition": {"kind": "iid"},
              "stop": {}, "network.outage": {"policy": "wait"}}
    if args.quick:
        mixes = [0, 1, 8]
        common.update({"model.source": "tiny-bert", "model.max_length": 32, "data.test_samples": 32,
                       "scheme.rounds": 1, "scheme.local_steps": 2, "scheme.batch_size": 8})

    round_s, energy_j = [], []
    for slow in mixes:
        r = cosim.run(SCENARIO, overrides={**common, "name": f"fedavg_mix_{slow}rpi", "devices": devices(slow)})
        rounds = r.rounds[r.rounds["round"] > 0]              # round 0 is the initial model's evaluation
        round_s.append(rounds["sim_time_s"].diff().fillna(rounds["sim_time_s"].iloc[0]).mean())
        device_energy = r.nodes.loc[r.nodes["role"] == "device", "energy_j"].sum()
        energy_j.append(device_energy / len(rounds))
        print(f"{slow} Raspberry Pis: mean round {round_s[-1]:.2f} s, device energy {energy_j[-1]:.1f} J/round")

    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(9.6, 4.0), layout="constrained")
    ax_t.plot(mixes, round_s, marker="o", color="tab:blue")
    ax_t.set_ylabel("mean round time (simulated s)")
    ax_e.plot(mixes, energy_j, marker="s", color="tab:red")
    ax_e.set_ylabel("energy of all devices per round (J)")
    for ax in (ax_t, ax_e):
        ax.set_xlabel(f"Raspberry Pis among {DEVICES} devices (the rest: Jetson AGX Orin)")
        ax.set_xticks(mixes)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    fig.suptitle("FedAvg + LoRA: round time and energy against the device mix" + (" (quick)" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "fedavg_device_mix.png", dpi=120)
    print(f"figure: {out / 'fedavg_device_mix.png'}")


if __name__ == "__main__":
    main()
