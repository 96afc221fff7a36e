"""Run a sweep: survey the output directory, compute the missing shards as tasks, commit what
they return, and report.

The driver is the only writer, and it writes bytes: a task computes several batches of shards
and returns sealed Parquet files: the tables of every group whose shards it held, and a shard
file for every other finished shard (``sweeps.task``). The driver packs shards into tasks that
last about :data:`TASK_S` seconds (measured as results come in), commits everything that came
back since its last look as one batch (``Store.commit``: one sync per batch), and records the
new files in the index every ``sweeps.index.SEGMENT_S`` seconds and when it ends. A group
whose shards ran in several tasks is merged by a task of its own; one whose shards all
finished in earlier launches, by the driver. A rerun of the same command skips every
committed group and finished shard.
"""
import dataclasses
import math
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Tuple

from . import __version__, console, cost, index, stages
from .compact import drop_groups, recover
from .fileformat import Damaged, decode, open_checkpoint, seal_checkpoint
from .index import Entry
from .job import get_job
from .plan import Shard
from .spec import Spec
from .store import Store
from .survey import Catalog, GroupState, expected, group_state, refuse_conflicts, survey
from .task import Output, Task, encode_tables

# A task should run about this long: long enough that a task's own overhead (about 1 ms of
# the driver's time) is small against it, short enough that an interrupted sweep loses little.
TASK_S = 0.5
# At most this many shards in one task (their results travel back together).
MAX_PACK = 2000
# How often the driver looks for finished tasks when none has finished (seconds).
POLL_S = 0.5
# What finished is committed as one batch at most this often (seconds): at thousands of tasks
# a second, one sync per finished task would be the bottleneck.
COMMIT_S = 0.1
# A task running longer than this shows its age beside the progress bar (seconds).
LONG_TASK_S = 600.0

log = console.logger(__name__)


@dataclass
class SweepResult:
    """What one launch did, for the closing lines it prints."""

    spec: Spec
    store: Store
    computed: int = 0
    reused: int = 0
    groups_committed: int = 0
    groups_skipped: int = 0
    damaged: List[str] = field(default_factory=list)
    seconds: float = 0.0
    tables: List[str] = field(default_factory=list)


def run(spec: Spec, store: Store, **options) -> SweepResult:
    """Run ``spec`` into ``store``, a stage after the jobs it reads (``sweeps.stages``); the
    options are :func:`run_phase`'s."""
    return stages.combined(spec, stages.run(spec, store, run_phase, **options))


def run_phase(spec: Spec, store: Store, address: Optional[str] = None, max_workers: Optional[int] = None,
              overwrite: bool = False, resume_hint: str = "", verify: bool = False, executor=None,
              large: bool = False) -> SweepResult:
    """Run ``spec`` (no stage waiting for another) into ``store``; see the module docstring.
    Inputs are already validated (``large``: with ``--large``, which the sweep's record keeps).
    ``executor`` (default: Ray, see ``sweeps.cluster.RayExecutor``) runs the tasks."""
    t0 = time.perf_counter()
    lock = store.acquire_lock()
    try:
        store.remove_temporaries()
        recover(store)
        groups = spec.groups()
        jobs = sorted({g.job for g in groups})
        tables = sorted({t for g in groups for t in g.tables})
        cat = survey(store, tables, jobs, verify)
        states = [group_state(cat, g) for g in groups]
        conflicts = [s for s in states if s.conflict] if overwrite else refuse_conflicts(states)
        sweep = Sweep(spec, store, cat, SweepResult(spec, store, tables=tables))
        sweep.drop(conflicts)
        states = [group_state(cat, s.group) if s.conflict else s for s in states]
        store.write_json(store.path("_sweeps", f"{spec.hash}.json"), record(spec, groups, large))
        try:
            sweep.start(states)
            log.debug("%d group(s): %d already committed, %d shard(s) reused, %d to compute", len(states),
                      sweep.result.groups_skipped, sweep.result.reused, sweep.queued)
            if sweep.queue:
                log.info(f"lksweep: {spec.name}: {cost.describe(spec.cost, sweep.queued)}")
                if executor is None:
                    from .cluster import RayExecutor
                    executor = RayExecutor(address, max_workers, _log_path(store, spec))
                try:
                    with executor as ex:
                        if address is not None:
                            cost.check_memory(spec.cost, ex.node_memory, "the cluster's largest node")
                        sweep.compute(ex, max_workers)
                except KeyboardInterrupt:
                    # Said once the executor has given the terminal back (Ray's output goes to its log).
                    log.warning(f"lksweep: interrupted; {sweep.result.computed} shard(s) of this run are "
                                f"committed in {store.display()}.\nResume with: {resume_hint}")
                    raise
        finally:
            sweep.close()
    finally:
        store.release_lock(lock)
    sweep.result.seconds = time.perf_counter() - t0
    return sweep.result


def _log_path(store: Store, spec: Spec) -> str:
    log_dir = store.root if store.is_local else os.path.join(tempfile.gettempdir(), "lksweep", spec.hash)
    return os.path.join(log_dir, "_logs", "ray.log")


def batches(states: List[GroupState]) -> List[List[Shard]]:
    """Pending shards as batches, in group order: shards whose job gives them the same batch
    key run together in one ``compute`` call (up to the job's ``max_batch``); the others alone."""
    out, open_batches = [], {}
    for state in states:
        job = get_job(state.group.job)
        for shard in state.todo:
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


class Sweep:
    """One launch's bookkeeping: what is pending, what came back, what is committed."""

    def __init__(self, spec: Spec, store: Store, cat: Catalog, result: SweepResult):
        self.spec, self.store, self.cat, self.result = spec, store, cat, result
        self.queue: Deque[List[Shard]] = deque()   # batches to submit
        self.queued = 0                              # shards in them
        self.merges: Deque[str] = deque()           # groups whose shards all finished in several tasks
        self.state: Dict[str, GroupState] = {}
        self.pending: Dict[str, set] = {}            # group -> ids of its shards not finished yet
        self.fresh: Dict[str, Dict[str, bytes]] = {}  # group -> shard id -> file bytes, until merged
        self.checkpoints = {(g, sid) for (_, g, sid) in cat.checkpoints}
        self.new: List[Entry] = list(cat.learned)    # files to record in the index
        self.gone: set = set()                       # files removed by this launch (paths relative to OUT)
        self.last_segment = time.monotonic()
        self.seconds_per_shard: Dict[str, float] = {}   # job -> measured, a moving average
        self.bar = None
        self.settings_json: Dict[str, str] = {}

    # ------------------------------------------------------------------ before computing
    def drop(self, conflicts: List[GroupState]) -> None:
        """Delete what OUT holds of the conflicting groups (``--overwrite``), and the second
        copy of groups found twice."""
        cat = self.cat
        held = [cat.groups[t][s.group.name] for s in conflicts for t in s.group.tables if s.group.name in cat.groups[t]]
        gone, parts = drop_groups(self.store, held + cat.duplicates)
        self.gone |= gone
        self.new += parts
        for s in conflicts:
            self.store.delete(self.store.shard_dir(s.group.job, s.group.name))
            self.gone |= {e.path for e in cat.shards.get(s.group.job, {}).pop(s.group.name, {}).values()}
            for t in s.group.tables:
                cat.groups[t].pop(s.group.name, None)

    def set_aside(self, path: str, why: str) -> None:
        target = self.store.set_aside(path)
        self.gone.add(self.store.rel(path))
        log.warning(f"lksweep: {self.store.display(path)} is damaged: {why}; set aside to "
                    f"{self.store.display(target)}, computing it again")
        self.result.damaged.append(path)

    def start(self, states: List[GroupState]) -> None:
        """Commit the groups whose shards are all finished; queue the rest."""
        for path, why in self.cat.damaged:
            self.set_aside(path, why)
        todo = []
        for s in states:
            self.state[s.group.name] = s
            self.pending[s.group.name] = {sh.id for sh in s.todo}
            self.result.reused += len(s.done)
            if s.committed:
                self.result.groups_skipped += 1
            elif s.todo or not self._merge(s.group.name):
                todo.append(s)
        self._enqueue(batches(todo))

    def _enqueue(self, more: List[List[Shard]], first: bool = False) -> None:
        if first:
            self.queue.extendleft(reversed(more))
        else:
            self.queue.extend(more)
        self.queued += sum(map(len, more))

    def _merge(self, name: str) -> bool:
        """Merge, on the driver, a group whose shards all finished in earlier launches (their
        files checked as they are read) and commit its missing tables; False, with the damaged
        shards made pending again, when one of them is damaged."""
        s = self.state[name]
        tables, damaged = [], []
        for shard in s.group.shards:
            path = self.store.shard_file(shard.job, shard.group, shard.id)
            try:
                tables.append(decode(self.store.read_bytes(path) or b"", expected(self.store.rel(path)))[0])
            except Damaged as e:
                self.set_aside(path, str(e))
                damaged.append(shard)
        if damaged:
            s.todo = damaged
            self.pending[name] = {d.id for d in damaged}
            self.result.reused -= len(damaged)
            return False
        outputs = encode_tables(get_job(s.group.job), s.group, tables, self.spec.hash)
        self._commit([o for o in outputs if o.name in s.missing_tables])
        return True

    # ------------------------------------------------------------------ computing
    def compute(self, ex, max_workers: Optional[int]) -> None:
        from tqdm import tqdm

        window = max_workers or 2 * ex.capacity
        quiet = getattr(ex, "quiet", False) or not console.progress_shown()
        self.bar = tqdm(total=self.queued, unit="shard", desc=self.spec.name, file=getattr(ex, "console", sys.stderr),
                        dynamic_ncols=True, smoothing=0.1, mininterval=0.5, disable=quiet)
        in_flight: Dict = {}
        got: List[Tuple[Task, object]] = []        # finished, not committed yet
        last_commit = time.monotonic()
        try:
            while self.queue or self.merges or in_flight or got:
                while (self.queue or self.merges) and len(in_flight) < window:
                    task = self._merge_task(self.merges.popleft()) if self.merges else self._pack(window)
                    in_flight[ex.submit(get_job(task.job), task)] = (task, time.monotonic())
                    log.debug("submitted a %s task: %d shard(s), %d group(s) to merge", task.job, task.size,
                              len(task.finish))
                wait = POLL_S if not got else max(0.0, COMMIT_S - (time.monotonic() - last_commit))
                got += [(in_flight.pop(h)[0], h) for h in ex.wait(list(in_flight), wait)]
                if got and (time.monotonic() - last_commit >= COMMIT_S or not in_flight):
                    self._receive(ex, got)
                    got, last_commit = [], time.monotonic()
                if time.monotonic() - self.last_segment > index.SEGMENT_S:
                    self._segment()
                self._show_long_tasks(in_flight)
        except KeyboardInterrupt:
            # Stop submitting; keep whatever already finished.
            try:
                got += [(in_flight.pop(h)[0], h) for h in ex.wait(list(in_flight), 0)]
                self._receive(ex, got)
            except Exception:  # noqa: BLE001 - the interrupt is what we report
                pass
            raise
        finally:
            self.bar.close()

    def _show_long_tasks(self, in_flight: Dict) -> None:
        """A task running longer than LONG_TASK_S shows its age beside the bar (against the
        job's estimate of its longest shard, when there is one), so a long sweep never looks
        stuck."""
        if not in_flight:
            return
        age = time.monotonic() - min(t for _, t in in_flight.values())
        if age > LONG_TASK_S:
            of = f" of about {cost.duration(self.spec.cost.shard_seconds)} estimated" if self.spec.cost.shard_seconds else ""
            self.bar.set_postfix_str(f"a task has run {cost.duration(age)}{of}")

    def _pack(self, window: int) -> Task:
        """The next task: batches from the queue (of one job) worth about TASK_S seconds, and
        no more than an even share of what is left, so that the last tasks end together. A
        task does not end inside a group whose shards all fit in TASK_S (the worker then
        merges the group's tables, not the driver)."""
        job = self.queue[0][0].job
        per = self.seconds_per_shard.get(job)
        by_time = max(1, min(MAX_PACK, 1 if per is None else int(TASK_S / max(per, 1e-9))))
        target = max(1, min(by_time, math.ceil(self.queued / window)))
        chosen = [self.queue.popleft()]
        size = len(chosen[0])
        while self.queue and self.queue[0][0].job == job:
            head, last = self.queue[0][0].group, chosen[-1][-1].group
            if size + len(self.queue[0]) > target and not (head == last and len(self.pending[last]) <= by_time):
                break
            size += len(self.queue[0])
            chosen.append(self.queue.popleft())
        self.queued -= size
        here: Dict[str, int] = {}
        for b in chosen:
            for sh in b:
                here[sh.group] = here.get(sh.group, 0) + 1
        finish = [self.state[g].group for g, n in here.items() if n == len(self.state[g].group.shards) == len(self.pending[g])]
        return Task(job, chosen, [[self._checkpoint(sh) for sh in b] for b in chosen], finish,
                    {g: self.state[g].group.settings for g in here}, self.spec.hash)

    def _merge_task(self, name: str) -> Task:
        """A task that merges a group from its shard files (this launch's from memory, earlier
        launches' read from the store: the worker checks them)."""
        g = self.state[name].group
        fresh = self.fresh.pop(name, {})
        given = {s.id: fresh.get(s.id) or self.store.read_bytes(self.store.shard_file(s.job, s.group, s.id)) or b""
                 for s in g.shards}
        return Task(g.job, [], [], [g], {name: g.settings}, self.spec.hash, given)

    def _checkpoint(self, shard: Shard) -> Optional[bytes]:
        """The shard's last checkpoint, checked; an unreadable one is named, set aside, and the
        shard starts again."""
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

    def _receive(self, ex, finished: List[Tuple[Task, object]]) -> None:
        """Commit everything the finished tasks returned, as one batch; queue again the shards
        that returned a checkpoint; merge the groups whose last shard came back."""
        outputs, again = [], []
        for task, handle in finished:
            out, spent = ex.result(handle, [sh.group for b in task.batches for sh in b])
            outputs += out
            unfinished = {(o.group, o.name) for o in out if o.kind == "checkpoint"}
            again += [rest for b in task.batches if (rest := [sh for sh in b if (sh.group, sh.id) in unfinished])]
            if task.size:
                per, before = spent / task.size, self.seconds_per_shard.get(task.job)
                self.seconds_per_shard[task.job] = per if before is None else 0.7 * before + 0.3 * per
        touched = self._commit(outputs)
        self._enqueue(again, first=True)
        for o in outputs:
            if o.kind == "checkpoint":
                self.bar.set_postfix_str(f"{o.group}: {o.note}", refresh=False)
            elif o.kind == "damaged":
                g = self.state[o.group].group
                self.set_aside(self.store.shard_file(g.job, g.name, o.name), o.note)
                self.pending[o.group].add(o.name)
                self.bar.total += 1
                self._enqueue([[s for s in g.shards if s.id == o.name]])
        for name in touched:
            if not self.pending[name] and self.state[name].missing_tables:
                self.merges.append(name)

    def _commit(self, outputs: List[Output]) -> List[str]:
        """Write the outputs' files as one batch and account for them; returns the groups they
        touched. A group's tables count all its pending shards as computed."""
        files, kept = [], []
        for o in outputs:
            g = self.state[o.group].group
            if o.kind == "checkpoint":
                files.append((self.store.checkpoint_file(g.job, g.name, o.name),
                              seal_checkpoint(o.data, {"job": g.job, "group": g.name, "shard": o.name})))
            elif o.kind == "shard":
                files.append((self.store.shard_file(g.job, g.name, o.name), o.data))
            elif o.kind == "table" and o.name in self.state[o.group].missing_tables:
                files.append((self.store.table_file(o.name, g.name), o.data))
            else:
                continue
            kept.append(o)
        log.debug("committing %d file(s)", len(files))
        touched: Dict[str, None] = {}
        for (path, data), mtime, o in zip(files, self.store.commit(files), kept):
            touched[o.group] = None
            if o.kind == "checkpoint":
                self.checkpoints.add((o.group, o.name))
                continue
            rel = self.store.rel(path)
            self.gone.discard(rel)
            self.new += index.entries_of(rel, len(data), mtime, o.meta, self._settings_json(o.group))
            if o.kind == "shard":
                self.fresh.setdefault(o.group, {})[o.name] = data
                self._finished(o.group, [o.name])
                continue
            state = self.state[o.group]
            self._finished(o.group, list(self.pending[o.group]))
            state.missing_tables = [t for t in state.missing_tables if t != o.name]
            if not state.missing_tables:
                self.result.groups_committed += 1
                self.fresh.pop(o.group, None)
        return list(touched)

    def _finished(self, group: str, shard_ids: List[str]) -> None:
        """Account for shards of ``group`` that finished (and drop their checkpoints)."""
        g = self.state[group].group
        for sid in shard_ids:
            self.pending[group].discard(sid)
            if (group, sid) in self.checkpoints:
                self.store.delete(self.store.checkpoint_file(g.job, group, sid))
                self.checkpoints.discard((group, sid))
        self.result.computed += len(shard_ids)
        if self.bar is not None:
            self.bar.update(len(shard_ids))

    # ------------------------------------------------------------------ the index
    def _settings_json(self, group: str) -> str:
        if group not in self.settings_json:
            self.settings_json[group] = index.settings_json(self.state[group].group.settings)
        return self.settings_json[group]

    def _segment(self) -> None:
        index.write_segment(self.store, self.new)
        self.new = []
        self.last_segment = time.monotonic()

    def close(self) -> None:
        """Record this launch's files in the index, and merge the index into one file when it
        has several: its entries for the surveyed directories are kept only for files listed
        there now (with the size recorded; an object store's listing gives the modification
        times the commit did not know)."""
        self._segment()
        files = self.store.list_files(self.store.path(index.DIR))
        if len(files) <= 1:
            return
        known, paths = index.read(self.store)
        tables, jobs = set(self.result.tables), {s.group.job for s in self.state.values()}
        listed = {}
        for t in tables:
            listed.update(self.store.scan(self.store.path(t)))
        for job in jobs:
            listed.update(self.store.scan(self.store.path("_shards", job), recursive=True))
        live = []
        for rel, entries in sorted(known.items()):
            stat = listed.get(rel)
            if stat is None or stat.size != entries[0].size:
                head = rel.split("/", 2)
                if rel in self.gone or head[0] in tables or (head[0] == "_shards" and head[1] in jobs):
                    continue
            elif entries[0].mtime_ns is None:
                entries = [dataclasses.replace(e, mtime_ns=stat.mtime_ns) for e in entries]
            live += entries
        index.rewrite(self.store, live, paths)


def record(spec: Spec, groups, large: bool = False) -> Dict:
    """What OUT/_sweeps/<spec hash>.json keeps of a sweep: its validated spec, whether it was
    launched with ``--large`` (``status`` checks the spec's size as the launch did), and per
    job the tables it writes and the groups it plans (which ``analysis`` reads without
    planning). A job
    whose groups write different tables (the discrepancy's, with Lyapunov exponents or an
    LSTM's state) gets one entry per set of tables, keyed ``job:table+table``."""
    kinds: Dict[str, set] = {}
    for g in groups:
        kinds.setdefault(g.job, set()).add(g.tables)
    planned: Dict[str, Dict] = {}
    for g in groups:
        key = g.job if len(kinds[g.job]) == 1 else f"{g.job}:{'+'.join(g.tables)}"
        planned.setdefault(key, {"tables": list(g.tables), "groups": []})["groups"].append(g.name)
    return {"spec": spec.to_dict(), **({"large": True} if large else {}), "planned": planned, "version": __version__}
