"""Trained and initial models rebuilt from the ``weights`` table, as NumPy arrays (no torch)."""
from typing import Dict, Tuple

import numpy as np
import pandas as pd


def parameters(weights: pd.DataFrame) -> Dict[Tuple[str, str], Dict[str, np.ndarray]]:
    """{(run_id, stage): {tensor name: array}} from rows of the ``weights`` table, e.g.
    ``parameters(load(out, "weights", run_id=rid))[rid, "trained"]["Wh"]``; stage is ``init``
    or ``trained``. The arrays hold the values exactly as trained (float64)."""
    out: Dict[Tuple[str, str], Dict[str, np.ndarray]] = {}
    for rid, stage, tensor, shape, values in weights[["run_id", "stage", "tensor", "shape", "values"]].itertuples(
            index=False):
        out.setdefault((rid, stage), {})[tensor] = np.array(values, np.float64).reshape(tuple(shape))
    return out
