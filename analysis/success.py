"""What counts as a training success, which models are the paper's, and which runs may be
judged together: shared by the claims, the sections and the figures, so all judge a run the
same way."""
from typing import Optional

import numpy as np
import pandas as pd

STRING_SUCCESS = 0.95     # a Reber run succeeds when >= 95 % of its test strings are fully correct
OUTER_SUCCESS = 0.95      # an embedded run succeeds when its outer T/P accuracy is >= 95 %
# The paper's models: vanilla k=5 on Reber; vanilla k=18 and GRU k=10 (≈590 parameters each) on embedded Reber.
PAPER_K = {("reber", "vanilla"): 5, ("embedded-reber", "vanilla"): 18, ("embedded-reber", "gru"): 10}
# A recipe's name says its protocol and the ingredients that differ from the protocol's own; runs of
# one recipe that differ in another setting (e.g. their epoch cap) are never pooled.
INGREDIENTS = ["optimizer", "loss", "order", "batch_size"]
SETTINGS = ["n_train", "n_val", "n_test", "max_epochs", "lr", "tol", "bias", "init", "dtype", "data_seed",
            "lag_min", "lag_max", "sampling"]


def is_embedded(task: str) -> bool:
    return task.startswith("embedded")


def success_flags(runs: pd.DataFrame) -> pd.Series:
    """Per run: Reber runs succeed at string accuracy >= STRING_SUCCESS, embedded runs at
    outer accuracy >= OUTER_SUCCESS (test set, selected model)."""
    emb = runs["task"].map(is_embedded)
    return pd.Series(np.where(emb, runs["outer_accuracy"] >= OUTER_SUCCESS,
                              runs["string_accuracy"] >= STRING_SUCCESS), index=runs.index)


def scoped(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with a ``scope`` column: 'recipe <recipe>' (the protocol and the ingredients that
    differ from its own, e.g. 'recipe paper+adam'), followed by the settings that vary among the
    runs of that recipe, e.g. 'recipe paper (n_train 256, max_epochs 30)', so that runs trained
    differently are never pooled."""
    d = runs.copy()
    if d.empty:
        return d.assign(scope=pd.Series(dtype=str))
    settings = [c for c in SETTINGS if c in d.columns]   # tables written before a setting existed lack it
    varying = d.groupby("recipe")[settings].nunique(dropna=False) > 1
    d["scope"] = [f"recipe {recipe}" + ("" if not varying.loc[recipe].any() else " (" + ", ".join(
        f"{c} {row[c]:g}" if isinstance(row[c], float) else f"{c} {row[c]}"
        for c in settings if varying.loc[recipe, c]) + ")") for recipe, (_, row) in zip(d["recipe"], d.iterrows())]
    return d


def paper_models(runs: pd.DataFrame, task: str) -> pd.DataFrame:
    """The runs of the paper's models on ``task`` (vanilla k=5 on Reber; vanilla k=18 and GRU
    k=10 on embedded Reber), ``scoped``."""
    d = runs[runs["task"] == task]
    return scoped(d[[PAPER_K.get((task, c)) == k for c, k in zip(d["cell"], d["k"])]])


# ---------------------------------------------------------------------- the constant-prediction baseline
def outer_score(runs: pd.DataFrame, which: str = "test") -> pd.Series:
    """Per run: the outer accuracy on set ``which`` (train, val or test) of the selected model."""
    return runs["outer_accuracy" if which == "test" else f"{which}_outer_accuracy"]


def constant_share(runs: pd.DataFrame, lengths: Optional[pd.DataFrame] = None, which: str = "test") -> pd.Series:
    """Per run (indexed like ``runs``): the outer accuracy of the best constant prediction (always T,
    or always P) on its set ``which``: the runs table's ``<which>_constant_outer`` where it has
    one, else, for the test set, the ``lengths`` table's ``outer_T`` summed over lengths; NaN
    where the tables do not say (written before lksweep recorded the sets' composition)."""
    column = f"{which}_constant_outer"
    out = (runs[column].astype(float) if column in runs.columns  # null in rows written before the column existed
           else pd.Series(np.nan, index=runs.index))
    if which == "test" and lengths is not None and "outer_T" in lengths.columns:
        t = lengths.dropna(subset=["outer_T"]).groupby("run_id")[["outer_T", "n"]].sum()
        share = (t["outer_T"] / t["n"]).reindex(runs["run_id"]).to_numpy()
        out = out.fillna(pd.Series(np.maximum(share, 1 - share), index=runs.index))
    return out


def predicts_constant(runs: pd.DataFrame, lengths: Optional[pd.DataFrame] = None) -> pd.Series:
    """Per run: True where its test outer accuracy is exactly what a constant prediction scores:
    at every dependency length, its correct outer symbols are the strings with outer T, or at
    every length those with outer P (``lengths.outer_T``); without that column, where its test
    outer accuracy is the share of T or of P in the test set (within half a string). NaN where
    the tables give neither."""
    if lengths is not None and "outer_T" in lengths.columns and lengths["outer_T"].notna().any():
        d = lengths[lengths["run_id"].isin(runs["run_id"])]
        all_t = (d["outer_correct"] == d["outer_T"]).groupby(d["run_id"]).all()
        all_p = (d["outer_correct"] == d["n"] - d["outer_T"]).groupby(d["run_id"]).all()
        return (all_t | all_p).reindex(runs["run_id"]).set_axis(runs.index).astype(object)
    share = constant_share(runs, lengths)
    half = 0.5 / runs["n_test"]
    acc = outer_score(runs)
    at = ((acc - share).abs() < half) | ((acc - (1 - share)).abs() < half)
    return at.astype(object).where(share.notna(), np.nan)


# ---------------------------------------------------------------------- the training budget
RISE_WINDOW = 0.2     # the last fifth of a run's epochs ...
RISE = 0.01           # ... raised its best validation score by more than this: still improving at the stop


def validation_score(task: str) -> str:
    """The epochs table's column a run's success is judged on, on the validation set."""
    return "val_outer_accuracy" if is_embedded(task) else "val_string_accuracy"


def still_improving(runs: pd.DataFrame, epochs: Optional[pd.DataFrame]) -> pd.Series:
    """Per run (indexed like ``runs``): True where the run was stopped by its epoch cap
    (stop_reason max_epochs) while its validation score (outer accuracy on embedded Reber,
    string accuracy on Reber) was still rising: its best over the last RISE_WINDOW of its
    epochs exceeds its best before them by more than RISE. NaN without an epochs table."""
    if epochs is None:
        return pd.Series(np.nan, index=runs.index, dtype=object)
    rising = {}
    for run_id, e in epochs[epochs["run_id"].isin(runs["run_id"])].groupby("run_id", sort=False):
        score = e.sort_values("epoch")[validation_score(e["task"].iloc[0])].to_numpy(float)
        cut = int(np.ceil(len(score) * (1 - RISE_WINDOW)))
        rising[run_id] = 0 < cut < len(score) and np.nanmax(score[cut:]) > np.nanmax(score[:cut]) + RISE
    capped = (runs["stop_reason"] == "max_epochs").to_numpy()
    return pd.Series([bool(c and rising.get(r, False)) for c, r in zip(capped, runs["run_id"])], index=runs.index)


def flag_runs(runs: pd.DataFrame, epochs: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """``runs`` with ``success`` (:func:`success_flags`) and ``improving``: failed, and
    :func:`still_improving` at the cap (NaN without ``epochs``)."""
    d = runs.copy()
    d["success"] = success_flags(d)
    improving = still_improving(d, epochs)
    d["improving"] = improving.where(improving.isna(), improving.astype(bool) & ~d["success"])
    return d


def halvings(epochs: pd.DataFrame) -> pd.Series:
    """Per run_id: how many times its learning rate was lowered (epochs whose lr is below the
    previous epoch's)."""
    e = epochs.sort_values(["run_id", "epoch"])
    return (e["lr"] < e.groupby("run_id")["lr"].shift()).groupby(e["run_id"]).sum().astype(int)
