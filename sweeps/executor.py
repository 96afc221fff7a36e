"""What runs the tasks: the interface the runner drives.

An executor is a context manager (``with`` starts what it needs and stops it) that takes
:class:`sweeps.task.Task` s and gives their outputs back when they finish. The runner uses
nothing else of it, so a new way to run tasks (another scheduler, a simulation) implements
these methods: ``sweeps.cluster.RayExecutor`` runs them on Ray, ``benchmarks/bench_engine.py``
simulates one without workers to measure the driver alone.
"""
import abc
import sys
from typing import Any, List, Optional, TextIO, Tuple

from .job import Job
from .task import Output, Task


class Executor(abc.ABC):
    """Runs tasks. Inside ``with``: ``capacity``, the tasks that run at once;
    ``node_memory``, the largest node's memory in bytes (None: not known)."""

    capacity: int
    node_memory: Optional[int] = None
    # Whether the progress bar is hidden whatever the logging level (a benchmark's runs).
    quiet: bool = False

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> Optional[bool]:
        return None

    @property
    def console(self) -> TextIO:
        """Where the progress bar goes: the terminal's stderr."""
        return sys.stderr

    @abc.abstractmethod
    def submit(self, job: Job, task: Task) -> Any:
        """Start ``task`` of ``job``; returns a handle for :meth:`wait` and :meth:`result`."""

    @abc.abstractmethod
    def wait(self, handles: List[Any], timeout: float) -> List[Any]:
        """The handles among ``handles`` whose tasks have finished, waiting up to ``timeout``
        seconds for the first."""

    @abc.abstractmethod
    def result(self, handle: Any, groups: List[str]) -> Tuple[List[Output], float]:
        """(outputs, seconds the task spent) of a finished task; SweepError naming ``groups``
        (those of its shards) when the task failed."""
