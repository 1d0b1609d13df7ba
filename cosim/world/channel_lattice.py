"""Common random numbers for radio links: a link's random state as a pure function of (seed, link, where, when).

Two schemes compared on one world (`cosim compare`) must see the same channel for the same device at
the same simulated time, whatever each asked before. A link that draws from one stream in the order
it is asked cannot give that: a scheme that asked at other moments sees other shadowing and fading.
Here every draw has a fixed place, and its numbers come from a counter-based seed
(`cosim.world.engine.stream_seed`, as the mobility groups' streams do):

* **large scale** (shadow fading, LOS state) on a lattice of points along the device's path
  (`PathLattice`): point 0 is where the device is at its entry time, point k+1 the first position
  after point k that lies `step_m` (straight line) from it — the points a link re-evaluating every
  `reevaluate_distance_m` visits, fixed by the trajectory alone. Point k's standard normals are row
  k % CHUNK of `stream_seed(seed, f"{stream}/large/{k // CHUNK}")`, and each of the lattice's
  processes is a unit Gauss–Markov chain over the points with rho = exp(-Δd / d_cor) (Gudmundson
  1991; TR 38.901 §7.6.3.1), Δd the distance between consecutive points.
* **small scale** (fading) on a grid of coherence blocks in time (`block_draw`): the block of
  length T covering t is k = floor(t / T), [kT, (k+1)T); its draws come from
  `stream_seed(seed, f"{stream}/fade/{T!r}/{k}")`.
"""
from __future__ import annotations

import math

import numpy as np

from channels.shadowing import gauss_markov_next

from .engine import stream_generator

#: Lattice points whose normals one seeded draw gives (one generator per CHUNK points, not per point).
CHUNK = 256
#: A crossing is reached when the straight-line distance is within this of `step_m` (float rounding).
_REACHED_M = 1e-9
#: Steps of the crossing search before it stops at where it got (a deterministic bound, so a device
#: that stands still for very many motion changes still gets a next lattice point).
_MAX_SEARCH_STEPS = 10_000


def block_draw(seed: int, name: str, block_s: float, t_s: float) -> tuple[np.random.Generator, float]:
    """(generator of the block of `block_s` covering t, the block's end): block k = floor(t / block_s),
    its generator seeded by `stream_seed(seed, f"{name}/{block_s!r}/{k}")` (name: e.g. "channel/dev3/fade")."""
    k = math.floor(t_s / block_s)
    end_s = (k + 1) * block_s
    if end_s <= t_s:   # float rounding at a block edge: t belongs to the next block
        k += 1
        end_s = (k + 1) * block_s
    return stream_generator(seed, f"{name}/{block_s!r}/{k}"), end_s


class PathLattice:
    """The lattice of points `step_m` apart along one device's path, and unit Gauss–Markov processes on it.

    `at(t)` gives the lattice point the device is in at t (entered at or before t, left after): its
    index, position, the time the next point is reached (inf if never) and the values of the
    processes, one per correlation distance in `decorrelation_m`. Asked in time order it walks
    forward; asked about an earlier time it walks again from the start (the same points, the same
    numbers). A device must be present at t (its position not None).
    """

    def __init__(self, mobility, step_m: float, seed: int, stream: str, decorrelation_m: tuple[float, ...]):
        self.mobility, self.step_m = mobility, float(step_m)
        self.seed, self.stream = int(seed), stream
        self.decorrelation_m = tuple(float(d) for d in decorrelation_m)
        self._chunk_index, self._chunk = -1, None
        self._k = -1          # the current point (-1: not started)

    # --- the walk -------------------------------------------------------------------------------
    def at(self, t_s: float) -> tuple[int, np.ndarray, float, np.ndarray]:
        """(k, position_m of point k, time point k+1 is reached, process values at point k)."""
        if self._k < 0 or t_s < self._t:
            self._start()
        while self._next_t <= t_s:
            self._step()
        return self._k, self._p, self._next_t, self._values

    def _start(self) -> None:
        entry = getattr(self.mobility, "entry_time_s", None)
        self._k, self._t = 0, (float(entry()) if entry is not None else 0.0)
        self._p = np.asarray(self.mobility.position_m(self._t), dtype=float)
        self._values = self._normals(0)
        self._next_t = self._crossing(self._t, self._p)

    def _step(self) -> None:
        t = self._next_t
        p = self.mobility.position_m(t)
        if p is None:   # the device has left at that instant: the last point holds to the end
            self._next_t = math.inf
            return
        p = np.asarray(p, dtype=float)
        moved_m = float(np.linalg.norm(p - self._p))
        self._k += 1
        normals = self._normals(self._k)
        self._values = np.array([gauss_markov_next(v, n, moved_m, d) for v, n, d in
                                 zip(self._values.tolist(), normals.tolist(), self.decorrelation_m)])
        self._t, self._p = t, p
        self._next_t = self._crossing(t, p)

    def _normals(self, k: int) -> np.ndarray:
        chunk = k // CHUNK
        if chunk != self._chunk_index:
            gen = stream_generator(self.seed, f"{self.stream}/large/{chunk}")
            self._chunk_index, self._chunk = chunk, gen.standard_normal((CHUNK, max(len(self.decorrelation_m), 1)))
        return self._chunk[k % CHUNK, :len(self.decorrelation_m)]

    def _crossing(self, t0_s: float, p0: np.ndarray) -> float:
        """The first time after t0 at which the device is `step_m` from p0 (straight line), found
        along its motion: within a stretch of constant velocity the straight-line distance grows at
        most at the speed, so t + (step − distance) / speed never overshoots; a velocity change a
        model announces (`motion_change_s`: a turn, a pause, a wrap-around) is stepped to and
        checked. inf when the device stands still for good; its exit time when it leaves first."""
        mob, step = self.mobility, self.step_m
        change_of = getattr(mob, "motion_change_s", None)
        t = t0_s
        for _ in range(_MAX_SEARCH_STEPS):
            exit_s = mob.exit_time_s()
            if t >= exit_s:
                return exit_s
            change = change_of(t) if change_of is not None else math.inf
            speed = mob.speed_mps(t)
            if speed > 0:
                p = mob.position_m(t)
                if p is None:
                    return t
                left_m = step - float(np.linalg.norm(np.asarray(p, dtype=float) - p0))
                if left_m <= _REACHED_M and t > t0_s:
                    return t
                t_next = t + max(left_m, 0.0) / speed
                if t_next <= t:   # below the clock's resolution: this is the crossing
                    return math.nextafter(t, math.inf)
                if t_next < change:
                    t = t_next
                    continue
            if not math.isfinite(change) or change <= t:
                return math.inf
            t = change   # the velocity changes (or the device jumps): look from there
            p = mob.position_m(t)
            if p is None:
                return t
            if float(np.linalg.norm(np.asarray(p, dtype=float) - p0)) >= step - _REACHED_M:
                return t
        return t
