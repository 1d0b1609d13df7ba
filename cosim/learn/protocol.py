"""The message exchanges that split training repeats, written once for every scheme.

Each function is a SimPy sub-process (`yield from`): it runs the real tensors through the nodes'
`compute` and the simulation's `send`, so each piece of work and each transfer lands in the trace.
"""
from __future__ import annotations

from .activation import Activation
from .training import Batch, LocalModel


def split_step(sim, dev, server, bottom: LocalModel, top: LocalModel, batch: Batch, cut: int, *, codec=None,
               ahead=None):
    """One split-learning minibatch (Gupta & Raskar 2018): the device runs blocks [0, cut) and sends
    the cut-layer activation with labels and sequence lengths; the server runs the rest, updates
    its part and returns the activation's gradient; the device backpropagates it and updates.
    `codec` (default: the run's) encodes both the activation and the gradient (e.g. SFT's
    compression). `ahead` (a `SplitStepAhead` of cosim.learn.workers; then `batch` is None): the
    three computations were done on a worker and are charged here as they would have run.
    Returns the training loss."""
    with dev.memory.hold("activations") as saved:
        if ahead is None:
            hidden = yield from dev.compute(bottom.bottom_forward, batch, cut, kind="fwd", keep=saved)
        else:
            batch, hidden = yield from dev.compute(ahead.fwd, kind="fwd", keep=saved)
        with (yield from sim.send(dev, server, Activation.of(hidden, batch), kind="activation", codec=codec)) as up:
            act = up.value
            train = (ahead.top,) if ahead else (top.top_step, act.hidden, act.mask, act.labels, cut)
            loss, grad = yield from server.compute(*train, kind="train")
        with (yield from sim.send(server, dev, [grad], kind="gradient", codec=codec)) as down:
            backward = (ahead.bwd,) if ahead else (bottom.bottom_backward, hidden, down.value[0])
            yield from dev.compute(*backward, kind="bwd")
    return loss


def chain_step(sim, nodes: list, parts: list[LocalModel], cuts: list[int], batch: Batch, *, stop: int = 0,
               codec=None):
    """One minibatch through a chain of split parts (user → edge → cloud, or longer): nodes[0]
    runs the embedding and blocks [0, cuts[0]), nodes[i] blocks [cuts[i-1], cuts[i]), and the last
    node the remaining blocks, the head and the loss. The activation goes up hop by hop (with the
    sequence lengths and labels), the gradient comes back down hop by hop; every part updates
    itself as its backward finishes. `split_step` is the chain of two. Returns the training loss.

    `stop` (RingAda's top-down unfreezing; 0: everything below trains) is the lowest block whose
    parameters train, the parts' parameters below it having `requires_grad` off: backward ends at
    that block, so a node whose blocks all lie below it runs its forward only and is sent no
    gradient, and the node holding it backpropagates only down to it. Several micro-batches may be
    in flight at once: each holds its own buffers. `codec` (default: the run's) codes every
    activation and gradient of the chain."""
    dev, bottom, cut = nodes[0], parts[0], cuts[0]
    with dev.memory.hold("activations") as saved:
        hidden = yield from dev.compute(bottom.bottom_forward, batch, cut, kind="fwd", keep=saved)
        loss, down = yield from _up_the_chain(sim, nodes, parts, cuts, 0, Activation.of(hidden, batch), stop, codec)
        if down is not None:
            with down:
                yield from dev.compute(bottom.bottom_backward, hidden, down.value[0], kind="bwd")
    return loss


def _up_the_chain(sim, nodes, parts, cuts, i: int, act: Activation, stop: int = 0, codec=None):
    """Send `act` from nodes[i] to nodes[i+1], run everything above, and bring the gradient of
    the sent activation back to nodes[i]. Returns (loss, the `Received` gradient, whose buffer the
    caller releases after its backward), or (loss, None) with nothing sent back when nodes[i]'s
    blocks all lie below `stop`."""
    src, dst = nodes[i], nodes[i + 1]
    start = cuts[i]
    wanted = start > stop  # does the sender hold a block that trains?
    with (yield from sim.send(src, dst, act, kind="activation", codec=codec)) as up:
        got = up.value
        if i + 1 == len(nodes) - 1:  # the top: loss, backward, update
            if wanted:
                loss, grad = yield from dst.compute(parts[i + 1].top_step, got.hidden, got.mask, got.labels, start,
                                                    kind="train")
            else:  # backward ends inside the top part: no gradient at its input
                grad = None
                loss = yield from dst.compute(parts[i + 1].top_update, got.hidden, got.mask, got.labels, start,
                                              kind="train")
        else:
            loss, grad = yield from relay_step(
                sim, dst, parts[i + 1], got, start, cuts[i + 1],
                lambda out: _up_the_chain(sim, nodes, parts, cuts, i + 1, out, stop, codec), stop=stop)
    if not wanted:
        return loss, None
    return loss, (yield from sim.send(dst, src, [grad], kind="gradient", codec=codec))


def relay_step(sim, node, part: LocalModel, got: Activation, start: int, end: int, upward, *, stop: int = 0):
    """The middle of a chain (e.g. an edge server between a user and the cloud), for one minibatch:
    forward the received activation through blocks [start, end) keeping the graph, pass the output
    on with `upward(activation)` — a sub-process that sends it up, runs everything there and
    returns (loss, the `Received` gradient of that output) — then backpropagate that gradient,
    update this part, and return (loss, the gradient of the received activation) for the caller to
    send down.

    With `stop` (see `chain_step`) above `start`, backward ends inside this part (no gradient of
    the received activation: returns (loss, None)) or, when `end <= stop`, the part runs forward
    only and receives no gradient from above."""
    mask = got.mask
    with node.memory.hold("activations:relay") as saved:
        if start >= stop:
            hidden_in, hidden_out = yield from node.compute(part.middle_forward, got.hidden, mask, start, end,
                                                            kind="fwd", keep=saved)
        else:
            hidden_in = None
            hidden_out = yield from node.compute(part.upper_forward, got.hidden, mask, start, end, kind="fwd",
                                                 keep=saved)
        loss, down = yield from upward(got.with_hidden(hidden_out))
        grad_in = None
        if down is not None:
            with down:
                if hidden_in is not None:
                    grad_in = yield from node.compute(part.middle_backward, hidden_in, hidden_out, down.value[0],
                                                      kind="bwd")
                else:
                    yield from node.compute(part.bottom_backward, hidden_out, down.value[0], kind="bwd")
    return loss, grad_in

