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
    """(E, B, L) bool for outputs y (E, B, L, 7) and legal sets (B, L, 7)."""
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
        target = d.target.unsqueeze(0).expand(e, *d.target.shape)
        loss += protocol.sequence_loss(y, target, d.mask).double().sum(1).numpy()
        ok = step_correct(y, d.legal) | ~d.mask
        strings += ok.all(-1).sum(1).numpy()
        steps += (ok & d.mask).sum((1, 2)).numpy()
        rows = torch.arange(len(d.last))
        first = y[:, rows, d.last].argmax(-1) == d.target[rows, d.last]
        outer += first.sum(1).numpy()
    n_steps = int(data.mask.sum())
    return {"loss": loss / b, "string_accuracy": strings / b, "step_accuracy": steps / n_steps,
            "outer_accuracy": outer / b if embedded else np.full(e, np.nan)}
