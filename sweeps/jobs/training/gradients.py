"""Gradient magnitudes over every training example (paper Fig 9), summarised compactly.

Per-example gradients come from one batched backward pass: each (member, example) pair
gets its own replica of the member's parameters, so the gradient with respect to a replica
is that example's gradient alone. Summaries per (member, tensor): count, mean, max and the
log-spaced histogram of ``sweeps.contract`` (quantiles read from it, within 4.7 %), and the
structural zeros among them: the coefficients of an input-weight tensor U<g> in the columns of
symbols absent from an example's string, whose gradient is exactly 0 by construction (one-hot
inputs). They stay in the histogram's zero bin and are counted apart, so a reader can leave them
out of a share of small gradients.

The vanishing-gradient measure: for loss_T, the loss of the step predicting the outer
symbol (embedded) or the final E (reber), ||∂loss_T/∂h_t||_2 against d = T - t, summarised
per (member, d) the same way.
"""
from typing import Callable, Dict, List

import numpy as np
import torch

import cells

from ... import contract
from . import models
from .reber import Encoded

EXAMPLES = 128       # examples per backward pass: fixed, so a member's sums never depend on E
QUANTILES = {"q10": 0.1, "q50": 0.5, "q90": 0.9, "q99": 0.99}


class Magnitudes:
    """Running count, sum, max and histogram of non-negative values; values that are not
    finite (a diverging model's) are counted apart and left out of the rest."""

    def __init__(self):
        self.n, self.total, self.max, self.nonfinite, self.structural = 0, 0.0, 0.0, 0, 0
        self.hist = np.zeros(contract.N_BINS, np.int64)

    def add(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        if not finite.all():
            self.nonfinite += int(values.size - finite.sum())
            values = values[finite]
        if values.size == 0:
            return
        self.n += values.size
        self.total += float(values.sum())
        self.max = max(self.max, float(values.max()))
        self.hist += np.bincount(contract.histogram_bins(values), minlength=contract.N_BINS)

    def row(self) -> Dict:
        nonzero = np.flatnonzero(self.hist)
        if not self.n:   # nothing finite to summarise
            return {"n": 0, "nonfinite": self.nonfinite, "structural_zeros": self.structural, "mean": np.nan,
                    "max": np.nan, **{name: np.nan for name in QUANTILES}, "hist_bin": nonzero.astype(np.int16),
                    "hist_count": self.hist[nonzero]}
        return {"n": self.n, "nonfinite": self.nonfinite, "structural_zeros": self.structural,
                "mean": self.total / self.n, "max": self.max,
                **{name: contract.quantile(self.hist, q) for name, q in QUANTILES.items()},
                "hist_bin": nonzero.astype(np.int16), "hist_count": self.hist[nonzero]}


def summarise(cell: cells.Cell, p: cells.Params, data: Encoded, step_loss: Callable) -> List[List[Dict]]:
    """For each member, the rows (without run columns) of its gradient summaries:
    quantity 'param' per tensor, then quantity 'hidden' per distance d; ``step_loss`` is the
    run's loss per step (``protocols.LOSSES``)."""
    e, b, length = p["O"].shape[0], data.x.shape[0], data.x.shape[1]
    per_member = [({n: Magnitudes() for n in p}, [Magnitudes() for _ in range(length)]) for _ in range(e)]
    for a in range(0, b, EXAMPLES):
        d = data.take(slice(a, a + EXAMPLES))
        c = d.x.shape[0]
        # Replica (i, j) = member i on example j: an ensemble of e*c with one sequence each.
        rp = {n: t.detach().repeat_interleave(c, 0).requires_grad_() for n, t in p.items()}
        x, target, mask = (t.unsqueeze(0).expand(e, *t.shape).reshape(e * c, 1, *t.shape[1:])
                           for t in (d.x, d.target, d.mask))
        probe = torch.zeros(e * c, 1, length, p["O"].shape[-1], dtype=d.x.dtype, requires_grad=True)
        y, _ = models.forward(cell, rp, x, mask, probe)
        losses = step_loss(y, target)                                          # (e*c, 1, L)
        last = d.last.repeat(e)
        loss_t = losses[torch.arange(e * c), 0, last]
        g = torch.autograd.grad((losses * mask).sum(), list(rp.values()), retain_graph=True)
        (g_h,) = torch.autograd.grad(loss_t.sum(), probe)
        norms = torch.linalg.vector_norm(g_h[:, 0], dim=-1).reshape(e, c, length).double().numpy()
        last = d.last.numpy()
        absent = int((d.x.sum(1) == 0).sum())            # (example, symbol) pairs never read
        for i, (ps, hs) in enumerate(per_member):
            for name, grad in zip(rp, g):
                ps[name].add(grad.reshape(e, c, -1)[i].abs().double().numpy().ravel())
                if name.startswith("U"):
                    ps[name].structural += absent * p[name].shape[1]
            for dist in range(length):
                t = last - dist
                hs[dist].add(norms[i, np.flatnonzero(t >= 0), t[t >= 0]])
    out = []
    for ps, hs in per_member:
        rows = [{"quantity": "param", "tensor": n, "distance": -1, **s.row()} for n, s in ps.items()]
        rows += [{"quantity": "hidden", "tensor": "h", "distance": dist, **s.row()}
                 for dist, s in enumerate(hs) if s.n or s.nonfinite]
        out.append(rows)
    return out
