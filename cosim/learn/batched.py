"""Several clients' adapter steps as one batched step: clients that share the frozen backbone and
train only linear maps (LoRA's A and B, a classification head) run one forward/backward together,
each with its own parameters, loss, gradients and optimizer.

Why: a FedAvg round trains every selected client from the same global state, independent in
simulated time (DESIGN.md §1, "serial (or batched) on the host"). One at a time, each client pays
the whole frozen backbone on a small batch; batched, the backbone runs once on all clients' rows
and only the trainable maps are per client.

How ("grouped LoRA"): the clients' batches are concatenated along the batch dimension, client by
client, and go through the learner's one model as an ordinary batch. While the step runs, every
linear module whose parameters train is switched to a grouped form: its input, whose leading
dimension is (clients × rows), is viewed as (clients, rows·…, in) and multiplied by that client's
own weight with one batched matmul (`torch.bmm`), so row block c meets client c's parameters only.
Frozen layers never know. The clients' parameters enter stacked, (clients, *shape) per name; the
gradient of the summed per-client losses with respect to the stack holds, in slice c, client c's
own gradient (no other client's loss depends on its parameters), which becomes client c's `.grad`;
then each client's own optimizer steps (`LocalModel._apply`: AdamW or SGD with its own state;
`LocalModel.accumulate` is honoured).

`torch.func.vmap` over `functional_call` with stacked parameters was tried first and cannot run
these models: transformers' attention-mask builder branches on the mask's values
(`padding_mask.all()` in `masking_utils._ignore_bidirectional_mask_sdpa`), which vmap refuses.
The grouped form needs no change to the model and batches the frozen backbone as well.

Batches of different shapes are grouped, not padded: clients whose batches share one shape run as
one batched step, each shape its own. (With `model.padding: max_length` every batch has one shape,
so a round's clients form a single group; bucket padding makes a few groups.)

API, for the round that runs the clients' steps::

    locals_ = [learner.local(global_state) for _ in clients]
    for k in range(local_steps):
        losses = batched_train_step(locals_, [learner.next_batch(c) for c in clients])

`batched_train_step(models, batches)` is `[m.train_step(b) for m, b in zip(models, batches)]`
up to float32 rounding (tests/test_batched_clients.py states the tolerance; AdamW's normalised
step magnifies the rounding of a gradient element that nearly cancels, so after a few steps a rare
element may differ by a fraction of lr — SGD stays at rounding level). It is host work only:
client c's simulated step still costs the FLOPs of its own `train_step` (same shapes, so the
meter's cached count), not a share of this call's host time. `check_batchable(models)`
raises the ValueError `batched_train_step` would, without running anything: models of one learner,
whole-model parts, the same parameter names and shapes, every trainable parameter the weight or
bias of an `nn.Linear` (LoRA adapters, a classification head; full fine-tuning does not batch).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .training import Batch, LocalModel, SeparateLocalModel, task_loss


def check_batchable(models: Sequence[LocalModel]) -> None:
    """Refuse (ValueError, saying which client and parameter) what one batched step cannot run."""
    if not models:
        raise ValueError("batched_train_step needs at least one client model")
    first = models[0]
    model = first.learner.model
    for i, m in enumerate(models):
        if isinstance(m, SeparateLocalModel):
            raise ValueError(f"client {i} trains a model of its own (SeparateLocalModel), not the learner's "
                             "shared backbone")
        if m.learner is not first.learner:
            raise ValueError(f"client {i} belongs to another learner than client 0: no shared backbone")
        if m.start != 0 or m.end not in (None, model.depth):
            raise ValueError(f"client {i} holds blocks [{m.start}, {m.end}); a batched step trains the whole "
                             "model (LocalModel.train_step)")
        if list(m.params) != list(first.params):
            theirs, ours = set(m.params), set(first.params)
            odd = sorted(theirs ^ ours) or list(m.params)
            raise ValueError(f"client {i} trains other parameters than client 0 (first difference: {odd[0]!r})")
        for name, p in m.params.items():
            if p.shape != first.params[name].shape:
                raise ValueError(f"client {i} parameter {name!r} has shape {tuple(p.shape)}, client 0 "
                                 f"{tuple(first.params[name].shape)}")
    for name in first.params:
        path, _, attr = name.rpartition(".")
        module = model.get_submodule(path)
        if not isinstance(module, nn.Linear) or attr not in ("weight", "bias"):
            raise ValueError(f"parameter {name!r} is not the weight or bias of a linear map; only LoRA adapters "
                             "and linear heads batch over a shared frozen backbone")


def batched_train_step(models: Sequence[LocalModel], batches: Sequence[Batch]) -> list[float]:
    """One `train_step` for each client (`models[c]` on `batches[c]`), run as one batched
    forward/backward per batch shape; each client's own optimizer updates it. Returns each
    client's loss, in the order given."""
    if len(models) != len(batches):
        raise ValueError(f"{len(models)} client models but {len(batches)} batches")
    check_batchable(models)
    groups: dict[tuple, list[int]] = {}
    for c, b in enumerate(batches):
        shape = (tuple(b.input_ids.shape), tuple(b.attention_mask.shape), tuple(b.labels.shape))
        groups.setdefault(shape, []).append(c)
    losses: list[float] = [0.0] * len(models)
    for members in groups.values():
        group_losses = _grouped_step([models[c] for c in members], [batches[c] for c in members])
        for c, loss in zip(members, group_losses):
            losses[c] = loss
    return losses


def _grouped_step(models: Sequence[LocalModel], batches: Sequence[Batch]) -> list[float]:
    """Forward all clients' rows at once, backward the sum of the per-client losses, update each."""
    clients = len(models)
    model = models[0].learner.model
    stacked = {name: torch.stack([m.params[name].detach() for m in models]).requires_grad_(True)
               for name in models[0].params}
    input_ids = torch.cat([b.input_ids for b in batches])
    attention_mask = torch.cat([b.attention_mask for b in batches])
    with _grouped_linears(model, stacked, clients):
        logits = model(input_ids, attention_mask)
    per_client = [task_loss(lg, b.labels) for lg, b in zip(logits.chunk(clients), batches)]
    losses = torch.stack(per_client)
    grads = torch.autograd.grad(losses.sum(), list(stacked.values()))
    for name, grad in zip(stacked, grads):
        for m, g in zip(models, grad):
            _add_grad(m.params[name], g)
    _update_together(models)
    return losses.tolist()


def _update_together(models: Sequence[LocalModel]) -> None:
    """Each client's own optimizer update (`LocalModel._apply`), run as one update over all the
    clients' parameters: one optimizer of the same kind and settings whose state is each client's own
    (the same dict objects, so the clients' optimizers see their moments move). The update is
    elementwise, so every element gets what its own optimizer gives it; one multi-tensor call
    instead of one per client (on a GPU each was a thousand kernel launches per 16 clients' step).
    Clients still accumulating micro-batches (`LocalModel.accumulate`) update alone, as before."""
    first = models[0].opt
    settings = {k: v for k, v in first.param_groups[0].items() if k != "params"}
    same = all(type(m.opt) is type(first) and len(m.opt.param_groups) == 1
               and {k: v for k, v in m.opt.param_groups[0].items() if k != "params"} == settings for m in models)
    if any(m.accumulating for m in models) or not same:
        for m in models:
            m._apply()
        return
    params = [p for m in models for p in m.opt.param_groups[0]["params"]]
    together = type(first)(params, lr=settings["lr"])
    together.param_groups[0].update(settings)   # every setting of the clients' own group
    for m in models:
        together.state.update({p: m.opt.state[p] for p in m.opt.param_groups[0]["params"] if p in m.opt.state})
    together.step()
    for m in models:
        for p in m.opt.param_groups[0]["params"]:
            m.opt.state[p] = together.state[p]
            p.grad = None   # zero_grad(set_to_none=True), as `_apply` does


def _add_grad(param: torch.Tensor, grad: torch.Tensor) -> None:
    """What backward does for a leaf: set its gradient, or add to one still accumulating
    (`LocalModel.accumulate`). A client's gradient is its slice of the stacked gradient (a view:
    no copy per client and parameter)."""
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.add_(grad)


class _grouped_linears:
    """Context: every linear module with a parameter in `stacked` (name -> (clients, *shape)) runs
    client-grouped: row block c of its input (leading dimension clients × rows) uses client c's
    weight and bias; a parameter not in `stacked` is the module's own (shared by all clients)."""

    def __init__(self, model: nn.Module, stacked: dict[str, torch.Tensor], clients: int):
        per_module: dict[str, dict[str, torch.Tensor]] = {}
        for name, value in stacked.items():
            path, _, attr = name.rpartition(".")
            per_module.setdefault(path, {})[attr] = value
        self.forwards = {model.get_submodule(path): _grouped_forward(model.get_submodule(path), own, clients)
                         for path, own in per_module.items()}

    def __enter__(self):
        for module, forward in self.forwards.items():
            module.forward = forward  # an instance attribute shadows the class's forward; hooks still run

    def __exit__(self, *exc):
        for module in self.forwards:
            del module.forward


def _grouped_forward(module: nn.Linear, own: dict[str, torch.Tensor], clients: int):
    """y_c = x_c W_cᵀ + b_c for each client's row block x_c, as one bmm."""
    weight, bias = own.get("weight"), own.get("bias")

    def forward(x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(clients, -1, x.shape[-1])               # client-major: (C, rows·…, in)
        if weight is None:
            out = rows @ module.weight.T
        else:
            out = torch.bmm(rows, weight.transpose(1, 2))
        if bias is not None:
            out = out + bias.unsqueeze(1)
        elif module.bias is not None:
            out = out + module.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])

    return forward
