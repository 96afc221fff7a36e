"""A training run: everything its numbers depend on, with every default resolved."""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Run:
    """One shard of the training job: one (task, cell, k, protocol and its ingredients, seed)
    and its settings. ``engine`` is the code that computes it (``numba``: the compiled fast
    path; ``torch``: the cells' torch equations): the two agree to rounding, not bit for bit,
    so the engine is part of a run's identity."""

    task: str
    cell: str
    k: int
    protocol: str
    optimizer: str
    loss: str
    order: str
    seed: int
    n_train: int
    n_val: int
    n_test: int
    lr: float
    max_epochs: int
    batch_size: int
    bias: str
    init: str
    data_seed: int
    dtype: str
    engine: str
    checkpoint_s: float
    tol: Optional[float] = None     # read by protocols whose stopping rule uses it
    lag: Optional[Tuple[int, int]] = None   # inner-string lengths (lo, hi); None: the grammar's own
    sampling: str = "disjoint"      # how the sets are drawn (reber.SAMPLINGS)


def run_id(task: str, cell: str, k: int, recipe: str, seed: int, lag: Optional[Tuple[int, int]] = None,
           init: str = "normal") -> str:
    """``<task>-<cell>-k<k>-<recipe>[-lag<lo>-<hi>][-<init>]-seed<seed>``; the recipe
    (``Protocol.recipe``) is the protocol and the ingredients that differ from its own, e.g.
    ``paper+adam+cross-entropy``; the lag range appears when the run sets one, the initial draws
    when they are not the paper's N(0,1) (``gain:2`` as ``gain2``: one sweep may train several)."""
    draws = "" if init == "normal" else "-" + init.replace(":", "")
    return f"{task}-{cell}-k{k}-{recipe}{f'-lag{lag[0]}-{lag[1]}' if lag else ''}{draws}-seed{seed}"
