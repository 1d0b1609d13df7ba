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


def chain_step(sim, nodes: list, parts: list[LocalModel], cuts: list[int], batch: Batch, rnd: int):
    """One minibatch through a chain of split parts (user → edge → cloud, or longer): nodes[0]
    runs the embedding and blocks [0, cuts[0]), nodes[i] blocks [cuts[i-1], cuts[i]), and the last
    node the remaining blocks, the head and the loss. The activation goes up hop by hop (with the
    sequence lengths and labels), the gradient comes back down hop by hop; every part updates
    itself as its backward finishes. `split_step` is the chain of two. Returns the training loss."""
    dev, bottom, cut = nodes[0], parts[0], cuts[0]
    hidden = yield from dev.compute(bottom.bottom_forward, batch, cut, kind="fwd", key=("fwd", cut, batch.signature),
                                    rnd=rnd, hold="activations")
    message = {"hidden": hidden, "lengths": lengths_of(batch.attention_mask), "labels": batch.labels}
    loss, grad = yield from _up_the_chain(sim, nodes, parts, cuts, 0, message, rnd)
    yield from dev.compute(bottom.bottom_backward, hidden, grad, kind="bwd", key=("bwd", cut, batch.signature), rnd=rnd)
    dev.memory.release("activations")
    dev.memory.release(f"recv:gradient:{nodes[1].name}")
    return loss


def _up_the_chain(sim, nodes, parts, cuts, i: int, message: dict, rnd: int):
    """Send `message` from nodes[i] to nodes[i+1], run everything above, and bring the gradient of
    the sent activation back to nodes[i] (held there as `recv:gradient:<nodes[i+1]>` until the
    caller's backward releases it). Returns (loss, that gradient)."""
    src, dst = nodes[i], nodes[i + 1]
    received = yield from sim.send(src, dst, message, kind="activation", rnd=rnd)
    start = cuts[i]
    if i + 1 == len(nodes) - 1:  # the top: loss, backward, update
        mask = mask_from_lengths(received["lengths"], received["hidden"].shape[1])
        signature = tuple(received["hidden"].shape)
        loss, grad = yield from dst.compute(parts[i + 1].top_step, received["hidden"], mask, received["labels"], start,
                                            kind="train", key=("top", start, signature), rnd=rnd)
    else:
        loss, grad = yield from relay_step(
            sim, dst, parts[i + 1], received, start, cuts[i + 1],
            lambda out: _up_the_chain(sim, nodes, parts, cuts, i + 1, out, rnd), nodes[i + 2], rnd)
    dst.memory.release(f"recv:activation:{src.name}")
    (grad,) = yield from sim.send(dst, src, [grad], kind="gradient", rnd=rnd)
    return loss, grad


def relay_step(sim, node, part: LocalModel, received: dict, start: int, end: int, upward, above, rnd: int):
    """The middle of a chain (e.g. an edge server between a user and the cloud), for one minibatch:
    forward the received activation through blocks [start, end) keeping the graph, pass the output
    on with `upward(message)` — a sub-process that sends it to `above`, runs everything there and
    returns (loss, the gradient of that output, received back here) — then backpropagate that
    gradient, update this part, and return (loss, the gradient of the received activation) for the
    caller to send down."""
    mask = mask_from_lengths(received["lengths"], received["hidden"].shape[1])
    signature = tuple(received["hidden"].shape)
    hidden_in, hidden_out = yield from node.compute(part.middle_forward, received["hidden"], mask, start, end,
                                                    kind="fwd", key=("middle_fwd", start, end, signature), rnd=rnd,
                                                    hold="activations:relay")
    loss, grad = yield from upward({"hidden": hidden_out, "lengths": received["lengths"], "labels": received["labels"]})
    grad_in = yield from node.compute(part.middle_backward, hidden_in, hidden_out, grad, kind="bwd",
                                      key=("middle_bwd", start, end, signature), rnd=rnd)
    node.memory.release("activations:relay")
    node.memory.release(f"recv:gradient:{above.name}")
    return loss, grad_in
