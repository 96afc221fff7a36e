"""What a launch writes to OUT: committed files, checkpoints, damaged files set aside, the index.

The committer is the runner's only writer. It commits the files of task outputs as one batch
(``Store.commit``: one sync per batch), checks a checkpoint before a shard resumes from it,
sets damaged files aside (``OUT/_damaged/``, said once each) and records what it commits in
the index (``sweeps.index``: a segment every ``SEGMENT_S`` seconds, merged into one base when
the launch ends). It keeps this launch's shard files in memory until their group is merged.
"""
import dataclasses
import time
from typing import Dict, Iterable, List, Optional, Tuple

import pyarrow as pa

from . import console, index
from .compact import drop_groups
from .fileformat import Damaged, decode, open_checkpoint, seal_checkpoint
from .index import Entry
from .job import get_job
from .plan import Group, Shard
from .store import Store
from .survey import Catalog, expected, inside
from .task import Checkpointed, Done, Merged, Output
from .task import Damaged as DamagedShard

log = console.logger(__name__)


class Committer:
    """Writes a launch's files to ``store``, starting from what the survey ``cat`` found."""

    def __init__(self, store: Store, cat: Catalog):
        self.store = store
        self.checkpoints = {(g, sid) for (_, g, sid) in cat.checkpoints}   # (group, shard id) held
        self.damaged: List[str] = []               # paths set aside by this launch
        self.fresh: Dict[str, Dict[str, bytes]] = {}   # group -> shard id -> file bytes, until merged
        self.new: List[Entry] = list(cat.learned)  # files to record in the index
        self.gone: set = set()                     # files removed by this launch (paths relative to OUT)
        self.last_segment = time.monotonic()
        self._settings_json: Dict[str, str] = {}

    # ------------------------------------------------------------------ before computing
    def drop(self, cat: Catalog, groups: Iterable[Group]) -> None:
        """Delete what OUT holds of ``groups`` (their tables, shard files and checkpoints:
        ``--overwrite``), and the second copy of groups the survey found twice."""
        groups = list(groups)
        held = [cat.groups[t][g.name] for g in groups for t in g.tables if g.name in cat.groups.get(t, {})]
        gone, parts = drop_groups(self.store, held + cat.duplicates)
        self.gone |= gone
        self.new += parts
        for g in groups:
            self.store.delete(self.store.shard_dir(g.job, g.name))
            self.gone |= {e.path for e in cat.shards.get(g.job, {}).get(g.name, {}).values()}
        names = {g.name for g in groups}
        self.checkpoints = {(group, sid) for group, sid in self.checkpoints if group not in names}

    def set_aside(self, path: str, why: str) -> None:
        """Move the damaged file ``path`` under ``OUT/_damaged/`` and say so."""
        target = self.store.set_aside(path)
        self.gone.add(self.store.rel(path))
        log.warning(f"lksweep: {self.store.display(path)} is damaged: {why}; set aside to "
                    f"{self.store.display(target)}, computing it again")
        self.damaged.append(path)

    def read_shards(self, group: Group) -> Tuple[List[pa.Table], List[Shard]]:
        """(tables, damaged shards) of ``group``'s shard files, each checked as it is read; a
        damaged one is set aside."""
        tables, damaged = [], []
        for shard in group.shards:
            path = self.store.shard_file(shard.job, shard.group, shard.id)
            try:
                tables.append(decode(self.store.read_bytes(path) or b"", expected(self.store.rel(path)))[0])
            except Damaged as e:
                self.set_aside(path, str(e))
                damaged.append(shard)
        return tables, damaged

    # ------------------------------------------------------------------ what tasks are given
    def checkpoint(self, shard: Shard) -> Optional[bytes]:
        """The shard's last checkpoint, checked; an unreadable one is named, set aside, and the
        shard starts again (None)."""
        if (shard.group, shard.id) not in self.checkpoints:
            return None
        path = self.store.checkpoint_file(shard.job, shard.group, shard.id)
        try:
            state = open_checkpoint(self.store.read_bytes(path) or b"", {"job": shard.job, "group": shard.group,
                                                                         "shard": shard.id})
            get_job(shard.job).check_checkpoint(state, shard.params)
            return state
        except (Damaged, ValueError) as e:
            target = self.store.set_aside(path)
            self.checkpoints.discard((shard.group, shard.id))
            log.warning(f"lksweep: checkpoint {self.store.display(path)} cannot be used ({e}); set aside to "
                        f"{self.store.display(target)}; {shard.group} starts again from the beginning")
            return None

    def given(self, group: Group) -> Dict[str, bytes]:
        """``group``'s shard files by id, for the task that merges it: this launch's from
        memory (then forgotten), earlier launches' read from the store (the worker checks them)."""
        fresh = self.fresh.pop(group.name, {})
        return {s.id: fresh.get(s.id) or self.store.read_bytes(self.store.shard_file(s.job, s.group, s.id)) or b""
                for s in group.shards}

    # ------------------------------------------------------------------ committing
    def commit(self, outputs: List[Output], groups: Dict[str, Group]) -> None:
        """Write the files of ``outputs`` (of ``groups``, by name) as one batch and record
        them in the index; then set aside the shard files that :class:`Damaged` outputs name.
        TypeError for anything not a task output, before anything is written."""
        files = [self._file(o, groups) for o in outputs]
        written = [f for f in files if f is not None]
        log.debug("committing %d file(s)", len(written))
        mtimes = iter(self.store.commit(written))
        for o, file in zip(outputs, files):
            if file is None:
                continue
            mtime = next(mtimes)
            if isinstance(o, Checkpointed):
                self.checkpoints.add((o.group, o.shard))
                continue
            rel = self.store.rel(file[0])
            self.gone.discard(rel)
            self.new += index.entries_of(rel, len(o.data), mtime, o.meta, self.settings_json(groups[o.group]))
            if isinstance(o, Done):
                self.fresh.setdefault(o.group, {})[o.shard] = o.data
        for o in outputs:
            if isinstance(o, DamagedShard):
                g = groups[o.group]
                self.set_aside(self.store.shard_file(g.job, g.name, o.shard), o.why)

    def _file(self, o: Output, groups: Dict[str, Group]) -> Optional[Tuple[str, bytes]]:
        """(path, bytes) of the file an output commits; None for :class:`Damaged`."""
        match o:
            case Checkpointed(group=name, shard=sid):
                identity = {"job": groups[name].job, "group": name, "shard": sid}
                return self.store.checkpoint_file(groups[name].job, name, sid), seal_checkpoint(o.state, identity)
            case Done(group=name, shard=sid):
                return self.store.shard_file(groups[name].job, name, sid), o.data
            case Merged(group=name, table=table):
                return self.store.table_file(table, name), o.data
            case DamagedShard():
                return None
            case _:
                raise TypeError(f"a task returned {type(o).__name__}, not one of sweeps.task.Output")

    def finished(self, group: Group, shard_ids: Iterable[str]) -> None:
        """Shards of ``group`` are finished: their checkpoints go."""
        for sid in shard_ids:
            if (group.name, sid) in self.checkpoints:
                self.store.delete(self.store.checkpoint_file(group.job, group.name, sid))
                self.checkpoints.discard((group.name, sid))

    def merged(self, group: Group) -> None:
        """``group`` is committed: its shard files are no longer kept in memory."""
        self.fresh.pop(group.name, None)

    # ------------------------------------------------------------------ the index
    def settings_json(self, group: Group) -> str:
        if group.name not in self._settings_json:
            self._settings_json[group.name] = index.settings_json(group.settings)
        return self._settings_json[group.name]

    def segment(self, every: float = 0.0) -> None:
        """Record the files committed since the last segment, if ``every`` seconds have passed."""
        if time.monotonic() - self.last_segment >= every:
            index.write_segment(self.store, self.new)
            self.new = []
            self.last_segment = time.monotonic()

    def close(self, tables: Iterable[str], jobs: Iterable[str]) -> None:
        """Record this launch's files in the index, and merge the index into one file when it
        has several: its entries for the surveyed directories (``tables``, ``jobs``' shards)
        are kept only for files listed there now (with the size recorded; an object store's
        listing gives the modification times the commit did not know)."""
        self.segment()
        store = self.store
        if len(store.list_files(store.path(index.DIR))) <= 1:
            return
        known, paths = index.read(store)
        tables, jobs = sorted(set(tables)), sorted(set(jobs))
        listed = {}
        for t in tables:
            listed.update(store.scan(store.path(t)))
        for job in jobs:
            listed.update(store.scan(store.path("_shards", job), recursive=True))
        live = []
        for rel, entries in sorted(known.items()):
            stat = listed.get(rel)
            if stat is None or stat.size != entries[0].size:
                if rel in self.gone or inside(rel, tables, jobs):
                    continue
            elif entries[0].mtime_ns is None:
                entries = [dataclasses.replace(e, mtime_ns=stat.mtime_ns) for e in entries]
            live += entries
        index.rewrite(store, live, paths)
