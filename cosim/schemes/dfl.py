"""Distillation-based FL (DFL): FedAvg whose clients also distil from their own past. After a
client's local training in a round, the device runs its trained model over its own samples and
stores the logits (its soft predictions: softmax(logits / T) at temperature `temperature`) on the
device. In later rounds it trains from the global model on the hard labels plus those soft targets
with the KD loss of Hinton et al. (2015): alpha · T² · KL(soft target ‖ softmax(z/T)) + (1 − alpha) ·
CE(z, y) (`LocalModel.kd_train_step`; samples without a stored target take plain CE). The stored
targets keep what the client's model knew about its data after the global average pulled it
elsewhere (the forgetting that non-IID averaging causes).

The ratio adapts, per client and round, by agreement: alpha = `alpha_max` × the fraction of the
client's stored soft targets whose argmax is the true label. Targets that got the data right earn
weight; where the past model was wrong the client leans on its hard labels. (Round 1 has no
targets: plain CE.) The mean over devices per round is the results column `kd_alpha`; each training step's
weight is in its trace row's detail.

Simulated costs: the soft-target pass is a real forward per `batch_size` chunk of the client's
samples (kind "infer", counted FLOPs), and the stored logits (samples × classes × 4 bytes) are held
in the device's memory ledger as "soft_targets". Nothing extra travels: soft targets never leave
the device.

Reproduces: KD from the client's own past improves on FedAvg under non-IID data — scenarios/compare_fl.yaml,
tests/test_fl_claims.py::test_dfl_vs_fedavg_on_non_iid_data
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field

from ..world.events import declare
from .base import SchemeConfig, scheme
from .common import client_update, federated_round, round_loop


declare("infer", "compute", "a forward pass for predictions only (soft targets, teacher logits)", by="dfl")


class DFLConfig(SchemeConfig):
    name: str = "dfl"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    task_note: ClassVar[str] = "its soft targets and agreement weight are per-sample class predictions"
    temperature: float = Field(2.0, gt=0, description="KD temperature T")
    alpha_max: float = Field(0.5, ge=0, le=1, description="largest weight of the KD term; the weight "
                             "used is alpha_max × agreement of the stored soft targets with the labels")


class SoftTargets:
    """One device's stored logits, by training-set row."""

    def __init__(self):
        self.logits: dict[int, torch.Tensor] = {}
        self.agreement = 0.0

    def lookup(self, rows, num_classes: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        teacher = torch.zeros(len(rows), num_classes, device=device)
        has = torch.zeros(len(rows), dtype=torch.bool, device=device)
        for i, r in enumerate(np.asarray(rows).tolist()):
            t = self.logits.get(int(r))
            if t is not None:
                teacher[i], has[i] = t, True
        return teacher, has


@scheme("dfl", config=DFLConfig,
        summary="DFL: FedAvg whose clients train on hard labels + their stored soft predictions (adaptive KD)")
def run(sim, cfg: DFLConfig):
    learner, server = sim.learner, sim.edge[0]
    server.memory.resident("weights", learner.weight_bytes())

    def one_round(rnd, state):
        """`state`: (the global model, every device's stored soft targets by name)."""
        model, store = state

        def dfl_update(sim, cfg, dev, server, global_state):
            """FedAvg's client round with KD steps, then a new soft-target pass before the upload."""
            targets = store[dev.name]
            alpha = cfg.alpha_max * targets.agreement
            return client_update(sim, cfg, dev, server, global_state,
                                 step=lambda local: kd_step(sim, cfg, dev, local, targets, alpha),
                                 after_training=lambda local: store_soft_targets(sim, cfg, dev, local, targets))

        # the KD weight each client will use this round (mean over devices; a client's own is in the trace)
        kd_alpha = float(np.mean([cfg.alpha_max * t.agreement for t in store.values()]))
        model = yield from federated_round(sim, cfg, server, model, update=dfl_update, kd_alpha=kd_alpha)
        return model, store

    yield from round_loop(sim, lambda: (learner.initial_state(), {d.name: SoftTargets() for d in sim.devices}),
                          one_round)


def kd_step(sim, cfg: DFLConfig, dev, local, targets: SoftTargets, alpha: float):
    """One local step on the hard labels plus the stored soft targets (`LocalModel.kd_train_step`)."""
    learner = sim.learner
    batch, rows = learner.next_indexed_batch(dev.name)
    teacher, has = targets.lookup(rows, learner.train.num_classes, learner.device)
    # key: the cost depends on how many rows have a stored target (the distillation term's graph),
    # which the derived key does not show, and not on alpha's value, which it would carry
    return (yield from dev.compute(local.kd_train_step, batch, teacher, has, cfg.temperature, alpha, kind="train",
                                   key=("kd_train", tuple(batch.input_ids.shape), int(has.sum())),
                                   detail=f"kd_alpha={alpha:.4f}"))


def store_soft_targets(sim, cfg: DFLConfig, dev, local, targets: SoftTargets):
    """The trained model's soft predictions on all of the device's own samples, kept on the device
    (a real forward per `batch_size` chunk); their agreement with the labels sets the next alpha."""
    learner = sim.learner
    rows = learner.clients[dev.name].indices
    agree = 0
    for s in range(0, len(rows), cfg.batch_size):
        chunk = rows[s:s + cfg.batch_size]
        batch = learner.batch_of_rows(chunk)
        logits = yield from dev.compute(local.predict_logits, batch, kind="infer")
        agree += int((logits.argmax(-1) == batch.labels).sum())
        targets.logits.update({int(r): z for r, z in zip(chunk.tolist(), logits)})
    targets.agreement = agree / len(rows)
    dev.memory.resident("soft_targets", len(targets.logits) * learner.train.num_classes * 4)
