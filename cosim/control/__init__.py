"""Decisions while the run goes on (DESIGN §8): controllers that set per-device cuts, compression
and band shares on two timescales, from a view of what an edge controller could know.

Layering: schemes → control → world, learn; control never imports a scheme.
"""
from __future__ import annotations

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
    return {"fixed": FixedController, "equal": EqualController}[name]


class ControlConfig(Strict):
    """The scenario's `control:` block."""

    controller: Literal["fixed", "equal", "sft"] = Field(
        "fixed", description="fixed: the scenario's settings hold; equal: equal bandwidth shares per cell; "
                             "sft: SFT's two-timescale manager (cuts + compression by an augmented Lagrangian, "
                             "bandwidth by SLSQP)")
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


def decides_shares(name: str) -> bool:
    """Whether controller `name` decides band shares (which only an allocated medium honours)."""
    return _controller_class(name).decides_shares


def build_controller(config: ControlConfig) -> Controller:
    return _controller_class(config.controller)(config)


__all__ = ["ControlConfig", "ControlLoop", "Controller", "Decision", "DecisionError", "DeviceView", "View",
           "build_controller", "decides_shares", "observe"]
