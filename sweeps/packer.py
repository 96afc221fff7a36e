"""Pending shards as tasks: batches packed into tasks of about :data:`TASK_S` seconds.

Shards whose job gives them the same batch key run together in one ``compute`` call (a
batch, :func:`batches`); a task holds batches of one job worth about ``TASK_S`` seconds of
work, measured as results come in (:meth:`Packer.measured`). Groups whose shards all
finished in several tasks wait here to be merged by a task of their own, before any
computing task is packed.
"""
import math
from collections import deque
from typing import Callable, Deque, Dict, Iterable, List, Optional

from .job import get_job
from .ledger import Ledger
from .plan import Group, Shard
from .task import Task

# A task should run about this long: long enough that a task's own overhead (about 1 ms of
# the driver's time) is small against it, short enough that an interrupted sweep loses little.
TASK_S = 0.5
# At most this many shards in one task (their results travel back together).
MAX_PACK = 2000


def batches(shards: Iterable[Shard]) -> List[List[Shard]]:
    """``shards`` (in group order) as batches: shards whose job gives them the same batch key
    run together in one ``compute`` call (up to the job's ``max_batch``); the others alone."""
    out, open_batches = [], {}
    for shard in shards:
        job = get_job(shard.job)
        key = job.batch_key(shard)
        if key is None:
            out.append([shard])
            continue
        batch = open_batches.get((shard.job, key))
        if batch is None or len(batch) >= job.max_batch:
            batch = open_batches[(shard.job, key)] = []
            out.append(batch)
        batch.append(shard)
    return out


class Packer:
    """The batches still to submit (``queued``: their shards) and the groups to merge, in the
    order they go out; reads the ledger, never changes it."""

    def __init__(self, ledger: Ledger, spec_hash: str):
        self.ledger, self.spec_hash = ledger, spec_hash
        self.queue: Deque[List[Shard]] = deque()
        self.queued = 0
        self.merges: Deque[str] = deque()
        self.seconds_per_shard: Dict[str, float] = {}   # job -> measured, a moving average

    def __bool__(self) -> bool:
        """Whether a task is left to submit."""
        return bool(self.queue or self.merges)

    def add(self, more: List[List[Shard]], first: bool = False) -> None:
        """Queue batches: at the end, or ``first`` (shards resumed from a checkpoint)."""
        if first:
            self.queue.extendleft(reversed(more))
        else:
            self.queue.extend(more)
        self.queued += sum(map(len, more))

    def merge(self, name: str) -> None:
        """Group ``name`` has every shard finished: merge it next."""
        self.merges.append(name)

    def measured(self, task: Task, seconds: float) -> None:
        """``task`` took ``seconds``: the job's seconds per shard, a moving average."""
        if task.size:
            per, before = seconds / task.size, self.seconds_per_shard.get(task.job)
            self.seconds_per_shard[task.job] = per if before is None else 0.7 * before + 0.3 * per

    def next(self, window: int, checkpoint: Callable[[Shard], Optional[bytes]],
             given: Callable[[Group], Dict[str, bytes]]) -> Task:
        """The next task: a merge when a group waits for one (``given(group)``: its shard
        files by id), else batches from the queue (``checkpoint(shard)``: the state each
        shard resumes from, or None)."""
        if self.merges:
            name = self.merges.popleft()
            g = self.ledger.groups[name]
            return Task(g.job, [], [], [g], {name: g.settings}, self.spec_hash, given(g))
        return self._pack(window, checkpoint)

    def _pack(self, window: int, checkpoint: Callable[[Shard], Optional[bytes]]) -> Task:
        """Batches from the queue (of one job) worth about TASK_S seconds, and no more than an
        even share of what is left over ``window`` tasks, so that the last tasks end together.
        A task does not end inside a group whose shards all fit in TASK_S (the worker then
        merges the group's tables, not the driver)."""
        job = self.queue[0][0].job
        per = self.seconds_per_shard.get(job)
        by_time = max(1, min(MAX_PACK, 1 if per is None else int(TASK_S / max(per, 1e-9))))
        target = max(1, min(by_time, math.ceil(self.queued / window)))
        chosen = [self.queue.popleft()]
        size = len(chosen[0])
        while self.queue and self.queue[0][0].job == job:
            head, last = self.queue[0][0].group, chosen[-1][-1].group
            if size + len(self.queue[0]) > target and not (head == last and self.ledger.pending(last) <= by_time):
                break
            size += len(self.queue[0])
            chosen.append(self.queue.popleft())
        self.queued -= size
        here: Dict[str, int] = {}
        for b in chosen:
            for sh in b:
                here[sh.group] = here.get(sh.group, 0) + 1
        groups = self.ledger.groups
        finish = [groups[g] for g, n in here.items() if n == len(groups[g].shards) == self.ledger.pending(g)]
        return Task(job, chosen, [[checkpoint(sh) for sh in b] for b in chosen], finish,
                    {g: groups[g].settings for g in here}, self.spec_hash)
