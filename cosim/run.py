"""Build the world a scenario describes, run its scheme, and return the tidy results.

`cosim.load(path, overrides)` → validated Scenario; `cosim.run(path_or_scenario, overrides)` →
Result. The build step refuses what cannot run (a device whose part of the model does not fit its
memory) before the clock starts, as a ScenarioError like any other bad input.
"""
from __future__ import annotations

import contextlib
import gc
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint
from .control import ControlLoop, build_controller
from .interrupts import RunInterrupted, stop_on_signals
from .learn.accounting import StepMeter
from .learn.adapters import add_lora, train_all
from .learn.compress import TensorCodec
from .learn.data import ClientData, load_dataset, partition, train_test_split
from .learn.models import TinySize, build_model, load_tokenizer
from .learn.training import Learner
from .learn.twin import TwinMeter, store_for
from .learn.workers import Ahead, InlineWorker, Workers, resolve_workers
from .results import Result, RunWriter, load_run, new_run_dir
from .scenario import Scenario, ScenarioError, load
from .schemes import SCHEMES
from .world.engine import Simulation, StopRule, stream_generator
from .world.mobility import Static
from .world.conditions import build_conditions
from .world.failures import Failures, OutOfMemory, RunAborted, ServerFailed
from .world.invariants import Verifier, wanted as verify_wanted
from .world.network import Network
from .world.nodes import Node

GIB = 1024**3


def _group_rng(sim, group, rng: np.random.Generator, what: str) -> np.random.Generator:
    """A fresh generator shared by a whole device group (the same draws for every member)."""
    if sim is None:
        return np.random.default_rng(int(rng.integers(2**62)))
    return stream_generator(sim.seed, f"mobility/{getattr(group, 'name', None)}/{what}")


def _mobility(group, rng: np.random.Generator, index_in_group: int, centre_xy, sim=None):
    return group.mobility.build(rng, index_in_group, centre_xy, group_size=getattr(group, "count", 1),
                                group_rng=lambda what: _group_rng(sim, group, rng, what))


def _nodes(sim: Simulation, sc: Scenario) -> None:
    for i, e in enumerate(sc.edge):
        name = e.name or f"edge{i}"
        mobility = Static(e.position_m) if e.mobility is None else \
            _mobility(e, sim.rng(f"mobility/{name}"), 0, e.position_m, sim=sim)   # e.g. a UAV edge server
        sim.edge.append(Node(sim, name, "edge", e.profile, sc.profile(e.profile), mobility))
    for i, c in enumerate(sc.cloud):
        name = c.name or f"cloud{i}"
        sim.cloud.append(Node(sim, name, "cloud", c.profile, sc.profile(c.profile), Static(c.position_m)))
    centre = sc.edge[0].position_m
    counters: dict[str, int] = {}
    for group in sc.devices:
        for j in range(group.count):
            k = counters.get(group.name, 0)
            counters[group.name] = k + 1
            name = f"{group.name}{k}"
            mobility = _mobility(group, sim.rng(f"mobility/{name}"), j, centre, sim=sim)
            node = Node(sim, name, "device", group.profile, sc.profile(group.profile), mobility)
            node.conditions = build_conditions(group.conditions, sim, name)
            sim.devices.append(node)


def _learner(sim: Simulation, sc: Scenario) -> Learner:
    cfg = sc.scheme
    data = load_dataset(sc.data.dataset)
    train, test = train_test_split(data, sc.data.test_fraction, sim.rng("data/split"), max_test=sc.data.test_samples)
    p = sc.data.partition
    parts = partition(train.labels, len(sim.devices), p.kind, sim.rng("data/partition"), alpha=p.alpha,
                      classes_per_client=p.classes_per_client, domains=train.domains,
                      samples_per_client=p.samples_per_client)
    clients = {d.name: ClientData(train, idx, sim.rng(f"data/{d.name}"), cfg.batch_size)
               for d, idx in zip(sim.devices, parts)}
    t = sc.model.tiny
    model = build_model(sc.model.source, sc.model.task, data.num_classes,
                        seed=int(sim.rng("model/init").integers(2**31)),
                        tiny=TinySize(layers=t.layers, hidden=t.hidden, heads=t.heads, intermediate=t.intermediate))
    if cfg.lora is not None:
        add_lora(model, cfg.lora)
    else:
        train_all(model)
    return Learner(model, load_tokenizer(sc.model.source), sc.model.max_length, train, test, clients,
                   lr=cfg.lr, optimizer=cfg.optimizer, padding=sc.model.padding, pad_multiple=sc.model.pad_multiple,
                   device=torch_device(sc.runtime.device), host_cache_bytes=sc.runtime.host_cache_mb * 2**20)


def torch_device(name: str) -> torch.device:
    """runtime.device as a torch device: auto → the first CUDA device when torch sees one, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        index = int(name.split(":")[1]) if ":" in name else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
            raise ScenarioError([f"runtime.device: {name!r} but torch sees {seen} CUDA device(s) here; allowed: cpu, "
                                 "auto" + (f", cuda:0..cuda:{seen - 1}" if seen else "")])
    return torch.device(name)


def _check_memory(sim: Simulation, sc: Scenario, learner: Learner) -> None:
    """Refuse devices whose part of the model (weights + gradients + optimizer state) exceeds memory."""
    start, end = sc.scheme.device_blocks(learner.model.depth)
    need = learner.weight_bytes(start, end) + learner.training_state_bytes(learner.trainable_names(start, end))
    problems = []
    for i, group in enumerate(sc.devices):
        have = sc.profile(group.profile).memory_bytes
        if need > have:
            problems.append(f"devices.{i}.profile: {group.profile!r} has {have / GIB:.3g} GiB but its part of "
                            f"the model (blocks {start}-{end}: weights, gradients, optimizer state) needs "
                            f"{need / GIB:.3g} GiB; allowed: a profile with at least that memory, a smaller "
                            "model, or an earlier cut")
    if problems:
        raise ScenarioError(problems)
    weights = learner.weight_bytes(start, end)   # once: it walks the model's parameter names
    for dev in sim.devices:
        dev.memory.resident("weights", weights)


def build(sc: Scenario) -> Simulation:
    """Everything a run needs, ready for the scheme: nodes, network, learner, meter, codec."""
    if sc.outputs.tensorboard:   # refused before anything is built when the package is missing
        from .tensorboard_log import require

        require()
    torch.set_num_threads(sc.runtime.torch_threads)
    if sc.runtime.torch_threads == 1:   # the tokenizer's Rust thread pool too: on 2 busy cores its threads
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")   # made a batch of 8 tokenize ~1.7x slower
    stop = StopRule(rounds=sc.scheme.rounds, sim_time_s=sc.stop.sim_time_s or math.inf,
                    target_accuracy=sc.stop.target_accuracy, max_wall_s=sc.runtime.max_wall_s or math.inf)
    sim = Simulation(sc.seed, stop)
    sim.rounds_need_coverage = type(sc.scheme).needs_coverage
    _nodes(sim, sc)
    for node in sim.nodes:   # how each step's simulated duration follows from its counted cost
        node.compute_model = sc.runtime.compute_model
    links = {ap.name: e.link or sc.network.link for ap, e in zip(sim.edge, sc.edge)}
    sim.network = Network(sim, sc.network, link_models=links)
    sim.learner = _learner(sim, sc)
    _check_memory(sim, sc, sim.learner)
    sim.twin = sc.runtime.mode == "twin"
    if sim.twin:   # a signature's first step only, or none when an earlier run measured it (cosim.learn.twin)
        sim.meter = TwinMeter(store_for(sc) if sc.runtime.twin_cache else None)
    else:
        sim.meter = StepMeter()
    sim.meter.exclude_parameters(sim.learner.model)
    sim.codec = TensorCodec()
    sim.control = ControlLoop(sim, sc.control, build_controller(sc.control))
    sim.failures = Failures(sim, sc.failures)
    if verify_wanted(sc.runtime.verify):
        sim.verifier = Verifier(sim)
    return sim


def run(scenario=None, overrides: dict[str, Any] | None = None, *, progress: bool | None = None,
        plots: bool = True, resume=None, started=None) -> Result:
    """Run a scenario (path, dict or Scenario) with dotted overrides; returns a Result.

    `resume=RUN_DIR` continues the run in that folder from its checkpoint (cosim.checkpoint), as if
    it had never stopped: same folder, the rounds and events already written kept, none twice.
    `started(run_dir)` is called once the run folder exists (a sweep notes it, to resume a point)."""
    if resume is not None:
        if scenario is not None or overrides:
            raise ScenarioError(["resume: a resumed run takes its scenario from the run folder; give no scenario "
                                 "or overrides"])
        return _resume(Path(resume), progress=progress, plots=plots, started=started)
    sc = load(scenario, overrides)
    sim = build(sc)
    writer = RunWriter(new_run_dir(Path(sc.outputs.dir), sc.name, sc.seed), sc.to_yaml(), sc.scheme.name, sc.name)
    if started is not None:
        started(writer.dir)
    return _run(sim, sc, writer, progress=progress, plots=plots)


def _resume(run_dir: Path, *, progress, plots, started=None) -> Result:
    """Rebuild the world from the folder's scenario, put the checkpoint back, go on (cosim.checkpoint)."""
    if (run_dir / "events.parquet").is_file() and not (run_dir / "events.parts").is_dir():
        return load_run(run_dir)   # finished: nothing left to do
    scenario_file = run_dir / "scenario.yaml"
    if not scenario_file.is_file():
        raise ScenarioError([f"resume: {run_dir} is not a run folder (no scenario.yaml)"])
    sc = load(scenario_file)
    if not (run_dir / checkpoint.FILE).is_file():
        why = (run_dir / checkpoint.REFUSED).read_text().strip() if (run_dir / checkpoint.REFUSED).is_file() else \
            (f"scheme {sc.scheme.name!r} does not checkpoint its rounds (only schemes whose rounds are a "
             "schemes.common.round_loop do), or the run stopped before its first round ended")
        raise ScenarioError([f"resume: {run_dir} has no checkpoint to resume from: {why}; run the scenario again"])
    try:
        payload = checkpoint.read(run_dir)
        sim = build(sc)
        sim.resumed = checkpoint.restore(sim, payload)
    except checkpoint.CheckpointError as err:
        raise ScenarioError([f"resume: {err}"]) from None
    writer = RunWriter(run_dir, scenario_file.read_text(), sc.scheme.name, sc.name)
    writer.resume_at(payload["writer"], sim.round_records)
    if started is not None:
        started(writer.dir)
    return _run(sim, sc, writer, progress=progress, plots=plots, resumed=True)


def _run(sim: Simulation, sc: Scenario, writer: RunWriter, *, progress, plots, resumed: bool = False) -> Result:
    entry = SCHEMES[sc.scheme.name]
    show = sc.outputs.progress if progress is None else progress
    bar = _progress(sc, show, start=sim.current_round if resumed else 0)
    sim.on_round_end.append(lambda rec: writer.flush(sim))
    sim.on_round_end.append(lambda rec: bar(rec))
    sim.checkpoints = checkpoint.Checkpoints(writer.dir, sc.runtime.checkpoint_every_s, writer)
    sim.on_round_boundary.append(lambda state: sim.checkpoints.boundary(sim, state))
    sim.on_interrupt.append(lambda sim: checkpoint.write(sim, writer.dir))
    board = None
    if sc.outputs.tensorboard:   # scalars per round beside the tables (cosim.tensorboard_log)
        from .tensorboard_log import Scalars

        board = Scalars(writer.dir, resume_after=sim.round_records[-1].round if resumed and sim.round_records
                        else None)
        sim.on_round_end.append(lambda rec: board.add_round(rec, writer.summary))

    wall0 = time.perf_counter()
    with stop_on_signals(sim), _built_heap_frozen():   # SIGINT/SIGTERM: the run stops before its next event
        try:
            _start_workers(sim, sc, writer.dir)
            sim.rescore_pending()
            _run_scheme(sim, sc, entry, resumed=resumed)
        finally:
            if sim.learner.ahead is not None:
                sim.learner.ahead.close()
            if board is not None:
                board.close()
        bar(None)
        interrupted = bool(sim.interrupted) and sim.stop_reason == sim.interrupted   # (not a signal after the end)
        if interrupted:   # written so far; the event parts stay, for `--resume` to go on from its checkpoint
            writer.flush(sim)
        else:
            writer.finish(sim)
    if interrupted:
        for hook in sim.on_interrupt:   # the last round boundary's checkpoint made durable
            hook(sim)
        raise RunInterrupted(writer.dir, sim.current_round, sim.now, sim.interrupted)
    sim.checkpoints.close(sim)
    if plots and sc.outputs.plots:
        from .plots import plot_run

        plot_run(writer.dir, which=list(sc.outputs.plots))
    if sc.outputs.report:   # the figures just drawn, the tables, the scenario: one page (cosim.report)
        from .report import write_report

        write_report(writer.dir)
    result = load_run(writer.dir)
    result.summary["wall_time_s"] = time.perf_counter() - wall0
    return result


@contextlib.contextmanager
def _built_heap_frozen():
    """While the run goes: what exists when it starts (modules, model, data, tokenizer: millions of
    objects) is left out of the garbage collector's full passes, which otherwise re-scan it all.
    At 1,000 devices five full passes took 1.75 s of a 21 s run. Unfrozen at the end, so that a
    process running many runs (tests, compare) still frees the cycles each leaves."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _start_workers(sim: Simulation, sc: Scenario, run_dir: Path) -> None:
    """Workers for compute independent in event time (runtime.workers > 1), each holding the learner."""
    if sim.twin:   # a twin runs a step only the first time its signature is seen: nothing to compute ahead
        return
    count = resolve_workers(sc.runtime.workers)
    if sim.learner.device.type == "cuda" and sc.runtime.backend == "process":
        count = 1   # one process drives the GPU (forked workers cannot use CUDA)
    if count > 1:
        workers = Workers(sim.learner, count, sc.runtime.backend, sc.runtime.address, temp_dir=run_dir)
        sim.learner.ahead = Ahead(sim.learner, workers, sc.runtime.batch_clients)
    elif sc.runtime.batch_clients:   # batched in this process, at each round's start
        sim.learner.ahead = Ahead(sim.learner, InlineWorker(sim.learner), batch_clients=True)


def _run_scheme(sim: Simulation, sc: Scenario, entry, resumed: bool = False) -> None:
    if resumed:   # round 0 and the control loop's ticker came back with the checkpoint
        pass
    elif sc.outputs.eval_round0:
        sim.close_round(0, sim.learner.initial_state(), [])
        sim.control.start()
    else:   # the row still marks the start; no evaluation of the initial model
        sim.end_round(0, loss=math.nan, accuracy=math.nan)
        sim.control.start()
    try:   # to its end, or to a stop limit (stop_reason)
        sim.drive(sim.process(entry.run(sim, sc.scheme)))
    except RunAborted as stop:   # a failure whose policy stops the run (failures.oom: abort)
        sim.stop_reason = stop.reason
    except (OutOfMemory, ServerFailed) as lost:   # a fault in the scheme's own process, which it cannot survive
        sim.stop_reason = f"{lost} (in {sc.scheme.name}'s own process: it cannot go on without that work)"
    sim.settle()
    if sim.verifier is not None:
        sim.verifier.finish()


def _progress(sc: Scenario, show: bool, start: int = 0):
    """A tqdm bar over rounds showing simulated time and accuracy; `bar(None)` closes it."""
    if not show:
        return lambda rec: None
    from tqdm.auto import tqdm

    bar = tqdm(total=sc.scheme.rounds, initial=start, desc=sc.name, unit="round", dynamic_ncols=True)

    def update(rec):
        if rec is None:
            bar.close()
            return
        if rec.round > 0:
            bar.update(1)
        ppl = f" · ppl {rec.extra['perplexity']:.1f}" if "perplexity" in rec.extra else ""
        bar.set_postfix_str(f"round {rec.round} · t_sim {rec.sim_time_s:,.1f} s · acc {rec.accuracy:.3f}{ppl}")

    return update


__all__ = ["build", "load", "run", "Result", "RunInterrupted", "ScenarioError"]
