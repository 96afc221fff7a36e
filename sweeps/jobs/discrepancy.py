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

A group is one (cell, init, k, seed[, dtype]); a shard is a range of its draws, and what it
measures (``lyapunov``, ``noise``) are fields of its :class:`DrawRange`, read by the one job.
A shard returns the tables :data:`SHARD` declares (packed into its one file by
:class:`sweeps.contract.ShardFormat`): ``moments``, per l the moments of each block of 50
draws and a sparse histogram of ||h_u - h_v|| (:mod:`sweeps.jobs.moments`,
:mod:`sweeps.contract`); ``state_moments``, the same of the whole state's distance, for cells
whose state is more than h (an LSTM's (h, c)); with ``noise``, ``decodable``, per l the moments
and counts of the noisy readout's accuracy (:mod:`sweeps.jobs.decodable`, on the group's first
``noise_draws`` draws); with ``lyapunov``, ``draws``, one row per draw: its largest Lyapunov
exponent, its decay rates of h's distance and of the whole state's, its saturated gates, and
what u's and v's trajectories settled on. The driver merges them in block order into the
group's rows of ``discrepancy``, ``state_discrepancy``, ``decodable``, ``memory`` (decay
rates, :mod:`sweeps.jobs.memory`) and ``lyapunov``.

Shards of an earlier format (format 1: one table, the per-draw values as lists in its first
row) are never read: the format's version is a field of every shard's parameters, so it is part
of the shard's id and of its file's sealed metadata, and a shard file of format 1 is one this
sweep did not plan (left where it is, computed again under its new id). Committed tables
hold no shard format and stay valid: their groups' settings are unchanged.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import torch

import cells

from .. import contract
from ..job import Estimate, Job, register_job
from ..plan import Group, Shard
from ..settings import INT32, Choice, Choices, Families, Flag, Int, Ints, Number, Option
from . import decodable, memory, moments, resident

BLOCK = 50
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

# ---------------------------------------------------------------------- the shard format
MOMENTS = contract.schema([
    ("l", pa.int32(), "length of u and v (steps read)"),
    ("block_n", pa.list_(pa.int32()), "draws in each of the shard's blocks, in draw order"),
    ("block_mean", pa.list_(pa.float64()), "the distance's mean over each block's draws"),
    ("block_m2", pa.list_(pa.float64()), "its sum of squared deviations from that mean, per block "
                                         "(merged by sweeps.jobs.moments)"),
    ("n_distinct", pa.int64(), "the shard's draws whose distance exceeds the threshold"),
    ("hist_bin", pa.list_(pa.int16()), "non-empty bins of the log histogram of the distance over the shard's "
                                       "draws (sweeps.contract)"),
    ("hist_count", pa.list_(pa.int64()), "their counts"),
])
DRAWS = contract.schema([
    ("draw", pa.int32(), "the draw's index in its ensemble"),
    ("rate", pa.float64(), "its decay rate of log ||h_u - h_v|| (sweeps.jobs.memory.draw_rates; NaN: no window)"),
    ("lyapunov", pa.float64(), "its largest Lyapunov exponent (sweeps.jobs.resident.lyapunov)"),
    ("saturated", pa.float64(), "its share of units whose retain gate exceeds 0.99 at l_max (NaN: an ungated cell)"),
    ("state_rate", pa.float64(), "its decay rate of the whole states' distance (NaN: a cell whose state is h)"),
    ("period_u", pa.int32(), "u's period at l_max (sweeps.jobs.memory.period: 1 fixed, p an orbit, 0 neither)"),
    ("period_v", pa.int32(), "v's period"),
    ("shift", pa.int32(), "the shift j of v's last state on u's orbit (sweeps.jobs.memory.phase_shift; -1: none)"),
])
# Version 1 was one table whose first row held the per-draw values as lists.
SHARD = contract.ShardFormat("discrepancy", 2, {"moments": MOMENTS, "state_moments": MOMENTS,
                                                "decodable": decodable.MOMENTS, "draws": DRAWS})


@dataclass(frozen=True, slots=True)
class DrawRange:
    """One shard: draws [start, stop) of the ensemble (cell, init, k, seed), and what is measured
    on them besides D: with ``lyapunov`` each draw's dynamics (table ``draws``), with ``noise``
    the noisy readout of its first ``noise_draws`` draws (table ``decodable``). ``format``, the
    version of :data:`SHARD`, makes a shard of another format another shard (another id)."""

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
    lyapunov: bool = False
    noise: Optional[float] = None
    noise_draws: int = 0
    format: int = SHARD.version

    def shard_tables(self) -> List[str]:
        """The tables of :data:`SHARD` a shard of these parameters returns."""
        return ["moments", *(["state_moments"] if cells.get_cell(self.cell).memory > 1 else []),
                *(["decodable"] if self.noise else []), *(["draws"] if self.lyapunov else [])]


@register_job
class Discrepancy(Job):
    name = command = "discrepancy"
    help = "sweep D(l,k) over cells, inits, k and seed ensembles (and what explains it)"
    schemas = {"discrepancy": SCHEMA, "memory": memory.MEMORY, "state_discrepancy": STATE_SCHEMA,
               "lyapunov": memory.LYAPUNOV, "decodable": decodable.SCHEMA}
    tables = tuple(schemas)
    shard = SHARD
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
                        noise_draws = min(s.noise_draws, s.draws) if s.noise else 0
                        settings = {"draws": s.draws, "l_max": s.l_max, "dtype": s.dtype, "threshold": s.threshold,
                                    **({"lyapunov": True} if s.lyapunov else {}),
                                    **({"noise": s.noise, "noise_draws": noise_draws} if s.noise else {})}
                        shards = tuple(
                            Shard(self.name, name, DrawRange(cell, init, k, seed, s.draws, s.l_max, s.dtype,
                                                             s.threshold, start=a, stop=min(a + s.shard_size, s.draws),
                                                             lyapunov=s.lyapunov, noise=s.noise or None,
                                                             noise_draws=noise_draws))
                            for a in range(0, s.draws, s.shard_size))
                        tables = ("discrepancy", "memory",
                                  *(("state_discrepancy",) if cells.get_cell(cell).memory > 1 else ()),
                                  *(("lyapunov",) if s.lyapunov else ()), *(("decodable",) if s.noise else ()))
                        groups.append(Group(self.name, name, settings, shards, tables))
        return groups

    def compute(self, params: List[DrawRange], states=None) -> List[pa.Table]:
        """The shard tables of each shard, packed (this job never checkpoints)."""
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
            mean, m2 = moments.block_moments(d[i: i + BLOCK])
            self.ns.append(len(d[i: i + BLOCK])), self.means.append(mean), self.m2s.append(m2)
        self.distinct += (d > self.threshold).sum(axis=0)
        b, c = contract.sparse_histograms(d)
        self.bins.append(b), self.counts.append(c)

    def table(self) -> pa.Table:
        """The shard table ``moments`` (or ``state_moments``) of :data:`SHARD`."""
        l_max = len(self.distinct)
        return contract.table(MOMENTS, l_max, {
            "l": np.arange(1, l_max + 1),
            "block_n": [self.ns] * l_max,
            "block_mean": list(np.stack(self.means, axis=1)),
            "block_m2": list(np.stack(self.m2s, axis=1)),
            "n_distinct": self.distinct,
            "hist_bin": [np.concatenate([b[l] for b in self.bins]) for l in range(l_max)],
            "hist_count": [np.concatenate([c[l] for c in self.counts]) for l in range(l_max)],
        })


@torch.inference_mode()
def compute_shard(p: DrawRange) -> pa.Table:
    """One shard's tables (those of :data:`SHARD` that ``p.shard_tables()`` names), packed: a row per l
    of its blocks' moments and its histogram (and the whole state's, for cells whose state is
    more than h), of the noisy readout's moments, and a row per draw of its dynamics."""
    cell = cells.get_cell(p.cell)
    first, last = p.start // BLOCK, -(-p.stop // BLOCK)
    shapes = cell.shapes(n=2, k=p.k)
    chunk = 1 if p.k >= RESIDENT_K else reference_chunk(cell, p.k)[1]
    hidden, whole = Summary(p.l_max, p.threshold), Summary(p.l_max, p.threshold)
    readable = decodable.Summary(p.l_max)
    per_draw: Dict[str, List[np.ndarray]] = {name: [] for name in DRAWS.names}
    for a in range(first, last, chunk):
        blocks = range(a, min(a + chunk, last))
        n = min(len(blocks) * BLOCK, p.stop - a * BLOCK)
        drawn = [draw_block(p.cell, p.init, p.k, p.seed, b) for b in blocks]      # float64: the exponents' precision
        batch = {name: torch.cat([block[name] for block in drawn]) for name in shapes}
        d_h, d_s = distances(cell, {name: t.to(DTYPES[p.dtype]) for name, t in batch.items()}, p.l_max, n)
        hidden.add(d_h[:n])
        if d_s is not None:
            whole.add(d_s[:n])
        noisy = min(n, p.noise_draws - a * BLOCK) if p.noise else 0
        if noisy > 0:
            streams = [cells.stream(p.seed, p.cell, p.init, p.k, "noise", a * BLOCK + i) for i in range(noisy)]
            readable.add(resident.decodability(cell, {name: t.to(DTYPES[p.dtype]) for name, t in batch.items()},
                                               p.l_max, p.noise, streams, noisy)[:noisy], BLOCK)
        if p.lyapunov:
            lam, saturated = resident.lyapunov(cell, batch, p.l_max, n)
            u, v, shift = resident.settled(cell, batch, p.l_max, n)
            floor = memory.FLOOR[p.dtype]
            measured = {"draw": np.arange(a * BLOCK, a * BLOCK + n), "rate": memory.draw_rates(d_h[:n], floor),
                        "lyapunov": lam[:n], "saturated": saturated[:n],
                        "state_rate": np.full(n, np.nan) if d_s is None else memory.draw_rates(d_s[:n], floor),
                        "period_u": u[:n].astype(np.int32), "period_v": v[:n].astype(np.int32),
                        "shift": shift[:n].astype(np.int32)}
            for name, values in measured.items():
                per_draw[name].append(values)
    made = {"moments": hidden.table, "state_moments": whole.table, "decodable": readable.table,
            "draws": lambda: contract.table(DRAWS, p.stop - p.start,
                                            {name: np.concatenate(parts) for name, parts in per_draw.items()})}
    return SHARD.pack({name: made[name]() for name in p.shard_tables()})


def merge_shards(s: DrawRange, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
    """Merge a group's shard tables (in draw order) into its rows of every table it writes;
    ValueError when a shard does not hold the tables of :data:`SHARD` its parameters need."""
    shards = [SHARD.unpack(t, s.shard_tables()) for t in shard_tables]

    def parts(name: str) -> List[pa.Table]:
        return [shard[name] for shard in shards]

    gain = cells.gain(s.init, s.k)
    out = {}
    out["discrepancy"], (hist, n, distinct) = per_l_rows(s, parts("moments"), SCHEMA, gain)
    if "state_moments" in s.shard_tables():
        out["state_discrepancy"], _ = per_l_rows(s, parts("state_moments"), STATE_SCHEMA, gain)
    if s.noise:
        out["decodable"] = decodable.rows(s, parts("decodable"), gain)
    draws = pa.concat_tables(parts("draws")) if s.lyapunov else None

    def per_draw(name: str) -> Optional[np.ndarray]:
        return None if draws is None else draws.column(name).to_numpy()

    out["memory"] = pa.Table.from_pylist(
        [memory.memory_row(s, hist, out["discrepancy"]["q50"].to_numpy(), n, distinct, per_draw("lyapunov"),
                           per_draw("saturated"), gain)],
        schema=memory.MEMORY)
    if draws is not None:
        out["lyapunov"] = contract.table(memory.LYAPUNOV, draws.num_rows, {
            "cell": s.cell, "init": s.init, "gain": gain, "k": s.k, "seed": s.seed, "dtype": s.dtype,
            **{name: per_draw(name) for name in ("draw", "lyapunov", "rate", "saturated", "state_rate")},
            "attractor": [memory.attractor_name(period) for period in per_draw("period_u")],
            "v_attractor": [memory.attractor_name(period) for period in per_draw("period_v")],
            "v_shift": [None if j < 0 else int(j) for j in per_draw("shift")],
        }, nan_is_null=("rate", "saturated", "state_rate"))
    return out


def per_l_rows(s: DrawRange, tables: List[pa.Table], schema: pa.Schema, gain: float):
    """A group's rows of a per-l table of ``schema`` from its shards' ``moments`` (or
    ``state_moments``) tables, and the merged (histograms (L, N_BINS), draws (L,), distinct
    counts (L,)) they were read from."""
    l_max = s.l_max
    n, mean, m2 = moments.merge_tables(tables, l_max)
    distinct = sum(t.column("n_distinct").to_numpy() for t in tables)
    hist = np.zeros((l_max, contract.N_BINS), np.int64)
    for t in tables:
        lengths = t.column("hist_bin").combine_chunks().value_lengths().to_numpy()
        rows = np.repeat(np.arange(l_max), lengths)
        np.add.at(hist, (rows, _values(t, "hist_bin")), _values(t, "hist_count"))
    q = np.array([[contract.quantile(h, p) for p in (0.1, 0.5, 0.9)] for h in hist])
    table = contract.table(schema, l_max, {
        "cell": s.cell, "init": s.init, "k": s.k, "l": np.arange(1, l_max + 1), "seed": s.seed, "dtype": s.dtype,
        "n_draws": n.astype(np.int64), "mean": mean, "std": np.sqrt(m2 / np.maximum(n - 1, 1)),
        "q10": q[:, 0], "q50": q[:, 1], "q90": q[:, 2], "frac_distinct": distinct / n,
        "threshold": s.threshold, "gain": gain,
    })
    return table, (hist, n, distinct)


def _values(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).combine_chunks().flatten().to_numpy().astype(np.int64)
