"""Log-normal shadowing with spatial correlation, so nearby links and a moving node see
consistent, not independent, shadow fades.

Correlation model: the exponential autocorrelation of Gudmundson, "Correlation model for shadow
fading in mobile radio systems", Electronics Letters 27(23), 1991, in the form TR 38.901 §7.6.3.1
uses for spatially consistent large-scale parameters: R(dx) = exp(-|dx| / d_cor), with d_cor the
"SF correlation distance" of Table 7.5-6 Part-1 (see ``tr38901.shadow_decorrelation_distance_m``).
"""

from __future__ import annotations

import numpy as np

from ._checks import non_negative, positive, scalar_or_array


def correlation(distance_m, decorrelation_distance_m):
    """Shadowing correlation between two points ``distance_m`` apart: exp(-d / d_cor)."""
    d = non_negative("distance_m", distance_m, "m")
    d_cor = positive("decorrelation_distance_m", decorrelation_distance_m, "m")
    return scalar_or_array(np.exp(-d / d_cor))


def correlated_shadowing_db(rng, positions_m, std_db, decorrelation_distance_m):
    """Joint draw of zero-mean shadowing (dB) at N positions with covariance
    std^2 exp(-|x_i - x_j| / d_cor) (Gudmundson 1991; TR 38.901 §7.6.3.1).

    ``positions_m`` is (N,) for points on a line or (N, 2|3) coordinates. Cost is an N x N
    Cholesky factorisation, fine for the few thousand nodes of a scenario.
    """
    pos = np.asarray(positions_m, dtype=float)
    if pos.ndim == 1:
        pos = pos[:, None]
    if pos.ndim != 2 or pos.shape[1] not in (1, 2, 3):
        raise ValueError(f"positions_m has shape {np.shape(positions_m)}; valid shapes are "
                         "(N,), (N, 2) or (N, 3)")
    std = non_negative("std_db", std_db, "dB")
    d_cor = positive("decorrelation_distance_m", decorrelation_distance_m, "m")
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=-1))
    corr = np.exp(-dist / d_cor)
    # The exponential kernel is positive definite; a tiny diagonal guards coincident points.
    chol = np.linalg.cholesky(corr + 1e-10 * np.eye(len(pos)))
    return std * (chol @ rng.standard_normal(len(pos)))


def gauss_markov_next(previous, normal, distance_moved_m, decorrelation_distance_m):
    """Next value of a unit-variance Gauss-Markov process along a path, from a given standard normal:
    rho x + sqrt(1 - rho^2) n with rho = exp(-dx / d_cor) (Gudmundson 1991). The same update as
    ``update_shadowing_db`` with the innovation passed in, so a caller can take it from a
    counter-based stream (the same n for the same point of a path, whoever asks first)."""
    rho = np.asarray(correlation(distance_moved_m, decorrelation_distance_m))
    return scalar_or_array(rho * np.asarray(previous, dtype=float) + np.sqrt(1.0 - rho ** 2) * np.asarray(normal))


def update_shadowing_db(rng, previous_db, distance_moved_m, std_db, decorrelation_distance_m):
    """Next shadowing value (dB) of a node that moved ``distance_moved_m`` since the last one.

    First-order Gauss-Markov update with rho = exp(-dx / d_cor) (Gudmundson 1991):
    s_new = rho s_old + sqrt(1 - rho^2) std n,  n ~ N(0, 1). It keeps the marginal N(0, std^2)
    and reproduces the exponential autocorrelation along the trajectory. Vectorized over nodes.
    """
    prev = np.asarray(previous_db, dtype=float)
    rho = np.asarray(correlation(distance_moved_m, decorrelation_distance_m))
    std = non_negative("std_db", std_db, "dB")
    noise = rng.standard_normal(np.broadcast(prev, rho, std).shape)
    return scalar_or_array(rho * prev + np.sqrt(1.0 - rho ** 2) * std * noise)


class MovingShadowing:
    """Shadowing state of one or more moving nodes, advanced by distance travelled.

    A thin stateful wrapper around ``update_shadowing_db`` for code that keeps per-node state.
    """

    def __init__(self, rng, std_db, decorrelation_distance_m, size=None):
        self.rng = rng
        self.std_db = non_negative("std_db", std_db, "dB")
        self.decorrelation_distance_m = positive("decorrelation_distance_m",
                                                 decorrelation_distance_m, "m")
        self.value_db = scalar_or_array(self.std_db * rng.standard_normal(size))

    def advance(self, distance_moved_m):
        """Move the node(s) by ``distance_moved_m`` and return the new shadowing in dB."""
        self.value_db = update_shadowing_db(self.rng, self.value_db, distance_moved_m,
                                            self.std_db, self.decorrelation_distance_m)
        return self.value_db
