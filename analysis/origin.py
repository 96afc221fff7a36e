"""The report's section "Where the difference comes from": which of cell, weight scale and
width decides how long the first symbol survives, stated from the ``memory`` table.

The measure is each ensemble's median largest Lyapunov exponent λ (per step; < 0: nearby
states converge and D decays about as exp(λ l); > 0: chaos, D saturates) where the sweep
measured it, else the decay rate of median D. Over the gain sweep's (cell, gain, k) grid the
section partitions its sum of squares into main effects and interactions (with and without the
sigmoid cell, a rescaled tanh cell), a description of that grid rather than a cause, and
states the numbers behind it: each cell's exponent per gain, where it crosses 0, and what
N(0,1) (gain sqrt(k)) does as k grows. Where draws were measured one by one, it checks each
draw's decay rate against its exponent (like with like: the whole state's distance where the
exponent follows more than h), and classifies what the trajectories of draws that keep D
settled on before naming a mechanism.
"""
import math
from typing import Dict, List

import numpy as np
import pandas as pd

from sweeps.contract import PERIOD_MAX, SETTLED

from .fig_memory import SECTION, cells_in, gain_rows
from .rates import time_constant
from .registry import Section, Skip, section
from .tables import pick_dtype

FACTORS = ("cell", "gain", "k")
PAIRS = (("cell", "gain"), ("cell", "k"), ("gain", "k"))
SIGMOID = "vanilla"      # the paper's cell: sigmoid(z) = (1 + tanh(z / 2)) / 2, a tanh cell at a quarter of the scale
KEPT_LAMBDA, KEPT_RATE = 0.1, 0.01   # an ordered draw (λ < -0.1) whose D does not decay (|rate| < 0.01)
UNSETTLED = "not settled by l_max"   # u or v still moving, or cycling with a period above PERIOD_MAX
DISTINCT = ("distinct fixed points", "distinct periodic orbits")


def measure_of(m: pd.DataFrame) -> str:
    return "lyapunov_q50" if m["lyapunov_q50"].notna().any() else "rate"


def variance_split(grid: pd.DataFrame, value: str) -> Dict[str, float]:
    """Shares of the sum of squares of ``value`` over a (cell, gain, k) grid: each factor's main effect,
    each pair's interaction, and the remainder (the three-way interaction, which in a grid of one
    ensemble per combination is also its noise). An ANOVA partition: exact for a balanced grid, where
    the terms are orthogonal; elsewhere the shares need not add up and the remainder absorbs the rest."""
    v = grid[value].to_numpy(float)
    mean = v.mean()
    total = float(((v - mean) ** 2).sum())
    effect = {f: grid.groupby(f)[value].transform("mean").to_numpy(float) - mean for f in FACTORS}
    shares = {f: float((effect[f] ** 2).sum()) for f in FACTORS}
    for a, b in PAIRS:
        pair = grid.groupby([a, b])[value].transform("mean").to_numpy(float) - mean - effect[a] - effect[b]
        shares[f"{a} x {b}"] = float((pair ** 2).sum())
    shares["cell x gain x k"] = total - sum(shares.values())
    return {name: x / total if total > 0 else math.nan for name, x in shares.items()}


def balanced(grid: pd.DataFrame) -> bool:
    """One row for every combination of the factors' levels."""
    return len(grid) == np.prod([grid[f].nunique() for f in FACTORS]) and not grid.duplicated(list(FACTORS)).any()


def split_text(g: pd.DataFrame, value: str) -> str:
    shares = variance_split(g, value)
    words = {"cell": "cell", "gain": "gain", "k": "width k", "cell x gain": "cell x gain", "cell x k": "cell x k",
             "gain x k": "gain x k", "cell x gain x k": "cell x gain x k (and noise)"}
    return ", ".join(f"{words[name]} {x:.0%}" for name, x in shares.items())


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
    draws = g.groupby(list(FACTORS))["n_draws"].sum()
    text = [f"Over the weight-scale sweep ({g['cell'].nunique()} cells x {g['gain'].nunique()} gains "
            f"({', '.join(f'{x:g}' for x in sorted(g['gain'].unique()))}) x {g['k'].nunique()} widths "
            f"({', '.join(str(int(k)) for k in sorted(g['k'].unique()))}), one ensemble of {int(draws.min()):,}"
            f"{'' if draws.min() == draws.max() else f'-{int(draws.max()):,}'} draws per combination), {name} per "
            f"step ranges from {g[value].min():.3g} to {g[value].max():.3g}. Its sum of squares over this grid "
            f"splits into " + split_text(g, value) + "."]
    others = g[g["cell"] != SIGMOID]
    if SIGMOID in set(g["cell"]) and others["cell"].nunique() >= 2:
        text[0] += (f" The sigmoid cell ({SIGMOID}) is a tanh cell at a quarter of the weight scale plus a bias "
                    f"(sigmoid(z) = (1 + tanh(z/2))/2), so part of its 'cell' share is a gain share: without it the "
                    f"split is " + split_text(others, value) + ".")
    text[0] += (f" This describes the grid, it does not name a cause: the shares depend on which levels were swept "
                f"and on the scale of the measure, where the most negative values (down to {g[value].min():.3g}) "
                f"weigh most in a sum of squares; no combination is repeated, so the three-way term is also the noise"
                + ("" if balanced(g) else "; and the grid is not balanced (some combinations are missing or not "
                   "finite), so the terms are not orthogonal") + ".")
    split = pd.DataFrame([{"cells": "all", **variance_split(g, value)}]
                         + ([{"cells": f"without {SIGMOID}", **variance_split(others, value)}]
                            if SIGMOID in set(g["cell"]) and others["cell"].nunique() >= 2 else []))
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
    return text, [split, table]


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


def like_with_like(draws: pd.DataFrame) -> pd.Series:
    """Each draw's decay rate of the distance its exponent follows: the whole state's (state_rate) for cells whose
    state is more than h (an LSTM's (h, c)), else h's (rate)."""
    if "state_rate" not in draws:
        return draws["rate"]
    return draws["state_rate"].where(draws["state_rate"].notna(), draws["rate"])


def settled_shares(kept: pd.DataFrame) -> pd.DataFrame:
    """Per cell, what the trajectories of ``kept`` draws settled on (the lyapunov table's attractor columns), as
    shares: v on u's own orbit at another phase, u and v on distinct fixed points, on distinct periodic orbits,
    merged, and the rest (``UNSETTLED``)."""
    shift = kept["v_shift"].astype(float)
    both_fixed = (kept["attractor"] == "fixed") & (kept["v_attractor"] == "fixed")
    periodic = kept["attractor"].str.startswith("period-") & kept["v_attractor"].str.startswith("period-")
    kind = np.select([shift >= 1, shift == 0, shift.isna() & both_fixed, shift.isna() & periodic],
                     ["v on u's orbit, shifted phase", "merged", "distinct fixed points", "distinct periodic orbits"],
                     UNSETTLED)
    table = pd.crosstab(kept["cell"], kind, normalize="index")
    table.columns.name = None
    table.insert(0, "draws", kept.groupby("cell").size())
    on_orbit = kept[(shift >= 1).to_numpy()]
    if len(on_orbit):
        table["of which period-2"] = (on_orbit["attractor"] == "period-2").groupby(on_orbit["cell"]).mean()
    return table.reindex(cells_in(kept)).rename_axis("cell").reset_index()


def _gap(d: pd.DataFrame, rate: pd.Series, cell: str) -> float:
    """Median |rate - λ| over ``cell``'s rows of ``d`` whose ``rate`` is finite."""
    mine = (d["cell"] == cell) & np.isfinite(rate)
    return float((rate[mine] - d.loc[mine, "lyapunov"]).abs().median())


def agreement(draws: pd.DataFrame) -> (List[str], List[pd.DataFrame]):
    rate = like_with_like(draws)
    ok = np.isfinite(draws["lyapunov"]) & np.isfinite(rate) & (draws["lyapunov"] < 0)
    d, r = draws[ok], rate[ok]
    if d.empty:
        return [], []
    gap = np.abs(r - d["lyapunov"])
    whole = sorted(set(d.loc[d["state_rate"].notna(), "cell"])) if "state_rate" in d else []
    text = (f"A consistency check: each draw's decay rate of the distance between its two trajectories and its largest "
            f"Lyapunov exponent both measure how fast two trajectories of one map converge, so they should agree where "
            f"the dynamics are ordered, and they do: over the {len(d):,} draws with λ < 0 the median |rate - λ| is "
            f"{gap.median():.2g} per step (90 % below {gap.quantile(0.9):.2g}). "
            + (f"Like with like, the rate of {', '.join(whole)} is that of the whole state, which λ follows (D reads "
               f"only h; " + "; ".join(f"{c}: median |rate - λ| {_gap(d, r, c):.2g} with the whole state's rate, "
                                      f"{_gap(d, d['rate'], c):.2g} with h's" for c in whole) + "). " if whole else "")
            + "This says the two measurements agree, not why the exponent is what it is. Where λ > 0 D stops decaying "
            "and saturates instead (see the figure).")
    if "lstm" in set(d["cell"]) and not whole:
        text += (" The LSTM's rate here reads h while its λ follows (h, c): its points are not like with like "
                 "(tables written before the whole state's rate was recorded).")
    kept = d[(d["lyapunov"] < -KEPT_LAMBDA) & (d["rate"].abs() < KEPT_RATE)]
    tables = []
    if len(kept) and "attractor" in kept and kept["attractor"].notna().all():
        shares = settled_shares(kept)
        tables.append(shares)
        kinds = [c for c in shares.columns if c not in ("cell", "draws", "of which period-2")]
        count = shares[kinds].mul(shares["draws"], axis=0).round().sum()
        many = int(sum(count.get(k, 0) for k in DISTINCT))
        shifted = int(count.get("v on u's orbit, shifted phase", 0))
        text += (f" {len(kept):,} ordered draws (λ < -{KEPT_LAMBDA:g}) nevertheless keep D from decaying (|rate of "
                 f"||h_u - h_v||| < {KEPT_RATE:g}). What their trajectories settled on, per cell (a state within "
                 f"{SETTLED:g} of another counts as the same; periods up to {PERIOD_MAX}): "
                 + "; ".join(f"{row['cell']} ({int(row['draws']):,} draws): "
                             + ", ".join(f"{k} {row[k]:.0%}" for k in kinds if row[k] > 0)
                             for _, row in shares.iterrows())
                 + f". Only u and v on distinct attractors is memory by multistability ({many:,} of the {len(kept):,} "
                 f"draws); v on u's own orbit at another phase is one attractor that the first symbol shifted in time "
                 f"({shifted:,}); the trajectories of the rest had not settled within {SETTLED:g} by l_max (or cycle "
                 f"with a period above {PERIOD_MAX}), so no mechanism is named for them.")
    elif len(kept):
        text += (f" {len(kept):,} ordered draws (λ < -{KEPT_LAMBDA:g}) nevertheless keep D from decaying (|rate| < "
                 f"{KEPT_RATE:g}); what their trajectories settled on was not recorded (tables written before the "
                 f"attractor columns), so no mechanism is named.")
    return [text], tables


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
        text, settled = agreement(t.get("lyapunov"))
        out.paragraphs += text
        tables += settled
    except Skip:
        pass
    if not out.paragraphs:
        raise Skip("too few gains, widths or draws in the memory table to compare")
    out.tables += tables
    return out
