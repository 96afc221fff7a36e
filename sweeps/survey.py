"""What an output directory holds: committed groups per table, finished shards per job, and
files found damaged; and, for a planned sweep, what each group still needs.

A survey lists each table directory once and each job's shard directory once (recursively),
reads the index (``sweeps.index``) and trusts a listed file whose size and modification time
are what the index recorded at commit. Every other file (unknown to the index, or changed
since) is opened and checked: its seal, and that it holds what its name says
(``sweeps.fileformat``); with ``verify`` every file is. So on an object store a survey costs a
number of requests that grows with the number of tables and jobs, not of files, and a
file altered in place is found without reading the others.
"""
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from . import index
from .errors import UsageError
from .fileformat import Damaged, check
from .index import Entry
from .plan import Group, Shard
from .store import FileStat, Store

READERS = 16    # files opened at once when checking


@dataclass
class Catalog:
    """What OUT holds for some tables and jobs."""

    store: Store
    groups: Dict[str, Dict[str, Entry]] = field(default_factory=dict)       # table -> group -> its rows
    shards: Dict[str, Dict[str, Dict[str, Entry]]] = field(default_factory=dict)  # job -> group -> id -> entry
    checkpoints: Dict[Tuple[str, str, str], str] = field(default_factory=dict)    # (job, group, id) -> path
    damaged: List[Tuple[str, str]] = field(default_factory=list)            # (path, why), not used
    duplicates: List[Entry] = field(default_factory=list)                   # a group's rows held twice
    live: Dict[str, List[Entry]] = field(default_factory=dict)              # every trusted file's entries
    learned: List[Entry] = field(default_factory=list)                      # checked now, not yet indexed
    index_files: List[str] = field(default_factory=list)
    others: Dict[str, List[Entry]] = field(default_factory=dict)            # indexed files outside the survey


def expected(rel: str) -> Optional[Dict[str, str]]:
    """The identity a committed file must carry, from its path relative to OUT (None: not a
    committed Parquet file of a table or a shard)."""
    parts = rel.split("/")
    name = parts[-1]
    if not name.endswith(".parquet") or name.startswith("_"):
        return None
    stem = name[: -len(".parquet")]
    if len(parts) == 2 and not parts[0].startswith(("_", ".")):
        if stem.startswith("part-"):
            return {"kind": "part", "table": parts[0], "part": stem}
        return {"kind": "table", "table": parts[0], "group": stem}
    if len(parts) == 4 and parts[0] == "_shards":
        return {"kind": "shard", "job": parts[1], "group": parts[2], "shard": stem}
    return None


def survey(store: Store, tables: Iterable[str], jobs: Iterable[str] = (), verify: bool = False) -> Catalog:
    """The catalog of ``tables`` and of ``jobs``' shards in ``store`` (see the module docstring).
    A Parquet file that lksweep did not write is damaged, for the engine and readers alike."""
    known, cat_index = index.read(store)
    cat = Catalog(store, index_files=cat_index)
    listed: Dict[str, FileStat] = {}
    tables, jobs = sorted(set(tables)), sorted(set(jobs))
    for t in tables:
        listed.update(store.scan(store.path(t)))
        cat.groups[t] = {}
    for j in jobs:
        listed.update(store.scan(store.path("_shards", j), recursive=True))
        cat.shards[j] = {}
    to_check = []
    for rel, stat in sorted(listed.items()):
        if rel.endswith(".ckpt") and rel.startswith("_shards/") and rel.count("/") == 3:
            _, job, group, name = rel.split("/")
            cat.checkpoints[(job, group, name[: -len(".ckpt")])] = store.path(rel)
            continue
        expect = expected(rel)
        if expect is None:
            continue
        entries = known.get(rel)
        if entries and not verify and _unchanged(entries[0], stat):
            _add(cat, [_with_mtime(e, stat) for e in entries])
        else:
            to_check.append((rel, stat, expect))
    with ThreadPoolExecutor(READERS) as pool:
        for rel, result in zip([c[0] for c in to_check], pool.map(lambda c: _check(store, *c), to_check)):
            if result is None:
                continue      # gone since listed (a compaction swapped its table): not damaged
            if isinstance(result, str):
                cat.damaged.append((store.path(rel), result))
            else:
                cat.learned += result
                _add(cat, result)
    surveyed = set(listed)
    cat.others = {p: es for p, es in known.items() if p not in surveyed and not inside(p, tables, jobs)}
    return cat


def inside(rel: str, tables: Iterable[str], jobs: Iterable[str]) -> bool:
    """Whether ``rel`` (relative to OUT) is in one of the directories a survey of ``tables``
    and ``jobs`` lists."""
    head = rel.split("/", 2)
    return head[0] in tables or (head[0] == "_shards" and len(head) > 1 and head[1] in jobs)


def _unchanged(e: Entry, stat: FileStat) -> bool:
    return e.size == stat.size and (e.mtime_ns is None or e.mtime_ns == stat.mtime_ns)


def _with_mtime(e: Entry, stat: FileStat) -> Entry:
    if e.mtime_ns is not None:
        return e
    return dataclasses.replace(e, mtime_ns=stat.mtime_ns)


def _check(store: Store, rel: str, stat: FileStat, expect: Dict[str, str]):
    """The index entries of a file after checking it, why it is damaged, or None when it is
    gone."""
    data = store.read_bytes(store.path(rel))
    if data is None:
        return None if not store.exists(store.path(rel)) else "it cannot be read"
    try:
        meta = check(data, expect)
    except Damaged as e:
        return str(e)
    return index.entries_of(rel, len(data), stat.mtime_ns, meta)


def _add(cat: Catalog, entries: List[Entry]) -> None:
    cat.live[entries[0].path] = entries
    for e in entries:
        if e.kind == "shard":
            cat.shards.setdefault(e.job, {}).setdefault(e.group, {})[e.shard] = e
            continue
        held = cat.groups.setdefault(e.table, {})
        if e.group in held:
            # The same group in two files (a compaction interrupted on an object store): the
            # per-group file is the redundant copy.
            first = held[e.group]
            keep, extra = (e, first) if first.kind == "table" and e.kind == "part" else (first, e)
            held[e.group] = keep
            cat.duplicates.append(extra)
        else:
            held[e.group] = e


# ---------------------------------------------------------------------- a planned sweep
@dataclass
class GroupState:
    group: Group
    missing_tables: List[str]
    done: Dict[str, Shard] = field(default_factory=dict)      # shard id -> shard
    todo: List[Shard] = field(default_factory=list)
    conflict: str = ""

    @property
    def committed(self) -> bool:
        return not self.missing_tables and not self.conflict


def describe(settings: Dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def group_state(cat: Catalog, group: Group) -> GroupState:
    """What ``group`` has in the catalog and what it still needs."""
    missing = []
    for table in group.tables:
        held = cat.groups.get(table, {}).get(group.name)
        if held is None:
            missing.append(table)
        elif held.settings_dict != group.settings:
            return GroupState(group, missing, conflict=(
                f"{group.job} group {group.name} already exists in {cat.store.display()} with "
                f"{describe(held.settings_dict)}; this sweep asks for {describe(group.settings)}"))
    state = GroupState(group, missing)
    if not missing:
        return state
    finished = cat.shards.get(group.job, {}).get(group.name, {})
    planned = {s.id: s for s in group.shards}
    for sid, e in finished.items():
        if sid in planned:
            state.done[sid] = planned[sid]
        elif e.settings_dict != group.settings:
            state.conflict = (f"{group.job} group {group.name} has unfinished shards in {cat.store.display()} "
                              f"from a sweep with {describe(e.settings_dict)}; this sweep asks for "
                              f"{describe(group.settings)}")
            return state
    state.todo = [s for s in group.shards if s.id not in state.done]
    return state


def refuse_conflicts(states: List[GroupState]) -> List[GroupState]:
    """The conflicting states; UsageError naming the first (see ``overwrite`` in the runner)."""
    conflicts = [s for s in states if s.conflict]
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise UsageError(f"refused: {conflicts[0].conflict}{more}. Write to a new --out directory, "
                         f"or pass --overwrite to replace those groups")
    return conflicts
