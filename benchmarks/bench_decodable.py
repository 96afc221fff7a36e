"""The cost of ``--noise`` (table ``decodable``) against D alone, printed as a table (run on
demand):

    OMP_NUM_THREADS=1 python benchmarks/bench_decodable.py [--quick]

(one BLAS thread, as in a Ray worker: on a shared machine OpenBLAS's threads slow the noisy
runs' products many times over).

For each cell and width: the compute time of one shard of draws with D alone, and with the
noisy runs and their readouts as well on every draw, measured side by side (alternating, the
fastest of a few repeats, one thread), and their ratio per draw. A sweep measures the noise on
the first ``noise_draws`` (200) draws of an ensemble and D on all of them, so the cost of
``--noise`` on the paper's 2000 draws is 1 + (ratio - 1) x 200 / 2000 times D's (target: at
most 4x); the time is linear in the draws, so this follows from the per-draw times. The
readout's share is timed on its own, on the hidden states of the same steps and draws.
"""
import argparse
import time

import numpy as np
import torch
from table import print_table

from sweeps.jobs import decodable
from sweeps.jobs import discrepancy as D

CASES = [("vanilla", 8), ("gru", 8), ("vanilla", 20), ("gru", 20), ("tanh", 64), ("gru", 64), ("gru", 256)]
NOISE = 0.05
PAPER_DRAWS, NOISE_DRAWS = 2000, D.Discrepancy.Settings.parse({"cells": "gru", "l_max": 1, "k": 1, "draws": 1}).noise_draws


def shard(cell, k, l_max, draws, noise):
    args = (cell, "normal", k, 0, draws, l_max, "float64", 1e-6)
    return D.DrawRange(*args, start=0, stop=draws, noise=noise or None, noise_draws=draws if noise else 0)


def fastest(f, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def side_by_side(cell, k, l_max, draws, noise, repeats):
    """The fastest compute time of one shard of ``draws`` draws with D alone and with
    ``noise`` on every draw, alternating, so that both see the same machine (seconds)."""
    times = {False: np.inf, True: np.inf}
    for _ in range(repeats):
        for noisy in (False, True):
            p = shard(cell, k, l_max, draws, noisy and noise)
            times[noisy] = min(times[noisy], fastest(lambda p=p: D.compute_shard(p), 1))
    return times[False], times[True]


def group_ratio(ratio, draws, noise_draws):
    """A group's time with ``--noise`` over D alone's, from the per-draw ``ratio``: the noise
    is measured on its first ``noise_draws`` of ``draws`` draws (time linear in the draws)."""
    return 1 + (ratio - 1) * noise_draws / draws


def readout_seconds(k, l_max, draws, repeats):
    h = np.random.default_rng(0).standard_normal((l_max, draws, 2 * decodable.REPEATS, k))
    return fastest(lambda: decodable.accuracy(h), repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer draws and repeats")
    quick = ap.parse_args().quick
    torch.set_num_threads(1)
    l_max, repeats = 50, 2 if quick else 3
    rows = []
    for cell, k in CASES:
        draws = 50 if quick or k >= 64 else 100
        plain, noisy = side_by_side(cell, k, l_max, draws, NOISE, repeats)
        readout = readout_seconds(k, l_max, draws, repeats)
        rows.append((f"{cell} k={k}, {draws} draws, l_max={l_max}: D alone / with noise (s)",
                     f"{plain:.3f} / {noisy:.3f}"))
        ratio = noisy / plain
        rows.append(("  per draw: ratio; readout's share of the noisy shard", f"{ratio:.1f}x; {readout / noisy:.0%}"))
        rows.append((f"  --noise on {PAPER_DRAWS} draws, {NOISE_DRAWS} of them noisy (target <= 4x)",
                     f"{group_ratio(ratio, PAPER_DRAWS, NOISE_DRAWS):.1f}x"))
    print_table(rows)


if __name__ == "__main__":
    main()
