"""cosim: a network-and-mobility co-simulator for fine-tuning transformers on edge devices.

Real PyTorch training steps advance on a simulated (SimPy) clock: a step takes its counted FLOPs
over the node's FLOP/s, a transfer its real bytes over the channel's rate at that moment.

    import cosim
    r = cosim.run("scenarios/quickstart.yaml", overrides={"seed": 3})
    r.summary, r.rounds, r.nodes, r.events, r.dir
"""
import os

# Models and data come from installed packages and local folders only: never ask a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from .results import Result, load_run  # noqa: E402
from .run import build, run  # noqa: E402
from .scenario import Scenario, ScenarioError, load  # noqa: E402
from .schemes import SCHEMES  # noqa: E402
from .compare import compare  # noqa: E402
from .sweep import sweep  # noqa: E402
from .interrupts import BatchInterrupted, RunInterrupted  # noqa: E402

__all__ = ["SCHEMES", "BatchInterrupted", "Result", "RunInterrupted", "Scenario", "ScenarioError", "build", "compare",
           "load", "load_run", "run", "sweep"]
