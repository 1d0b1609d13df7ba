"""Build the world a scenario describes, run its scheme, and return the tidy results.

`cosim.load(path, overrides)` → validated Scenario; `cosim.run(path_or_scenario, overrides)` →
Result. The build step refuses what cannot run (a device whose part of the model does not fit its
memory) before the clock starts, as a ScenarioError like any other bad input.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .learn.accounting import StepMeter
from .learn.adapters import LoraSpec, add_lora, train_all
from .learn.compress import TensorCodec
from .learn.data import ClientData, load_dataset, partition, train_test_split
from .learn.models import TinySize, build_model, load_tokenizer
from .learn.training import Learner
from .results import Result, RunWriter, load_run, new_run_dir
from .scenario import Scenario, ScenarioError, load
from .schemes import SCHEMES
from .world.engine import Simulation, StopRule, stream_seed
from .world.mobility import (GaussMarkov, RandomWaypoint, RoadSegment, Static, TraceTrack, UavPath, draw_speed_mps,
                             load_trace, poisson_arrival_times_s, vehicles_in_order)
from .world.conditions import build_conditions
from .world.network import Network, OutagePolicy, RadioSpec
from .world.thz_link import ThzIsacSpec
from .world.nodes import Node

GIB = 1024**3


def _group_rng(sim, group, rng: np.random.Generator, what: str) -> np.random.Generator:
    """A fresh generator shared by a whole device group (the same draws for every member)."""
    if sim is None:
        return np.random.default_rng(int(rng.integers(2**62)))
    return np.random.default_rng(stream_seed(sim.seed, f"mobility/{getattr(group, 'name', None)}/{what}"))


def _mobility(group, rng: np.random.Generator, index_in_group: int, centre_xy, sim=None):
    m = group.mobility
    if m.kind == "road":
        lane = index_in_group % m.lanes
        speed = draw_speed_mps(rng, *m.speed_mps, distribution=m.speed_distribution, mean_mps=m.speed_mean_mps,
                               std_mps=m.speed_std_mps)
        if m.arrival_rate_per_s is None:
            offset, entry = rng.uniform(0, m.length_m), 0.0
        else:  # a pool of slots: slot k enters at the start at the k-th Poisson arrival
            count = getattr(group, "count", 1)
            arrivals = poisson_arrival_times_s(_group_rng(sim, group, rng, "arrivals"), m.arrival_rate_per_s, count)
            offset, entry = 0.0, float(arrivals[index_in_group])
        return RoadSegment(m.start_m, m.length_m, speed_mps=speed, start_offset_m=offset, wrap=m.wrap,
                           lane_offset_m=lane * m.lane_width_m, height_m=m.height_m, entry_s=entry)
    if m.kind in ("random_waypoint", "gauss_markov"):
        lo = np.asarray(m.centre_m) - np.asarray(m.area_m) / 2
        hi = np.asarray(m.centre_m) + np.asarray(m.area_m) / 2
        if m.kind == "random_waypoint":
            return RandomWaypoint(lo, hi, m.speed_mps, m.pause_s, rng, height_m=m.height_m)
        return GaussMarkov(lo, hi, m.alpha, m.mean_speed_mps, rng, mean_direction_rad=m.mean_direction_rad,
                           speed_std_mps=m.speed_std_mps, direction_std_rad=m.direction_std_rad, step_s=m.step_s,
                           height_m=m.height_m)
    if m.kind == "uav":
        return UavPath(m.mode, rng=rng, centre_m=m.centre_m, altitude_m=m.altitude_m, radius_m=m.radius_m,
                       speed_mps=m.speed_mps, waypoints_m=m.waypoints_m, loop=m.loop, phase_rad=m.phase_rad,
                       position_jitter_std_m=m.position_jitter_std_m, hover_jitter_std_rad=m.hover_jitter_std_rad,
                       flying_jitter_std_rad=m.flying_jitter_std_rad)
    if m.kind == "trace":
        trace = load_trace(m.file)
        ids = m.vehicle_ids or vehicles_in_order(trace)
        vid = ids[index_in_group] if index_in_group < len(ids) else None
        if vid is not None and vid not in trace:
            raise ScenarioError([f"devices.mobility.vehicle_ids: {vid!r} is not in {m.file}"])
        times, xyz = trace[vid] if vid is not None else ((), ())
        return TraceTrack(times, xyz, height_m=m.height_m)
    if m.kind == "sumo":
        from .world.mobility.sumo import SumoVehicle, SumoWorld
        seed = int(_group_rng(sim, group, rng, "sumo").integers(2**31 - 1))
        world = SumoWorld.shared(m.sumocfg, m.step_s, seed)
        vid = m.vehicle_ids[index_in_group] if m.vehicle_ids and index_in_group < len(m.vehicle_ids) else None
        return SumoVehicle(world, slot=index_in_group, vehicle_id=vid, height_m=m.height_m)
    if m.position_m is not None:
        return Static(m.position_m)
    half = np.asarray(m.area_m) / 2
    while True:  # uniform in the rectangle, outside the AP's minimum distance
        xy = rng.uniform(-half, half)
        if np.hypot(*xy) >= m.min_distance_m:
            return Static([centre_xy[0] + xy[0], centre_xy[1] + xy[1], m.height_m])


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
        add_lora(model, LoraSpec(r=cfg.lora.r, alpha=cfg.lora.alpha, dropout=cfg.lora.dropout,
                                 target_modules=tuple(cfg.lora.target_modules) if cfg.lora.target_modules else None))
    else:
        train_all(model)
    return Learner(model, load_tokenizer(sc.model.source), sc.model.max_length, train, test, clients,
                   lr=cfg.lr, optimizer=cfg.optimizer)


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
    for dev in sim.devices:
        dev.memory.hold("weights", learner.weight_bytes(start, end))


def build(sc: Scenario) -> Simulation:
    """Everything a run needs, ready for the scheme: nodes, network, learner, meter, codec."""
    torch.set_num_threads(sc.runtime.torch_threads)
    stop = StopRule(rounds=sc.scheme.rounds, sim_time_s=sc.stop.sim_time_s or math.inf,
                    target_accuracy=sc.stop.target_accuracy)
    sim = Simulation(sc.seed, stop)
    _nodes(sim, sc)
    n, c = sc.network, sc.network.channel
    spec = RadioSpec(frequency_hz=n.frequency_hz, pathloss=c.pathloss.model, los=c.pathloss.los, shadowing=c.shadowing,
                     fading=c.fading, k_factor=c.k_factor, tx_power_dbm=n.tx_power_dbm,
                     ap_tx_power_dbm=n.ap_tx_power_dbm, noise_figure_db=n.noise_figure_db,
                     antenna_gain_db=n.antenna_gain_db, snr_threshold_db=n.snr_threshold_db,
                     reevaluate_distance_m=n.reevaluate_distance_m, static_coherence_s=c.static_coherence_s,
                     min_block_s=c.min_block_s)
    t, i = n.thz, n.isac
    thz = ThzIsacSpec(frequency_hz=t.frequency_hz, bandwidth_hz=t.bandwidth_hz, num_elements=t.num_elements,
                      tx_power_dbm=t.tx_power_dbm, device_tx_power_dbm=t.device_tx_power_dbm,
                      device_gain_db=t.device_gain_db, noise_figure_db=t.noise_figure_db,
                      relative_humidity=t.relative_humidity, temperature_c=t.temperature_c,
                      sensing_fraction=i.sensing_fraction, isac_mode=i.mode, rcs_m2=i.rcs_m2,
                      frame_duration_s=i.frame_duration_s, pointing_block_s=t.pointing_block_s,
                      snr_threshold_db=n.snr_threshold_db, reevaluate_distance_m=n.reevaluate_distance_m)
    links = {ap.name: e.link or n.link for ap, e in zip(sim.edge, sc.edge)}
    sim.network = Network(sim, spec, n.medium.bandwidth_hz, n.medium.sharing,
                          OutagePolicy(n.outage.policy, n.outage.max_wait_s), n.backhaul.rate_bps, n.backhaul.latency_s,
                          association=n.association, thz=thz, link_models=links)
    sim.learner = _learner(sim, sc)
    _check_memory(sim, sc, sim.learner)
    sim.meter = StepMeter()
    sim.meter.exclude_parameters(sim.learner.model)
    sim.codec = TensorCodec()
    return sim


def run(scenario, overrides: dict[str, Any] | None = None, *, progress: bool | None = None,
        plots: bool = True) -> Result:
    """Run a scenario (path, dict or Scenario) with dotted overrides; returns a Result."""
    sc = load(scenario, overrides)
    entry = SCHEMES[sc.scheme.name]
    sim = build(sc)
    writer = RunWriter(new_run_dir(Path(sc.outputs.dir), sc.name, sc.seed), sc.to_yaml(), sc.scheme.name, sc.name)
    show = sc.outputs.progress if progress is None else progress
    bar = _progress(sc, show)
    sim.on_round_end.append(lambda rec: writer.flush(sim))
    sim.on_round_end.append(lambda rec: bar(rec))

    wall0 = time.perf_counter()
    sim.close_round(0, sim.learner.initial_state(), [])
    main = sim.process(entry.run(sim, sc.scheme))
    try:
        sim.env.run(until=main)
    except RuntimeError as err:  # the event queue ran dry: every client waits on something that never comes
        if "No scheduled events left" not in str(err):
            raise
        sim.stop_reason = f"stalled at t={sim.now:.3f}s: no event left to process"
    bar(None)
    writer.finish(sim)
    if plots and sc.outputs.plots:
        from .plots import plot_run

        plot_run(writer.dir, which=list(sc.outputs.plots))
    result = load_run(writer.dir)
    result.summary["wall_time_s"] = time.perf_counter() - wall0
    return result


def _progress(sc: Scenario, show: bool):
    """A tqdm bar over rounds showing simulated time and accuracy; `bar(None)` closes it."""
    if not show:
        return lambda rec: None
    from tqdm.auto import tqdm

    bar = tqdm(total=sc.scheme.rounds, desc=sc.name, unit="round", dynamic_ncols=True)

    def update(rec):
        if rec is None:
            bar.close()
            return
        if rec.round > 0:
            bar.update(1)
        ppl = f" · ppl {rec.extra['perplexity']:.1f}" if "perplexity" in rec.extra else ""
        bar.set_postfix_str(f"round {rec.round} · t_sim {rec.sim_time_s:,.1f} s · acc {rec.accuracy:.3f}{ppl}")

    return update


__all__ = ["build", "load", "run", "Result", "ScenarioError"]
