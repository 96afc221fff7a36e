"""The report's section "Where the difference comes from": which of cell, weight scale and
width decides how long the first symbol survives, stated from the ``memory`` table.

The measure is each ensemble's median largest Lyapunov exponent λ (per step; < 0: nearby
states converge and D decays about as exp(λ l); > 0: chaos, D saturates) where the sweep
measured it, else the decay rate of median D. Over the gain sweep's (cell, gain, k) grid the
section splits its variance into the three factors' main effects (the share of the total sum
of squares each factor's level means explain; the rest is their interactions), and states
the numbers behind it: each cell's exponent per gain, where it crosses 0, and what N(0,1)
(gain sqrt(k)) does as k grows.
"""
import math
from typing import Dict, List

import numpy as np
import pandas as pd

from .fig_memory import SECTION, cells_in, gain_rows
from .rates import time_constant
from .registry import Section, Skip, section
from .tables import pick_dtype

FACTORS = ("cell", "gain", "k")
KEPT_LAMBDA, KEPT_RATE = 0.1, 0.01   # an ordered draw (λ < -0.1) whose D does not decay (|rate| < 0.01)


def measure_of(m: pd.DataFrame) -> str:
    return "lyapunov_q50" if m["lyapunov_q50"].notna().any() else "rate"


def main_effects(grid: pd.DataFrame, value: str) -> Dict[str, float]:
    """Share of the variance of ``value`` over a (cell, gain, k) grid explained by each factor's
    level means (eta squared), and by their interactions (the remainder)."""
    v = grid[value].to_numpy(float)
    total = float(((v - v.mean()) ** 2).sum())
    shares = {}
    for f in FACTORS:
        means = grid.groupby(f)[value].transform("mean").to_numpy(float)
        shares[f] = float(((means - v.mean()) ** 2).sum()) / total if total > 0 else math.nan
    shares["interactions"] = 1.0 - sum(shares[f] for f in FACTORS)
    return shares


def zero_crossing(gains: np.ndarray, values: np.ndarray) -> float:
    """The gain at which ``values`` (ordered by gain) first reach 0, interpolated in log gain;
    nan if they stay below."""
    above = np.flatnonzero(values >= 0)
    if not len(above):
        return math.nan
    i = above[0]
    if i == 0:
        return float(gains[0])
    x0, x1, y0, y1 = math.log(gains[i - 1]), math.log(gains[i]), values[i - 1], values[i]
    return float(math.exp(x0 + (x1 - x0) * (-y0) / (y1 - y0)))


def gain_findings(m: pd.DataFrame, value: str) -> (List[str], List[pd.DataFrame]):
    g = gain_rows(m).dropna(subset=[value])
    g = g[np.isfinite(g[value])]
    if g.empty or g["gain"].nunique() < 2:
        return [], []
    name = "the median largest Lyapunov exponent" if value == "lyapunov_q50" else "the decay rate of median D"
    shares = main_effects(g, value)
    order = sorted(FACTORS, key=lambda f: -shares[f])
    words = {"cell": "the cell", "gain": "the weight scale (gain)", "k": "the width k"}
    text = [f"Over the weight-scale sweep ({g['cell'].nunique()} cells x {g['gain'].nunique()} gains x "
            f"{g['k'].nunique()} widths, {int(g['n_draws'].sum()):,} draws), {name} per step ranges from "
            f"{g[value].min():.3g} to {g[value].max():.3g}. Its variance splits into "
            + ", ".join(f"{words[f]} {shares[f]:.0%}" for f in order)
            + f" and their interactions {shares['interactions']:.0%}: {words[order[0]]} decides most, then "
            f"{words[order[1]]}."]
    by_gain = g.groupby(["cell", "gain"])[value].median().unstack("gain").reindex(cells_in(g))
    by_gain.columns = [f"gain {c:g}" for c in by_gain.columns]
    crossing = {}
    for cell, d in g.groupby("cell"):
        per_k = d.groupby("k").apply(lambda x: zero_crossing(x.sort_values("gain")["gain"].to_numpy(float),
                                                             x.sort_values("gain")[value].to_numpy(float)))
        crossing[cell] = per_k
    table = by_gain.reset_index().rename(columns={"index": "cell"})
    table.insert(1, "λ = 0 at gain (median over k)", [float(np.nanmedian(crossing[c])) if crossing[c].notna().any()
                                                     else math.nan for c in table["cell"]])
    table.insert(2, "k crossing 0 by gain 8", [int(crossing[c].notna().sum()) for c in table["cell"]])
    slowest = {c: d.loc[d[value].idxmax()] for c, d in g.groupby("cell")}
    pieces = []
    for cell in cells_in(g):
        r = slowest[cell]
        cross = crossing[cell].dropna()
        where = (f"crosses 0 (chaos) at gain {cross.median():.2g} for {len(cross)} of {crossing[cell].size} widths"
                 if len(cross) else f"stays below 0 at every gain up to {g['gain'].max():g}")
        decay = (f"time constant of D {time_constant(r['rate']):.3g} steps" if r["hi"] < 0
                 else "D's median does not decay measurably")
        pieces.append(f"{cell}: {where}; its largest value is {r[value]:.3g} (gain {r['gain']:g}, k={int(r['k'])}, "
                      f"{decay})")
    text.append("Per cell, " + "; ".join(pieces) + ".")
    at_one = g[g["gain"] == 1.0]
    if not at_one.empty:
        tc = at_one.groupby("cell")["rate"].median()
        text.append("At the same scale (gain 1, Xavier's), the median time constant -1/rate of D over the widths is "
                    + ", ".join(f"{c} {time_constant(tc[c]):.3g} steps" for c in cells_in(at_one)) + ".")
    return text, [table]


def width_findings(m: pd.DataFrame, value: str) -> List[str]:
    n = m[m["init"] == "normal"].dropna(subset=[value])
    if n.empty or n["k"].nunique() < 2:
        return []
    name = "the median exponent" if value == "lyapunov_q50" else "the decay rate of median D"
    pieces = []
    for cell in cells_in(n):
        d = n[n["cell"] == cell].sort_values("k")
        above = d[d[value] > 0]
        first = f"positive from k={int(above['k'].iloc[0])}" if len(above) else "negative at every k"
        pieces.append(f"{cell} {d[value].iloc[0]:.3g} at k={int(d['k'].iloc[0])}, {d[value].iloc[-1]:.3g} at "
                      f"k={int(d['k'].iloc[-1])} ({first})")
    return ["Under the paper's N(0,1) weights the gain grows as sqrt(k), so width is weight scale in disguise: "
            f"{name} per step goes " + "; ".join(pieces) + "."]


def agreement(draws: pd.DataFrame) -> List[str]:
    d = draws[np.isfinite(draws["lyapunov"]) & np.isfinite(draws["rate"]) & (draws["lyapunov"] < 0)]
    if d.empty:
        return []
    gap = np.abs(d["rate"] - d["lyapunov"])
    text = (f"Each draw's decay rate of ||h_u - h_v|| and its largest Lyapunov exponent agree where the dynamics are "
            f"ordered: over the {len(d):,} draws with λ < 0 the median |rate - λ| is {gap.median():.2g} per step "
            f"(90 % below {gap.quantile(0.9):.2g}), so D decays as exp(λ l) and the exponent is the time constant's "
            f"cause. Where λ > 0 D stops decaying and saturates instead (see the figure).")
    kept = d[(d["lyapunov"] < -KEPT_LAMBDA) & (d["rate"].abs() < KEPT_RATE)]
    if len(kept):
        share = kept.groupby("cell").size().sort_values(ascending=False)
        text += (f" {len(kept):,} ordered draws (λ < -{KEPT_LAMBDA:g}) nevertheless keep D from decaying "
                 f"(|rate| < {KEPT_RATE:g}): u and v settled on different attractors, memory by multistability rather "
                 f"than slow dynamics (" + ", ".join(f"{c} {n:,}" for c, n in share.items()) + ").")
    return [text]


@section(SECTION, "Where the difference comes from")
def origin(t) -> Section:
    m = pick_dtype(t.summary("memory"))
    if gain_rows(m).empty and m["lyapunov_q50"].isna().all():
        raise Skip("the memory table has neither a weight-scale sweep nor Lyapunov exponents")
    value = measure_of(m)
    out = Section()
    text, tables = gain_findings(m, value)
    out.paragraphs += text + width_findings(m, value)
    try:
        out.paragraphs += agreement(t.get("lyapunov"))
    except Skip:
        pass
    if not out.paragraphs:
        raise Skip("too few gains, widths or draws in the memory table to compare")
    out.tables += tables
    return out
