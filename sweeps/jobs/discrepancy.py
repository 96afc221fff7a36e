"""The (l,k)-discrepancy job (paper §V).

For a cell with k units and parameters drawn at random, u = 0^l and v = 1 0^(l-1) differ
only in their first symbol; D(l,k) is the mean over draws of ||h_u - h_v||_2 after l steps.
Because u and v of length l are prefixes of u and v of length l_max, one pass of l_max
steps gives every l <= l_max, and all draws of a shard advance as one batched ensemble.

Randomness: draws come in blocks of ``BLOCK`` (50). Block b of group (seed, cell, init, k)
holds draws [50 b, 50 b + 50) and is drawn from a generator seeded by exactly
(seed, cell, init, k, b), so any sharding of a group's draws gives bit-identical numbers.
A group of ``draws`` that is not a multiple of 50 uses the first draws of its last block,
so a group of 30 draws is a prefix of one of 50.

A group is one (cell, init, k, seed[, dtype]); a shard is a range of its draws. Shards
return per-block moments and sparse histograms (:mod:`sweeps.jobs.moments`,
:mod:`sweeps.contract`); the driver merges them in block order into the group's rows.
"""
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import pyarrow as pa
import torch

import cells

from .. import contract
from ..job import Estimate, Job, register_job
from ..plan import Group, Shard
from ..settings import Choice, Choices, Int, Ints, Number, Option
from .moments import block_moments, merge_moments

BLOCK = 50
DTYPES = {"float64": torch.float64, "float32": torch.float32}
# A shard advances its draws in chunks of about this many bytes of parameters: near the
# size of a core's cache (measured fastest here) and bounding memory by splitting draws,
# whatever the grid. A chunk holds at least one block.
CHUNK_BYTES = 8 * 2**20

SCHEMA = contract.schema([
    ("cell", pa.string(), "the cell's registry name (cells.CELLS)"),
    ("init", pa.string(), "parameter draws: normal N(0,1), xavier N(0,1/fan_in), uniform ±sqrt(1/fan_in)"),
    ("k", pa.int32(), "hidden units"),
    ("l", pa.int32(), "length of u and v (steps read)"),
    ("seed", pa.int32(), "the ensemble's seed: ensembles of other seeds are independent"),
    ("dtype", pa.string(), "float64 or float32: the precision of the recurrence"),
    ("n_draws", pa.int64(), "parameter draws in the ensemble"),
    ("mean", pa.float64(), "D(l,k): the mean of ||h_u - h_v||_2 over the draws"),
    ("std", pa.float64(), "standard deviation of ||h_u - h_v||_2 over the draws (n - 1 denominator)"),
    ("q10", pa.float64(), "10 % quantile over the draws (from the log histogram, within 4.7 %)"),
    ("q50", pa.float64(), "median over the draws (exactly 0 when most trajectories merged bit for bit)"),
    ("q90", pa.float64(), "90 % quantile over the draws"),
    ("frac_distinct", pa.float64(), "share of draws with ||h_u - h_v||_2 > threshold"),
    ("threshold", pa.float64(), "the threshold of frac_distinct"),
])


@dataclass(frozen=True, slots=True)
class DrawRange:
    """One shard: draws [start, stop) of the ensemble (cell, init, k, seed)."""

    cell: str
    init: str
    k: int
    seed: int
    draws: int
    l_max: int
    dtype: str
    threshold: float
    start: int
    stop: int


@register_job
class Discrepancy(Job):
    name = command = "discrepancy"
    help = "sweep D(l,k) over cells, inits, k and seed ensembles"
    tables = ("discrepancy",)
    schemas = {"discrepancy": SCHEMA}
    options = (
        Option("cells", Choices(lambda: cells.CELLS), "cells, e.g. vanilla,gru"),
        Option("inits", Choices(cells.INITS), "parameter draws: normal, xavier, uniform", ["normal"]),
        Option("l_max", Int(minimum=1), "longest sequence length l (one pass gives every l <= l_max)"),
        Option("k", Ints(minimum=1), "hidden sizes, e.g. 1-20 or 4,8,16"),
        Option("draws", Int(minimum=1), "parameter draws per ensemble (N in the paper)"),
        Option("seeds", Ints(minimum=0), "ensemble seeds, e.g. 0 or 0-4", [0]),
        Option("shard_size", Int(minimum=BLOCK, multiple_of=BLOCK), "draws per shard, a multiple of 50", 1000),
        Option("dtype", Choice(tuple(DTYPES)), "precision of the recurrence", "float64"),
        Option("threshold", Number(), "frac_distinct counts draws with ||h_u - h_v|| above this", 1e-6),
    )

    def plan(self, s) -> List[Group]:
        groups = []
        for cell in s.cells:
            for init in s.inits:
                for k in s.k:
                    for seed in s.seeds:
                        name = group_name(cell, init, k, seed, s.dtype)
                        settings = {"draws": s.draws, "l_max": s.l_max, "dtype": s.dtype, "threshold": s.threshold}
                        shards = tuple(
                            Shard(self.name, name, DrawRange(cell, init, k, seed, start=a,
                                                             stop=min(a + s.shard_size, s.draws), **settings))
                            for a in range(0, s.draws, s.shard_size))
                        groups.append(Group(self.name, name, settings, shards, self.tables))
        return groups

    def compute(self, params: List[DrawRange], states=None) -> List[pa.Table]:
        """The moments and histograms of each shard (this job never checkpoints)."""
        return [compute_shard(p) for p in params]

    def finalize(self, group: Group, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
        return {"discrepancy": merge_shards(group.shards[0].params, shard_tables)}

    def estimate(self, s) -> Estimate:
        """Counted from the settings, without planning; the largest shard (largest k, most
        costly cell) by :func:`shard_cost`."""
        groups = len(s.cells) * len(s.inits) * len(s.k) * len(s.seeds)
        per_group = -(-s.draws // s.shard_size)
        costs = {c: shard_cost(c, max(s.k), s.l_max, min(s.draws, s.shard_size)) for c in s.cells}
        cell = max(costs, key=lambda c: costs[c][1])
        every = sum(shard_cost(c, k, s.l_max, s.draws)[1] for c in s.cells for k in s.k) * len(s.inits) * len(s.seeds)
        return Estimate(groups, groups * per_group, shard_bytes=max(b for b, _ in costs.values()),
                        shard_seconds=costs[cell][1], seconds=every,
                        largest=f"{cell}, k={max(s.k)}, l_max={s.l_max}, {min(s.draws, s.shard_size)} draws")


def shard_cost(cell: str, k: int, l_max: int, draws: int):
    """(peak bytes, seconds of one core) of a shard of ``draws`` draws, from a model fitted on a
    2-core machine (benchmarks/bench_engine.py checks it): time draws·l_max·(0.5 µs + 2.5 ns·gates·k²);
    memory 4x the parameters of one chunk of draws, 40 bytes per draw of the chunk and step,
    and 16 MiB. A guide for refusing what cannot fit: it errs high (measured: up to 2.5x the
    time, 1.5x the memory)."""
    c = cells.get_cell(cell)
    per_draw = 8 * sum(int(np.prod(shape)) for shape in c.shapes(n=2, k=k).values())
    chunk = min(draws, BLOCK * max(1, CHUNK_BYTES // (per_draw * BLOCK)))
    memory = 4 * chunk * per_draw + 40 * (chunk + 2 * k) * l_max + 16 * 2**20
    return float(memory), draws * l_max * (0.5e-6 + 2.5e-9 * len(c.gates) * k * k)


def group_name(cell: str, init: str, k: int, seed: int, dtype: str = "float64") -> str:
    """A group's file name; float32 groups are named apart, so both precisions can sit side by
    side in one directory (the table's ``dtype`` column tells them apart)."""
    return f"{cell}-{init}-k{k}-seed{seed}" + ("" if dtype == "float64" else f"-{dtype}")


def draw_block(cell: str, init: str, k: int, seed: int, block: int, dtype: str = "float64") -> cells.Params:
    """The ``BLOCK`` parameter sets of one block, bias-free, for a binary alphabet (n = 2).

    Drawn in float64 then cast, so float32 and float64 sweeps use the same draws.
    """
    shapes = cells.get_cell(cell).shapes(n=2, k=k)
    return cells.draw(shapes, BLOCK, init, cells.stream(seed, cell, init, k, block), DTYPES[dtype])


def distances(cell: cells.Cell, params: cells.Params, l_max: int) -> torch.Tensor:
    """||h_u - h_v||_2 after each of l_max steps, shape (E, l_max), for E draws in ``params``."""
    w = params[f"W{cell.gates[0]}"]
    e, k = w.shape[0], w.shape[-1]
    first = torch.eye(2, dtype=w.dtype)            # u starts with 0, v with 1 (one-hot rows)
    zeros = first[[0, 0]]                          # then both read 0
    s = torch.zeros(e, 2, cell.memory * k, dtype=w.dtype)
    out = torch.empty(e, l_max, dtype=w.dtype)
    for t in range(l_max):
        s = cell.step(params, first if t == 0 else zeros, s)
        h = cell.hidden(s)
        out[:, t] = torch.linalg.vector_norm(h[:, 0] - h[:, 1], dim=-1)
    return out


@torch.inference_mode()
def compute_shard(p: DrawRange) -> pa.Table:
    """Summaries of one shard: a row per l with its blocks' moments and its histogram."""
    cell = cells.get_cell(p.cell)
    first, last = p.start // BLOCK, -(-p.stop // BLOCK)
    shapes = cell.shapes(n=2, k=p.k)
    per_draw = 8 * sum(int(np.prod(s)) for s in shapes.values())
    chunk = max(1, CHUNK_BYTES // (per_draw * BLOCK))
    l_max = p.l_max
    ns, means, m2s, bins, counts = [], [], [], [], []
    distinct = np.zeros(l_max, np.int64)
    for a in range(first, last, chunk):
        blocks = range(a, min(a + chunk, last))
        drawn = [draw_block(p.cell, p.init, p.k, p.seed, b, p.dtype) for b in blocks]
        batch = {name: cells.with_guard(torch.cat([block[name] for block in drawn]), 2 * p.k) for name in shapes}
        d = distances(cell, batch, l_max).double().numpy()[: min(len(blocks) * BLOCK, p.stop - a * BLOCK)]
        for i in range(len(blocks)):
            block = d[i * BLOCK: (i + 1) * BLOCK]
            mean, m2 = block_moments(block)
            ns.append(len(block)), means.append(mean), m2s.append(m2)
        distinct += (d > p.threshold).sum(axis=0)
        b, c = contract.sparse_histograms(d)
        bins.append(b), counts.append(c)
    return pa.table({
        "l": pa.array(np.arange(1, l_max + 1), pa.int32()),
        "block_n": pa.array([ns] * l_max, pa.list_(pa.int32())),
        "block_mean": pa.array(list(np.stack(means, axis=1)), pa.list_(pa.float64())),
        "block_m2": pa.array(list(np.stack(m2s, axis=1)), pa.list_(pa.float64())),
        "n_distinct": pa.array(distinct, pa.int64()),
        "hist_bin": pa.array([np.concatenate([b[l] for b in bins]) for l in range(l_max)], pa.list_(pa.int16())),
        "hist_count": pa.array([np.concatenate([c[l] for c in counts]) for l in range(l_max)], pa.list_(pa.int64())),
    })


def merge_shards(s: DrawRange, shard_tables: List[pa.Table]) -> pa.Table:
    """Merge a group's shard tables (in draw order) into its rows of the ``discrepancy`` table."""
    l_max = s.l_max
    n, mean, m2 = merge_moments(*(_blocks(shard_tables, name, l_max) for name in ("block_n", "block_mean", "block_m2")))
    std = np.sqrt(m2 / np.maximum(n - 1, 1))
    distinct = sum(t.column("n_distinct").to_numpy() for t in shard_tables)
    hist = np.zeros((l_max, contract.N_BINS), np.int64)
    for t in shard_tables:
        lengths = t.column("hist_bin").combine_chunks().value_lengths().to_numpy()
        rows = np.repeat(np.arange(l_max), lengths)
        np.add.at(hist, (rows, _values(t, "hist_bin")), _values(t, "hist_count"))
    q = np.array([[contract.quantile(h, p) for p in (0.1, 0.5, 0.9)] for h in hist])

    def const(value, type_):
        return pa.array([value] * l_max, type_)

    return pa.table({
        "cell": const(s.cell, pa.string()),
        "init": const(s.init, pa.string()),
        "k": const(s.k, pa.int32()),
        "l": pa.array(np.arange(1, l_max + 1), pa.int32()),
        "seed": const(s.seed, pa.int32()),
        "dtype": const(s.dtype, pa.string()),
        "n_draws": pa.array(n.astype(np.int64), pa.int64()),
        "mean": pa.array(mean, pa.float64()),
        "std": pa.array(std, pa.float64()),
        "q10": pa.array(q[:, 0], pa.float64()),
        "q50": pa.array(q[:, 1], pa.float64()),
        "q90": pa.array(q[:, 2], pa.float64()),
        "frac_distinct": pa.array(distinct / n, pa.float64()),
        "threshold": const(s.threshold, pa.float64()),
    }, schema=SCHEMA)


def _values(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).combine_chunks().flatten().to_numpy().astype(np.int64)


def _blocks(tables: List[pa.Table], name: str, l_max: int) -> np.ndarray:
    """A per-block list column of every shard as one (blocks, L) array, blocks in draw order."""
    per_shard = [t.column(name).combine_chunks().flatten().to_numpy().reshape(l_max, -1) for t in tables]
    return np.concatenate(per_shard, axis=1).T
