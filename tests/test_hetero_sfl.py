"""hetero_sfl's claims: cuts fit memory, the server holds one model (no per-client copies), and
Johnson's order is never slower than arrival order and equals the brute-force best for N <= 6."""
from __future__ import annotations

import numpy as np
import pytest

import cosim
from cosim.schemes.hetero_sfl import (arrival_order, best_order_bruteforce, flow_shop_makespan,
                                      johnson_order)
from conftest import tiny_scenario

SMALL = {"tinymem": {"peak_flops": 50e9, "utilization": 0.3, "memory_bytes": 36e6, "compute_power_w": 5}}


def _run(tmp_path, n_each=2, scheme="hetero_sfl"):
    raw = tiny_scenario(tmp_path, profiles=SMALL)
    raw["devices"] = [{"count": n_each, "profile": "jetson-nano"}, {"count": n_each, "profile": "tinymem", "name": "small"}]
    raw["scheme"] = {"name": scheme, "rounds": 1, "local_steps": 2, "batch_size": 8}
    if scheme != "hetero_sfl":
        raw["scheme"]["cut_layer"] = 1
    return cosim.run(raw, progress=False, plots=False)


def test_johnson_equals_brute_force_and_never_loses_to_arrival():
    rng = np.random.default_rng(0)
    for n in range(1, 7):
        for _ in range(30):
            a, b = rng.uniform(0.1, 5, n), rng.uniform(0.1, 5, n)
            best = flow_shop_makespan(best_order_bruteforce(a, b), a, b)
            johnson = flow_shop_makespan(johnson_order(a, b), a, b)
            assert johnson == pytest.approx(best, rel=1e-12)
            assert johnson <= flow_shop_makespan(arrival_order(a, b), a, b) + 1e-12


def test_every_cut_fits_its_memory_budget(tmp_path):
    r = _run(tmp_path)
    nodes = r.nodes.set_index("node")
    devices = nodes[nodes.role == "device"]
    assert (devices.peak_memory_bytes <= 0.5 * devices.memory_capacity_bytes).all()


@pytest.mark.xfail(strict=True, reason="measured on tiny-bert, 4 devices: hetero_sfl 9.19 MB (one FULL model, "
                   "embedding included) vs splitfed v1 2.87 MB (4 copies of the top blocks only)")
def test_server_peak_below_splitfed_v1(tmp_path):
    four, v1 = _run(tmp_path / "b", 2), _run(tmp_path / "c", 2, scheme="splitfed")
    assert four.summary["server_peak_memory_bytes"] < v1.summary["server_peak_memory_bytes"]


def test_server_holds_one_model_not_a_copy_per_client(tmp_path):
    two, four = _run(tmp_path / "a", 1), _run(tmp_path / "b", 2)
    growth = four.summary["server_peak_memory_bytes"] - two.summary["server_peak_memory_bytes"]
    # growth from 2 to 4 devices is adapters and queued activations only: far below one model copy
    assert growth < 0.1 * two.summary["server_peak_memory_bytes"]
