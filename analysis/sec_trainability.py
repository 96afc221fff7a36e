"""The report's section "From memory at initialisation to what training learns": the trainability
map (``analysis.trainability``), claim 5, judged on it with the paper's claims (``analysis.claims.MAP_CLAIM``), and what
training does to memory on the task's own inputs (the ``task_memory`` table, initial against
trained model of the same run).

The section is absent where the tables hold no embedded-Reber run with a lag range (a report of
the paper's jobs).
"""
import math

import numpy as np
import pandas as pd

from .claims import MAP_CLAIM, REACH
from .registry import Section, Skip, Tables, section
from .sec_training import _optional
from .success import OUTER_SUCCESS, constant_share, flag_runs
from .trainability import DECODED, LEVEL, map_runs, success_by_lag

SECTION = "trainability"
MEASURES = {"decodable": "decodable", "distance_q50": "median ||h_T - h_P||",
            "lyapunov_q50": "finite-time exponent (median over strings)"}
BOOT_RUNS = 2000      # bootstrap replicates of a median paired difference over runs


def lag_runs(t: Tables) -> pd.DataFrame:
    """The map's runs (``trainability.map_runs``); Skip where there are none."""
    d = map_runs(t.get("runs"), _optional(t, "epochs"))
    if d.empty:
        raise Skip("no embedded-Reber runs with a lag range")
    return d


def _departures(d: pd.DataFrame) -> str:
    """What these runs do that the paper did not, read from their own settings."""
    budget = "; ".join(
        f"{r.recipe}: {r.optimizer} on the {r.loss} loss, batches of {r.batch_size}, at most {r.max_epochs} epochs of "
        f"{r.n_train} training strings"
        for r in d[["recipe", "optimizer", "loss", "batch_size", "max_epochs", "n_train"]].drop_duplicates().itertuples())
    return ("Departures from the paper: cells, weight scales and dependency lengths it did not try; " + budget +
            " (the authors: per-string SGD on the squared error, 1000 epochs of 256 strings, no validation or test "
            "set)" + ("; training, validation and test strings disjoint" if (d["sampling"] == "disjoint").all() else "")
            + ". A run stopped by its epoch cap while still "
            "improving is a budget-limited failure, which the claim's rule tells apart.")


def reach(task_memory: pd.DataFrame) -> int:
    """The largest step l of the inner string that at least REACH of the strings reach."""
    n = task_memory.groupby("l")["n_strings"].min() / task_memory["strings"].max()
    return int(n.index[n >= REACH].max())


def stage_values(task_memory: pd.DataFrame, runs: pd.DataFrame, l: int) -> pd.DataFrame:
    """One row per run at step ``l``: cell, k, init, outcome (learned / failed, from ``runs``; unknown
    where the run is not there), and each measure of MEASURES at init and trained (NaN where not
    measured)."""
    at = task_memory[task_memory["l"] == l]
    wide = at.set_index(["run_id", "cell", "k", "stage"])[[m for m in MEASURES if m in at.columns]].unstack("stage")
    wide.columns = [f"{m} {stage}" for m, stage in wide.columns]
    wide = wide.reset_index()
    outcome = runs.set_index("run_id")["success"].map({True: "learned", False: "failed"})
    wide["outcome"] = wide["run_id"].map(outcome).fillna("unknown")
    wide["init"] = wide["run_id"].map(runs.set_index("run_id")["init"]).fillna("?")
    return wide


def median_shift(before: np.ndarray, after: np.ndarray, rng: np.random.Generator, boot: int = BOOT_RUNS):
    """(median of after - before, its bootstrap 95 % percentile interval over the runs)."""
    diff = after - before
    diff = diff[~np.isnan(diff)]
    if not len(diff):
        return math.nan, math.nan, math.nan
    reps = np.median(diff[rng.integers(0, len(diff), size=(boot, len(diff)))], 1)
    return (float(np.median(diff)), float(np.quantile(reps, (1 - LEVEL) / 2)),
            float(np.quantile(reps, (1 + LEVEL) / 2)))


def training_effect(task_memory: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per (cell, k, outcome) and measure at step ``reach``: runs, the medians at init and trained,
    the median paired difference trained - init with its bootstrap 95 % interval over runs, and how
    many runs rose."""
    l = reach(task_memory)
    v = stage_values(task_memory, runs, l)
    rows = []
    for i, ((cell, k, outcome), g) in enumerate(v.groupby(["cell", "k", "outcome"], sort=True)):
        for j, (m, words) in enumerate(MEASURES.items()):
            if f"{m} init" not in g or g[f"{m} init"].isna().all():
                continue
            before, after = g[f"{m} init"].to_numpy(float), g[f"{m} trained"].to_numpy(float)
            shift, lo, hi = median_shift(before, after, np.random.default_rng([i, j]))
            rows.append({"cell": cell, "k": int(k), "outcome": outcome, "measure": words, "l": l, "runs": len(g),
                         "init (median)": float(np.nanmedian(before)), "trained (median)": float(np.nanmedian(after)),
                         "trained - init (median)": shift, "lo": lo, "hi": hi,
                         "runs where it rose": int((after > before).sum())})
    return pd.DataFrame(rows)


def _effect_text(e: pd.DataFrame) -> str:
    said = []
    for (cell, k, outcome), g in e.groupby(["cell", "k", "outcome"], sort=True):
        parts = "; ".join(f"{r['measure']} {r['init (median)']:.3g} -> {r['trained (median)']:.3g} (paired median "
                          f"shift {r['trained - init (median)']:+.3g} [{r['lo']:+.3g}, {r['hi']:+.3g}], rose in "
                          f"{r['runs where it rose']}/{r['runs']})" for _, r in g.iterrows())
        said.append(f"{cell} k={k}, runs that {outcome if outcome != 'unknown' else 'are not in the runs table'}: "
                    f"{parts}")
    return ". ".join(said) + "."


def success_table(d: pd.DataFrame) -> pd.DataFrame:
    """Per (scope, cell, k, init): successes/n [Wilson 95 %] in one column per lag range."""
    r = success_by_lag(d)
    r["range"] = [f"lag {int(a)}-{int(b)}" for a, b in zip(r["lag_min"], r["lag_max"])]
    r["said"] = [f"{int(x)}/{int(n)} [{lo:.0%}, {hi:.0%}]" for x, n, lo, hi in zip(r["successes"], r["n"], r["lo"],
                                                                                  r["hi"])]
    order = list(dict.fromkeys(r.sort_values("lag")["range"]))
    wide = r.pivot_table(index=["scope", "cell", "k", "init"], columns="range", values="said", aggfunc="first")
    return wide[order].reset_index()


@section(SECTION, "From memory at initialisation to what training learns")
def trainability(t: Tables) -> Section:
    d = lag_runs(t)
    share = constant_share(d, _optional(t, "lengths"))
    span = f"{share.min():.0%}" if share.min() == share.max() else f"{share.min():.0%} to {share.max():.0%}"
    baseline = (f"The best constant prediction of the outer symbol scores {span} on these runs' test sets, far "
                f"below the {OUTER_SUCCESS:.0%} a success needs." if share.notna().any() else
                "The constant-prediction baseline is not in these tables: it is at least 50 %.")
    s = Section(paragraphs=[
        "Each cell is trained at a given width and weight scale on embedded Reber with the inner string's length "
        "confined to a lag range, many seeds per range, under one recipe; the same cell, width and weight scale is "
        "measured at initialisation by the discrepancy sweep. Per (cell, width, init) the success rate against the "
        "lag (Wilson 95 %, the table below) gives L50, the lag at which half the seeds succeed, from a logistic fit "
        "with a bootstrap interval over seeds; a success rate above one half at every lag trained says only that L50 "
        "lies beyond the longest (written > x), below one half everywhere, that it lies short of the shortest. Memory at "
        "initialisation: the time constant of D (-1/its decay rate; inf where D does not decay), the median largest "
        "Lyapunov exponent (> 0: chaos, where D stays large without remembering) and the lag at which decodable "
        f"(the held-out readout of the first symbol under noise) falls to {DECODED:g}. " + baseline,
        f"Claim {MAP_CLAIM.number} (beyond the paper), judged with the paper's claims above on these tables: "
        f"{MAP_CLAIM.statement}",
        _departures(d),
        "What the claim's numbers can say: a rank correlation over a few (cell, width, init) points describes these "
        "cells and weight scales under this recipe and budget. It does not show that the memory at initialisation "
        "causes what training learns: the cells differ in more than their memory."],
        tables=[success_table(d)])
    tm = _optional(t, "task_memory")
    if tm is None:
        s.paragraphs.append("What training does to memory: no task_memory table in this directory.")
        return s
    effect = training_effect(tm, flag_runs(t.get("runs")))
    s.paragraphs.append(
        f"What training does to memory, on the task's own inputs (task_memory): the same inner strings read after B T "
        f"and after B P by each run's initial and trained (selected) model, at step l = {int(effect['l'].iloc[0])} of "
        f"the inner string (the longest that at least {REACH:.0%} of the strings reach). Paired over runs: "
        + _effect_text(effect) + " Intervals: bootstrap 95 % over runs of the median paired shift. A description of "
        "the trained networks, reported beside the claim and not judged.")
    s.tables.append(effect)
    return s
