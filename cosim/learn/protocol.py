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


def chain_step(sim, nodes: list, parts: list[LocalModel], cuts: list[int], batch: Batch, rnd: int, *,
               stop: int = 0, tag: str = ""):
    """One minibatch through a chain of split parts (user → edge → cloud, or longer): nodes[0]
    runs the embedding and blocks [0, cuts[0]), nodes[i] blocks [cuts[i-1], cuts[i]), and the last
    node the remaining blocks, the head and the loss. The activation goes up hop by hop (with the
    sequence lengths and labels), the gradient comes back down hop by hop; every part updates
    itself as its backward finishes. `split_step` is the chain of two. Returns the training loss.

    `stop` (RingAda's top-down unfreezing; 0: everything below trains) is the lowest block whose
    parameters train, the parts' parameters below it having `requires_grad` off: backward ends at
    that block, so a node whose blocks all lie below it runs its forward only and is sent no
    gradient, and the node holding it backpropagates only down to it. `tag` suffixes the names of
    the buffers this minibatch holds, so several micro-batches can be in flight at once."""
    dev, bottom, cut = nodes[0], parts[0], cuts[0]
    held = "activations" + tag
    below = (("stop", min(stop, cut)),) if stop else ()  # the saved graph depends on where backward stops
    hidden = yield from dev.compute(bottom.bottom_forward, batch, cut, kind="fwd",
                                    key=("fwd", cut, batch.signature) + below, rnd=rnd, hold=held)
    message = {"hidden": hidden, "lengths": lengths_of(batch.attention_mask), "labels": batch.labels}
    loss, grad = yield from _up_the_chain(sim, nodes, parts, cuts, 0, message, rnd, stop, tag)
    if grad is not None:
        yield from dev.compute(bottom.bottom_backward, hidden, grad, kind="bwd",
                               key=("bwd", cut, batch.signature) + below, rnd=rnd)
        dev.memory.release(f"recv:gradient:{nodes[1].name}")
    dev.memory.release(held)
    return loss


def _up_the_chain(sim, nodes, parts, cuts, i: int, message: dict, rnd: int, stop: int = 0, tag: str = ""):
    """Send `message` from nodes[i] to nodes[i+1], run everything above, and bring the gradient of
    the sent activation back to nodes[i] (held there as `recv:gradient:<nodes[i+1]>` until the
    caller's backward releases it). Returns (loss, that gradient), or (loss, None) with nothing
    sent back when nodes[i]'s blocks all lie below `stop`."""
    src, dst = nodes[i], nodes[i + 1]
    received = yield from sim.send(src, dst, message, kind="activation", rnd=rnd)
    start = cuts[i]
    wanted = start > stop  # does the sender hold a block that trains?
    if i + 1 == len(nodes) - 1:  # the top: loss, backward, update
        mask = mask_from_lengths(received["lengths"], received["hidden"].shape[1])
        signature = tuple(received["hidden"].shape)
        if wanted:
            loss, grad = yield from dst.compute(parts[i + 1].top_step, received["hidden"], mask, received["labels"],
                                                start, kind="train", key=("top", start, signature), rnd=rnd)
        else:  # backward ends inside the top part: no gradient at its input
            grad = None
            loss = yield from dst.compute(parts[i + 1].top_update, received["hidden"], mask, received["labels"], start,
                                          kind="train", key=("top_update", start, stop, signature), rnd=rnd)
    else:
        loss, grad = yield from relay_step(
            sim, dst, parts[i + 1], received, start, cuts[i + 1],
            lambda out: _up_the_chain(sim, nodes, parts, cuts, i + 1, out, rnd, stop, tag), nodes[i + 2], rnd,
            stop=stop, tag=tag)
    dst.memory.release(f"recv:activation:{src.name}")
    if not wanted:
        return loss, None
    (grad,) = yield from sim.send(dst, src, [grad], kind="gradient", rnd=rnd)
    return loss, grad


def relay_step(sim, node, part: LocalModel, received: dict, start: int, end: int, upward, above, rnd: int, *,
               stop: int = 0, tag: str = ""):
    """The middle of a chain (e.g. an edge server between a user and the cloud), for one minibatch:
    forward the received activation through blocks [start, end) keeping the graph, pass the output
    on with `upward(message)` — a sub-process that sends it to `above`, runs everything there and
    returns (loss, the gradient of that output, received back here) — then backpropagate that
    gradient, update this part, and return (loss, the gradient of the received activation) for the
    caller to send down.

    With `stop` (see `chain_step`) above `start`, backward ends inside this part (no gradient of
    the received activation: returns (loss, None)) or, when `end <= stop`, the part runs forward
    only and receives no gradient from `above`."""
    mask = mask_from_lengths(received["lengths"], received["hidden"].shape[1])
    signature = tuple(received["hidden"].shape)
    held = "activations:relay" + tag
    if start >= stop:
        hidden_in, hidden_out = yield from node.compute(part.middle_forward, received["hidden"], mask, start, end,
                                                        kind="fwd", key=("middle_fwd", start, end, signature), rnd=rnd,
                                                        hold=held)
    else:
        hidden_in = None
        hidden_out = yield from node.compute(part.upper_forward, received["hidden"], mask, start, end, kind="fwd",
                                             key=("upper_fwd", start, end, min(stop, end), signature), rnd=rnd,
                                             hold=held)
    loss, grad = yield from upward({"hidden": hidden_out, "lengths": received["lengths"], "labels": received["labels"]})
    grad_in = None
    if grad is not None:
        if hidden_in is not None:
            grad_in = yield from node.compute(part.middle_backward, hidden_in, hidden_out, grad, kind="bwd",
                                              key=("middle_bwd", start, end, signature), rnd=rnd)
        else:
            yield from node.compute(part.bottom_backward, hidden_out, grad, kind="bwd",
                                    key=("upper_bwd", start, end, stop, signature), rnd=rnd)
    node.memory.release(held)
    if grad is not None:
        node.memory.release(f"recv:gradient:{above.name}")
    return loss, grad_in


# --- a one-way pipelined upload: devices produce, one server consumes (MobiLLM) --------------------

#: What a producer puts in the server queue when it has nothing more to send.
FINISHED = object()


def pipelined_producer(sim, dev, server, steps: int, produce, queue, rnd: int, *, pipeline: bool = True,
                       codec=None, kind: str = "activation"):
    """Producer of a one-way pipeline (the SplitFrozen/MobiLLM device loop): for k in range(steps)
    run the sub-process `produce(k)` (the device's compute; it returns the message dict), hand the
    message to its own sender process (uploads leave one after another on the device's radio and
    land in `queue`, a `simpy.Store`, as (dev, k, received, done)), and — with `pipeline` — go on
    to k+1 while k is on the air and trained, waiting only for k-1 to be done (at most two
    micro-batches in flight per device). Without it the device waits for k. The consumer answers
    `done` with True; a dropped upload answers False and ends this device's round."""
    done, sender = [], None
    try:
        for k in range(steps):
            message = yield from produce(k)
            done.append(sim.env.event())
            sender = sim.process(_queued_upload(sim, dev, server, k, message, queue, done[k], sender, rnd, codec, kind))
            wait_for = k - 1 if pipeline else k
            if wait_for >= 0 and not (yield done[wait_for]):
                return
        if done:
            yield done[-1]
    finally:
        if sender is not None:
            yield sender
        queue.put(FINISHED)


def _queued_upload(sim, dev, server, k: int, message: dict, queue, done, previous, rnd: int, codec, kind: str):
    from ..world.network import TransferDropped
    from .training import tensor_bytes

    if previous is not None:
        yield previous
    dev.memory.hold(f"outgoing:{k}", tensor_bytes(message.values()))
    try:
        received = yield from sim.send(dev, server, message, kind=kind, rnd=rnd, codec=codec)
    except TransferDropped:
        done.succeed(False)
        return
    finally:
        dev.memory.release(f"outgoing:{k}")
    nbytes = server.memory.held.get(f"recv:{kind}:{dev.name}", 0)
    server.memory.release(f"recv:{kind}:{dev.name}")
    server.memory.hold(f"queued:{dev.name}:{k}", nbytes)
    yield queue.put((dev, k, received, done))


def serve_queue(queue, producers: int, serve):
    """Consumer: run the sub-process `serve(dev, k, received, done)` on each queued upload in arrival
    order until every producer has finished; `serve` must release `queued:<dev>:<k>`, succeed
    `done` once the device may proceed, and return the loss. Returns the losses."""
    losses, finished = [], 0
    while finished < producers:
        item = yield queue.get()
        if item is FINISHED:
            finished += 1
            continue
        losses.append((yield from serve(*item)))
    return losses
