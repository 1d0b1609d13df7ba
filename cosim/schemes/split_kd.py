"""Split knowledge distillation for IoT (arXiv 2501.17164): a large teacher (the scenario's model) is
split at `cut_layer` between the device and the edge, and a small student on the device learns from
the teacher's soft targets; raw data never leaves the device.

Per minibatch on a device: the device runs the teacher's frozen bottom (embedding + blocks
[0, cut), forward only, adapters off) and sends the cut-layer activation with the sequence lengths
up; the edge runs the teacher's top (blocks [cut, depth) + head, LoRA and head trainable) and returns
the logits — the soft targets, softmax(logits / T) taken on the device. The device then (1) scores
the teacher with its own labels and sends back only the gradient of that loss w.r.t. the logits
(U-shaped split: the labels stay on the device), which the edge backpropagates through its top, and
(2) trains the student on the KD loss (Hinton et al. 2015: alpha · T² · KL + (1 − alpha) · CE).
Each round the selected devices train in parallel from the global student (downloaded, uploaded,
averaged FedAvg-style) and their own copy of the teacher's top on the edge (averaged likewise).

The student is a tiny model of the same family as the teacher (`scheme.student`: layers, hidden,
heads; the knob of the study), built from scratch and fully trained. The round's accuracy is the
student's. Energy and delay per round are in the trace as for every scheme.

Reproduces: arXiv 2501.17164: a device-side student learns from the split teacher's soft targets better than
from labels alone — scenarios/split_kd.yaml, tests/test_claims.py::test_claim_is_shown
"""
from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch.func import functional_call

from ..learn.activation import Activation
from ..learn.adapters import train_all
from ..learn.aggregate import weighted_mean
from ..learn.models import TINY_MAX_HIDDEN, TINY_MAX_HEADS, TINY_MAX_LAYERS, TinySize, build_classifier
from ..learn.training import (SeparateLocalModel, logits_backward, logits_loss_grad, optimizer_slots, tensor_bytes,
                              top_forward)
from ..world.events import declare
from ..config import AttentionShape
from .base import SchemeConfig, Strict, scheme


declare("loss", "compute", "a loss and its gradient at the top of a split model", by="split_kd")
declare("soft_targets", "transfer", "stored soft labels (logits) sent to a device for distillation", by="split_kd")


class StudentConfig(AttentionShape):
    layers: int = Field(2, ge=1, le=TINY_MAX_LAYERS)
    hidden: int = Field(64, ge=8, le=TINY_MAX_HIDDEN)
    heads: int = Field(2, ge=1, le=TINY_MAX_HEADS, description="attention heads; must divide hidden")

    def size(self) -> TinySize:
        return TinySize(layers=self.layers, hidden=self.hidden, heads=self.heads, intermediate=4 * self.hidden)


class SplitKdConfig(SchemeConfig):
    name: str = "split_kd"
    compresses: ClassVar[bool] = True   # `compression` codes activations and gradients
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    task_note: ClassVar[str] = "its student is a fresh classifier distilled on class logits"
    cut_layer: int = Field(2, ge=1, description="the device runs the teacher's embedding + blocks [0, cut_layer)")
    student: StudentConfig = Field(default_factory=StudentConfig)
    temperature: float = Field(2.0, gt=0, description="KD temperature T")
    kd_weight: float = Field(0.5, ge=0, le=1, description="alpha: weight of the soft-target term")

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, self.cut_layer

    def problems(self, depth, source, device_profiles) -> list[str]:
        return (super().problems(depth, source, device_profiles)
                + self.cut_problems("cut_layer", self.cut_layer, depth, source))

    def max_tokens(self) -> int | None:
        return self.student.size().max_positions   # the student reads the same tokens as the teacher


def build_student(sim, cfg: SplitKdConfig):
    """The student: a tiny model of the teacher's family (tiny-bert for MiniLM), all weights trainable."""
    source = {"bert": "tiny-bert", "gpt2": "tiny-gpt2", "llama": "tiny-llama"}[sim.learner.model.arch]
    student = build_classifier(source, sim.learner.model.head.out_features, tiny=cfg.student.size(),
                               seed=int(sim.rng("student/init").integers(2 ** 31)))
    train_all(student)
    student.to(sim.learner.device)
    sim.meter.exclude_parameters(student)
    return student


@scheme("split_kd", config=SplitKdConfig,
        summary="Split KD: teacher split device/edge returns soft targets; a small device student distils them")
def run(sim, cfg: SplitKdConfig):
    learner, server, cut = sim.learner, sim.edge[0], cfg.cut_layer
    student = build_student(sim, cfg)
    student_state = {n: p.detach().clone() for n, p in student.named_parameters()}
    top_state = learner.initial_state(learner.trainable_names(cut))
    server.memory.resident("weights", learner.weight_bytes(cut))
    for rnd in sim.rounds():
        clients = sim.select(cfg.participants)
        copies = []  # each device's teacher-top copy on the edge, held until the copies are averaged
        gathered = yield from sim.gather(device_round(sim, cfg, dev, server, student, student_state, top_state, copies)
                                         for dev in clients)
        updates = gathered.results
        if updates:
            uploads, tops, weights, _, _ = zip(*updates)
            student_state = yield from server.compute(weighted_mean, [u.value for u in uploads], list(weights),
                                                      kind="aggregate")
            top_state = yield from server.compute(weighted_mean, list(tops), list(weights), kind="aggregate")
            for upload in uploads:
                upload.release()
        for copy in copies:
            copy.release()
        state = student_state
        sim.close_round(rnd, None, [u[3] for u in updates],
                        evaluate=lambda: learner.evaluate_with(
                            lambda b: functional_call(student, state, (b.input_ids, b.attention_mask))),
                        teacher_loss=(sum(u[4] for u in updates) / len(updates)) if updates else float("nan"),
                        clients=len(clients), updates=len(updates))


def device_round(sim, cfg: SplitKdConfig, dev, server, student, student_state, top_state, copies: list):
    """One device's round: download the student, `local_steps` split-KD minibatches, upload the student.
    The edge's copy of the teacher's top for this device is held in `copies` until the round ends.
    Returns (the `Received` student state at the edge, teacher-top state, samples, student loss,
    teacher loss)."""
    learner, cut = sim.learner, cfg.cut_layer
    with (yield from sim.send(server, dev, student_state, kind="model_down")) as down:
        local = SeparateLocalModel(learner, student, down.value)
        top = learner.local(top_state, start=cut)       # this device's copy of the teacher's top, on the edge
        copies.append(server.memory.hold("teacher_top", learner.training_state_bytes(list(top_state))))
        student_losses, teacher_losses = [], []
        with dev.memory.hold("student", tensor_bytes(down.value.values()) + learner_state_bytes(learner, down.value)):
            for _ in range(cfg.local_steps):
                s_loss, t_loss = yield from kd_step(sim, cfg, dev, server, local, top, learner.next_batch(dev.name))
                student_losses.append(s_loss)
                teacher_losses.append(t_loss)
        upload = yield from sim.send(dev, server, local.state(), kind="model_up")
    return (upload, top.state(), learner.num_samples(dev.name), sum(student_losses) / len(student_losses),
            sum(teacher_losses) / len(teacher_losses))


def kd_step(sim, cfg: SplitKdConfig, dev, server, local, top, batch):
    """One split-KD minibatch: the teacher's frozen bottom on the device, its top on the edge (the
    labels stay on the device: U-shaped), the teacher scored and its top trained from the logits'
    gradient, then the student trained on the soft targets. Returns (student loss, teacher loss)."""
    learner, cut = sim.learner, cfg.cut_layer
    codec = cfg.codec(sim, f"compression/{dev.name}")
    hidden = yield from dev.compute(learner.frozen_forward, batch, cut, kind="fwd")
    with server.memory.hold("teacher") as saved:  # the teacher top's activations, kept for its backward
        with (yield from sim.send(dev, server, Activation.of(hidden, batch).without_labels(),
                                  kind="activation", codec=codec)) as up:
            logits = yield from server.compute(top_forward, top, up.value.hidden, up.value.mask, cut, kind="fwd",
                                               keep=saved)
        with (yield from sim.send(server, dev, [logits.detach()], kind="soft_targets", codec=codec)) as soft:
            t_loss, grad = yield from dev.compute(logits_loss_grad, soft.value[0], batch.labels, kind="loss")
            with (yield from sim.send(dev, server, [grad], kind="gradient", codec=codec)) as back:
                yield from server.compute(logits_backward, top, logits, back.value[0], kind="bwd")
            saved.release()  # the teacher's top has updated; the device distils the soft targets
            has_teacher = torch.ones(len(batch.labels), dtype=torch.bool, device=batch.labels.device)
            s_loss = yield from dev.compute(local.kd_train_step, batch, soft.value[0], has_teacher, cfg.temperature,
                                            cfg.kd_weight, kind="train")
    return s_loss, t_loss


def learner_state_bytes(learner, state) -> int:
    """Gradients plus optimizer state of the student's weights."""
    return tensor_bytes(state.values()) * (1 + optimizer_slots(learner.optimizer))
