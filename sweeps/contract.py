"""The table contract: what writers (the jobs) and readers (``analysis``, users) share.

Everything here is plain data and NumPy: no torch, no Ray, no job module, so a reader of the
tables imports it without the training stack.

- :func:`schema`: a table's columns with their documentation, written into every Parquet file
  (``pyarrow.parquet.read_schema(f).field(c).metadata[b"doc"]``); ``lksweep schema --tables``
  prints them all.
- The log-spaced histogram that summarises many non-negative numbers (distances
  ||h_u - h_v||, gradient magnitudes): its bin layout and its quantiles. Integer counts, so
  sums are exact in any order; a quantile is exact to within one bin, a relative error of at
  most 10**(1/BINS_PER_DECADE) - 1 (4.7 %), and exactly 0 when it falls among exact zeros.
  Bins: 0 holds exact zeros, 1 holds (0, 1e-20), 2 + i holds
  [10**(LOG_MIN + i/BINS_PER_DECADE), 10**(LOG_MIN + (i+1)/BINS_PER_DECADE)), the last holds
  everything >= 10**LOG_MAX. LOG_MAX is far above every measured value (distances are at most
  2 sqrt(k); the largest gradient coefficients of N(0,1) initial weights reach about 2e3), so the
  last bin stays empty; a quantile that falls in it is only known to be >= 10**LOG_MAX
  (:func:`beyond` says so).
- The Reber alphabet (the order of the ``output`` and ``probs`` columns) and the probe
  strings of the paper's heatmaps, in the paper's order.
"""
from typing import Sequence, Tuple

import numpy as np
import pyarrow as pa

# ---------------------------------------------------------------------- schemas
DOC = b"doc"


def schema(columns: Sequence[Tuple[str, pa.DataType, str]]) -> pa.Schema:
    """A table schema from (name, type, documentation) triples."""
    return pa.schema([pa.field(name, type_, metadata={DOC: doc.encode()}) for name, type_, doc in columns])


def describe(s: pa.Schema) -> str:
    """A schema's columns as Markdown lines: name, type, documentation."""
    return "\n".join(f"- `{f.name}` ({f.type}): {(f.metadata or {}).get(DOC, b'').decode()}" for f in s)


# ---------------------------------------------------------------------- histograms
BINS_PER_DECADE = 50
LOG_MIN, LOG_MAX = -20, 8
N_LOG_BINS = (LOG_MAX - LOG_MIN) * BINS_PER_DECADE
N_BINS = N_LOG_BINS + 3


def histogram_bins(d: np.ndarray) -> np.ndarray:
    """Bin index of every value of ``d`` (any shape, values >= 0)."""
    with np.errstate(divide="ignore"):
        pos = np.floor((np.log10(d) - LOG_MIN) * BINS_PER_DECADE)
    bins = np.clip(pos, -1, N_LOG_BINS).astype(np.int64) + 2
    bins[d == 0] = 0
    return bins


def sparse_histograms(d: np.ndarray):
    """Per column of ``d`` (draws, L): sorted (bins, counts) arrays of its non-empty bins."""
    n_cols = d.shape[1]
    keys = histogram_bins(d) + np.arange(n_cols)[None, :] * N_BINS
    uniq, counts = np.unique(keys, return_counts=True)
    cols = uniq // N_BINS
    splits = np.searchsorted(cols, np.arange(1, n_cols))
    bins = np.split((uniq % N_BINS).astype(np.int16), splits)
    return bins, np.split(counts.astype(np.int64), splits)


def dense_histogram(bins_lists, count_lists) -> np.ndarray:
    """Sum sparse histograms (lists of (bins, counts)) into one dense count vector."""
    out = np.zeros(N_BINS, dtype=np.int64)
    for b, c in zip(bins_lists, count_lists):
        np.add.at(out, np.asarray(b, dtype=np.int64), np.asarray(c, dtype=np.int64))
    return out


def quantile(hist: np.ndarray, q: float) -> float:
    """The ``q``-quantile of the values counted in dense ``hist``, interpolated
    geometrically inside its bin."""
    n = hist.sum()
    cum = np.cumsum(hist)
    target = q * n
    b = int(np.searchsorted(cum, max(target, 1), side="left"))
    if b == 0:
        return 0.0
    if b == 1:
        return 10.0**LOG_MIN
    if b == N_BINS - 1:
        return 10.0**LOG_MAX
    before = cum[b - 1]
    frac = min(max((target - before) / hist[b], 0.0), 1.0)
    return float(10.0 ** (LOG_MIN + (b - 2 + frac) / BINS_PER_DECADE))


def beyond(hist: np.ndarray, q: float) -> bool:
    """Whether the ``q``-quantile of dense ``hist`` falls in the last bin, beyond the layout's top:
    :func:`quantile` then returns 10**LOG_MAX, a lower bound."""
    n = hist.sum()
    return n > 0 and int(np.searchsorted(np.cumsum(hist), max(q * n, 1), side="left")) == N_BINS - 1


# What a trajectory settled on (the lyapunov table's attractor columns): two states closer than
# SETTLED (Euclidean, whole state) count as one; periods up to PERIOD_MAX are told apart.
SETTLED = 1e-8
PERIOD_MAX = 8


# ---------------------------------------------------------------------- Reber probes
ALPHABET = "BTSXVPE"                      # one-hot order of the Reber tasks, n = 7
# Fig 3 (outputs) and Fig 4 (hidden states, labelled there by the automaton state reached).
REBER_OUTPUT = ("B", "BT", "BTSSS", "BTX", "BTXXVP", "BTXS", "BP", "BPTT", "BPV", "BPVV")
REBER_HIDDEN = ("B", "BT", "BTSS", "BTX", "BPTTTVP", "BTXS", "BPVV", "BPTTT",
                "BPTTTTVPXTTVPXTTTTTTTTTVPXVPX", "BPV", "BTSSSXXTTTVPXTV")
# Figs 6/7 (outputs) and 8 (hidden states): after the inner E the model must predict P resp. T.
EMBEDDED = ("BPBTXSE", "BTBTXSE")
