"""A sweep's progress: the bar of shards finished, and notes beside it.

The bar goes where the executor says (``Executor.console``: the terminal, which Ray's own
output leaves) and shows unless the ``lksweep`` logger is set above INFO (``sweeps.console``)
or the executor is quiet. Beside it: a shard's last checkpoint progress, or the age of a task
running longer than :data:`LONG_TASK_S`, so a long sweep never looks stuck.
"""
import time
from typing import Iterable, Optional

from . import console, cost
from .executor import Executor

# A task running longer than this shows its age beside the progress bar (seconds).
LONG_TASK_S = 600.0


class Reporter:
    """The progress bar of a sweep named ``name`` with ``total`` shards to compute (a shard's
    estimated longest duration ``shard_seconds``, when the job gives one)."""

    def __init__(self, name: str, total: int, ex: Executor, shard_seconds: Optional[float] = None):
        from tqdm import tqdm

        self.shard_seconds = shard_seconds
        self.bar = tqdm(total=total, unit="shard", desc=name, file=ex.console, dynamic_ncols=True, smoothing=0.1,
                        mininterval=0.5, disable=ex.quiet or not console.progress_shown())

    def finished(self, shards: int) -> None:
        """``shards`` more shards are finished."""
        self.bar.update(shards)

    def again(self, shards: int) -> None:
        """``shards`` more shards to compute (found damaged)."""
        self.bar.total += shards

    def note(self, text: str) -> None:
        """A line beside the bar, until the next one."""
        self.bar.set_postfix_str(text, refresh=False)

    def running_since(self, starts: Iterable[float]) -> None:
        """The tasks in flight started at ``starts`` (``time.monotonic``): the oldest shows its
        age once past LONG_TASK_S (against the job's estimate of its longest shard)."""
        starts = list(starts)
        if not starts:
            return
        age = time.monotonic() - min(starts)
        if age > LONG_TASK_S:
            of = f" of about {cost.duration(self.shard_seconds)} estimated" if self.shard_seconds else ""
            self.bar.set_postfix_str(f"a task has run {cost.duration(age)}{of}")

    def close(self) -> None:
        self.bar.close()
