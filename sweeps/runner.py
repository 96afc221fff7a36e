"""Run a sweep: survey the output directory, compute the missing shards as Ray tasks,
commit each finished shard and each completed group, and report.

The driver is the only writer: workers return Arrow tables, so they need no shared
filesystem. A rerun of the same command skips every committed group and finished shard.
"""
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from tqdm import tqdm

from . import __version__
from .cluster import console_to, start_ray
from .errors import SweepError
from .job import Checkpoint, compute, get_job
from .plan import as_dict
from .spec import Spec
from .store import Store
from .survey import GroupState, survey_sweep


@dataclass
class SweepResult:
    """What one launch did, for the closing lines it prints."""

    spec: Spec
    store: Store
    computed: int = 0
    reused: int = 0
    groups_committed: int = 0
    groups_skipped: int = 0
    recomputed_corrupt: List[str] = field(default_factory=list)
    seconds: float = 0.0
    tables: List[str] = field(default_factory=list)


def run(spec: Spec, store: Store, address: Optional[str] = None, max_workers: Optional[int] = None,
        overwrite: bool = False, resume_hint: str = "") -> SweepResult:
    """Run ``spec`` into ``store``; see the module docstring. Inputs are already validated."""
    t0 = time.perf_counter()
    lock = store.acquire_lock()
    try:
        store.remove_temporaries()
        groups = spec.groups()
        states = survey_sweep(groups, store, overwrite)
        store.write_json(store.path("_sweeps", f"{spec.hash}.json"), record(spec, groups))
        summary = SweepResult(spec, store, tables=sorted({t for s in states for t in s.group.tables}))
        for s in states:
            for path in s.corrupt:
                print(f"lksweep: {store.display(path)} is truncated or corrupt; computing it again", file=sys.stderr)
            summary.recomputed_corrupt += s.corrupt
            summary.reused += len(s.done)
            if s.committed:
                summary.groups_skipped += 1
            elif not s.todo:
                _commit_group(store, spec, s, {})
                summary.groups_committed += 1
        todo = [s for s in states if not s.committed and s.todo]
        if todo:
            _compute(spec, store, todo, address, max_workers, summary, resume_hint)
    finally:
        store.release_lock(lock)
    summary.seconds = time.perf_counter() - t0
    return summary


def _batches(states: List[GroupState]):
    """Pending shards as batches: shards whose job gives them the same batch key run
    together in one task (up to the job's MAX_BATCH); the others run alone."""
    out, open_batches = [], {}
    for state in states:
        job = get_job(state.group.job)
        for shard in state.todo:
            key = job.batch_key(shard)
            if key is None:
                out.append([(state, shard)])
                continue
            batch = open_batches.get((shard.job, key))
            if batch is None or len(batch) >= job.max_batch:
                batch = open_batches[(shard.job, key)] = []
                out.append(batch)
            batch.append((state, shard))
    return out


def _compute(spec, store, states, address, max_workers, summary, resume_hint):
    log_dir = store.root if store.is_local else os.path.join(tempfile.gettempdir(), "lksweep", spec.hash)
    log_path = os.path.join(log_dir, "_logs", "ray.log")
    batches = deque(_batches(states))
    remaining = {s.group.name: len(s.todo) for s in states}
    fresh: Dict[str, Dict] = {s.group.name: {} for s in states}
    with console_to(log_path) as console:
        ray, started = start_ray(address, max_workers if address is None else None)
        task = ray.remote(compute).options(num_cpus=1, max_retries=3)
        window = max_workers or 2 * int(ray.cluster_resources().get("CPU", 1))
        bar = tqdm(total=sum(len(s.todo) for s in states), unit="shard", desc=spec.name, file=console,
                   dynamic_ncols=True, smoothing=0.1, mininterval=0.5)
        in_flight = {}

        def submit(batch):
            job = batch[0][1].job
            ckpts = [store.read_bytes(store.checkpoint_file(job, sh.group, sh.id)) for _, sh in batch]
            ref = task.remote(job, [sh.params for _, sh in batch], ckpts)
            in_flight[ref] = batch

        def finish(ref):
            batch = in_flight.pop(ref)
            unfinished = []
            for (state, shard), result in zip(batch, _get(ray, ref, batch)):
                if isinstance(result, Checkpoint):
                    store.write_bytes(store.checkpoint_file(shard.job, shard.group, shard.id), result.state)
                    unfinished.append((state, shard))
                    bar.set_postfix_str(f"{shard.group}: {result.progress}", refresh=False)
                    continue
                _commit_shard(store, spec, state, shard, result)
                store.delete(store.checkpoint_file(shard.job, shard.group, shard.id))
                fresh[state.group.name][shard.id] = result
                summary.computed += 1
                bar.update(1)
                remaining[state.group.name] -= 1
                if remaining[state.group.name] == 0:
                    _commit_group(store, spec, state, fresh.pop(state.group.name))
                    summary.groups_committed += 1
            if unfinished:
                batches.appendleft(unfinished)

        try:
            while batches or in_flight:
                while batches and len(in_flight) < window:
                    submit(batches.popleft())
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    finish(ref)
        except KeyboardInterrupt:
            # Stop submitting; keep whatever already finished (Ray itself may be going down).
            try:
                ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0) if in_flight else ([], [])
                for ref in ready:
                    finish(ref)
            except Exception:  # noqa: BLE001 - the interrupt is what we report
                pass
            bar.close()
            print(f"\nlksweep: interrupted; {summary.computed} shard(s) of this run are committed in "
                  f"{store.display()}.\nResume with: {resume_hint}", file=console)
            raise
        finally:
            bar.close()
            if started:
                ray.shutdown()


def _get(ray, ref, batch):
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        names = ", ".join(sorted({sh.group for _, sh in batch}))
        raise SweepError(f"a task of group(s) {names} failed: {str(e).strip().splitlines()[-1]}") from e


def record(spec: Spec, groups) -> Dict:
    """What OUT/_sweeps/<spec hash>.json keeps of a sweep: its validated spec, and per job the
    tables it writes and the groups it plans (which ``analysis`` reads without planning). A job
    whose groups write different tables (the discrepancy's, with Lyapunov exponents or an
    LSTM's state) gets one entry per set of tables, keyed ``job:table+table``."""
    kinds: Dict[str, set] = {}
    for g in groups:
        kinds.setdefault(g.job, set()).add(g.tables)
    planned: Dict[str, Dict] = {}
    for g in groups:
        key = g.job if len(kinds[g.job]) == 1 else f"{g.job}:{'+'.join(g.tables)}"
        planned.setdefault(key, {"tables": list(g.tables), "groups": []})["groups"].append(g.name)
    return {"spec": spec.to_dict(), "planned": planned, "version": __version__}


def _meta(spec: Spec, state: GroupState, **extra) -> Dict:
    return {"version": __version__, "spec_hash": spec.hash, "job": state.group.job, "group": state.group.name,
            "settings": state.group.settings, **extra}


def _commit_shard(store, spec, state, shard, table):
    store.write_table(store.shard_file(shard.job, shard.group, shard.id), table,
                      _meta(spec, state, shard=shard.id, params=as_dict(shard.params)))


def _commit_group(store, spec, state, fresh):
    """Merge a group's shards (in plan order) and commit its tables that are missing."""
    tables = [fresh[s.id] if s.id in fresh else store.read_table(store.shard_file(s.job, s.group, s.id))
              for s in state.group.shards]
    merged = get_job(state.group.job).finalize(state.group, tables)
    for name in state.missing_tables:
        store.write_table(store.table_file(name, state.group.name), merged[name], _meta(spec, state))
    state.missing_tables = []


def print_summary(summary: SweepResult, file=None) -> None:
    file = file or sys.stdout
    store = summary.store
    print(f"lksweep: {summary.spec.name}: {summary.computed} shard(s) computed, {summary.reused} reused, "
          f"{summary.groups_committed} group(s) committed, {summary.groups_skipped} already done "
          f"in {summary.seconds:.1f} s", file=file)
    print(f"Results: {store.display()}", file=file)
    for table in summary.tables:
        print(f"  pandas.read_parquet({store.display(store.path(table))!r})", file=file)
