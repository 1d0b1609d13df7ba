"""three_tier: split LoRA across user, edge and cloud. The chained split computes exactly the
whole model's update; the cloud holds its part once (below a two-tier server that keeps a
server-side copy per user); every activation, gradient and adapter transfer is its real payload;
edge→cloud hops ride the wired backhaul with its latency; bad cuts are refused before the run."""
from __future__ import annotations

import pytest
import torch

import cosim
from cosim.cli import EXIT_BAD_INPUT, main
from cosim.learn.compress import MESSAGE_HEADER_BYTES, TENSOR_HEADER_BYTES
from cosim.learn.training import mask_from_lengths, lengths_of
from cosim.schemes import SCHEMES
from conftest import ROOT, tiny_scenario

BATCH, TOKENS, HIDDEN = 8, 32, 64  # tiny.yaml: batch_size 8, max_length 32; tiny-bert hidden 64
CUTS = [1, 3]                      # tiny-bert has 4 blocks: user [0,1), edge [1,3), cloud [3,4) + head
RATE_BPS, LATENCY_S = 2e9, 0.02


def _three_tier(tmp_path, per_edge: int = 3, **scheme) -> dict:
    """Two edge servers with `per_edge` users each (placed beside their edge), one cloud."""
    raw = tiny_scenario(tmp_path)
    raw["scheme"] = {"name": "three_tier", "cut_layers": CUTS, "rounds": 2, "local_steps": 2, "batch_size": 8,
                     "lr": 0.005, **scheme}
    raw["devices"] = [
        {"count": per_edge, "profile": "jetson-nano", "name": "west",
         "mobility": {"kind": "static", "position_m": [-160, 30, 1.5]}},
        {"count": per_edge, "profile": "jetson-nano", "name": "east",
         "mobility": {"kind": "static", "position_m": [160, -30, 1.5]}}]
    raw["edge"] = [{"profile": "edge-t4", "name": "edge-west", "position_m": [-150, 0, 10]},
                   {"profile": "edge-t4", "name": "edge-east", "position_m": [150, 0, 10]}]
    raw["cloud"] = [{"profile": "cloud-h100", "name": "cloud", "position_m": [0, 5000, 30]}]
    raw["network"]["backhaul"] = {"rate_bps": RATE_BPS, "latency_s": LATENCY_S}
    return raw


def _run(raw, **overrides):
    return cosim.run(raw, overrides=overrides, progress=False, plots=False)


def _peak(result, node: str) -> int:
    return int(result.nodes.set_index("node").loc[node, "peak_memory_bytes"])


def test_registered_and_scenario_validates(capsys):
    assert "three_tier" in SCHEMES
    assert main(["validate", str(ROOT / "scenarios" / "three_tier.yaml")]) == 0
    assert SCHEMES["three_tier"].config(cut_layers=[2, 5]).device_blocks(6) == (0, 2)


def test_chained_parts_take_exactly_the_whole_models_step(tmp_path):
    """user → edge → cloud forward and cloud → edge → user backward, each part updating itself
    with SGD, give the same parameters as one SGD step of the whole model."""
    sim = cosim.build(cosim.load(_three_tier(tmp_path, optimizer="sgd", lr=0.1)))
    learner = sim.learner
    c1, c2 = CUTS
    batch = learner.next_batch(sim.devices[0].name)
    whole = learner.local(learner.initial_state())
    whole.train_step(batch)
    bottom = learner.local(learner.initial_state(learner.trainable_names(0, c1)), 0, c1)
    middle = learner.local(learner.initial_state(learner.trainable_names(c1, c2)), c1, c2)
    top = learner.local(learner.initial_state(learner.trainable_names(c2)), c2)
    mask = mask_from_lengths(lengths_of(batch.attention_mask), batch.input_ids.shape[1])
    h1 = bottom.bottom_forward(batch, c1)
    h1_in, h2 = middle.middle_forward(h1, mask, c1, c2)
    # the middle part alone is the model's blocks [c1, c2)
    torch.testing.assert_close(h2, learner.model(hidden=h1, attention_mask=mask, start=c1, end=c2))
    _, g2 = top.top_step(h2, mask, batch.labels, c2)
    g1 = middle.middle_backward(h1_in, h2, g2)
    bottom.bottom_backward(h1, g1)
    chained = {**bottom.state(), **middle.state(), **top.state()}
    after = whole.state()
    assert chained.keys() == after.keys()
    for name in after:
        torch.testing.assert_close(chained[name], after[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(after[n], v) for n, v in learner.initial_state().items())  # it did train


def test_cloud_holds_its_part_once_below_a_two_tier_server_per_user(tmp_path):
    """The cloud's peak memory is below that of SplitLoRA (SplitFed v1 with LoRA) at cut c1 on the same
    scenario, whose server holds the whole server side and a server-side copy for every user at
    once; and the cloud's peak, less the adapter uploads it buffers for aggregation, does not grow
    with the number of users."""
    three = _run(_three_tier(tmp_path))
    cloud = _peak(three, "cloud")
    for cut in CUTS:  # at c1 (the comparison) and at c2 (the same blocks as the cloud: copies alone)
        two = _run(_three_tier(tmp_path), **{"scheme": {"name": "splitlora", "cut_layer": cut, "rounds": 2,
                                                        "local_steps": 2, "batch_size": 8, "lr": 0.005}})
        server = _peak(two, "edge-west")  # splitlora's server is the first edge server
        assert cloud < server
        print(f"cloud peak {cloud} B (three_tier {CUTS}) vs two-tier server peak {server} B (splitlora, cut {cut})")

    def without_uploads(result) -> int:
        ev = result.events
        buffered = ev[(ev.kind == "model_up") & (ev.peer == "cloud")].groupby("round").bytes.sum().max()
        return _peak(result, "cloud") - int(buffered)

    small, large = (_run(_three_tier(tmp_path, per_edge=n)) for n in (1, 4))
    assert without_uploads(small) == without_uploads(large)
    assert _peak(large, "cloud") < _peak(_run(_three_tier(tmp_path, per_edge=4), **{
        "scheme": {"name": "splitlora", "cut_layer": CUTS[0], "rounds": 2, "local_steps": 2, "batch_size": 8,
                   "lr": 0.005}}), "edge-west")


def test_every_hop_carries_its_real_payload(tmp_path):
    raw = _three_tier(tmp_path)
    r = _run(raw)
    ev = r.events
    activation = BATCH * TOKENS * HIDDEN * 4  # float32
    up = MESSAGE_HEADER_BYTES + 3 * TENSOR_HEADER_BYTES + activation + BATCH * 4 + BATCH * 8  # + lengths, labels
    down = MESSAGE_HEADER_BYTES + TENSOR_HEADER_BYTES + activation
    assert set(ev[ev.kind == "activation"].bytes) == {up}
    assert set(ev[ev.kind == "gradient"].bytes) == {down}
    users, steps, rounds = 6, 2, 2
    for hop in [("west", "edge-west"), ("east", "edge-east"), ("edge-", "cloud")]:
        sent = ev[(ev.kind == "activation") & ev.node.str.startswith(hop[0]) & (ev.peer == hop[1])]
        back = ev[(ev.kind == "gradient") & (ev.node == hop[1]) & ev.peer.str.startswith(hop[0])]
        expected = users * steps * rounds if hop[1] == "cloud" else users // 2 * steps * rounds
        assert len(sent) == len(back) == expected
    sim = cosim.build(cosim.load(raw))
    learner = sim.learner

    def part_bytes(names):
        return MESSAGE_HEADER_BYTES + sum(TENSOR_HEADER_BYTES + learner._params[n].numel() * 4 for n in names)

    user_part = part_bytes(learner.trainable_names(0, CUTS[0]))
    edge_part = part_bytes(learner.trainable_names(*CUTS))
    adapters = ev[ev.kind.isin(["model_up", "model_down"])]
    assert set(adapters.bytes) == {user_part, edge_part}
    # each round: every user's part down (cloud → edge → user) and up again, each edge's part down and up
    user_up = adapters[(adapters.kind == "model_up") & (adapters.peer == "cloud") & (adapters.bytes == user_part)]
    edge_up = adapters[(adapters.kind == "model_up") & (adapters.peer == "cloud") & (adapters.bytes == edge_part)]
    assert len(user_up) == users * rounds and len(edge_up) == 2 * rounds


def test_edge_to_cloud_hops_ride_the_backhaul_with_its_latency(tmp_path):
    ev = _run(_three_tier(tmp_path)).events
    wired = ev[ev.node.str.startswith("edge-") & (ev.peer == "cloud")]
    assert set(wired.kind) >= {"activation", "model_up"}
    for row in wired.itertuples():  # one flow at a time per directed edge–cloud link
        assert row.t_end - row.t_start == pytest.approx(LATENCY_S + row.bytes * 8 / RATE_BPS, rel=1e-9)
    down = ev[(ev.node == "cloud") & ev.peer.str.startswith("edge-")]
    assert set(down.kind) >= {"gradient", "model_down"}
    assert ((down.t_end - down.t_start) >= LATENCY_S).all()
    radio = ev[(ev.kind == "activation") & ~ev.node.str.startswith("edge-")]
    assert set(radio.peer) == {"edge-west", "edge-east"}  # users talk only to their edge, over the air


def test_the_two_edges_work_in_parallel_and_each_serves_one_user_at_a_time(tmp_path):
    ev = _run(_three_tier(tmp_path)).events
    fwd = ev[(ev.kind == "fwd") & ev.node.str.match(r"(west|east)\d")]
    for edge, users in (("edge-west", "west"), ("edge-east", "east")):
        mine = fwd[fwd.node.str.startswith(users)].sort_values("t_start")
        # the user in turn finishes all its steps before the next user's first forward
        spans = mine.groupby(["round", "node"]).agg(first=("t_start", "min"), last=("t_end", "max"))
        for _, per_round in spans.groupby(level=0):
            per_round = per_round.sort_values("first")
            assert (per_round["first"].iloc[1:].values >= per_round["last"].iloc[:-1].values).all()
    west = fwd[fwd.node.str.startswith("west")]
    east = fwd[fwd.node.str.startswith("east")]
    assert west.t_start.min() < east.t_end.max() and east.t_start.min() < west.t_end.max()  # overlapping


@pytest.mark.parametrize("cuts", ["[0, 2]", "[3, 2]", "[2, 5]", "[2]"])
def test_bad_cut_layers_exit_2_naming_the_field(tmp_path, capsys, cuts):
    path = tmp_path / "s.yaml"
    path.write_text((ROOT / "scenarios" / "three_tier.yaml").read_text()
                    .replace("source: minilm", "source: tiny-bert"))  # 4 blocks
    for command in ("validate", "run"):
        code = main([command, str(path), "--set", f"scheme.cut_layers={cuts}"])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT
        assert "scheme.cut_layers" in err and "allowed" in err
