"""Decay rates and Lyapunov exponents of the ``memory`` table, with seed ensembles combined.

Each row of ``memory`` is one ensemble (cell, init, k, seed): the decay rate of its median
D(l) with a 95 % interval of its own (order statistics of the median, see
``sweeps.jobs.memory``), and, when measured, quantiles of its draws' largest Lyapunov
exponents. :func:`decay_summary` combines ensembles like :func:`analysis.tables.discrepancy_summary`
combines D: with two or more finite rates, a Student-t interval over the ensembles' rates
(``ci_method`` 'seeds'); with one, its own interval ('draws'). A rate of -inf is a median that
reached the rounding floor within two steps (faster than any measurable rate); ensembles
mixing such and finite rates get the envelope of their own intervals ('envelope').
"""
import math
from typing import List

import numpy as np
import pandas as pd

from .tables import mean_ci

KEYS = ["cell", "init", "dtype", "k"]


def decay_summary(memory: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, init, dtype, k): n_seeds, gain, D's median's decay rate with its 95 %
    interval (rate, lo, hi, ci_method), and the medians over ensembles of l_half and of the
    Lyapunov quantiles."""
    rows = []
    for key, g in memory.groupby(KEYS, sort=True):
        r = g["rate"].to_numpy(float)
        known = r[~np.isnan(r)]
        if len(known) == 0:
            rate, lo, hi, how = math.nan, math.nan, math.nan, "none"
        elif len(known) >= 2 and np.isfinite(known).all():
            rate, lo, hi = mean_ci(known)
            how = "seeds"
        elif len(known) == 1:
            i = int(np.flatnonzero(~np.isnan(r))[0])
            rate, lo, hi, how = known[0], float(g["rate_lo"].iloc[i]), float(g["rate_hi"].iloc[i]), "draws"
        else:
            rate, lo, hi, how = float(np.mean(known)), float(g["rate_lo"].min()), float(g["rate_hi"].max()), "envelope"
        row = {**dict(zip(KEYS, key)), "gain": float(g["gain"].iloc[0]), "n_seeds": len(g),
               "n_draws": int(g["n_draws"].sum()), "l_max": int(g["l_max"].max()),
               "rate": rate, "lo": lo, "hi": hi, "ci_method": how,
               "l_half": float(g["l_half"].median()) if g["l_half"].notna().any() else math.nan}
        for q in ("q10", "q50", "q90", "positive"):
            column = g[f"lyapunov_{q}"].astype(float)
            row[f"lyapunov_{q}"] = float(column.median()) if column.notna().any() else math.nan
        row["saturated"] = float(g["saturated"].astype(float).mean()) if g["saturated"].notna().any() else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def time_constant(rate: float) -> float:
    """-1/rate steps: how long D's median takes to shrink by a factor e (inf if it does not)."""
    return -1.0 / rate if rate < 0 else math.inf


def runs_of(ks: List[int], label) -> List[List[int]]:
    """``ks`` (sorted) cut into maximal runs of neighbours that share ``label(k)``: where a verdict holds and where it
    changes, read from the data rather than from fixed edges."""
    out: List[List[int]] = []
    for k in sorted(ks):
        if out and label(out[-1][-1]) == label(k):
            out[-1].append(k)
        else:
            out.append([k])
    return out
