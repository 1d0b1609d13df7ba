"""Spectrum sharing: how a band of B Hz is split among concurrent flows.

Three policies that split-learning / federated-learning papers compare: equal split,
split proportional to demand, and the split that minimises the slowest flow's finish time.
Each returns per-flow bandwidth in Hz summing to ``bandwidth_hz``.
"""

from __future__ import annotations

import numpy as np

from ._checks import in_range, non_negative, positive


def equal_split(bandwidth_hz, n_flows):
    """Each of n flows gets B / n (round-robin / fair share)."""
    b = float(positive("bandwidth_hz", bandwidth_hz, "Hz"))
    n = int(in_range("n_flows", n_flows, 1, np.inf, "", high_open=True))
    if n != n_flows:
        raise ValueError(f"n_flows={n_flows} is outside the valid range: a positive integer")
    return np.full(n, b / n)


def _demand(demand_bits):
    d = non_negative("demand_bits", demand_bits, "bit")
    if d.ndim != 1 or d.size == 0 or d.sum() <= 0:
        raise ValueError(f"demand_bits={demand_bits!r} is outside the valid range: a non-empty "
                         "1-D array of non-negative values with a positive sum")
    return d


def proportional_split(bandwidth_hz, demand_bits):
    """Flow i gets B d_i / sum_j d_j (share proportional to bits to send)."""
    b = float(positive("bandwidth_hz", bandwidth_hz, "Hz"))
    d = _demand(demand_bits)
    return b * d / d.sum()


def min_max_finish_split(bandwidth_hz, demand_bits, spectral_efficiency_bps_per_hz):
    """Split minimising the largest finish time max_i d_i / (b_i se_i), subject to sum b_i = B.

    At the optimum all flows with data finish together (if one finished earlier, moving some of
    its band to the slowest flow would lower the maximum), so b_i = B (d_i/se_i) / sum_j (d_j/se_j)
    and every flow finishes at T* = sum_j (d_j/se_j) / B. This is the min-max (max-min rate)
    bandwidth allocation used for parallel split learning, e.g. Lin et al., "Efficient parallel
    split learning over resource-constrained wireless edge networks", IEEE TMC 2024.
    """
    b = float(positive("bandwidth_hz", bandwidth_hz, "Hz"))
    d = _demand(demand_bits)
    se = positive("spectral_efficiency_bps_per_hz", spectral_efficiency_bps_per_hz, "bit/s/Hz")
    se = np.broadcast_to(se, d.shape)
    hz_seconds = d / se
    return b * hz_seconds / hz_seconds.sum()


def finish_times_s(bandwidth_per_flow_hz, demand_bits, spectral_efficiency_bps_per_hz):
    """Time each flow needs to send its bits: d_i / (b_i se_i); 0 for empty flows."""
    bw = non_negative("bandwidth_per_flow_hz", bandwidth_per_flow_hz, "Hz")
    d = non_negative("demand_bits", demand_bits, "bit")
    se = positive("spectral_efficiency_bps_per_hz", spectral_efficiency_bps_per_hz, "bit/s/Hz")
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(d > 0, d / (bw * se), 0.0)
    return t
