"""What a learning agent sees and does: a controller's view as a fixed-size array, an array of
actions as a `Decision`, and a trained policy loaded from a file (stable-baselines3 PPO).

One encoding for both sides: the Gymnasium environment an agent is trained in (cosim.gym) and the
controller that runs the trained policy in a scenario (`control.compute: ppo`, cosim.control.dt),
so a policy sees in the scenario exactly what it saw while it learned.

Observation: per device (in the run's device order) one row of `FEATURES`, each scaled to about
[-1, 1] and clipped to ±`CLIP`. Action: per device one value in [0, 1] per decided setting
(`KNOBS`, in the order asked for): compute and band shares are normalized per access point
(share_i = (a_i + f) / Σ_j (a_j + f) over the devices it serves, f = `SHARE_FLOOR`: each gets
something, together the whole), an association picks the AP with index ⌊a × APs⌋, retrain is
a ≥ 0.5.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .decision import Decision

#: One observation row per device.
FEATURES = ("snr", "rate", "x", "y", "queue", "compute_share", "drift", "retrain", "ap")
#: Scales: SNR in units of 50 dB, rate as log10(bit/s) / 10, positions in km.
SNR_SCALE_DB, POSITION_SCALE_M = 50.0, 1000.0
#: Every feature is clipped to ±CLIP (an unreachable device's SNR is -inf, a far one's position large).
CLIP = 10.0
#: The settings an action can decide, per device.
KNOBS = ("compute_share", "bandwidth_share", "association", "retrain")
#: Added to every raw share action before normalizing: no device is starved (an action of 0 still gets
#: a share, at most (1 + floor) / floor = 21x smaller than another device's at its AP).
SHARE_FLOOR = 0.05


def features(view) -> np.ndarray:
    """The view as a (devices, FEATURES) float32 array."""
    aps = sorted(view.bandwidth_hz)
    rows = []
    for d in view.devices:
        snr = d.snr_db / SNR_SCALE_DB if math.isfinite(d.snr_db) else -CLIP
        rate = d.rate_bps(1.0, True) if d.in_coverage else 0.0
        pos = d.position_m if d.position_m is not None else np.zeros(3)
        rows.append([snr, math.log10(rate + 1.0) / 10.0, pos[0] / POSITION_SCALE_M, pos[1] / POSITION_SCALE_M,
                     d.queue, d.compute_share or 0.0, d.drift, float(d.retrain),
                     aps.index(d.ap) / max(1, len(aps) - 1)])
    return np.clip(np.asarray(rows, dtype=np.float32), -CLIP, CLIP)


def check_knobs(knobs) -> tuple[str, ...]:
    knobs = tuple(knobs)
    unknown = [k for k in knobs if k not in KNOBS]
    if unknown or not knobs or len(set(knobs)) != len(knobs):
        raise ValueError(f"controller_knobs: {list(knobs)!r}; allowed: distinct names among {', '.join(KNOBS)}")
    return knobs


def check_action(action, knobs, devices: list[str]) -> np.ndarray:
    """The action as a (devices, knobs) array, or a ValueError naming the entry outside [0, 1]."""
    a = np.asarray(action, dtype=np.float64)
    want = (len(devices) * len(knobs),)
    if a.shape != want and a.shape != (len(devices), len(knobs)):
        raise ValueError(f"action: shape {a.shape}; allowed: {want} (one value per device and knob "
                         f"{', '.join(knobs)})")
    a = a.reshape(len(devices), len(knobs))
    bad = np.argwhere(~((a >= 0.0) & (a <= 1.0)))
    if len(bad):
        i, k = bad[0]
        raise ValueError(f"action[{i * len(knobs) + k}] ({knobs[k]} of {devices[i]}): {float(a[i, k])!r} outside the "
                         "action space [0, 1]")
    return a


def decision_from(action: np.ndarray, knobs, view) -> Decision:
    """A checked (devices, knobs) action as a Decision (see the module doc for the mapping)."""
    names = [d.name for d in view.devices]
    aps = sorted(view.bandwidth_hz)
    col = {k: action[:, i] for i, k in enumerate(knobs)}
    decision = Decision()
    serving = {d.name: d.ap for d in view.devices}
    if "association" in col:
        decision.association = {n: aps[min(int(a * len(aps)), len(aps) - 1)] for n, a in zip(names, col["association"])}
        serving.update(decision.association)
    for knob in ("compute_share", "bandwidth_share"):
        if knob in col:
            raw = dict(zip(names, col[knob] + SHARE_FLOOR))
            shares = {}
            for ap in set(serving.values()):
                members = [n for n in names if serving[n] == ap]
                total = sum(raw[n] for n in members)
                shares.update({n: float(raw[n] / total) for n in members})
            setattr(decision, knob, shares)
    if "retrain" in col:
        decision.retrain = {n: bool(a >= 0.5) for n, a in zip(names, col["retrain"])}
    return decision


class PolicyFileError(ValueError):
    """A policy file that cannot be used here: the message names what does not match."""


class Policy:
    """A trained stable-baselines3 PPO policy (a .zip from `model.save`), acting deterministically."""

    def __init__(self, path: str | Path, devices: int, knobs=("compute_share",)):
        path = Path(path)
        if not path.is_file():
            raise PolicyFileError(f"{path}: no such policy file")
        try:
            from stable_baselines3 import PPO
        except ImportError:
            raise PolicyFileError("a PPO policy needs stable-baselines3 (the `rl` extra: pip install -e '.[rl]')") \
                from None
        try:
            self.model = PPO.load(str(path), device="cpu")
        except Exception as err:   # a zip that is not an SB3 model: its loader's words
            raise PolicyFileError(f"{path}: not a stable-baselines3 PPO policy ({type(err).__name__}: {err})") \
                from None
        obs, act = self.model.observation_space.shape, self.model.action_space.shape
        want_obs, want_act = (devices, len(FEATURES)), (devices * len(tuple(knobs)),)
        if obs != want_obs:
            raise PolicyFileError(f"{path}: the policy observes shape {obs}, this scenario's {devices} devices give "
                                  f"{want_obs} ({len(FEATURES)} features each: {', '.join(FEATURES)})")
        if act != want_act:
            raise PolicyFileError(f"{path}: the policy acts with shape {act}, this scenario needs {want_act} "
                                  f"({', '.join(knobs)} per device)")
        self.knobs = tuple(knobs)

    def decide(self, view) -> Decision:
        action, _ = self.model.predict(features(view), deterministic=True)
        action = np.clip(np.asarray(action, dtype=np.float64), 0.0, 1.0)   # PPO's Gaussian leaves the box
        return decision_from(action.reshape(len(view.devices), len(self.knobs)), self.knobs, view)
