"""Input checks shared by the channel models: one error format for every out-of-range argument.

A researcher who passes a value outside a model's validity range gets a ``ValueError`` that names
the argument, the value given and the range, instead of a silently extrapolated number.
"""

from __future__ import annotations

import numpy as np


def _fmt(x: float) -> str:
    """Compact number: 5e11 rather than 5e+11 or 500000000000.0."""
    return f"{x:g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def in_range(name: str, value, low: float, high: float, unit: str = "",
             low_open: bool = False, high_open: bool = False) -> np.ndarray:
    """Return ``value`` as a float array after checking every element lies in [low, high].

    ``low_open`` / ``high_open`` make that end exclusive (e.g. distances must be > 0).
    """
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:   # one number (the common case on a simulator's hot path): plain comparisons
        v = float(arr)
        if (v > low if low_open else v >= low) and (v < high if high_open else v <= high):  # NaN fails
            return arr
    bad = np.isnan(arr)
    bad |= (arr <= low) if low_open else (arr < low)
    bad |= (arr >= high) if high_open else (arr > high)
    if bad.any():
        first = arr[bad].flat[0] if arr.ndim else float(arr)
        count = int(bad.sum())
        extra = f" ({count} values out of range)" if count > 1 else ""
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        suffix = f" {unit}" if unit else ""
        raise ValueError(
            f"{name}={_fmt(first)} is outside the model's valid range "
            f"{left}{_fmt(low)}, {_fmt(high)}{right}{suffix}{extra}")
    return arr


def positive(name: str, value, unit: str = "") -> np.ndarray:
    """Return ``value`` as a float array after checking every element is > 0 and finite."""
    return in_range(name, value, 0.0, np.inf, unit, low_open=True, high_open=True)


def non_negative(name: str, value, unit: str = "") -> np.ndarray:
    """Return ``value`` as a float array after checking every element is >= 0 and finite."""
    return in_range(name, value, 0.0, np.inf, unit, high_open=True)


def choice(name: str, value: str, options) -> str:
    """Return ``value`` lower-cased after checking it is one of ``options``."""
    key = str(value).lower()
    if key not in options:
        raise ValueError(f"{name}={value!r} is not one of the valid options {sorted(options)}")
    return key


def scalar_or_array(x):
    """Unwrap 0-d arrays so scalar inputs give scalar (numpy float) outputs."""
    x = np.asarray(x)
    return x[()] if x.ndim == 0 else x
