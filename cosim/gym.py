"""A scenario as a Gymnasium environment (`cosim/Cosim-v0`): an agent decides one epoch at a time.

`CosimEnv(scenario, controller_knobs=("compute_share",), mode="twin")`: `reset(seed)` builds the
world the scenario describes (`cosim.run.build`) and runs it to its first decision epoch;
`step(action)` applies the action as one `Decision` of the control layer (cosim.control.rl: per
device a compute share at its server, a band share, an association, retrain-or-not — the knobs
asked for) and advances the simulation, a SimPy process stepped event by event
(`Simulation.drive(main, pause=…)`), to the next epoch: the next time the run's control loop asks
its controller (a round start, or a tick of `control.small_every_s`). The scenario's own controller
still decides what the agent does not (e.g. dt's association and retraining while the agent
learns compute shares): the agent's decision is laid over it.

Observation: per device the features of cosim.control.rl (large-scale SNR as the channel gain,
rate, position, queue, compute share, data drift indicator, retraining flag, serving AP) as a `Box`.
Reward: by default −(the epoch's delay) × `reward_scale`, the delay being the epoch's `delay_s`
when the scheme reports one (dt_incremental: the users' summed delay) and the simulated time the
epoch took otherwise; `reward_scale="auto"` (the default) is 1 / the mean epoch delay of one
reference episode decided by the scenario's own controller (`reference_delay_s`, run once at the
first reset), so rewards are about −1 per epoch whatever the world's scale (raw delays of seconds to
minutes gave PPO value losses of 1e5); `reward=` takes any `f(env, delay_s, record) -> float` instead.

`mode`: "twin" asks for the training-free replay (`runtime.mode: twin`) where the scenario has it;
until then the run is real (tiny models make it fast) and `env.mode` says "real".
"""
from __future__ import annotations

import math
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .control import ControlLoop, build_controller
from .control.controllers import Controller
from .control.rl import CLIP, FEATURES, check_action, check_knobs, decision_from, features
from .run import build
from .scenario import load
from .schemes import SCHEMES

MODES = ("real", "twin")


class AgentController(Controller):
    """The run's controller while an agent drives it: the scenario's own controller (`base`)
    decides at its timescales what the agent does not (`knobs`: the settings the agent decides,
    left out of the base's decisions, so between two epochs the view shows the agent's own)."""

    name = "agent"

    def __init__(self, base: Controller, knobs=()):
        super().__init__(base.config)
        self.base, self.knobs = base, tuple(knobs)

    def large(self, sim, view):
        return self._without_knobs(self.base.large(sim, view) if self.base.active else None)

    def small(self, sim, view):
        return self._without_knobs(self.base.small(sim, view) if self.base.active else None)

    def _without_knobs(self, decision):
        if decision is not None:
            for knob in self.knobs:
                setattr(decision, knob, {})
        return decision


class CosimEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, scenario, controller_knobs=("compute_share",), mode: str = "twin",
                 overrides: dict[str, Any] | None = None, reward: str | Callable = "delay",
                 reward_scale: float | str = "auto"):
        if mode not in MODES:
            raise ValueError(f"mode: {mode!r}; allowed: {', '.join(MODES)}")
        from .scenario import RuntimeConfig

        self.mode = mode if "mode" in RuntimeConfig.model_fields else "real"
        if self.mode != "real":
            overrides = {**(overrides or {}), "runtime.mode": self.mode}
        self.scenario = load(scenario, overrides)
        self.knobs = check_knobs(controller_knobs)
        if not (reward == "delay" or callable(reward)):
            raise ValueError(f"reward: {reward!r}; allowed: 'delay' or a function (env, delay_s, record) -> float")
        if not (reward_scale == "auto" or (isinstance(reward_scale, (int, float)) and reward_scale > 0)):
            raise ValueError(f"reward_scale: {reward_scale!r}; allowed: 'auto' or a number > 0")
        self.reward_fn = reward
        self.reward_scale = None if reward_scale == "auto" else float(reward_scale)
        self.devices = sum(g.count for g in self.scenario.devices)
        self.observation_space = spaces.Box(-CLIP, CLIP, (self.devices, len(FEATURES)), np.float32)
        self.action_space = spaces.Box(0.0, 1.0, (self.devices * len(self.knobs),), np.float32)
        self.sim = self.main = None
        self._meter = None   # step costs counted once, kept across episodes (they depend on shapes only)

    # --- gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.reward_scale is None:
            self.reward_scale = 1.0 / self.reference_delay_s()
        # each episode its own world: the seed given, else one drawn from the env's generator (seeded
        # by the first reset's seed), so an agent does not learn one trajectory by heart
        episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        sc = self.scenario.model_copy(update={"seed": episode_seed})
        self.sim, self.main = self._start(sc, AgentController(build_controller(sc.control), self.knobs))
        self._advance()
        return self._observe(), {"t_s": self.sim.now, "round": self.sim.current_round}

    def reference_delay_s(self) -> float:
        """The mean epoch delay of one episode (the scenario's seed) decided by the scenario's own
        controller alone: `reward_scale: auto` divides delays by it, so a reward is about −1 per
        epoch for a policy as good as the scenario's baseline and above −1 for a better one (PPO's
        value targets of order 1, whatever the model and the world)."""
        sim, main = self._start(self.scenario, build_controller(self.scenario.control))
        sim.drive(main)
        delays = [float(r.extra["delay_s"]) for r in sim.round_records if "delay_s" in r.extra]
        mean_s = sum(delays) / len(delays) if delays else sim.now / max(1, sim.control.epochs)
        if not mean_s > 0:
            raise ValueError("reward_scale: auto needs a scenario whose epochs take time (its reference episode "
                             "took none); give reward_scale a number")
        return mean_s

    def step(self, action):
        if self.sim is None:
            raise RuntimeError("step before reset")
        sim = self.sim
        view = sim.control.view()
        names = [d.name for d in view.devices]
        decision = decision_from(check_action(action, self.knobs, names), self.knobs, view)
        sim.control.apply(decision, "agent")
        t0, closed = sim.now, len(sim.round_records)
        self._advance()
        record = sim.round_records[-1] if len(sim.round_records) > closed else None
        delay_s = float(record.extra["delay_s"]) if record is not None and "delay_s" in record.extra else sim.now - t0
        reward = -delay_s * self.reward_scale if self.reward_fn == "delay" else float(self.reward_fn(self, delay_s,
                                                                                                   record))
        terminated = self.main.processed or bool(sim.stop_reason)
        info = {"delay_s": delay_s, "t_s": sim.now, "round": sim.current_round}
        if record is not None and not math.isnan(record.accuracy):   # a twin scores nothing: no accuracy
            info["accuracy"] = record.accuracy
        return self._observe(), reward, terminated, False, info

    # --- helpers --------------------------------------------------------------------------------
    def _start(self, sc, controller):
        """The world of `sc`, its control loop asking `controller`, and the scheme's process (not
        stepped yet). Step costs are counted once, kept across episodes (they depend on shapes only)."""
        sim = build(sc)
        if self._meter is not None:
            sim.meter = self._meter
        self._meter = sim.meter
        sim.control = ControlLoop(sim, sc.control, controller)
        sim.end_round(0, loss=math.nan, accuracy=math.nan)
        sim.control.start()
        return sim, sim.process(SCHEMES[sc.scheme.name].run(sim, sc.scheme))

    def _advance(self) -> None:
        """Run to the next decision epoch (or to the end)."""
        loop = self.sim.control
        begun = loop.epochs
        self.sim.drive(self.main, pause=lambda: loop.epochs > begun)

    def _observe(self) -> np.ndarray:
        return features(self.sim.control.view())


gym.register(id="cosim/Cosim-v0", entry_point="cosim.gym:CosimEnv")

__all__ = ["AgentController", "CosimEnv"]
