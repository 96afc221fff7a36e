"""The (l,k)-discrepancy job (paper §V), and what explains it.

For a cell with k units and parameters drawn at random, u = 0^l and v = 1 0^(l-1) differ
only in their first symbol; D(l,k) is the mean over draws of ||h_u - h_v||_2 after l steps.
Because u and v of length l are prefixes of u and v of length l_max, one pass of l_max
steps gives every l <= l_max, and all draws of a shard advance as one batched ensemble.

Randomness: draws come in blocks of ``BLOCK`` (50). Block b of group (seed, cell, init, k)
holds draws [50 b, 50 b + 50) and is drawn from a generator seeded by exactly
(seed, cell, init, k, b), so any sharding of a group's draws gives bit-identical numbers.
A group of ``draws`` that is not a multiple of 50 uses the first draws of its last block,
so a group of 30 draws is a prefix of one of 50.

Two paths compute the distances, chosen by k alone so that a group's numbers never depend
on anything else: k < ``RESIDENT_K`` (the paper's grid, k <= 20) advances blocks of draws as
one torch batch, the reference whose numbers earlier versions published; wider cells take the
cache-resident path (:mod:`sweeps.jobs.resident`), 2-4x faster where reading the weights is
the cost, and equal to the reference to rounding.

A group is one (cell, init, k, seed[, dtype]); a shard is a range of its draws. Shards
return per-block moments and sparse histograms (:mod:`sweeps.jobs.moments`,
:mod:`sweeps.contract`) and per-draw rates; the driver merges them in block order into the
group's rows of ``discrepancy``, ``memory`` (decay rates, :mod:`sweeps.jobs.memory`), for
cells whose state is more than h ``state_discrepancy`` (D of the whole state, e.g. an LSTM's
(h, c)), with ``lyapunov: true`` ``lyapunov`` (per draw: the largest Lyapunov exponent,
the draw's decay rate of h's distance and of the whole state's, its saturated gates, and what u's
and v's trajectories settled on), and with ``noise: σ`` ``decodable`` (how well the first
symbol can be read back under noise, :mod:`sweeps.jobs.decodable`, measured on the group's
first ``noise_draws`` draws).
"""
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import torch

import cells

from .. import contract
from ..job import Estimate, Job, register_job
from ..plan import Group, Shard
from ..settings import INT32, Choice, Choices, Families, Flag, Int, Ints, Number, Option
from . import decodable, memory, resident
from .moments import block_moments, merge_moments

BLOCK = 50
# The per-draw lists a shard measuring the dynamics returns (held by its first row).
PER_DRAW = ("draw_rate", "draw_lyapunov", "draw_saturated", "draw_state_rate", "draw_period_u", "draw_period_v",
            "draw_shift")
RESIDENT_K = 32          # groups with k >= this take the cache-resident path
DTYPES = {"float64": torch.float64, "float32": torch.float32}
# The reference path advances its draws in chunks of about this many bytes of parameters:
# near the size of a core's cache (measured fastest here) and bounding memory by splitting
# draws, whatever the grid. A chunk holds at least one block.
CHUNK_BYTES = 8 * 2**20


def schema(what: str) -> pa.Schema:
    """The per-l table of the distance ``what`` (||h_u - h_v||_2, or of the whole states)."""
    return contract.schema([
        *memory.columns("cell", "init", "k"),
        ("l", pa.int32(), "length of u and v (steps read)"),
        *memory.columns("seed", "dtype", "n_draws"),
        ("mean", pa.float64(), f"D(l,k): the mean of {what} over the draws"),
        ("std", pa.float64(), f"standard deviation of {what} over the draws (n - 1 denominator)"),
        ("q10", pa.float64(), "10 % quantile over the draws (from the log histogram, within 4.7 %)"),
        ("q50", pa.float64(), "median over the draws (exactly 0 when most trajectories merged bit for bit)"),
        ("q90", pa.float64(), "90 % quantile over the draws"),
        ("frac_distinct", pa.float64(), f"share of draws with {what} > threshold"),
        *memory.columns("threshold", "gain"),
    ])


SCHEMA = schema("||h_u - h_v||_2")
STATE_SCHEMA = schema("||s_u - s_v||_2 over the whole state (an LSTM's (h, c); cells whose state is h have no rows)")


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


@dataclass(frozen=True)
class DynamicsRange(DrawRange):
    """A shard that also measures each draw's largest Lyapunov exponent and saturated gates
    (a field of its own, so its id differs from the same draws' without them)."""

    lyapunov: bool = True


@dataclass(frozen=True)
class NoisyRange(DynamicsRange):
    """A shard that also measures how well the first symbol can be read back under noise
    (``sweeps.jobs.decodable``), with or without the dynamics."""

    noise: float = 0.0
    noise_draws: int = 0


@register_job
class Discrepancy(Job):
    name = command = "discrepancy"
    help = "sweep D(l,k) over cells, inits, k and seed ensembles (and what explains it)"
    tables = ("discrepancy", "memory", "state_discrepancy", "lyapunov", "decodable")
    schemas = {"discrepancy": SCHEMA, "memory": memory.MEMORY, "state_discrepancy": STATE_SCHEMA,
               "lyapunov": memory.LYAPUNOV, "decodable": decodable.SCHEMA}
    options = (
        Option("cells", Choices(lambda: cells.CELLS), "cells, e.g. vanilla,gru (also tanh, lstm, mgu)"),
        Option("inits", Families(cells.INITS, (cells.GAIN,)), "parameter draws: normal, xavier, uniform, or gain:G "
                                                              "for N(0, G²/fan_in), e.g. gain:0.5,gain:2", ["normal"]),
        Option("l_max", Int(minimum=1, maximum=INT32), "longest sequence length l (one pass gives every l <= l_max)"),
        Option("k", Ints(minimum=1, maximum=INT32), "hidden sizes, e.g. 1-20 or 4,8,16"),
        Option("draws", Int(minimum=1), "parameter draws per ensemble (N in the paper)"),
        Option("seeds", Ints(minimum=0, maximum=INT32), "ensemble seeds, e.g. 0 or 0-4", [0]),
        Option("shard_size", Int(minimum=BLOCK, multiple_of=BLOCK), "draws per shard, a multiple of 50", 1000),
        Option("dtype", Choice(tuple(DTYPES)), "precision of the recurrence", "float64"),
        Option("threshold", Number(), "frac_distinct counts draws with ||h_u - h_v|| above this", 1e-6),
        Option("lyapunov", Flag(), "also measure each draw's largest Lyapunov exponent, saturated gates and attractors "
                                   "(table lyapunov; about as costly again as D)", False),
        Option("noise", Number(), "σ of the Gaussian noise added to the state at every step of 16 noisy runs of "
                                  "u and of v per draw; the held-out accuracy of a linear readout telling them "
                                  "apart goes to table decodable (off unless given)", None),
        Option("noise_draws", Int(minimum=1), "with noise: measure it on the first this many draws of each ensemble "
                                              "(its mean needs far fewer draws than D's)", 200),
    )

    def plan(self, s) -> List[Group]:
        groups = []
        for cell in s.cells:
            for init in s.inits:
                for k in s.k:
                    for seed in s.seeds:
                        name = group_name(cell, init, k, seed, s.dtype)
                        settings = {"draws": s.draws, "l_max": s.l_max, "dtype": s.dtype, "threshold": s.threshold,
                                    **({"lyapunov": True} if s.lyapunov else {}),
                                    **({"noise": s.noise, "noise_draws": min(s.noise_draws, s.draws)} if s.noise else {})}
                        shard = (partial(NoisyRange, lyapunov=s.lyapunov, noise=s.noise,
                                         noise_draws=min(s.noise_draws, s.draws)) if s.noise
                                 else DynamicsRange if s.lyapunov else DrawRange)
                        shards = tuple(
                            Shard(self.name, name, shard(cell, init, k, seed, s.draws, s.l_max, s.dtype, s.threshold,
                                                         start=a, stop=min(a + s.shard_size, s.draws)))
                            for a in range(0, s.draws, s.shard_size))
                        tables = ("discrepancy", "memory",
                                  *(("state_discrepancy",) if cells.get_cell(cell).memory > 1 else ()),
                                  *(("lyapunov",) if s.lyapunov else ()), *(("decodable",) if s.noise else ()))
                        groups.append(Group(self.name, name, settings, shards, tables))
        return groups

    def compute(self, params: List[DrawRange], states=None) -> List[pa.Table]:
        """The moments and histograms of each shard (this job never checkpoints)."""
        return [compute_shard(p) for p in params]

    def finalize(self, group: Group, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
        return merge_shards(group.shards[0].params, shard_tables)

    def estimate(self, s) -> Estimate:
        """Counted from the settings, without planning; the largest shard (largest k, most
        costly cell) by :func:`shard_cost`."""
        groups = len(s.cells) * len(s.inits) * len(s.k) * len(s.seeds)
        per_group = -(-s.draws // s.shard_size)
        noisy = min(s.noise_draws, s.draws) if s.noise else 0     # the first shard holds the most noisy draws
        costs = {c: shard_cost(c, max(s.k), s.l_max, min(s.draws, s.shard_size), min(noisy, s.shard_size))
                 for c in s.cells}
        cell = max(costs, key=lambda c: costs[c][1])
        every = (sum(shard_cost(c, k, s.l_max, s.draws, noisy)[1] for c in s.cells for k in s.k)
                 * len(s.inits) * len(s.seeds))
        return Estimate(groups, groups * per_group, shard_bytes=max(b for b, _ in costs.values()),
                        shard_seconds=costs[cell][1], seconds=every,
                        largest=f"{cell}, k={max(s.k)}, l_max={s.l_max}, {min(s.draws, s.shard_size)} draws")


def shard_cost(cell: str, k: int, l_max: int, draws: int, noisy: int = 0):
    """(peak bytes, seconds of one core) of a shard of ``draws`` draws, ``noisy`` of them also
    measured under noise, from a model fitted on a 2-core machine (benchmarks/bench_engine.py
    checks it): time draws·l_max·(0.5 µs + 2.5 ns·gates·k²); memory 4x the parameters of one
    chunk of draws, 40 bytes per draw of the chunk and step, and 16 MiB. A guide for refusing
    what cannot fit: it errs high (measured: up to 2.5x the time, 1.5x the memory). A noisy draw
    adds ten times its D time, 50 ns per value of its 32 noisy states a step (the noise and the
    readout) and 20 µs a step, and its chunk holds six times its 64 steps of noisy states
    (benchmarks/bench_decodable.py: within 0.5-1.2x on a busy machine)."""
    c = cells.get_cell(cell)
    per_draw, blocks = reference_chunk(c, k)
    chunk = min(draws, BLOCK * blocks)
    memory = 4 * chunk * per_draw + 40 * (chunk + 2 * k) * l_max + 16 * 2**20
    per_step = 0.5e-6 + 2.5e-9 * len(c.gates) * k * k
    states = 2 * decodable.REPEATS * c.memory * k
    if noisy:
        memory += 6 * min(l_max, resident.NORM_STEPS) * min(noisy, resident.chunk_size_of(per_draw)) * states * 8
    return float(memory), draws * l_max * per_step + noisy * l_max * (10 * per_step + 50e-9 * states + 20e-6)


def reference_chunk(cell: cells.Cell, k: int):
    """(bytes of one draw's float64 parameters, blocks the reference path advances at once):
    about ``CHUNK_BYTES`` of parameters, at least one block."""
    per_draw = 8 * sum(int(np.prod(shape)) for shape in cell.shapes(n=2, k=k).values())
    return per_draw, max(1, CHUNK_BYTES // (per_draw * BLOCK))


def group_name(cell: str, init: str, k: int, seed: int, dtype: str = "float64") -> str:
    """A group's file name; float32 groups are named apart, so both precisions can sit side by
    side in one directory (the table's ``dtype`` column tells them apart). ``gain:2`` is
    written ``gain2``."""
    return f"{cell}-{init.replace(':', '')}-k{k}-seed{seed}" + ("" if dtype == "float64" else f"-{dtype}")


def draw_block(cell: str, init: str, k: int, seed: int, block: int, dtype: str = "float64") -> cells.Params:
    """The ``BLOCK`` parameter sets of one block, bias-free, for a binary alphabet (n = 2).

    Drawn in float64 then cast, so float32 and float64 sweeps use the same draws.
    """
    shapes = cells.get_cell(cell).shapes(n=2, k=k)
    return cells.draw(shapes, BLOCK, init, cells.stream(seed, cell, init, k, block), DTYPES[dtype])


def reference_distances(cell: cells.Cell, params: cells.Params, l_max: int):
    """The reference path: ||h_u - h_v||_2 after each of l_max steps, shape (E, l_max), for E
    draws in ``params`` as one torch batch; and for cells whose state is more than h the
    distance of the whole states (else None)."""
    w = params[f"W{cell.gates[0]}"]
    e, k = w.shape[0], w.shape[-1]
    first = torch.eye(2, dtype=w.dtype)            # u starts with 0, v with 1 (one-hot rows)
    zeros = first[[0, 0]]                          # then both read 0
    s = torch.zeros(e, 2, cell.memory * k, dtype=w.dtype)
    out = torch.empty(e, l_max, dtype=w.dtype)
    whole = torch.empty(e, l_max, dtype=w.dtype) if cell.memory > 1 else None
    for t in range(l_max):
        s = cell.step(params, first if t == 0 else zeros, s)
        h = cell.hidden(s)
        out[:, t] = torch.linalg.vector_norm(h[:, 0] - h[:, 1], dim=-1)
        if whole is not None:
            whole[:, t] = torch.linalg.vector_norm(s[:, 0] - s[:, 1], dim=-1)
    return out, whole


def distances(cell: cells.Cell, params: cells.Params, l_max: int, need: int):
    """(E, l_max) float64 arrays of ||h_u - h_v|| and of the whole states' distance (or None),
    by the path the draws' width k takes; rows past ``need`` may be left uncomputed."""
    k = params[f"W{cell.gates[0]}"].shape[-1]
    if k >= RESIDENT_K:
        return resident.distances(cell, params, l_max, need)
    e = params[f"W{cell.gates[0]}"].shape[0]
    batch = {name: cells.with_guard(t, 2 * k) for name, t in params.items()}
    return tuple(None if d is None else d.double().numpy()[:e] for d in reference_distances(cell, batch, l_max))


class Summary:
    """Per-l summaries of a shard's distances, added chunk by chunk: per-block moments, the
    count of draws above the threshold, and sparse histograms."""

    def __init__(self, l_max: int, threshold: float):
        self.threshold = threshold
        self.ns, self.means, self.m2s, self.bins, self.counts = [], [], [], [], []
        self.distinct = np.zeros(l_max, np.int64)

    def add(self, d: np.ndarray) -> None:
        """Distances ``d`` (draws, l_max) of whole blocks (the last may be partial)."""
        for i in range(0, len(d), BLOCK):
            mean, m2 = block_moments(d[i: i + BLOCK])
            self.ns.append(len(d[i: i + BLOCK])), self.means.append(mean), self.m2s.append(m2)
        self.distinct += (d > self.threshold).sum(axis=0)
        b, c = contract.sparse_histograms(d)
        self.bins.append(b), self.counts.append(c)

    def columns(self, prefix: str = "") -> Dict[str, pa.Array]:
        l_max = len(self.distinct)
        return {
            f"{prefix}block_n": pa.array([self.ns] * l_max, pa.list_(pa.int32())),
            f"{prefix}block_mean": pa.array(list(np.stack(self.means, axis=1)), pa.list_(pa.float64())),
            f"{prefix}block_m2": pa.array(list(np.stack(self.m2s, axis=1)), pa.list_(pa.float64())),
            f"{prefix}n_distinct": pa.array(self.distinct, pa.int64()),
            f"{prefix}hist_bin": pa.array([np.concatenate([b[l] for b in self.bins]) for l in range(l_max)],
                                          pa.list_(pa.int16())),
            f"{prefix}hist_count": pa.array([np.concatenate([c[l] for c in self.counts]) for l in range(l_max)],
                                            pa.list_(pa.int64())),
        }


@torch.inference_mode()
def compute_shard(p: DrawRange) -> pa.Table:
    """Summaries of one shard: a row per l with its blocks' moments and its histogram (and
    the whole state's, for cells whose state is more than h); measuring the dynamics, the
    first row also holds the per-draw rates, exponents and saturations as lists."""
    cell = cells.get_cell(p.cell)
    first, last = p.start // BLOCK, -(-p.stop // BLOCK)
    shapes = cell.shapes(n=2, k=p.k)
    chunk = 1 if p.k >= RESIDENT_K else reference_chunk(cell, p.k)[1]
    hidden, whole = Summary(p.l_max, p.threshold), Summary(p.l_max, p.threshold)
    noise = getattr(p, "noise", None)
    readable = decodable.Summary(p.l_max)
    per_draw_lists: Dict[str, List[np.ndarray]] = {name: [] for name in PER_DRAW}
    for a in range(first, last, chunk):
        blocks = range(a, min(a + chunk, last))
        n = min(len(blocks) * BLOCK, p.stop - a * BLOCK)
        drawn = [draw_block(p.cell, p.init, p.k, p.seed, b) for b in blocks]      # float64: the exponents' precision
        batch = {name: torch.cat([block[name] for block in drawn]) for name in shapes}
        d_h, d_s = distances(cell, {name: t.to(DTYPES[p.dtype]) for name, t in batch.items()}, p.l_max, n)
        hidden.add(d_h[:n])
        if d_s is not None:
            whole.add(d_s[:n])
        noisy = min(n, p.noise_draws - a * BLOCK) if noise else 0
        if noisy > 0:
            streams = [cells.stream(p.seed, p.cell, p.init, p.k, "noise", a * BLOCK + i) for i in range(noisy)]
            readable.add(resident.decodability(cell, {name: t.to(DTYPES[p.dtype]) for name, t in batch.items()},
                                               p.l_max, noise, streams, noisy)[:noisy], BLOCK)
        if getattr(p, "lyapunov", False):
            per_draw_lists["draw_rate"].append(memory.draw_rates(d_h[:n], memory.FLOOR[p.dtype]))
            lam, saturated = resident.lyapunov(cell, batch, p.l_max, n)
            lam, saturated = lam[:n], saturated[:n]
            per_draw_lists["draw_lyapunov"].append(lam), per_draw_lists["draw_saturated"].append(saturated)
            per_draw_lists["draw_state_rate"].append(np.full(n, np.nan) if d_s is None
                                                     else memory.draw_rates(d_s[:n], memory.FLOOR[p.dtype]))
            for name, values in zip(("draw_period_u", "draw_period_v", "draw_shift"),
                                    resident.settled(cell, batch, p.l_max, n)):
                per_draw_lists[name].append(values[:n])
    columns = {"l": pa.array(np.arange(1, p.l_max + 1), pa.int32()), **hidden.columns()}
    if cell.memory > 1:
        columns.update(whole.columns("state_"))
    if noise:
        columns.update(readable.columns())
    for name, parts in per_draw_lists.items():
        if parts:
            columns[name] = pa.array([np.concatenate(parts)] + [None] * (p.l_max - 1), pa.list_(pa.float64()))
    return pa.table(columns)


def merge_shards(s: DrawRange, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
    """Merge a group's shard tables (in draw order) into its rows of every table it writes."""
    gain = cells.gain(s.init, s.k)
    out, merged = {}, {}
    for table, prefix in (("discrepancy", ""), ("state_discrepancy", "state_")):
        if f"{prefix}hist_bin" in shard_tables[0].column_names:
            out[table], merged[table] = per_l_rows(s, shard_tables, prefix, gain)
    hist, n, distinct = merged["discrepancy"]
    if "decodable_counts" in shard_tables[0].column_names:
        out["decodable"] = decodable.rows(s, shard_tables, lambda name: _blocks(shard_tables, name, s.l_max), gain)
    per_draw = {name: _draws(shard_tables, name) for name in PER_DRAW}
    out["memory"] = pa.Table.from_pylist(
        [memory.memory_row(s, hist, out["discrepancy"]["q50"].to_numpy(), n, distinct, per_draw["draw_lyapunov"],
                           per_draw["draw_saturated"], gain)],
        schema=memory.MEMORY)
    if per_draw["draw_lyapunov"] is not None:
        count = len(per_draw["draw_rate"])
        keys = {"cell": s.cell, "init": s.init, "gain": gain, "k": s.k, "seed": s.seed, "dtype": s.dtype}
        out["lyapunov"] = pa.table({
            **{key: pa.array([value] * count, memory.LYAPUNOV.field(key).type) for key, value in keys.items()},
            "draw": pa.array(np.arange(count), pa.int32()),
            "lyapunov": pa.array(per_draw["draw_lyapunov"], pa.float64()),
            "rate": pa.array(per_draw["draw_rate"], pa.float64(), from_pandas=True),
            "saturated": pa.array(per_draw["draw_saturated"], pa.float64(), from_pandas=True),
            **settled_columns(per_draw, count),
        }, schema=memory.LYAPUNOV)
    return out


def settled_columns(per_draw: Dict[str, Optional[np.ndarray]], count: int) -> Dict[str, pa.Array]:
    """The lyapunov table's columns of what each draw's trajectories settled on (null where the
    shards were computed before these were measured)."""
    nothing = np.full(count, np.nan)
    state_rate, u, v, shift = (nothing if per_draw[name] is None else per_draw[name]
                               for name in ("draw_state_rate", "draw_period_u", "draw_period_v", "draw_shift"))
    return {"state_rate": pa.array(state_rate, pa.float64(), from_pandas=True),
            "attractor": pa.array([memory.attractor_name(p) for p in u], pa.string()),
            "v_attractor": pa.array([memory.attractor_name(p) for p in v], pa.string()),
            "v_shift": pa.array([None if np.isnan(j) or j < 0 else int(j) for j in shift], pa.int32())}


def per_l_rows(s: DrawRange, shard_tables: List[pa.Table], prefix: str, gain: float):
    """A group's rows of a per-l table from the shard columns named ``prefix``..., and the
    merged (histograms (L, N_BINS), draws (L,), distinct counts (L,)) they were read from."""
    l_max = s.l_max
    blocks = [_blocks(shard_tables, name, l_max) for name in ("block_n", f"{prefix}block_mean", f"{prefix}block_m2")]
    n, mean, m2 = merge_moments(*blocks)
    std = np.sqrt(m2 / np.maximum(n - 1, 1))
    distinct = sum(t.column(f"{prefix}n_distinct").to_numpy() for t in shard_tables)
    hist = np.zeros((l_max, contract.N_BINS), np.int64)
    for t in shard_tables:
        lengths = t.column(f"{prefix}hist_bin").combine_chunks().value_lengths().to_numpy()
        rows = np.repeat(np.arange(l_max), lengths)
        np.add.at(hist, (rows, _values(t, f"{prefix}hist_bin")), _values(t, f"{prefix}hist_count"))
    q = np.array([[contract.quantile(h, p) for p in (0.1, 0.5, 0.9)] for h in hist])

    def const(value, type_):
        return pa.array([value] * l_max, type_)

    table = pa.table({
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
        "gain": const(gain, pa.float64()),
    }, schema=SCHEMA if not prefix else STATE_SCHEMA)
    return table, (hist, n, distinct)


def _draws(tables: List[pa.Table], name: str) -> Optional[np.ndarray]:
    """A per-draw list column (held by each shard's first row) of every shard, in draw order."""
    if not all(name in t.column_names for t in tables):
        return None
    return np.concatenate([np.asarray(t.column(name)[0].as_py(), np.float64) for t in tables])


def _values(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).combine_chunks().flatten().to_numpy().astype(np.int64)


def _blocks(tables: List[pa.Table], name: str, l_max: int) -> np.ndarray:
    """A per-block list column of every shard as one (blocks, L) array, blocks in draw order."""
    per_shard = [t.column(name).combine_chunks().flatten().to_numpy().reshape(l_max, -1) for t in tables]
    return np.concatenate(per_shard, axis=1).T
