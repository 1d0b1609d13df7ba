"""Claims rows of the radio models: the THz-ISAC sensing/communication trade-off from a UAV."""
from __future__ import annotations

import re

from . import Outcome, claim
from .runner import final_accuracy

#: the two sensing shares compared (of the UAV's time)
LOW_SENSING, HIGH_SENSING = 0.1, 0.5


def _mean_sensing_snr_db(result) -> float:
    sense = result.events[result.events.kind == "sense"]
    snr = sense.detail.map(lambda d: float(re.search(r"sensing_snr_db=(\S+)", d).group(1)))
    return float(snr.mean())


@claim("thz_isac", paper="THz ISAC from a UAV (channels/isac.py: radar equation, time split)",
       says="a larger sensing share raises the sensing SNR and costs link time: training takes longer, the "
            "model is the same",
       scenario="scenarios/uav_thz_isac.yaml",
       test="tests/test_handover_isac.py::test_sensing_fraction_sweep_lengthens_time_and_leaves_accuracy_alone")
def thz_isac(runner) -> Outcome:
    runs = {}
    for share in (LOW_SENSING, HIGH_SENSING):
        def edit(raw, share=share):
            raw["network"].setdefault("isac", {})["sensing_fraction"] = share
        runs[share] = runner.run(f"uav_thz_isac-{share}", "scenarios/uav_thz_isac.yaml", {"name": "split"}, edit=edit)
    lo, hi = runs[LOW_SENSING], runs[HIGH_SENSING]
    t_lo, t_hi = lo.summary["sim_time_s"], hi.summary["sim_time_s"]
    s_lo, s_hi = _mean_sensing_snr_db(lo), _mean_sensing_snr_db(hi)
    same = final_accuracy(lo) == final_accuracy(hi)
    return Outcome(number=f"sensing {LOW_SENSING:.0%} → {HIGH_SENSING:.0%}: time {t_lo:.4g} → {t_hi:.4g} s, mean "
                          f"sensing SNR {s_lo:.1f} → {s_hi:.1f} dB, accuracy {'equal' if same else 'differs'}",
                   shown=t_hi > t_lo and s_hi > s_lo and same,
                   why=f"time x{t_hi / t_lo:.2f}, sensing SNR {s_hi - s_lo:+.1f} dB", unit="",
                   bars={f"sim time (s), {LOW_SENSING:.0%}": t_lo, f"sim time (s), {HIGH_SENSING:.0%}": t_hi})
