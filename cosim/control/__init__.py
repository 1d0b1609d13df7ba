"""Decisions while the run goes on (DESIGN §8): controllers that set per-device cuts, compression,
band shares, compute shares, associations and retraining on two timescales, from a view of what
an edge controller could know.

Layering: schemes → control → world, learn; control never imports a scheme.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..config import Strict
from .controllers import Controller, EqualController, FixedController
from .decision import Decision, DecisionError
from .loop import ControlLoop
from .view import DeviceView, View, observe


def _controller_class(name: str) -> type[Controller]:
    if name == "sft":   # imported when asked for: it brings scipy's optimizers and the split cost probes
        from .sft import SftController

        return SftController
    if name == "dt":
        from .dt import DtController

        return DtController
    return {"fixed": FixedController, "equal": EqualController}[name]


class ControlConfig(Strict):
    """The scenario's `control:` block."""

    controller: Literal["fixed", "equal", "sft", "dt"] = Field(
        "fixed", description="fixed: the scenario's settings hold; equal: equal bandwidth shares per cell; "
                             "sft: SFT's two-timescale manager (cuts + compression by an augmented Lagrangian, "
                             "bandwidth by SLSQP); dt: the digital-twin manager of arXiv 2411.18329 "
                             "(association + retraining, compute shares)")
    large_every_rounds: int = Field(1, ge=1, description="rounds between large-timescale decisions (cuts, compression)")
    small_every_s: float | None = Field(None, gt=0, description="simulated seconds between small-timescale "
                                        "decisions (bandwidth shares); null = at every round start")
    distortion_bound: float = Field(0.35, gt=0, le=1, description="sft: the largest sample-weighted mean relative "
                                    "L2 error of the decoded activations allowed (the accuracy constraint)")
    min_keep: float = Field(0.02, gt=0, le=1, description="sft: the smallest top-k keep ratio considered")
    bits: Literal[4, 8, 16] | None = Field(8, description="sft: quantization of kept values (null: float32)")
    lossless: Literal["none", "zstd", "zlib"] = Field("zstd", description="sft: lossless coder after quantization")
    min_share: float = Field(0.02, gt=0, lt=1, description="sft: the smallest bandwidth share a device is given")
    compress: bool = Field(True, description="sft: decide compression (false: cuts and bandwidth only, float32 "
                                             "transfers — the optimization-only baseline)")
    compute: Literal["equal", "greedy", "ppo"] = Field(
        "equal", description="dt: how each server splits its compute among its devices: equal, greedy (in "
                             "proportion to their expected work), ppo (the trained policy in `policy`)")
    policy: str | None = Field(None, description="dt with compute: ppo: the policy file (stable-baselines3 PPO "
                               ".zip, trained in cosim.gym); a relative path is looked up from here, then from "
                               "the repository")
    association: Literal["nearest", "twin"] = Field(
        "nearest", description="dt: nearest access point, or twin: load-aware on the twin's expected delays")
    retrain: Literal["drift", "always", "never"] = Field(
        "drift", description="dt: which devices retrain at a large-timescale decision: those whose data drifted "
                             "(drift indicator >= drift_threshold), all, or none")
    drift_threshold: float = Field(0.5, gt=0, le=1, description="dt: the drift indicator that triggers retraining")

    def policy_path(self) -> Path:
        """`policy` as given when it exists, else relative to the repository (policies/ ships there)."""
        path = Path(self.policy or "")
        if path.is_absolute() or path.exists():
            return path
        return Path(__file__).resolve().parents[2] / path

    def problems(self, devices: int) -> list[str]:
        """What this block needs of the scenario: a policy file that fits its devices."""
        if self.controller != "dt" or self.compute != "ppo":
            return []
        if not self.policy:
            return ["control.policy: compute: ppo needs the policy file (given none); allowed: a stable-baselines3 "
                    "PPO .zip trained in cosim.gym, e.g. policies/dt_incremental_ppo.zip"]
        from .rl import Policy, PolicyFileError

        try:
            Policy(self.policy_path(), devices)
        except PolicyFileError as err:
            return [f"control.policy: {err}"]
        return []


def decides_shares(name: str) -> bool:
    """Whether controller `name` decides band shares (which only an allocated medium honours)."""
    return _controller_class(name).decides_shares


def build_controller(config: ControlConfig) -> Controller:
    return _controller_class(config.controller)(config)


__all__ = ["ControlConfig", "ControlLoop", "Controller", "Decision", "DecisionError", "DeviceView", "View",
           "build_controller", "decides_shares", "observe"]
