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
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa

from . import __version__
from .fileformat import Damaged, decode, encode
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


@dataclass
class Output:
    kind: str          # "shard", "checkpoint" or "table"
    group: str
    name: str          # the shard id, or the table's name
    data: bytes        # a sealed Parquet file, or the job's checkpoint bytes
    meta: Dict[str, Any] = field(default_factory=dict)   # what the file's footer carries
    note: str = ""     # a checkpoint's progress; why a given shard file is damaged


def shard_meta(spec_hash: str, job: str, settings: Dict, shard: Shard) -> Dict[str, Any]:
    """The identity and settings a shard file carries."""
    return {"version": __version__, "spec_hash": spec_hash, "job": job, "kind": "shard", "group": shard.group,
            "settings": settings, "shard": shard.id, "params": as_dict(shard.params)}


def table_meta(spec_hash: str, job: str, table: str, group: str, settings: Dict) -> Dict[str, Any]:
    """The identity and settings a group's table file carries."""
    return {"version": __version__, "spec_hash": spec_hash, "job": job, "kind": "table", "table": table,
            "group": group, "settings": settings}


def encode_tables(job: Job, group: Group, shard_tables: List[pa.Table], spec_hash: str) -> List[Output]:
    """A group's merged tables as sealed files."""
    merged = job.finalize(group, shard_tables)
    return [Output("table", group.name, name, *encode(t, table_meta(spec_hash, group.job, name, group.name, group.settings)))
            for name, t in merged.items()]


def run(job: Job, task: Task) -> Tuple[List[Output], float]:
    """(outputs, seconds spent): the tables of every group the task finishes; a sealed file
    for every other finished shard (the progress of a group not committed yet); a checkpoint
    for every shard that is not finished; "damaged" for a given shard file that is not what it
    should be (the driver sets it aside and computes the shard again)."""
    t0 = time.perf_counter()
    outputs: List[Output] = []
    done: Dict[str, Tuple[Shard, pa.Table]] = {}
    for batch, states in zip(task.batches, task.states):
        for shard, result in zip(batch, job.compute([s.params for s in batch], states)):
            if isinstance(result, Checkpoint):
                outputs.append(Output("checkpoint", shard.group, shard.id, result.state, note=result.progress))
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
                except Damaged as e:
                    outputs.append(Output("damaged", g.name, s.id, b"", note=str(e)))
        if len(tables) == len(g.shards):
            outputs += encode_tables(job, g, tables, task.spec_hash)
            merged.add(g.name)
    for shard, result in done.values():
        if shard.group not in merged:
            meta = shard_meta(task.spec_hash, task.job, task.settings[shard.group], shard)
            outputs.append(Output("shard", shard.group, shard.id, *encode(result, meta)))
    return outputs, time.perf_counter() - t0
