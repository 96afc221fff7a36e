"""What one Ray task runs: several batches of shards, and the groups they finish.

The driver packs many shards into one task (:class:`Task`), so that a task lasts long enough
for its overhead not to matter, and the worker does what costs CPU: it computes each batch
(one ``job.compute`` call), merges and encodes the tables of every group whose shards are all
in the task (sealed Parquet files, ``sweeps.fileformat``), and encodes as a shard file every
other finished shard: the progress of a group whose shards run in several tasks. Such a group
is merged by a task of its own, given its shard files (``Task.given``). The driver only writes
the bytes it gets back (``sweeps.runner``).
"""
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import pyarrow as pa

from . import __version__, fileformat
from .fileformat import decode, encode
from .job import Checkpoint, Job
from .plan import Group, Shard, as_dict


@dataclass
class Task:
    job: str
    batches: List[List[Shard]]                 # each batch: one job.compute call
    states: List[List[Optional[bytes]]]        # each shard's checkpoint (checked by the driver) or None
    finish: List[Group]                        # groups every shard of which is in this task
    settings: Dict[str, Dict[str, Any]]        # group name -> its settings
    spec_hash: str
    given: Dict[str, bytes] = field(default_factory=dict)   # shard id -> its file, for groups merged here

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.batches)


# ---------------------------------------------------------------------- what a task returns
# A task's outputs are one of four types, a closed set: the driver handles each (sweeps.runner)
# and refuses any other.

@dataclass(frozen=True)
class Merged:
    """A table of a group whose shards are all finished: a sealed Parquet file, committed as
    ``OUT/<table>/<group>.parquet``."""

    group: str
    table: str
    data: bytes
    meta: Dict[str, Any]      # what the file's footer carries


@dataclass(frozen=True)
class Done:
    """A finished shard of a group not merged in this task: a sealed Parquet file, committed
    as ``OUT/_shards/<job>/<group>/<shard>.parquet`` (the group is merged later)."""

    group: str
    shard: str
    data: bytes
    meta: Dict[str, Any]


@dataclass(frozen=True)
class Checkpointed:
    """A shard not finished in its time: the job's checkpoint bytes (the driver seals them
    and queues the shard again, resumed from them) and a line of progress to show."""

    group: str
    shard: str
    state: bytes
    progress: str


@dataclass(frozen=True)
class Damaged:
    """A shard file given to merge a group (``Task.given``) that is not what it should be:
    the driver sets it aside and computes the shard again."""

    group: str
    shard: str
    why: str


Output = Union[Merged, Done, Checkpointed, Damaged]


def shard_meta(spec_hash: str, job: str, settings: Dict, shard: Shard) -> Dict[str, Any]:
    """The identity and settings a shard file carries."""
    return {"version": __version__, "spec_hash": spec_hash, "job": job, "kind": "shard", "group": shard.group,
            "settings": settings, "shard": shard.id, "params": as_dict(shard.params)}


def table_meta(spec_hash: str, job: str, table: str, group: str, settings: Dict) -> Dict[str, Any]:
    """The identity and settings a group's table file carries."""
    return {"version": __version__, "spec_hash": spec_hash, "job": job, "kind": "table", "table": table,
            "group": group, "settings": settings}


def encode_tables(job: Job, group: Group, shard_tables: List[pa.Table], spec_hash: str) -> List[Merged]:
    """A group's merged tables as sealed files."""
    merged = job.finalize(group, shard_tables)
    return [Merged(group.name, name, *encode(t, table_meta(spec_hash, group.job, name, group.name, group.settings)))
            for name, t in merged.items()]


def run(job: Job, task: Task) -> Tuple[List[Output], float]:
    """(outputs, seconds spent): :class:`Merged` tables of every group the task finishes;
    :class:`Done` for every other finished shard (the progress of a group not committed yet);
    :class:`Checkpointed` for every shard that is not finished; :class:`Damaged` for a given
    shard file that is not what it should be."""
    t0 = time.perf_counter()
    outputs: List[Output] = []
    done: Dict[str, Tuple[Shard, pa.Table]] = {}
    for batch, states in zip(task.batches, task.states):
        for shard, result in zip(batch, job.compute([s.params for s in batch], states)):
            if isinstance(result, Checkpoint):
                outputs.append(Checkpointed(shard.group, shard.id, result.state, result.progress))
            else:
                done[shard.id] = (shard, result)
    merged = set()
    for g in task.finish:
        tables = []
        for s in g.shards:
            if s.id in done:
                tables.append(done[s.id][1])
            elif s.id in task.given:
                try:
                    tables.append(decode(task.given[s.id], {"kind": "shard", "job": s.job, "group": s.group,
                                                            "shard": s.id})[0])
                except fileformat.Damaged as e:
                    outputs.append(Damaged(g.name, s.id, str(e)))
        if len(tables) == len(g.shards):
            outputs += encode_tables(job, g, tables, task.spec_hash)
            merged.add(g.name)
    for shard, result in done.values():
        if shard.group not in merged:
            meta = shard_meta(task.spec_hash, task.job, task.settings[shard.group], shard)
            outputs.append(Done(shard.group, shard.id, *encode(result, meta)))
    return outputs, time.perf_counter() - t0
