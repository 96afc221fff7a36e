"""The index of an output directory: what each committed file holds, so that a survey learns
which groups and shards are committed from one listing per directory and a few index files,
instead of opening every file.

``OUT/_index/`` holds Parquet files of :data:`SCHEMA` rows, one per (file, group): the file's
path relative to OUT, size and modification time as committed, the seal its footer carries,
and its identity (kind, job, table, group, shard, settings, rows of the group in the file). A
launcher appends a segment every :data:`SEGMENT_S` seconds and when it ends; a launcher that
ends with more than one index file merges them into one base (:func:`rewrite`). The index is a
cache: a file it does not know, or whose size or modification time differ from what it
recorded, is opened and checked (``sweeps.survey``); an unreadable index file is ignored.
"""
import json
import time
import uuid
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

import pyarrow as pa

from . import __version__
from .fileformat import Damaged, decode, encode
from .store import Store

DIR = "_index"
SEGMENT_S = 30.0

SCHEMA = pa.schema([
    ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("digest", pa.string()),
    ("kind", pa.string()), ("job", pa.string()), ("table", pa.string()), ("group", pa.string()),
    ("shard", pa.string()), ("settings", pa.string()), ("spec_hash", pa.string()),
    ("start", pa.int64()), ("rows", pa.int64()), ("version", pa.string()),
])


@dataclass(frozen=True, slots=True)
class Entry:
    """One group's rows in one committed file (a shard file: the shard's rows)."""

    path: str                 # relative to OUT
    size: int
    mtime_ns: Optional[int]   # None until a listing tells it (object stores)
    digest: str
    kind: str                 # "table", "part" or "shard"
    job: str
    table: Optional[str]
    group: str
    shard: Optional[str]
    settings: str             # the group's settings, canonical JSON
    spec_hash: str
    start: int                # first row of the group in the file
    rows: int
    version: str              # of the lksweep that wrote the file

    @property
    def settings_dict(self) -> Dict:
        return json.loads(self.settings)


def settings_json(settings: Dict) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def entries_of(path: str, size: int, mtime_ns: Optional[int], meta: Dict, settings: str = "") -> List[Entry]:
    """The index rows of a committed file, from its footer metadata (``settings``: the
    group's settings as :func:`settings_json` gives them, when the caller has them already)."""
    common = dict(path=path, size=size, mtime_ns=mtime_ns, digest=meta["seal"], kind=meta["kind"],
                  job=meta["job"], table=meta.get("table"), version=meta.get("version", "unknown"))
    if meta["kind"] == "part":
        out, start = [], 0
        for g in meta["groups"]:
            out.append(Entry(**common, group=g["group"], shard=None, settings=settings_json(g["settings"]),
                             spec_hash=g.get("spec_hash", ""), start=start, rows=g["rows"]))
            start += g["rows"]
        return out
    return [Entry(**common, group=meta["group"], shard=meta.get("shard"), settings=settings or settings_json(meta["settings"]),
                  spec_hash=meta.get("spec_hash", ""), start=0, rows=meta["rows"])]


def read(store: Store) -> Tuple[Dict[str, List[Entry]], List[str]]:
    """(entries by file path, index file paths read). Later files win for a path."""
    names = store.list_files(store.path(DIR))
    by_path: Dict[str, List[Entry]] = {}
    for name in names:
        data = store.read_bytes(store.path(DIR, name))
        try:
            table, _ = decode(data or b"", {"kind": "index"})
        except Damaged:
            continue   # a cache: the files it described are checked one by one instead
        fresh: Dict[str, List[Entry]] = {}
        columns = [table.column(name).to_pylist() for name in SCHEMA.names]
        for row in zip(*columns):
            e = Entry(*row)
            fresh.setdefault(e.path, []).append(e)
        by_path.update(fresh)
    return by_path, [store.path(DIR, n) for n in names]


def _encode(entries: List[Entry]) -> bytes:
    table = pa.table({name: [getattr(e, name) for e in entries] for name in SCHEMA.names}, schema=SCHEMA)
    return encode(table, {"kind": "index", "job": "", "version": __version__})[0]


def _name(kind: str) -> str:
    """Index file names sort in the order they were written (later entries win)."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}-{kind}-{uuid.uuid4().hex[:6]}.parquet"


def write_segment(store: Store, entries: List[Entry]) -> None:
    """Record ``entries`` (files committed since the last segment)."""
    if entries:
        store.write_bytes(store.path(DIR, _name("seg")), _encode(entries))


def rewrite(store: Store, entries: List[Entry], replaces: Iterable[str]) -> None:
    """Write one base holding ``entries`` (every live entry), then delete the index files it
    ``replaces`` (a crash in between leaves both, which say the same)."""
    store.write_bytes(store.path(DIR, _name("base")), _encode(entries))
    for path in replaces:
        store.delete(path)
