"""Where the time of a trainability run goes, and its two cost targets, printed as a
table (run on demand, after the sweep):

    lksweep run trainability --out DIR
    OMP_NUM_THREADS=1 python benchmarks/bench_trainability.py DIR [--runs N] [--repeats R]

(one BLAS thread, as in a Ray worker).

- Training: read from DIR, not rerun: each run's ``wall_s`` (its share of its ensemble's
  compute, one core) summed per cell and per lag range, and over the whole stage.
- The discrepancy stage: measured here, every shard of the spec's discrepancy section computed
  in this process (the spec is DIR's: ``--spec``, default the shipped ``trainability``).
- The trained-memory stage: measured here on ``--runs`` runs of DIR per cell (their weights
  read from DIR's tables; the stage's cost depends on the cell, not on the lag or weight scale
  the run trained at: its inner strings are the grammar's own), scaled to every run of DIR.
- Targets: the trained-memory stage at most a tenth of the training stage's time; ``--noise``
  at most 4x the time of D alone, measured per draw side by side on each cell at its width
  (``bench_decodable.side_by_side``) and scaled to the spec's draws and noisy draws.

The sums are one core's seconds; a sweep on two workers takes about half of their total, plus
Ray's start and the commits.
"""
import argparse
import time
from collections import defaultdict

import pandas as pd
import torch
from bench_decodable import group_ratio, side_by_side
from table import print_table

from sweeps import spec as specs
from sweeps import stages
from sweeps.jobs import discrepancy as D
from sweeps.jobs import task_memory as tm


def training_seconds(out):
    runs = pd.read_parquet(f"{out}/runs", columns=["cell", "k", "init", "lag_min", "lag_max", "wall_s"])
    runs["lag"] = runs.lag_min.astype(str) + "-" + runs.lag_max.astype(str)
    return runs


def discrepancy_seconds(spec):
    """Seconds of every discrepancy shard of ``spec``, by cell."""
    seconds = defaultdict(float)
    for group in spec.groups():
        if group.job == "discrepancy":
            for shard in group.shards:
                t0 = time.perf_counter()
                D.compute_shard(shard.params)
                seconds[shard.params.cell] += time.perf_counter() - t0
    return seconds


def task_memory_seconds(out, stage, per_cell):
    """Seconds per run of the trained-memory stage, by cell, measured on ``per_cell`` runs."""
    inputs = stages.inputs(out, ("runs", "weights"))
    by_cell = defaultdict(list)
    for name, run in inputs.items():
        by_cell[run.tables["runs"].column("cell")[0].as_py()].append(name)
    seconds = {}
    for cell, names in by_cell.items():
        t0 = time.perf_counter()
        for name in names[:per_cell]:
            run = inputs[name]
            tm.table(tm.measured(name, run.tables["runs"], run.tables["weights"], run.digests, stage.strings,
                                 stage.noise))
        seconds[cell] = (time.perf_counter() - t0) / min(per_cell, len(names))
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="a finished trainability output directory")
    ap.add_argument("--spec", default="trainability", help="the spec DIR was run from")
    ap.add_argument("--runs", type=int, default=8, help="runs per cell the trained-memory stage is timed on")
    ap.add_argument("--repeats", type=int, default=2, help="side-by-side repeats of the noise's cost")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = specs.load(args.spec)
    (stage,) = spec.sections["task_memory"]
    runs = training_seconds(args.out)
    train = runs.wall_s.sum()
    rows = [(f"training: {len(runs)} runs, one core (s, from wall_s)", f"{train:.0f}")]
    for cell, g in runs.groupby("cell"):
        by_lag = g.groupby("lag", sort=False).wall_s.sum().sort_index(key=lambda s: s.str.split("-").str[0].astype(int))
        rows.append((f"  {cell} k={g.k.iloc[0]}, per lag range " + " / ".join(by_lag.index) + " (s)",
                     " / ".join(f"{v:.0f}" for v in by_lag)))
    disc = discrepancy_seconds(spec)
    rows.append(("discrepancy stage, every shard, one core (s)", f"{sum(disc.values()):.1f}"))
    rows.append(("  per cell " + " / ".join(disc) + " (s)", " / ".join(f"{v:.1f}" for v in disc.values())))
    per_run = task_memory_seconds(args.out, stage, args.runs)
    counts = runs.groupby("cell").size()
    memory = sum(per_run[c] * n for c, n in counts.items())
    rows.append((f"trained-memory stage, {stage.strings} strings, noise {stage.noise} (s, from {args.runs} runs a cell)",
                 f"{memory:.0f}"))
    rows.append(("  per run, per cell " + " / ".join(per_run) + " (s)", " / ".join(f"{v:.3f}" for v in per_run.values())))
    rows.append(("  share of the training stage's time (target <= 0.10)", f"{memory / train:.3f}"))
    for block in spec.sections["discrepancy"]:
        for cell in block.cells:
            plain, noisy = side_by_side(cell, block.k[0], block.l_max, 50, block.noise, args.repeats)
            rows.append((f"--noise {block.noise} on {cell} k={block.k[0]}, {block.draws} draws, {block.noise_draws} "
                         f"noisy: time over D alone (target <= 4x)",
                         f"{group_ratio(noisy / plain, block.draws, block.noise_draws):.1f}x"))
    print_table(rows)


if __name__ == "__main__":
    main()
