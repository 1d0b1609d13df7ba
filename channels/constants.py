"""Physical constants used by every channel model, each with its source."""

#: Speed of light in vacuum, m/s (exact, SI definition of the metre, CODATA 2018).
SPEED_OF_LIGHT_MPS = 299_792_458.0

#: Speed of light as TR 38.901 Table 7.4.1-1 notes 1 and 5 write it for breakpoint distances, m/s.
SPEED_OF_LIGHT_TR38901_MPS = 3.0e8

#: Thermal noise power spectral density at T0 = 290 K, dBm/Hz (10 log10(k T0 / 1 mW) = -173.98,
#: rounded to -174 as in 3GPP link budgets, e.g. TR 38.901 / TR 36.942 noise calculations).
THERMAL_NOISE_DBM_PER_HZ = -174.0
