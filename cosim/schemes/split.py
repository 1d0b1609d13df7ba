"""Vanilla (sequential) split learning (Gupta & Raskar 2018; Vepakomma et al. 2018): the model is
cut after block `cut_layer`. Devices take turns: the device in turn fetches the current bottom
part (relayed by the server), and for each minibatch runs the bottom forward, sends the cut-layer
activations (with labels and sequence lengths) up, the server runs the top forward/backward and
sends the activation gradient down, and the device finishes backward. It then hands the bottom
part back to the server for the next device. The device order per round is `order`
(cosim.learn.ordering; default random_reshuffle; grab herds the devices' bottom-part updates).

Reproduces: Gupta & Raskar 2018: split learning, one class per device, ends above FedAvg —
scenarios/compare_fl.yaml,
tests/test_fl_claims.py::test_sequential_split_learning_ends_above_fedavg_with_one_class_per_client
"""
from __future__ import annotations

from pydantic import Field

from ..learn.aggregate import merge
from ..learn.ordering import ClientOrder, flat_direction
from ..world.network import TransferDropped
from .base import SplitConfig, scheme
from .common import device_turn, round_loop


@scheme("split", config=SplitConfig,
        summary="Split learning: devices in turn train the bottom part with the server's top part")
def run(sim, cfg: SplitConfig):
    learner, server, cut = sim.learner, sim.edge[0], cfg.cut_layer
    server.memory.resident("weights", learner.weight_bytes(cut))
    server.memory.resident("training_state", learner.training_state_bytes(learner.trainable_names(cut)))

    def initial():
        """(the server's top part with its optimizer, the bottom part the server relays, the order policy)."""
        top = learner.local(learner.initial_state(learner.trainable_names(cut)), start=cut)
        return top, learner.initial_state(learner.trainable_names(0, cut)), ClientOrder(cfg.order, sim.rng("order"))

    def one_round(rnd, state):
        top, bottom_state, policy = state
        losses = []
        order = policy.order(sim.select(cfg.participants), sim.devices)
        for dev in order:
            try:
                upload, turn_losses = yield from device_turn(sim, cfg, dev, server, top, bottom_state)
            except TransferDropped:
                continue  # the server keeps the bottom part it last received; the drop is in the trace
            with upload:
                policy.observe(dev.name, flat_direction(bottom_state, upload.value))
                bottom_state = upload.value
            losses += turn_losses
        sim.close_round(rnd, merge(bottom_state, top.state()), losses, clients=len(order))
        return top, bottom_state, policy

    yield from round_loop(sim, initial, one_round)
