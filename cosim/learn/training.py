"""The learning steps every scheme shares: local training of a parameter copy, the split step
(bottom forward, top forward/backward, bottom backward), weighted averaging, and held-out
evaluation.

One frozen model lives on the host; each client's trainable parameters are its own leaf tensors
run through that model with `torch.func.functional_call`. So clients that train "at the same time"
in simulated time never disturb each other's weights or optimizer state, whatever order the host
runs their steps in, and only the small trainable part is copied per client.
"""
from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from .aggregate import weighted_mean
from .data import ClientData, TextDataset, batches, encode, token_lengths
from .host_cache import HostCache, tokens_key
from .models import SplitModel

State = dict[str, torch.Tensor]


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def signature(self) -> tuple:
        return tuple(self.input_ids.shape)


def tensor_bytes(tensors) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


#: Target id cross-entropy skips: padding, and the last position of a sequence (nothing follows it).
IGNORE = -100


def next_token_targets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Causal-LM targets: position t predicts token t + 1 where that token is real, else IGNORE."""
    targets = torch.full_like(input_ids, IGNORE)
    targets[:, :-1] = torch.where(attention_mask[:, 1:].bool(), input_ids[:, 1:], IGNORE)
    return targets


def task_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of class logits (B, C) against labels (B), or of next-token logits (B, T, V)
    against targets (B, T) averaged over the counted (non-IGNORE) positions."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                           reduction=reduction)


def score(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, float, int]:
    """(correct predictions, summed loss, counted targets) of one evaluation batch."""
    counted = labels != IGNORE
    correct = int(((logits.argmax(-1) == labels) & counted).sum())
    return correct, task_loss(logits, labels, "sum").item(), int(counted.sum())


def _fold(scores) -> tuple[float, float]:
    """(accuracy, mean loss) from per-batch (correct, summed loss, counted), summed in order."""
    correct, loss_sum, n = 0, 0.0, 0
    for c, l, k in scores:
        correct, loss_sum, n = correct + c, loss_sum + l, n + k
    return correct / n, loss_sum / n


def optimizer_slots(optimizer: str) -> int:
    """State tensors an optimizer keeps per parameter: AdamW two moments, SGD none."""
    return {"adamw": 2, "sgd": 0}[optimizer]


def tied_names(model: torch.nn.Module) -> frozenset[str]:
    """Names of parameters and buffers that share their tensor with another name (an LM head
    tied to the embeddings)."""
    names: dict[int, list[str]] = {}
    for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        names.setdefault(id(t), []).append(name)
    return frozenset(n for group in names.values() if len(group) > 1 for n in group)


def call_with(model: torch.nn.Module, params: State, args: tuple, kwargs: dict | None = None,
              tied: frozenset[str] = frozenset()):
    """`model(*args, **kwargs)` with `params` in place of its own tensors. torch's weight-tying pass
    (which walks every submodule on every call: ~1 ms a step for a tiny BERT) runs only when
    `params` holds a tied name (`tied_names`), the one case where it changes anything."""
    return functional_call(model, params, args, kwargs, strict=False,
                           tie_weights=bool(tied) and not tied.isdisjoint(params))


class Learner:
    """The model, tokenizer and data of a run, and the learning steps schemes call."""

    def __init__(self, model: SplitModel, tokenizer, max_length: int, train: TextDataset,
                 test: TextDataset, clients: dict[str, ClientData], lr: float, optimizer: str,
                 eval_batch_size: int | None = None, padding: str = "bucket", pad_multiple: int = 8,
                 device: torch.device | str = "cpu", host_cache_bytes: int = 0):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        #: where the model, batches and steps live (runtime.device); FLOPs and bytes do not depend on it
        self.device = torch.device(device)
        model.to(self.device)
        self.padding, self.pad_multiple = padding, pad_multiple
        self.task = model.task
        if eval_batch_size is None:  # per-token logits over a 49k vocabulary: 8 rows ≈ 100 MB at T = 64
            eval_batch_size = 64 if self.task == "classification" else 8
        self.train, self.test, self.clients = train, test, clients
        self.lr, self.optimizer = lr, optimizer
        self.trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        self.tied = tied_names(model)
        self._params = dict(model.named_parameters())
        # evaluation batches of rows of similar length (bucket padding: little padding to compute)
        order = None
        if padding == "bucket":
            order = np.argsort(token_lengths(tokenizer, test.texts, max_length), kind="stable")
        self._test_batches = [self._encode(t, y) for t, y in batches(test, eval_batch_size, order)]
        self.eval_host_s = 0.0
        #: frozen forwards memoized on the host (cosim.learn.host_cache): host time only, never a table
        self.host_cache = HostCache(host_cache_bytes)
        #: where work runs ahead of the clock (cosim.learn.workers.Ahead); None: all in this process
        self.ahead = None

    def __getstate__(self) -> dict:   # a worker's copy (Ray) holds no workers of its own
        return {**self.__dict__, "ahead": None}

    # --- data ---------------------------------------------------------------------------------
    def _encode(self, texts, labels) -> Batch:
        """Token ids and mask; the targets are the dataset's labels (classification) or the next
        token at every position (causal LM: the dataset's labels only steer partitioning)."""
        enc = encode(self.tokenizer, texts, self.max_length, self.padding, self.pad_multiple)
        if self.task == "causal_lm":
            labels = next_token_targets(enc["input_ids"], enc["attention_mask"])
        d = self.device
        return Batch(enc["input_ids"].to(d), enc["attention_mask"].to(d), labels.to(d))

    def encode(self, texts, labels) -> Batch:
        """Texts and their labels as a batch on the run's device (any split's rows)."""
        return self._encode(texts, labels)

    def next_batch(self, client: str) -> Batch:
        return self._encode(*self.clients[client].next_batch())

    def num_samples(self, client: str) -> int:
        return len(self.clients[client])

    # --- parameters ---------------------------------------------------------------------------
    def trainable_names(self, start: int = 0, end: int | None = None) -> list[str]:
        part = set(self.model.part_parameter_names(start, end))
        return [n for n in self.trainable if n in part]

    def initial_state(self, names: list[str] | None = None) -> State:
        names = self.trainable if names is None else names
        return {n: self._params[n].detach().clone() for n in names}

    def weight_bytes(self, start: int = 0, end: int | None = None) -> int:
        """Bytes of every weight a part [start, end) holds (frozen and trainable)."""
        return tensor_bytes(self._params[n] for n in self.model.part_parameter_names(start, end))

    def training_state_bytes(self, names: list[str]) -> int:
        """Gradients plus optimizer state for the trainable parameters `names`."""
        return tensor_bytes(self._params[n] for n in names) * (1 + optimizer_slots(self.optimizer))

    def local(self, state: State, start: int = 0, end: int | None = None) -> "LocalModel":
        return LocalModel(self, state, start, end)

    @torch.no_grad()
    def frozen_forward(self, batch: Batch, cut: int) -> torch.Tensor:
        """A frozen bottom (SplitFrozen): embedding + blocks [0, cut) of the pretrained base model under
        no_grad, with the LoRA adapters of those blocks switched off, so neither an adapter matmul
        nor a saved activation is counted. (Adapters freshly injected add exactly zero anyway: peft
        initialises lora_B to zero.) Memoized on the host (`host_cache`): pure in the tokens."""
        def run():
            with adapters_disabled(self.model, 0, cut):
                return self.model(batch.input_ids, batch.attention_mask, start=0, end=cut)
        return self.host_cache.get(lambda: ("frozen_forward", cut, tokens_key(batch.input_ids, batch.attention_mask)),
                                   run)

    def next_indexed_batch(self, client: str) -> tuple[Batch, np.ndarray]:
        """The client's next batch and the dataset row index of each sample (a cache key)."""
        data = self.clients[client]
        picked = data.next_indices()
        labels = torch.from_numpy(data.ds.labels[picked].astype(np.int64))
        return self._encode([data.ds.texts[i] for i in picked], labels), picked

    @torch.no_grad()
    def frozen_layer_outputs(self, batch: Batch, layers: list[int]) -> list[torch.Tensor]:
        """The pretrained base model's block outputs at `layers` (indices into the blocks), under
        no_grad with every LoRA adapter off: a device that runs its backbone forward only (MobiLLM)."""
        end = max(layers) + 1

        def run():
            with adapters_disabled(self.model, 0, None):
                return self.model.layer_outputs(batch.input_ids, batch.attention_mask, end=end)
        outputs = self.host_cache.get(lambda: ("layer_outputs", end, tokens_key(batch.input_ids, batch.attention_mask)),
                                      run)
        return [outputs[i] for i in layers]

    @torch.no_grad()
    def evaluate_with(self, logits_fn) -> tuple[float, float]:
        """(accuracy, mean loss) on the held-out split of any predictor `logits_fn(batch) -> logits`
        (e.g. the frozen backbone plus a side network, cosim/learn/side.py)."""
        t0 = time.perf_counter()
        try:
            return _fold(score(logits_fn(b), b.labels) for b in self._test_batches)
        finally:
            self.eval_host_s += time.perf_counter() - t0

    def batch_of_rows(self, rows) -> Batch:
        """The training-set rows `rows` (dataset indices) encoded as one batch."""
        rows = np.asarray(rows, dtype=np.int64)
        labels = torch.from_numpy(self.train.labels[rows].astype(np.int64))
        return self._encode([self.train.texts[i] for i in rows], labels)

    # --- aggregation and evaluation ------------------------------------------------------------
    #: Weighted mean of parameter states (cosim.learn.aggregate.weighted_mean).
    average = staticmethod(weighted_mean)

    @torch.no_grad()
    def evaluate(self, state: State) -> tuple[float, float]:
        """(accuracy, mean loss) of the model with `state` on the held-out test split: per sequence
        (classification) or per predicted token (causal LM: next-token accuracy, mean token
        cross-entropy, whose exp is the perplexity). With workers the batches are scored there, in
        shards, and summed here in batch order: the same figures."""
        t0 = time.perf_counter()
        try:
            if self.ahead is not None:
                return self.ahead.evaluate(state)
            return _fold(self.score_batches(state, range(len(self._test_batches))))
        finally:
            self.eval_host_s += time.perf_counter() - t0

    @torch.no_grad()
    def score_batches(self, state: State, indices) -> list[tuple[int, float, int]]:
        """(correct, summed loss, counted) of each held-out batch in `indices` under `state`."""
        out = []
        for i in indices:
            b = self._test_batches[i]
            out.append(score(call_with(self.model, state, (b.input_ids, b.attention_mask), tied=self.tied),
                             b.labels))
        return out


@functools.lru_cache(maxsize=None)
def _under_model(tied: frozenset[str]) -> frozenset[str]:
    """`tied` as `_BlockRange` names them (under its `model.`); one set per model, not per step."""
    return frozenset(f"model.{k}" for k in tied)


class LocalModel:
    """A trainable parameter copy of blocks [start, end) with its own optimizer."""

    def __init__(self, learner: Learner, state: State, start: int = 0, end: int | None = None):
        self.learner, self.start, self.end = learner, start, end
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in state.items()}
        params = list(self.params.values())
        if learner.optimizer == "sgd":
            self.opt = torch.optim.SGD(params, lr=learner.lr)
        else:
            self.opt = torch.optim.AdamW(params, lr=learner.lr, weight_decay=0.0)

    def state(self) -> State:
        return {k: v.detach().clone() for k, v in self.params.items()}

    def cost_signature(self) -> tuple:
        """What of this part decides a step's FLOPs: its blocks and which parameters train. (Not
        whether its optimizer holds moments yet: AdamW's first step also zeroes them, memory traffic
        later steps lack, so a shape is charged as the step that met it first was — the same step in
        every run of a scenario, real or twin, serial or with workers.)"""
        return (type(self).__qualname__, self.start, self.end,
                tuple((k, tuple(v.shape), v.requires_grad) for k, v in self.params.items()))

    def copy(self) -> "LocalModel":
        """A copy in this one's state (parameters, gradients held while accumulating, optimizer
        moments) whose step can be counted without moving this one: a batched step's per-client
        cost (cosim.learn.workers) is a step like the client's own would have been."""
        twin = self.learner.local(self.state(), self.start, self.end)
        for k, p in self.params.items():
            twin.params[k].grad = None if p.grad is None else p.grad.clone()
        twin.opt.load_state_dict(copy.deepcopy(self.opt.state_dict()))   # its moments, not these
        twin.accumulating = self.accumulating
        return twin

    def load(self, state: State) -> None:
        with torch.no_grad():
            for k, v in state.items():
                self.params[k].copy_(v)

    def _call(self, *args, **kwargs):
        return call_with(self.learner.model, self.params, args, kwargs, tied=self.learner.tied)

    #: gradients add up until `flush` (`accumulate`); a flag, not a swapped method, so that a
    #: checkpoint of the part holds plain data (cosim.checkpoint builds no functions)
    accumulating = False

    def _apply(self) -> None:
        if self.accumulating:
            return
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    # --- whole model on one node ---------------------------------------------------------------
    def train_step(self, batch: Batch) -> float:
        """One forward/backward/update on the whole model; returns the loss."""
        logits = self._call(batch.input_ids, batch.attention_mask)
        loss = task_loss(logits, batch.labels)
        loss.backward()
        self._apply()
        return loss.item()

    # --- split learning: bottom part on the device, top part on the server ---------------------
    def bottom_forward(self, batch: Batch, cut: int) -> torch.Tensor:
        """Device side: embedding + blocks [0, cut); the output keeps its graph for backward."""
        return self._call(batch.input_ids, batch.attention_mask, start=0, end=cut)

    def top_step(self, hidden: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                 cut: int) -> tuple[float, torch.Tensor]:
        """Server side: blocks [cut, depth) + head, loss, backward, update; returns the loss and
        the gradient of the loss with respect to the received activation."""
        hidden = hidden.detach().requires_grad_(True)
        logits = self._call(hidden=hidden, attention_mask=attention_mask, start=cut)
        loss = task_loss(logits, labels)
        loss.backward()
        self._apply()
        return loss.item(), hidden.grad

    def bottom_backward(self, hidden: torch.Tensor, grad: torch.Tensor) -> None:
        """Device side: backpropagate the server's gradient through the bottom and update it."""
        hidden.backward(grad)
        self._apply()

    # --- a middle part of a chain of splits (device → edge → cloud) ------------------------------
    def middle_forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int,
                       end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocks [start, end) only — no embedding, no final norm or head, even when end is the
        model's depth. Returns (input, output): the received activation made a leaf that wants its
        gradient, and the output that keeps its graph for `middle_backward`."""
        hidden = hidden.detach().requires_grad_(True)
        return hidden, self._blocks(hidden, attention_mask, start, end)

    def middle_backward(self, hidden_in: torch.Tensor, hidden_out: torch.Tensor,
                        grad: torch.Tensor) -> torch.Tensor:
        """Backpropagate the gradient of the output through the blocks, update them, and return
        the gradient of the input (to be sent on down the chain)."""
        hidden_out.backward(grad)
        self._apply()
        return hidden_in.grad

    # --- parts whose backward stops inside or above them (RingAda's top-down unfreezing) ------------
    def upper_forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int,
                      end: int) -> torch.Tensor:
        """Blocks [start, end) on an activation that needs no gradient: the output's graph starts
        at the first parameter that requires a gradient (none: no graph at all), so backward
        (`bottom_backward`) stops at the lowest trainable adapter instead of reaching the input."""
        return self._blocks(hidden.detach(), attention_mask, start, end)

    def _blocks(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Blocks [start, end) of the model with this part's parameters (`_BlockRange`)."""
        params = {f"model.{k}": v for k, v in self.params.items()}
        return call_with(_BlockRange(self.learner.model), params, (hidden, attention_mask, start, end),
                         tied=_under_model(self.learner.tied))

    def accumulate(self) -> None:
        """Updates wait for `flush`: the micro-batches of one batch add up their gradients."""
        self.accumulating = True

    def flush(self, scale: float = 1.0) -> None:
        """Scale the accumulated gradients (1 / micro-batches: the mean over the batch) and update."""
        self.accumulating = False
        with torch.no_grad():
            for p in self.params.values():
                if p.grad is not None:
                    p.grad.mul_(scale)
        self._apply()

    # --- distillation-based FL (DFL): hard labels + stored soft targets ----------------------------
    @torch.no_grad()
    def predict_logits(self, batch: Batch) -> torch.Tensor:
        """Logits of the whole model with these parameters, no graph (soft targets to store)."""
        return self._call(batch.input_ids, batch.attention_mask)

    def kd_train_step(self, batch: Batch, teacher_logits: torch.Tensor, has_teacher: torch.Tensor,
                      temperature: float, alpha: float) -> float:
        """One update on hard labels plus soft targets: rows with a teacher (`has_teacher`) take
        `kd_loss` (alpha · T² · KL to softmax(teacher/T) + (1 − alpha) · CE), the others plain CE;
        the batch loss is the mean over rows. Returns the loss."""
        logits = self._call(batch.input_ids, batch.attention_mask)
        has = has_teacher.bool()
        n, k = len(batch.labels), int(has.sum())
        loss = logits.new_zeros(())
        if k:
            loss = loss + k / n * kd_loss(logits[has], teacher_logits[has], batch.labels[has], temperature, alpha)
        if k < n:
            loss = loss + (n - k) / n * F.cross_entropy(logits[~has], batch.labels[~has])
        loss.backward()
        self._apply()
        return loss.item()

    # --- a top part whose backward is split in two (SplitFrozen's decomposed backward) ----------
    def top_update(self, hidden: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                   cut: int) -> float:
        """Server side over a frozen bottom, fused: forward, backward to the trainable parameters only
        (no gradient at the cut: nobody below needs it), update. Returns the loss."""
        logits = self._call(hidden=hidden.detach(), attention_mask=attention_mask, start=cut)
        loss = task_loss(logits, labels)
        loss.backward()
        self._apply()
        return loss.item()

    def top_output_grads(self, hidden: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
                         cut: int) -> tuple[float, list]:
        """First half of a decomposed backward (the "B" pass of zero-bubble pipelines, Qi et al. 2024):
        forward, then only the chain of activation gradients down to the output of every trainable
        linear map (LoRA's B projection, the head) — no parameter gradient, none at the cut.
        Returns the loss and the stash (input, output-gradient) per trainable linear map that
        `top_weight_update` turns into parameter gradients."""
        taps = _linear_taps(self.learner.model, self.params)
        inputs, outputs, handles = {}, {}, []
        for name, module in taps.items():
            def hook(mod, args, out, name=name):
                inputs[name], outputs[name] = args[0].detach(), out
            handles.append(module.register_forward_hook(hook))
        try:
            logits = self._call(hidden=hidden.detach(), attention_mask=attention_mask, start=cut)
        finally:
            for h in handles:
                h.remove()
        loss = task_loss(logits, labels)
        names = list(outputs)
        grads = torch.autograd.grad(loss, [outputs[n] for n in names])
        return loss.item(), [(n, inputs[n], g) for n, g in zip(names, grads)]

    def top_weight_update(self, stash: list) -> None:
        """Second half (the "W" pass): parameter gradients of every trainable linear map from its
        stashed input and output gradient, then the update. A LoRA pair (A then B) is one map
        x -> B(Ax) here; its rank-r intermediate Ax is recomputed (2·r·d FLOPs per token) rather
        than stashed."""
        outs, grads = [], []
        for name, x, g in stash:
            outs.append(_linear_apply(self.learner.model, self.params, name, x))
            grads.append(g)
        torch.autograd.backward(outs, grads)
        self._apply()


def _linear_taps(model: torch.nn.Module, params: State) -> dict[str, torch.nn.Module]:
    """Trainable linear maps whose parameters are in `params`, by the name of the module whose input
    and output the decomposed backward taps: a LoRA pair is tapped at its A input and B output (the
    peft LoRA layer itself, whose output adds the base path: same gradient), the head as itself."""
    modules = dict(model.named_modules())
    taps = {}
    for key in params:
        if ".lora_A." in key:
            layer = key.split(".lora_A.")[0]
            taps[layer] = modules[layer]
        elif ".lora_B." not in key:
            taps[key.rsplit(".", 1)[0]] = modules[key.rsplit(".", 1)[0]]
    return taps


def _linear_apply(model: torch.nn.Module, params: State, name: str, x: torch.Tensor) -> torch.Tensor:
    """The trainable part of map `name` applied to x with the leaf parameters: a LoRA pair's
    scaling·B(A x), or a plain linear layer (the head)."""
    a = [k for k in params if k.startswith(name + ".lora_A.")]
    if a:
        adapter = a[0].split(".lora_A.")[1].rsplit(".", 1)[0]
        b = params[f"{name}.lora_B.{adapter}.weight"]
        return F.linear(F.linear(x, params[a[0]]), b) * model.get_submodule(name).scaling[adapter]
    return F.linear(x, params[name + ".weight"], params.get(name + ".bias"))


class adapters_disabled:
    """Context: the LoRA adapters of blocks [start, end) are off (peft layers run their base layer)."""

    def __init__(self, model: SplitModel, start: int, end: int | None):
        end = model.depth if end is None else end
        self.layers = [m for b in model.walk.blocks()[start:end] for m in b.modules()
                       if hasattr(m, "_disable_adapters")]

    def __enter__(self):
        self.before = [m._disable_adapters for m in self.layers]
        for m in self.layers:
            m._disable_adapters = True

    def __exit__(self, *exc):
        for m, b in zip(self.layers, self.before):
            m._disable_adapters = b


def lengths_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """Right-padded masks travel as per-row lengths (B int32), not as the B×T mask."""
    return attention_mask.sum(dim=1).to(torch.int32)


def mask_from_lengths(lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    return (torch.arange(seq_len, device=lengths.device).unsqueeze(0) < lengths.long().unsqueeze(1)).long()


def mean_or_nan(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


class _BlockRange(torch.nn.Module):
    """Blocks [start, end) of a SplitModel as a module of their own (the model is a submodule,
    not a copy), so `functional_call` can run a middle part with a client's leaf parameters."""

    def __init__(self, model: SplitModel):
        super().__init__()
        self.model = model

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, end: int) -> torch.Tensor:
        walk = self.model.walk
        kwargs = walk.block_kwargs(hidden, attention_mask)
        for block in walk.blocks()[start:end]:
            hidden = block(hidden, **kwargs)
        return hidden


# --- knowledge distillation and separate models (split_kd) ------------------------------------------
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """Knowledge-distillation loss (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural
    network", §2): alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha) · CE(student, y).
    T² keeps the soft term's gradient scale independent of the temperature T."""
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=-1),
                    F.softmax(teacher_logits.detach() / temperature, dim=-1), reduction="batchmean")
    return alpha * temperature ** 2 * soft + (1.0 - alpha) * F.cross_entropy(student_logits, labels)


class SeparateLocalModel(LocalModel):
    """A LocalModel over a model that is not the learner's (a distillation student, trained with
    `kd_train_step`): its own module, the learner's optimizer settings."""

    def __init__(self, learner: Learner, model: torch.nn.Module, state: State):
        super().__init__(learner, state)
        self.model = model

    def _call(self, *args, **kwargs):
        return functional_call(self.model, self.params, args, kwargs, strict=False)


def top_forward(local: LocalModel, hidden: torch.Tensor, attention_mask: torch.Tensor, cut: int) -> torch.Tensor:
    """Server side of a U-shaped split over a frozen bottom: blocks [cut, depth) + head on the received
    activation; the logits keep their graph for `logits_backward` (the labels stay on the device)."""
    return local._call(hidden=hidden.detach(), attention_mask=attention_mask, start=cut)


def logits_backward(local: LocalModel, logits: torch.Tensor, grad: torch.Tensor) -> None:
    """Backpropagate the device's gradient of its loss w.r.t. the logits through the top and update it."""
    logits.backward(grad)
    local._apply()


def logits_loss_grad(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Device side of a U-shaped split: cross-entropy of received logits against the device's own
    labels; returns the loss and its gradient w.r.t. the logits (what goes back up, not the labels)."""
    logits = logits.detach().requires_grad_(True)
    loss = task_loss(logits, labels)
    loss.backward()
    return loss.item(), logits.grad
