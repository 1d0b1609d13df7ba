"""Local data that drifts: each user's stream moves through domains on a schedule (movie reviews →
tweets → Amazon → NYT, the sources of `vader_sentiment`), and its model is scored on the domain
it sees now — what incremental learning at the edge reacts to (arXiv 2411.18329, §II: each user's
data distribution changes over time and its model's accuracy decays until it is retrained on new
data).

Pure bookkeeping over the learner's splits: which domain a user sees in a round, the user's
batches of that domain (disjoint rows per user, each stream with its own seeded generator), and
held-out batches per domain to score a model on.
"""
from __future__ import annotations

import numpy as np

from .data import ClientData
from .training import Batch, _fold, score


class DriftSchedule:
    """User k sees `domains[((rnd - 1 + offset_k) // every_rounds) % len(domains)]` in round `rnd`:
    every user moves to the next domain every `every_rounds` rounds, each at its own phase
    (`offsets`, drawn once), so the users do not all shift at once."""

    def __init__(self, domains: list[str], every_rounds: int, offsets: dict[str, int]):
        self.domains, self.every_rounds, self.offsets = list(domains), int(every_rounds), dict(offsets)

    def domain(self, user: str, rnd: int) -> str:
        step = (max(rnd, 1) - 1 + self.offsets[user]) // self.every_rounds
        return self.domains[step % len(self.domains)]


class DomainStreams:
    """Per user and domain, the user's own rows of that domain (the domain's training rows split
    evenly among the users) drawn as minibatches; per domain, its held-out rows as batches."""

    def __init__(self, learner, users: list[str], domains: list[str], rng_of, batch_size: int):
        self.learner = learner
        train, test = learner.train, learner.test
        self.streams: dict[tuple[str, str], ClientData] = {}
        self.test: dict[str, list[Batch]] = {}
        for domain in domains:
            rows = np.flatnonzero(train.domains == domain)
            if len(rows) < len(users):
                raise ValueError(f"domain {domain!r} has {len(rows)} training rows for {len(users)} users; "
                                 "allowed: a dataset with the domain's rows (data.dataset: vader_sentiment)")
            for user, part in zip(users, np.array_split(rng_of(f"drift/rows/{domain}").permutation(rows), len(users))):
                self.streams[user, domain] = ClientData(train, part, rng_of(f"drift/{user}/{domain}"), batch_size)
            held = np.flatnonzero(test.domains == domain)
            self.test[domain] = [learner.encode([test.texts[i] for i in chunk], _labels(test, chunk))
                                 for chunk in np.array_split(held, max(1, -(-len(held) // 64))) if len(chunk)]

    def batch(self, user: str, domain: str, samples: int | None = None) -> Batch:
        """The user's next rows of `domain` (the first `samples` of a minibatch, or all of it)."""
        rows = self.streams[user, domain].next_indices()
        return self.learner.batch_of_rows(rows if samples is None else rows[:samples])

    def accuracy(self, local, domain: str) -> tuple[float, float]:
        """(accuracy, mean loss) of a model (`LocalModel`) on `domain`'s held-out rows."""
        return _fold(score(local.predict_logits(b), b.labels) for b in self.test[domain])


def _labels(ds, rows):
    import torch

    return torch.from_numpy(ds.labels[rows].astype(np.int64))
