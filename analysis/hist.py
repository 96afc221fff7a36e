"""Pooling the log-spaced histograms stored in the ``gradients`` table (columns hist_bin,
hist_count: the non-empty bins of the histogram whose bin layout and quantile rule
``sweeps.contract`` defines for writers and readers alike)."""
from typing import Sequence

import numpy as np
import pandas as pd

from sweeps import contract as S


def edges() -> np.ndarray:
    """Edges of the log bins 2 .. N_BINS-2 (bin 2 + i = [edges[i], edges[i+1]))."""
    return 10.0 ** (S.LOG_MIN + np.arange(S.N_LOG_BINS + 1) / S.BINS_PER_DECADE)


def pooled(rows: pd.DataFrame) -> np.ndarray:
    """The dense histogram (N_BINS counts) of all ``rows`` summed."""
    return S.dense_histogram(rows["hist_bin"], rows["hist_count"])


def span(h: np.ndarray):
    """(lo, hi): the range of log-bin indices i (bins 2 + i) holding counts, for plotting."""
    nz = np.nonzero(h[2: 2 + S.N_LOG_BINS])[0]
    if len(nz) == 0:
        return 0, 0
    return int(nz[0]), int(nz[-1]) + 1


def quantile(h: np.ndarray, q: float) -> float:
    return S.quantile(h, q)


def quantile_text(h: np.ndarray, q: float) -> str:
    """The ``q``-quantile of ``h`` for the page: '>= 1e+08 (beyond the histogram)' where it falls
    beyond the layout's top, where the number is only a bound."""
    v = S.quantile(h, q)
    return f">= {v:.0e} (beyond the histogram)" if S.beyond(h, q) else f"{v:.3g}"


def pooled_quantiles(rows: pd.DataFrame, by: str, qs: Sequence[float]) -> pd.DataFrame:
    """Quantiles of the pooled histogram of each ``by`` value: index ``by``, one column per q."""
    out = {}
    for key, g in rows.groupby(by, sort=True):
        h = pooled(g)
        out[key] = [S.quantile(h, q) for q in qs]
    return pd.DataFrame.from_dict(out, orient="index", columns=list(qs)).rename_axis(by)


def shares(h: np.ndarray, below: float, above: float):
    """Shares of the counted values < ``below`` and > ``above`` (bin resolution: a bin counts
    as below when its upper edge is <= below, as above when its lower edge is >= above)."""
    e = edges()
    n = max(h.sum(), 1)
    log = h[2: 2 + S.N_LOG_BINS]
    small = h[0] + h[1] + log[e[1:] <= below].sum()
    big = log[e[:-1] >= above].sum() + h[-1]
    return small / n, big / n
