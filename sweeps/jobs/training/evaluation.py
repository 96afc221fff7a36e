"""Evaluation of an ensemble on a data set (Hochreiter & Schmidhuber 1997).

A step is correct when the top-|S| outputs are exactly the legal set S, i.e. the smallest
output over S is larger than the largest output outside S (ties count as wrong); a string
is correct when every step is. The outer accuracy is the share of strings whose prediction
right after the inner E puts the matching outer symbol first (embedded task only).
"""
from typing import Dict

import numpy as np
import torch

import cells

from . import models
from .protocols import Protocol
from .reber import Encoded

CHUNK = 500   # sequences evaluated at once: bounds memory, fixed so sums never depend on E


def step_correct(y: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """(E, ...) bool for outputs y (E, ..., 7) and legal sets (..., 7), e.g. y (E, B, L, 7)."""
    inf = torch.tensor(float("inf"), dtype=y.dtype)
    lowest_legal = torch.where(legal, y, inf).amin(-1)
    highest_other = torch.where(legal, -inf, y).amax(-1)
    return lowest_legal > highest_other


@torch.no_grad()
def evaluate(cell: cells.Cell, p: cells.Params, data: Encoded, protocol: Protocol, embedded: bool) -> Dict[str, np.ndarray]:
    """Mean loss per sequence and the accuracies of every member: arrays (E,), float64.
    Outer accuracy is NaN for the plain Reber task."""
    e, b = p["O"].shape[0], data.x.shape[0]
    loss, strings, steps, outer = (np.zeros(e) for _ in range(4))
    for a in range(0, b, CHUNK):
        d = data.take(slice(a, a + CHUNK))
        x = d.x.unsqueeze(0).expand(e, *d.x.shape)
        y, _ = models.forward(cell, p, x, d.mask)
        loss += protocol.sequence_loss(y, d.target, d.mask).double().sum(1).numpy()
        # Step scores only at the real steps (row-wise: the same as over the padded length).
        seq, step = d.mask.nonzero(as_tuple=True)
        ok = step_correct(y[:, seq, step], d.legal[seq, step])               # (E, R)
        wrong = torch.zeros(e, d.mask.shape[0], dtype=torch.int32).index_add_(1, seq, (~ok).int())
        strings += (wrong == 0).sum(1).numpy()
        steps += ok.sum(1).numpy()
        rows = torch.arange(len(d.last))
        first = y[:, rows, d.last].argmax(-1) == d.target[rows, d.last]
        outer += first.sum(1).numpy()
    n_steps = int(data.mask.sum())
    return {"loss": loss / b, "string_accuracy": strings / b, "step_accuracy": steps / n_steps,
            "outer_accuracy": outer / b if embedded else np.full(e, np.nan)}
