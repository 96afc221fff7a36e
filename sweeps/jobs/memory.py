"""How long a cell remembers: decay rates with intervals, and the tables that hold them.

A group's D(l) curve is summarised by the rate at which its median decays, per step
(natural log): the slope of log median D between the two ends of a window [l_a, l_b], where
l_b is the last l before the median's lower confidence bound falls to the rounding floor
``FLOOR`` (the trajectories merge there and log D means nothing) and l_a = max(1, l_b // 2),
so the rate is that of the late, settled part of the curve (a median that reaches the floor
at l = 2 gets the window [1, 2], with a lower bound of -inf). Its 95 % interval joins the
bounds of the median at both ends: each end's band is the distribution-free
order-statistic interval of a median at 97.5 % (Bonferroni: both hold together with 95 %),
read from the group's histogram and widened by one bin for its resolution. So the interval
rests on nothing but the draws being independent. frac_distinct gets the same rate, its
bands Wilson intervals, and ``l_half``, the first l at which it falls below 1/2.

A draw's own rate is the same two-point slope of log ||h_u - h_v|| over its window; it is
what its largest Lyapunov exponent predicts when D decays as exp(λ l).
"""
from typing import Dict, Optional, Tuple

import numpy as np
import pyarrow as pa

from .. import contract, stats

LEVEL = 0.95
# The 1 - (1 - LEVEL) / 4 normal quantile (97.5 % two-sided at each end): stats.z_quantile of it
# to within one ulp (tests/test_analysis.py), written out so that the tables keep their bits.
Z_END = 2.241402727604947
FLOOR = {"float64": 1e3 * np.finfo(np.float64).eps, "float32": 1e3 * np.finfo(np.float32).eps}
BIN = 10 ** (1 / contract.BINS_PER_DECADE)
PERIOD_MAX, SETTLED = contract.PERIOD_MAX, contract.SETTLED

COLUMNS = {   # the columns a group's rows share across the discrepancy job's tables
    "cell": (pa.string(), "the cell's registry name (cells.CELLS)"),
    "init": (pa.string(), "parameter draws: normal N(0,1), xavier N(0,1/fan_in), uniform ±sqrt(1/fan_in), "
                          "gain:G N(0,G²/fan_in)"),
    "gain": (pa.float64(), "the recurrent weights' gain: sqrt(k x their variance) (gain:G gives G, xavier 1, "
                           "normal sqrt(k), uniform 1/sqrt(3))"),
    "k": (pa.int32(), "hidden units"),
    "seed": (pa.int32(), "the ensemble's seed: ensembles of other seeds are independent"),
    "dtype": (pa.string(), "float64 or float32: the precision of the recurrence"),
    "n_draws": (pa.int64(), "parameter draws in the ensemble"),
    "threshold": (pa.float64(), "the threshold of frac_distinct"),
}


def columns(*names: str):
    """(name, type, doc) of shared columns, for :func:`sweeps.contract.schema`."""
    return [(name, *COLUMNS[name]) for name in names]


KEYS = columns("cell", "init", "gain", "k", "seed", "dtype")
MEMORY = contract.schema([
    *KEYS,
    *columns("n_draws"),
    ("l_max", pa.int32(), "longest l measured"),
    *columns("threshold"),
    ("rate", pa.float64(), "decay rate of log median D(l) per step over [rate_from, rate_to] (negative: D decays; "
                           "-1/rate is the memory time constant in steps); -inf if the median reached 0"),
    ("rate_lo", pa.float64(), "lower end of its 95 % interval (order statistics of the median at both ends)"),
    ("rate_hi", pa.float64(), "upper end of its 95 % interval"),
    ("rate_from", pa.int32(), "first l of the window: rate_to // 2"),
    ("rate_to", pa.int32(), "last l of the window: the last before the median's lower bound reaches the rounding "
                            "floor (1e3 machine epsilons); 2 when it does at l = 2 (then rate_lo is -inf)"),
    ("distinct_rate", pa.float64(), "decay rate of log frac_distinct per step over [distinct_from, distinct_to]"),
    ("distinct_lo", pa.float64(), "lower end of its 95 % interval (Wilson at both ends)"),
    ("distinct_hi", pa.float64(), "upper end of its 95 % interval"),
    ("distinct_from", pa.int32(), "first l of the window: distinct_to // 2"),
    ("distinct_to", pa.int32(), "last l at which some draw is still distinct"),
    ("l_half", pa.int32(), "first l at which frac_distinct < 1/2; null if it never falls that low by l_max"),
    ("lyapunov_mean", pa.float64(), "mean largest Lyapunov exponent over the draws whose tangent did not vanish "
                                    "(null unless the sweep measured it)"),
    ("lyapunov_std", pa.float64(), "its standard deviation (n - 1 denominator)"),
    ("lyapunov_q10", pa.float64(), "10 % quantile of the exponent over all draws (exact)"),
    ("lyapunov_q50", pa.float64(), "median exponent: > 0 chaos (nearby states separate), < 0 order"),
    ("lyapunov_q90", pa.float64(), "90 % quantile"),
    ("lyapunov_positive", pa.float64(), "share of draws with a positive exponent"),
    ("lyapunov_vanished", pa.float64(), "share of draws whose tangent vanished to float64 resolution (exponent -inf)"),
    ("saturated", pa.float64(), "gated cells: mean share of units whose retain gate (GRU z, LSTM f, MGU 1-f) "
                                "exceeds 0.99 at l_max on u's trajectory; null otherwise"),
])

LYAPUNOV = contract.schema([
    *KEYS,
    ("draw", pa.int32(), "the draw's index in its ensemble (block b holds draws 50 b .. 50 b + 49)"),
    ("lyapunov", pa.float64(), "largest Lyapunov exponent per step of s -> step(p, 0, s) along u's trajectory, "
                               "averaged over steps (l_max // 2, l_max]; -inf when the tangent vanished"),
    ("rate", pa.float64(), "this draw's decay rate of log ||h_u - h_v|| per step over [l_b // 2, l_b], l_b its last "
                           "l above the rounding floor ([1, 2] if that is l = 1; -inf if D reached 0)"),
    ("saturated", pa.float64(), "share of units whose retain gate exceeds 0.99 at l_max (gated cells; else null)"),
    ("state_rate", pa.float64(), "the same decay rate of the whole states' distance ||s_u - s_v|| (e.g. an LSTM's "
                                 "(h, c), what lyapunov follows); null for cells whose state is h"),
    ("attractor", pa.string(), f"what u's state (float64) settled on by l_max: fixed (its last two states within "
                               f"{SETTLED:g}), period-p (the last within {SETTLED:g} of the one p steps before, "
                               f"p <= {PERIOD_MAX}), other (neither)"),
    ("v_attractor", pa.string(), "the same for v's state"),
    ("v_shift", pa.int32(), f"the smallest j with v's last state within {SETTLED:g} of u's state j steps before "
                            f"l_max (j <= {PERIOD_MAX}): 0 v merged with u, j > 0 v on u's own orbit at another "
                            f"phase; null if on none of them (u and v on distinct attractors, or not settled)"),
])


def period(recent: np.ndarray) -> np.ndarray:
    """Per draw, the smallest p <= PERIOD_MAX with the last state within ``SETTLED`` of the state p steps
    earlier (1: a fixed point), 0 if none; ``recent`` (P + 1, E, m): the states j = 0..P steps before the last."""
    gaps = np.sqrt(((recent[1:] - recent[0]) ** 2).sum(-1))
    hit = gaps <= SETTLED
    return np.where(hit.any(axis=0), hit.argmax(axis=0) + 1, 0)


def phase_shift(final: np.ndarray, recent: np.ndarray) -> np.ndarray:
    """Per draw, the smallest j with ``final`` (E, m) within ``SETTLED`` of ``recent[j]`` ((P + 1, E, m), as in
    :func:`period`), -1 if none."""
    hit = np.sqrt(((recent - final) ** 2).sum(-1)) <= SETTLED
    return np.where(hit.any(axis=0), hit.argmax(axis=0), -1)


def attractor_name(p: int) -> str:
    """A period from :func:`period` in words: fixed, period-p, other."""
    return "fixed" if p == 1 else f"period-{int(p)}" if p > 1 else "other"


def median_bands(hist: np.ndarray, mid: np.ndarray, floor: float) -> Tuple[np.ndarray, np.ndarray]:
    """The 97.5 % distribution-free bounds of the median (quantiles 1/2 -+ Z_END / (2 sqrt(n))),
    widened by one bin for the resolution, from per-l dense histograms (L, N_BINS) and their
    medians ``mid``: only where the window needs them (the lower bound up to its first l at the
    floor, both bounds at the window's ends), NaN elsewhere, since a table of every group's
    bands at every l would cost the driver more than the rest of the merge."""
    n = hist.sum(axis=1)
    half = Z_END / (2 * np.sqrt(n))
    lo, hi = np.full(len(hist), np.nan), np.full(len(hist), np.nan)

    def bound(l: int, sign: int) -> float:
        return contract.quantile(hist[l], min(max(0.5 + sign * half[l], 0.0), 1.0)) * BIN**sign

    for l in range(len(hist)):
        lo[l] = bound(l, -1)
        if not lo[l] > floor:
            break
    w = window(lo > floor)
    for l in (w or ()):
        hi[l - 1] = bound(l - 1, +1)
        lo[l - 1] = bound(l - 1, -1)
    return lo, hi


def window_end(usable: np.ndarray) -> int:
    """The last l (1-based) of the run of usable l's that starts at l = 1; 0 if l = 1 is not."""
    bad = np.flatnonzero(~usable)
    return int(bad[0]) if len(bad) else len(usable)


def window(usable: np.ndarray) -> Optional[Tuple[int, int]]:
    """The window [l_a, l_b] (1-based) of a curve whose points are ``usable`` (above the floor):
    l_b the last l of the run of usable points from l = 1, l_a = max(1, l_b // 2); a curve
    usable at l = 1 only gets [1, 2] (it reached the floor in one step); None if l = 1 is not
    usable or there is no second point."""
    end = window_end(usable)
    if end == 0 or len(usable) < 2:
        return None
    return (max(1, end // 2), end) if end >= 2 else (1, 2)


def _slope(upper: float, lower: float, span: int) -> float:
    with np.errstate(divide="ignore"):
        return float((np.log(upper) - np.log(lower)) / span)


def two_point_rate(lo: np.ndarray, mid: np.ndarray, hi: np.ndarray, floor: float) -> Dict[str, Optional[float]]:
    """The decay rate of ``mid`` (indexed by l - 1) with its interval from the bands, over the
    window of the module docstring (-inf where a value reached 0); None for every value
    when there is no window."""
    w = window(lo > floor)
    if w is None:
        return {"rate": None, "lo": None, "hi": None, "from": None, "to": None}
    (a, b), span = (w[0] - 1, w[1] - 1), w[1] - w[0]
    return {"rate": _slope(mid[b], mid[a], span), "lo": _slope(lo[b], hi[a], span),
            "hi": _slope(hi[b], lo[a], span), "from": w[0], "to": w[1]}


def draw_rates(d: np.ndarray, floor: float) -> np.ndarray:
    """Each draw's decay rate of log d over its own window, d (E, L); NaN where there is none."""
    rates = np.full(d.shape[0], np.nan)
    for i, row in enumerate(d):
        w = window(row > floor)
        if w is not None:
            rates[i] = _slope(row[w[1] - 1], row[w[0] - 1], w[1] - w[0])
    return rates


def memory_row(s, hist: np.ndarray, mid: np.ndarray, n: np.ndarray, distinct: np.ndarray,
               lyap: Optional[np.ndarray], saturated: Optional[np.ndarray], gain: float) -> Dict:
    """The ``memory`` row of one group: its merged per-l histograms (L, N_BINS), medians, draw
    counts and distinct counts (L,), and the per-draw exponents and saturations when measured."""
    lo, hi = median_bands(hist, mid, FLOOR[s.dtype])
    rate = two_point_rate(lo, mid, hi, FLOOR[s.dtype])
    frac = distinct / n
    wl, wh = stats.wilson(distinct, n, z=Z_END)
    drate = two_point_rate(wl, frac, wh, 0.0)
    below = np.flatnonzero(frac < 0.5)
    row = {"cell": s.cell, "init": s.init, "gain": gain, "k": s.k, "seed": s.seed, "dtype": s.dtype,
           "n_draws": int(n[0]), "l_max": s.l_max, "threshold": s.threshold,
           **{f"rate{'' if key == 'rate' else '_' + key}": v for key, v in rate.items()},
           **{f"distinct_{'rate' if key == 'rate' else key}": v for key, v in drate.items()},
           "l_half": int(below[0]) + 1 if len(below) else None}
    row.update(lyapunov_summary(lyap))
    row["saturated"] = None if saturated is None or np.isnan(saturated).all() else float(np.mean(saturated))
    return row


def lyapunov_summary(lyap: Optional[np.ndarray]) -> Dict[str, Optional[float]]:
    names = ("mean", "std", "q10", "q50", "q90", "positive", "vanished")
    if lyap is None or np.isnan(lyap).all():
        return {f"lyapunov_{name}": None for name in names}
    finite = lyap[np.isfinite(lyap)]
    q = np.quantile(lyap, [0.1, 0.5, 0.9], method="inverted_cdf")
    return {"lyapunov_mean": float(finite.mean()) if len(finite) else None,
            "lyapunov_std": float(finite.std(ddof=1)) if len(finite) > 1 else None,
            "lyapunov_q10": float(q[0]), "lyapunov_q50": float(q[1]), "lyapunov_q90": float(q[2]),
            "lyapunov_positive": float((lyap > 0).mean()), "lyapunov_vanished": float(np.isneginf(lyap).mean())}
