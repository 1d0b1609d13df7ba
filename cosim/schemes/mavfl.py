"""MAVFL (mobility-aware vehicular FL, arXiv 2410.10451): vehicles drive through a road segment
served by a roadside edge server and train FedAvg's client round while in range. A vehicle that
leaves before its upload completes fails that round (outage policy `drop`): the failure is a
`failed_participation` event in the trace and its update is not aggregated. The server keeps each
vehicle's real-time successful participation ratio and picks the round's vehicles with a
multi-armed bandit, UCB1 (Auer, Cesa-Bianchi & Fischer 2002, "Finite-time analysis of the
multiarmed bandit problem", Fig. 1), on a utility of training loss and delay.

Utility (the bandit's reward) of vehicle i after a round it was selected in:

    u_i = 0                                               if its participation failed,
    u_i = w_loss · L_i / max_j L_j + (1 − w_loss) · min_j d_j / d_i   otherwise,

with L_i its mean local training loss (a high loss marks data the model still learns from, as in
Oort, Lai et al. OSDI 2021) and d_i its round delay (download + local steps + upload), the max/min
over the round's successful vehicles, so u_i ∈ (0, 1]. A vehicle's mean reward is therefore its
successful participation ratio ρ_i times its mean utility when it succeeds: vehicles that tend to
leave mid-round, or are slow, score low. `scheme.selection`: `ucb` (this), `random` (as many
vehicles, uniformly among those in range) or `all` (every vehicle in range).

Reproduces: arXiv 2410.10451: UCB selection reaches the target ~28 % sooner than random —
scenarios/mavfl_highway.yaml,
tests/test_mavfl_claims.py::test_ucb_selection_reaches_target_sooner_than_random_on_the_highway
"""
from __future__ import annotations

import math
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from ..world.events import declare
from .base import SchemeConfig, scheme
from .common import aggregate, client_update, round_loop

declare("failed_participation", "fault", "a selected client did not return its update (MAVFL)", by="mavfl")


#: UCB1's exploration constant: index = mean + sqrt(2 ln n / n_j) (Auer et al. 2002, Fig. 1).
UCB1_EXPLORATION = math.sqrt(2.0)


class MavflConfig(SchemeConfig):
    name: str = "mavfl"
    compresses: ClassVar[bool] = True   # `compression` codes the model uploads (common.client_update)
    selection: Literal["ucb", "random", "all"] = "ucb"
    participants: int | None = Field(4, ge=1, description="vehicles per round (ucb, random); all: every one in range")
    exploration: float = Field(UCB1_EXPLORATION, ge=0,
                               description="UCB exploration constant c: mean + c·sqrt(ln n / n_j)")
    loss_weight: float = Field(0.5, ge=0, le=1, description="w_loss in the utility (the rest weighs delay)")

    def twin_problems(self) -> list[str]:
        """UCB1's utility reads the clients' training loss (w_loss > 0): a twin would select otherwise."""
        out = super().twin_problems()
        if self.selection == "ucb" and self.loss_weight > 0:
            out.append(f"scheme.loss_weight: mavfl's UCB1 utility weighs the clients' training loss, which a twin "
                       f"does not compute (given {self.loss_weight:g} with selection 'ucb'); allowed in runtime.mode "
                       "twin: 0 (delay and participation only), or selection random or all")
        return out


def ucb1_indices(means, counts, total_plays: int, exploration: float = UCB1_EXPLORATION) -> np.ndarray:
    """UCB1 index of every arm: mean_j + c·sqrt(ln n / n_j), +inf for an arm never played
    (UCB1 plays each arm once first). With c = sqrt(2) this is Auer et al. (2002), Fig. 1."""
    means, counts = np.asarray(means, dtype=float), np.asarray(counts, dtype=float)
    index = np.full(len(means), np.inf)
    played = counts > 0
    n = max(int(total_plays), 1)
    index[played] = means[played] + exploration * np.sqrt(math.log(n) / counts[played])
    return index


def ucb1_select(means, counts, total_plays: int, k: int, exploration: float = UCB1_EXPLORATION) -> list[int]:
    """The k arms of highest UCB1 index (ties: lower position first)."""
    index = ucb1_indices(means, counts, total_plays, exploration)
    order = sorted(range(len(index)), key=lambda j: (-index[j], j))
    return order[:k]


def utilities(results: dict, loss_weight: float) -> dict:
    """{vehicle: u} for a round's {vehicle: (loss, delay_s) or None (failed)} (module doc)."""
    ok = {v: r for v, r in results.items() if r is not None}
    out = {v: 0.0 for v in results}
    if ok:
        max_loss = max(loss for loss, _ in ok.values()) or 1.0
        min_delay = min(delay for _, delay in ok.values())
        for v, (loss, delay) in ok.items():
            out[v] = loss_weight * loss / max_loss + (1 - loss_weight) * (min_delay / delay if delay > 0 else 1.0)
    return out


class Bandit:
    """Per-vehicle statistics the server keeps: plays, successes, summed reward."""

    def __init__(self):
        self.plays: dict[str, int] = {}
        self.successes: dict[str, int] = {}
        self.reward: dict[str, float] = {}

    @property
    def total_plays(self) -> int:
        return sum(self.plays.values())

    def participation_ratio(self, vehicle: str) -> float:
        n = self.plays.get(vehicle, 0)
        return self.successes.get(vehicle, 0) / n if n else float("nan")

    def select(self, pool: list, k: int, exploration: float, rng: np.random.Generator) -> list:
        pool = [pool[i] for i in rng.permutation(len(pool))]  # unplayed arms: random order among them
        means = [self.reward.get(d.name, 0.0) / self.plays[d.name] if self.plays.get(d.name) else 0.0 for d in pool]
        counts = [self.plays.get(d.name, 0) for d in pool]
        picked = ucb1_select(means, counts, self.total_plays, k, exploration)
        return sorted((pool[j] for j in picked), key=lambda d: d.name)

    def update(self, vehicle: str, success: bool, reward: float) -> None:
        self.plays[vehicle] = self.plays.get(vehicle, 0) + 1
        self.successes[vehicle] = self.successes.get(vehicle, 0) + int(success)
        self.reward[vehicle] = self.reward.get(vehicle, 0.0) + reward


@scheme("mavfl", config=MavflConfig,
        summary="MAVFL: vehicles on a road train FedAvg rounds; UCB1 selection on loss/delay utility and success ratio")
def run(sim, cfg: MavflConfig):
    learner, server = sim.learner, sim.edge[0]
    server.memory.resident("weights", learner.weight_bytes())

    def one_round(rnd, state):
        """`state`: (the global model, the bandit's record of every vehicle)."""
        global_state, bandit = state
        clients = choose(sim, cfg, bandit)
        if not clients:  # nobody in range: wait for traffic (the stop rule's sim_time_s bounds this)
            yield sim.timeout(1.0)
            sim.close_round(rnd, global_state, [], clients=0, updates=0, failed=0)
            return global_state, bandit
        updates = (yield from sim.gather(timed(sim, cfg, dev, server, global_state) for dev in clients)).results
        done = {name: (loss, delay_s) for _, _, loss, delay_s, name in updates}
        for dev in clients:
            if dev.name not in done:
                sim.trace.record(sim.now, sim.now, dev.name, "failed_participation", peer=server.name,
                                 detail="left the road segment before its upload completed")
        reward = utilities({d.name: done.get(d.name) for d in clients}, cfg.loss_weight)
        for dev in clients:
            bandit.update(dev.name, dev.name in done, reward[dev.name])
        if updates:
            global_state = yield from aggregate(sim, server, updates)
        ratios = [bandit.participation_ratio(d.name) for d in clients]
        sim.close_round(rnd, global_state, [u[2] for u in updates], clients=len(clients), updates=len(updates),
                        failed=len(clients) - len(updates), participation_ratio=float(np.nanmean(ratios)))
        return global_state, bandit

    yield from round_loop(sim, lambda: (learner.initial_state(), Bandit()), one_round)


def choose(sim, cfg: MavflConfig, bandit: Bandit) -> list:
    """The round's vehicles among those in range now, per `cfg.selection`."""
    if cfg.selection == "all":
        return sim.select(None)
    if cfg.selection == "random":
        return sim.select(cfg.participants)
    pool = sim.select(None)
    return bandit.select(pool, cfg.participants or len(pool), cfg.exploration, sim.rng("selection"))


def timed(sim, cfg: MavflConfig, dev, server, global_state):
    """FedAvg's client round, timed: returns (upload, samples, loss, delay_s, vehicle name)."""
    t0 = sim.now
    upload, n, loss = yield from client_update(sim, cfg, dev, server, global_state)
    return upload, n, loss, sim.now - t0, dev.name
