"""Cost before commitment: what a sweep will cost, told from its settings before anything is
planned, written or started, and the sizes above which it is refused.

Each job estimates a block of settings (``Job.estimate``): its groups and shards, and, when
it can tell, the memory and one core's time of its largest shard. A sweep is refused (one
line, exit code 2) when

- planning it cannot fit: more than :data:`MAX_PLANNED` shards (about
  :data:`PLAN_BYTES` bytes of the driver's memory each);
- one of its shards cannot fit in the memory of the machine that runs it (this machine for
  a local instance; a cluster's largest node, checked once connected, before any task);

and, unless ``--large`` is given, when it plans more than :data:`MAX_SHARDS` shards or a
shard is estimated to run more than :data:`MAX_SHARD_HOURS` hours (a shard shows no
progress while it runs: a smaller shard size splits it).
"""
import os
from dataclasses import dataclass
from typing import Optional

from .errors import UsageError
from .job import get_job

MAX_SHARDS = 10**6
MAX_SHARD_HOURS = 1.0
PLAN_BYTES = 600            # measured: benchmarks/bench_engine.py (planning 10^6 shards)
MAX_PLANNED = 10**8


@dataclass
class SweepCost:
    """A whole sweep's estimate: totals, and its largest and its longest shard."""

    groups: int = 0
    shards: int = 0
    seconds: Optional[float] = 0.0   # one core's time for every shard (None: a block cannot tell)
    shard_bytes: float = 0.0
    biggest: str = ""
    shard_seconds: float = 0.0
    longest: str = ""


def estimate(sections) -> SweepCost:
    """Sum the jobs' estimates of every block of a spec's ``sections``."""
    total = SweepCost()
    for job, blocks in sections.items():
        for block in blocks:
            e = get_job(job).estimate(block)
            total.groups += e.groups
            total.shards += e.shards
            total.seconds = None if e.seconds is None or total.seconds is None else total.seconds + e.seconds
            if (e.shard_bytes or 0) > total.shard_bytes:
                total.shard_bytes, total.biggest = e.shard_bytes, f"{job}: {e.largest}"
            if (e.shard_seconds or 0) > total.shard_seconds:
                total.shard_seconds, total.longest = e.shard_seconds, f"{job}: {e.largest}"
    return total


def check_count(e: SweepCost, large: bool) -> None:
    """Refuse what cannot be planned, and, without ``large``, more than MAX_SHARDS shards."""
    if e.shards > MAX_PLANNED:
        raise UsageError(f"refused: this sweep plans {e.shards:,} shards; planning them would take about "
                         f"{_size(e.shards * PLAN_BYTES)} of memory (at most {MAX_PLANNED:,} shards can be planned); "
                         f"raise the shard size or split the sweep")
    if e.shards > MAX_SHARDS and not large:
        raise UsageError(f"refused: this sweep plans {e.shards:,} shards in {e.groups:,} groups, more than "
                         f"{MAX_SHARDS:,} (about {_size(e.shards * PLAN_BYTES)} of driver memory to plan); pass --large "
                         f"to run it anyway, or raise the shard size")


def check_shard(e: SweepCost, large: bool, available: Optional[float], where: str) -> None:
    """Refuse a shard that cannot fit in ``available`` bytes of memory (None: not known yet),
    and, without ``large``, one estimated above MAX_SHARD_HOURS."""
    check_memory(e, available, where)
    if e.shard_seconds > MAX_SHARD_HOURS * 3600 and not large:
        raise UsageError(f"refused: one shard ({e.longest}) would run about {duration(e.shard_seconds)} on one core "
                         f"with no progress shown; lower the shard size (e.g. --shard-size) to split it, or pass "
                         f"--large to run it anyway")


def check_memory(e: SweepCost, available: Optional[float], where: str) -> None:
    """Refuse a shard that cannot fit in ``available`` bytes of memory (None: not known yet)."""
    if e.shard_bytes and available and e.shard_bytes > available:
        raise UsageError(f"refused: one shard ({e.biggest}) needs about {_size(e.shard_bytes)} of memory; "
                         f"{where} has {_size(available)}")


def machine_memory() -> Optional[float]:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def describe(e: SweepCost, todo_shards: int) -> str:
    """One line: what is left to compute and what it should cost."""
    text = f"{todo_shards:,} of {e.shards:,} shard(s) to compute"
    if e.seconds:
        text += f", about {duration(e.seconds * todo_shards / max(e.shards, 1))} of one core"
    if e.shard_bytes:
        text += f"; the largest shard needs about {_size(e.shard_bytes)}"
    return text + (" (estimated)" if e.seconds or e.shard_bytes else "")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def duration(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"
