"""Run a sweep: survey the output directory, compute the missing shards as tasks, commit what
they return, and report.

The driver is the only writer, and it writes bytes: a task computes several batches of shards
and returns sealed Parquet files: the tables of every group whose shards it held, and a shard
file for every other finished shard (``sweeps.task``). A launch holds OUT's lock across every
phase of its spec (``sweeps.stages``) and runs each phase with four parts, each in a module of
its own:

- the **ledger** (``sweeps.ledger``): per group, the shards pending and the tables missing;
- the **packer** (``sweeps.packer``): pending batches as tasks of about ``TASK_S`` seconds;
- the **committer** (``sweeps.committer``): everything written to OUT, as one batch of files
  per look at finished tasks (one sync), damaged files set aside, the index;
- the **reporter** (``sweeps.reporter``): the progress bar;

and an executor (``sweeps.executor.Executor``; Ray by default) that runs the tasks. :class:`Sweep`
connects them: it submits what the packer packs, hands what comes back to the committer, and
tells the ledger and the reporter. A group whose shards ran in several tasks is merged by a
task of its own; one whose shards all finished in earlier launches, by the driver. A rerun of
the same command skips every committed group and finished shard.
"""
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from . import __version__, console, cost, index, stages
from .committer import Committer
from .compact import recover
from .executor import Executor
from .job import get_job
from .ledger import Ledger
from .packer import Packer, batches
from .reporter import Reporter
from .spec import Spec
from .store import Store
from .survey import GroupState, group_state, refuse_conflicts, survey
from .task import Checkpointed, Damaged, Done, Merged, Output, Task, encode_tables

# How often the driver looks for finished tasks when none has finished (seconds).
POLL_S = 0.5
# What finished is committed as one batch at most this often (seconds): at thousands of tasks
# a second, one sync per finished task would be the bottleneck.
COMMIT_S = 0.1

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
    options are :func:`run_phase`'s. OUT stays locked from the first phase to the last, so
    no other launcher writes there in between."""
    lock = store.acquire_lock()
    try:
        return stages.combined(spec, stages.run(spec, store, run_phase, **options))
    finally:
        store.release_lock(lock)


def run_phase(spec: Spec, store: Store, address: Optional[str] = None, max_workers: Optional[int] = None,
              overwrite: bool = False, resume_hint: str = "", verify: bool = False,
              executor: Optional[Executor] = None, large: bool = False) -> SweepResult:
    """Run ``spec`` (no stage waiting for another) into ``store``, whose lock the caller holds
    (:func:`run`); see the module docstring. Inputs are already validated (``large``: with
    ``--large``, which the sweep's record keeps). ``executor`` (default: Ray, see
    ``sweeps.cluster.RayExecutor``) runs the tasks."""
    t0 = time.perf_counter()
    store.remove_temporaries()
    recover(store)
    groups = spec.groups()
    jobs = sorted({g.job for g in groups})
    tables = sorted({t for g in groups for t in g.tables})
    cat = survey(store, tables, jobs, verify)
    states = [group_state(cat, g) for g in groups]
    conflicts = [s for s in states if s.conflict] if overwrite else refuse_conflicts(states)
    committer = Committer(store, cat)
    committer.drop(cat, [s.group for s in conflicts])
    # What the survey found of a dropped group is gone: all of it is to compute.
    states = [GroupState(s.group, list(s.group.tables), todo=list(s.group.shards)) if s.conflict else s
              for s in states]
    store.write_json(store.path("_sweeps", f"{spec.hash}.json"), record(spec, groups, large))
    ledger = Ledger(states)
    sweep = Sweep(spec, ledger, committer)
    try:
        for path, why in cat.damaged:
            committer.set_aside(path, why)
        sweep.start()
        log.debug("%d group(s): %d already committed, %d shard(s) reused, %d to compute", len(states),
                  ledger.skipped, ledger.reused, sweep.packer.queued)
        if sweep.packer:
            log.info(f"lksweep: {spec.name}: {cost.describe(spec.cost, sweep.packer.queued)}")
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
                log.warning(f"lksweep: interrupted; {ledger.computed} shard(s) of this run are "
                            f"committed in {store.display()}.\nResume with: {resume_hint}")
                raise
    finally:
        committer.close(tables, jobs)
    return SweepResult(spec, store, ledger.computed, ledger.reused, ledger.committed, ledger.skipped,
                       committer.damaged, time.perf_counter() - t0, tables)


def _log_path(store: Store, spec: Spec) -> str:
    log_dir = store.root if store.is_local else os.path.join(tempfile.gettempdir(), "lksweep", spec.hash)
    return os.path.join(log_dir, "_logs", "ray.log")


class Sweep:
    """One launch's loop: submits what the packer packs, commits what comes back, and tells
    the ledger and the reporter."""

    def __init__(self, spec: Spec, ledger: Ledger, committer: Committer):
        self.spec, self.ledger, self.committer = spec, ledger, committer
        self.packer = Packer(ledger, spec.hash)
        self.reporter: Optional[Reporter] = None     # once computing

    def start(self) -> None:
        """Merge on the driver the groups whose shards all finished in earlier launches (their
        files checked as they are read); queue the shards of the rest, and those found damaged."""
        todo = []
        for name in self.ledger.groups:
            if not (self.ledger.ready(name) and self._merge(name)):
                todo += self.ledger.todo(name)
        self.packer.add(batches(todo))

    def _merge(self, name: str) -> bool:
        """Commit the missing tables of group ``name`` from its shard files; False, with the
        damaged shards pending again, when one of them is damaged."""
        g = self.ledger.groups[name]
        tables, damaged = self.committer.read_shards(g)
        if damaged:
            self.ledger.reopen(name, [s.id for s in damaged], reused=True)
            return False
        self._commit(encode_tables(get_job(g.job), g, tables, self.spec.hash))
        return True

    def compute(self, ex: Executor, max_workers: Optional[int]) -> None:
        window = max_workers or 2 * ex.capacity
        self.reporter = Reporter(self.spec.name, self.packer.queued, ex, self.spec.cost.shard_seconds)
        in_flight: Dict = {}
        got: List[Tuple[Task, object]] = []        # finished, not committed yet
        last_commit = time.monotonic()
        try:
            while self.packer or in_flight or got:
                while self.packer and len(in_flight) < window:
                    task = self.packer.next(window, self.committer.checkpoint, self.committer.given)
                    in_flight[ex.submit(get_job(task.job), task)] = (task, time.monotonic())
                    log.debug("submitted a %s task: %d shard(s), %d group(s) to merge", task.job, task.size,
                              len(task.finish))
                wait = POLL_S if not got else max(0.0, COMMIT_S - (time.monotonic() - last_commit))
                got += [(in_flight.pop(h)[0], h) for h in ex.wait(list(in_flight), wait)]
                if got and (time.monotonic() - last_commit >= COMMIT_S or not in_flight):
                    self._receive(ex, got)
                    got, last_commit = [], time.monotonic()
                self.committer.segment(every=index.SEGMENT_S)
                self.reporter.running_since(t for _, t in in_flight.values())
        except KeyboardInterrupt:
            # Stop submitting; keep whatever already finished.
            try:
                got += [(in_flight.pop(h)[0], h) for h in ex.wait(list(in_flight), 0)]
                self._receive(ex, got)
            except Exception:  # noqa: BLE001 - the interrupt is what we report
                pass
            raise
        finally:
            self.reporter.close()

    def _receive(self, ex: Executor, finished: List[Tuple[Task, object]]) -> None:
        """Commit everything the finished tasks returned, as one batch; queue again first the
        shards that returned a checkpoint; merge next the groups whose last shard came back."""
        outputs, again = [], []
        for task, handle in finished:
            out, spent = ex.result(handle, [sh.group for b in task.batches for sh in b])
            outputs += out
            unfinished = {(o.group, o.shard) for o in out if isinstance(o, Checkpointed)}
            again += [rest for b in task.batches if (rest := [sh for sh in b if (sh.group, sh.id) in unfinished])]
            self.packer.measured(task, spent)
        touched = self._commit(outputs)
        self.packer.add(again, first=True)
        for name in touched:
            if self.ledger.ready(name):
                self.packer.merge(name)

    def _commit(self, outputs: List[Output]) -> List[str]:
        """Commit ``outputs`` (a table only while its group misses it) as one batch, then
        account for each by its type; returns the groups whose files were committed."""
        ledger, groups = self.ledger, self.ledger.groups
        outputs = [o for o in outputs if not isinstance(o, Merged) or o.table in ledger.missing(o.group)]
        self.committer.commit(outputs, groups)
        touched: Dict[str, None] = {}
        for o in outputs:
            match o:
                case Checkpointed():
                    self._note(f"{o.group}: {o.progress}")
                case Done():
                    ledger.finished(o.group, o.shard)
                    self.committer.finished(groups[o.group], [o.shard])
                    self._finished(1)
                case Merged():
                    ids = ledger.table(o.group, o.table)
                    self.committer.finished(groups[o.group], ids)
                    self._finished(len(ids))
                    if not ledger.missing(o.group):
                        self.committer.merged(groups[o.group])
                case Damaged():
                    ledger.reopen(o.group, [o.shard])
                    self.reporter.again(1)
                    self.packer.add([[s for s in groups[o.group].shards if s.id == o.shard]])
                    continue
                case _:
                    raise TypeError(f"a task returned {type(o).__name__}, not one of sweeps.task.Output")
            touched[o.group] = None
        return list(touched)

    def _finished(self, shards: int) -> None:
        if self.reporter is not None:
            self.reporter.finished(shards)

    def _note(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.note(text)


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
