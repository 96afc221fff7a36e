"""Reading an output directory's Parquet tables, and the intervals the analysis reports.

``load(DIR, table, **filters)`` returns a pandas DataFrame (DIR: a path or a URI such as
``s3://bucket/prefix``, read through pyarrow's filesystems); a filter value that is a list,
tuple, set or range keeps rows whose column is in it, any other value keeps rows equal to
it::

    load("results/paper", "discrepancy", cell="gru", k=[5, 10], init="normal")
    load("results/paper", "runs", task="embedded-reber", protocol="adam")

Intervals (all two-sided, 95 % by default):

- D(l,k) across seed ensembles (:func:`discrepancy_summary`). Each seed is an independent
  ensemble of ``n_draws`` parameter draws and the table holds its mean. With two or more
  ensembles the interval is a **Student-t interval over the ensemble means**
  (mean of means ± t_{S-1} · s/√S): it rests only on the ensembles being independent and
  their means roughly normal, and it shows the real spread across ensembles — which for the
  vanilla cell, whose mean is ruled by rare draws, is far larger than the within-ensemble
  standard error suggests. With a single ensemble there is nothing to spread over, and the
  interval falls back to the **within-ensemble normal interval** mean ± z · std/√n_draws.
  The column ``ci_method`` says which was used. D is non-negative: ``ci_lo`` is clipped at 0.
- Accuracies across training seeds (:func:`mean_ci`): Student-t interval over seeds.
- Success rates (:func:`sweeps.stats.wilson`, the jobs' too): Wilson score interval for x
  successes out of n.
- Two recipes run on the same seeds (so the same initial weights and strings) are compared
  paired (:func:`mcnemar`): the exact McNemar test on the seeds where one succeeds and the other
  does not.

No SciPy: the Student-t quantile is computed here (:func:`t_quantile`) from the closed
form of the t CDF for integer degrees of freedom, inverted by bisection.
"""
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa

from sweeps import console
from sweeps.fileformat import Damaged, decode
from sweeps.stats import wilson, z_quantile
from sweeps.store import Store
from sweeps.survey import expected, survey

log = console.logger(__name__)


class NoData(ValueError):
    """DIR holds no lksweep table, or a table asked for is missing or empty."""


# ---------------------------------------------------------------------- reading
class Corrupt(ValueError):
    """A committed table file that cannot be trusted (truncated, altered, or another file put
    in its place): an error naming it, never a figure quietly drawn from it."""


def available(out: str) -> List[str]:
    """Names of the tables ``out`` holds at least one committed file of."""
    store = Store(out)
    return [t for t in store.list_dirs(store.root) if not t.startswith((".", "_")) and store.list_files(store.path(t))]


def load(out: str, table: str, **filters) -> pd.DataFrame:
    """Table ``table`` of output directory ``out`` (a path or a URI) as a DataFrame, filtered
    by column values. Every file is checked as it is read (its seal, and that it holds the
    groups its name says: ``sweeps.fileformat``); a file without lksweep's seal is damaged; a
    group held by two files (a compaction interrupted on an object store) is read once; a
    table swapped by a compaction while it is read is listed and read again.

    Raises :class:`NoData` when the table has no committed file or a filter names a column the
    table does not have; :class:`Corrupt` when a file is damaged.
    """
    store = Store(out)
    df = _frame(_pieces(store, table))
    for col, want in filters.items():
        if col not in df.columns:
            raise NoData(f"{table}: no column {col!r} to filter on; columns: {', '.join(df.columns)}")
        if isinstance(want, (list, tuple, set, frozenset, range, np.ndarray, pd.Series)):
            df = df[df[col].isin(list(want))]
        else:
            df = df[df[col] == want]
    return df.reset_index(drop=True)


READERS = 8
# A table swapped by a compaction while it is read is listed and read again, up to this often.
RELISTS = 5


class _Vanished(Exception):
    """A listed file that was gone when read (a compaction swapped the table meanwhile)."""


def _pieces(store: Store, table: str) -> List[Tuple[str, pa.Table]]:
    """(file, rows) of each group of ``table``, once, every file checked."""
    for _ in range(RELISTS):
        names = store.list_files(store.path(table))
        if not names:
            held = available(store.uri)
            raise NoData(f"{store.display()} holds no {table!r} table" + (f" (it holds: {', '.join(held)})" if held else ""))
        # parts first: a group also found in its own file is the redundant copy
        names.sort(key=lambda n: (not n.startswith("part-"), n))
        try:
            with ThreadPoolExecutor(READERS) as pool:
                read = list(pool.map(lambda n: _read(store, table, n), names))
        except _Vanished:
            continue
        seen, pieces = set(), []
        for name, (t, groups) in zip(names, read):
            start = 0
            for group, rows in groups:
                if group not in seen:
                    seen.add(group)
                    pieces.append((store.display(store.path(table, name)), t.slice(start, rows)))
                start += rows
        return pieces
    raise Corrupt(f"{store.display(store.path(table))} kept changing while it was read (a compaction or a launch "
                  f"rewriting it); read it again when that has finished")


def _read(store: Store, table: str, name: str):
    """(table, [(group, rows)]) of one file, checked."""
    rel = f"{table}/{name}"
    path = store.path(rel)
    data = store.read_bytes(path)
    if data is None and not store.exists(path):
        raise _Vanished(path)
    try:
        t, meta = decode(data if data is not None else b"", expected(rel))
    except Damaged as e:
        raise Corrupt(f"{store.display(path)} is damaged: {e}; run the sweep's command again with "
                      f"--verify to recompute it") from None
    if meta["kind"] == "part":
        return t, [(g["group"], g["rows"]) for g in meta["groups"]]
    return t, [(meta["group"], t.num_rows)]


def _frame(pieces: List[Tuple[str, pa.Table]]) -> pd.DataFrame:
    """The pieces as one frame; Corrupt naming a file whose column types cannot be read with
    the others' (columns one file lacks are null there; numbers widen)."""
    try:
        return pa.concat_tables([p.replace_schema_metadata(None) for _, p in pieces],
                                promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        why = str(e).splitlines()[0]
    types: Dict[str, Dict[pa.DataType, List[str]]] = {}
    for path, p in pieces:
        for f in p.schema:
            types.setdefault(f.name, {}).setdefault(f.type, []).append(path)
    conflict = next(((c, t) for c, t in types.items() if len(t) > 1), None)
    if conflict is None:
        raise Corrupt(f"the files of {pieces[0][0].rsplit('/', 1)[0]} cannot be read together ({why})")
    col, held = conflict
    common = max(held, key=lambda t: len(held[t]))
    odd, path = next((t, paths[0]) for t, paths in held.items() if t != common)
    raise Corrupt(f"{path} holds column {col!r} as {odd} where the table's other files hold {common}; "
                  f"it cannot be read with them (move it out of the table, or run the sweep's command with "
                  f"--overwrite to recompute its groups)")


def planned_groups(out: str) -> Tuple[List[Dict], Dict[str, set]]:
    """(the sweep records of ``out``, the groups they plan per table), from OUT/_sweeps/."""
    store = Store(out)
    sweeps, planned = [], {}
    for name in store.list_files(store.path("_sweeps"), suffix=".json"):
        rec = store.read_json(store.path("_sweeps", name))
        if not isinstance(rec, dict) or not isinstance(rec.get("spec"), dict) or not _planned(rec.get("planned", {})):
            # unreadable, or written by another lksweep version
            log.warning("lksweep: skipping sweep record %s: not the spec and planned groups of a sweep",
                        store.display(store.path("_sweeps", name)))
            continue
        sweeps.append({"hash": name[:-5], "spec": rec["spec"]})
        for job in rec.get("planned", {}).values():
            for table in job["tables"]:
                planned.setdefault(table, set()).update(job["groups"])
    return sweeps, planned


def _planned(planned) -> bool:
    """Whether a record's ``planned`` is what ``sweeps.runner.record`` writes: per job, lists
    of table and group names."""
    return isinstance(planned, dict) and all(
        isinstance(job, dict) and all(isinstance(job.get(key), list) and all(isinstance(n, str) for n in job[key])
                                      for key in ("tables", "groups"))
        for job in planned.values())


def provenance(out: str) -> Dict:
    """What the report lists about ``out``: sweep specs, package versions, committed groups and
    the groups the recorded sweeps plan per table (read from their records, not re-planned).
    Committed groups come from the listing and the index (``sweeps.survey``)."""
    store = Store(out)
    sweeps, planned = planned_groups(out)
    tables = available(out)
    cat = survey(store, tables)
    groups, versions = {}, {}
    for t in tables:
        held = cat.groups.get(t, {})
        groups[t] = len(held)
        for e in held.values():
            versions[e.version] = versions.get(e.version, 0) + 1
    return {"sweeps": sweeps, "groups": groups, "versions": versions,
            "planned": {t: len(names) for t, names in planned.items()},
            "partial": {t: (groups.get(t, 0), len(names)) for t, names in planned.items() if groups.get(t, 0) < len(names)}}


def pick_dtype(summary: pd.DataFrame) -> pd.DataFrame:
    """float64 rows when there are any (the default and the reference), else all rows."""
    if "dtype" in summary.columns and (summary["dtype"] == "float64").any():
        return summary[summary["dtype"] == "float64"]
    return summary


# ---------------------------------------------------------------------- intervals
def _t_cdf(t: float, df: int) -> float:
    """CDF of Student's t with integer ``df`` (closed form, Abramowitz & Stegun 26.7.3/4)."""
    theta = math.atan2(t, math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 1:
        total, term = 0.0, c
        if df > 1:
            total = term
            for j in range(3, df - 1, 2):
                term *= c * c * (j - 1) / j
                total += term
        a = (2 / math.pi) * (theta + s * total) if df > 1 else (2 / math.pi) * theta
    else:
        total, term = 1.0, 1.0
        for j in range(2, df - 1, 2):
            term *= c * c * (j - 1) / j
            total += term
        a = s * total
    return 0.5 + 0.5 * a


def t_quantile(p: float, df: int) -> float:
    """The ``p``-quantile of Student's t with ``df`` >= 1 degrees of freedom (bisection)."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df > 1000:
        return z_quantile(p)
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_ci(values: Iterable[float], level: float = 0.95):
    """(mean, lo, hi) of ``values``: Student-t interval; (mean, nan, nan) for fewer than 2."""
    x = np.asarray(list(values), dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return (math.nan, math.nan, math.nan)
    m = float(x.mean())
    if len(x) < 2:
        return (m, math.nan, math.nan)
    half = t_quantile(0.5 + level / 2, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return (m, m - half, m + half)


def mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (one succeeds, the
    other fails; and the reverse): under no difference each discordant pair goes either way with
    probability 1/2, so p = min(1, 2 P(X <= min(b, c))) for X ~ Binomial(b + c, 1/2); 1 if none."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


# ---------------------------------------------------------------------- aggregation
# Ensembles are combined only when they measured the same thing: a frac_distinct with
# another threshold is another quantity.
D_KEYS = ["cell", "init", "dtype", "threshold", "k", "l"]


def discrepancy_summary(df: pd.DataFrame, level: float = 0.95, method: str = "auto") -> pd.DataFrame:
    """One row per (cell, init, dtype, k, l) of a ``discrepancy`` frame, seeds combined.

    Columns: n_seeds, n_draws (total), mean (mean of the ensemble means), ci_lo, ci_hi,
    ci_method ('seeds': t-interval over ensemble means; 'draws': within-ensemble normal
    interval, used when there is one ensemble or ``method='draws'``), q10, q50, q90 (means
    over ensembles of each ensemble's quantile: the table keeps no pooled histogram),
    frac_distinct (share of all draws). Ensemble means are weighted equally.
    """
    if method not in ("auto", "seeds", "draws"):
        raise ValueError("method: auto, seeds or draws")
    keys = [k for k in D_KEYS if k in df.columns]
    z = z_quantile(0.5 + level / 2)
    rows = []
    for key, g in df.groupby(keys, sort=True):
        n_seeds = len(g)
        means = g["mean"].to_numpy(float)
        n = g["n_draws"].to_numpy(float)
        mean = float(means.mean())
        if n_seeds >= 2 and method != "draws":
            _, lo, hi = mean_ci(means, level)
            how = "seeds"
        else:
            # pooled within-ensemble variance (exact for equal-size ensembles with equal means)
            total = n.sum()
            pooled_mean = float((means * n).sum() / total)
            ss = ((g["std"].to_numpy(float) ** 2) * (n - 1)).sum() + (n * (means - pooled_mean) ** 2).sum()
            sd = math.sqrt(ss / max(total - 1, 1))
            mean = pooled_mean
            half = z * sd / math.sqrt(total)
            lo, hi = mean - half, mean + half
            how = "draws"
        rows.append({**dict(zip(keys, key)), "n_seeds": n_seeds, "n_draws": int(n.sum()), "mean": mean,
                     "ci_lo": max(0.0, lo), "ci_hi": hi, "ci_method": how,
                     "q10": float(g["q10"].mean()), "q50": float(g["q50"].mean()), "q90": float(g["q90"].mean()),
                     "frac_distinct": float((g["frac_distinct"] * g["n_draws"]).sum() / n.sum())})
    return pd.DataFrame(rows)


def grid(summary: pd.DataFrame, value: str, index: str = "k", columns: str = "l") -> pd.DataFrame:
    """A (k x l) pivot of one column of a single cell/init's summary."""
    return summary.pivot(index=index, columns=columns, values=value).sort_index().sort_index(axis=1)


def rate_summary(df: pd.DataFrame, by: List[str], success: str, level: float = 0.95) -> pd.DataFrame:
    """Success rates with Wilson intervals: one row per ``by`` group of a frame whose boolean
    column ``success`` says whether each run (training seed) succeeded."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        x, n = int(g[success].sum()), len(g)
        lo, hi = wilson(x, n, level)
        rows.append({**dict(zip(by, key)), "successes": x, "n": n, "rate": x / n if n else math.nan,
                     "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=[*by, "successes", "n", "rate", "lo", "hi"])


def accuracy_summary(df: pd.DataFrame, by: List[str], column: str, level: float = 0.95) -> pd.DataFrame:
    """Mean of ``column`` across runs with a Student-t interval, per ``by`` group."""
    rows = []
    for key, g in df.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        m, lo, hi = mean_ci(g[column], level)
        rows.append({**dict(zip(by, key)), "n": int(g[column].notna().sum()), "mean": m, "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "lo", "hi"])
