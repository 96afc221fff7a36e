"""A training run: everything its numbers depend on, with every default resolved."""
from dataclasses import dataclass
from typing import Optional

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}
N_TRAIN = {"reber": 250, "embedded-reber": 2000}   # the paper's set sizes (its notebooks used 256)


@dataclass(frozen=True)
class Run:
    """One shard of the training job: one (task, cell, k, protocol, seed) and its settings."""

    task: str
    cell: str
    k: int
    protocol: str
    seed: int
    n_train: int
    n_test: int
    lr: float
    max_epochs: int
    batch_size: int
    bias: str
    init: str
    data_seed: int
    dtype: str
    checkpoint_s: float
    tol: Optional[float] = None     # read by protocols whose stopping rule uses it


def run_id(task: str, cell: str, k: int, protocol: str, seed: int) -> str:
    return f"{task}-{cell}-k{k}-{protocol}-seed{seed}"
