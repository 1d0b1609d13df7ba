"""Client order policies for schemes whose model visits clients one after another (sequential FL,
CyclicFL's cyclic phase, vanilla split learning), after the unified permutation analysis of
shuffling SGD (Mishchenko et al. 2020; Lu et al. 2022):

- ``random_reshuffle``: a fresh random permutation of the round's clients every round.
- ``fixed``: one random permutation of all devices, drawn once; each round visits its clients in
  that order.
- ``grab``: a dependent permutation chosen from the previous round's per-client update
  directions by greedy herding (Lu et al., "GraB: Finding Provably Better Data Permutations than
  Random Reshuffling", NeurIPS 2022, the offline greedy ordering of their §3): centre the
  directions on their mean, then repeatedly append the client whose centred direction keeps the
  running sum's norm smallest, so every prefix of the order stays close to the average direction.
  Clients without a direction yet (first round, or not selected last round) follow, in random
  order.

All randomness comes from the generator the scheme passes (its stream, e.g. ``sim.rng("order")``);
``random_reshuffle`` draws exactly one ``permutation(len(clients))`` per round.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

OrderPolicy = Literal["random_reshuffle", "fixed", "grab"]
ORDER_POLICIES = ("random_reshuffle", "fixed", "grab")


def flat_direction(before: dict, after: dict) -> torch.Tensor:
    """The update (after − before) of a parameter state as one flat float32 vector."""
    return torch.cat([(after[k].float() - before[k].float()).reshape(-1) for k in sorted(before)])


def herding_order(directions: list[torch.Tensor]) -> list[int]:
    """Greedy herding: the permutation whose prefix sums of the centred directions stay smallest."""
    n = len(directions)
    if n <= 1:
        return list(range(n))
    g = torch.stack([d.float() for d in directions])
    c = g - g.mean(dim=0, keepdim=True)
    running = torch.zeros_like(c[0])
    left, order = list(range(n)), []
    while left:
        norms = [float(torch.linalg.vector_norm(running + c[i])) for i in left]
        pick = left[int(np.argmin(norms))]
        order.append(pick)
        running += c[pick]
        left.remove(pick)
    return order


class ClientOrder:
    """Orders each round's clients per `policy`; `observe` feeds grab the clients' update directions."""

    def __init__(self, policy: str, rng: np.random.Generator):
        if policy not in ORDER_POLICIES:
            raise ValueError(f"order: {policy!r} unknown; allowed: {', '.join(ORDER_POLICIES)}")
        self.policy, self.rng = policy, rng
        self._rank: dict[str, int] | None = None
        self._directions: dict[str, torch.Tensor] = {}
        self._pending: dict[str, torch.Tensor] = {}

    def order(self, clients: list, all_devices: list | None = None) -> list:
        """This round's visiting order of `clients` (nodes with a `.name`)."""
        if self.policy == "random_reshuffle":
            return [clients[i] for i in self.rng.permutation(len(clients))]
        if self.policy == "fixed":
            if self._rank is None:
                pool = list(all_devices if all_devices is not None else clients)
                self._rank = {pool[i].name: r for r, i in enumerate(self.rng.permutation(len(pool)))}
            last = len(self._rank)
            return sorted(clients, key=lambda d: (self._rank.get(d.name, last), d.name))
        # grab: herd the clients seen last round, then the rest in random order
        self._directions, self._pending = self._pending, {}
        known = [d for d in clients if d.name in self._directions]
        rest = [d for d in clients if d.name not in self._directions]
        herded = [known[i] for i in herding_order([self._directions[d.name] for d in known])]
        return herded + [rest[i] for i in self.rng.permutation(len(rest))]

    def observe(self, client_name: str, direction: torch.Tensor) -> None:
        """The update direction a client produced this round (used by grab next round)."""
        if self.policy == "grab":
            self._pending[client_name] = direction.detach()
