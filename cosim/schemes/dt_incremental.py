"""Digital-twin-assisted resource allocation and incremental learning (arXiv 2411.18329): several
base stations (edge servers) serve mobile users whose local data drifts; each user's model lives
at its base station, answers the user's requests every epoch, and is retrained there on new data
when the twin says it drifted.

Each round is one small-timescale epoch. Every user sends its queued requests (the real token ids
of `requests` samples of the domain it sees now, `cosim.learn.drift`) to its base station, which
runs the user's model on them at the user's share of its compute (processor sharing:
`control.compute_share_of`) and sends the predictions back; a user flagged to retrain
(`control.retrain_of`) then uploads `local_steps` minibatches of its new data and the station
trains its adapters on them, at the same share. A user whose base station changed has its adapters
moved over the backhaul first. The user's epoch delay is its transmission + computation +
retraining time; the system delay of the epoch (rounds.csv `delay_s`) is their sum, the quantity
the paper minimizes over the long term; accuracy is the users' mean on their current domain's
held-out rows.

The decisions come from the controller (`control.controller: dt`, cosim.control.dt): association
and retraining on the large timescale from the twin's statistics this scheme publishes (each
user's queued requests, drift indicator, expected FLOPs and bytes — measured once on a held-out
probe batch with the run's meter, before the first epoch), compute shares on the small one.
Requests for the next epoch are drawn at the end of each (stream `requests/<user>`), so the
controller sees the queue it allocates for.

Modelling choices: the users' domain schedule (`domains`, every `drift_every_rounds` rounds, each
user at its own phase); a model starts untrained on any domain (drift indicator 1), so the first
large-timescale decision retrains it; models are not evaluated at a cost (a measurement).
Not resumable: the users' models and data streams are not a round_loop state yet.

Reproduces: arXiv 2411.18329, the two-timescale DRL allocation's lower long-term system delay at kept
accuracy — scenarios/dt_incremental.yaml,
tests/test_dt_incremental.py::test_the_two_timescale_drl_scheme_has_the_lowest_long_term_delay_at_kept_accuracy.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, field_validator

from ..learn.data import SOURCES
from ..learn.drift import DomainStreams, DriftSchedule
from ..learn.training import lengths_of
from ..world.events import declare
from .base import LoraRequired, scheme

declare("request", "transfer", "a user's queued inference requests (token ids and lengths) to its base station",
        by="dt_incremental")
declare("response", "transfer", "a base station's predictions for a user's requests", by="dt_incremental")
declare("new_data", "transfer", "a user's new labelled data for incremental retraining at its base station",
        by="dt_incremental")
declare("model_move", "transfer", "a user's model moved between base stations over the backhaul after a handover",
        by="dt_incremental")
declare("infer", "compute", "a forward pass answering requests (no backward)", by="dt_incremental")


class DtIncrementalConfig(LoraRequired):
    name: str = "dt_incremental"
    controllers: ClassVar[tuple[str, ...]] = ("fixed", "dt")
    domains: list[str] = Field(list(SOURCES), min_length=1, description="the drift schedule: the domains each "
                               "user's data moves through, in order (data.dataset: vader_sentiment holds all four)")
    drift_every_rounds: int = Field(8, ge=1, description="epochs a user stays on a domain")
    requests: tuple[int, int] = Field((1, 16), description="[fewest, most] samples a user queues per epoch "
                                      "(uniform), at most batch_size")
    local_steps: int = Field(3, ge=1, description="minibatches of new data per incremental retraining")

    @field_validator("domains")
    @classmethod
    def _known(cls, v):
        unknown = [d for d in v if d not in SOURCES]
        if unknown:
            raise ValueError(f"unknown domain {unknown[0]!r}; allowed: {', '.join(SOURCES)}")
        return v

    def problems(self, depth, source, device_profiles) -> list[str]:
        problems = super().problems(depth, source, device_profiles)
        low, high = self.requests
        if not 1 <= low <= high <= self.batch_size:
            problems.append(f"scheme.requests: {[low, high]}; allowed: 1 <= fewest <= most <= batch_size "
                            f"({self.batch_size})")
        return problems


@scheme("dt_incremental", config=DtIncrementalConfig,
        summary="DT-assisted two-timescale resource allocation and incremental learning under data drift")
def run(sim, cfg: DtIncrementalConfig):
    learner, users = sim.learner, list(sim.devices)
    names = [u.name for u in users]
    offsets = sim.rng("drift/offsets").integers(cfg.drift_every_rounds, size=len(users))
    schedule = DriftSchedule(cfg.domains, cfg.drift_every_rounds, dict(zip(names, offsets.tolist())))
    streams = DomainStreams(learner, names, cfg.domains, sim.rng, cfg.batch_size)
    models = {n: learner.local(learner.initial_state()) for n in names}
    learned: dict[str, str | None] = dict.fromkeys(names)   # the domain each model last retrained on
    versions = dict.fromkeys(names, 0)                       # retrainings of each model so far
    scored: dict[tuple, tuple[float, float]] = {}            # (model version, domain) -> (accuracy, loss)
    host = dict.fromkeys(names)                              # the base station holding each model
    for bs in sim.edge:
        bs.memory.resident("weights", learner.weight_bytes())
    twin = _probe(sim, cfg, streams)
    requests = {}

    def queue_next(rnd: int) -> None:
        """Draw each user's requests for epoch `rnd` and publish the twin's view of it."""
        low, high = cfg.requests
        for n in names:
            requests[n] = int(sim.rng(f"requests/{n}").integers(low, high + 1))
        sim.control.expect(queue={n: requests[n] / high for n in names},
                           drift={n: float(learned[n] != schedule.domain(n, rnd)) for n in names},
                           work_flops={n: requests[n] * twin["flops_per_request"] for n in names},
                           upload_bytes={n: requests[n] * twin["bytes_per_request"] for n in names},
                           retrain_flops=twin["retrain_flops"])

    queue_next(1)
    for rnd in sim.rounds():
        served = yield from sim.gather(
            _epoch(sim, cfg, u, sim.network.serving_ap(u), models[u.name], host, streams,
                   schedule.domain(u.name, rnd), requests[u.name], learned, versions) for u in users)
        delays = [delay for delay, _ in served.results]
        losses = [loss for _, loss in served.results if loss == loss]
        scores = [_score(scored, streams, models[n], (n, versions[n]) if versions[n] else "initial",
                         schedule.domain(n, rnd)) for n in names]
        accuracy = sum(a for a, _ in scores) / len(scores)
        eval_loss = sum(l for _, l in scores) / len(scores)
        sim.close_round(rnd, None, losses, evaluate=lambda: (accuracy, eval_loss), delay_s=sum(delays),
                        mean_delay_s=sum(delays) / max(1, len(delays)),
                        retrained=sum(1 for u in users if sim.control.retrain_of(u)))
        queue_next(rnd + 1)


def _epoch(sim, cfg, user, bs, model, host, streams, domain, samples, learned, versions):
    """One user's epoch: its requests answered at `bs`, then its retraining if flagged.
    Returns (delay_s, mean retraining loss or nan)."""
    t0 = sim.now
    name = user.name
    if host[name] is not None and host[name] is not bs:   # handed over: its adapters follow it
        with (yield from sim.send(host[name], bs, model.state(), kind="model_move")):
            pass
    host[name] = bs
    share = sim.control.compute_share_of(user)
    batch = streams.batch(name, domain, samples)
    with (yield from sim.send(user, bs, _wire(batch), kind="request")):
        logits = yield from bs.compute(model.predict_logits, batch, kind="infer", share=share)
    with (yield from sim.send(bs, user, logits.argmax(-1).to(torch.int32), kind="response")):
        pass
    losses = []
    if sim.control.retrain_of(user):
        for _ in range(cfg.local_steps):
            new = streams.batch(name, domain)
            with (yield from sim.send(user, bs, {**_wire(new), "labels": new.labels}, kind="new_data")):
                losses.append((yield from bs.compute(model.train_step, new, kind="train", share=share)))
        learned[name] = domain
        versions[name] += 1
    return sim.now - t0, (sum(losses) / len(losses) if losses else float("nan"))


def _score(scored, streams, model, version, domain) -> tuple[float, float]:
    """(accuracy, loss) of a model on a domain, computed once per model version (a model changes
    only when it retrains; the untrained models are all the initial one) — the same numbers as
    scoring it every epoch, without re-running the held-out batches."""
    if (version, domain) not in scored:
        scored[version, domain] = streams.accuracy(model, domain)
    return scored[version, domain]


def _wire(batch) -> dict:
    """What a user sends of a batch: token ids and per-row lengths (cheaper than the mask)."""
    return {"input_ids": batch.input_ids, "lengths": lengths_of(batch.attention_mask)}


def _probe(sim, cfg, streams) -> dict:
    """The twin's cost statistics, measured once on a held-out batch of the first domain with the
    run's meter and codec (no simulated time: what the operator's twin knows of the model):
    FLOPs per request answered, bytes per request sent, FLOPs of one retraining."""
    learner = sim.learner
    probe = streams.test[cfg.domains[0]][0]
    rows = probe.input_ids.shape[0]
    scratch = learner.local(learner.initial_state())
    _, infer = sim.meter.run(("dt_probe", "infer", tuple(probe.input_ids.shape)), scratch.predict_logits, probe)
    _, train = sim.meter.run(("dt_probe", "train", tuple(probe.input_ids.shape)), scratch.train_step, probe)
    return {"flops_per_request": infer.flops / rows,
            "bytes_per_request": len(sim.codec.encode(_wire(probe))) / rows,
            "retrain_flops": cfg.local_steps * train.flops * cfg.batch_size / rows}
