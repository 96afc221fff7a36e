"""Speed and memory of the measures beyond the paper, printed as a table (run on demand):

    python benchmarks/bench_beyond.py [--quick]

1. A wide GRU group (k = 256, l = 1000, 2000 draws): seconds per draw on one thread for the
   reference path (torch, blocks of 50 draws as one batch: what every group ran before) and
   the cache-resident path (NumPy, a few draws at a time), then one 1000-draw shard of the
   group in its own process (time and peak memory: what each of two workers does) and the
   whole group end to end through the CLI on two workers, Ray's start included.
   Target: <= 150 s on 2 cores.
2. The largest Lyapunov exponent against D alone, same draws, one thread: for the wide GRU and
   for a paper-sized group (k = 20, l = 50). Target: at most 2x the cost of D.
3. The shipped ``beyond`` spec end to end (sweeps, figures, report) on two workers.
   Target: 15 minutes on 2 cores.

--quick measures a smaller shard and skips the runs through the CLI.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch
from table import print_table

import cells
from sweeps.jobs import discrepancy as D
from sweeps.jobs import resident

WIDE = {"cell": "gru", "init": "normal", "k": 256, "l_max": 1000, "draws": 2000}


def per_draw_seconds(path: str, draws: int) -> float:
    """One thread: seconds per draw of the wide group by ``path`` (reference or resident)."""
    c = cells.get_cell(WIDE["cell"])
    p = {n: t[:draws] for n, t in D.draw_block(WIDE["cell"], WIDE["init"], WIDE["k"], 0, 0).items()}
    t0 = time.perf_counter()
    if path == "reference":
        D.reference_distances(c, {n: cells.with_guard(t, 2 * WIDE["k"]) for n, t in p.items()}, WIDE["l_max"])
    else:
        resident.distances(c, p, WIDE["l_max"])
    return (time.perf_counter() - t0) / draws


def shard_in_subprocess(draws: int, lyapunov: bool = False, **group) -> tuple:
    """(seconds, peak RSS MiB) of one shard of ``draws`` draws computed in a fresh process."""
    g = {**WIDE, **group}
    code = (f"import resource, time, torch; torch.set_num_threads(1); from sweeps.jobs import discrepancy as D; "
            f"t = time.perf_counter(); D.compute_shard(D.DrawRange(cell={g['cell']!r}, init={g['init']!r}, k={g['k']}, "
            f"seed=0, draws={g['draws']}, l_max={g['l_max']}, dtype='float64', threshold=1e-6, start=0, stop={draws}, "
            f"lyapunov={lyapunov})); "
            f"print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.split()
    return float(out[0]), float(out[1])


def cli_seconds(args) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sweeps.cli", *args, "--max-workers", "2", "--out", out], check=True,
                       capture_output=True)
        return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer draws, extrapolated; skip the beyond spec")
    quick = ap.parse_args().quick
    torch.set_num_threads(1)
    n = 2000
    ref = per_draw_seconds("reference", 50)
    res = per_draw_seconds("resident", 10 if quick else 50)
    shard_draws = 100 if quick else 1000
    shard_s, shard_mib = shard_in_subprocess(shard_draws)
    lyap_s, lyap_mib = shard_in_subprocess(shard_draws // 10, lyapunov=True)
    d_s, _ = shard_in_subprocess(shard_draws // 10)
    small = {"k": 20, "l_max": 50}
    small_lyap, _ = shard_in_subprocess(1000, lyapunov=True, **small)
    small_d, _ = shard_in_subprocess(1000, **small)
    rows = [
        ("wide GRU group: k=256, l=1000, 2000 draws", ""),
        ("  reference path (torch, 50-draw batches), 1 thread, s per draw", f"{ref:.3f}"),
        ("  resident path (NumPy, cache-resident), 1 thread, s per draw", f"{res:.3f}"),
        ("  speed-up of the resident path", f"{ref / res:.1f}x"),
        ("  reference path, whole group on 2 cores, extrapolated (s)", f"{ref * n / 2:.0f}"),
        (f"  one shard of {shard_draws} draws in its own process: s; peak RSS MiB", f"{shard_s:.1f}; {shard_mib:.0f}"),
    ]
    if not quick:
        wide = ["discrepancy", "--cells", "gru", "--k", "256", "--l-max", "1000", "--draws", "2000"]
        rows.append(("  whole group through the CLI, 2 workers, Ray's start included (s; target 150)",
                     f"{cli_seconds(wide):.0f}"))
    rows += [
        ("largest Lyapunov exponent against D alone, same draws, 1 thread", ""),
        (f"  wide GRU, {shard_draws // 10} draws: D s; D + exponents s; exponents / D (target <= 2)",
         f"{d_s:.1f}; {lyap_s:.1f}; {(lyap_s - d_s) / d_s:.2f}"),
        ("  GRU k=20, l=50, 1000 draws: D s; D + exponents s; exponents / D",
         f"{small_d:.2f}; {small_lyap:.2f}; {(small_lyap - small_d) / small_d:.2f}"),
        (f"  peak RSS with exponents, wide shard of {shard_draws // 10} (MiB)", f"{lyap_mib:.0f}"),
    ]
    if not quick:
        rows.append(("beyond spec end to end (sweeps, figures, report), 2 workers (s; target 900)",
                     f"{cli_seconds(['run', 'beyond']):.0f}"))
    print_table(rows)


if __name__ == "__main__":
    main()
