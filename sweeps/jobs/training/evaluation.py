"""Evaluation of an ensemble on a data set (Hochreiter & Schmidhuber 1997).

A step is correct when the top-|S| outputs are exactly the legal set S, i.e. the smallest
output over S is larger than the largest output outside S (ties count as wrong); a string
is correct when every step is. The outer accuracy is the share of strings whose prediction
right after the inner E puts the matching outer symbol first (embedded task only).
"""
from typing import Callable, Dict

import numpy as np
import torch

import cells

from . import models
from .protocols import sequence_loss
from .reber import Encoded

CHUNK = 500   # sequences evaluated at once: bounds memory, fixed so sums never depend on E


def step_correct(y: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """(E, ...) bool for outputs y (E, ..., 7) and legal sets (..., 7), e.g. y (E, B, L, 7)."""
    inf = torch.tensor(float("inf"), dtype=y.dtype)
    lowest_legal = torch.where(legal, y, inf).amin(-1)
    highest_other = torch.where(legal, -inf, y).amax(-1)
    return lowest_legal > highest_other


@torch.no_grad()
def per_string(cell: cells.Cell, p: cells.Params, data: Encoded, step_loss: Callable):
    """(loss, wrong, first), each (E, B): per member and string, the loss (``step_loss``
    summed over the string's steps), the number of wrong steps, and whether the output at the
    long-term step (``data.last``) puts the right symbol first (ties: the first largest)."""
    e, b = p["O"].shape[0], data.x.shape[0]
    loss, wrong, first = np.zeros((e, b)), np.zeros((e, b), np.int64), np.zeros((e, b), bool)
    for a in range(0, b, CHUNK):
        d = data.take(slice(a, a + CHUNK))
        x = d.x.unsqueeze(0).expand(e, *d.x.shape)
        y, _ = models.forward(cell, p, x, d.mask)
        loss[:, a:a + len(d.last)] = sequence_loss(step_loss, y, d.target, d.mask).double().numpy()
        # Step scores only at the real steps (row-wise: the same as over the padded length).
        seq, step = d.mask.nonzero(as_tuple=True)
        ok = step_correct(y[:, seq, step], d.legal[seq, step])               # (E, R)
        bad = torch.zeros(e, d.mask.shape[0], dtype=torch.int64).index_add_(1, seq, (~ok).long())
        wrong[:, a:a + len(d.last)] = bad.numpy()
        rows = torch.arange(len(d.last))
        first[:, a:a + len(d.last)] = (y[:, rows, d.last].argmax(-1) == d.target[rows, d.last]).numpy()
    return loss, wrong, first


def scores(loss: np.ndarray, wrong: np.ndarray, first: np.ndarray, data: Encoded, embedded: bool) -> Dict[str, np.ndarray]:
    """Mean loss per sequence and the accuracies of every member, arrays (E,), from the
    per-string results (E, B) of ``per_string`` or the fast path's ``kernels.evaluate``.
    Outer accuracy is NaN for the plain Reber task."""
    steps = data.mask.sum(1).numpy()
    return {"loss": loss.mean(1), "string_accuracy": (wrong == 0).mean(1),
            "step_accuracy": (steps - wrong).sum(1) / steps.sum(),
            "outer_accuracy": first.mean(1) if embedded else np.full(len(loss), np.nan)}


def evaluate(cell: cells.Cell, p: cells.Params, data: Encoded, step_loss: Callable, embedded: bool) -> Dict[str, np.ndarray]:
    """``scores`` of every member of ``p`` on ``data`` through the torch equations."""
    return scores(*per_string(cell, p, data, step_loss), data, embedded)
