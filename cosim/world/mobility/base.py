"""What every mobility config block shares: `build` makes the model for one device of a group.

Each model's config (the scenario's `mobility: {kind: ...}` block) sits beside the model in its
module; `cosim.scenario` composes them into one discriminated union and `cosim.run` calls `build`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...config import Strict

#: A generator shared by a whole device group, by what it draws ("arrivals", "sumo").
GroupRng = Callable[[str], np.random.Generator]


class MobilityConfig(Strict):
    """A mobility model's scenario block."""

    def build(self, rng: np.random.Generator, index_in_group: int = 0, centre_xy=(0.0, 0.0), *,
              group_size: int = 1, group_rng: GroupRng | None = None):
        """The model of device `index_in_group` of a group of `group_size`.

        `rng` is the device's own stream; `group_rng(what)` gives a stream shared by the group (the
        same draws for every member, e.g. the Poisson arrival times of a road); `centre_xy` is
        where positions drawn in an area are centred (the first access point).
        """
        raise NotImplementedError

    def ut_heights_m(self) -> list[tuple[str, float]]:
        """Antenna heights known before the run, with the field that sets each, so the scenario can
        check them against the path-loss model's range (TR 38.901 Table 7.4.1-1)."""
        height = getattr(self, "height_m", None)
        return [] if height is None else [("height_m", float(height))]


def shared_rng(rng: np.random.Generator, group_rng: GroupRng | None, what: str) -> np.random.Generator:
    """The group's stream for `what`; without one (a model built alone), a stream drawn from `rng`."""
    if group_rng is None:
        return np.random.default_rng(int(rng.integers(2**62)))
    return group_rng(what)
