"""What the benchmarks read from a run besides its tables: the host seconds spent inside torch.

`torch_timers()` wraps the StepMeter and Learner constructors so the run's meter (training steps:
`host_s`) and learner (evaluation: `eval_host_s`) can be read after `cosim.run` returns; these host
timings exist only for benchmarks and never reach a table.
"""
from __future__ import annotations


def torch_timers():
    """Lists that receive every StepMeter and Learner built from now on: (meters, learners)."""
    from cosim.learn.accounting import StepMeter
    from cosim.learn.training import Learner

    meters, learners = [], []
    real_meter_init, real_learner_init = StepMeter.__init__, Learner.__init__

    def meter_init(self, *a, **k):
        real_meter_init(self, *a, **k)
        meters.append(self)

    def learner_init(self, *a, **k):
        real_learner_init(self, *a, **k)
        learners.append(self)

    StepMeter.__init__, Learner.__init__ = meter_init, learner_init
    return meters, learners
