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
"""
from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch.func import functional_call

from ..learn.adapters import train_all
from ..learn.models import TinySize, build_classifier
from ..learn.training import (SeparateLocalModel, lengths_of, logits_backward, logits_loss_grad, mask_from_lengths,
                              optimizer_slots, tensor_bytes, top_forward)
from .base import SchemeConfig, Strict, scheme


class StudentConfig(Strict):
    layers: int = Field(2, ge=1)
    hidden: int = Field(64, ge=8)
    heads: int = Field(2, ge=1)

    def size(self) -> TinySize:
        return TinySize(layers=self.layers, hidden=self.hidden, heads=self.heads, intermediate=4 * self.hidden)


class SplitKdConfig(SchemeConfig):
    name: str = "split_kd"
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    task_note: ClassVar[str] = "its student is a fresh classifier distilled on class logits"
    cut_layer: int = Field(2, ge=1, description="the device runs the teacher's embedding + blocks [0, cut_layer)")
    student: StudentConfig = Field(default_factory=StudentConfig)
    temperature: float = Field(2.0, gt=0, description="KD temperature T")
    kd_weight: float = Field(0.5, ge=0, le=1, description="alpha: weight of the soft-target term")

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, self.cut_layer


def build_student(sim, cfg: SplitKdConfig):
    """The student: a tiny model of the teacher's family (tiny-bert for MiniLM), all weights trainable."""
    source = {"bert": "tiny-bert", "gpt2": "tiny-gpt2", "llama": "tiny-llama"}[sim.learner.model.arch]
    student = build_classifier(source, sim.learner.model.head.out_features, tiny=cfg.student.size(),
                               seed=int(sim.rng("student/init").integers(2 ** 31)))
    train_all(student)
    sim.meter.exclude_parameters(student)
    return student


@scheme("split_kd", config=SplitKdConfig,
        summary="Split KD: teacher split device/edge returns soft targets; a small device student distils them")
def run(sim, cfg: SplitKdConfig):
    learner, server, cut = sim.learner, sim.edge[0], cfg.cut_layer
    student = build_student(sim, cfg)
    student_state = {n: p.detach().clone() for n, p in student.named_parameters()}
    top_state = learner.initial_state(learner.trainable_names(cut))
    server.memory.hold("weights", learner.weight_bytes(cut))
    for rnd in sim.rounds():
        clients = sim.select(cfg.participants)
        finished = yield sim.all_of(sim.client(device_round(sim, cfg, dev, server, student, student_state,
                                                            top_state, rnd)) for dev in clients)
        updates = sim.survivors(finished, rnd) or []
        if updates:
            students, tops, weights, _, _ = zip(*updates)
            student_state = yield from server.compute(learner.average, list(students), list(weights),
                                                      kind="aggregate", key=("average_student", len(students)), rnd=rnd)
            top_state = yield from server.compute(learner.average, list(tops), list(weights), kind="aggregate",
                                                  key=("average_top", len(tops)), rnd=rnd)
        for prefix in ("recv:", "teacher_top:", "teacher:"):   # per-device copies and buffers of the round
            server.memory.releases_with_prefix(prefix)
        state = student_state
        sim.close_round(rnd, None, [u[3] for u in updates],
                        evaluate=lambda: learner.evaluate_with(
                            lambda b: functional_call(student, state, (b.input_ids, b.attention_mask))),
                        teacher_loss=(sum(u[4] for u in updates) / len(updates)) if updates else float("nan"),
                        clients=len(clients), updates=len(updates))


def device_round(sim, cfg: SplitKdConfig, dev, server, student, student_state, top_state, rnd: int):
    """One device's round: download the student, `local_steps` split-KD minibatches, upload the student.
    Returns (student state, teacher-top state, samples, student loss, teacher loss)."""
    learner, cut = sim.learner, cfg.cut_layer
    state = yield from sim.send(server, dev, student_state, kind="model_down", rnd=rnd)
    local = SeparateLocalModel(learner, student, state)
    top = learner.local(top_state, start=cut)       # this device's copy of the teacher's top, on the edge
    dev.memory.hold("student", tensor_bytes(state.values()) + learner_state_bytes(learner, state))
    server.memory.hold(f"teacher_top:{dev.name}", learner.training_state_bytes(list(top_state)))
    size = (cfg.student.layers, cfg.student.hidden, cfg.student.heads)
    student_losses, teacher_losses = [], []
    for _ in range(cfg.local_steps):
        batch = learner.next_batch(dev.name)
        sig = batch.signature
        hidden = yield from dev.compute(learner.frozen_forward, batch, cut, kind="fwd",
                                        key=("frozen_fwd", cut, sig), rnd=rnd)
        up = yield from sim.send(dev, server, {"hidden": hidden, "lengths": lengths_of(batch.attention_mask)},
                                 kind="activation", rnd=rnd)
        mask = mask_from_lengths(up["lengths"], up["hidden"].shape[1])
        logits = yield from server.compute(top_forward, top, up["hidden"], mask, cut, kind="fwd",
                                           key=("teacher_top_fwd", cut, sig), rnd=rnd, hold=f"teacher:{dev.name}")
        server.memory.release(f"recv:activation:{dev.name}")
        (soft,) = yield from sim.send(server, dev, [logits.detach()], kind="soft_targets", rnd=rnd)
        t_loss, grad = yield from dev.compute(logits_loss_grad, soft, batch.labels, kind="loss",
                                              key=("teacher_loss", tuple(soft.shape)), rnd=rnd)
        (grad,) = yield from sim.send(dev, server, [grad], kind="gradient", rnd=rnd)
        yield from server.compute(logits_backward, top, logits, grad, kind="bwd", key=("teacher_top_bwd", cut, sig),
                                  rnd=rnd)
        server.memory.release(f"teacher:{dev.name}")
        server.memory.release(f"recv:gradient:{dev.name}")
        has_teacher = torch.ones(len(batch.labels), dtype=torch.bool)
        s_loss = yield from dev.compute(local.kd_train_step, batch, soft, has_teacher, cfg.temperature, cfg.kd_weight,
                                        kind="train", key=("student", size, sig), rnd=rnd)
        dev.memory.release(f"recv:soft_targets:{server.name}")
        student_losses.append(s_loss)
        teacher_losses.append(t_loss)
    dev.memory.release("student")
    new_state = local.state()
    yield from sim.send(dev, server, new_state, kind="model_up", rnd=rnd)
    dev.memory.release(f"recv:model_down:{server.name}")
    return (new_state, top.state(), learner.num_samples(dev.name), sum(student_losses) / len(student_losses),
            sum(teacher_losses) / len(teacher_losses))


def learner_state_bytes(learner, state) -> int:
    """Gradients plus optimizer state of the student's weights."""
    return tensor_bytes(state.values()) * (1 + optimizer_slots(learner.optimizer))
