"""Train the small-timescale compute policy of dt_incremental with PPO (stable-baselines3) in
cosim.gym, on scenarios/dt_incremental.yaml with a tiny model (the features a policy sees do not
depend on the model: SNR, rate, position, queue, share, drift, AP), and save it where the scenario
names it. Usage: python tools/train_dt_policy.py [--steps N] [--out policies/dt_incremental_ppo.zip]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
#: the training world: the scenario's users, stations and radio, a tiny model so an epoch is fast
TRAINING = {"model.source": "tiny-bert", "model.tiny": {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128},
            "edge.0.profile": "raspberry-pi-4", "edge.1.profile": "raspberry-pi-4", "scheme.rounds": 16,
            "control.compute": "equal", "control.policy": None, "outputs.plots": []}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4096)
    ap.add_argument("--out", default=str(ROOT / "policies" / "dt_incremental_ppo.zip"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from stable_baselines3 import PPO

    from cosim.gym import CosimEnv

    env = CosimEnv(ROOT / "scenarios" / "dt_incremental.yaml", overrides=TRAINING, reward_scale=10.0)
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, gamma=0.5, learning_rate=3e-4, seed=args.seed,
                policy_kwargs={"net_arch": [64, 64]}, verbose=1)
    model.learn(total_timesteps=args.steps)
    model.save(args.out)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
