"""hetero_sfl's claims: cuts fit memory, the server holds one model (no per-client copies), and
Johnson's order is never slower than arrival order and equals the brute-force best for N <= 6."""
from __future__ import annotations

import numpy as np
import pytest

import cosim
from cosim.learn.training import tensor_bytes
from cosim.run import build
from cosim.schemes.hetero_sfl import (arrival_order, best_order_bruteforce, flow_shop_makespan,
                                      johnson_order)
from conftest import tiny_scenario

SMALL = {"tinymem": {"peak_flops": 50e9, "utilization": 0.3, "memory_bytes": 36e6, "compute_power_w": 5}}


def _run(tmp_path, n_each=2, scheme="hetero_sfl", **overrides):
    raw = tiny_scenario(tmp_path, profiles=SMALL)
    raw["devices"] = [{"count": n_each, "profile": "jetson-nano"}, {"count": n_each, "profile": "tinymem", "name": "small"}]
    raw["scheme"] = {"name": scheme, "rounds": 1, "local_steps": 2, "batch_size": 8}
    if scheme != "hetero_sfl":
        raw["scheme"]["cut_layer"] = 1
    return cosim.run(raw, overrides=overrides, progress=False, plots=False)


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


def _splitfed_v1(tmp_path, server_copies):
    return _run(tmp_path, 2, scheme="splitfed", **{"scheme.server_copies": server_copies})


def test_server_peak_against_splitfed_v1_full_copies_and_adapter_copies(tmp_path):
    """The paper's -79 % is against SplitFed v1 as SplitFed defines it (a server-side model per
    client). Measured on tiny-bert, 4 devices, cut 1 for SplitFed: hetero_sfl 9.19 MB (one WHOLE
    model: tiny-bert's 30522 x 64 embedding, 7.8 MB, is most of it); SplitFed v1 with full copies
    4.48 MB (resident top + 4 x 0.40 MB copies of blocks 1-3 and head), with adapter copies 2.87 MB.
    Each full copy adds the server part's weights, so hetero_sfl falls below `full` only from about
    20 clients on tiny-bert; on MiniLM (embedding ~half the model) `cosim claims` reports it."""
    hetero = _run(tmp_path / "h", 2).summary["server_peak_memory_bytes"]
    full = _splitfed_v1(tmp_path / "f", "full").summary["server_peak_memory_bytes"]
    adapters = _splitfed_v1(tmp_path / "a", "adapters").summary["server_peak_memory_bytes"]
    assert adapters < full < hetero
    learner = build(cosim.load(tiny_scenario(tmp_path / "w"))).learner
    params = dict(learner.model.named_parameters())
    frozen_top = learner.weight_bytes(1) - tensor_bytes(params[n] for n in learner.trainable_names(1))
    assert full - adapters == 4 * frozen_top   # a full copy = the adapter copy + the part's frozen weights


def test_server_holds_one_model_not_a_copy_per_client(tmp_path):
    two, four = _run(tmp_path / "a", 1), _run(tmp_path / "b", 2)
    growth = four.summary["server_peak_memory_bytes"] - two.summary["server_peak_memory_bytes"]
    # growth from 2 to 4 devices is adapters and queued activations only: far below one model copy
    assert growth < 0.1 * two.summary["server_peak_memory_bytes"]
