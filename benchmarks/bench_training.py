"""Training benchmark: prints a table.

1. Throughput of the `paper` protocol on embedded Reber (256 strings, one sequence per SGD update,
   16 seeds as one ensemble, one thread) with the job's evaluation every epoch, for GRU k=10 and
   vanilla k=18: the fast path (numba kernels, float64, evaluating the 256 validation strings)
   against the torch path as the job ran it before the fast path existed (the 16 seeds batched
   in one tensor, autograd, evaluating the 256 training and 256 test strings; re-created here,
   as it is no longer the job's code; in float32, its default then, and in float64) and against
   today's torch engine (the same equations, each seed on its own tensors so that its numbers
   never depend on the ensemble). Rates are per CPU second of the process, which a shared
   machine's other load disturbs less than wall time. Targets: fast path >= 40x (GRU) and
   >= 25x (vanilla) faster than the faster of the two batched torch rows.
2. 1000 epochs of both cells, 16 seeds each, the fast path with the evaluation every epoch, the
   two cells in two processes at once (2 cores). Target <= 3 minutes.
3. The kernels' compilation: a fresh process with an empty cache (paid once per machine) and one
   that loads the cache from disk.
4. End to end through the CLI: the paper protocol for 16 seeds of vanilla k=18 and GRU k=10, to
   its stopping rules, Ray's start included.
5. Every cell at its matched width (``models.MATCHED``, about 600 parameters): CPU seconds per
   training epoch of the paper protocol (the 256 strings' updates for 16 seeds, one thread; the
   evaluation, which parts 1 and 2 include, left out), the fast path against today's torch
   engine, and the fast path per string-step and seed (an epoch's time over 16 seeds x its
   strings' steps), which should stay flat as strings lengthen. Targets: each cell's fast path
   within 3x of the GRU's, and 50x or more faster than its torch-engine epoch. Then the fast
   path alone on 256 training strings at ``--lag 40-44`` (inner strings of 40 to 44 symbols):
   an epoch costs in proportion to the strings' length, so its time per string-step matches
   the first table's.

Run: python benchmarks/bench_training.py [--no-cli] [--cells]   (--no-cli: skip part 4;
--cells: part 5 alone)
"""
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing import get_context

import numpy as np
import torch

import cells
from sweeps import spec as specs
from sweeps.jobs.training import engines, evaluation, models, protocols, reber

SEEDS, STRINGS = 16, 256
MODELS = (("gru", 10), ("vanilla", 18))


def make_engine(cell: str, k: int, engine: str, train: reber.Encoded = None):
    """(engine, data) of the paper protocol's 16 seeds, as the job builds them; ``train``, if
    given, replaces its training strings."""
    (run, *_) = [g.shards[0].params for g in specs.validate({"training": {
        "task": "embedded-reber", "cells": f"{cell}:{k}", "protocol": "paper", "seeds": 0, "engine": engine}}).groups()]
    data = reber.datasets(run.task, {"train": run.n_train, "val": run.n_val, "test": run.n_test}, 0, torch.float64)
    if train is not None:
        data["train"], run = train, dataclasses.replace(run, n_train=len(train.mask))
    p = models.init_params(cell, k, run.bias, run.init, list(range(SEEDS)), torch.float64)
    return engines.make(cells.get_cell(cell), run, data, [{n: t[i].numpy() for n, t in p.items()} for i in range(SEEDS)]), data


def engine_epochs(engine, epochs: int, clock=time.perf_counter, evaluate: bool = True) -> float:
    """Seconds (of ``clock``) for ``epochs`` epochs of an engine: training (each seed in its own
    shuffled order), then the validation evaluation, as the job does every epoch (unless not
    ``evaluate``)."""
    members, lr = list(range(SEEDS)), np.full(SEEDS, 0.001)
    orders = np.stack([np.random.default_rng(seed).permutation(engine.run.n_train) for seed in range(SEEDS)])
    t0 = clock()
    for _ in range(epochs):
        engine.epoch(members, orders, lr)
        if evaluate:
            engine.evaluate(members, "val")
    return clock() - t0


def training_epoch_seconds(cell: str, k: int, engine: str, train: reber.Encoded, epochs: int) -> float:
    """CPU seconds per training epoch (the updates, no evaluation) of the paper protocol's 16
    seeds on the training strings ``train``; the fast path after one epoch of warm-up (and
    compilation)."""
    e, _ = make_engine(cell, k, engine, train)
    if engine == "numba":
        engine_epochs(e, 1, evaluate=False)
    return engine_epochs(e, epochs, time.process_time, evaluate=False) / epochs


def lagged_train(lag=(40, 44)) -> reber.Encoded:
    """The paper protocol's 256 training strings with the inner string's length in ``lag``."""
    return reber.datasets("embedded-reber", {"train": STRINGS, "val": 2, "test": 2}, 0, torch.float64, lag)["train"]


def every_cell(train: reber.Encoded, torch_epochs: int = 1, fast_epochs: int = 20, against_torch: bool = True) -> None:
    """Part 5: a table of every cell at its matched width on the training strings ``train``
    (``against_torch`` False: the fast path alone, e.g. on long strings)."""
    steps = SEEDS * int(train.mask.sum())
    times = {cell: (training_epoch_seconds(cell, k, "numba", train, fast_epochs),
                    training_epoch_seconds(cell, k, "torch", train, torch_epochs) if against_torch else float("nan"))
             for cell, k in models.MATCHED.items()}
    gru = times["gru"][0]
    print(f"{'cell':<8} {'k':>3} {'params':>6} {'fast s/epoch':>13} {'torch s/epoch':>14} {'torch/fast':>11} "
          f"{'fast/GRU fast':>14} {'fast ns/(string-step seed)':>27}")
    for cell, (fast, slow) in times.items():
        k = models.MATCHED[cell]
        torch_cols = f"{slow:>14.2f} {slow / fast:>10.0f}x" if against_torch else f"{'-':>14} {'-':>11}"
        print(f"{cell:<8} {k:>3} {models.n_params(cell, k, 'authors'):>6} {fast:>13.4f} {torch_cols} "
              f"{fast / gru:>13.2f}x {1e9 * fast / steps:>27.0f}")
    print(f"({len(train.mask)} training strings, {int(train.mask.sum())} steps, {SEEDS} seeds; CPU seconds of one "
          "thread; targets: fast/GRU fast <= 3x, torch/fast >= 50x; the time per string-step should not grow "
          "with the strings' length)")


def engine_rate(cell: str, k: int, engine: str, epochs: int) -> float:
    """Epochs per CPU second of the job's engine (after one epoch of warm-up and compilation)."""
    e, _ = make_engine(cell, k, engine)
    engine_epochs(e, 1)
    return epochs / engine_epochs(e, epochs, time.process_time)


def batched_torch_rate(cell: str, k: int, dtype) -> float:
    """Epochs per CPU second of the torch path as the job ran it before the fast path: the 16
    seeds as one batched ensemble, each seed visiting the strings in its own shuffled order,
    one autograd step per sequence, then the evaluation of the training and test sets that it
    did every epoch."""
    _, data = make_engine(cell, k, "torch")
    sets = {name: data[name].take(slice(None)) for name in ("train", "test")}
    for d in sets.values():
        d.x = d.x.to(dtype)
    c = cells.get_cell(cell)
    p = models.init_params(cell, k, "authors", "normal", list(range(SEEDS)), dtype)
    step_loss, sgd = protocols.LOSSES["squared-error"], protocols.OPTIMIZERS["sgd"]
    lr, on = torch.full((SEEDS,), 0.001, dtype=torch.float64), torch.ones(SEEDS, dtype=torch.bool)
    orders = torch.from_numpy(np.stack([np.random.default_rng(seed).permutation(STRINGS) for seed in range(SEEDS)]))
    t0 = time.process_time()
    for a in range(STRINGS):
        batch = sets["train"].take(orders[:, a:a + 1])
        for t in p.values():
            t.requires_grad_(True)
        y, _ = models.forward(c, p, batch.x, batch.mask)
        loss = protocols.sequence_loss(step_loss, y, batch.target, batch.mask)
        grads = torch.autograd.grad(loss.mean(1).sum(), list(p.values()))
        for t in p.values():
            t.requires_grad_(False)
        sgd.step(p, dict(zip(p, grads)), {}, lr, on)
    for d in sets.values():
        evaluation.evaluate(c, p, d, step_loss, True)
    return 1 / (time.process_time() - t0)


def thousand_epochs(model) -> float:
    """Seconds for 1000 epochs (training and evaluation) of 16 seeds of one model."""
    torch.set_num_threads(1)
    return engine_epochs(make_engine(*model, "numba")[0], 1000)


def first_epoch_seconds(cache_dir: str) -> float:
    """A fresh process's first epoch of both cells (compiling, or loading the compiled kernels)."""
    code = ("import time; t0 = time.perf_counter(); import benchmarks.bench_training as b\n"
            "for cell, k in b.MODELS: b.engine_rate(cell, k, 'numba', 1)\n"
            "print(time.perf_counter() - t0)")
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return float(out.stdout.strip().splitlines()[-1])


def end_to_end():
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sweeps.cli", "train", "--task", "embedded-reber", "--cells",
                        "vanilla:18,gru:10", "--protocol", "paper", "--seeds", f"0-{SEEDS - 1}", "--out", out],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def row(label: str, value: str) -> None:
    print(f"{label:<72} {value:>14}")


def main(cli: bool = True, only_cells: bool = False):
    torch.set_num_threads(1)
    if only_cells:
        every_cell(make_engine("gru", 10, "torch")[1]["train"])
        print("\n--lag 40-44:")
        every_cell(lagged_train(), against_torch=False)
        return
    row("measurement (embedded Reber, paper protocol, 256 strings, 16 seeds)", "value")
    for cell, k in MODELS:
        fast = engine_rate(cell, k, "numba", 20)
        batched = {dtype: batched_torch_rate(cell, k, dtype) for dtype in (torch.float32, torch.float64)}
        reference = engine_rate(cell, k, "torch", 1)
        row(f"{cell} k={k}: fast path (numba, float64), epochs/CPU s", f"{fast:.2f}")
        for dtype, rate in batched.items():
            row(f"{cell} k={k}: torch path before the fast path (batched, {str(dtype)[6:]}), epochs/CPU s",
                f"{rate:.3f}")
        row(f"{cell} k={k}: torch engine today (one seed at a time, float64), epochs/CPU s", f"{reference:.3f}")
        row(f"{cell} k={k}: fast path / faster batched torch row (target {40 if cell == 'gru' else 25}x)",
            f"{fast / max(batched.values()):.0f}x")
    with get_context("spawn").Pool(2) as pool:
        t0 = time.perf_counter()
        seconds = pool.map(thousand_epochs, MODELS)
        wall = time.perf_counter() - t0
    for (cell, k), s in zip(MODELS, seconds):
        row(f"1000 epochs of {cell} k={k} x 16 seeds, one core, s", f"{s:.0f}")
    row("1000 epochs of both, two processes on 2 cores, wall s (target 180)", f"{wall:.0f}")
    with tempfile.TemporaryDirectory() as cache:
        row("kernels compiled in a fresh process (empty cache), first epochs s", f"{first_epoch_seconds(cache):.1f}")
        row("kernels loaded from the disk cache in a fresh process, first epochs s", f"{first_epoch_seconds(cache):.1f}")
    if cli:
        row(f"CLI: paper protocol, {SEEDS} seeds x (vanilla:18, gru:10), to its stops, s", f"{end_to_end():.0f}")
    print()
    every_cell(make_engine("gru", 10, "torch")[1]["train"])
    print("\n--lag 40-44:")
    every_cell(lagged_train(), against_torch=False)


if __name__ == "__main__":
    main(cli="--no-cli" not in sys.argv, only_cells="--cells" in sys.argv)
