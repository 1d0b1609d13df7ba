"""channels: standard radio channel models in vectorized numpy, usable on their own.

3GPP TR 38.901 (UMa/UMi/RMa), UAV air-to-ground (Al-Hourani 2014), THz molecular absorption
(Kokkoniemi 2021, ITU-R P.676), fading and correlated shadowing, antenna/array gains and pointing
error, THz-ISAC time/bandwidth split, spectrum sharing, and SNR/Shannon rate. Units are in the
argument names (``distance_m``, ``frequency_hz``) and results end in ``_db``/``_bps``. A link is
a chain: pathloss -> shadowing -> fading -> array gain - pointing loss -> SNR -> rate.
"""

from . import a2g, antenna, constants, fading, isac, rate, shadowing, sharing, thz, tr38901
from .freespace import fspl_db

__all__ = ["a2g", "antenna", "constants", "fading", "isac", "rate", "shadowing", "sharing",
           "thz", "tr38901", "fspl_db"]
