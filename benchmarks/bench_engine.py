"""The engine's own costs, printed as tables (run on demand):

    python benchmarks/bench_engine.py [--quick] [--only ray|simulate|rerun|plan|model]

Temporary directories go under $BENCH_DIR when it is set (BENCH_DIR=/dev/shm takes the disk
out of the numbers; the default, the system's temporary directory, keeps it in).

Shards of negligible compute (a job that returns one row per shard), so that every number is
the engine's: planning, surveying, packing shards into tasks, committing files, the index.

1. ray: committed shards per second through the real runner and a real local Ray instance
   (2 worker CPUs), for groups of 100 shards and for one-shard groups; and the same with the
   engine's choices undone one at a time (one shard per task; one fsync per file instead of
   one sync per batch), to show what each is worth.
2. simulate: 10^6 shards against a simulated executor (tasks complete after a configured
   latency, at a configured rate, with no compute and no serialization: what workers would do
   is not charged to the driver). Prints the driver's ceiling in shards per second (offered
   rate unlimited), its peak memory and its planning time; and whether it keeps up with
   offered rates of 5,000 and 20,000 shards a second.
3. rerun: a fully committed directory of 10^5 one-shard groups, run again: survey by listing
   and index, nothing computed (target <= 10 s); and with the index removed (every file
   opened).
4. plan: planning time and memory of 10^6 discrepancy shards (target < 1 GiB).
5. model: the discrepancy job's cost model (``shard_cost``, which refuses shards too large or
   too long before anything starts) against measured shards: time and peak memory.
"""
import argparse
import heapq
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List

import pyarrow as pa

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from sweeps import backends, packer, runner  # noqa: E402
from sweeps import task as task_module
from sweeps.executor import Executor  # noqa: E402
from sweeps.job import Estimate, Job, jobs, register_job  # noqa: E402
from sweeps.plan import Group, Shard  # noqa: E402
from sweeps.settings import Int, Option  # noqa: E402
from sweeps.spec import validate  # noqa: E402
from sweeps.store import Store  # noqa: E402

ROW = pa.schema([("group", pa.int64()), ("shard", pa.int64())])


@dataclass(frozen=True, slots=True)
class Unit:
    group: int
    shard: int


@register_job
class Noop(Job):
    """Shards of negligible compute: one row each."""

    name = command = "noop"
    help = "benchmark: shards that compute nothing"
    tables = ("noop",)
    schemas = {"noop": ROW}
    options = (Option("groups", Int(minimum=1), "groups"), Option("shards", Int(minimum=1), "shards per group"),
               Option("first", Int(minimum=0), "first group's number", 0))

    def plan(self, s) -> List[Group]:
        return [Group(self.name, f"g{g}", {"shards": s.shards},
                      tuple(Shard(self.name, f"g{g}", Unit(g, i)) for i in range(s.shards)), self.tables)
                for g in range(s.first, s.first + s.groups)]

    def estimate(self, s) -> Estimate:
        return Estimate(s.groups, s.groups * s.shards)

    def compute(self, params, states=None):
        return [pa.table({"group": [p.group], "shard": [p.shard]}, schema=ROW) for p in params]

    def finalize(self, group, shard_tables):
        return {"noop": pa.concat_tables(shard_tables)}


def noop_spec(groups: int, shards: int, first: int = 0):
    return validate({"name": "bench", "noop": {"groups": groups, "shards": shards, "first": first}}, large=True)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------- 1. real Ray
def ray_throughput(quick: bool) -> None:
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    n = 4000 if quick else 20000
    cases = [("groups of 100 shards", n // 100, 100), ("one-shard groups", n // 4, 1)]
    variants = {"as built": {}, "one shard per task": {"MAX_PACK": 1},
                "fsync per file": {"_sync": backends.fsync_each}}
    print(f"\n1. Committed shards per second, real runner, local Ray (2 worker CPUs), {n:,} shards of no compute")
    print(f"{'case':<24}{'variant':<22}{'shards':>8}{'seconds':>9}{'shards/s':>10}")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as out, _quiet():
        runner.run(noop_spec(20, 10), Store(out))      # start the workers and their imports
    for label, groups, shards in cases:
        for variant, patch in variants.items():
            if quick and variant != "as built" and shards == 1:
                continue
            count = groups * shards if variant != "one shard per task" else min(groups * shards, 2000)
            g = count // shards
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as out, _patched(patch), _quiet():
                spec = noop_spec(g, shards)
                t0 = time.perf_counter()
                result = runner.run(spec, Store(out), executor=None)
                seconds = time.perf_counter() - t0
                assert result.computed == g * shards
            print(f"{label:<24}{variant:<22}{g * shards:>8,}{seconds:>9.2f}{g * shards / seconds:>10,.0f}")
    ray.shutdown()


class _quiet:
    """Send file descriptor 2 (where the progress bar goes) to /dev/null."""

    def __enter__(self):
        self.saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


class _patched:
    """Set module attributes of the packer, the runner or the store for one run."""

    def __init__(self, patch: Dict):
        self.patch, self.saved = patch, {}

    def __enter__(self):
        for name, value in self.patch.items():
            module = next(m for m in (packer, runner, backends) if hasattr(m, name))
            self.saved[name] = (module, getattr(module, name))
            setattr(module, name, value)

    def __exit__(self, *exc):
        for name, (module, value) in self.saved.items():
            setattr(module, name, value)


# ---------------------------------------------------------------------- 2. simulated executor
class Simulated(Executor):
    """An executor without workers: a task completes ``latency`` seconds after it is
    submitted plus ``per_shard`` seconds per shard, at most ``capacity`` at a time; its
    outputs are copies of one template file (``encode``: really computed and encoded,
    inline, for directories that a later survey must accept)."""

    quiet = True

    def __init__(self, capacity: int, latency: float, per_shard: float, encode: bool = False):
        self.capacity, self.latency, self.per_shard, self.encode = capacity, latency, per_shard, encode
        self._due: Dict[int, tuple] = {}
        self._free: List[float] = []      # when each busy worker is free again
        self._order: List[tuple] = []     # (due, handle) of the tasks not returned yet
        self._next = 0
        self._template = None

    def submit(self, job, task):
        self._next += 1
        now = time.perf_counter()
        free = heapq.heappop(self._free) if len(self._free) >= self.capacity else now
        due = max(free, now) + self.latency + self.per_shard * task.size
        heapq.heappush(self._free, due)
        heapq.heappush(self._order, (due, self._next))
        self._due[self._next] = (due, (job, task))
        return self._next

    def wait(self, handles, timeout):
        """The tasks due by now (all in flight are ``handles``), after sleeping up to ``timeout``
        for the first."""
        if self._order and self._order[0][0] > time.perf_counter():
            time.sleep(max(0.0, min(timeout, self._order[0][0] - time.perf_counter())))
        now, ready = time.perf_counter(), []
        while self._order and self._order[0][0] <= now:
            ready.append(heapq.heappop(self._order)[1])
        return ready

    def result(self, handle, groups):
        _, (job, task) = self._due.pop(handle)
        if self.encode:
            return task_module.run(job, task)
        if self._template is None:
            data, meta = task_module.encode(pa.table({"group": [0], "shard": [0]}, schema=ROW),
                                            {"job": "noop", "kind": "shard", "group": "g0", "shard": "x",
                                             "settings": {"shards": 1}})
            self._template = (data, meta)
        data, meta = self._template
        finish = {g.name for g in task.finish}
        out = [task_module.Merged(g, "noop", data, {**meta, "kind": "table", "table": "noop", "group": g})
               for g in finish]
        out += [task_module.Done(sh.group, sh.id, data, {**meta, "group": sh.group, "shard": sh.id})
                for batch in task.batches for sh in batch if sh.group not in finish]
        return out, self.per_shard * task.size


def simulate(quick: bool) -> None:
    big = 10**5 if quick else 10**6
    print("\n2. The driver against a simulated executor (no compute, no serialization; files written for real)")
    print(f"{'shards':>10}{'per group':>10}{'offered/s':>11}{'workers':>8}{'latency s':>10}{'plan s':>8}{'run s':>8}"
          f"{'committed/s':>13}{'peak RSS MiB':>14}")
    cases = [(big, 100, None, 64, 0.0), (big // 10, 1, None, 64, 0.0), (big // 10, 100, 5000, 500, 0.05),
             (big // 10, 100, 20000, 2000, 0.05)]
    for total, per_group, rate, workers, latency in cases:
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as out:
            t0 = time.perf_counter()
            spec = noop_spec(total // per_group, per_group)
            spec.groups()
            plan_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            runner.run(spec, Store(out), executor=Simulated(workers, latency, workers / rate if rate else 0.0))
            run_s = time.perf_counter() - t1
            print(f"{total:>10,}{per_group:>10}{rate or 'unlimited':>11}{workers:>8}{latency:>10g}{plan_s:>8.1f}"
                  f"{run_s:>8.1f}{total / run_s:>13,.0f}{rss_mib():>14,.0f}")


# ---------------------------------------------------------------------- 3. rerun
def rerun(quick: bool) -> None:
    groups = 10**4 if quick else 10**5
    print(f"\n3. Running a fully committed directory of {groups:,} one-shard groups again (nothing to compute)")
    print(f"{'case':<40}{'files':>9}{'seconds':>9}")
    out = tempfile.mkdtemp(dir=os.environ.get("BENCH_DIR"))
    try:
        spec = noop_spec(groups, 1)
        runner.run(spec, Store(out), executor=Simulated(64, 0.0, 0.0, encode=True))
        files = sum(len(f) for _, _, f in os.walk(out))
        for case in ("listing and index", "listing and index (again)", "no index: every file opened"):
            if case.startswith("no index"):
                shutil.rmtree(os.path.join(out, "_index"))
            code = (f"import sys, time; sys.path.insert(0, {os.path.dirname(__file__)!r}); import bench_engine as B; "
                    f"from sweeps import runner; from sweeps.store import Store; t0 = time.perf_counter(); "
                    f"r = runner.run(B.noop_spec({groups}, 1), Store({out!r})); assert r.computed == 0, r; "
                    f"print(time.perf_counter() - t0)")
            seconds = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                            .stdout.split()[-1])
            print(f"{case:<40}{files:>9,}{seconds:>9.2f}")
    finally:
        shutil.rmtree(out)


# ---------------------------------------------------------------------- 4. planning
def plan(quick: bool) -> None:
    k = "1-100" if quick else "1-1000"
    block = f"{{'cells': 'vanilla', 'k': '{k}', 'seeds': '0-19', 'draws': 2500, 'shard_size': 50, 'l_max': 50}}"
    code = ("import resource, time; from sweeps.spec import validate; from sweeps.job import jobs; jobs(); "
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; t0 = time.perf_counter(); "
            f"s = validate({{'discrepancy': {block}}}, large=True); "
            "n = sum(len(g.shards) for g in s.groups()); ids = [sh.id for g in s.groups() for sh in g.shards]; "
            "print(n, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, base / 1024)")
    n, seconds, peak, base = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True).stdout.split()
    print("\n4. Planning discrepancy shards (and their ids) in a fresh process")
    print(f"{'shards':>10}{'seconds':>9}{'peak RSS MiB':>14}{'of which imports':>18}")
    print(f"{int(n):>10,}{float(seconds):>9.1f}{float(peak):>14,.0f}{float(base):>18,.0f}")


# ---------------------------------------------------------------------- 5. the cost model
MEASURE = ("import resource, sys, time, torch; torch.set_num_threads(1); from sweeps.jobs import discrepancy as D; "
           "cell, k, l, d = sys.argv[1], *map(int, sys.argv[2:]); "
           "D.compute_shard(D.DrawRange(cell, 'normal', 1, 0, 50, 2, 'float64', 1e-6, 0, 50)); "
           "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; t0 = time.perf_counter(); "
           "D.compute_shard(D.DrawRange(cell, 'normal', k, 0, d, l, 'float64', 1e-6, 0, d)); "
           "print(time.perf_counter() - t0, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)")


def model(quick: bool) -> None:
    from sweeps.jobs.discrepancy import shard_cost

    cases = [("vanilla", 8, 400, 1000), ("gru", 32, 200, 500), ("gru", 128, 100, 100), ("vanilla", 512, 100, 50)]
    print("\n5. The discrepancy cost model against one measured shard (one thread, a fresh process)")
    print(f"{'cell':<9}{'k':>5}{'l_max':>7}{'draws':>7}{'model s':>9}{'measured s':>12}{'model MiB':>11}{'measured MiB':>14}")
    for cell, k, l_max, draws in cases[:2] if quick else cases:
        seconds, peak = subprocess.run([sys.executable, "-c", MEASURE, cell, str(k), str(l_max), str(draws)],
                                       capture_output=True, text=True, check=True).stdout.split()
        mem, t = shard_cost(cell, k, l_max, draws)
        print(f"{cell:<9}{k:>5}{l_max:>7}{draws:>7}{t:>9.2f}{float(seconds):>12.2f}{mem / 2**20:>11.0f}"
              f"{float(peak) / 2**20:>14.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller sizes (a tenth)")
    p.add_argument("--only", choices=["ray", "simulate", "rerun", "plan", "model"])
    a = p.parse_args()
    jobs()
    print(f"Python {sys.version.split()[0]}, pyarrow {pa.__version__}, {os.cpu_count()} CPUs")
    for name, fn in [("ray", ray_throughput), ("simulate", simulate), ("rerun", rerun), ("plan", plan),
                     ("model", model)]:
        if a.only in (None, name):
            fn(a.quick)


if __name__ == "__main__":
    main()
