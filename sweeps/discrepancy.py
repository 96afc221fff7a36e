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
"""
from typing import Dict, List

import numpy as np
import pyarrow as pa
import torch

import cells

from . import summaries
from .errors import UsageError
from .plan import Group, Shard
from .options import names, one_int, parse_ints, positive

JOB = "discrepancy"
TABLE = "discrepancy"
BLOCK = 50
DTYPES = {"float64": torch.float64, "float32": torch.float32}
DEFAULTS = {
    "inits": ["normal"],
    "seeds": [0],
    "shard_size": 1000,
    "dtype": "float64",
    "threshold": 1e-6,
}
KEYS = {"cells", "inits", "l_max", "k", "draws", "seeds", "shard_size", "dtype", "threshold"}
# A shard advances its draws in chunks of about this many bytes of parameters: near the
# size of a core's cache (measured fastest here) and bounding memory by splitting draws,
# whatever the grid. A chunk holds at least one block.
CHUNK_BYTES = 8 * 2**20


def validate(section: Dict) -> Dict:
    """Check a ``discrepancy`` spec section and return it normalised (lists of ints, defaults)."""
    if not isinstance(section, dict):
        raise UsageError(f"discrepancy: expected a mapping of settings, got {type(section).__name__}")
    unknown = set(section) - KEYS
    if unknown:
        raise UsageError(f"discrepancy: unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(KEYS))}")
    for key in ("cells", "l_max", "k", "draws"):
        if key not in section:
            raise UsageError(f"discrepancy: missing required key {key!r}")
    s = {**DEFAULTS, **section}
    out = {
        "cells": names(s["cells"], "cells", cells.CELLS),
        "inits": names(s["inits"], "inits", cells.INITS),
        "l_max": one_int(s["l_max"], "l_max", 1),
        "k": parse_ints(s["k"], "k", minimum=1),
        "draws": one_int(s["draws"], "draws", 1),
        "seeds": parse_ints(s["seeds"], "seeds", minimum=0),
        "shard_size": one_int(s["shard_size"], "shard_size", 1),
        "dtype": s["dtype"],
        "threshold": positive(s["threshold"], "threshold"),
    }
    if out["shard_size"] % BLOCK:
        raise UsageError(
            f"shard_size: must be a multiple of {BLOCK} (the draw block size), got {out['shard_size']}"
        )
    if out["dtype"] not in DTYPES:
        raise UsageError(f"dtype: expected one of {', '.join(DTYPES)}, got {out['dtype']!r}")
    return out


def group_name(cell: str, init: str, k: int, seed: int, dtype: str = "float64") -> str:
    """A group's file name; float32 groups are named apart, so both precisions can sit side by
    side in one directory (the table's ``dtype`` column tells them apart)."""
    return f"{cell}-{init}-k{k}-seed{seed}" + ("" if dtype == "float64" else f"-{dtype}")


def plan(spec: Dict) -> List[Group]:
    """Expand a validated section into groups of shards, in a deterministic order."""
    groups = []
    for cell in spec["cells"]:
        for init in spec["inits"]:
            for k in spec["k"]:
                for seed in spec["seeds"]:
                    name = group_name(cell, init, k, seed, spec["dtype"])
                    settings = {"draws": spec["draws"], "l_max": spec["l_max"],
                                "dtype": spec["dtype"], "threshold": spec["threshold"]}
                    base = {"cell": cell, "init": init, "k": k, "seed": seed, **settings}
                    shards = tuple(
                        Shard(JOB, name, {**base, "start": a, "stop": min(a + spec["shard_size"], spec["draws"])})
                        for a in range(0, spec["draws"], spec["shard_size"])
                    )
                    groups.append(Group(JOB, name, settings, shards, (TABLE,)))
    return groups


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
    h = torch.zeros(e, 2, k, dtype=w.dtype)
    out = torch.empty(e, l_max, dtype=w.dtype)
    for t in range(l_max):
        h = cell.step(params, first if t == 0 else zeros, h)
        out[:, t] = torch.linalg.vector_norm(h[:, 0] - h[:, 1], dim=-1)
    return out


MAX_BATCH = 1


def batch_key(shard: Shard):
    return None


def compute(params_list: List[Dict], states=None) -> List[pa.Table]:
    """The summaries of each shard in ``params_list`` (this job never checkpoints)."""
    return [compute_shard(p) for p in params_list]


@torch.inference_mode()
def compute_shard(params: Dict) -> pa.Table:
    """Summaries of one shard: a row per l with its blocks' moments and its histogram."""
    cell = cells.get_cell(params["cell"])
    first, last = params["start"] // BLOCK, -(-params["stop"] // BLOCK)
    shapes = cell.shapes(n=2, k=params["k"])
    per_draw = 8 * sum(int(np.prod(s)) for s in shapes.values())
    chunk = max(1, CHUNK_BYTES // (per_draw * BLOCK))
    l_max = params["l_max"]
    ns, means, m2s, bins, counts = [], [], [], [], []
    distinct = np.zeros(l_max, np.int64)
    for a in range(first, last, chunk):
        blocks = range(a, min(a + chunk, last))
        drawn = [draw_block(params["cell"], params["init"], params["k"], params["seed"], b, params["dtype"])
                 for b in blocks]
        batch = {name: cells.with_guard(torch.cat([p[name] for p in drawn]), 2 * params["k"]) for name in shapes}
        d = distances(cell, batch, l_max).double().numpy()[: min(len(blocks) * BLOCK, params["stop"] - a * BLOCK)]
        for i in range(len(blocks)):
            block = d[i * BLOCK: (i + 1) * BLOCK]
            mean, m2 = summaries.block_moments(block)
            ns.append(len(block)), means.append(mean), m2s.append(m2)
        distinct += (d > params["threshold"]).sum(axis=0)
        b, c = summaries.sparse_histograms(d)
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


def finalize(group: Group, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
    """Merge a group's shard summaries (in shard order) into its rows of the ``discrepancy`` table."""
    s = group.shards[0].params
    l_max = s["l_max"]
    n, mean, m2 = summaries.merge_moments(*(_blocks(shard_tables, name, l_max)
                                            for name in ("block_n", "block_mean", "block_m2")))
    std = np.sqrt(m2 / np.maximum(n - 1, 1))
    distinct = sum(t.column("n_distinct").to_numpy() for t in shard_tables)
    hist = np.zeros((l_max, summaries.N_BINS), np.int64)
    for t in shard_tables:
        lengths = t.column("hist_bin").combine_chunks().value_lengths().to_numpy()
        rows = np.repeat(np.arange(l_max), lengths)
        np.add.at(hist, (rows, _values(t, "hist_bin")), _values(t, "hist_count"))
    q = np.array([[summaries.quantile(h, p) for p in (0.1, 0.5, 0.9)] for h in hist])

    def const(value, type_):
        return pa.array([value] * l_max, type_)

    return {TABLE: pa.table({
        "cell": const(s["cell"], pa.string()),
        "init": const(s["init"], pa.string()),
        "k": const(s["k"], pa.int32()),
        "l": pa.array(np.arange(1, l_max + 1), pa.int32()),
        "seed": const(s["seed"], pa.int32()),
        "dtype": const(s["dtype"], pa.string()),
        "n_draws": pa.array(n.astype(np.int64), pa.int64()),
        "mean": pa.array(mean, pa.float64()),
        "std": pa.array(std, pa.float64()),
        "q10": pa.array(q[:, 0], pa.float64()),
        "q50": pa.array(q[:, 1], pa.float64()),
        "q90": pa.array(q[:, 2], pa.float64()),
        "frac_distinct": pa.array(distinct / n, pa.float64()),
        "threshold": const(s["threshold"], pa.float64()),
    })}


def _values(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).combine_chunks().flatten().to_numpy().astype(np.int64)


def _blocks(tables: List[pa.Table], name: str, l_max: int) -> np.ndarray:
    """A per-block list column of every shard as one (blocks, L) array, blocks in draw order."""
    per_shard = [t.column(name).combine_chunks().flatten().to_numpy().reshape(l_max, -1) for t in tables]
    return np.concatenate(per_shard, axis=1).T
