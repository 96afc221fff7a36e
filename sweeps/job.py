"""The job contract: what the engine needs from a job, and the registry it finds jobs in.

A job is the kind of work one section of a spec asks for (``discrepancy``, ``training``). It
declares its settings once (:mod:`sweeps.settings`) and turns each validated block into groups
of shards (:mod:`sweeps.plan`); the engine computes the shards as Ray tasks, commits each one,
and asks the job to merge a group's shards into rows of its tables::

    spec block --parse--> Settings --plan--> [Group of Shards] --compute (Ray)--> shard tables
        --finalize--> {table: rows of one group}

A new job is one module or package under ``sweeps/jobs/`` that subclasses :class:`Job` and
decorates it with :func:`register_job`; the spec, the CLI (a command with one flag per
option), ``status`` and ``schema`` find it there without edits elsewhere.
"""
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple

import pyarrow as pa

from .contract import ShardFormat
from .errors import UsageError
from .plan import Group, Shard
from .settings import Option, Settings, settings_class


@dataclass
class Estimate:
    """What one block of settings costs, told from the settings alone (before planning)."""

    groups: int
    shards: int
    shard_bytes: Optional[float] = None      # peak memory of its largest shard, bytes
    shard_seconds: Optional[float] = None    # one core's time for its longest shard
    seconds: Optional[float] = None          # one core's time for all its shards
    largest: str = ""                        # which shard that is, in words ("gru, k=256")


@dataclass
class Checkpoint:
    """An unfinished shard's state, opaque to the engine, committed by the driver and given
    back to ``compute`` on the next submission; ``progress`` (e.g. "epoch 12") is shown beside
    the progress bar. The state must be data only (no pickle): it may come back from a shared
    bucket."""

    state: bytes
    progress: str = ""


class Job:
    """Base of every job. Subclasses set the class attributes and implement :meth:`plan`,
    :meth:`compute` and :meth:`finalize`; the defaults are: no batching, no checkpoints."""

    name: ClassVar[str]                     # the spec section, e.g. "discrepancy"
    command: ClassVar[str]                  # the CLI command, e.g. "discrepancy", "train"
    help: ClassVar[str]                     # one line for `lksweep -h`
    options: ClassVar[Tuple[Option, ...]]   # the settings of one block, declared once
    tables: ClassVar[Tuple[str, ...]]       # tables its groups commit to
    schemas: ClassVar[Dict[str, pa.Schema]]  # their columns, documented (sweeps.contract.schema)
    shard: ClassVar[ShardFormat]            # the tables one shard returns, packed: compute writes, finalize reads
    max_batch: ClassVar[int] = 1            # shards with the same batch_key run together, up to this
    Settings: ClassVar[type]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "options" in cls.__dict__:
            cls.Settings = settings_class(f"{cls.__name__}Settings", cls.name, cls.options)

    def plan(self, settings: Settings) -> List[Group]:
        """The groups of one validated block, in a deterministic order."""
        raise NotImplementedError

    def batch_key(self, shard: Shard) -> Optional[str]:
        """Shards with the same non-None key may run together in one task."""
        return None

    def compute(self, params: Sequence[Any], states: Sequence[Optional[bytes]]) -> List[Any]:
        """Runs on a Ray worker over a batch of shards' params; ``states[i]`` is shard i's last
        checkpoint or None. Returns per shard its tables packed by ``self.shard`` (finished) or
        a Checkpoint (submitted again with it)."""
        raise NotImplementedError

    def finalize(self, group: Group, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
        """A group's shard tables (in plan order, each unpacked by ``self.shard``, which refuses
        one whose tables differ from the declaration) as rows of each table. Runs on the worker
        that computed the group's last shards, or on the driver when they were computed in
        several tasks."""
        raise NotImplementedError

    def estimate(self, settings: Settings) -> Estimate:
        """What a block costs, before anything is planned or started (``sweeps.spec`` refuses
        a sweep too large to plan or whose shards cannot fit). Default: plan the block and
        count; a job whose blocks can be huge (a range of 10^12 draws) says it from its
        settings, and adds the memory and time of its largest shard when it can tell."""
        groups = self.plan(settings)
        return Estimate(len(groups), sum(len(g.shards) for g in groups))

    def check_checkpoint(self, state: bytes, params: Any) -> None:
        """Raise ValueError when ``state`` is not a checkpoint the shard of ``params`` can resume
        from; the driver calls it before sending a shard with its checkpoint, and starts the
        shard over (naming and setting the file aside) when it raises. Default: accept."""

    def commands(self) -> Dict[str, Tuple[str, Callable, Callable]]:
        """Extra CLI commands: name -> (help, add_arguments(parser), run(args) -> exit code)."""
        return {}


_JOBS: Dict[str, Job] = {}
_DISCOVERED: List[bool] = []


def register_job(cls):
    """Class decorator: make ``cls`` a job of its ``name`` section."""
    for attr in ("name", "command", "help", "options", "tables", "schemas", "shard"):
        if not hasattr(cls, attr):
            raise TypeError(f"job {cls.__name__} must define {attr!r}")
    _JOBS[cls.name] = cls()
    return cls


def jobs() -> Dict[str, Job]:
    """Every registered job by section name (imports every module of ``sweeps.jobs`` once)."""
    if not _DISCOVERED:
        package = importlib.import_module("sweeps.jobs")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
        _DISCOVERED.append(True)
    return _JOBS


def get_job(name: str) -> Job:
    try:
        return jobs()[name]
    except KeyError:
        raise UsageError(f"unknown job {name!r}; known jobs: {', '.join(sorted(jobs()))}") from None
