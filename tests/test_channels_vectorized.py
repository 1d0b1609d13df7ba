"""A million links go through path loss -> SNR -> rate in well under a second, and the
vectorized answer is the scalar answer element by element."""

import time

import numpy as np

import channels
from channels import rate, thz, tr38901

N_LINKS = 1_000_000


def _chain(d2d, los):
    pl = tr38901.pathloss_db("umi", d2d, 28e9, los)
    return rate.shannon_rate_bps(400e6, rate.snr_db(30.0, pl, 400e6, 9.0, gain_db=20.0))


def test_million_links_well_under_a_second():
    rng = np.random.default_rng(0)
    d2d = rng.uniform(0.0, 5000.0, N_LINKS)
    los = rng.random(N_LINKS) < tr38901.los_probability("umi", d2d)
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        rates = _chain(d2d, los)
        best = min(best, time.perf_counter() - t0)
    assert rates.shape == (N_LINKS,)
    assert best < 1.0, f"{N_LINKS} links took {best:.3f} s"
    for i in rng.integers(0, N_LINKS, 5):
        assert rates[i] == _chain(float(d2d[i]), bool(los[i]))


def test_thz_million_links_and_scalar_agreement():
    d = np.random.default_rng(1).uniform(1.0, 100.0, N_LINKS)
    t0 = time.perf_counter()
    pl = thz.los_pathloss_db(d, 300e9)
    assert time.perf_counter() - t0 < 1.0
    assert pl[7] == thz.los_pathloss_db(float(d[7]), 300e9)
    assert np.all(pl > channels.fspl_db(d, 300e9))
