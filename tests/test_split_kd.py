"""Split knowledge distillation: the student really learns from the teacher's soft targets, only
activations, logits and gradients cross the link (no token ids, no labels), and the student's size
sets what it costs in bytes and FLOPs."""
from __future__ import annotations

import torch

import cosim
from cosim.learn.adapters import train_all
from cosim.learn.models import TinySize, build_classifier
from cosim.learn.training import Batch, SeparateLocalModel
from cosim.world.engine import Simulation
from conftest import tiny_scenario


def _run(tmp_path, **student):
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": "split_kd", "rounds": 1, "local_steps": 2, "batch_size": 8, "cut_layer": 2,
                     "student": {"layers": 1, "hidden": 32, "heads": 2, **student}}
    return cosim.run(raw, progress=False, plots=False)


class _Opt:  # the two learner settings a LocalModel reads
    lr, optimizer = 0.01, "sgd"


def test_soft_targets_change_the_students_update():
    student = train_all(build_classifier("tiny-bert", 2, tiny=TinySize(layers=1, hidden=32, heads=2), seed=0))
    state = {n: p.detach().clone() for n, p in student.named_parameters()}
    torch.manual_seed(0)
    batch = Batch(torch.randint(1000, 2000, (4, 8)), torch.ones(4, 8, dtype=torch.long), torch.tensor([0, 1, 0, 1]))
    everyone = torch.ones(4, dtype=torch.bool)

    def updated(teacher_logits, alpha):
        local = SeparateLocalModel(_Opt(), student, state)
        local.kd_train_step(batch, teacher_logits, everyone, 2.0, alpha)
        return local.state()["head.weight"]

    confident_0 = torch.tensor([[5.0, -5.0]] * 4)
    confident_1 = torch.tensor([[-5.0, 5.0]] * 4)
    assert not torch.allclose(updated(confident_0, 0.5), updated(confident_1, 0.5))   # KD term is used
    torch.testing.assert_close(updated(confident_0, 0.0), updated(confident_1, 0.0))  # alpha 0: labels only


def test_no_token_ids_or_labels_cross_the_link(tmp_path, monkeypatch):
    sent = []
    original = Simulation.send

    def spy(self, src, dst, payload, kind, **kw):
        wire = payload.to_message() if hasattr(payload, "to_message") else payload  # an Activation: its message
        sent.append((kind, wire))
        return original(self, src, dst, payload, kind, **kw)

    monkeypatch.setattr(Simulation, "send", spy)
    _run(tmp_path)
    kinds = {k for k, _ in sent}
    assert {"activation", "soft_targets", "gradient", "model_down", "model_up"} <= kinds
    for kind, payload in sent:
        items = payload.items() if isinstance(payload, dict) else enumerate(payload)
        for key, tensor in items:
            if key == "lengths":      # per-row sequence lengths (int32), as in every split scheme
                assert tensor.dtype == torch.int32 and tensor.dim() == 1
            else:
                assert tensor.is_floating_point(), (kind, key, tensor.dtype)


def test_student_bytes_and_flops_grow_with_its_size(tmp_path):
    small, large = _run(tmp_path / "s", hidden=32), _run(tmp_path / "l", hidden=64, layers=2)

    def measure(r):
        ev = r.events
        return ev[ev.kind == "model_up"].bytes.sum(), ev[ev.kind == "train"].flops.sum()

    (bytes_s, flops_s), (bytes_l, flops_l) = measure(small), measure(large)
    assert bytes_l > 1.8 * bytes_s and flops_l > 2 * flops_s
    ev_s, ev_l = small.events, large.events
    # the teacher's share (activations up, soft targets down) does not depend on the student
    assert ev_s[ev_s.kind == "activation"].bytes.sum() == ev_l[ev_l.kind == "activation"].bytes.sum()
    assert "teacher_loss" in small.rounds.columns and small.rounds.accuracy.iloc[-1] == small.summary["final_accuracy"]
