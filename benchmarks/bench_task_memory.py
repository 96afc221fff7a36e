"""The trained-memory stage's cost against the training stage it follows, printed as a table
(run on demand):

    OMP_NUM_THREADS=1 python benchmarks/bench_task_memory.py [--quick]

For each cell: an ensemble of seeds trained on embedded Reber strings with the adam protocol
(the training job's own compute, checkpoints fed back, one thread, as in a Ray worker), then
the ``task_memory`` shard of each run at its defaults (64 inner strings, both stages) without
and with ``--noise``, measured on the same machine in the same process. Target:
the stage costs at most a tenth of the training stage's time. Without ``--quick`` the runs
train at the adam protocol's defaults (2000 strings, its stopping rule); ``--quick`` trains 30
epochs on 300 strings. The stage's cost does not depend on how long the runs trained, so the
shorter the training, the larger the share.
"""
import argparse
import time

import torch
from table import print_table

from sweeps import spec as specs
from sweeps.job import Checkpoint, get_job
from sweeps.jobs import task_memory as tm
from sweeps.jobs.training import tables as training_tables

# The cells the compiled training path covers: the fastest training, so the largest share.
CASES = [("vanilla", 8), ("gru", 6), ("vanilla", 18), ("gru", 10)]
NOISE = 0.1


def trained(cell, k, seeds, epochs, n_train):
    """The runs' tables, and the seconds their training took."""
    training = get_job("training")
    block = {"task": "embedded-reber", "cells": f"{cell}:{k}", "protocol": "adam", "seeds": seeds,
             **({"n_train": n_train, "max_epochs": epochs} if n_train else {})}
    params = [g.shards[0].params for g in specs.validate({"training": block}).groups()]
    states, t0 = [None] * len(params), time.perf_counter()
    while True:
        results = training.compute(params, states)
        if not any(isinstance(r, Checkpoint) for r in results):
            return [training_tables.SHARD.unpack(r) for r in results], time.perf_counter() - t0
        states = [r.state if isinstance(r, Checkpoint) else None for r in results]


def stage_seconds(runs, noise):
    t0 = time.perf_counter()
    for i, out in enumerate(runs):
        run = tm.measured(f"run{i}", out["runs"], out["weights"], {}, tm.TaskMemory.options[1].default, noise)
        tm.table(run)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="30 epochs on 300 training strings")
    quick = ap.parse_args().quick
    torch.set_num_threads(1)
    seeds, epochs, n_train = ("0-3", 30, 300) if quick else ("0-3", None, None)
    rows = []
    for cell, k in CASES:
        trained(cell, k, "0", 1, 10)          # compile (or load) the training kernels first
        runs, train_s = trained(cell, k, seeds, epochs, n_train)
        plain, noisy = stage_seconds(runs, None), stage_seconds(runs, NOISE)
        trained_epochs = sum(out["runs"].column("epochs")[0].as_py() for out in runs)
        strings = runs[0]["runs"].column("n_train")[0].as_py()
        rows.append((f"{cell} k={k}: {len(runs)} runs, {trained_epochs} epochs in all on {strings} strings: "
                     f"training (s)", f"{train_s:.2f}"))
        rows.append(("  task_memory, 64 strings, both stages: alone / with --noise (s)", f"{plain:.2f} / {noisy:.2f}"))
        rows.append(("  share of the training's time (target <= 0.10): alone / with --noise",
                     f"{plain / train_s:.3f} / {noisy / train_s:.3f}"))
    print_table(rows)


if __name__ == "__main__":
    main()
