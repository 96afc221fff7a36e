"""``lksweep compact DIR``: rewrite each table's many group files into a few larger Parquet
files, "parts" (``OUT/<table>/part-<generation>-<n>.parquet``), and drop the shards of
committed groups.

A part holds whole groups, in group-name order, at most about ``part_mb`` MiB of Arrow data
each; its footer lists its groups with their settings and row counts (``sweeps.fileformat``),
so a rerun still knows which groups are committed and with which settings, and computes none
of them again. Readers see the same rows before and after (pandas, pyarrow datasets, DuckDB).

On a local disk a table is swapped whole: its parts are written into a hidden directory,
which then trades places with the table's directory in one atomic rename (Linux's
``renameat2(RENAME_EXCHANGE)``; elsewhere two renames, between which the table is briefly
absent, never mixed). A launcher or compaction that finds a swap interrupted by a crash
finishes it (:func:`recover`). On an object store the parts are uploaded, then the group
files deleted: a reader listing the table in between may see a group twice, which lksweep's
own readers drop (``analysis.tables``) and the next launch or compaction deletes.

After compaction a damaged part is set aside and its groups computed again from scratch
(their shards are gone). Compaction holds one table's rows in memory at a time, as a pandas
reader of that table would.
"""
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Set, Tuple

import pyarrow as pa

from . import __version__, console, index
from .backends import LIBC
from .fileformat import Damaged, decode, encode
from .index import Entry
from .status import recorded_groups, sweep_records
from .store import Store
from .survey import expected, survey

log = console.logger(__name__)

PART_MB = 128
STAGE, OLD = ".compacted-", ".precompact-"
RENAME_EXCHANGE = 2


@dataclass
class CompactResult:
    tables: Dict[str, Tuple[int, int, int]] = field(default_factory=dict)   # table -> files before, after, groups
    shards_removed: int = 0
    damaged: List[str] = field(default_factory=list)


def compact(store: Store, part_mb: float = PART_MB) -> CompactResult:
    """Compact every table of ``store`` (see the module docstring); holds OUT's lock. A
    directory without lksweep's sweep records is refused (UsageError), nothing moved."""
    sweep_records(store)
    lock = store.acquire_lock()
    try:
        store.remove_temporaries()
        recover(store)
        tables = [t for t in store.list_dirs(store.root) if not t.startswith(("_", "."))]
        job_names = store.list_dirs(store.path("_shards"))
        cat = survey(store, tables, job_names)
        result = CompactResult()
        gone: Set[str] = set()
        for path, why in cat.damaged:
            store.set_aside(path)
            gone.add(store.rel(path))
            result.damaged.append(f"{store.display(path)}: {why}")
        fresh: List[Entry] = []
        generation = new_generation()
        for table in tables:
            held = cat.groups.get(table, {})
            files = sorted({e.path for e in held.values()} | {e.path for e in cat.duplicates if e.table == table})
            if not held or (len(files) == 1 and held[next(iter(held))].kind == "part"):
                continue
            rows, bad = _read_groups(store, held)
            for path, why in bad:
                store.set_aside(path)
                result.damaged.append(f"{store.display(path)}: {why}")
            for group in set(held) - set(rows):   # set aside: computed again, from its shards if any
                del held[group]
            parts = _parts(table, rows, part_mb * 2**20, generation)
            written = _swap(store, table, parts, files)
            gone |= set(files)
            fresh += written
            result.tables[table] = (len(files), len(parts), len(rows))
        committed = _committed(store, cat)
        for job, groups in cat.shards.items():
            for group, shards in groups.items():
                if (job, group) in committed:
                    store.delete(store.shard_dir(job, group))
                    gone |= {e.path for e in shards.values()}
                    result.shards_removed += len(shards)
        live = {p: es for p, es in {**cat.others, **cat.live}.items() if p not in gone}
        for e in fresh:
            live.setdefault(e.path, []).append(e)
        index.rewrite(store, [e for _, es in sorted(live.items()) for e in es], cat.index_files)
        return result
    finally:
        store.release_lock(lock)


def _committed(store: Store, cat) -> Set[Tuple[str, str]]:
    """(job, group) pairs present in every table their recorded sweep plans them in (a group
    no record plans keeps its shards)."""
    planned, _ = recorded_groups(store)
    out = set()
    for job, groups in cat.shards.items():
        for group in groups:
            g = planned.get((job, group))
            if g is not None and all(group in cat.groups.get(t, {}) for t in g.tables):
                out.add((job, group))
    return out


# What a file must hold for each group the survey was told it holds (by the index, or by the
# footer it checked): compaction seals what it read, so it never takes a count it did not check.
RECORDED = ("digest", "kind", "job", "table", "group", "settings", "spec_hash", "start", "rows")


def _read_groups(store: Store, held: Dict[str, Entry]):
    """Every group's rows of one table, from its files, each checked as a reader checks it and
    compared with what the survey was told; and the files that fail (path, why), whose groups
    are left out, to be computed again."""
    rows: Dict[str, Tuple[Entry, pa.Table]] = {}
    bad = []
    by_file: Dict[str, List[Entry]] = {}
    for e in held.values():
        by_file.setdefault(e.path, []).append(e)
    for path, told in sorted(by_file.items()):
        data = store.read_bytes(store.path(path)) or b""
        try:
            table, meta = decode(data, expected(path))
            read = {e.group: e for e in index.entries_of(path, len(data), None, meta)}
            for e in told:
                differ = [f for f in RECORDED if getattr(read.get(e.group, e), f) != getattr(e, f)]
                if e.group not in read or differ:
                    raise Damaged(f"it does not hold what the index recorded for group {e.group!r} "
                                  f"({', '.join(differ) or 'the group'} differ; the index or the file was altered)")
        except Damaged as e:
            bad.append((store.path(path), str(e)))
            continue
        table = table.replace_schema_metadata(None)
        for e in told:
            r = read[e.group]
            rows[e.group] = (r, table.slice(r.start, r.rows))
    return dict(sorted(rows.items())), bad


def new_generation() -> str:
    """A new generation of part names: the time, then a random tag, so names sort by age."""
    return time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]


def _parts(table: str, rows: Dict[str, Tuple[Entry, pa.Table]], limit: float, generation: str) -> List[Tuple[str, bytes, Dict]]:
    """(name, bytes, sealed metadata) of each part: whole groups, about ``limit`` bytes each."""
    chunks: List[List[str]] = [[]]
    size = 0
    for g, (_, t) in rows.items():
        if chunks[-1] and size + t.nbytes > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(g)
        size += t.nbytes
    parts = []
    for n, names in enumerate(c for c in chunks if c):
        name = f"part-{generation}-{n:05d}"
        data = pa.concat_tables([rows[g][1] for g in names], promote_options="permissive")
        meta = {"version": __version__, "job": rows[names[0]][0].job, "kind": "part", "table": table, "part": name,
                "groups": [{"group": g, "settings": rows[g][0].settings_dict, "spec_hash": rows[g][0].spec_hash,
                            "rows": rows[g][1].num_rows} for g in names]}
        parts.append((name, *encode(data, meta)))
    return parts


def _swap(store: Store, table: str, parts, old_files: Iterable[str]) -> List[Entry]:
    """Put ``parts`` in place of ``table``'s files; returns their index entries."""
    if store.is_local:
        tag = uuid.uuid4().hex[:8]
        build = store.path(f".tmp-compact-{table}-{tag}")
        os.makedirs(build)
        # (renaming the directory keeps the files' times, so the commit's are the live files')
        times = store.commit([(f"{build}/{name}.parquet", data) for name, data, _ in parts]
                             + [(f"{build}/.compacted-{tag}", b"")])[:len(parts)]
        stage = store.path(f"{STAGE}{table}-{tag}")
        os.rename(build, stage)
        _finish(store, table, tag)
    else:
        times = store.commit([(store.table_file(table, name), data) for name, data, _ in parts])
        for rel in old_files:
            store.delete(store.path(rel))
    entries = []
    for (name, data, meta), mtime in zip(parts, times):
        entries += index.entries_of(f"{table}/{name}.parquet", len(data), mtime, meta)
    return entries


def _finish(store: Store, table: str, tag: str) -> None:
    """Swap the staged directory of compaction ``tag`` with ``table``'s, then delete the old."""
    stage, live = store.path(f"{STAGE}{table}-{tag}"), store.path(table)
    if not os.path.exists(live):
        os.rename(stage, live)
    elif not _exchange(stage, live):
        old = store.path(f"{OLD}{table}-{tag}")
        os.rename(live, old)
        try:
            os.rename(stage, live)
        except OSError:
            os.rename(old, live)    # the table as it was, whole; the stage is tried again
            raise
        stage = old
    shutil.rmtree(stage, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Swap two directories atomically (renameat2 RENAME_EXCHANGE); False where unsupported."""
    if LIBC is None or not hasattr(LIBC, "renameat2"):
        return False
    AT_FDCWD = -100
    return LIBC.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) == 0


def recover(store: Store) -> None:
    """Finish or clear the directory swaps of a compaction a crash interrupted (local disks;
    call while holding the lock, after :meth:`Store.remove_temporaries`, which refuses links).

    A stage directory is acted on only when it is one compaction made: its name holds a table's
    name and it holds its marker (not swapped yet: finish the swap) or the table holds it
    (swapped: the stage is the old table, deleted). Anything else named like a stage is left
    alone, with a warning. A swap that fails (the table in use, say) leaves the table as it
    was, whole: the staged parts are dropped and the next compaction makes them again."""
    if not store.is_local or not os.path.isdir(store.root):
        return
    for name in os.listdir(store.root):
        path = store.path(name)
        if name.startswith((OLD, ".tmp-compact-")):
            shutil.rmtree(path, ignore_errors=True)
        elif name.startswith(STAGE):
            table, _, tag = name[len(STAGE):].rpartition("-")
            marker = f".compacted-{tag}"
            if not table or table.startswith(("_", ".")) or not tag:
                log.warning("%s is not a compaction's stage directory; left alone", store.display(path))
            elif os.path.exists(store.path(table, marker)):
                shutil.rmtree(path, ignore_errors=True)     # swapped already: this is the old table
            elif not os.path.exists(store.path(name, marker)):
                log.warning("%s is not a compaction's stage directory; left alone", store.display(path))
            else:
                try:
                    _finish(store, table, tag)
                except OSError as e:
                    log.warning("could not swap %s into place (%s); %s keeps its files, compact it again",
                                store.display(path), e.strerror or e, store.display(store.path(table)))
                    shutil.rmtree(path, ignore_errors=True)


def drop_groups(store: Store, entries: List[Entry]) -> Tuple[Set[str], List[Entry]]:
    """Remove these groups' rows from their files: a group's own file is deleted, a part is
    written again without them. Returns (paths removed, index entries of the new parts)."""
    by_file: Dict[str, List[Entry]] = {}
    for e in entries:
        by_file.setdefault(e.path, []).append(e)
    gone, fresh = set(), []
    for rel, drop in by_file.items():
        if drop[0].kind != "part":
            store.delete(store.path(rel))
            gone.add(rel)
            continue
        table = rel.split("/")[0]
        part, meta = decode(store.read_bytes(store.path(rel)) or b"", expected(rel))
        dropped = {e.group for e in drop}
        keep, start = {}, 0
        for g in meta["groups"]:
            if g["group"] not in dropped:
                keep[g["group"]] = (Entry(rel, 0, None, "", "part", meta["job"], table, g["group"], None,
                                          index.settings_json(g["settings"]), g.get("spec_hash", ""), 0, g["rows"],
                                          meta["version"]),
                                    part.slice(start, g["rows"]).replace_schema_metadata(None))
            start += g["rows"]
        if keep:
            written = _parts(table, keep, float("inf"), new_generation())
            store.commit([(store.table_file(table, n), data) for n, data, _ in written])
            for n, data, m in written:
                fresh += index.entries_of(f"{table}/{n}.parquet", len(data), None, m)
        store.delete(store.path(rel))
        gone.add(rel)
    return gone, fresh
