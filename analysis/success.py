"""What counts as a training success, and which models are the paper's: shared by the claims
and the figures, so both judge a run the same way."""
import numpy as np
import pandas as pd

STRING_SUCCESS = 0.95     # a Reber run succeeds when >= 95 % of its test strings are fully correct
OUTER_SUCCESS = 0.95      # an embedded run succeeds when its outer T/P accuracy is >= 95 %
# The paper's models: vanilla k=5 on Reber; vanilla k=18 and GRU k=10 (≈590 parameters each) on embedded Reber.
PAPER_K = {("reber", "vanilla"): 5, ("embedded-reber", "vanilla"): 18, ("embedded-reber", "gru"): 10}


def is_embedded(task: str) -> bool:
    return task.startswith("embedded")


def success_flags(runs: pd.DataFrame) -> pd.Series:
    """Per run: Reber runs succeed at string accuracy >= STRING_SUCCESS, embedded runs at
    outer accuracy >= OUTER_SUCCESS."""
    emb = runs["task"].map(is_embedded)
    return pd.Series(np.where(emb, runs["outer_accuracy"] >= OUTER_SUCCESS,
                              runs["string_accuracy"] >= STRING_SUCCESS), index=runs.index)
