"""TensorBoard scalars of a run, round by round, against simulated time (`outputs.tensorboard: true`).

Researchers already watch training in TensorBoard; this puts a cosim run there beside their other
runs: `tensorboard --logdir results/`. Each round end writes, into `<run folder>/tensorboard/`, the
held-out accuracy, the training loss (and eval loss, perplexity when the run has them), the bytes
sent up and down, the energy spent and the peak memory so far (the summary.json totals at that
moment), and the simulated time itself. Every point's step is the round and its timestamp the
simulated time in seconds, so TensorBoard's "Relative" x axis reads simulated time (the host clock
never enters a cosim table, DESIGN.md §1). Values are TensorBoard's float32.

The tables stay the record (rounds.csv, summary.json); this is a view written with
`torch.utils.tensorboard`, which needs the optional `tensorboard` package (`pip install
'cosim[report]'`).
"""
from __future__ import annotations

import math
from pathlib import Path

from .config import ScenarioError

FOLDER = "tensorboard"
#: rounds.csv column -> scalar tag (written when the round has a value)
ROUND_TAGS = {"accuracy": "quality/accuracy", "loss": "quality/train_loss", "eval_loss": "quality/eval_loss",
              "perplexity": "quality/perplexity"}
#: summary.json total at the round's end -> scalar tag
TOTAL_TAGS = {"bytes_up": "network/bytes_up", "bytes_down": "network/bytes_down", "energy_j": "energy/total_j",
              "device_energy_j": "energy/device_j", "device_peak_memory_bytes": "memory/device_peak_bytes",
              "server_peak_memory_bytes": "memory/server_peak_bytes"}
SIM_TIME_TAG = "time/sim_time_s"


def require() -> None:
    """Refuse `outputs.tensorboard: true` before the run starts when the package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ScenarioError(["outputs.tensorboard: true needs the tensorboard package, which is not installed "
                             "here; allowed: pip install 'cosim[report]' (or 'tensorboard>=2'), or "
                             "outputs.tensorboard: false"]) from None


class Scalars:
    """The run's TensorBoard writer; `add_round` once per round end, `close` at the end.

    `resume_after`: the last round a resumed run's checkpoint holds; points of later rounds that
    the killed run had written are purged (SummaryWriter's purge_step), as the resumed run writes
    them again."""

    def __init__(self, run_dir: Path, resume_after: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resume_after is None else resume_after + 1
        self.dir = Path(run_dir) / FOLDER
        self._writer = SummaryWriter(log_dir=str(self.dir), purge_step=purge)

    def add_round(self, rec, totals: dict) -> None:
        """One point per tag at step = the round, timestamp = its simulated end time (s)."""
        step, t_s = int(rec.round), float(rec.sim_time_s)
        values = {"accuracy": rec.accuracy, "loss": rec.loss, **rec.extra}
        points = [(tag, values.get(key)) for key, tag in ROUND_TAGS.items()]
        points += [(tag, totals.get(key)) for key, tag in TOTAL_TAGS.items()]
        points.append((SIM_TIME_TAG, t_s))
        for tag, value in points:
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self._writer.add_scalar(tag, float(value), global_step=step, walltime=t_s)
        self._writer.flush()   # on disk at every round end, like the tables: a killed run keeps its rounds

    def close(self) -> None:
        self._writer.close()


__all__ = ["FOLDER", "ROUND_TAGS", "SIM_TIME_TAG", "TOTAL_TAGS", "Scalars", "require"]
