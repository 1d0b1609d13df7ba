"""Sequential FL and its client order policies, CyclicFL's two phases, and DFL's KD loss, on the
tiny model (seconds)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cosim
from cosim.learn.ordering import ClientOrder, herding_order
from cosim.run import build
from cosim.scenario import load
from tests.conftest import tiny_scenario


class _Dev:
    def __init__(self, name):
        self.name = name


def _orders(policy, seed, rounds=4, names=("a", "b", "c", "d", "e")):
    devs = [_Dev(n) for n in names]
    order = ClientOrder(policy, np.random.default_rng(seed))
    return [[d.name for d in order.order(devs, devs)] for _ in range(rounds)]


def test_fixed_keeps_one_order_random_reshuffle_does_not_and_both_follow_the_seed():
    fixed = _orders("fixed", 3)
    assert all(o == fixed[0] for o in fixed) and sorted(fixed[0]) == list("abcde")
    shuffled = _orders("random_reshuffle", 3)
    assert len({tuple(o) for o in shuffled}) > 1
    assert _orders("fixed", 3) == fixed and _orders("random_reshuffle", 3) == shuffled
    assert _orders("random_reshuffle", 4) != shuffled


def test_fixed_orders_a_subset_by_the_same_ranking():
    devs = [_Dev(n) for n in "abcdef"]
    order = ClientOrder("fixed", np.random.default_rng(0))
    full = [d.name for d in order.order(devs, devs)]
    sub = [d.name for d in order.order([devs[1], devs[3], devs[4]], devs)]
    assert sub == [n for n in full if n in ("b", "d", "e")]


def test_grab_returns_a_permutation_that_balances_the_directions():
    a = torch.tensor([1.0, 0.0])
    # two clients push one way, two the other: herding alternates them
    order = herding_order([a, a, -a, -a])
    assert sorted(order) == [0, 1, 2, 3]
    signs = [1 if i < 2 else -1 for i in order]
    assert all(signs[i] != signs[i + 1] for i in range(3))
    devs = [_Dev(n) for n in "wxyz"]
    grab = ClientOrder("grab", np.random.default_rng(0))
    first = grab.order(devs, devs)
    assert sorted(d.name for d in first) == list("wxyz")
    for d, v in zip(devs, [a, a, -a, -a]):
        grab.observe(d.name, v)
    second = [d.name for d in grab.order(devs[:3] + [_Dev("new")], devs)]
    assert sorted(second) == ["new", "w", "x", "y"] and second[-1] == "new"


def _run(tmp_path, scheme, **knobs):
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": scheme, "rounds": 3, "local_steps": 1, "batch_size": 8, "lr": 0.005, **knobs}
    return cosim.run(raw)


@pytest.mark.parametrize("policy", ["fixed", "random_reshuffle"])
def test_sequential_fl_order_policies_in_a_run(tmp_path, policy):
    res = _run(tmp_path / "a", "sequential_fl", order=policy)
    again = _run(tmp_path / "b", "sequential_fl", order=policy)
    r = res.rounds[res.rounds["round"] > 0]
    orders = r["order"].tolist()
    assert all(sorted(o.split()) == ["dev0", "dev1", "dev2", "dev3"] for o in orders)
    if policy == "fixed":
        assert len(set(orders)) == 1
    else:
        assert len(set(orders)) > 1
    assert orders == again.rounds[again.rounds["round"] > 0]["order"].tolist()
    assert r["accuracy"].tolist() == again.rounds[again.rounds["round"] > 0]["accuracy"].tolist()
    # handoffs are real transfers via the server: one down and one up per client per round
    ev = res.events
    assert (ev["kind"] == "model_down").sum() == 12 and (ev["kind"] == "model_up").sum() == 12


def test_sequential_fl_hands_the_model_on_one_client_after_another(tmp_path):
    res = _run(tmp_path, "sequential_fl", order="grab")
    ev = res.events
    ev = ev[(ev["round"] == 2) & ev["kind"].isin(["train"])].sort_values("t_start")
    # one client trains at a time: no two training steps overlap in simulated time
    assert (ev["t_start"].to_numpy()[1:] >= ev["t_end"].to_numpy()[:-1] - 1e-12).all()


def test_split_accepts_the_order_policy(tmp_path):
    res = _run(tmp_path, "split", order="fixed", cut_layer=1)
    assert len(res.rounds) == 4


def test_cyclicfl_runs_a_cyclic_phase_then_fedavg(tmp_path):
    res = _run(tmp_path, "cyclicfl", cyclic_rounds=2)
    r = res.rounds[res.rounds["round"] > 0]
    assert r["phase"].tolist() == ["cyclic", "cyclic", "fedavg"]
    with pytest.raises(cosim.ScenarioError):
        load({**tiny_scenario(tmp_path), "scheme": {"name": "cyclicfl", "rounds": 2, "cyclic_rounds": 3}})


def test_dfl_uses_its_soft_targets_from_the_second_round(tmp_path):
    res = _run(tmp_path, "dfl", alpha_max=0.5)
    r = res.rounds[res.rounds["round"] > 0]
    assert r["kd_alpha"].iloc[0] == 0.0 and r["kd_alpha"].iloc[1] > 0.0
    ev = res.events
    assert (ev["kind"] == "infer").sum() > 0   # the soft-target pass is simulated compute


def test_the_kd_loss_changes_the_gradient(tmp_path):
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": "dfl", "optimizer": "sgd", "lr": 0.1, "batch_size": 8}
    sim = build(load(raw))
    learner = sim.learner
    batch, rows = learner.next_indexed_batch("dev0")
    teacher = torch.randn(len(rows), learner.train.num_classes) * 3
    yes, no = torch.ones(len(rows), dtype=torch.bool), torch.zeros(len(rows), dtype=torch.bool)

    def after(*args):
        local = learner.local(learner.initial_state())
        local.kd_train_step(batch, *args)
        return local.state()

    plain = learner.local(learner.initial_state())
    plain.train_step(batch)
    with_kd = after(teacher, yes, 2.0, 0.5)
    without = after(teacher, no, 2.0, 0.5)
    zero_alpha = after(teacher, yes, 2.0, 0.0)
    diff = max(float((with_kd[k] - without[k]).abs().max()) for k in with_kd)
    assert diff > 1e-6   # the soft targets moved the parameters differently
    for k, v in plain.state().items():   # no teacher, or weight 0: exactly the cross-entropy step
        assert torch.allclose(without[k], v, atol=1e-7) and torch.allclose(zero_alpha[k], v, atol=1e-7)
