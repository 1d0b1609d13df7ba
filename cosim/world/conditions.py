"""Dynamic device conditions: the compute share a device has left for training (background load),
its radio level, and whether it is there at all, as seeded stochastic processes of time.

Three processes per device, each piecewise constant:

- ``compute_share(t)`` in (0, 1]: the fraction of the profile's FLOP/s training gets at time t
  (`Node.effective_flops` multiplies by it; a compute step uses the share at its start).
- ``radio_share(t)`` in (0, 1]: a factor on the device's radio rate (`RadioLink.rate_bps`
  multiplies the Shannon rate by it: the device gets that fraction of the capacity its share of
  the band would give, e.g. interference or a congested scheduler). The THz-ISAC link
  (`thz_link.ThzIsacLink`) does not read it (nor availability) yet.
- ``available(t)``: an on/off process. While off the device is out of coverage (its flows stall
  and the outage policy applies, `sim.select` does not pick it) and it computes nothing (a compute
  step that would start while it is off waits until it is back).

Models (``kind``):

- ``static``: share 1, always there (the default for every node).
- ``markov``: each process is a discrete-time Markov chain with holding time ``step_s``: over
  ``levels`` with a row-stochastic ``transition`` matrix, or ``stay`` (probability of keeping the
  level; the rest spread evenly over the other levels). The first level is drawn from the chain's
  stationary distribution. Availability is a two-state chain with ``p_leave`` (on → off per
  step) and ``p_return`` (off → on per step); a device starts on.
- ``trace``: a replayed CSV with columns ``t,device,compute_share,bandwidth_share`` and optional
  ``available`` (0/1); each row holds from its t until the device's next row (before the first
  row: the first row's values).

Lazy like mobility: nothing ticks. A chain's path is drawn step by step only as far as the latest
time asked, from the device's own streams ``conditions/<device>/compute``, ``…/radio``,
``…/availability`` (so one device's draws never depend on another's, nor on who asks when).
``next_change_s(t)`` says when any value may change next, so the network can wake a stalled flow
when the device comes back.
"""
from __future__ import annotations

import bisect
import csv
import math
from pathlib import Path

import numpy as np

from ..config import given, is_file


class StaticConditions:
    """Full compute share, full radio, always available."""

    kind = "static"

    def compute_share(self, t_s: float) -> float:
        return 1.0

    def radio_share(self, t_s: float) -> float:
        return 1.0

    def available(self, t_s: float) -> bool:
        return True

    def next_change_s(self, t_s: float) -> float:
        return math.inf

    def next_available_s(self, t_s: float) -> float:
        """The first time >= t at which the device is available (inf if never)."""
        return t_s


def stay_matrix(n: int, stay: float) -> np.ndarray:
    """Transition matrix that keeps its level with probability `stay`, else moves uniformly."""
    if n == 1:
        return np.ones((1, 1))
    p = np.full((n, n), (1.0 - stay) / (n - 1))
    np.fill_diagonal(p, stay)
    return p


def stationary(p: np.ndarray) -> np.ndarray:
    """Stationary distribution π of a row-stochastic matrix (π P = π, Σπ = 1)."""
    n = len(p)
    a = np.vstack([p.T - np.eye(n), np.ones(n)])
    b = np.concatenate([np.zeros(n), [1.0]])
    pi = np.linalg.lstsq(a, b, rcond=None)[0]
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


class MarkovChain:
    """A discrete-time Markov chain over `levels`, one step every `step_s`, drawn lazily."""

    def __init__(self, levels, transition, step_s: float, rng: np.random.Generator, initial: int | None = None):
        self.levels = np.asarray(levels, dtype=float)
        self.p = np.asarray(transition, dtype=float)
        n = len(self.levels)
        if self.p.shape != (n, n) or np.any(self.p < 0) or not np.allclose(self.p.sum(axis=1), 1.0):
            raise ValueError(f"transition: needs a {n}x{n} row-stochastic matrix")
        if step_s <= 0:
            raise ValueError("step_s: must be > 0")
        self.step_s, self.rng = float(step_s), rng
        self._cum = np.cumsum(self.p, axis=1)
        first = int(rng.choice(n, p=stationary(self.p))) if initial is None else int(initial)
        self.states = [first]

    def state_at_step(self, k: int) -> int:
        while len(self.states) <= k:
            row = self._cum[self.states[-1]]
            self.states.append(min(int(np.searchsorted(row, self.rng.random(), side="right")), len(row) - 1))
        return self.states[k]

    def step_of(self, t_s: float) -> int:
        return max(int(math.floor(t_s / self.step_s)), 0)

    def value(self, t_s: float) -> float:
        return float(self.levels[self.state_at_step(self.step_of(t_s))])

    def next_change_s(self, t_s: float) -> float:
        """The next step boundary after t (the level may stay the same there)."""
        if len(self.levels) == 1:
            return math.inf
        return (self.step_of(t_s) + 1) * self.step_s


class MarkovConditions(StaticConditions):
    """Compute share, radio share and availability as independent Markov chains (see module doc)."""

    kind = "markov"

    def __init__(self, compute: MarkovChain | None, radio: MarkovChain | None, availability: MarkovChain | None):
        self.compute, self.radio, self.availability = compute, radio, availability

    def compute_share(self, t_s: float) -> float:
        return 1.0 if self.compute is None else self.compute.value(t_s)

    def radio_share(self, t_s: float) -> float:
        return 1.0 if self.radio is None else self.radio.value(t_s)

    def available(self, t_s: float) -> bool:
        return True if self.availability is None else bool(self.availability.value(t_s) > 0)

    def next_change_s(self, t_s: float) -> float:
        return min((c.next_change_s(t_s) for c in (self.compute, self.radio, self.availability) if c is not None),
                   default=math.inf)

    def next_available_s(self, t_s: float, horizon_steps: int = 1_000_000) -> float:
        if self.availability is None or self.available(t_s):
            return t_s
        chain = self.availability
        k = chain.step_of(t_s)
        for j in range(k + 1, k + 1 + horizon_steps):
            if chain.levels[chain.state_at_step(j)] > 0:
                return j * chain.step_s
        return math.inf


class TraceConditions(StaticConditions):
    """Replayed rows (t, compute_share, bandwidth_share, available) of one device."""

    kind = "trace"

    def __init__(self, times, compute, radio, available):
        if len(times) == 0:
            raise ValueError("a trace device needs at least one row")
        self.times, self.c, self.r, self.a = list(times), list(compute), list(radio), list(available)

    def _i(self, t_s: float) -> int:
        return max(bisect.bisect_right(self.times, t_s) - 1, 0)

    def compute_share(self, t_s):
        return self.c[self._i(t_s)]

    def radio_share(self, t_s):
        return self.r[self._i(t_s)]

    def available(self, t_s):
        return self.a[self._i(t_s)]

    def next_change_s(self, t_s):
        j = bisect.bisect_right(self.times, t_s)
        return self.times[j] if j < len(self.times) else math.inf

    def next_available_s(self, t_s):
        if self.available(t_s):
            return t_s
        for j in range(bisect.bisect_right(self.times, t_s), len(self.times)):
            if self.a[j]:
                return self.times[j]
        return math.inf


def load_conditions_trace(path) -> dict[str, tuple[list, list, list, list]]:
    """CSV t,device,compute_share,bandwidth_share[,available] → {device: (times, c, r, a)} sorted by t."""
    p = Path(path)
    if not is_file(p):
        raise ValueError(f"{given(str(path))}: file not found")
    rows: dict[str, list] = {}
    try:
        f = p.open(newline="")
    except OSError as exc:   # a folder, no permission
        raise ValueError(f"{given(str(path))}: cannot read ({exc.strerror})") from None
    with f:
        reader = csv.DictReader(f)
        need = {"t", "device", "compute_share", "bandwidth_share"}
        if not need <= set(reader.fieldnames or []):
            raise ValueError(f"{path}: needs columns {sorted(need)} (optional: available)")
        for i, row in enumerate(reader, start=2):
            try:
                t, c, r = float(row["t"]), float(row["compute_share"]), float(row["bandwidth_share"])
                a = bool(int(float(row.get("available") or 1)))
            except ValueError as exc:
                raise ValueError(f"{path}: line {i}: {exc}") from exc
            if not (0 < c <= 1 and 0 < r <= 1):
                raise ValueError(f"{path}: line {i}: compute_share and bandwidth_share must be in (0, 1]")
            rows.setdefault(row["device"], []).append((t, c, r, a))
    return {d: tuple(map(list, zip(*sorted(v)))) for d, v in rows.items()}


def _chain(spec, step_s: float, rng) -> MarkovChain | None:
    if spec is None:
        return None
    levels = list(spec.levels)
    p = np.asarray(spec.transition) if spec.transition is not None else stay_matrix(len(levels), spec.stay)
    return MarkovChain(levels, p, step_s, rng)


def build_conditions(cfg, sim, device_name: str):
    """The conditions object of device `device_name` from a scenario's `conditions:` block."""
    if cfg is None or cfg.kind == "static":
        return StaticConditions()
    if cfg.kind == "trace":
        table = load_conditions_trace(cfg.file)
        key = device_name if device_name in table else None
        if key is None:
            return StaticConditions()  # a device the trace does not list keeps full conditions
        return TraceConditions(*table[key])
    base = f"conditions/{device_name}"
    avail = None
    if cfg.availability is not None:
        a = cfg.availability
        p = np.array([[1 - a.p_return, a.p_return], [a.p_leave, 1 - a.p_leave]])
        avail = MarkovChain([0.0, 1.0], p, cfg.step_s, sim.rng(f"{base}/availability"), initial=1)
    return MarkovConditions(_chain(cfg.compute, cfg.step_s, sim.rng(f"{base}/compute")),
                            _chain(cfg.radio, cfg.step_s, sim.rng(f"{base}/radio")), avail)
