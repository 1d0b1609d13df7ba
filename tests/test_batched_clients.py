"""Clients that share the frozen backbone and train only LoRA adapters and the head can run their
steps as one batched step: each client's losses and parameters come out as if it had trained
alone (float32 rounding aside), and clients that cannot share a step are refused."""
from __future__ import annotations

import pytest
import torch

import cosim
from cosim.learn.batched import batched_train_step, check_batchable
from cosim.learn.training import Batch
from conftest import tiny_scenario

CLIENTS, STEPS, LR = 3, 3, 0.005

#: Losses: float32 (eps 1.2e-7) forward through 4 blocks whose matmuls now sum in another order
#: (one bmm over all clients instead of one mm per client); measured differences are ≤ 6e-8.
LOSS_TOL = {"rtol": 1e-5, "atol": 1e-6}
#: Parameters, per optimizer. SGD's update is linear in the gradient, so rounding stays at float32
#: level (measured ≤ 1e-8). AdamW divides each element's gradient by its running RMS + eps (1e-8):
#: an element whose gradient nearly cancels to ~eps has a large relative rounding error, and its
#: step lr·g/(|g| + eps) can change by a fraction of lr: here measured ≤ 3.5e-7; with MiniLM at
#: batch 16 × 64 (benchmarks/batched_clients.py) ~0.03 % of elements differ by more than 1e-6, the
#: worst by 0.3·lr. On this tiny case we allow 1 % of the farthest the steps can move an element
#: (≈ lr per step); a client training on another's rows, gradient or parameters is off by order lr
#: and fails.
PARAM_ATOL = {"sgd": 1e-6, "adamw": 1e-2 * LR * STEPS}


def _learner(tmp_path, optimizer="adamw", lora=True):
    scheme = {"name": "fedavg", "rounds": 1, "local_steps": STEPS, "batch_size": 8, "lr": LR,
              "optimizer": optimizer}
    scheme["lora"] = {"r": 4} if lora else None   # None: full fine-tuning
    return cosim.build(cosim.load(tiny_scenario(tmp_path, scheme=scheme))).learner


@pytest.fixture(scope="module", params=["adamw", "sgd"])
def learner(request, tmp_path_factory):
    return _learner(tmp_path_factory.mktemp("batched"), request.param)


def _train_both_ways(learner, batches_per_step):
    """The same clients from the same state on the same batches: one at a time, then batched."""
    state = learner.initial_state()
    alone = [learner.local(state) for _ in batches_per_step[0]]
    together = [learner.local(state) for _ in batches_per_step[0]]
    alone_losses, together_losses = [], []
    for batches in batches_per_step:
        alone_losses.append([m.train_step(b) for m, b in zip(alone, batches)])
        together_losses.append(batched_train_step(together, batches))
    return state, (alone, alone_losses), (together, together_losses)


def _client_batches(learner):
    clients = sorted(learner.clients)[:CLIENTS]
    return [[learner.next_batch(c) for c in clients] for _ in range(STEPS)]


def test_batched_clients_train_as_if_each_trained_alone(learner):
    atol = PARAM_ATOL[learner.optimizer]
    before = {n: p.detach().clone() for n, p in learner.model.named_parameters()}
    state, (alone, alone_losses), (together, together_losses) = _train_both_ways(learner, _client_batches(learner))
    torch.testing.assert_close(torch.tensor(together_losses), torch.tensor(alone_losses), **LOSS_TOL)
    moved = 0.0
    for a, t in zip(alone, together):
        for name in a.params:
            torch.testing.assert_close(t.params[name], a.params[name], rtol=0, atol=atol)
            moved = max(moved, (a.params[name] - state[name]).abs().max().item())
    assert moved > 10 * atol  # the clients really trained: the tolerance is far below their steps
    # The shared model is left as it was: no client's update or gradient lands on it.
    for name, p in learner.model.named_parameters():
        assert torch.equal(p, before[name]) and p.grad is None


@pytest.mark.parametrize("source, task", [("tiny-gpt2", "classification"), ("tiny-llama", "causal_lm")])
def test_decoders_and_next_token_losses_batch_too(source, task, tmp_path):
    raw = tiny_scenario(tmp_path, scheme={"name": "fedavg", "rounds": 1, "batch_size": 4, "lr": LR,
                                          "optimizer": "sgd", "lora": {"r": 4}})
    raw["model"] = {"source": source, "task": task, "max_length": 32}
    if task == "causal_lm":
        raw["data"] = {"dataset": "shakespeare", "test_samples": 16, "partition": {"kind": "iid"}}
    learner = cosim.build(cosim.load(raw)).learner
    _, (alone, alone_losses), (together, together_losses) = _train_both_ways(learner, _client_batches(learner))
    torch.testing.assert_close(torch.tensor(together_losses), torch.tensor(alone_losses), **LOSS_TOL)
    for a, t in zip(alone, together):
        for name in a.params:
            torch.testing.assert_close(t.params[name], a.params[name], rtol=0, atol=PARAM_ATOL["sgd"])


def test_clients_with_batches_of_different_sizes_run_in_groups_with_the_same_result(learner):
    steps = _client_batches(learner)
    short = lambda b: Batch(b.input_ids[:5], b.attention_mask[:5], b.labels[:5])
    steps = [[batches[0], short(batches[1]), batches[2]] for batches in steps]
    _, (alone, alone_losses), (together, together_losses) = _train_both_ways(learner, steps)
    torch.testing.assert_close(torch.tensor(together_losses), torch.tensor(alone_losses), **LOSS_TOL)
    for a, t in zip(alone, together):
        for name in a.params:
            torch.testing.assert_close(t.params[name], a.params[name], rtol=0, atol=PARAM_ATOL[learner.optimizer])


def test_clients_accumulating_micro_batches_add_up_their_gradients_as_alone(learner):
    steps = _client_batches(learner)
    state = learner.initial_state()
    alone = [learner.local(state) for _ in steps[0]]
    together = [learner.local(state) for _ in steps[0]]
    for m in alone + together:
        m.accumulate()
    for batches in steps:
        for m, b in zip(alone, batches):
            m.train_step(b)
        batched_train_step(together, batches)
    for m in alone + together:
        m.flush(1 / len(steps))
    for a, t in zip(alone, together):
        for name in a.params:
            torch.testing.assert_close(t.params[name], a.params[name], rtol=0, atol=PARAM_ATOL[learner.optimizer])
            assert not torch.equal(t.params[name], state[name]) or ".lora_A." in name  # one update happened


def test_clients_that_train_different_parameters_are_refused(learner):
    state = learner.initial_state()
    names = list(state)
    fewer = learner.local({n: state[n] for n in names[1:]})
    with pytest.raises(ValueError, match="other parameters"):
        batched_train_step([learner.local(state), fewer], _client_batches(learner)[0][:2])
    lora_a = next(n for n in names if ".lora_A." in n)
    wider = dict(state, **{lora_a: torch.zeros(state[lora_a].shape[0] + 1, state[lora_a].shape[1])})
    with pytest.raises(ValueError, match="shape"):
        check_batchable([learner.local(state), learner.local(wider)])


def test_full_fine_tuning_does_not_batch(tmp_path):
    learner = _learner(tmp_path, lora=False)
    with pytest.raises(ValueError, match="not the weight or bias of a linear map"):
        check_batchable([learner.local(learner.initial_state())])
