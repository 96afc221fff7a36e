"""What counts as a training success, which models are the paper's, and which runs may be
judged together: shared by the claims, the sections and the figures, so all judge a run the
same way."""
import numpy as np
import pandas as pd

STRING_SUCCESS = 0.95     # a Reber run succeeds when >= 95 % of its test strings are fully correct
OUTER_SUCCESS = 0.95      # an embedded run succeeds when its outer T/P accuracy is >= 95 %
# The paper's models: vanilla k=5 on Reber; vanilla k=18 and GRU k=10 (≈590 parameters each) on embedded Reber.
PAPER_K = {("reber", "vanilla"): 5, ("embedded-reber", "vanilla"): 18, ("embedded-reber", "gru"): 10}
# A recipe's name says its protocol and the ingredients that differ from the protocol's own; runs of
# one recipe that differ in another setting (e.g. their epoch cap) are never pooled.
INGREDIENTS = ["optimizer", "loss", "order", "batch_size"]
SETTINGS = ["n_train", "n_val", "n_test", "max_epochs", "lr", "tol", "bias", "init", "dtype", "data_seed"]


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
    varying = d.groupby("recipe")[SETTINGS].nunique(dropna=False) > 1
    d["scope"] = [f"recipe {recipe}" + ("" if not varying.loc[recipe].any() else " (" + ", ".join(
        f"{c} {row[c]:g}" if isinstance(row[c], float) else f"{c} {row[c]}"
        for c in SETTINGS if varying.loc[recipe, c]) + ")") for recipe, (_, row) in zip(d["recipe"], d.iterrows())]
    return d


def paper_models(runs: pd.DataFrame, task: str) -> pd.DataFrame:
    """The runs of the paper's models on ``task`` (vanilla k=5 on Reber; vanilla k=18 and GRU
    k=10 on embedded Reber), ``scoped``."""
    d = runs[runs["task"] == task]
    return scoped(d[[PAPER_K.get((task, c)) == k for c, k in zip(d["cell"], d["k"])]])
