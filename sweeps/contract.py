"""The table contract: what writers (the jobs) and readers (``analysis``, users) share.

Everything here is plain data and NumPy: no torch, no Ray, no job module, so a reader of the
tables imports it without the training stack.

- :func:`schema`: a table's columns with their documentation, written into every Parquet file
  (``pyarrow.parquet.read_schema(f).field(c).metadata[b"doc"]``); ``lksweep schema --tables``
  prints them all. :func:`table` builds a table of a declared schema, so a writer never
  restates a column's type.
- :class:`ShardFormat`: the tables one shard of a job returns, declared once; the job's
  ``compute`` packs them and its ``finalize`` unpacks them, each checked against its declaration.
- The log-spaced histogram that summarises many non-negative numbers (distances
  ||h_u - h_v||, gradient magnitudes): its bin layout and its quantiles. Integer counts, so
  sums are exact in any order; a quantile is exact to within one bin, a relative error of at
  most 10**(1/BINS_PER_DECADE) - 1 (4.7 %), and exactly 0 when it falls among exact zeros.
  Bins: 0 holds exact zeros, 1 holds (0, 1e-20), 2 + i holds
  [10**(LOG_MIN + i/BINS_PER_DECADE), 10**(LOG_MIN + (i+1)/BINS_PER_DECADE)), the last holds
  everything >= 10**LOG_MAX. LOG_MAX is far above every measured value (distances are at most
  2 sqrt(k); the largest gradient coefficients of N(0,1) initial weights reach about 2e3), so the
  last bin stays empty; a quantile that falls in it is only known to be >= 10**LOG_MAX
  (:func:`beyond` says so).
- The Reber alphabet (the order of the ``output`` and ``probs`` columns) and the probe
  strings of the paper's heatmaps, in the paper's order.
"""
import io
from dataclasses import dataclass
from typing import Any, Collection, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa

# ---------------------------------------------------------------------- schemas
DOC = b"doc"


def schema(columns: Sequence[Tuple[str, pa.DataType, str]]) -> pa.Schema:
    """A table schema from (name, type, documentation) triples."""
    return pa.schema([pa.field(name, type_, metadata={DOC: doc.encode()}) for name, type_, doc in columns])


def describe(s: pa.Schema) -> str:
    """A schema's columns as Markdown lines: name, type, documentation."""
    return "\n".join(f"- `{f.name}` ({f.type}): {(f.metadata or {}).get(DOC, b'').decode()}" for f in s)


def table(s: pa.Schema, rows: int, columns: Mapping[str, Any], nan_is_null: Collection[str] = ()) -> pa.Table:
    """A table of schema ``s`` with ``rows`` rows: each column from ``rows`` values or from one
    value repeated, converted to the column's declared type; NaN becomes null in the columns
    named in ``nan_is_null`` (elsewhere it stays NaN). ValueError names a column missing or
    not declared."""
    if set(columns) != set(s.names):
        raise ValueError(f"columns {sorted(set(columns) - set(s.names))} not declared, "
                         f"{sorted(set(s.names) - set(columns))} missing")

    def values(v):
        return v if isinstance(v, (list, tuple, np.ndarray)) else [v] * rows

    return pa.table({f.name: pa.array(values(columns[f.name]), f.type, from_pandas=f.name in nan_is_null) for f in s},
                    schema=s)


def same_columns(a: pa.Schema, b: pa.Schema) -> bool:
    """Whether two schemas have the same columns, names and types in order (documentation aside)."""
    return a.equals(b, check_metadata=False)


def columns_of(s: pa.Schema) -> str:
    return ", ".join(f"{f.name} ({f.type})" for f in s)


@dataclass(frozen=True)
class ShardFormat:
    """The tables one shard of a job returns: their names and schemas (:func:`schema`).

    A shard file holds one table, so :meth:`pack` stores a shard's tables in one: a row per
    table, its name and its Arrow IPC stream, in the order declared. Both :meth:`pack` (the
    writer) and :meth:`unpack` (the reader) check each table against its declaration: a shard
    whose tables or columns differ is refused with a ValueError that names the difference.
    ``version`` numbers the format: a job whose shard parameters carry it gives a shard of
    another format another id, so shards of two formats are never merged (the discrepancy job).
    """

    job: str
    version: int
    tables: Dict[str, pa.Schema]

    def pack(self, tables: Mapping[str, pa.Table]) -> pa.Table:
        """The shard table holding ``tables`` (a subset of the declared ones)."""
        for name in tables:
            self._check(name, tables[name].schema)
        blobs = []
        for name in (n for n in self.tables if n in tables):
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, tables[name].schema) as writer:
                writer.write_table(tables[name])
            blobs.append((name, sink.getvalue()))
        return pa.table({"table": pa.array([n for n, _ in blobs], pa.string()),
                         "ipc": pa.array([b for _, b in blobs], pa.binary())})

    def unpack(self, shard: pa.Table, expect: Optional[Collection[str]] = None) -> Dict[str, pa.Table]:
        """The tables a shard table holds, each checked against its declaration; with
        ``expect``, exactly those tables."""
        if shard.column_names != ["table", "ipc"]:
            raise ValueError(f"{self._name()}: a shard with columns {', '.join(shard.column_names)} is not of this "
                             f"format (its tables packed as columns table, ipc): written by another version")
        out = {name: pa.ipc.open_stream(blob.as_py()).read_all()
               for name, blob in zip(shard.column("table").to_pylist(), shard.column("ipc"))}
        for name, t in out.items():
            self._check(name, t.schema)
        if expect is not None and set(out) != set(expect):
            raise ValueError(f"{self._name()}: the shard holds tables {', '.join(out) or 'none'} where its settings "
                             f"need {', '.join(expect)}")
        return out

    def _name(self) -> str:
        return f"shard format {self.version} of the {self.job} job"

    def _check(self, name: str, s: pa.Schema) -> None:
        if name not in self.tables:
            raise ValueError(f"{self._name()}: no shard table {name!r}; it declares {', '.join(self.tables)}")
        if not same_columns(s, self.tables[name]):
            raise ValueError(f"{self._name()}: shard table {name!r} has columns {columns_of(s)}, its declaration "
                             f"{columns_of(self.tables[name])}")


# ---------------------------------------------------------------------- histograms
BINS_PER_DECADE = 50
LOG_MIN, LOG_MAX = -20, 8
N_LOG_BINS = (LOG_MAX - LOG_MIN) * BINS_PER_DECADE
N_BINS = N_LOG_BINS + 3


def histogram_bins(d: np.ndarray) -> np.ndarray:
    """Bin index of every value of ``d`` (any shape, values >= 0)."""
    with np.errstate(divide="ignore"):
        pos = np.floor((np.log10(d) - LOG_MIN) * BINS_PER_DECADE)
    bins = np.clip(pos, -1, N_LOG_BINS).astype(np.int64) + 2
    bins[d == 0] = 0
    return bins


def sparse_histograms(d: np.ndarray):
    """Per column of ``d`` (draws, L): sorted (bins, counts) arrays of its non-empty bins."""
    n_cols = d.shape[1]
    keys = histogram_bins(d) + np.arange(n_cols)[None, :] * N_BINS
    uniq, counts = np.unique(keys, return_counts=True)
    cols = uniq // N_BINS
    splits = np.searchsorted(cols, np.arange(1, n_cols))
    bins = np.split((uniq % N_BINS).astype(np.int16), splits)
    return bins, np.split(counts.astype(np.int64), splits)


def dense_histogram(bins_lists, count_lists) -> np.ndarray:
    """Sum sparse histograms (lists of (bins, counts)) into one dense count vector."""
    out = np.zeros(N_BINS, dtype=np.int64)
    for b, c in zip(bins_lists, count_lists):
        np.add.at(out, np.asarray(b, dtype=np.int64), np.asarray(c, dtype=np.int64))
    return out


def quantile(hist: np.ndarray, q: float) -> float:
    """The ``q``-quantile of the values counted in dense ``hist``, interpolated
    geometrically inside its bin."""
    n = hist.sum()
    cum = np.cumsum(hist)
    target = q * n
    b = int(np.searchsorted(cum, max(target, 1), side="left"))
    if b == 0:
        return 0.0
    if b == 1:
        return 10.0**LOG_MIN
    if b == N_BINS - 1:
        return 10.0**LOG_MAX
    before = cum[b - 1]
    frac = min(max((target - before) / hist[b], 0.0), 1.0)
    return float(10.0 ** (LOG_MIN + (b - 2 + frac) / BINS_PER_DECADE))


def beyond(hist: np.ndarray, q: float) -> bool:
    """Whether the ``q``-quantile of dense ``hist`` falls in the last bin, beyond the layout's top:
    :func:`quantile` then returns 10**LOG_MAX, a lower bound."""
    n = hist.sum()
    return n > 0 and int(np.searchsorted(np.cumsum(hist), max(q * n, 1), side="left")) == N_BINS - 1


# What a trajectory settled on (the lyapunov table's attractor columns): two states closer than
# SETTLED (Euclidean, whole state) count as one; periods up to PERIOD_MAX are told apart.
SETTLED = 1e-8
PERIOD_MAX = 8


# ---------------------------------------------------------------------- Reber probes
ALPHABET = "BTSXVPE"                      # one-hot order of the Reber tasks, n = 7
# Fig 3 (outputs) and Fig 4 (hidden states, labelled there by the automaton state reached).
REBER_OUTPUT = ("B", "BT", "BTSSS", "BTX", "BTXXVP", "BTXS", "BP", "BPTT", "BPV", "BPVV")
REBER_HIDDEN = ("B", "BT", "BTSS", "BTX", "BPTTTVP", "BTXS", "BPVV", "BPTTT",
                "BPTTTTVPXTTVPXTTTTTTTTTVPXVPX", "BPV", "BTSSSXXTTTVPXTV")
# Figs 6/7 (outputs) and 8 (hidden states): after the inner E the model must predict P resp. T.
EMBEDDED = ("BPBTXSE", "BTBTXSE")
