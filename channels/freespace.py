"""Free-space path loss (Friis): the reference every other path-loss model is compared with."""

from __future__ import annotations

import numpy as np

from ._checks import positive, scalar_or_array
from .constants import SPEED_OF_LIGHT_MPS


def fspl_db(distance_m, frequency_hz):
    """Free-space path loss in dB between isotropic antennas.

    Friis transmission equation: FSPL = 20 log10(4 pi d f / c), c = 299 792 458 m/s
    (Friis 1946; e.g. Rappaport, Wireless Communications, 2nd ed., eq. 4.5).
    """
    d = positive("distance_m", distance_m, "m")
    f = positive("frequency_hz", frequency_hz, "Hz")
    return scalar_or_array(20.0 * np.log10(4.0 * np.pi * d * f / SPEED_OF_LIGHT_MPS))
