"""Side networks trained on a server from a frozen backbone's per-layer activations: the device
runs its backbone forward only and never backpropagates through it.

Two ways to use one side network (shared pieces: `SideConfig`, `SideNetwork`, `SideTrainer`):

- MobiLLM (Li et al., "MobiLLM: Enabling LLM Fine-Tuning on the Mobile Device via Server Assisted
  Side Tuning", arXiv 2502.20421): a side network of parallel adapters — per fed backbone layer l
  an adapter a_l(x) = W_up,l · GELU(W_down,l · x) (down-project to hidden / reduction,
  nonlinearity, up-project) whose input is that layer's received hidden state h_l plus the side
  path's running state r_l: r_{l+1} = r_l + a_l(h_l + r_l), r_0 = 0. The side output
  LayerNorm(h_last + r) is pooled (the backbone's own pooling) and read by the side's head; the
  server trains it on the labels with backpropagation through the side network only.
- PAE MobiLLM (additive side-tuning, the "PAE" follow-up of the same group; see
  cosim/schemes/pae_mobillm.py): the same network, fed one pivot token per layer, whose logits
  are ADDED to the frozen backbone's logits on the device. The server never sees labels: it gets
  the device-defined prediction difference dL/dz_side = softmax(z_backbone + z_side) − onehot(y)
  (per mean-reduced cross-entropy) and backpropagates that through the side network.

`up` projections start at zero (as adapters usually do, Houlsby et al. 2019 §2.1), so the side
network starts as a linear probe on the last fed layer and every step is a well-posed update.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ..config import Strict
from ..world.network import TransferDropped
from .adapters import LoraConfig
from .compress import QuantCodec
from .training import optimizer_slots, task_loss, tensor_bytes

#: How a pivot token is read from a sequence (PAE's pivot-token shortcut).
PIVOTS = ("auto", "first", "last", "mean")


@dataclass(frozen=True)
class SideConfig:
    """What the side network looks like (peft-style: the config decides what is built).

    reduction: adapter width = hidden // reduction. layers: the backbone blocks (0-based, output
    of block i) that feed the side network, in order; None = every block."""

    reduction: int = 8
    layers: tuple[int, ...] | None = None
    normalize: bool = False

    def feed_layers(self, depth: int) -> list[int]:
        layers = list(range(depth)) if self.layers is None else sorted(set(self.layers))
        if not layers or layers[0] < 0 or layers[-1] >= depth:
            raise ValueError(f"side layers {self.layers} must be block indices in [0, {depth})")
        return layers


class SideOptions(Strict):
    """The scenario's `side:` block: what `SideConfig` is built from."""

    reduction: int = Field(8, ge=1, description="adapter width = hidden // reduction")
    normalize: bool = Field(False, description="scale each adapter's input to unit RMS per token")
    layers: list[int] | None = Field(None, description="backbone blocks (0-based) feeding the side network; null = all")

    def config(self) -> SideConfig:
        return SideConfig(self.reduction, None if self.layers is None else tuple(self.layers), self.normalize)


class SideTuningConfig(Strict):
    """Knobs MobiLLM and PAE MobiLLM share: a scheme config mixes it in before `SchemeConfig`
    (`class MobiLLMConfig(SideTuningConfig, SchemeConfig)`)."""

    lora: LoraConfig | None = Field(None, description="unused: the device backbone stays frozen, no LoRA")
    bits: Literal[2, 4, 8] = Field(8, description="bit width of the activations sent up")
    stochastic_rounding: bool = Field(False, description="unbiased stochastic rounding instead of round-to-nearest")
    quant_scale: Literal["tensor", "token"] = Field(
        "tensor", description="one min-max range per activation tensor, or per token (8 bytes per token more); "
                              "decoder LLMs need 'token': their massive activations flatten a per-tensor range")
    side: SideOptions = Field(default_factory=SideOptions)

    def codec(self, sim) -> QuantCodec:
        return QuantCodec(self.bits, sim.rng("quantization") if self.stochastic_rounding else None,
                          per_row=self.quant_scale == "token")


class ParallelAdapter(nn.Module):
    """down-project → GELU → up-project (zero-initialised up, so it starts as the identity path).

    `normalize`: the input is first scaled to unit RMS per token (a parameter-free RMSNorm, Zhang &
    Sennrich 2019), so the adapter's output scale does not follow the backbone's activation scale
    (decoder LLMs carry values of 10^4 in a few channels)."""

    def __init__(self, hidden: int, width: int, normalize: bool = False):
        super().__init__()
        self.down = nn.Linear(hidden, width)
        self.up = nn.Linear(width, hidden)
        self.normalize = normalize
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        if self.normalize:
            x = F.rms_norm(x, (x.shape[-1],))
        return self.up(F.gelu(self.down(x)))


class SideNetwork(nn.Module):
    """Parallel adapters over the fed layers' hidden states, then a readout.

    Classification: a LayerNorm, pooling and a head of the side's own (all trained). Causal LM
    (`readout` given): the backbone's own final norm and pretrained LM head, frozen and not part of
    the side network, applied at every position — with the `up` projections at zero the side model
    starts as exactly the pretrained LM, and only the adapters learn.

    Inputs are per-layer tensors of shape (B, T, H) (whole sequences, pooled at the end with
    `pool(hidden, attention_mask)`) or (B, H) (pivot tokens: nothing to pool)."""

    def __init__(self, cfg: SideConfig, hidden: int, num_labels: int, num_layers: int,
                 pool: Callable | None = None, readout: Callable | None = None):
        super().__init__()
        width = max(1, hidden // cfg.reduction)
        self.adapters = nn.ModuleList(ParallelAdapter(hidden, width, cfg.normalize) for _ in range(num_layers))
        self._readout = readout  # a plain callable: the backbone's modules are not registered here
        if readout is None:
            self.norm = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, num_labels)
        self._pool = pool

    def forward(self, hiddens: list[torch.Tensor], attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        running = torch.zeros_like(hiddens[0])
        for h, adapter in zip(hiddens, self.adapters):
            running = running + adapter(h + running)
        if self._readout is not None:
            return self._readout(hiddens[-1] + running)
        out = self.norm(hiddens[-1] + running)
        if out.dim() == 3:
            out = self._pool(out, attention_mask)
        return self.head(out)


def build_side(learner, cfg: SideConfig, seed: int) -> tuple[SideNetwork, list[int]]:
    """A fresh side network for the learner's model (seeded), and the layers that feed it."""
    model = learner.model
    layers = cfg.feed_layers(model.depth)
    readout = (lambda h: model.head(model.walk.final(h))) if model.task == "causal_lm" else None
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        side = SideNetwork(cfg, model.hidden_size, model.head.out_features, len(layers), pool=model.pool,
                           readout=readout).to(model.head.weight.device)
    finally:
        torch.random.set_rng_state(gen_state)
    return side, layers


def server_side_network(sim, server, cfg: SideConfig, lr: float, optimizer: str) -> tuple[SideTrainer, list[int]]:
    """The side network a server trains (seeded from the stream "side/init"), kept out of the
    learner's FLOP bookkeeping of the backbone, with its weights (plus a causal LM's readout) and
    training state on the server's ledger; and the backbone layers that feed it."""
    side, layers = build_side(sim.learner, cfg, seed=int(sim.rng("side/init").integers(2**31)))
    sim.meter.exclude_parameters(side)
    trainer = SideTrainer(side, lr, optimizer)
    server.memory.resident("side_weights", trainer.parameter_bytes() + readout_bytes(sim.learner))
    server.memory.resident("training_state", trainer.parameter_bytes() * (1 + optimizer_slots(optimizer)))
    return trainer, layers


def readout_bytes(learner) -> int:
    """Weights a causal-LM side network reads out through (the backbone's final norm and LM head):
    the server holds them beside the side network; the device has them already."""
    model = learner.model
    if model.task != "causal_lm":
        return 0
    return learner.weight_bytes(model.depth, model.depth)


class SideTrainer:
    """The server's side network and its optimizer; the steps both schemes call."""

    def __init__(self, side: SideNetwork, lr: float, optimizer: str = "adamw"):
        self.side = side
        params = list(side.parameters())
        self.opt = (torch.optim.SGD(params, lr=lr) if optimizer == "sgd"
                    else torch.optim.AdamW(params, lr=lr, weight_decay=0.0))

    def _apply(self) -> None:
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def train_step(self, hiddens: list[torch.Tensor], attention_mask, labels: torch.Tensor) -> float:
        """MobiLLM: side forward, cross-entropy on the labels, backward through the side only, update."""
        loss = task_loss(self.side([h.detach() for h in hiddens], attention_mask), labels)
        loss.backward()
        self._apply()
        return loss.item()

    @torch.no_grad()
    def predict(self, hiddens: list[torch.Tensor], attention_mask=None) -> torch.Tensor:
        """PAE: the side logits the device adds to its backbone's (no graph kept)."""
        return self.side(hiddens, attention_mask)

    def apply_difference(self, hiddens: list[torch.Tensor], difference: torch.Tensor, attention_mask=None) -> None:
        """PAE: backpropagate the device-defined difference dL/dz_side through the side network
        (its forward recomputed, so several clients may interleave safely) and update."""
        self.side(hiddens, attention_mask).backward(difference)
        self._apply()

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.side.state_dict().items()}

    def parameter_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.side.parameters())


def prediction_difference(backbone_logits: torch.Tensor, side_logits: torch.Tensor,
                          labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Device side of PAE: the combined prediction z = z_backbone + z_side, its cross-entropy on the
    device's own labels, and the difference the server trains on, dL/dz_side = (softmax(z) −
    onehot(y)) / B (the gradient of the mean cross-entropy; z_backbone is constant)."""
    z = backbone_logits + side_logits
    loss = F.cross_entropy(z, labels)
    diff = (torch.softmax(z, dim=-1) - F.one_hot(labels, z.shape[-1]).to(z.dtype)) / len(labels)
    return loss.item(), diff


def pivot_of(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per sequence: "last" real token (decoders: it has seen the whole sequence),
    "first" token (the encoder's [CLS]), or the "mean" over real tokens (mean-pooled encoders such
    as all-MiniLM-L6-v2)."""
    if how == "last":
        last = attention_mask.sum(dim=1).long().clamp(min=1) - 1
        return hidden[torch.arange(hidden.shape[0]), last]
    if how == "first":
        return hidden[:, 0]
    if how == "mean":
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"pivot={how!r}; allowed: {PIVOTS}")


def resolve_pivot(model, how: str) -> str:
    """"auto": the token the model's own pooling reads — last for decoders, mean for encoders."""
    if how == "auto":
        return "last" if model.walk.causal else "mean"
    return how


@torch.no_grad()
def backbone_pass(learner, batch, layers: list[int], pivot: str | None = None):
    """The device's frozen forward for side-tuning: the hidden states of the fed `layers` (whole
    sequences, or one pivot token each when `pivot` is set) and the backbone's own logits."""
    model = learner.model
    outputs = learner.frozen_layer_outputs(batch, list(range(model.depth)))
    logits = model.readout(outputs[-1], batch.attention_mask)
    hiddens = [outputs[i] for i in layers]
    if pivot is not None:
        hiddens = [pivot_of(h, batch.attention_mask, pivot) for h in hiddens]
    return hiddens, logits


def deliver_side(sim, server, trainer: SideTrainer, devices: list):
    """Send the trained side network to every device (kind "side_network"), in parallel; each keeps
    it beside its backbone. A device whose delivery is dropped goes without (the drop is in the trace)."""
    state = trainer.state()

    def one(dev):
        try:
            received = yield from sim.send(server, dev, state, kind="side_network")
        except TransferDropped:
            return
        with received:
            dev.memory.resident("side_weights", tensor_bytes(state.values()))

    yield from sim.gather(one(dev) for dev in devices)


def close_round_with_side(sim, rnd: int, logits_fn, train_losses, **extra):
    """`Simulation.close_round` for a model that is the backbone plus a side network: evaluate
    `logits_fn(batch)` on the held-out split (a measurement, no simulated time) and end the round."""
    return sim.close_round(rnd, None, train_losses, evaluate=lambda: sim.learner.evaluate_with(logits_fn), **extra)
