"""Local LoRA: every device fine-tunes the whole (frozen) model with LoRA on its own data, alone —
no server, no transfers, no aggregation. The baseline that side-tuning (MobiLLM, PAE MobiLLM) and
ring pipelines (RingAda) are measured against: the device does all the work, forward and backward
through the backbone, and holds all the memory.

Modelling choices: the devices train in parallel (each on its own processor), `local_steps`
minibatches per round, each with its own adapters and optimizer that persist across rounds. A
round's evaluation is of ONE model, chosen by `evaluate`: `first` (default) — the first device's
own adapters, what a single device fine-tuning alone reaches; `average` — the plain mean of every
device's adapters, evaluated only (never sent back: the devices keep training their own).

Reproduces: the baseline of MobiLLM's claim (on-device LoRA's accuracy, memory and time) —
scenarios/mobillm_phone.yaml,
tests/test_side_tuning.py::test_mobillm_converges_within_a_few_points_of_on_device_lora
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import LoraRequired, scheme
from .common import local_step, round_loop


class LocalLoraConfig(LoraRequired):
    needs_coverage: ClassVar[bool] = False   # no transfers: coverage never stops a round

    name: str = "local_lora"
    evaluate: Literal["first", "average"] = Field("first", description="which model each round's evaluation scores")


@scheme("local_lora", config=LocalLoraConfig,
        summary="Local LoRA: each device fine-tunes alone with LoRA (no server, no transfers); baseline")
def run(sim, cfg: LocalLoraConfig):
    learner = sim.learner
    devices = list(sim.devices)
    for dev in devices:
        dev.memory.resident("training_state", learner.training_state_bytes(learner.trainable))

    def one_round(rnd, locals_):
        """Every device's own adapters and optimizer (`locals_`, by device name) train in place."""
        trained = yield from sim.gather(_train_alone(sim, cfg, dev, locals_[dev.name]) for dev in devices)
        losses = [loss for per_device in trained.results for loss in per_device]
        states = [locals_[dev.name].state() for dev in devices]
        if cfg.evaluate == "average":
            state = learner.average(states, [1.0] * len(states))
        else:
            state = states[0]
        sim.close_round(rnd, state, losses, clients=len(devices))
        return locals_

    yield from round_loop(sim, lambda: {dev.name: learner.local(learner.initial_state()) for dev in devices},
                          one_round)


def _train_alone(sim, cfg: LocalLoraConfig, dev, local):
    """One device's round: `local_steps` real LoRA steps on its own data (`LocalModel.train_step`)."""
    losses = []
    for _ in range(cfg.local_steps):
        losses.append((yield from local_step(sim, dev, local)))
    return losses
