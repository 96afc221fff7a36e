"""Speed and memory of the (l,k)-discrepancy, printed as a table (run on demand):

    python benchmarks/bench_discrepancy.py [--quick]

1. The paper grid (vanilla and GRU, N(0,1), l 1..50, k 1..20, 2000 draws): compute time of
   every shard in this process, one thread (the work two Ray workers share), and the whole
   CLI run end to end, Ray's start included.
2. A plain per-definition NumPy computation (each l from scratch, one draw at a time, as the
   authors did) on every k and l of the grid with fewer draws, extrapolated by its cost
   (sum of l x draws) to the full grid, and the speed-up over it.
3. Achieved FLOP/s of the batched kernel against a large float64 matrix product's.
4. Peak memory of one shard of a huge grid (k 512, l 10,000): a shard's memory depends on
   its draws, not on how many draws the grid has in all.
"""
import argparse
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from table import print_table

from sweeps.jobs import discrepancy as D

GRID = {"cells": "vanilla,gru", "inits": "normal", "l_max": 50, "k": "1-20", "draws": 2000}


def serial_compute_seconds():
    job = D.Discrepancy()
    spec = job.Settings.parse(GRID)
    t0 = time.perf_counter()
    for g in job.plan(spec):
        job.finalize(g, [D.compute_shard(s.params) for s in g.shards])
    return time.perf_counter() - t0


def cli_seconds():
    with tempfile.TemporaryDirectory() as out:
        args = ["discrepancy", "--cells", "vanilla,gru", "--inits", "normal", "--l-max", "50", "--k", "1-20",
                "--draws", "2000", "--out", out]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sweeps.cli", *args], check=True, capture_output=True)
        return time.perf_counter() - t0


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def plain_h(cell, p, word):
    h = np.zeros(p["Wh"].shape[0])
    for s in word:
        x = np.eye(2)[s]
        if cell == "vanilla":
            h = sigmoid(p["Uh"] @ x + p["Wh"] @ h)
        else:
            z, r = sigmoid(p["Uz"] @ x + p["Wz"] @ h), sigmoid(p["Ur"] @ x + p["Wr"] @ h)
            h = (1 - z) * np.tanh(p["Uh"] @ x + p["Wh"] @ (h * r)) + z * h
    return h


def plain_seconds(draws):
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for cell in ("vanilla", "gru"):
        names = ["Uh", "Wh"] if cell == "vanilla" else ["Uz", "Wz", "Ur", "Wr", "Uh", "Wh"]
        for k in range(1, 21):
            for _ in range(draws):
                p = {n: rng.normal(size=(k, 2) if n[0] == "U" else (k, k)) for n in names}
                for l in range(1, 51):
                    np.linalg.norm(plain_h(cell, p, [0] * l) - plain_h(cell, p, [1] + [0] * (l - 1)))
    return time.perf_counter() - t0


def kernel_flops():
    """Multiply-adds x 2 of the matrix products: 2 words x gates x (k x (k + n)) per step."""
    total = 0
    for gates in (1, 3):
        for k in range(1, 21):
            total += 2000 * 50 * 2 * gates * 2 * k * (k + 2)
    return total


def matmul_flops_per_s(threads):
    torch.set_num_threads(threads)
    a = torch.randn(2048, 2048, dtype=torch.float64)
    a @ a
    t0 = time.perf_counter()
    for _ in range(3):
        a @ a
    return 3 * 2 * 2048**3 / (time.perf_counter() - t0)


def big_shard_peak_mib(l_max, k):
    code = (f"import resource, time; from sweeps.jobs import discrepancy as D; "
            f"t=time.perf_counter(); D.compute_shard(D.DrawRange(cell='vanilla', init='normal', k={k}, seed=0, "
            f"draws=100000, l_max={l_max}, dtype='float64', threshold=1e-6, start=0, stop=50)); "
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller plain reference and big-shard runs")
    quick = ap.parse_args().quick
    torch.set_num_threads(1)
    serial = serial_compute_seconds()
    end_to_end = cli_seconds()
    ref_draws = 2 if quick else 10
    plain = plain_seconds(ref_draws) * (2000 / ref_draws)
    flops = kernel_flops()
    mm1, mm2 = matmul_flops_per_s(1), matmul_flops_per_s(2)
    l_big = 1000 if quick else 10000
    peak, big_s = big_shard_peak_mib(l_big, 512)
    rows = [
        ("paper grid, compute, 1 thread (s)", f"{serial:.2f}"),
        ("paper grid, compute per worker, 2 workers (s)", f"{serial / 2:.2f}"),
        ("paper grid, CLI end to end incl. Ray start (s)", f"{end_to_end:.1f}"),
        (f"plain per-definition NumPy, extrapolated from {ref_draws} draws (s)", f"{plain:.0f}"),
        ("speed-up over plain, 1 thread", f"{plain / serial:.0f}x"),
        ("kernel matrix-product FLOP/s, 1 thread (GFLOP/s)", f"{flops / serial / 1e9:.2f}"),
        ("large float64 matmul, 1 thread / 2 threads (GFLOP/s)", f"{mm1 / 1e9:.1f} / {mm2 / 1e9:.1f}"),
        ("kernel share of 1-thread matmul peak", f"{flops / serial / mm1:.1%}"),
        (f"one shard of k=512, l_max={l_big}, 50 of 100,000 draws: peak RSS (MiB)", f"{peak:.0f}"),
        ("  its time (s); every draw stored would need (GiB)", f"{big_s:.1f}; {100000 * l_big * 8 / 2**30:.1f}"),
    ]
    print_table(rows)


if __name__ == "__main__":
    main()
