"""Three-tier split LoRA across user, edge and cloud (after arXiv 2501.13318): the model and its
LoRA adapters are cut twice, at `cut_layers: [c1, c2]`. A user (device) holds the embedding and
blocks [0, c1), its edge server blocks [c1, c2), the cloud blocks [c2, depth), the final norm and
the head. Every minibatch goes user → edge (wireless) → cloud (wired backhaul) with the real
activations and comes back cloud → edge → user with the real gradients
(`protocol.chain_step`; the edge's part is `protocol.relay_step`).

Modelling choices (stated because time, memory and the model depend on them):

- Association. Each user belongs to its serving access point (`network.serving_ap`: the nearest
  edge server). Edge servers work in parallel; each serves ONE of its selected users at a time,
  in an order drawn from the stream "order/<edge>", each user for `local_steps` minibatches.
- User side. At the start of a round the cloud sends the global user-side adapters to every
  selected user (over backhaul and radio); each user trains its own copy and, at the end of the
  round, uploads it to the cloud (radio and backhaul).
- Edge side. At the start of a round the cloud sends the global edge-side adapters to every edge
  server; the edge trains that one copy on its users in turn (sequential split learning: the
  copy carries from one user to the next) and uploads it at the end of the round. The edge holds
  the weights of its blocks once and one adapter copy with its optimizer state.
- Cloud side. The cloud holds its blocks and ONE cloud-side adapter copy (with one optimizer
  that persists across rounds), shared by all users and trained on their minibatches in the
  order they arrive (its processor is a FIFO queue) — it is never copied per user, which is the
  memory advantage over a two-tier split that keeps a server-side copy per user (SplitFed v1).
- Aggregation. The cloud averages the uploaded user-side adapters weighted by each user's
  samples and the edge-side adapters weighted by the samples of the users each edge served
  (FedAvg, McMahan et al. 2017). A user whose transfer is dropped is left out of both weights.

Reproduces: after arXiv 2501.13318: the cloud holds its part once, below a two-tier server's copy per user —
scenarios/three_tier.yaml,
tests/test_three_tier.py::test_cloud_holds_its_part_once_below_a_two_tier_server_per_user
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from ..learn.aggregate import merge, weighted_mean
from ..learn.protocol import chain_step
from ..learn.training import tensor_bytes
from ..world.network import TransferDropped
from .base import LoraRequired, SchemeConfig, scheme
from .common import round_loop


class ThreeTierConfig(LoraRequired, SchemeConfig):
    name: str = "three_tier"
    compresses: ClassVar[bool] = True   # `compression` codes activations and gradients
    needs_cloud: ClassVar[bool] = True  # the cloud holds blocks [c2, depth) and aggregates
    cut_layers: list[int] = Field([1, 2], description="[c1, c2]: user holds blocks [0, c1), edge [c1, c2), "
                                                      "cloud [c2, depth) + head; 1 <= c1 < c2 <= depth")

    @field_validator("cut_layers")
    @classmethod
    def _two_increasing_cuts(cls, v: list[int]) -> list[int]:
        if len(v) != 2 or not 1 <= v[0] < v[1]:
            raise ValueError("needs two cuts [c1, c2] with 1 <= c1 < c2; allowed: e.g. [1, 2] "
                             "(c2 at most the model's depth)")
        return v

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, self.cut_layers[0]

    def problems(self, depth, source, device_profiles) -> list[str]:
        problems = super().problems(depth, source, device_profiles)
        if self.cut_layers[-1] > depth:   # 1 <= c1 < c2 is checked with the field
            problems.append(f"scheme.cut_layers: beyond the model's depth (given {self.cut_layers}); "
                            f"allowed: 1 <= c1 < c2 <= {depth} for {source!r} ({depth} blocks)")
        return problems


@scheme("three_tier", config=ThreeTierConfig,
        summary="Three-tier split LoRA: user, edge and cloud parts; edges serve their users in turn, cloud aggregates")
def run(sim, cfg: ThreeTierConfig):
    learner, cloud = sim.learner, sim.cloud[0]
    c1, c2 = cfg.cut_layers
    cloud_names = learner.trainable_names(c2)
    taken = set(cloud_names)  # with c2 == depth the part [c1, c2) would also list the final norm and head
    edge_names = [n for n in learner.trainable_names(c1, c2) if n not in taken]
    cloud.memory.resident("weights", learner.weight_bytes(c2))
    cloud.memory.resident("training_state", learner.training_state_bytes(cloud_names))
    edge_weights = learner.weight_bytes(c1, c2) - (learner.weight_bytes(c2) if c2 == learner.model.depth else 0)
    for edge in sim.edge:
        edge.memory.resident("weights", edge_weights)

    def initial():
        """(the user-side part, the edge-side part, the cloud's part with its optimizer)."""
        return (learner.initial_state(learner.trainable_names(0, c1)), learner.initial_state(edge_names),
                learner.local(learner.initial_state(cloud_names), start=c2))

    def one_round(rnd, state):
        user_state, edge_state, top = state
        selected = sim.select(cfg.participants)
        served = {edge.name: [d for d in selected if sim.network.serving_ap(d) is edge] for edge in sim.edge}
        gathered = yield from sim.gather(edge_round(sim, cfg, edge, served[edge.name], cloud, top, user_state,
                                                    edge_state)
                                         for edge in sim.edge if served[edge.name])
        users, edges, losses = [], [], []
        for u, e, l in gathered.results:
            users += u
            edges += [e] if e is not None else []
            losses += l
        if users:
            user_state = yield from cloud.compute(weighted_mean, [up.value for up, _ in users], [n for _, n in users],
                                                  kind="aggregate")
        if edges:
            edge_state = yield from cloud.compute(weighted_mean, [up.value for up, _ in edges], [n for _, n in edges],
                                                  kind="aggregate")
        for upload, _ in users + edges:
            upload.release()
        sim.close_round(rnd, merge(user_state, edge_state, top.state()), losses, clients=len(selected),
                        updates=len(users))
        return user_state, edge_state, top

    yield from round_loop(sim, initial, one_round)


def edge_round(sim, cfg: ThreeTierConfig, edge, users: list, cloud, top, user_state, edge_state):
    """One edge server's round: fetch the edge-side adapters, serve `users` one at a time, upload the
    trained edge-side adapters. Returns ([(`Received` user-side state at the cloud, samples)],
    (`Received` edge-side state at the cloud, samples) or None, losses); the cloud releases the
    buffers once it has averaged them."""
    learner = sim.learner
    c1, c2 = cfg.cut_layers
    uploads, losses, samples = [], [], 0
    with (yield from sim.send(cloud, edge, edge_state, kind="model_down")) as down:
        middle = learner.local(down.value, start=c1, end=c2)
        with edge.memory.hold("edge_part", tensor_bytes(middle.params.values())
                              + learner.training_state_bytes(list(down.value))):
            order = [users[i] for i in sim.rng(f"order/{edge.name}").permutation(len(users))]
            for dev in order:
                try:
                    upload, turn_losses = yield from user_turn(sim, cfg, dev, edge, cloud, middle, top, user_state)
                except TransferDropped:  # the edge part keeps what this user's completed steps taught it; traced
                    continue
                uploads.append((upload, learner.num_samples(dev.name)))
                losses += turn_losses
                samples += learner.num_samples(dev.name)
    if not samples:
        return uploads, None, losses
    trained = yield from sim.send(edge, cloud, middle.state(), kind="model_up")
    return uploads, (trained, samples), losses


def user_turn(sim, cfg: ThreeTierConfig, dev, edge, cloud, middle, top, user_state):
    """One user's turn at its edge: fetch the user-side adapters from the cloud, `local_steps`
    chained minibatches, upload the trained user-side adapters to the cloud. Returns (the
    `Received` user-side state at the cloud, losses)."""
    learner = sim.learner
    c1, c2 = cfg.cut_layers
    codec = cfg.codec(sim, f"compression/{dev.name}")
    with (yield from sim.send(cloud, dev, user_state, kind="model_down")) as down:
        bottom = learner.local(down.value, 0, c1)
        with dev.memory.hold("training_state", learner.training_state_bytes(list(down.value))):
            losses = []
            for _ in range(cfg.local_steps):
                batch = learner.next_batch(dev.name)
                losses.append((yield from chain_step(sim, [dev, edge, cloud], [bottom, middle, top], [c1, c2],
                                                     batch, codec=codec)))
    return (yield from sim.send(dev, cloud, bottom.state(), kind="model_up")), losses
