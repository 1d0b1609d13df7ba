"""The scheme registry and the configuration every scheme shares.

A scheme is a generator function `run(sim, cfg)` — the SimPy process of the whole training —
registered with `@scheme(name, config=ConfigClass, summary="one line")`. Its config is a pydantic
model validated from the scenario's `scheme:` block, so a typo in a scheme's own knob is refused
before anything runs, with the field's path. What needs more than the block itself (a cut layer
against the model's depth, a profile name against the device groups) the config checks in
`problems`, which the scenario calls once before the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, ClassVar, Collection, Literal

from pydantic import Field, ValidationInfo, field_validator

from ..config import Strict, at_most
from ..learn.adapters import LoraConfig   # re-exported: schemes import it from here
from ..learn.compress import CompressionConfig
from ..learn.ordering import OrderPolicy


#: Bounds against runaway inputs (a typo, a sweep gone wrong), far above any study: federated
#: studies run 10^2-10^4 rounds of 1-500 local steps on batches of 8-512 samples; a longer run is
#: ended by stop.sim_time_s, not by a larger count. A batch is held in host memory at once.
MAX_ROUNDS = 1_000_000
MAX_LOCAL_STEPS = 100_000
MAX_BATCH_SIZE = 4_096


#: schemes whose `order` (cosim.learn.ordering) decides who trains when; splitfed, splitlora and
#: splitfrozen carry the field (SplitConfig) but serve clients in arrival order
ORDERED_BY_POLICY = ("split", "sequential_fl", "cyclicfl")


class SchemeConfig(Strict):
    name: str = Field(description="the scheme (`cosim schemes` lists them); it decides which other fields exist")
    rounds: Annotated[int, at_most(MAX_ROUNDS, "runaway bound: studies run up to ~10^4 rounds; "
                                                "stop.sim_time_s ends a run earlier")] = Field(
        10, ge=1, description="training rounds; stop.sim_time_s or stop.target_accuracy may end the run earlier")
    local_steps: Annotated[int, at_most(MAX_LOCAL_STEPS, "runaway bound: studies take 1-500 steps a round")] = Field(
        5, ge=1, description="minibatch steps per client per round")
    batch_size: Annotated[int, at_most(MAX_BATCH_SIZE, "host-memory bound: one batch is held at once; edge "
                                                       "studies use 8-512")] = Field(
        16, ge=1, description="samples per minibatch")
    lr: float = Field(5e-3, gt=0, description="learning rate of the optimizer")
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="torch.optim.AdamW or SGD")
    lora: LoraConfig | None = Field(default_factory=LoraConfig, description="null = full fine-tuning")
    participants: int | None = Field(None, ge=1, description="devices per round; null = all in coverage")
    compression: CompressionConfig | None = Field(
        None, description="codec of what carries training data — split activations up and gradients down, "
                          "federated model uploads — e.g. {keep: 0.1, bits: 8, lossless: zstd}; null = float32 "
                          "(schemes that take it: see `compresses`)")

    #: whether the scheme sends its training traffic through `compression` (refused where not)
    compresses: ClassVar[bool] = False
    #: the controllers (cosim.control) whose decisions the scheme takes: every scheme runs with
    #: fixed settings or equal band shares; a scheme that publishes its costs and reads cuts and
    #: codecs at its round boundaries (sft) adds its own
    controllers: ClassVar[tuple[str, ...]] = ("fixed", "equal")
    #: whether a round needs a device in coverage (a round nobody could join waits for one:
    #: Simulation.rounds); false for a scheme without transfers (local_lora)
    needs_coverage: ClassVar[bool] = True
    #: The model tasks (`model.task`) the scheme can train; a scheme narrows it where its method
    #: only makes sense for one (checked before the run, with the reason in `task_note`).
    tasks: ClassVar[tuple[str, ...]] = ("classification", "causal_lm")
    task_note: ClassVar[str] = ""

    def device_blocks(self, depth: int) -> tuple[int, int]:
        """Blocks [start, end) a device holds and trains (memory check before the run)."""
        return 0, depth

    def problems(self, depth: int, source: str, device_profiles: Collection[str]) -> list[str]:
        """What is wrong with this block given the model and the devices, one line each
        ("scheme.<field>: <what was given>; allowed: <what>"); empty when nothing is.

        `depth` is the number of blocks of the model `source` (model.source); `device_profiles`
        the profile names of the scenario's device groups. A scheme whose knobs depend on them
        extends this; the scenario calls it once, before the run.
        """
        if self.compression is not None and not self.compresses:
            return [f"scheme.compression: {self.name} sends its own messages its own way (given "
                    f"{self.compression.model_dump(exclude_defaults=True)}); allowed: null — schemes that take a "
                    "codec: the federated family (fedavg, fedlora, sequential_fl, cyclicfl, dfl, mavfl, whale_fl), "
                    "split, splitfed, splitlora, splitfrozen, hetero_sfl, three_tier, split_kd, ringada, sft"]
        return []

    #: whether the scheme runs a part of the model on a cloud node (the scenario must list one)
    needs_cloud: ClassVar[bool] = False

    def topology_problems(self, depth: int, devices: int, clouds: int) -> list[str]:
        """What the scheme needs of the scenario's nodes that it lacks, one line each: a cloud node,
        enough blocks for its devices. Checked with the scenario, so a scheme never refuses once
        the clock runs; `devices` is the device count, `clouds` the cloud nodes'."""
        if self.needs_cloud and clouds == 0:
            return [f"cloud: {self.name} runs the top of the model on a cloud node (given none); allowed: at least "
                    "one cloud: entry, e.g. [{profile: cloud-h100}]"]
        return []

    def max_tokens(self) -> int | None:
        """Tokens a sample may hold in the scheme's own models (a student, a side network); None:
        it has none beyond model.source. The scenario holds model.max_length to it."""
        return None

    def twin_problems(self) -> list[str]:
        """Why this block cannot run in twin mode (runtime.mode: twin, cosim.learn.twin), one line
        per field whose decisions read learned values or the coded size of real values; empty when
        nothing does. A scheme whose own decisions read them extends this."""
        out = []
        if self.compression is not None and self.compression.lossless != "none":
            out.append(f"scheme.compression.lossless: a {self.compression.lossless} coder's output size depends on "
                       f"the values sent, which a twin does not compute (given {self.compression.lossless!r}); "
                       "allowed in runtime.mode twin: none (top-k and quantization sizes follow from shapes)")
        if getattr(self, "order", None) == "grab" and self.name in ORDERED_BY_POLICY:
            out.append(f"scheme.order: 'grab' orders {self.name}'s clients by herding their update directions, "
                       "learned values a twin does not compute (given 'grab'); allowed in runtime.mode twin: "
                       "random_reshuffle, fixed")
        return out

    def codec(self, sim, stream: str = "compression"):
        """The codec of this scheme's training traffic (None: the run's plain codec), drawing its
        stochastic rounding from stream `stream`."""
        if self.compression is None:
            return None
        from ..learn.compress import make_codec

        return make_codec(self.compression, sim.rng(stream))

    @staticmethod
    def cut_problems(field: str, cut: int, depth: int, source: str) -> list[str]:
        """A cut after block `cut` leaves the device blocks [0, cut): it must hold at least one
        block and no more than the model has."""
        if 1 <= cut <= depth:
            return []
        where = "beyond the model's depth" if cut > depth else "before the first block"
        return [f"scheme.{field}: {where} (given {cut}); allowed: 1 to {depth} for {source!r} ({depth} blocks)"]


class ServerCopies(SchemeConfig):
    """The server side of SplitFed v1 and SplitLoRA: one server-side part per client, trained in
    parallel and averaged at the round's end. What a copy holds is a modelling choice the papers
    compared against make differently, so it is a switch:

    - `full` (default, SplitFed's definition, Thapa et al. AAAI 2022, Algorithm 1: the server
      "creates" a server-side model per client): every copy is the whole server-side part — frozen
      weights and adapters — plus its gradients and optimizer state.
    - `adapters`: the copies share the server's one set of frozen weights and each holds only its
      trainable tensors (LoRA adapters, the head) with their training state: what a server that
      batches LoRA clients over one base model (SplitLoRA as implemented by many) keeps.

    With `lora: null` every weight trains, so both hold the same bytes."""

    server_copies: Literal["full", "adapters"] = Field(
        "full", description="what each per-client server-side copy holds (v1): full = the whole server-side "
                            "part (SplitFed's definition), adapters = its trainable tensors over shared frozen weights")


class LoraRequired(SchemeConfig):
    """A scheme that trains LoRA adapters only: `lora: null` (full fine-tuning) is refused."""

    @field_validator("lora")
    @classmethod
    def _lora_set(cls, v, info: ValidationInfo):
        if v is None:
            name = info.data.get("name", "this scheme")
            raise ValueError(f"{name} trains LoRA adapters only and needs a lora block; allowed: a mapping such "
                             "as {r: 8, alpha: 16} (for full fine-tuning use fedavg or splitfed with lora: null)")
        return v


class SplitConfig(SchemeConfig):
    """The knobs of the split family (split, splitfed, splitlora, splitfrozen): one cut, a device order."""

    compresses: ClassVar[bool] = True

    name: str = "split"
    cut_layer: int = Field(2, ge=1, description="device holds embedding + blocks [0, cut_layer)")
    order: OrderPolicy = Field("random_reshuffle", description="device order per round (cosim.learn.ordering): "
                               "random_reshuffle | fixed | grab")

    def device_blocks(self, depth: int) -> tuple[int, int]:
        return 0, self.cut_layer

    def problems(self, depth, source, device_profiles) -> list[str]:
        return (super().problems(depth, source, device_profiles)
                + self.cut_problems("cut_layer", self.cut_layer, depth, source))


@dataclass(frozen=True)
class SchemeEntry:
    name: str
    run: Callable
    config: type[SchemeConfig]
    summary: str


SCHEMES: dict[str, SchemeEntry] = {}


def scheme(name: str, *, config: type[SchemeConfig], summary: str):
    """Register a scheme under `name`."""

    def register(fn: Callable) -> Callable:
        SCHEMES[name] = SchemeEntry(name, fn, config, summary)
        return fn

    return register
