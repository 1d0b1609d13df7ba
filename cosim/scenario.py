"""The typed scenario: YAML in, a validated pydantic model out, with dotted overrides.

Everything is checked before a run starts. Each problem is reported as one line naming the field's
path, the value given and what is allowed; `ScenarioError` carries them all at once.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from .learn.data import DATASETS
from .learn.models import BUILTIN_SOURCES, ModelSourceError, model_arch, model_depth
from .schemes import SCHEMES
from .schemes.base import SchemeConfig
from .world.profiles import PROFILES, DeviceProfile


class ScenarioError(ValueError):
    """One or more problems with a scenario; `problems` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Vec3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Vec2 = Annotated[list[float], Field(min_length=2, max_length=2)]


class TinyModelConfig(Strict):
    layers: int = Field(4, ge=1)
    hidden: int = Field(64, ge=8)
    heads: int = Field(2, ge=1)
    intermediate: int = Field(128, ge=8)


class ModelConfig(Strict):
    source: str = Field("minilm", description=f"{', '.join(BUILTIN_SOURCES)}, or a local Hugging Face folder")
    task: Literal["classification", "causal_lm"] = Field(
        "classification", description="label each sample (a head on the pooled sequence), or predict every next "
                                      "token with the model's own LM head (decoders: smollm2-135m, tiny-gpt2, tiny-llama)")
    max_length: int = Field(64, ge=4, le=512, description="tokens per sample (padded)")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="size of tiny-* models")

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v in BUILTIN_SOURCES or (Path(v) / "config.json").is_file():
            return v
        raise ValueError(f"unknown model source; allowed: {', '.join(BUILTIN_SOURCES)}, "
                         "or a folder with a Hugging Face config.json")


class PartitionConfig(Strict):
    kind: Literal["iid", "dirichlet", "shards", "domain"] = "iid"
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration")
    classes_per_client: int = Field(1, ge=1, description="shards: classes each client holds")
    samples_per_client: int | None = Field(None, ge=1)


class DataConfig(Strict):
    dataset: str = "movie_reviews"
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    test_fraction: float = Field(0.1, gt=0, lt=1)
    test_samples: int = Field(500, ge=10, description="held-out rows evaluated after each round")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(f"unknown dataset; allowed: {', '.join(DATASETS)}")
        return v


class StaticMobility(Strict):
    kind: Literal["static"] = "static"
    position_m: Vec3 | None = Field(None, description="fixed position; null = drawn in area_m")
    area_m: Vec2 = Field([400.0, 400.0], description="width, depth of the area (centred on the origin)")
    min_distance_m: float = Field(20.0, ge=0, description="drawn positions keep this far from the origin")
    height_m: float = Field(1.5, ge=0)


class RoadMobility(Strict):
    kind: Literal["road"]
    start_m: Vec2 = Field([-1000.0, 50.0], description="x, y where the road starts; it runs along +x")
    length_m: float = Field(2000.0, gt=0)
    speed_mps: Vec2 = Field([15.0, 25.0], description="speeds drawn uniformly in [low, high]")
    lanes: int = Field(1, ge=1)
    lane_width_m: float = Field(3.5, gt=0)
    wrap: bool = Field(False, description="loop road: re-enter at the start instead of leaving")
    height_m: float = Field(1.5, ge=0)
    arrival_rate_per_s: float | None = Field(None, gt=0, description="Poisson arrivals at the start: device k "
                                             "enters at the k-th arrival; null = all on the road at t = 0")
    speed_distribution: Literal["uniform", "truncnorm"] = Field("uniform", description="how speeds are drawn in "
                                                                "speed_mps: uniform, or a normal truncated to it")
    speed_mean_mps: float | None = Field(None, gt=0, description="truncnorm mean; null = middle of speed_mps")
    speed_std_mps: float | None = Field(None, gt=0, description="truncnorm std; null = a quarter of the range")

    @field_validator("speed_mps")
    @classmethod
    def _ordered(cls, v):
        if v[0] <= 0 or v[1] < v[0]:
            raise ValueError("needs 0 < low <= high")
        return v

    @model_validator(mode="after")
    def _arrivals_need_open_road(self):
        if self.arrival_rate_per_s is not None and self.wrap:
            raise ValueError("wrap: must be false with arrival_rate_per_s (arriving vehicles leave at the end)")
        return self


def _speed_range(v):
    if v[0] <= 0 or v[1] < v[0]:
        raise ValueError(f"speed range [{v[0]}, {v[1]}]: needs 0 < min <= max")
    return v


class AreaMobility(Strict):
    """A rectangle of `area_m` (width, depth) centred on `centre_m`, for pedestrians and robots."""
    area_m: Vec2 = Field([400.0, 400.0], description="width, depth of the area")
    centre_m: Vec2 = Field([0.0, 0.0], description="x, y of the area's centre")
    height_m: float = Field(1.5, ge=0)

    @field_validator("area_m")
    @classmethod
    def _positive_area(cls, v):
        if v[0] <= 0 or v[1] <= 0:
            raise ValueError("needs width > 0 and depth > 0")
        return v


class RandomWaypointMobility(AreaMobility):
    kind: Literal["random_waypoint"]
    speed_mps: Vec2 = Field([0.5, 1.5], description="speed drawn uniformly in [min, max] per leg (min > 0)")
    pause_s: float = Field(10.0, ge=0, description="pause at each waypoint")

    @field_validator("speed_mps")
    @classmethod
    def _ordered(cls, v):
        return _speed_range(v)


class GaussMarkovMobility(AreaMobility):
    kind: Literal["gauss_markov"]
    alpha: float = Field(0.75, ge=0, le=1, description="memory: 1 = constant velocity, 0 = random walk")
    mean_speed_mps: float = Field(1.0, ge=0)
    mean_direction_rad: float | None = Field(None, description="null = drawn uniformly per node")
    speed_std_mps: float = Field(0.5, ge=0)
    direction_std_rad: float = Field(0.5, ge=0)
    step_s: float = Field(1.0, gt=0, description="update period of speed and direction")


class UavMobility(Strict):
    kind: Literal["uav"]
    mode: Literal["hover", "circle", "waypoints"] = "circle"
    centre_m: Vec2 = Field([0.0, 0.0], description="hover point / circle centre (x, y)")
    altitude_m: float = Field(100.0, gt=0)
    radius_m: float = Field(100.0, gt=0)
    speed_mps: float = Field(10.0, ge=0)
    waypoints_m: list[Vec3] | None = Field(None, description="mode waypoints: at least 2 points (x, y, z)")
    loop: bool = Field(True, description="waypoints: fly back to the first and repeat; false = stop at the last")
    phase_rad: float | None = Field(None, description="circle: start angle; null = drawn")
    position_jitter_std_m: float = Field(0.1, ge=0, description="position wander per axis (hovering body)")
    hover_jitter_std_rad: float | None = Field(None, ge=0, description="null = channels.antenna default")
    flying_jitter_std_rad: float | None = Field(None, ge=0, description="null = channels.antenna default")

    @field_validator("waypoints_m")
    @classmethod
    def _two_points(cls, v):
        if v is not None and len(v) < 2:
            raise ValueError(f"needs at least 2 points, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _mode_needs(self):
        if self.mode == "waypoints":
            if self.waypoints_m is None:
                raise ValueError("waypoints_m: mode waypoints needs a list of at least 2 points")
            if self.speed_mps <= 0:
                raise ValueError("speed_mps: mode waypoints needs speed_mps > 0")
        return self


class TraceMobility(Strict):
    kind: Literal["trace"]
    file: str = Field(description="SUMO FCD output XML, or a CSV with columns t,id,x,y[,z]")
    vehicle_ids: list[str] | None = Field(None, description="device k replays vehicle_ids[k]; null = vehicles "
                                          "in order of first appearance")
    height_m: float | None = Field(None, ge=0, description="fixed antenna height; null = the trace's z")

    @field_validator("file")
    @classmethod
    def _readable(cls, v):
        from .world.mobility.trace import load_trace
        load_trace(v)   # TraceError (a ValueError) names what is wrong with the file
        return v


class SumoMobility(Strict):
    kind: Literal["sumo"]
    sumocfg: str = Field("scenarios/sumo/grid.sumocfg", description="a SUMO .sumocfg (network + routes)")
    step_s: float = Field(1.0, gt=0, description="SUMO step, advanced in lock-step with the simulated clock")
    vehicle_ids: list[str] | None = Field(None, description="device k drives vehicle_ids[k]; null = the k-th "
                                          "vehicle to depart")
    height_m: float | None = Field(1.5, ge=0, description="antenna height; null = SUMO's z")

    @field_validator("sumocfg")
    @classmethod
    def _valid_cfg(cls, v):
        import xml.etree.ElementTree as ET
        p = Path(v)
        if not p.is_file():
            raise ValueError(f"{v}: file not found")
        try:
            root = ET.parse(p).getroot()
        except ET.ParseError as exc:
            raise ValueError(f"{v}: not valid XML ({exc})") from exc
        files = {tag: el.get("value") for tag in ("net-file", "route-files") for el in root.iter(tag)}
        if not files.get("net-file"):
            raise ValueError(f"{v}: not a SUMO configuration (no <input><net-file>)")
        for tag, names in files.items():
            for name in (names or "").split(","):
                if name.strip() and not (p.parent / name.strip()).is_file():
                    raise ValueError(f"{v}: its {tag} {name.strip()!r} is missing")
        return v


Mobility = Annotated[Union[StaticMobility, RoadMobility, RandomWaypointMobility, GaussMarkovMobility, UavMobility,
                           TraceMobility, SumoMobility], Field(discriminator="kind")]


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
    count: int = Field(1, ge=1)
    profile: str
    name: str = Field("dev", description="name prefix; devices are numbered across groups")
    mobility: Mobility = Field(default_factory=StaticMobility)
    conditions: Conditions | None = Field(None, description="dynamic compute/radio/availability; null = static")


class ServerConfig(Strict):
    profile: str
    name: str | None = None
    position_m: Vec3 = [0.0, 0.0, 25.0]
    mobility: Mobility | None = Field(None, description="a moving server (e.g. kind: uav); null = at position_m")
    link: Literal["3gpp", "thz-isac"] | None = Field(None, description="this AP's link model; null = network.link")


class MediumConfig(Strict):
    bandwidth_hz: float = Field(20e6, gt=0, description="per direction (FDD)")
    sharing: Literal["equal", "proportional"] = "equal"


class PathlossConfig(Strict):
    model: Literal["fspl", "3gpp-uma", "3gpp-umi", "3gpp-rma"] = "3gpp-uma"
    los: Literal["auto", "los", "nlos"] = "auto"


class ChannelConfig(Strict):
    pathloss: PathlossConfig = Field(default_factory=PathlossConfig)
    shadowing: bool = True
    fading: Literal["none", "rayleigh", "rician"] = "rayleigh"
    k_factor: float = Field(10.0, ge=0, description="Rician K (linear)")
    static_coherence_s: float = Field(1.0, gt=0)
    min_block_s: float = Field(0.01, gt=0)


class OutageConfig(Strict):
    policy: Literal["wait", "drop", "fail"] = "wait"
    max_wait_s: float = Field(30.0, gt=0, description="wait: give up (drop the client) after this long")


class BackhaulConfig(Strict):
    rate_bps: float = Field(10e9, gt=0)
    latency_s: float = Field(0.005, ge=0)


class ThzConfig(Strict):
    """The THz radio of `thz-isac` access points (cosim.world.thz_link)."""

    frequency_hz: float = Field(300e9, ge=100e9, le=1e12, description="carrier, 100 GHz - 1 THz")
    bandwidth_hz: float = Field(10e9, gt=0, description="per direction, of each thz-isac access point")
    num_elements: int = Field(1024, ge=1, description="access point's (UAV's) square array")
    tx_power_dbm: float = Field(20.0, le=60, description="access point (UAV)")
    device_tx_power_dbm: float = Field(10.0, le=60)
    device_gain_db: float = Field(20.0, description="ground device's antenna gain")
    noise_figure_db: float = Field(10.0, ge=0)
    relative_humidity: float = Field(0.5, ge=0, le=1, description="fraction, not %")
    temperature_c: float = Field(25.0, ge=-20, le=50)
    pointing_block_s: float = Field(0.1, gt=0, description="pointing error redrawn this often")


class IsacConfig(Strict):
    """How much of its time or band a thz-isac access point spends sensing."""

    sensing_fraction: float = Field(0.0, ge=0, lt=1)
    mode: Literal["time", "bandwidth"] = "time"
    rcs_m2: float = Field(1.0, gt=0, description="radar cross-section of a sensed device")
    frame_duration_s: float = Field(1e-3, gt=0)


class NetworkConfig(Strict):
    association: Literal["nearest", "strongest"] = Field(
        "nearest", description="serving AP: nearest, or best large-scale SNR; re-chosen as devices move")
    link: Literal["3gpp", "thz-isac"] = Field("3gpp", description="link model of every AP (edge.*.link overrides)")
    thz: ThzConfig = Field(default_factory=ThzConfig)
    isac: IsacConfig = Field(default_factory=IsacConfig)
    medium: MediumConfig = Field(default_factory=MediumConfig)
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    frequency_hz: float = Field(3.5e9, gt=0)
    tx_power_dbm: float = Field(23.0, le=60)
    ap_tx_power_dbm: float = Field(43.0, le=80)
    noise_figure_db: float = Field(7.0, ge=0)
    antenna_gain_db: float = 0.0
    snr_threshold_db: float = -5.0
    reevaluate_distance_m: float = Field(10.0, gt=0)
    outage: OutageConfig = Field(default_factory=OutageConfig)
    backhaul: BackhaulConfig = Field(default_factory=BackhaulConfig)


class StopConfig(Strict):
    sim_time_s: float | None = Field(None, gt=0)
    target_accuracy: float | None = Field(None, gt=0, le=1)


PlotName = Literal["delay_accuracy", "timeline", "memory", "energy", "tracks"]


class OutputsConfig(Strict):
    dir: str = "results"
    plots: list[PlotName] = ["delay_accuracy", "timeline", "memory", "energy", "tracks"]
    progress: bool = True


class RuntimeConfig(Strict):
    torch_threads: int = Field(1, ge=1, description="torch.set_num_threads for this run's process")


class CompareEntry(Strict):
    """One run of `cosim compare`: its `scheme` keys go over the base `scheme:` block (cosim.compare).

    A bare scheme name stands for {label: name, scheme: {name: name}}, so one list holds both forms
    and the same scheme can appear twice under different labels and settings.
    """
    label: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="row in the table, line in the plot")
    scheme: dict[str, Any] = Field(description="`name` plus that scheme's keys, laid over the base scheme block")

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

    @field_validator("grid")
    @classmethod
    def _values_given(cls, v: dict) -> dict:
        empty = [key for key, values in v.items() if not values]
        if empty:
            raise ValueError(f"needs at least one value per key (none given for {', '.join(empty)})")
        return v


class Scenario(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    scheme: SerializeAsAny[SchemeConfig]
    devices: list[DeviceGroup] = Field(min_length=1)
    edge: list[ServerConfig] = Field(min_length=1)
    cloud: list[ServerConfig] = []
    profiles: dict[str, DeviceProfile] = {}
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    compare: list[CompareEntry] = Field([], description="what `cosim compare` runs: scheme names or "
                                        "{label, scheme: {name, ...}}; `cosim run` ignores it")
    sweep: SweepConfig = Field(default_factory=SweepConfig, description="what `cosim sweep` runs: a grid of "
                               "dotted keys and values; `cosim run` ignores it")

    def profile(self, name: str) -> DeviceProfile:
        return self.profiles.get(name) or PROFILES[name]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# --- loading -------------------------------------------------------------------------------------

def apply_overrides(raw: dict, overrides: dict[str, Any] | None) -> dict:
    """Set dotted paths (`network.medium.bandwidth_hz`, `devices.0.count`) in a copy of `raw`."""
    raw = copy.deepcopy(raw)
    for path, value in (overrides or {}).items():
        node, keys = raw, path.split(".")
        for i, key in enumerate(keys[:-1]):
            node = _child(node, key, keys[: i + 1], keys[i + 1])
        last = keys[-1]
        if isinstance(node, list):
            node[_index(node, last, path)] = value
        else:
            node[last] = value
    return raw


def _child(node, key: str, walked: list[str], next_key: str):
    if isinstance(node, list):
        return node[_index(node, key, ".".join(walked))]
    if not isinstance(node.get(key), (dict, list)):
        node[key] = [] if next_key.isdigit() else {}
    return node[key]


def _index(node: list, key: str, path: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ScenarioError([f"{path}: override index {key!r} is not in this list of {len(node)} entries"])
    return int(key)


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value` from the command line; the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ScenarioError([f"--set {text!r}: expected key.path=value"])
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _loc(loc) -> str:
    return ".".join(str(p) for p in loc) or "(scenario)"


def _problems(err: ValidationError, prefix: tuple = ()) -> list[str]:
    lines = []
    for e in err.errors():
        path = _loc(prefix + tuple(e["loc"]))
        if e["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key (given {e['input']!r}); allowed keys: "
                         f"{_allowed_keys(prefix + tuple(e['loc'][:-1]))}")
        elif e["type"] == "missing":
            lines.append(f"{path}: required field is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {msg} (given {e['input']!r})")
    return lines


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
        return None, [f"scheme: expected a mapping with a name (given {raw!r}); allowed names: {', '.join(SCHEMES)}"]
    name = raw.get("name")
    if name not in SCHEMES:
        return None, [f"scheme.name: unknown scheme (given {name!r}); allowed: {', '.join(SCHEMES)}"]
    try:
        return SCHEMES[name].config.model_validate(raw), []
    except ValidationError as err:
        allowed = ", ".join(SCHEMES[name].config.model_fields)
        return None, [p.replace("see the documentation", allowed) for p in _problems(err, ("scheme",))]


def _semantic_problems(sc: Scenario) -> list[str]:
    """Checks that need several fields at once: profile names, cut layer against model depth."""
    problems = []
    known = sorted({*PROFILES, *sc.profiles})
    groups = [("devices", sc.devices), ("edge", sc.edge), ("cloud", sc.cloud)]
    for section, items in groups:
        for i, item in enumerate(items):
            if item.profile not in PROFILES and item.profile not in sc.profiles:
                problems.append(f"{section}.{i}.profile: unknown profile (given {item.profile!r}); "
                                f"allowed: {', '.join(known)} or one defined under profiles:")
    problems += _task_problems(sc)
    cut = getattr(sc.scheme, "cut_layer", None)
    if cut is not None:
        try:
            depth = model_depth(sc.model.source, sc.model.tiny)
            if cut > depth:
                problems.append(f"scheme.cut_layer: beyond the model's depth (given {cut}); "
                                f"allowed: 1 to {depth} for {sc.model.source!r} ({depth} blocks)")
        except ModelSourceError as err:
            problems.append(f"model.source: {err}")
    cuts = getattr(sc.scheme, "cut_layers", None)
    if isinstance(cuts, list):  # a chain of cuts [c1, c2, ...] (three_tier); a dict is per-profile cuts
        try:
            depth = model_depth(sc.model.source, sc.model.tiny)
            if not (cuts and cuts[0] >= 1 and all(a < b for a, b in zip(cuts, cuts[1:])) and cuts[-1] <= depth):
                problems.append(f"scheme.cut_layers: beyond the model's depth or not increasing (given {cuts}); "
                                f"allowed: 1 <= c1 < c2 <= {depth} for {sc.model.source!r} ({depth} blocks)")
        except ModelSourceError as err:
            problems.append(f"model.source: {err}")
    return problems


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
    scheme_cfg, problems = _validate_scheme(raw.get("scheme"))
    rest = {k: v for k, v in raw.items() if k != "scheme"}
    try:
        sc = Scenario.model_validate({**rest, "scheme": scheme_cfg or SchemeConfig(name="?")})
    except ValidationError as err:
        raise ScenarioError(problems + _problems(err)) from None
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
        return copy.deepcopy(path_or_scenario)
    path = Path(path_or_scenario)
    if not path.is_file():
        raise ScenarioError([f"(file): no scenario file at {path}"])
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ScenarioError([f"(file): {path} is not valid YAML: {err}"]) from None


def load(path_or_scenario, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a scenario YAML (or take a Scenario / dict), apply dotted overrides, validate."""
    raw = read_raw(path_or_scenario)
    if isinstance(raw, dict):
        raw = apply_overrides(raw, overrides)
    return validate(raw)
