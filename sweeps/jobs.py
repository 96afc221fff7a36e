"""The jobs a sweep can run, by the name of their spec section.

A job module provides:

- ``JOB`` (its name) and ``validate(section) -> dict``: the spec section, checked;
- ``plan(section) -> [Group]``: groups of shards, in a deterministic order;
- ``compute(params_list, states) -> [pyarrow.Table | Checkpoint]``: runs on a Ray worker
  over a batch of shards (``states[i]`` is shard i's last checkpoint or None); a shard
  that is not finished yet returns a :class:`Checkpoint` and is submitted again with it;
- ``finalize(group, shard tables) -> {table: pyarrow.Table}``: runs on the driver;
- ``batch_key(shard)``: shards with the same non-None key may run together in one task,
  at most ``MAX_BATCH`` of them.
"""
from dataclasses import dataclass

from . import discrepancy, training

JOBS = {discrepancy.JOB: discrepancy, training.JOB: training}


@dataclass
class Checkpoint:
    """An unfinished shard's state, opaque to the runner, committed by the driver;
    ``progress`` (e.g. "epoch 12") is shown beside the progress bar."""

    state: bytes
    progress: str = ""


def compute(job: str, params_list, states):
    return JOBS[job].compute(params_list, states)
