"""Vanilla (sequential) split learning (Gupta & Raskar 2018; Vepakomma et al. 2018): the model is
cut after block `cut_layer`. Devices take turns: the device in turn fetches the current bottom
part (relayed by the server), and for each minibatch runs the bottom forward, sends the cut-layer
activations (with labels and sequence lengths) up, the server runs the top forward/backward and
sends the activation gradient down, and the device finishes backward. It then hands the bottom
part back to the server for the next device. The device order per round is `order`
(cosim.learn.ordering; default random_reshuffle; grab herds the devices' bottom-part updates)."""
from __future__ import annotations

from pydantic import Field

from ..learn.ordering import ClientOrder, OrderPolicy, flat_direction
from ..learn.protocol import split_step
from ..world.network import TransferDropped
from .base import SchemeConfig, scheme


class SplitConfig(SchemeConfig):
    name: str = "split"
    cut_layer: int = Field(2, ge=1, description="device holds embedding + blocks [0, cut_layer)")
    order: OrderPolicy = Field("random_reshuffle", description="device order per round (cosim.learn.ordering): "
                               "random_reshuffle | fixed | grab")

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, self.cut_layer


@scheme("split", config=SplitConfig,
        summary="Split learning: devices in turn train the bottom part with the server's top part")
def run(sim, cfg: SplitConfig):
    learner, server, cut = sim.learner, sim.edge[0], cfg.cut_layer
    bottom_names = learner.trainable_names(0, cut)
    top = learner.local(learner.initial_state(learner.trainable_names(cut)), start=cut)
    bottom_state = learner.initial_state(bottom_names)   # the server relays the latest bottom part
    server.memory.hold("weights", learner.weight_bytes(cut))
    server.memory.hold("training_state", learner.training_state_bytes(list(top.params)))
    policy = ClientOrder(cfg.order, sim.rng("order"))
    for rnd in sim.rounds():
        losses = []
        order = policy.order(sim.select(cfg.participants), sim.devices)
        for dev in order:
            try:
                before = bottom_state
                bottom_state, turn_losses = yield from device_turn(sim, cfg, dev, server, top, bottom_state, rnd)
                policy.observe(dev.name, flat_direction(before, bottom_state))
                losses += turn_losses
            except TransferDropped:
                pass  # the server keeps the bottom part it last received; the drop is in the trace
        sim.close_round(rnd, {**bottom_state, **top.state()}, losses, clients=len(order))


def device_turn(sim, cfg: SplitConfig, dev, server, top, bottom_state, rnd: int):
    """One device's turn: `local_steps` split steps; returns the trained bottom part and losses."""
    learner, cut = sim.learner, cfg.cut_layer
    state = yield from sim.send(server, dev, bottom_state, kind="model_down", rnd=rnd)
    bottom = learner.local(state, 0, cut)
    dev.memory.hold("training_state", learner.training_state_bytes(list(state)))
    losses = []
    for _ in range(cfg.local_steps):
        batch = learner.next_batch(dev.name)
        losses.append((yield from split_step(sim, dev, server, bottom, top, batch, cut, rnd)))
    dev.memory.release("training_state")
    new_state = bottom.state()
    yield from sim.send(dev, server, new_state, kind="model_up", rnd=rnd)
    return new_state, losses
