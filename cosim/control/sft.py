"""SFT's two-timescale resource manager (Split Fine-Tuning, arXiv 2501.09237): minimise the
fine-tuning delay under device-memory and accuracy constraints.

The paper's abstract is what we have; the formulation here is ours and says so:

- **Round delay model.** Device i with cut c, top-k keep ratio ρ (kept values quantized to `bits`,
  then losslessly coded) and band share s finishes its round in
  T_i = M(c)/R↓(s) + K·[t_i(fwd(c)) + A(c,ρ)/R↑(s) + t_srv(srv(c)) + G(c,ρ)/R↓(s) + t_i(bwd(c))] + M(c)/R↑(s)
  — the part's download, K local split steps, the part's upload — with the steps' costs (FLOPs and
  bytes moved) measured by the run's meter on a probe batch (`costs.measure_split_costs`) and timed
  by the node's own compute model, t = FLOPs / f or, under the roofline, max(FLOPs / f, bytes moved /
  memory bandwidth) (`Node.step_duration_s`), bytes A (activation up), G (gradient down),
  M (the device part) measured by encoding the probe with the real codecs, R the Shannon rate of
  the share at the link's current large-scale state. The round takes max_i T_i (server queueing is
  not modelled: the edge server's steps are short next to the radio; the prediction test bounds
  the error).
- **Accuracy constraint.** We bound compression distortion, the proxy the abstract allows: the
  sample-weighted mean relative L2 error of the decoded cut activation, Σ w_i D(c_i, ρ_i) ≤ ε
  (`control.distortion_bound`), D measured on the probe. Weighting by samples lets a device on a
  poor link compress harder while a device on a good one compresses less. The default 0.35 is our
  choice, not the paper's: on MiniLM's cut activations it lets the slowest devices keep ~3 % of
  the values while the mean error stays near what 4-bit quantization alone costs (0.25 on a
  Gaussian tensor), and in compare_sft.yaml it cost no accuracy beyond the spread between runs
  (SFT 0.773 vs uncompressed 0.720 in one run, 0.750 vs 0.790 in another, 300 held-out rows).
- **Memory constraint.** A cut is feasible for a device when its part (weights, gradients,
  optimizer state) plus the activations its forward saves fit the device's memory.
- **Large timescale** (every `large_every_rounds`): cuts and keep ratios. Continuous ρ by an
  augmented Lagrangian (Powell–Hestenes–Rockafellar; Nocedal & Wright 2006, §17.4) of
  min τ s.t. T_i(ρ_i) ≤ τ, Σ w_i D_i(ρ_i) ≤ ε, each subproblem solved by `scipy.optimize.minimize`
  (L-BFGS-B) with ρ ∈ [min_keep, 1]; integer cuts by coordinate descent over each device's
  feasible cuts (each candidate scored by the continuous solve).
- **Small timescale** (every round, or every `small_every_s`): band shares by sequential
  quadratic programming (`scipy.optimize.minimize(method="SLSQP")`): min τ s.t. T_i(s_i) ≤ τ,
  Σ_{i at an AP} s_i ≤ 1, s_i ≥ min_share, at the rates the view reports now.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np
from scipy.optimize import minimize

from ..learn.accounting import StepCost
from ..learn.compress import CompressionConfig, make_codec
from .controllers import Controller
from .decision import Decision
from .view import step_seconds

BITS_PER_BYTE = 8
#: keep ratios at which bytes and distortion are measured on the probe (interpolated between, in log ρ)
KEEP_GRID_POINTS = 7
#: outer iterations of the augmented Lagrangian (multiplier updates) and the constraint violation
#: (in units of the dense round delay and of ε) it accepts
ALM_OUTER_ITERATIONS = 30
ALM_TOLERANCE = 1e-4


class SftController(Controller):
    name = "sft"
    decides_shares = True

    def __init__(self, config):
        super().__init__(config)
        self._tables: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        self.cuts: dict[str, int] = {}
        self.keeps: dict[str, float] = {}
        self.shares: dict[str, float] = {}

    # --- what the scheme publishes (view.extra) ------------------------------------------------
    # costs: SplitCosts for every candidate cut; local_steps; weights: samples per device;
    # fits(dev_view, cut) -> bool; codec_rng: a seeded Generator for probe encodings

    @property
    def dense_above(self) -> float:
        """The keep ratio above which a dense tensor is smaller on the wire than a sparse one: kept
        values cost b bits each plus (at best) a 1-bit-per-element bitmap, so sparse wins only
        below 1 − 1/b (b = bits, 32 for float32)."""
        return 1.0 - 1.0 / (self.config.bits or 32)

    def compression(self, keep: float) -> CompressionConfig:
        dense = keep >= self.dense_above
        return CompressionConfig(keep=None if dense else float(keep), bits=self.config.bits,
                                 lossless=self.config.lossless)

    def _table(self, cut: int, ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(log keep grid, activation bytes, gradient bytes, distortion) at `cut`, measured on the probe."""
        if cut not in self._tables:
            cost = ctx["costs"][cut]
            edge = self.dense_above   # the sizes jump there (sparse → dense): both sides on the grid
            keeps = np.unique(np.append(np.geomspace(self.config.min_keep, 1.0, KEEP_GRID_POINTS),
                                        [edge * (1 - 1e-6), edge]))
            up, down, dist = [], [], []
            for keep in keeps:
                codec = make_codec(self.compression(keep) if self.config.compress else None, ctx["codec_rng"])
                u, g, e = [], [], []
                for act, grad in zip(cost.activations, cost.gradients):   # the mean over the probes
                    data, error = codec.encode_with_error(act.to_message())   # error: the hidden states'
                    u.append(len(data))
                    g.append(len(codec.encode([grad])))
                    e.append(error)
                up.append(np.mean(u))
                down.append(np.mean(g))
                dist.append(np.mean(e))
            self._tables[cut] = (np.log(keeps), np.array(up, float), np.array(down, float), np.array(dist, float))
        return self._tables[cut]

    def _bytes_and_distortion(self, cut, keep, ctx):
        lk, up, down, dist = self._table(cut, ctx)
        x = math.log(min(max(keep, self.config.min_keep), 1.0))
        return float(np.interp(x, lk, up)), float(np.interp(x, lk, down)), float(np.interp(x, lk, dist))

    # --- the delay model -------------------------------------------------------------------------
    def delay_terms(self, dev, cut: int, share: float, ctx, server_step_s) -> tuple[float, float, float]:
        """(a, b, g) with T_i = a + b·A + g·G for activation bytes A and gradient bytes G per step:
        a the compute and part-exchange time, b and g = K·8 / rate up and down (inf when a rate is 0).
        A step's time is the node's own compute model on its measured cost (`view.step_seconds`: the
        roofline's max of FLOPs and bytes moved, as the simulation charges it); `server_step_s(cost)`
        times the server's."""
        cost, k = ctx["costs"][cut], ctx["local_steps"]
        r_up, r_down = dev.rate_bps(share, True), dev.rate_bps(share, False)
        if r_up <= 0 or r_down <= 0:
            return math.inf, math.inf, math.inf
        a = (k * (_device_step_s(dev, cost.fwd_cost, cost.fwd_flops)
                  + _device_step_s(dev, cost.bwd_cost, cost.bwd_flops)
                  + server_step_s(cost.server_cost if cost.server_cost is not None
                                  else StepCost(cost.server_flops, 0)))
             + cost.model_bytes * BITS_PER_BYTE * (1 / r_up + 1 / r_down))
        return a, k * BITS_PER_BYTE / r_up, k * BITS_PER_BYTE / r_down

    def device_round_s(self, dev, cut: int, keep: float, share: float, ctx, server_step_s) -> float:
        """T_i of the module docstring for one device."""
        a, b, g = self.delay_terms(dev, cut, share, ctx, server_step_s)
        if math.isinf(a):
            return math.inf
        up_b, down_b, _ = self._bytes_and_distortion(cut, keep, ctx)
        return a + b * up_b + g * down_b

    def predict_round_s(self, view, cuts, keeps, shares) -> float:
        ctx, srv_s = view.extra, server_step_s(view)
        times = [self.device_round_s(d, cuts[d.name], keeps[d.name], shares[d.name], ctx, srv_s)
                 for d in view.devices if d.in_coverage]
        return max(times) if times else 0.0

    # --- large timescale: cuts and keep ratios ---------------------------------------------------
    def large(self, sim, view) -> Decision:
        ctx = view.extra
        devs = [d for d in view.devices if d.in_coverage]
        if not devs:
            return Decision()
        covered = {ap: [n for n in members if view.device(n).in_coverage] for ap, members in view.by_ap().items()}
        shares = {d.name: self.shares.get(d.name, 1.0 / max(len(covered[d.ap]), 1)) for d in view.devices}
        feasible = {d.name: [c for c in sorted(ctx["costs"].cuts) if ctx["fits"](d, c)] for d in devs}
        for d in devs:
            if not feasible[d.name]:
                feasible[d.name] = [min(ctx["costs"].cuts)]
        cuts = {d.name: self.cuts.get(d.name, ctx["base_cut"]) if self.cuts.get(d.name, ctx["base_cut"])
                in feasible[d.name] else feasible[d.name][0] for d in devs}
        solve = self._solve_keeps if self.config.compress else self._dense
        best_t, keeps = solve(view, devs, cuts, shares)
        for _ in range(2):  # coordinate descent over each device's feasible cuts
            improved = False
            for d in devs:
                for c in feasible[d.name]:
                    if c == cuts[d.name]:
                        continue
                    trial = {**cuts, d.name: c}
                    t, k = solve(view, devs, trial, shares)
                    if t < best_t * (1 - 1e-9):
                        best_t, cuts, keeps, improved = t, trial, k, True
            if not improved:
                break
        self.cuts, self.keeps = dict(cuts), dict(keeps)
        compression = {n: self.compression(k) for n, k in keeps.items()} if self.config.compress else {}
        return Decision(cut=dict(cuts), compression=compression, predicted={"predicted_round_s_large": best_t})

    def _dense(self, view, devs, cuts, shares):
        """No compression (keep 1, float32): only the cut moves the delay."""
        ctx, srv_s = view.extra, server_step_s(view)
        keeps = {d.name: 1.0 for d in devs}
        return max(self.device_round_s(d, cuts[d.name], 1.0, shares[d.name], ctx, srv_s) for d in devs), keeps

    def _solve_keeps(self, view, devs, cuts, shares):
        """Augmented Lagrangian over x = (ρ_1..ρ_n, τ): min τ s.t. T_i(ρ_i) ≤ τ, Σ w_i D_i(ρ_i) ≤ ε.

        T_i(ρ) = a_i + b_i·A(c_i, ρ) + g_i·G(c_i, ρ) with a_i the compute and model-exchange time and
        b_i, g_i = K·8 / rate (`delay_terms`), vectorised over devices."""
        ctx, srv_s, eps = view.extra, server_step_s(view), self.config.distortion_bound
        lo = self.config.min_keep
        w = np.array([ctx["weights"][d.name] for d in devs], float)
        w = w / w.sum()
        a, b, g = np.array([self.delay_terms(d, cuts[d.name], shares[d.name], ctx, srv_s) for d in devs]).T
        if np.isinf(a).any():
            return math.inf, {x.name: 1.0 for x in devs}
        groups = {}
        for i, d in enumerate(devs):
            groups.setdefault(cuts[d.name], []).append(i)
        tables = {c: self._table(c, ctx) for c in groups}

        def evaluate(rho):
            x = np.log(np.clip(rho, lo, 1.0))
            up, down, dist = np.empty(len(rho)), np.empty(len(rho)), np.empty(len(rho))
            for c, idx in groups.items():
                lk, u, dn, e = tables[c]
                up[idx], down[idx], dist[idx] = np.interp(x[idx], lk, u), np.interp(x[idx], lk, dn), np.interp(x[idx], lk, e)
            return a + b * up + g * down, float(w @ dist)

        rho0 = np.ones(len(devs))
        t0, d0 = evaluate(rho0)
        if d0 > eps:  # keep 1 (quantization alone) already breaks the bound: no sparsification can help
            return float(t0.max()), {d.name: 1.0 for d in devs}
        scale = float(t0.max())
        x0 = np.append(rho0, 1.0)          # τ in units of the dense round delay
        lam, mu = np.zeros(len(devs) + 1), 10.0

        def constraints(x):
            t, dist = evaluate(x[:-1])
            return np.append(t / scale - x[-1], (dist - eps) / eps)

        def augmented(x):
            c = constraints(x)
            return x[-1] + (np.sum(np.maximum(0.0, lam + mu * c) ** 2) - np.sum(lam ** 2)) / (2 * mu)

        bounds = [(lo, 1.0)] * len(devs) + [(0.0, None)]
        x = x0
        for _ in range(ALM_OUTER_ITERATIONS):
            x = minimize(augmented, x, method="L-BFGS-B", bounds=bounds).x
            c = constraints(x)
            lam = np.maximum(0.0, lam + mu * c)
            if np.all(c <= ALM_TOLERANCE):
                break
            mu *= 2.0
        rho = np.clip(x[:-1], lo, 1.0)
        while evaluate(rho)[1] > eps:   # numerical slack of the solve: move back towards dense
            rho = np.minimum(1.0, rho * 1.05)
        return float(evaluate(rho)[0].max()), {d.name: float(r) for d, r in zip(devs, rho)}

    # --- small timescale: band shares -------------------------------------------------------------
    def small(self, sim, view) -> Decision:
        ctx = view.extra
        srv_s = server_step_s(view)
        shares: dict[str, float] = {}
        for ap, members in view.by_ap().items():
            devs = [view.device(n) for n in members if view.device(n).in_coverage]
            if not devs:
                continue
            shares.update(self._solve_shares(devs, ctx, srv_s))
        self.shares.update(shares)
        if not shares:
            return Decision()
        covered = _covered(view, shares)
        return Decision(bandwidth_share=shares, predicted={"predicted_round_s": self.predict_round_s(
            covered, self._cuts(covered), self._keeps(covered), {d.name: shares[d.name] for d in covered.devices})})

    def _cuts(self, view) -> dict[str, int]:
        """The decided cut of each device, the scheme's for one the large timescale did not see."""
        return {d.name: self.cuts.get(d.name, view.extra["base_cut"]) for d in view.devices}

    def _keeps(self, view) -> dict[str, float]:
        return {d.name: self.keeps.get(d.name, 1.0) for d in view.devices}

    def _solve_shares(self, devs, ctx, srv_s) -> dict[str, float]:
        """SLSQP: min τ s.t. T_i(s_i) ≤ τ, Σ s_i ≤ 1, s_i ≥ min_share."""
        n, lo = len(devs), min(self.config.min_share, 1.0 / len(devs))

        def t_of(i, s):
            d = devs[i]
            return self.device_round_s(d, self.cuts.get(d.name, ctx["base_cut"]), self.keeps.get(d.name, 1.0),
                                       max(s, 1e-6), ctx, srv_s)

        equal = np.full(n, 1.0 / n)
        scale = max(t_of(i, equal[i]) for i in range(n))
        if not math.isfinite(scale) or scale <= 0:
            return {d.name: 1.0 / n for d in devs}
        x0 = np.append(equal, 1.0)
        cons = [{"type": "ineq", "fun": (lambda x, i=i: x[-1] - t_of(i, x[i]) / scale)} for i in range(n)]
        cons.append({"type": "ineq", "fun": lambda x: 1.0 - np.sum(x[:-1])})
        res = minimize(lambda x: x[-1], x0, method="SLSQP", constraints=cons,
                       bounds=[(lo, 1.0)] * n + [(0.0, None)], options={"maxiter": 200, "ftol": 1e-10})
        s = np.clip(res.x[:-1], lo, 1.0)
        if s.sum() > 1.0:
            s = s / s.sum()
        if max(t_of(i, s[i]) for i in range(n)) > scale:   # never worse than the equal split
            s = equal
        return {d.name: float(v) for d, v in zip(devs, s)}


def server_step_s(view):
    """Seconds a step of a StepCost takes on the (first) serving server now, as the run times it."""
    name, flops_per_s = next(iter(view.server_flops_per_s.items()))
    return partial(step_seconds, flops_per_s=flops_per_s, step_s=view.server_step_s.get(name))


def _device_step_s(dev, cost, flops: float) -> float:
    """Seconds a device step takes now: its measured cost under the device's compute model (FLOPs
    alone where the cost was not kept)."""
    return step_seconds(cost if cost is not None else StepCost(flops, 0), dev.flops_per_s, dev.step_s)


def _covered(view, cuts):
    from dataclasses import replace

    return replace(view, devices=[d for d in view.devices if d.name in cuts])
