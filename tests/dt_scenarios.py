"""The tiny two-cell world of the DT incremental-learning tests and the Gymnasium environment's."""
from __future__ import annotations

from pathlib import Path

from conftest import tiny_scenario


def dt_tiny(tmp_path: Path, rounds: int = 12, **control) -> dict:
    """Six phones walking (random waypoint) between two weak base stations; their sentiment data
    drifts over the four domains every 4 epochs; retraining decided every 4 epochs."""
    raw = tiny_scenario(Path(tmp_path))
    raw["model"] = {"source": "tiny-bert", "max_length": 32, "padding": "max_length",
                    "tiny": {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128}}
    raw["data"] = {"dataset": "vader_sentiment", "test_samples": 256, "partition": {"kind": "iid"}}
    raw["scheme"] = {"name": "dt_incremental", "rounds": rounds, "local_steps": 2, "batch_size": 16, "lr": 0.005,
                     "drift_every_rounds": 4, "requests": [1, 16]}
    raw["devices"] = [{"count": 6, "profile": "phone-midrange", "name": "u",
                       "mobility": {"kind": "random_waypoint", "area_m": [300, 200], "speed_mps": [1, 3]}}]
    raw["edge"] = [{"profile": "raspberry-pi-4", "position_m": [50, 50, 10], "name": "bs0"},
                   {"profile": "raspberry-pi-4", "position_m": [250, 150, 10], "name": "bs1"}]
    raw["control"] = {"controller": "dt", "large_every_rounds": 4, **control}
    return raw
