"""The typed scenario: YAML in, a validated pydantic model out, with dotted overrides.

Everything is checked before a run starts. Each problem is reported as one line naming the field's
path, the value given and what is allowed; `ScenarioError` carries them all at once.

A block's config sits beside the code that consumes it (mobility in `world/mobility/`, the radio
in `world/network.py` and `world/thz_link.py`, LoRA in `learn/adapters.py`, each scheme's in its
module); this module composes them and checks what needs several blocks at once.
"""
from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from channels import tr38901

from .config import AttentionShape, ScenarioError, Strict, Vec3, at_most, given, is_file
from .learn import twin
from .learn.data import DATASETS
from .learn.models import (BUILTIN_SOURCES, TINY_MAX_HEADS, TINY_MAX_HIDDEN, TINY_MAX_INTERMEDIATE, TINY_MAX_LAYERS,
                           ModelSourceError, TinySize, model_arch, model_depth, model_positions)
from .control import ControlConfig, decides_shares
from .schemes import SCHEMES
from .schemes.base import SchemeConfig
from .world.failures import FailuresConfig
from .world.mobility import MOBILITY_CONFIGS, StaticMobility
from .world.network import NetworkConfig
from .world.profiles import PROFILES, DeviceProfile

__all__ = ["Scenario", "ScenarioError", "apply_overrides", "load", "parse_override", "read_raw", "safe_yaml",
           "validate"]

#: Devices in one scenario at most: ten times the largest scale benchmark (10,000 devices, README
#: "how fast"); 10^6 devices took minutes and gigabytes of host memory before failing.
MAX_DEVICES = 100_000
#: Seeds are non-negative and fit 64 bits (numpy's SeedSequence and torch.manual_seed take them).
MAX_SEED = 2**63 - 1


def _not_dots(v: str) -> str:
    """A name becomes a folder under outputs.dir: '.' or '..' would write beside or above it."""
    if set(v) == {"."}:
        raise ValueError("a name of dots only would write outside outputs.dir; allowed: letters, digits, _ . - "
                         "with at least one that is not a dot")
    return v


class TinyModelConfig(AttentionShape):
    layers: int = Field(4, ge=1, le=TINY_MAX_LAYERS, description="transformer blocks of a tiny-* model")
    hidden: int = Field(64, ge=8, le=TINY_MAX_HIDDEN, description="hidden size of a tiny-* model")
    heads: int = Field(2, ge=1, le=TINY_MAX_HEADS, description="attention heads; must divide hidden")
    intermediate: int = Field(128, ge=8, le=TINY_MAX_INTERMEDIATE, description="inner size of each block's "
                                                                               "feed-forward layer")


class ModelConfig(Strict):
    source: str = Field("minilm", description=f"{', '.join(BUILTIN_SOURCES)}, or a local Hugging Face folder")
    task: Literal["classification", "causal_lm"] = Field(
        "classification", description="label each sample (a head on the pooled sequence), or predict every next "
                                      "token with the model's own LM head (decoders: smollm2-135m, tiny-gpt2, tiny-llama)")
    max_length: int = Field(64, ge=4, le=512, description="tokens per sample at most (longer ones are truncated)")
    padding: Literal["bucket", "max_length"] = Field(
        "bucket", description="bucket: a batch pads to its longest row rounded up to pad_multiple (the tokens a "
                              "device really processes); max_length: every batch pads to max_length")
    pad_multiple: int = Field(8, ge=1, le=512, description="bucket padding rounds a batch's length up to this")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="size of tiny-* models")

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v in BUILTIN_SOURCES or is_file(Path(v) / "config.json"):
            return v
        raise ValueError(f"unknown model source; allowed: {', '.join(BUILTIN_SOURCES)}, "
                         "or a folder with a Hugging Face config.json")


class PartitionConfig(Strict):
    kind: Literal["iid", "dirichlet", "shards", "domain"] = Field(
        "iid", description="iid: shuffled and split evenly; dirichlet: label skew by `alpha`; shards: "
                           "`classes_per_client` classes each; domain: each client one source's rows")
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration")
    classes_per_client: int = Field(1, ge=1, description="shards: classes each client holds")
    samples_per_client: int | None = Field(None, ge=1, description="keep at most this many (randomly chosen) rows "
                                                                   "per client; null = all of its share")


class DataConfig(Strict):
    dataset: str = Field("movie_reviews", description="one of the shipped datasets (cosim.learn.data.DATASETS)")
    partition: PartitionConfig = Field(default_factory=PartitionConfig, description="how the training rows are split "
                                                                                    "among the devices")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of the rows held out from training; at most "
                                                              "`test_samples` of them are evaluated")
    test_samples: int = Field(500, ge=10, description="held-out rows evaluated after each round")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(f"unknown dataset; allowed: {', '.join(DATASETS)}")
        return v


#: A device's or server's `mobility:` block; each kind's config sits beside its model in world/mobility/.
Mobility = Annotated[Union[MOBILITY_CONFIGS], Field(discriminator="kind")]


class LevelChain(Strict):
    """A Markov chain over levels (cosim.world.conditions): `transition` matrix or `stay` probability."""
    levels: list[Annotated[float, Field(gt=0, le=1)]] = Field(min_length=1, description="shares in (0, 1]")
    transition: list[list[float]] | None = Field(None, description="row-stochastic matrix, one row per level")
    stay: float = Field(0.9, ge=0, le=1, description="used when transition is null: keep the level with "
                        "this probability per step, else move uniformly to another")

    @model_validator(mode="after")
    def _square(self):
        if self.transition is not None:
            import numpy as np
            p = np.asarray(self.transition, dtype=float)
            n = len(self.levels)
            if p.shape != (n, n) or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0):
                raise ValueError(f"transition: needs a {n}x{n} row-stochastic matrix (rows sum to 1)")
        return self


class AvailabilityChain(Strict):
    p_leave: float = Field(ge=0, le=1, description="probability per step that an available device goes away")
    p_return: float = Field(gt=0, le=1, description="probability per step that an absent device comes back")


class StaticConditions(Strict):
    kind: Literal["static"]


class MarkovConditions(Strict):
    kind: Literal["markov"]
    step_s: float = Field(10.0, gt=0, description="holding time of one chain step")
    compute: LevelChain | None = Field(None, description="compute share (background load); null = 1")
    radio: LevelChain | None = Field(None, description="factor on the radio rate; null = 1")
    availability: AvailabilityChain | None = Field(None, description="on/off chain; null = always there")


class TraceConditions(Strict):
    kind: Literal["trace"]
    file: str = Field(description="CSV t,device,compute_share,bandwidth_share[,available]")

    @field_validator("file")
    @classmethod
    def _readable(cls, v):
        from .world.conditions import load_conditions_trace
        load_conditions_trace(v)
        return v


Conditions = Annotated[Union[StaticConditions, MarkovConditions, TraceConditions], Field(discriminator="kind")]


class DeviceGroup(Strict):
    count: Annotated[int, at_most(MAX_DEVICES, "ten times the largest scale benchmark")] = Field(
        1, ge=1, description="devices in this group")
    profile: str = Field(description="a built-in compute profile or one defined under `profiles:`")
    name: str = Field("dev", description="name prefix; devices are numbered across groups")
    mobility: Mobility = Field(default_factory=StaticMobility, description="how the group's devices move (`kind`); "
                                                                           "default: static, drawn around the first "
                                                                           "access point")
    conditions: Conditions | None = Field(None, description="dynamic compute/radio/availability; null = static")


class ServerConfig(Strict):
    profile: str = Field(description="a built-in compute profile or one defined under `profiles:`")
    name: str | None = Field(None, description="node name; null = `edge<i>` or `cloud<i>` by position in its list")
    position_m: Vec3 = Field([0.0, 0.0, 25.0], description="x, y, z in metres (z: antenna height of an access point)")
    mobility: Mobility | None = Field(None, description="a moving server (e.g. kind: uav); null = at position_m")
    link: Literal["3gpp", "thz-isac"] | None = Field(None, description="this AP's link model; null = network.link")


class StopConfig(Strict):
    sim_time_s: float | None = Field(None, gt=0, description="stop at this simulated time, mid-round (the round in "
                                                             "progress is not written)")
    target_accuracy: float | None = Field(None, gt=0, le=1, description="stop after the first round whose held-out "
                                                                        "accuracy reaches this")


PlotName = Literal["delay_accuracy", "timeline", "memory", "energy", "tracks", "decisions", "epoch_delay"]


class OutputsConfig(Strict):
    dir: str = Field("results", description="run folders are written to `<dir>/<name>/<run-id>/`")
    plots: list[PlotName] = Field(["delay_accuracy", "timeline", "memory", "energy", "tracks", "decisions"],
                                  description="figures drawn into the run folder at the end")
    progress: bool = Field(True, description="a progress bar while the run goes")
    eval_round0: bool = Field(True, description="evaluate the initial model as round 0 (the curve's start); "
                                                "false skips that evaluation (round 0's accuracy is empty)")
    report: bool = Field(True, description="write report.html at the end of the run (cosim.report): one "
                         "self-contained page with the summary, the tables, the scenario and the figures drawn")
    tensorboard: bool = Field(False, description="write TensorBoard scalars per round (accuracy, loss, perplexity, "
                              "bytes, energy, memory) against simulated time into tensorboard/ in the run folder; "
                              "needs the tensorboard package (pip install 'cosim[report]')")


class RuntimeConfig(Strict):
    """How the host runs the real compute; never changes a table (cosim.learn.workers) — except
    `compute_model`, which says how a step's simulated duration follows from its counted cost."""
    compute_model: Literal["flops", "roofline"] = Field(
        "roofline", description="a step's simulated duration: flops = FLOPs / effective FLOP/s; roofline = the "
                                "larger of that and bytes moved / effective memory bandwidth (Node.step_duration_s)")
    torch_threads: int = Field(1, ge=1, description="torch.set_num_threads for this run's process")
    max_wall_s: float | None = Field(None, gt=0, description="stop the run (stop_reason says so) once this much "
                                     "host time has passed since the simulated clock started (after the build), "
                                     "between two events; host time only ever stops a run, it never times one. "
                                     "null = no limit")
    workers: int | Literal["auto"] = Field(
        1, description="processes (or Ray actors) that run compute independent in event time ahead of the clock: "
                       "1 = everything in this process; auto = the usable cores")
    backend: Literal["process", "ray"] = Field("process", description="where the workers run: forked processes "
                                               "on this machine, or Ray actors (a local Ray, or runtime.address)")
    address: str | None = Field(None, description="a running Ray cluster's address (backend ray); none: a local Ray")
    batch_clients: bool = Field(False, description="a FedAvg-style round's clients (adapters over the shared frozen "
                                "backbone) take each local step as one batched step (cosim.learn.batched): results "
                                "equal one at a time within float tolerance, times identical; pays off on a GPU")
    host_cache_mb: int = Field(256, ge=0, description="memory budget of the host's memo of frozen forwards (the "
                               "same tokens through the same frozen layers, e.g. each round's evaluation of a side "
                               "network); 0 = off. Host time only: the simulated devices are charged every time")
    checkpoint_every_s: float | None = Field(None, ge=0, description="wall seconds between two checkpoints of "
                                             "a resumable scheme (cosim.checkpoint), taken at round ends; "
                                             "null or 0 = at every round end")
    device: str = Field("cpu", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$",
                        description="where the model and steps run: cpu, cuda, cuda:N, or auto (cuda when torch sees "
                                    "one). FLOPs, bytes and so every simulated time are the same on each; accuracy "
                                    "agrees within float tolerance (cpu is the default: byte-identical tables)")
    mode: Literal["real", "twin"] = Field(
        "real", description="real: every step runs in torch; twin: the same world without training — a step "
                            "replays the cached cost (and result) of its signature, measured once by a real step; a "
                            "transfer moves the bytes the real payload would; nothing is scored (accuracy and loss "
                            "NaN). Delays equal a real run's for schemes whose decisions read no learned values "
                            "(cosim.learn.twin)")
    twin_cache: bool = Field(True, description="twin mode: keep measured step costs across runs (a JSON file per "
                             "model, data set, scheme, library versions and cosim source, in $COSIM_TWIN_CACHE_DIR or "
                             "~/.cache/cosim/twin), so a later twin of the same setup runs no step at all; false: "
                             "measure each signature once per run")
    verify: bool = Field(False, description="check the run-time invariants as the run goes (cosim.world.invariants): "
                         "time, transfer bytes, one job per node, buffers, energy, memory; a violation stops the run "
                         "naming the invariant and the event (also `cosim run --verify`, or COSIM_VERIFY=1)")

    @field_validator("workers")
    @classmethod
    def _positive(cls, v):
        if v != "auto" and v < 1:
            raise ValueError("must be >= 1 or 'auto'")
        return v

    @model_validator(mode="after")
    def _no_forked_gpu_workers(self):
        if self.device.startswith("cuda") and self.backend == "process" and self.workers not in (1, "auto"):
            raise ValueError(f"workers: {self.workers} forked processes cannot share device {self.device!r} (CUDA "
                             "does not survive a fork); allowed: workers 1 or auto (one process drives the GPU), "
                             "or backend ray")
        return self


class CompareEntry(Strict):
    """One run of `cosim compare`: its `scheme` keys go over the base `scheme:` block (cosim.compare).

    A bare scheme name stands for {label: name, scheme: {name: name}}, so one list holds both forms
    and the same scheme can appear twice under different labels and settings.
    """
    label: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="row in the table, line in the plot")
    scheme: dict[str, Any] = Field(description="`name` plus that scheme's keys, laid over the base scheme block")
    control: dict[str, Any] | None = Field(None, description="keys laid over the base control block for this entry "
                                           "(e.g. {controller: equal} for a baseline)")

    _label_not_dots = field_validator("label")(_not_dots)

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, v):
        return {"label": v, "scheme": {"name": v}} if isinstance(v, str) else v

    @field_validator("scheme")
    @classmethod
    def _named(cls, v: dict) -> dict:
        if not isinstance(v.get("name"), str):
            raise ValueError(f"needs a scheme name (name: ...); allowed: {', '.join(SCHEMES)}")
        return v


class SweepConfig(Strict):
    """What `cosim sweep` runs: one ordinary run per point of the cartesian product of `grid`
    (cosim.sweep). Keys are dotted scenario paths; each point is validated before any run."""
    grid: dict[str, list[Any]] = Field({}, description="dotted scenario path -> values, e.g. "
                                       "{network.medium.bandwidth_hz: [5e6, 20e6], seed: [1, 2, 3]}")
    budget_s: float | None = Field(None, gt=0, description="also score every point at this simulated time: the "
                                   "held-out quality of its last round closed by then, what `stop.sim_time_s` "
                                   "would have reported (columns perplexity_at_budget, accuracy_at_budget)")

    @field_validator("grid")
    @classmethod
    def _values_given(cls, v: dict) -> dict:
        empty = [key for key, values in v.items() if not values]
        if empty:
            raise ValueError(f"needs at least one value per key (none given for {', '.join(empty)})")
        return v


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the run folder under outputs.dir")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds every named random stream of the run "
                                                        "(`sim.rng(name)`: channels, mobility, selection, data "
                                                        "partition, model initialisation); same seed and scenario, "
                                                        "same tables")
    model: ModelConfig = Field(default_factory=ModelConfig, description="the model to fine-tune and its task")
    data: DataConfig = Field(default_factory=DataConfig, description="the dataset, its partition among the devices "
                                                                     "and the held-out split")
    scheme: SerializeAsAny[SchemeConfig] = Field(description="the training scheme (`name`, see `cosim schemes`) and "
                                                             "its knobs; each scheme's own fields are on its page "
                                                             "under Schemes")
    devices: list[DeviceGroup] = Field(min_length=1, description="groups of devices, at least one; each device is a "
                                                                 "node with its group's profile, mobility and "
                                                                 "conditions")
    edge: list[ServerConfig] = Field(min_length=1, description="edge servers, at least one; each is an access point "
                                                               "of the radio network (named `name`, or `edge<i>`)")
    cloud: list[ServerConfig] = Field([], description="cloud servers (named `name`, or `cloud<i>`), static at "
                                                      "`position_m`, reached from the edge over the wired backhaul "
                                                      "(`network.backhaul`)")
    profiles: dict[str, DeviceProfile] = Field({}, description="compute profiles by name, used beside the built-in "
                                                               "ones (a name given here replaces the built-in profile "
                                                               "of that name)")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="the radio of every "
                                                                              "device–access-point link, the shared "
                                                                              "media, the outage policy and the "
                                                                              "backhaul")
    control: ControlConfig = Field(default_factory=ControlConfig, description="who decides cuts, compression and "
                                   "band shares while the run goes on (cosim.control); default: nobody (fixed)")
    stop: StopConfig = Field(default_factory=StopConfig, description="limits that end a run before `scheme.rounds`: "
                                                                     "simulated time, target accuracy")
    failures: FailuresConfig = Field(default_factory=FailuresConfig, description="out-of-memory policy and servers "
                                     "that fail and recover (cosim.world.failures); default: drop, none fail")
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="where the run folder goes and what is "
                                                                              "drawn in it")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="how the host runs the real compute; "
                                                                              "never changes a table")
    compare: list[CompareEntry] = Field([], description="what `cosim compare` runs: scheme names or "
                                        "{label, scheme: {name, ...}}; `cosim run` ignores it")
    sweep: SweepConfig = Field(default_factory=SweepConfig, description="what `cosim sweep` runs: a grid of "
                               "dotted keys and values; `cosim run` ignores it")

    _name_not_dots = field_validator("name")(_not_dots)

    def profile(self, name: str) -> DeviceProfile:
        return self.profiles.get(name) or PROFILES[name]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --- loading -------------------------------------------------------------------------------------

#: A scenario file is a few kilobytes; a larger one is refused before it is read.
MAX_SCENARIO_BYTES = 10 * 2**20
#: Levels of nesting a scenario may have (the shipped ones use at most 6): deeper input is refused
#: before anything walks it recursively.
MAX_NESTING = 32
#: Nodes YAML aliases may add beyond those written: `*a` is a reference, but each use is validated
#: again, so nested aliases ("billion laughs") grow exponentially; a scenario needs a handful.
ALIAS_EXPANSION_BUDGET = 10_000


class _ScenarioLoader(yaml.SafeLoader):
    """yaml.SafeLoader (no Python objects) that refuses duplicate keys and alias bombs."""

    def construct_document(self, node):
        _check_alias_expansion(node)
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                if key in first_line:   # PyYAML keeps the last silently; a typo'd copy would win unseen
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {given(key)} (first at line {first_line[key]}); allowed: "
                        "each key once per mapping", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _check_alias_expansion(root) -> None:
    """Refuse a node graph whose aliases expand beyond ALIAS_EXPANSION_BUDGET (or refer to themselves)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    ceiling = MAX_SCENARIO_BYTES + ALIAS_EXPANSION_BUDGET   # no honest file expands beyond this
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            on_path.discard(id(node))
            if sizes[id(node)] > ceiling:
                break
            continue
        if id(node) in sizes:
            continue
        if id(node) in on_path:
            raise yaml.composer.ComposerError(None, None, "an alias refers to a node that contains it; allowed: "
                                              "aliases of finished nodes", node.start_mark)
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    added = max(sizes.values(), default=0) - len(sizes)
    if added > ALIAS_EXPANSION_BUDGET:
        raise yaml.composer.ComposerError(
            None, None, f"aliases expand the document by more than {ALIAS_EXPANSION_BUDGET:,} nodes (an alias bomb); "
            f"allowed: aliases adding at most {ALIAS_EXPANSION_BUDGET:,} nodes", root.start_mark)


def safe_yaml(text: str, where: str) -> Any:
    """Parse YAML safely (plain data only, no duplicate keys, bounded aliases); a problem is one
    ScenarioError line `<where>: not valid YAML at line L, column C: <what>`."""
    try:
        loader = _ScenarioLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(filter(None, [err.problem, f"({err.context})" if err.context else None]))
        raise ScenarioError([f"{where}: not valid YAML{at}: {' '.join(what.split())}"]) from None
    except (yaml.YAMLError, ValueError, OverflowError) as err:   # a reader error, an int of 10^5 digits
        raise ScenarioError([f"{where}: not valid YAML: {' '.join(str(err).split())}"]) from None
    except RecursionError:
        raise ScenarioError([f"{where}: not valid YAML: nested too deeply; allowed: at most {MAX_NESTING} "
                             "levels"]) from None


def _shape_problems(raw) -> list[str]:
    """Input nested deeper than MAX_NESTING (or containing itself), and NaN or infinite numbers
    anywhere (no scenario setting means 'infinite': a limit left out is none), found without recursion."""
    stack, problems = [(raw, ())], []
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_NESTING:
            return [f"{_loc(path[:3])}…: nested deeper than {MAX_NESTING} levels; allowed: at most {MAX_NESTING}"]
        if isinstance(node, float) and not math.isfinite(node):
            problems.append(f"{_loc(path)}: not a finite number (given {node}); allowed: a finite number (a limit "
                            "is left out or null for none)")
        elif isinstance(node, dict):
            stack.extend((v, path + (k,)) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, path + (i,)) for i, v in enumerate(node))
    return problems


def apply_overrides(raw: dict, overrides: dict[str, Any] | None) -> dict:
    """Set dotted paths (`network.medium.bandwidth_hz`, `devices.0.count`) in a copy of `raw`."""
    raw = copy.deepcopy(raw)
    for path, value in (overrides or {}).items():
        keys = path.split(".") if isinstance(path, str) else []
        if not keys or "" in keys:
            raise ScenarioError([f"{given(path)}: override key is not a dotted path; allowed: e.g. scheme.rounds "
                                 "or devices.0.count"])
        node = raw
        for i, key in enumerate(keys[:-1]):
            node = _child(node, key, keys[: i + 1], keys[i + 1])
        last = keys[-1]
        if isinstance(node, list):
            node[_index(node, last, path)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ScenarioError([_not_a_block(path, keys[:-1], node)])
    return raw


def _child(node, key: str, walked: list[str], next_key: str):
    if isinstance(node, list):
        i = _index(node, key, ".".join(walked))
        if walked[:-1] == ["compare"] and isinstance(node[i], str):   # a bare name is {label, scheme: {name}}
            node[i] = {"label": node[i], "scheme": {"name": node[i]}}
        return node[i]
    if not isinstance(node, dict):
        raise ScenarioError([_not_a_block(".".join(walked), walked[:-1], node)])
    if not isinstance(node.get(key), (dict, list)):
        node[key] = [] if next_key.isdigit() else {}
    return node[key]


def _not_a_block(path: str, parent: list[str], node) -> str:
    return (f"{path}: override goes inside {'.'.join(parent) or '(scenario)'}, which is a value, not a block "
            f"(given {given(node)}); allowed: a path through mappings and lists")


def _index(node: list, key: str, path: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ScenarioError([f"{path}: override index {given(key)} is not in this list of {len(node)} entries"])
    return int(key)


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` from the command line; the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ScenarioError([f"--set {given(text)}: expected key.path=value"])
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or "" in key.split("."):
        raise ScenarioError([f"--set {given(text)}: expected key.path=value with a dotted key such as scheme.rounds"])
    return key, safe_yaml(value, f"--set {key}")


def _loc(loc) -> str:
    return ".".join(str(p) for p in loc) or "(scenario)"


def _problems(err: ValidationError, prefix: tuple = (), raw: Any = None) -> list[str]:
    """One line per pydantic error; with `raw` (what was validated), paths are the user's (no union tags)."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"]) if raw is None else _user_loc(tuple(e["loc"]), raw, e["type"])
        path = _loc(prefix + loc)
        if e["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key (given {given(e['input'])}); allowed keys: "
                         f"{_allowed_keys(prefix + tuple(e['loc'][:-1]))}")
        elif e["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg} (given {given(e['input'])})")
    return lines


def _user_loc(loc: tuple, raw: Any, kind: str) -> tuple:
    """`loc` as the user wrote it: pydantic adds the tag of the union member it tried
    (`devices.1.mobility.road.speed_mps`, `runtime.workers.int`); keep only the parts found in
    `raw`, and a missing or unknown key at the end."""
    kept, node = [], raw
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            kept.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            kept.append(part)
            node = node[part]
        elif i == len(loc) - 1 and kind in ("missing", "extra_forbidden"):
            kept.append(part)
    return tuple(kept)


def _allowed_keys(loc) -> str:
    """The field names of the model at `loc`, for the 'unknown key' message."""
    cls: Any = Scenario
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        if part == "scheme" and cls is Scenario:
            cls = None
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        cls = _model_in(field.annotation) if field else None
    return ", ".join(cls.model_fields) if cls is not None else "see the documentation"


def _model_in(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    meta = getattr(annotation, "__origin__", None)
    return _model_in(meta) if meta not in (None, list, dict, Union) and isinstance(meta, type) else None


def _validate_scheme(raw) -> tuple[SchemeConfig | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"scheme: expected a mapping with a name (given {given(raw)}); allowed names: "
                      f"{', '.join(SCHEMES)}"]
    name = raw.get("name")
    if not isinstance(name, str) or name not in SCHEMES:
        return None, [f"scheme.name: unknown scheme (given {given(name)}); allowed: {', '.join(SCHEMES)}"]
    try:
        return SCHEMES[name].config.model_validate(raw), []
    except ValidationError as err:
        allowed = ", ".join(SCHEMES[name].config.model_fields)
        return None, [p.replace("see the documentation", allowed) for p in _problems(err, ("scheme",), raw)]


def _semantic_problems(sc: Scenario) -> list[str]:
    """Checks that need several fields at once: profile names, the scheme against the model and the
    devices (`SchemeConfig.problems`), device heights against the path-loss model."""
    problems = []
    known = sorted({*PROFILES, *sc.profiles})
    groups = [("devices", sc.devices), ("edge", sc.edge), ("cloud", sc.cloud)]
    for section, items in groups:
        for i, item in enumerate(items):
            if item.profile not in PROFILES and item.profile not in sc.profiles:
                problems.append(f"{section}.{i}.profile: unknown profile (given {given(item.profile)}); "
                                f"allowed: {', '.join(known)} or one defined under profiles:")
    devices = sum(g.count for g in sc.devices)
    if devices > MAX_DEVICES:
        problems.append(f"devices: {devices:,} devices in all, above the limit of {MAX_DEVICES:,} (ten times the "
                        f"largest scale benchmark); allowed: at most {MAX_DEVICES:,} over all groups")
    problems += _task_problems(sc)
    try:
        depth = model_depth(sc.model.source, sc.model.tiny)
    except ModelSourceError as err:
        problems.append(f"model.source: {err}")
    else:
        problems += sc.scheme.problems(depth, sc.model.source, [g.profile for g in sc.devices])
        problems += sc.scheme.topology_problems(depth, devices, len(sc.cloud))
    problems += _length_problems(sc)
    problems += _height_problems(sc)
    problems += sc.failures.problems([s.name or f"{section}{i}" for section, servers in (("edge", sc.edge),
                                      ("cloud", sc.cloud)) for i, s in enumerate(servers)])
    problems += _radio_problems(sc)
    problems += _control_problems(sc)
    if sc.runtime.mode == "twin":
        problems += twin.problems(sc)
    return list(dict.fromkeys(problems))   # a model.source problem found twice is said once


def _control_problems(sc: Scenario) -> list[str]:
    """A controller the scheme cannot take, or band shares a network would ignore."""
    controller, scheme = sc.control.controller, type(sc.scheme)
    problems = []
    if controller not in scheme.controllers:
        problems.append(f"control.controller: {sc.scheme.name} cannot take {controller!r} decisions (given "
                        f"{controller!r}); allowed for {sc.scheme.name}: {', '.join(scheme.controllers)}")
    if decides_shares(controller) and sc.network.medium.sharing != "allocated":
        problems.append(f"network.medium.sharing: controller {controller!r} decides each device's band share, which "
                        f"only an allocated medium honours (given {sc.network.medium.sharing!r}); allowed: allocated")
    problems += sc.control.problems(devices=sum(g.count for g in sc.devices))
    return problems


def _length_problems(sc: Scenario) -> list[str]:
    """model.max_length beyond the positions of the model (or of a model the scheme adds)."""
    try:
        positions = model_positions(sc.model.source, TinySize())   # tiny sizes leave positions at 128
    except ModelSourceError:
        return []   # said once, by the depth check
    limits = [(n, f"{sc.model.source!r}") for n in [positions] if n is not None]
    if sc.scheme.max_tokens() is not None:
        limits.append((sc.scheme.max_tokens(), f"{sc.scheme.name}'s own model"))
    return [f"model.max_length: longer than the {n} positions of {whose} (given {sc.model.max_length}); "
            f"allowed: 4 to {n}" for n, whose in limits if sc.model.max_length > n]


def _radio_problems(sc: Scenario) -> list[str]:
    """The carrier and the access points' heights outside the 3GPP path-loss model's validity
    (TR 38.901 Table 7.4.1-1 and its note): refused here, where the run would fail at its first link."""
    model = sc.network.channel.pathloss.model
    served = [(i, e) for i, e in enumerate(sc.edge) if (e.link or sc.network.link) == "3gpp"]
    if model == "fspl" or not served:
        return []
    scenario, problems = model.removeprefix("3gpp-"), []
    lo, hi = tr38901.FREQUENCY_RANGE_HZ[scenario]
    if not lo <= sc.network.frequency_hz <= hi:
        problems.append(f"network.frequency_hz: outside {model}'s carrier range (given {sc.network.frequency_hz:g} "
                        f"Hz); allowed: {lo / 1e9:g} to {hi / 1e9:g} GHz (TR 38.901 Table 7.4.1-1), or "
                        "network.channel.pathloss.model: fspl")
    h_lo, h_hi = tr38901.H_BS_RANGE_M[scenario]
    for i, edge in served:
        heights = ([("position_m", float(edge.position_m[2]))] if edge.mobility is None
                   else [(f"mobility.{f}", h) for f, h in edge.mobility.ut_heights_m()])
        problems += [f"edge.{i}.{field}: access point height outside {model}'s range (given {h:g} m); allowed: "
                     f"{h_lo:g} to {h_hi:g} m (TR 38.901 Table 7.4.1-1), or another network.channel.pathloss.model"
                     for field, h in heights if not h_lo <= h <= h_hi]
    return problems


def _height_problems(sc: Scenario) -> list[str]:
    """Device antenna heights outside the range of the 3GPP path-loss model a device may use
    (TR 38.901 Table 7.4.1-1), refused here rather than failing mid-run."""
    pathloss = sc.network.channel.pathloss
    valid = pathloss.ut_height_range_m()
    uses_3gpp = any((e.link or sc.network.link) == "3gpp" for e in sc.edge)
    if valid is None or not uses_3gpp:
        return []
    lo, hi = valid
    return [f"devices.{i}.mobility.{field}: antenna height outside {pathloss.model}'s range (given {h:g} m); "
            f"allowed: {lo:g} to {hi:g} m (TR 38.901 Table 7.4.1-1), or another network.channel.pathloss.model"
            for i, group in enumerate(sc.devices) for field, h in group.mobility.ut_heights_m() if not lo <= h <= hi]


def _task_problems(sc: Scenario) -> list[str]:
    """Causal LM needs a decoder, and a scheme that can train it."""
    task, problems = sc.model.task, []
    if task == "causal_lm":
        try:
            arch = model_arch(sc.model.source)
        except ModelSourceError as err:
            return [f"model.source: {err}"]
        if arch not in ("gpt2", "llama"):
            problems.append(f"model.task: causal_lm needs a decoder model (given source {sc.model.source!r}, "
                            f"a {arch} encoder); allowed: smollm2-135m, tiny-gpt2, tiny-llama or a GPT-2/Llama folder")
    cls = type(sc.scheme)
    if task not in cls.tasks:
        problems.append(f"model.task: scheme {sc.scheme.name!r} cannot train {task!r} ({cls.task_note}); "
                        f"allowed: {', '.join(cls.tasks)}")
    return problems


def validate(raw: dict) -> Scenario:
    """Validate a scenario dict; raises ScenarioError listing every problem."""
    if not isinstance(raw, dict):
        raise ScenarioError([f"(scenario): expected a mapping of fields, got {type(raw).__name__}"])
    shape = _shape_problems(raw)
    if shape:
        raise ScenarioError(shape)
    scheme_cfg, problems = _validate_scheme(raw.get("scheme"))
    rest = {k: v for k, v in raw.items() if k != "scheme"}
    try:
        sc = Scenario.model_validate({**rest, "scheme": scheme_cfg or SchemeConfig(name="?")})
    except ValidationError as err:
        raise ScenarioError(problems + _problems(err, (), rest)) from None
    if problems:
        raise ScenarioError(problems)
    problems = _semantic_problems(sc)
    if problems:
        raise ScenarioError(problems)
    return sc


def read_raw(path_or_scenario) -> Any:
    """The scenario as a plain (unvalidated) structure: from a YAML file, a dict (copied) or a Scenario."""
    if isinstance(path_or_scenario, Scenario):
        return path_or_scenario.model_dump(mode="json")
    if isinstance(path_or_scenario, dict):
        shape = _shape_problems(path_or_scenario)   # before deepcopy walks it recursively
        if shape:
            raise ScenarioError(shape)
        return copy.deepcopy(path_or_scenario)
    if not isinstance(path_or_scenario, (str, os.PathLike)):
        raise ScenarioError([f"(scenario): expected a YAML file's path, a mapping or a Scenario (given "
                             f"{type(path_or_scenario).__name__})"])
    path = Path(path_or_scenario)
    shown = given(str(path))
    try:
        if not path.is_file():
            raise ScenarioError([f"(file): no scenario file at {shown}"])
        size = path.stat().st_size
        if size > MAX_SCENARIO_BYTES:
            raise ScenarioError([f"(file): {shown} holds {size:,} bytes; allowed: a scenario of at most "
                                 f"{MAX_SCENARIO_BYTES:,} bytes (traces and data go in files of their own)"])
        data = path.read_bytes()
    except (OSError, ValueError) as err:   # a name too long, a NUL byte, no permission
        raise ScenarioError([f"(file): cannot read a scenario at {shown}: "
                             f"{getattr(err, 'strerror', None) or err}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ScenarioError([f"(file): {shown} is not UTF-8 text (byte {data[err.start]:#04x} at line {line}, "
                             f"offset {err.start}); allowed: a UTF-8 YAML file"]) from None
    return safe_yaml(text, f"(file): {shown}")


def load(path_or_scenario, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a scenario YAML (or take a Scenario / dict), apply dotted overrides, validate."""
    raw = read_raw(path_or_scenario)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, overrides)
    return validate(raw)
