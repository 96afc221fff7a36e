"""Training benchmark: prints a table.

1. End to end through the CLI: 8 seeds x (vanilla k=18, GRU k=10), `adam` on embedded Reber
   (2000 strings) to the early stop (test set solved) or 60 epochs. Target <= 120 s.
2. Throughput of one configuration's 8 seeds trained as one ensemble (the job's code) against
   the same 8 seeds one model at a time in plain torch, same minibatches of 50 sequences.
   Target >= 5x. The like-for-like baseline is a hand-written loop over the time steps with
   plain autograd (the sigmoid Elman RNN, which nn.RNN lacks; the GRU with the equations of
   cells/gru.py); nn.GRU (a fused kernel) is printed as a reference row for the GRU.

Run: python benchmarks/bench_training.py [--no-cli]   (--no-cli: the throughput part only)
"""
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from sweeps import spec as specs
from sweeps.jobs.training import ensemble, reber
from sweeps.jobs.training import evaluation as metrics

SEEDS, BATCHES = 8, 10


def end_to_end():
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sweeps.cli", "train", "--task", "embedded-reber", "--cells",
                        "vanilla:18,gru:10", "--protocol", "adam", "--seeds", f"0-{SEEDS - 1}",
                        "--max-epochs", "60", "--out", out], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t0
        runs = pd.read_parquet(f"{out}/runs")
    per_cell = runs.groupby("cell").agg(solved=("solved", "sum"), epochs=("epochs", "median"),
                                        outer=("outer_accuracy", "mean"))
    return seconds, per_cell


def ensemble_rate(cell: str, k: int) -> float:
    """Sequences per second of the job's ensemble training (8 seeds, minibatches of 50)."""
    params = [g.shards[0].params for g in specs.validate({"training": {
        "task": "embedded-reber", "cells": f"{cell}:{k}", "protocol": "adam", "seeds": f"0-{SEEDS - 1}",
        "n_train": 50 * BATCHES}}).groups()]
    ens = ensemble.Ensemble(params, [None] * SEEDS)
    t0 = time.perf_counter()
    ens.epoch()                       # BATCHES minibatches per member, then the epoch's evaluation
    epoch = time.perf_counter() - t0
    t0 = time.perf_counter()          # the evaluation alone, taken out: the plain loop does none
    for data in ens.data.values():
        metrics.evaluate(ens.cell, ens.sub(list(range(SEEDS))), data, ens.protocol, ens.embedded)
    return SEEDS * 50 * BATCHES / (epoch - (time.perf_counter() - t0))


class Plain(torch.nn.Module):
    """One model the usual way: ``nn.GRU`` (kind 'nn.GRU'), or a hand-written loop over the
    steps (kind 'hand'): the sigmoid Elman RNN, or the GRU of cells/gru.py
    (z = σ(U^z x + W^z h); r = σ(U^r x + W^r h); h' = tanh(U^h x + W^h (h∘r));
    h_t = (1-z)∘h' + z∘h_{t-1})."""

    def __init__(self, cell: str, k: int, kind: str = "hand"):
        super().__init__()
        self.cell, self.kind = cell, kind
        if kind == "nn.GRU":
            self.rnn = torch.nn.GRU(7, k, batch_first=True)
        elif cell == "gru":
            self.zr = torch.nn.Linear(7 + k, 2 * k)      # [U^z W^z; U^r W^r] on [x, h]
            self.u, self.w = torch.nn.Linear(7, k), torch.nn.Linear(k, k, bias=False)
        else:
            self.rnn = torch.nn.Linear(7 + k, k)
        self.out = torch.nn.Linear(k, 7)

    def forward(self, x):
        if self.kind == "nn.GRU":
            return self.out(self.rnn(x)[0])
        h, hs = x.new_zeros(x.shape[0], self.out.in_features), []
        for t in range(x.shape[1]):
            xh = torch.cat([x[:, t], h], -1)
            if self.cell == "gru":
                z, r = torch.sigmoid(self.zr(xh)).chunk(2, -1)
                h_new = torch.tanh(self.u(x[:, t]) + self.w(h * r))
                h = (1 - z) * h_new + z * h
            else:
                h = torch.sigmoid(self.rnn(xh))
            hs.append(h)
        return self.out(torch.stack(hs, 1))


def plain_rate(cell: str, k: int, kind: str = "hand") -> float:
    """Sequences per second training the same seeds one model at a time."""
    data = reber.datasets("embedded-reber", 50 * BATCHES, 50, 0, torch.float32)["train"]
    t0 = time.perf_counter()
    for seed in range(SEEDS):
        torch.manual_seed(seed)
        model = Plain(cell, k, kind)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        order = np.random.default_rng(seed).permutation(50 * BATCHES)
        for a in range(0, 50 * BATCHES, 50):
            b = data.take(torch.from_numpy(order[a:a + 50]))
            y = model(b.x)
            loss = (torch.nn.functional.cross_entropy(y.transpose(1, 2), b.target, reduction="none") * b.mask)
            opt.zero_grad()
            loss.sum(1).mean().backward()
            opt.step()
    return SEEDS * 50 * BATCHES / (time.perf_counter() - t0)


def main(cli: bool = True):
    torch.set_num_threads(1)
    print(f"{'measurement':<58} {'value':>12}")
    for cell, k in (("vanilla", 18), ("gru", 10)):
        grouped, plain = ensemble_rate(cell, k), plain_rate(cell, k)
        print(f"{f'{cell} k={k}: ensemble of {SEEDS} seeds, sequences/s':<58} {grouped:>12.0f}")
        print(f"{f'{cell} k={k}: one model at a time, hand loop, sequences/s':<58} {plain:>12.0f}")
        print(f"{f'{cell} k={k}: speed-up vs hand loop (like for like)':<58} {grouped / plain:>11.1f}x")
        if cell == "gru":
            fused = plain_rate(cell, k, "nn.GRU")
            print(f"{f'{cell} k={k}: one model at a time, nn.GRU, sequences/s':<58} {fused:>12.0f}")
            print(f"{f'{cell} k={k}: speed-up vs nn.GRU (reference)':<58} {grouped / fused:>11.1f}x")
    if not cli:
        return
    seconds, per_cell = end_to_end()
    print(f"{f'CLI: {SEEDS} seeds x (vanilla:18, gru:10), adam, embedded Reber, s':<58} {seconds:>12.1f}")
    for cell, row in per_cell.iterrows():
        print(f"{f'  {cell}: solved / median epochs / mean test outer acc.':<58} "
              f"{int(row.solved)}/{SEEDS} {row.epochs:>4.0f} {row.outer:>6.3f}")


if __name__ == "__main__":
    main(cli="--no-cli" not in sys.argv)
