"""Normal quantiles and the Wilson interval, shared by the jobs (which write bounds into their
tables) and ``analysis`` (which reports rates): plain math and NumPy, no torch, no Ray."""
from statistics import NormalDist
from typing import Optional

import numpy as np


def z_quantile(p: float) -> float:
    """The ``p``-quantile of the standard normal."""
    return NormalDist().inv_cdf(p)


def wilson(successes, n, level: float = 0.95, z: Optional[float] = None):
    """Wilson score interval (lo, hi) at ``level`` for ``successes`` out of ``n``: numbers or
    arrays (elementwise); NaN where n = 0. ``z``, when given, is the normal quantile to use
    instead of the level's (a table keeps the bits it was first written with)."""
    z = z_quantile(0.5 + level / 2) if z is None else z
    x, n = np.asarray(successes, np.float64), np.asarray(n, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p, denom = x / n, 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = np.where(n > 0, np.maximum(centre - half, 0.0), np.nan)
    hi = np.where(n > 0, np.minimum(centre + half, 1.0), np.nan)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)
