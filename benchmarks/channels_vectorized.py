"""Time a million links through the channels chain: TR 38.901 path loss -> SNR -> rate, and THz.

Run: python benchmarks/channels_vectorized.py [n_links]. The target is well under a second per
chain on one core: the models are plain numpy expressions, so cost grows linearly with links.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install
import channels  # noqa: E402
from channels import rate, thz, tr38901  # noqa: E402


def _best_of(fn, repeats=3):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(n_links: int = 1_000_000) -> dict:
    rng = np.random.default_rng(0)
    distance_2d_m = rng.uniform(10.0, 5000.0, n_links)
    los = rng.random(n_links) < tr38901.los_probability("uma", distance_2d_m)
    thz_distance_m = rng.uniform(1.0, 200.0, n_links)

    def terrestrial():
        pl = tr38901.pathloss_db("uma", distance_2d_m, 3.5e9, los)
        snr = rate.snr_db(46.0, pl, 100e6, 7.0, gain_db=0.0)
        return rate.shannon_rate_bps(100e6, snr)

    def sub_thz():
        pl = thz.los_pathloss_db(thz_distance_m, 300e9)  # Kokkoniemi 2021 band
        snr = rate.snr_db(20.0, pl, 10e9, 10.0, gain_db=2 * 30.1)
        return rate.shannon_rate_bps(10e9, snr)

    def upper_thz():
        return thz.los_pathloss_db(thz_distance_m, 650e9)  # ITU-R P.676 via itur

    timings = {
        "tr38901 uma pathloss+snr+rate": _best_of(terrestrial),
        "thz 300 GHz pathloss+snr+rate": _best_of(sub_thz),
        "thz 650 GHz pathloss (ITU-R P.676)": _best_of(upper_thz),
        "fspl": _best_of(lambda: channels.fspl_db(distance_2d_m, 3.5e9)),
    }
    for name, seconds in timings.items():
        print(f"{n_links:>9,d} links  {name:<36s} {seconds * 1e3:8.1f} ms")
    return timings


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
