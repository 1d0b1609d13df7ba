"""Train the small-timescale compute policy of dt_incremental with PPO (stable-baselines3) in
cosim.gym, on scenarios/dt_incremental.yaml with a tiny model and weak base stations (the features
a policy sees do not depend on the model: SNR, rate, position, queue, share, drift, retraining, AP;
the stations' FLOP/s only scale every delay, which the reward's `auto` scale divides out), and save
it where the scenario names it, with its learning curve beside it (`.curve.csv`: timesteps, mean
episode reward of the rollout).

Reward: −(epoch's summed user delay) / (the mean epoch delay of the equal split on the scenario's
seed) (`reward_scale="auto"`, cosim.gym), about −1 per epoch. The policy's mean action starts at
0.5 for every device (the equal split) with a small spread, so PPO starts from the equal baseline
instead of from actions clipped to 0 (a starved device). Usage:
python tools/train_dt_policy.py [--steps N] [--out policies/dt_incremental_ppo.zip] [--seed S]
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
#: the training world: the scenario's users, stations and radio, a tiny model so an epoch is fast
TRAINING = {"model.source": "tiny-bert", "model.tiny": {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128},
            "edge.0.profile": "raspberry-pi-4", "edge.1.profile": "raspberry-pi-4", "scheme.rounds": 16,
            "control.compute": "equal", "control.policy": None, "outputs.plots": []}


def make_ppo(env, seed: int, n_steps: int = 256, batch_size: int = 64):
    """PPO with its Gaussian's mean at 0.5 (the equal split) and std e^-1.5 ≈ 0.22 at the start;
    gamma 0.5: a split changes its own epoch's delay, little after it."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=batch_size, gamma=0.5, learning_rate=3e-4,
                seed=seed, policy_kwargs={"net_arch": [64, 64], "log_std_init": -1.5}, verbose=0)
    with torch.no_grad():
        model.policy.action_net.bias.fill_(0.5)
    return model


class Curve:
    """The mean episode reward of each rollout (what SB3's Monitor saw), printed and written with
    the policy so far after every rollout (`out`, `out.curve.csv`): a stopped training keeps both."""

    def __init__(self, out: Path):
        from stable_baselines3.common.callbacks import BaseCallback

        rows = self.rows = []
        t0 = time.monotonic()

        class _Callback(BaseCallback):
            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                episodes = [e["r"] for e in self.model.ep_info_buffer]
                if episodes:
                    rows.append((self.num_timesteps, float(np.mean(episodes)), time.monotonic() - t0))
                    print(f"steps {rows[-1][0]:6d}  mean episode reward {rows[-1][1]:8.3f}  "
                          f"wall {rows[-1][2]:6.0f} s", flush=True)
                self.model.save(out)
                with open(out.with_suffix(".curve.csv"), "w", newline="") as f:
                    csv.writer(f).writerows([("timesteps", "mean_episode_reward", "wall_s"), *rows])

        self.callback = _Callback()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4096)
    ap.add_argument("--out", default=str(ROOT / "policies" / "dt_incremental_ppo.zip"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from cosim.gym import CosimEnv

    env = CosimEnv(ROOT / "scenarios" / "dt_incremental.yaml", overrides=TRAINING)
    model = make_ppo(env, args.seed)
    out = Path(args.out)
    model.learn(total_timesteps=args.steps, callback=Curve(out).callback)
    print(f"saved {out} (reward scale 1/{1 / env.reward_scale:.4g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
