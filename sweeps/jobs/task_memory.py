"""Memory of trained networks on the task's own inputs: the ``task_memory`` table.

For every embedded-Reber run of a training directory, at both stages (``init``, the initial
model; ``trained``, the selected one, both from its ``weights`` table), the same inner Reber
strings are read after ``B T`` and after ``B P``: the two embedded strings differ only in the
outer symbol the network must carry across the inner one. Per step l of the inner string (h
after its l-th symbol):

- the distance ||h_T - h_P||: the discrepancy D of the paper, on the task's inputs;
- the finite-time largest Lyapunov exponent along the actual input sequence (after ``B T``):
  (1/l) log ||J_l ... J_1 δ||, J_t the Jacobian of the step at the real input x_t and state,
  δ the unit direction of s_P - s_T after the outer symbol, carried as the imaginary part of the
  state as in :func:`sweeps.jobs.resident.lyapunov` (renormalised every step);
- with ``noise``, ``decodable``: N(0, σ²) added to the state at every step of ``REPEATS`` runs
  after T and as many after P, and the held-out accuracy of the linear readout of
  :func:`sweeps.jobs.decodable.accuracy` telling them apart (1/2: the outer symbol is lost).

Quantiles are over the strings that reach step l (``n_strings``). The strings come from a
stream of the run's ``data_seed``, so every run of a directory and both stages read the same
strings (and the same noise: paired comparisons). Everything is computed in float64 (a float32
run's weights are exact in float64).

A group is one run; its settings hold the digests of the run's committed ``runs`` and
``weights`` files, and its shard's parameters the weights themselves: a retrained run is
another group's settings (refused, or replaced under ``--overwrite``), never mixed, and
workers need no access to the training directory. It runs as a stage after the training job
(:mod:`sweeps.stages`) or on its own (``lksweep task-memory --source DIR``).
"""
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa

import cells

from .. import contract, stages
from ..errors import UsageError, shown
from ..job import Job, register_job
from ..plan import Group, Shard
from ..settings import Int, Kind, Number, Option
from . import decodable
from .resident import EPS
from .training import reber
from .training.tables import KEY

STAGES = ("init", "trained")
OUTER = "TP"          # the two outer symbols: the first half of every batch reads T, the second P


@dataclass(frozen=True)
class Directory(Kind):
    """A directory path or URI (a local path is made absolute): text that is not blank."""

    type: ClassVar[Any] = str

    def parse(self, value, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{key}: expected a directory path or a URI, got {shown(value)}")
        return stages.resolve(value.strip())

    def schema(self) -> Dict:
        return {"type": "string", "pattern": r"\S"}


@dataclass(frozen=True)
class Run:
    """A shard: one trained run, both stages. ``weights``: (stage, tensor, shape, values)."""

    run_id: str
    key: Tuple[Tuple[str, object], ...]       # the run's key columns of the training tables
    cell: str
    data_seed: int
    strings: int
    noise: Optional[float]
    inputs: Tuple[Tuple[str, str], ...]       # (table, digest of the file read)
    weights: Tuple[Tuple[str, str, Tuple[int, ...], Tuple[float, ...]], ...]


SCHEMA = contract.schema(KEY + [
    ("stage", pa.string(), "init (the initial model) or trained (the selected model)"),
    ("l", pa.int32(), "step of the inner string: h after its l-th symbol (its B is l = 1)"),
    ("n_strings", pa.int32(), "inner strings at least l symbols long (the quantiles are over them)"),
    ("strings", pa.int32(), "inner strings drawn (from a stream of data_seed, the same for every run and stage)"),
    ("data_seed", pa.int32(), "the run's data seed"),
    ("distance_mean", pa.float64(), "mean over the strings of ||h_T - h_P||: the same inner string read after B T "
                                    "and after B P"),
    ("distance_q10", pa.float64(), "10 % quantile over the strings (linear interpolation)"),
    ("distance_q50", pa.float64(), "median over the strings"),
    ("distance_q90", pa.float64(), "90 % quantile over the strings"),
    ("lyapunov_q10", pa.float64(), "10 % quantile over the strings of the finite-time largest Lyapunov exponent "
                                   "(1/l) log ||J_l ... J_1 δ|| along B T + the inner string (δ: the direction of "
                                   "s_P - s_T after the outer symbol; natural log per step)"),
    ("lyapunov_q50", pa.float64(), "its median over the strings"),
    ("lyapunov_q90", pa.float64(), "its 90 % quantile over the strings"),
    ("noise", pa.float64(), "σ of the noise N(0, σ²) added to the state every step (null: not measured)"),
    ("decodable", pa.float64(), "mean over the strings of the held-out accuracy of a linear readout (diagonal "
                                "LDA) telling 16 noisy runs after T from 16 after P at step l: 1/2 the outer "
                                "symbol is lost, near 1 kept (null without noise)"),
])
SHARD = contract.ShardFormat("task_memory", 1, {"task_memory": SCHEMA})     # a run's rows, as committed


@register_job
class TaskMemory(Job):
    name = "task_memory"
    command = "task-memory"
    help = "memory of trained and initial networks on the task's inputs (a stage after training)"
    tables = ("task_memory",)
    schemas = {"task_memory": SCHEMA}
    shard = SHARD
    after = ("training",)
    options = (
        Option("source", Directory(), "the training directory to read (default in a spec with a training "
                                      "section: the sweep's own output)", None),
        Option("strings", Int(minimum=2), "inner Reber strings read after each outer symbol", 64),
        Option("noise", Number(), "σ of the Gaussian noise added to the state every step of 16 noisy runs "
                                  "after each outer symbol; the readout's accuracy goes to column decodable "
                                  "(off unless given)", None),
    )

    def plan(self, s) -> List[Group]:
        """One group per embedded-Reber run of ``source`` (none while the stage's source is
        not known yet: :mod:`sweeps.stages` plans it after its earlier stage)."""
        if s.source is None:
            return []
        groups = []
        for name, run in stages.inputs(s.source, ("runs", "weights")).items():
            shard = measured(name, run.tables["runs"], run.tables["weights"], run.digests, s.strings, s.noise)
            if shard is None:
                continue          # a plain Reber string has no outer symbol to remember
            settings = {"runs": run.digests["runs"], "weights": run.digests["weights"], "strings": s.strings,
                        "noise": s.noise, "data_seed": shard.data_seed}
            groups.append(Group(self.name, name, settings, (Shard(self.name, name, shard),), self.tables))
        if not groups:
            raise UsageError(f"source: {s.source} holds no embedded-reber training runs (task_memory reads the "
                             f"outer symbol's memory)")
        return groups

    def compute(self, runs: Sequence[Run], states) -> List[pa.Table]:
        return [SHARD.pack({"task_memory": table(run)}) for run in runs]

    def finalize(self, group: Group, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
        return SHARD.unpack(shard_tables[0], self.tables)


def measured(name: str, runs: pa.Table, weights: pa.Table, digests: Dict[str, str], strings: int,
             noise: Optional[float]) -> Optional[Run]:
    """The shard of one run from its rows of ``runs`` and ``weights`` (None: not embedded Reber)."""
    (row,) = runs.to_pylist()
    if row["task"] != "embedded-reber":
        return None
    tensors = tuple((stage, tensor, tuple(shape), tuple(values)) for stage, tensor, shape, values in zip(
        *(weights.column(c).to_pylist() for c in ("stage", "tensor", "shape", "values"))))
    return Run(name, tuple((c, row[c]) for c, _, _ in KEY), row["cell"], row["data_seed"], strings, noise,
               tuple(sorted(digests.items())), tensors)


def inner_strings(data_seed: int, n: int) -> List[str]:
    rng = cells.stream("task-memory", data_seed)
    return [reber.sample(rng) for _ in range(n)]


def noise_streams(data_seed: int, n: int) -> List[np.random.Generator]:
    return [cells.stream("task-memory", "noise", data_seed, i) for i in range(n)]


def parameters(run: Run) -> Dict[str, np.ndarray]:
    """Both stages' parameters as a two-member ensemble (init, trained) of NumPy arrays, float64."""
    tensors: Dict[str, Dict[str, np.ndarray]] = {}
    for stage, tensor, shape, values in run.weights:
        tensors.setdefault(tensor, {})[stage] = np.array(values, np.float64).reshape(shape)
    return {tensor: np.stack([by_stage[st] for st in STAGES]) for tensor, by_stage in tensors.items()}


def table(run: Run) -> pa.Table:
    """The run's rows: both stages, every l."""
    strings = inner_strings(run.data_seed, run.strings)
    m = measure(cells.get_cell(run.cell), parameters(run), strings, run.noise,
                noise_streams(run.data_seed, run.strings) if run.noise else None)
    lengths = np.array([len(s) for s in strings])
    return pa.concat_tables([rows(run, stage, lengths, {name: v[i] for name, v in m.items()})
                             for i, stage in enumerate(STAGES)])


def one_hot(sequences: Sequence[str]) -> np.ndarray:
    """(steps, B, 7) inputs, zero past a sequence's end."""
    x = np.zeros((max(map(len, sequences)), len(sequences), len(contract.ALPHABET)))
    for b, seq in enumerate(sequences):
        x[np.arange(len(seq)), b, [reber.INDEX[c] for c in seq]] = 1.0
    return x


def norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt((v**2).sum(-1))


def measure(cell: cells.Cell, p: Dict[str, np.ndarray], strings: Sequence[str], noise: Optional[float],
            streams: Optional[Sequence[np.random.Generator]]) -> Dict[str, np.ndarray]:
    """Per member of the ensemble ``p``, string and step of the inner string, (E, S, L) (NaN
    past a string's end): the distance, the finite-time exponent and, with ``noise``, the
    readout's accuracy. One complex batch carries both runs of every string, the tangent in
    the imaginary part of the runs after T (those after P carry none)."""
    n, length = len(strings), max(map(len, strings))
    x = one_hot([f"B{a}{s}" for a in OUTER for s in strings])            # (2 + L, 2S, 7)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        s = cell.step(p, x[1], cell.step(p, x[0], np.zeros((len(p["O"]), 2 * n, cell.memory * p["O"].shape[-1]))))
        gap = s[:, n:] - s[:, :n]
        size = norm(gap)[..., None]
        delta = np.where(size > 0, gap / np.where(size > 0, size, 1), 1 / np.sqrt(gap.shape[-1]))
        s = s.astype(complex)
        distance, log_growth = np.empty((2, len(s), n, length))
        for t in range(length):
            s[:, :n] += 1j * EPS * delta
            s = cell.step(p, x[2 + t], s)
            h = cell.hidden(s.real)
            distance[..., t] = norm(h[:, :n] - h[:, n:])
            tangent = s[:, :n].imag / EPS
            growth = norm(tangent)[..., None]
            log_growth[..., t] = np.log(growth[..., 0])
            delta = np.where(growth > 0, tangent / np.where(growth > 0, growth, 1), delta)
            s = s.real.astype(complex)
        out = {"distance": distance, "lyapunov": np.cumsum(log_growth, -1) / np.arange(1, length + 1)}
        if noise:
            out["decodable"] = noisy(cell, p, strings, noise, streams)
    past = np.arange(1, length + 1) > np.array([len(s) for s in strings])[:, None]
    return {name: np.where(past, np.nan, v) for name, v in out.items()}


def noisy(cell: cells.Cell, p: Dict[str, np.ndarray], strings: Sequence[str], noise: float,
          streams: Sequence[np.random.Generator]) -> np.ndarray:
    """(E, S, L): per string, ``REPEATS`` runs after B T and as many after B P, N(0, noise²)
    added to the state after every step (string i's noise from ``streams[i]``, an array
    (2 REPEATS, width) a step: T's repeats, then P's; the same for every member), and the
    readout's held-out accuracy at each step (NaN past the string's end).

    Most inner strings are short and a few long, so the runs step longest string first and
    each step carries only the strings still running: a prefix of the batch."""
    n, length, r = len(strings), max(map(len, strings)), decodable.REPEATS
    e, k = p["O"].shape[0], p["O"].shape[-1]
    width = cell.memory * k
    lengths = np.array([len(s) for s in strings])
    order = np.argsort(-lengths, kind="stable")
    # String-major, (S, 2R), longest first: string order[i]'s R runs after T, then its R after P.
    x = one_hot([f"B{a}{strings[i]}" for a in OUTER for i in order])[:, [j // r * n + i for i in range(n)
                                                                         for j in range(2 * r)]]
    kicks = np.zeros((2 + length, n, 2 * r, width))
    for i, at in enumerate(order):
        kicks[: 2 + lengths[at], i] = noise * streams[at].standard_normal((2 + lengths[at], 2 * r, width))
    running = (lengths[order][None, :] >= np.arange(1, length + 1)[:, None]).sum(1)     # (L,) strings at step l
    s = np.zeros((e, n * 2 * r, width))
    acc = np.full((e, n, length), np.nan)
    for t in range(2 + length):
        m = n if t < 2 else running[t - 2]
        s = cell.step(p, x[t, : m * 2 * r], s[:, : m * 2 * r]) + kicks[t, :m].reshape(m * 2 * r, width)
        if t >= 2:
            acc[:, :m, t - 2] = decodable.accuracy(cell.hidden(s).reshape(e, m, 2 * r, k))
    out = np.empty_like(acc)
    out[:, order] = acc
    return out


def quantile(ordered: np.ndarray, counts: np.ndarray, level: float) -> np.ndarray:
    """Per column, the ``level`` quantile of its first ``counts`` values (``ordered`` sorted
    along axis 0, NaN last), interpolated linearly as ``numpy.quantile`` does by default."""
    at = level * (counts - 1)
    lo = np.floor(at).astype(int)
    hi = np.minimum(lo + 1, counts - 1)
    cols = np.arange(ordered.shape[1])
    a, b = ordered[lo, cols], ordered[hi, cols]
    return np.where(lo == hi, a, a + (at - lo) * (b - a))


def rows(run: Run, stage: str, lengths: np.ndarray, m: Dict[str, np.ndarray]) -> pa.Table:
    length = m["distance"].shape[1]
    reach = (lengths[:, None] >= np.arange(1, length + 1)[None, :]).sum(0)

    def q(name, level):
        return quantile(np.sort(m[name], 0), reach, level)

    return contract.table(SCHEMA, length, {
        **dict(run.key), "stage": stage, "l": np.arange(1, length + 1), "n_strings": reach, "strings": run.strings,
        "data_seed": run.data_seed, "distance_mean": np.nanmean(m["distance"], 0),
        **{f"distance_q{int(100 * v)}": q("distance", v) for v in (0.1, 0.5, 0.9)},
        **{f"lyapunov_q{int(100 * v)}": q("lyapunov", v) for v in (0.1, 0.5, 0.9)},
        "noise": run.noise, "decodable": np.nanmean(m["decodable"], 0) if run.noise else None,
    })
