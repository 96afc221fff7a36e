"""Mergeable summaries of many non-negative numbers (distances ||h_u - h_v||).

A group of draws is summarised per block of draws by (n, mean, M2) — merged in block
order with Chan et al.'s pairwise update, so the result does not depend on how blocks
were spread over shards — and by a log-spaced histogram of integer counts, whose sums are
exact in any order. Quantiles come from the histogram: within one bin, i.e. a relative
error of at most 10**(1/BINS_PER_DECADE) - 1 (4.7 %); a quantile that falls among
exact zeros is exactly 0.

Bins: 0 holds exact zeros, 1 holds (0, 1e-20), 2 + i holds
[10**(LOG_MIN + i/BINS_PER_DECADE), 10**(LOG_MIN + (i+1)/BINS_PER_DECADE)), the last
holds everything >= 10**LOG_MAX.
"""
import numpy as np

BINS_PER_DECADE = 50
LOG_MIN, LOG_MAX = -20, 2
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


def block_moments(d: np.ndarray):
    """Per column of one block ``d`` (draws, L): mean and M2 = sum of squared deviations."""
    mean = d.mean(axis=0)
    return mean, ((d - mean) ** 2).sum(axis=0)


def merge_moments(ns: np.ndarray, means: np.ndarray, m2s: np.ndarray):
    """Fold per-block moments, arrays (blocks, L), left to right in block order.

    Returns (n, mean, M2), each (L,). Deterministic for a given block sequence.
    """
    n, mean, m2 = ns[0].astype(np.float64), means[0].copy(), m2s[0].copy()
    for nb, mb, m2b in zip(ns[1:], means[1:], m2s[1:]):
        total = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + delta**2 * (n * nb / total)
        n = total
    return n, mean, m2
