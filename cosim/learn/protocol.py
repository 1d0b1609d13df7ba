"""The message exchanges that split training repeats, written once for every scheme.

Each function is a SimPy sub-process (`yield from`): it runs the real tensors through the nodes'
`compute` and the simulation's `send`, so each piece of work and each transfer lands in the trace.
"""
from __future__ import annotations

from .training import Batch, LocalModel, lengths_of, mask_from_lengths


def split_step(sim, dev, server, bottom: LocalModel, top: LocalModel, batch: Batch, cut: int, rnd: int):
    """One split-learning minibatch (Gupta & Raskar 2018): the device runs blocks [0, cut) and sends
    the cut-layer activation with labels and sequence lengths; the server runs the rest, updates
    its part and returns the activation's gradient; the device backpropagates it and updates.
    Returns the training loss."""
    hidden = yield from dev.compute(bottom.bottom_forward, batch, cut, kind="fwd", key=("fwd", cut, batch.signature),
                                    rnd=rnd, hold="activations")
    message = {"hidden": hidden, "lengths": lengths_of(batch.attention_mask), "labels": batch.labels}
    received = yield from sim.send(dev, server, message, kind="activation", rnd=rnd)
    mask = mask_from_lengths(received["lengths"], received["hidden"].shape[1])
    loss, grad = yield from server.compute(top.top_step, received["hidden"], mask, received["labels"], cut,
                                           kind="train", key=("top", cut, batch.signature), rnd=rnd)
    server.memory.release(f"recv:activation:{dev.name}")
    (grad,) = yield from sim.send(server, dev, [grad], kind="gradient", rnd=rnd)
    yield from dev.compute(bottom.bottom_backward, hidden, grad, kind="bwd", key=("bwd", cut, batch.signature), rnd=rnd)
    dev.memory.release("activations")
    dev.memory.release(f"recv:gradient:{server.name}")
    return loss
