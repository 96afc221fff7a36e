"""How well the first symbol can be read back under noise: the ``decodable`` table.

D cannot tell memory from chaos: a chaotic cell keeps ||h_u - h_v|| of order one because any
perturbation grows. Here every step adds Gaussian noise N(0, σ²) to the whole state, and each
draw runs u = 0^l and v = 1 0^(l-1) ``REPEATS`` times each, every repeat with its own noise.
At each step l the measure is the held-out accuracy of a linear readout of h telling u's
repeats from v's: 1/2 when nothing is remembered (the two clouds of noisy states coincide:
a forgetting cell has pulled both onto one fixed point, a chaotic one has spread both over
one attractor), near 1 when a slow mode or a distinct attractor keeps them apart by more
than the noise.

The readout is a diagonal discriminant with shrinkage (a regularised LDA): w = Σ_α⁻¹ (μ_v - μ_u),
Σ_α = (1 - α) diag(S) + α (tr S / k) I, S the pooled within-class covariance of the repeats it
is fitted on, α = ``SHRINK``, and the threshold halfway between the two projected means. Why:
LDA is the best linear readout of two Gaussian classes of equal covariance (what small noise
gives), but with 8 repeats a class in k up to hundreds of dimensions S is singular and its
inverse fits the noise of the repeats; the diagonal rule (Bickel & Levina 2004: better than
Fisher's when the dimension exceeds the samples) keeps each unit's own noise level, shrunk
towards the mean so that a unit that barely moved in 16 repeats cannot dominate, and it costs
O(k) a draw and step where a full one solves a system (which took 25-62 % of the noisy runs'
time, measured). α = 1/2: from 0.1 to 0.9 the mean over 50 draws moved by at most 0.015 (about
its standard error) on six cells (vanilla, tanh, GRU; k 10-64; l = 5, 20, 40).

The repeats are split into ``FOLDS`` halves: the readout fitted on one half of each word's
repeats is scored on the other half, and the other way round, so every repeat is scored once
by a readout that never saw it (scored on its own repeats at l = 30, this readout reads 0.85
for a chaotic tanh cell at k = 64 and 0.93 for a forgetting vanilla one, where held out it
reads 0.50 and 0.49). A tie (a state on the threshold) scores 1/2. A draw's accuracy is thus
a multiple of 1/(4 ``REPEATS``).

16 repeats a word: fitted on 8, the readout of a one-unit cell comes within 0.015 of the best
accuracy wherever the classes' means are one noise s.d. apart (the closed form of
tests/test_decodable.py); more repeats cost proportionally (docs/performance.md, benchmarks/bench_decodable.py).

Shards return per-block moments of the per-draw accuracies and their exact counts on the
grid of possible values (the shard table :data:`MOMENTS`), so the table's mean, spread and
quantiles are bit-identical whatever the shard layout.
"""
from typing import List

import numpy as np
import pyarrow as pa

from .. import contract
from . import memory
from .moments import block_moments, merge_tables

REPEATS = 16     # noisy runs of each of u and v per draw
FOLDS = 2        # the repeats split into halves: fit on one, score on the other, and the other way round
SHRINK = 0.5     # α of the shrinkage towards the mean variance
LEVELS = 4 * REPEATS + 1      # possible accuracies: i / (4 REPEATS), i = 0 .. 4 REPEATS

SCHEMA = contract.schema([
    *memory.columns("cell", "init", "k"),
    ("l", pa.int32(), "steps read: the readout sees h after the first symbol and l - 1 zeros"),
    *memory.columns("seed", "dtype"),
    ("n_draws", pa.int64(), "parameter draws measured under noise: the ensemble's first noise_draws"),
    ("noise", pa.float64(), "σ: every step adds N(0, σ²) to each unit of the state (h, and an LSTM's c)"),
    ("repeats", pa.int32(), "noisy runs of each of u and v per draw, split in halves to fit and score the readout"),
    ("decodable", pa.float64(), "mean over the draws of the held-out accuracy of a linear readout (diagonal LDA) "
                                "telling u from v on h: 1/2 nothing remembered (forgetting or chaos), near 1 memory"),
    ("decodable_std", pa.float64(), "standard deviation over the draws (n - 1 denominator)"),
    ("decodable_q10", pa.float64(), "10 % quantile over the draws (exact: a draw's accuracy is a multiple of "
                                    "1/(4 repeats))"),
    ("decodable_q50", pa.float64(), "median over the draws"),
    ("decodable_q90", pa.float64(), "90 % quantile over the draws"),
    *memory.columns("gain"),
])
MOMENTS = contract.schema([     # a shard's summary of its accuracies, one row per l
    ("l", pa.int32(), "steps read"),
    ("block_n", pa.list_(pa.int32()), "draws measured under noise in each of the shard's blocks, in draw order "
                                      "(none past the first noise_draws)"),
    ("block_mean", pa.list_(pa.float64()), "the accuracy's mean over each block's draws"),
    ("block_m2", pa.list_(pa.float64()), "its sum of squared deviations from that mean, per block"),
    ("counts", pa.list_(pa.int64()), f"draws of each possible accuracy i / (4 repeats), i = 0 .. {LEVELS - 1}"),
])


def accuracy(h: np.ndarray) -> np.ndarray:
    """Held-out accuracy of the readout for states ``h`` (..., 2R, k), rows [0, R) u's
    repeats and [R, 2R) v's; returns (...)."""
    r = h.shape[-2] // 2
    h = np.asarray(h, np.float64)
    halves = [(h[..., i * r // FOLDS: (i + 1) * r // FOLDS, :], h[..., r + i * r // FOLDS: r + (i + 1) * r // FOLDS, :])
              for i in range(FOLDS)]
    correct = np.zeros(h.shape[:-2])
    for i, (fit_u, fit_v) in enumerate(halves):
        w, mid = readout(fit_u, fit_v)
        offset = (w * mid).sum(-1)[..., None]
        for j, (u, v) in enumerate(halves):
            if j != i:
                z_u = np.einsum("...rk,...k->...r", u, w) - offset
                z_v = np.einsum("...rk,...k->...r", v, w) - offset
                correct += ((z_u < 0) + 0.5 * (z_u == 0)).sum(-1) + ((z_v > 0) + 0.5 * (z_v == 0)).sum(-1)
    return correct / (2 * r * (FOLDS - 1))


def readout(u: np.ndarray, v: np.ndarray):
    """The discriminant fitted on repeats ``u``, ``v`` (..., m, k): its direction w (..., k)
    and the midpoint (..., k) it thresholds at (v on the positive side)."""
    m, k = u.shape[-2:]
    mu_u, mu_v = u.mean(-2), v.mean(-2)
    var = (((u - mu_u[..., None, :]) ** 2).sum(-2) + ((v - mu_v[..., None, :]) ** 2).sum(-2)) / (2 * m - 2)
    mean_var = var.mean(-1, keepdims=True)
    shrunk = np.where(mean_var > 0, (1 - SHRINK) * var + SHRINK * mean_var, 1.0)   # no spread: w = μ_v - μ_u
    return (mu_v - mu_u) / shrunk, (mu_u + mu_v) / 2


class Summary:
    """Per-l summaries of a shard's accuracies (draws, l_max): per-block moments and the
    counts of each possible value."""

    def __init__(self, l_max: int):
        self.ns, self.means, self.m2s = [], [], []
        self.counts = np.zeros((l_max, LEVELS), np.int64)

    def add(self, acc: np.ndarray, block: int) -> None:
        for i in range(0, len(acc), block):
            mean, m2 = block_moments(acc[i: i + block])
            self.ns.append(len(acc[i: i + block])), self.means.append(mean), self.m2s.append(m2)
        level = np.rint(acc * (LEVELS - 1)).astype(np.int64)
        for l in range(acc.shape[1]):
            self.counts[l] += np.bincount(level[:, l], minlength=LEVELS)

    def table(self) -> pa.Table:
        """Its shard table :data:`MOMENTS` (a shard past the measured draws has no blocks)."""
        l_max = len(self.counts)

        def per_l(blocks):
            return list(np.stack(blocks, axis=1)) if blocks else [[]] * l_max

        return contract.table(MOMENTS, l_max, {
            "l": np.arange(1, l_max + 1), "block_n": [self.ns] * l_max, "block_mean": per_l(self.means),
            "block_m2": per_l(self.m2s), "counts": list(self.counts)})


def rows(s, tables: List[pa.Table], gain: float) -> pa.Table:
    """A group's rows of ``decodable`` from its shards' :data:`MOMENTS` tables, in draw order."""
    l_max = s.l_max
    n, mean, m2 = merge_tables(tables, l_max)
    counts = sum(np.stack(t.column("counts").to_numpy(zero_copy_only=False)) for t in tables)
    q = np.array([[quantile(c, p) for p in (0.1, 0.5, 0.9)] for c in counts])
    return contract.table(SCHEMA, l_max, {
        "cell": s.cell, "init": s.init, "k": s.k, "l": np.arange(1, l_max + 1), "seed": s.seed, "dtype": s.dtype,
        "n_draws": n.astype(np.int64), "noise": s.noise, "repeats": REPEATS, "decodable": mean,
        "decodable_std": np.sqrt(m2 / np.maximum(n - 1, 1)), "decodable_q10": q[:, 0], "decodable_q50": q[:, 1],
        "decodable_q90": q[:, 2], "gain": gain})


def quantile(counts: np.ndarray, q: float) -> float:
    """The ``q``-quantile of accuracies counted on the grid: the smallest value with at least
    a share q of the draws at or below it."""
    at_least = max(np.ceil(q * counts.sum() - 1e-9), 1)      # q n, without its rounding
    i = int(np.searchsorted(np.cumsum(counts), at_least, side="left"))
    return i / (LEVELS - 1)
