"""UAV air-to-ground path loss (Al-Hourani, Kandeepan & Lardner, "Optimal LAP altitude for
maximum coverage", IEEE Wireless Communications Letters 3(6), 2014).

A low-altitude platform sees a ground user either in LOS or NLOS with a probability that
depends only on the elevation angle (an S-curve in degrees); each state adds a mean excess
loss eta to free space; the mean path loss is the LOS-probability-weighted sum in dB. Parameters
(a, b, eta_LoS, eta_NLoS) per environment are the letter's parameter table (the four ITU-R
P.1410 built-up environments, fitted at 2 GHz); the fits were made for 700 MHz - 5.8 GHz
(Al-Hourani, Kandeepan & Jamalipour, GLOBECOM 2014), the range enforced here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import choice, in_range, non_negative, positive, scalar_or_array
from .freespace import fspl_db


@dataclass(frozen=True)
class A2GParameters:
    """S-curve parameters a, b (elevation in degrees) and mean excess losses in dB."""

    a: float
    b: float
    eta_los_db: float
    eta_nlos_db: float


#: Al-Hourani et al. 2014, parameter table (suburban, urban, dense urban, high-rise urban).
ENVIRONMENTS = {
    "suburban": A2GParameters(a=4.88, b=0.43, eta_los_db=0.1, eta_nlos_db=21.0),
    "urban": A2GParameters(a=9.61, b=0.16, eta_los_db=1.0, eta_nlos_db=20.0),
    "dense_urban": A2GParameters(a=12.08, b=0.11, eta_los_db=1.6, eta_nlos_db=23.0),
    "highrise_urban": A2GParameters(a=27.23, b=0.08, eta_los_db=2.3, eta_nlos_db=34.0),
}
#: Carrier range of the fitted parameters, Hz (700 MHz - 5.8 GHz).
FREQUENCY_RANGE_HZ = (0.7e9, 5.8e9)


def _params(environment) -> A2GParameters:
    return ENVIRONMENTS[choice("environment", environment, ENVIRONMENTS)]


def elevation_deg(altitude_m, ground_distance_m):
    """Elevation angle in degrees seen from the ground user: theta = atan(h / r)."""
    h = positive("altitude_m", altitude_m, "m")
    r = non_negative("ground_distance_m", ground_distance_m, "m")
    return scalar_or_array(np.degrees(np.arctan2(h, r)))


def los_probability(elevation_deg, environment):
    """P_LoS = 1 / (1 + a exp(-b (theta - a))), theta in DEGREES (Al-Hourani 2014 S-curve)."""
    p = _params(environment)
    theta = in_range("elevation_deg", elevation_deg, 0.0, 90.0, "degrees")
    return scalar_or_array(1.0 / (1.0 + p.a * np.exp(-p.b * (theta - p.a))))


def pathloss_db(altitude_m, ground_distance_m, frequency_hz, environment, los):
    """Path loss in dB for a given LOS state: FSPL(sqrt(h^2 + r^2)) + eta_LoS|NLoS (Al-Hourani 2014)."""
    p = _params(environment)
    f = in_range("frequency_hz", frequency_hz, *FREQUENCY_RANGE_HZ, "Hz")
    h = positive("altitude_m", altitude_m, "m")
    r = non_negative("ground_distance_m", ground_distance_m, "m")
    fspl = fspl_db(np.hypot(h, r), f)
    return scalar_or_array(fspl + np.where(np.asarray(los, dtype=bool), p.eta_los_db,
                                           p.eta_nlos_db))


def mean_pathloss_db(altitude_m, ground_distance_m, frequency_hz, environment):
    """Mean path loss in dB, averaged over LOS/NLOS in the dB domain (Al-Hourani 2014):

    PL = P_LoS (FSPL + eta_LoS) + (1 - P_LoS) (FSPL + eta_NLoS), FSPL over d = sqrt(h^2 + r^2).
    """
    p = _params(environment)
    f = in_range("frequency_hz", frequency_hz, *FREQUENCY_RANGE_HZ, "Hz")
    h = positive("altitude_m", altitude_m, "m")
    r = non_negative("ground_distance_m", ground_distance_m, "m")
    p_los = np.asarray(los_probability(np.degrees(np.arctan2(h, r)), environment))
    fspl = fspl_db(np.hypot(h, r), f)
    return scalar_or_array(fspl + p_los * p.eta_los_db + (1.0 - p_los) * p.eta_nlos_db)
