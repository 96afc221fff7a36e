"""The trainability map: how long a dependency training learns, per cell, width and weight scale,
set beside the memory the same cell has at initialisation.

Training side (``runs``, ``epochs``): the embedded-Reber runs with a lag range (``lag_min`` -
``lag_max``: the length of the inner string the outer symbol is carried across). A run succeeds as
for claim 2 (``analysis.success.success_flags``: test outer accuracy of its selected model >= 95 %);
its lag is the centre of its range. Per (cell, k, init) and lag range: the success rate with its
Wilson 95 % interval; over the ranges, L50, the lag at which half the seeds succeed, from a logistic
fit p(x) = σ(b0 + b1 x) by maximum likelihood with -1/S_MIN <= b1 <= 0 (success does not rise with
lag; the fall from 73 % to 27 % takes at least 2 S_MIN symbols, so seeds that separate perfectly
between two ranges give a finite L50 between them instead of an infinitely steep fit). L50 = -b0/b1;
where the observed success rate stays above one half at every range trained, L50 lies beyond the
longest (+inf here, printed "> x"), below one half everywhere, short of the shortest (-inf, "< x"):
bounds, never invented numbers. Its 95 % interval is the percentile interval of L50 over BOOT bootstrap
resamples of the seeds (a seed brings its runs at every lag: they share initial weights).

Memory side, the same (cell, k, init) at initialisation: the time constant of D (-1/rate, the
``memory`` table's decay rate of median D, ensembles combined by ``analysis.rates.decay_summary``;
inf where D does not decay), the median largest Lyapunov exponent over the ``lyapunov`` table's
draws, and the lag at which ``decodable`` (the held-out readout's accuracy under noise) falls to
DECODED (linear between the steps around it; "> l_max" where it never does).

Plain NumPy and pandas: every fit and bootstrap is vectorised over replicates, deterministic for
given tables (the resamples come from a generator seeded by the point's position).
"""
import math
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from .rates import decay_summary, time_constant
from .success import OUTER_SUCCESS, flag_runs, scoped
from .tables import pick_dtype, rate_summary

S_MIN = 1.0          # symbols: the scale of the steepest fall the fit allows (slope b1 >= -1/S_MIN)
HALF = 0.5
DECODED = 0.75       # decodable's level whose lag measures memory under noise
BOOT = 1000          # bootstrap replicates
LEVEL = 0.95
POINT = ["cell", "k", "init"]
LAG_SETTINGS = ["init", "lag_min", "lag_max", "n_train", "n_val", "n_test"]   # vary within a map, never a scope


# ---------------------------------------------------------------------- the runs
def map_runs(runs: pd.DataFrame, epochs: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The embedded-Reber runs with a lag range, with ``lag`` (the range's centre), ``success``,
    ``improving`` (``analysis.success.flag_runs``) and ``scope``: the recipe and the settings that
    vary among its runs other than init, lag and the set sizes a lag range shrinks (runs of other
    budgets are never pooled). Empty if there are none."""
    if "lag_min" not in runs.columns:
        return runs.iloc[:0].assign(lag=[], scope=[], success=[], improving=[])
    d = runs[(runs["task"] == "embedded-reber") & runs["lag_min"].notna()].copy()
    d["scope"] = scoped(d.drop(columns=[c for c in LAG_SETTINGS if c in d.columns]))["scope"].to_numpy()
    d["lag"] = (d["lag_min"].astype(float) + d["lag_max"].astype(float)) / 2
    return flag_runs(d, epochs)


def gain_of(init: str) -> float:
    """The G of ``gain:G`` (NaN for other draws)."""
    return float(init[len("gain:"):]) if init.startswith("gain:") else math.nan


def success_by_lag(d: pd.DataFrame) -> pd.DataFrame:
    """Per (scope, cell, k, init, lag range): successes, n, rate and the Wilson 95 % interval."""
    return rate_summary(d, ["scope", *POINT, "lag_min", "lag_max", "lag"], "success")


# ---------------------------------------------------------------------- the logistic fit
def _loglik(b0, b1, x, s, n):
    """Binomial log-likelihood of p = σ(b0 + b1 x): b0, b1 (...,), x (L,), s, n (..., L)."""
    z = b0[..., None] + b1[..., None] * x
    # log σ(z) = -log(1 + e^-z), written to stay finite for large |z|
    return (s * -np.logaddexp(0, -z) + (n - s) * -np.logaddexp(0, z)).sum(-1)


def _best_b0(b1, x, s, n, iterations: int = 30):
    """For each slope ``b1`` (...,), the intercept maximising the likelihood: the root of the
    score sum(s - n σ(b0 + b1 x)), decreasing in b0, by Newton's method kept inside a bracket
    that shrinks every step (a step leaving it bisects instead); the bracket is wide enough for
    any rate within 1e-12 of 0 or 1 (all successes or none: the root is at its end)."""
    span = 30.0 + np.abs(b1) * np.abs(x).max()
    lo, hi, b0 = -span, span, np.zeros_like(b1)
    for _ in range(iterations):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            p = 1 / (1 + np.exp(-(b0[..., None] + b1[..., None] * x)))
            score, info = (s - n * p).sum(-1), (n * p * (1 - p)).sum(-1)
            step = b0 + score / info
        lo, hi = np.where(score > 0, b0, lo), np.where(score < 0, b0, hi)
        b0 = np.where(score == 0, b0, np.where((step > lo) & (step < hi), step, (lo + hi) / 2))
    return b0


def fit(x: np.ndarray, s: np.ndarray, n: np.ndarray, iterations: int = 40) -> Tuple[np.ndarray, np.ndarray]:
    """(b0, b1) of the maximum-likelihood logistic fit with -1/S_MIN <= b1 <= 0, for lags ``x``
    (L,) and successes ``s`` out of ``n`` (..., L). The log-likelihood is concave in (b0, b1), so
    its profile over b1 (b0 at its best) is concave too: golden-section search over the interval."""
    s, n = np.asarray(s, float), np.asarray(n, float)
    shape = s.shape[:-1]
    a, b = np.full(shape, -1.0 / S_MIN), np.zeros(shape)
    ratio = (math.sqrt(5) - 1) / 2

    def profile(b1):
        return _loglik(_best_b0(b1, x, s, n), b1, x, s, n)

    for _ in range(iterations):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        left = profile(c) >= profile(d)                   # the maximum lies in [a, d], else in [c, b]
        a, b = np.where(left, a, c), np.where(left, d, b)
    b1 = (a + b) / 2
    # the flat fit b1 = 0 is a candidate of its own (golden section approaches it only in the limit)
    flat, edge = np.zeros(shape), np.full(shape, -1.0 / S_MIN)
    best = b1
    for cand in (flat, edge):
        best = np.where(profile(cand) > profile(best), cand, best)
    return _best_b0(best, x, s, n), best


def l50(x: np.ndarray, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """L50 (...,) for lags ``x`` (L,) and counts ``s``, ``n`` (..., L): +inf where the observed
    success rate exceeds one half at every lag run (L50 beyond the longest), -inf where it is below
    one half at every lag (short of the shortest), else -b0/b1 of :func:`fit` (which may lie a little
    outside the lags where the fit's tail pulls it there); NaN without runs. Lags are centred for
    the fit."""
    x = np.asarray(x, float)
    s, n = np.asarray(s, float), np.asarray(n, float)
    # bootstrap replicates repeat the same counts: fit each distinct (s, n) once
    counts, back = np.unique(np.concatenate([s, n], -1).reshape(-1, 2 * len(x)), axis=0, return_inverse=True)
    s_u, n_u = counts[:, :len(x)], counts[:, len(x):]
    centre = x.mean()
    b0, b1 = fit(x - centre, s_u, n_u)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = np.where(b1 < 0, centre - b0 / b1, np.where(b0 > 0, np.inf, np.where(b0 < 0, -np.inf, np.nan)))
        rate = np.where(n_u > 0, s_u / n_u, np.nan)
    run = n_u > 0
    at = np.where((rate > HALF).sum(-1) == run.sum(-1), np.inf, np.where((rate < HALF).sum(-1) == run.sum(-1), -np.inf, at))
    at = np.where(run.any(-1), at, np.nan)
    return at[back.ravel()].reshape(s.shape[:-1])


def bootstrap_l50(x: np.ndarray, outcomes: np.ndarray, rng: np.random.Generator, boot: int = BOOT) -> np.ndarray:
    """L50 of ``boot`` resamples of the seeds: ``outcomes`` (seeds, L) 1 success, 0 failure, NaN
    not run; each replicate draws as many seeds with replacement, each with its runs at every lag."""
    idx = rng.integers(0, len(outcomes), size=(boot, len(outcomes)))
    picked = outcomes[idx]                                        # (boot, seeds, L)
    return l50(x, np.nansum(picked, 1), np.isfinite(picked).sum(1))


def interval(values: np.ndarray, level: float = LEVEL) -> Tuple[float, float]:
    """The percentile interval of bootstrap ``values`` (±inf allowed: the order statistics at
    (1 - level)/2 and (1 + level)/2, never interpolated across an infinite one); NaN ignored."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if not len(v):
        return math.nan, math.nan
    return (float(np.quantile(v, (1 - level) / 2, method="lower")),
            float(np.quantile(v, (1 + level) / 2, method="higher")))


def lag_text(value: float, x: np.ndarray) -> str:
    """L50 as the page writes it: a number, or a bound where it is censored."""
    if math.isnan(value):
        return "n/a"
    if value == math.inf:
        return f"> {x.max():g}"
    if value == -math.inf:
        return f"< {x.min():g}"
    return f"{value:.3g}"


# ---------------------------------------------------------------------- ranks
def ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) along the last axis, ties sharing their mean rank; ±inf rank as
    the largest and smallest values (a censored L50 ties with the others censored the same way)."""
    v = np.asarray(v, float)
    less = (v[..., None, :] < v[..., :, None]).sum(-1)
    equal = (v[..., None, :] == v[..., :, None]).sum(-1)
    return less + (equal + 1) / 2


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation along the last axis: Pearson's correlation of the average
    ranks; NaN where either side's ranks are all tied."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(-1, keepdims=True), rb - rb.mean(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


# ---------------------------------------------------------------------- memory at initialisation
def decodable_lag(rows: pd.DataFrame, level: float = DECODED) -> float:
    """The step l at which ``decodable`` (mean over draws, ensembles weighted by their draws) first
    falls below ``level``, linear between the steps around it; inf where it never does by the
    last l measured, NaN without rows."""
    if rows.empty or rows["decodable"].isna().all():
        return math.nan
    w = rows.assign(weighted=rows["decodable"] * rows["n_draws"])
    by = w.groupby("l")[["weighted", "n_draws"]].sum().sort_index()
    acc = (by["weighted"] / by["n_draws"]).to_numpy(float)
    ls = by.index.to_numpy(float)
    below = np.flatnonzero(acc < level)
    if not len(below):
        return math.inf
    i = below[0]
    if i == 0:
        return float(ls[0])
    return float(ls[i - 1] + (ls[i] - ls[i - 1]) * (acc[i - 1] - level) / (acc[i - 1] - acc[i]))


def initial_memory(memory: Optional[pd.DataFrame], lyapunov: Optional[pd.DataFrame] = None,
                   decodable: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Per (cell, k, init) of the float64 ``memory`` rows: gain, n_seeds, the decay rate of median D
    with its 95 % interval (``decay_summary``), the time constant ``tau`` = -1/rate with its interval
    (inf where D may not decay), ``rates`` (the ensembles' own rates, for the bootstrap), the median
    largest Lyapunov exponent over the ``lyapunov`` draws (``lyapunov``, with ``lyapunov_draws``) and
    ``decodable_lag`` (NaN where not measured)."""
    if memory is None or memory.empty:
        return pd.DataFrame(columns=[*POINT, "gain", "tau", "tau_lo", "tau_hi", "rates", "lyapunov",
                                     "decodable_lag"])
    s = pick_dtype(decay_summary(memory))
    dtype = s["dtype"].iloc[0]
    rows = []
    for _, r in s.iterrows():
        key = {c: r[c] for c in POINT}
        own = memory[(memory["cell"] == r["cell"]) & (memory["k"] == r["k"]) & (memory["init"] == r["init"])
                     & (memory["dtype"] == dtype)]
        exps = (np.array([]) if lyapunov is None else lyapunov.loc[
            (lyapunov["cell"] == r["cell"]) & (lyapunov["k"] == r["k"]) & (lyapunov["init"] == r["init"])
            & (lyapunov["dtype"] == dtype), "lyapunov"].to_numpy(float))
        noisy = (pd.DataFrame() if decodable is None else decodable[
            (decodable["cell"] == r["cell"]) & (decodable["k"] == r["k"]) & (decodable["init"] == r["init"])
            & (decodable["dtype"] == dtype)])
        rows.append({**key, "gain": r["gain"], "n_seeds": r["n_seeds"], "rate": r["rate"], "rate_lo": r["lo"],
                     "rate_hi": r["hi"], "tau": time_constant(r["rate"]), "tau_lo": time_constant(r["lo"]),
                     "tau_hi": time_constant(r["hi"]), "rates": own["rate"].to_numpy(float),
                     "lyapunov": float(np.median(exps)) if len(exps) else math.nan, "lyapunov_draws": len(exps),
                     "decodable_lag": decodable_lag(noisy)})
    return pd.DataFrame(rows)


def bootstrap_tau(rates: np.ndarray, rng: np.random.Generator, boot: int = BOOT) -> np.ndarray:
    """The time constant of ``boot`` resamples of the ensembles' rates (mean rate over the
    resample; one ensemble: its own, every time)."""
    rates = rates[~np.isnan(rates)]
    if len(rates) < 2:
        return np.full(boot, time_constant(rates[0]) if len(rates) else math.nan)
    mean = rates[rng.integers(0, len(rates), size=(boot, len(rates)))].mean(1)
    with np.errstate(divide="ignore"):
        return np.where(mean < 0, -1.0 / mean, np.inf)


# ---------------------------------------------------------------------- the map
def trainability_map(runs: pd.DataFrame, memory: Optional[pd.DataFrame] = None,
                     lyapunov: Optional[pd.DataFrame] = None, decodable: Optional[pd.DataFrame] = None,
                     epochs: Optional[pd.DataFrame] = None, optimistic: bool = False, boot: int = BOOT) -> pd.DataFrame:
    """One row per (scope, cell, k, init) of the map's runs: gain, seeds, runs stopped by the epoch
    cap (``capped``) and of those the failed ones still improving (``improving``); the lags trained
    (``lags``), ``L50`` with its bootstrap interval (``L50_lo``, ``L50_hi``; ±inf: censored) and
    ``L50_boot`` (the replicates); and the memory at initialisation of :func:`initial_memory` (NaN
    where not measured) with ``ensembles`` (the memory rows its time constant combines) and
    ``tau_boot``. ``optimistic``: the failed runs still improving at the
    cap count as successes (what a longer budget could give at most)."""
    d = map_runs(runs, epochs)
    mem = initial_memory(memory, lyapunov, decodable).set_index(POINT) if memory is not None else None
    rows = []
    for i, ((scope, cell, k, init), g) in enumerate(d.groupby(["scope", *POINT], sort=True)):
        success = g["success"] | (g["improving"].fillna(False).astype(bool) if optimistic else False)
        wide = g.assign(success=success.astype(float)).pivot_table(index="seed", columns="lag", values="success")
        x = wide.columns.to_numpy(float)
        outcomes = wide.to_numpy(float)
        rng = np.random.default_rng([i, 0])
        point = float(l50(x, np.nansum(outcomes, 0), np.isfinite(outcomes).sum(0)))
        reps = bootstrap_l50(x, outcomes, rng, boot)
        lo, hi = interval(reps)
        row = {"scope": scope, "cell": cell, "k": int(k), "init": init, "gain": gain_of(init),
               "seeds": int(g["seed"].nunique()), "runs": len(g), "capped": int((g["stop_reason"] == "max_epochs").sum()),
               "improving": int(g["improving"].fillna(False).astype(bool).sum()), "lags": x,
               "L50": point, "L50_lo": lo, "L50_hi": hi, "L50_text": lag_text(point, x),
               "L50_interval": f"[{lag_text(lo, x)}, {lag_text(hi, x)}]", "L50_boot": reps}
        m = None if mem is None or (cell, k, init) not in mem.index else mem.loc[(cell, k, init)]
        rng_tau = np.random.default_rng([i, 1])
        row.update({"tau": math.nan, "tau_lo": math.nan, "tau_hi": math.nan, "lyapunov": math.nan,
                    "decodable_lag": math.nan, "ensembles": 0, "tau_boot": np.full(boot, math.nan)} if m is None else
                   {"tau": m["tau"], "tau_lo": m["tau_lo"], "tau_hi": m["tau_hi"], "lyapunov": m["lyapunov"],
                    "decodable_lag": m["decodable_lag"], "ensembles": int((~np.isnan(m["rates"])).sum()),
                    "tau_boot": bootstrap_tau(m["rates"], rng_tau, boot)})
        if m is not None and math.isnan(row["gain"]):
            row["gain"] = float(m["gain"])
        rows.append(row)
    return pd.DataFrame(rows)


def correlation(points: pd.DataFrame, against: str = "tau") -> Dict[str, float]:
    """Spearman's ρ between L50 and ``against`` over the points where both are known, and its
    bootstrap 95 % interval (each replicate: the points' L50 and time-constant replicates, so the
    interval carries the seeds' and the ensembles' sampling, not a resampling of the points); NaN
    where ρ is not defined (fewer than MIN_POINTS points, or all ranks tied), and the interval
    also where more than 2.5 % of the replicates tie all their ranks.
    ``measured``: the points whose L50 is not censored. ``points``: rows of :func:`trainability_map`."""
    p = points[points["L50"].notna() & points[against].notna()]
    out = {"points": len(p), "measured": int(np.isfinite(p["L50"].to_numpy(float)).sum()), "rho": math.nan,
           "rho_lo": math.nan, "rho_hi": math.nan}
    if len(p) < MIN_POINTS:
        return out
    out["rho"] = float(spearman(p["L50"].to_numpy(float), p[against].to_numpy(float)))
    if against == "tau" and not math.isnan(out["rho"]):
        reps = spearman(np.stack(p["L50_boot"].to_numpy()).T, np.stack(p["tau_boot"].to_numpy()).T)
        # replicates whose ranks all tie have no ρ: where they are more than the interval's tails, it has no ends
        if np.isnan(reps).mean() <= (1 - LEVEL) / 2:
            out["rho_lo"], out["rho_hi"] = interval(reps)
    return out


MIN_POINTS = 4        # fewer (cell, k, init) points give no rank correlation worth a verdict


__all__ = ["OUTER_SUCCESS", "map_runs", "success_by_lag", "fit", "l50", "bootstrap_l50", "interval", "ranks",
           "spearman", "decodable_lag", "initial_memory", "trainability_map", "correlation"]
