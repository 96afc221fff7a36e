"""Mergeable moments of a summary over blocks of draws: per block (n, mean, M2), merged in block
order with Chan et al.'s pairwise update, so the result does not depend on how blocks were
spread over shards."""
import numpy as np


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


def merge_tables(tables, rows: int):
    """(n, mean, M2), each (rows,), of shard tables (in draw order) holding per-block moments
    as list columns ``block_n``, ``block_mean`` and ``block_m2`` of ``rows`` rows."""
    return merge_moments(*(blocks(tables, name, rows) for name in ("block_n", "block_mean", "block_m2")))


def blocks(tables, name: str, rows: int) -> np.ndarray:
    """A per-block list column of every table as one (blocks, rows) array, blocks in table order."""
    per_table = [t.column(name).combine_chunks().flatten().to_numpy().reshape(rows, -1) for t in tables]
    return np.concatenate(per_table, axis=1).T
