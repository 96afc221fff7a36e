"""Training protocols: each owns its loss, its optimizer, its learning-rate schedule and its
stopping rule, so the trainer applies a protocol without knowing which one it is.

``paper`` — the authors' notebooks: loss = Σ_t ||y_t - onehot(x_{t+1})||² per sequence on
the linear output; plain SGD, one sequence per update; the learning rate halves whenever an
epoch's mean error rises; stop when the epoch mean error changes by less than ``tol`` (1e-5).

``adam`` — modern: loss = Σ_t -log softmax(y_t)[x_{t+1}] per sequence; Adam on the mean
over a minibatch of 50 sequences; stop as soon as the test set is solved (HS97 string
accuracy 100 %).

Both stop at ``max_epochs``. Every rule acts per ensemble member: E members carry their own
learning rate, optimizer moments and stop flag, and a stopped member's parameters stay put.
A new protocol is one entry of ``PROTOCOLS``.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F

import cells


# ---------------------------------------------------------------------- losses per step
def squared_error(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||y_t - onehot(target_t)||² per step: (E, B, L) from y (E, B, L, 7), target (E, B, L)."""
    return ((y - F.one_hot(target, y.shape[-1]).to(y.dtype)) ** 2).sum(-1)


def cross_entropy(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log softmax(y_t)[target_t] per step: (E, B, L)."""
    return -torch.log_softmax(y, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)


# ---------------------------------------------------------------------- optimizers
class SGD:
    """θ ← θ - lr · g."""

    def state(self, p: cells.Params) -> Dict:
        return {}

    @torch.no_grad()
    def step(self, p: cells.Params, grads: cells.Params, state: Dict, lr: torch.Tensor, active: torch.Tensor):
        for n, t in p.items():
            t.sub_(_per_member(lr * active, t) * grads[n])


class Adam:
    """Adam (Kingma & Ba 2015) with β = (0.9, 0.999), ε = 1e-8, per ensemble member."""

    betas, eps = (0.9, 0.999), 1e-8

    def state(self, p: cells.Params) -> Dict:
        e = next(iter(p.values())).shape[0]
        return {"m": {n: torch.zeros_like(t) for n, t in p.items()},
                "v": {n: torch.zeros_like(t) for n, t in p.items()},
                "t": torch.zeros(e, dtype=torch.int64)}

    @torch.no_grad()
    def step(self, p: cells.Params, grads: cells.Params, state: Dict, lr: torch.Tensor, active: torch.Tensor):
        b1, b2 = self.betas
        state["t"] += active.long()
        # Bias corrections with Python's pow: torch's vector and scalar pow round differently.
        steps = [max(int(t), 1) for t in state["t"]]
        correct1 = torch.tensor([1 - b1 ** s for s in steps], dtype=torch.float64)
        correct2 = torch.tensor([1 - b2 ** s for s in steps], dtype=torch.float64)
        for n, t in p.items():
            on = _per_member(active, t).bool()
            g = grads[n]
            m = torch.where(on, b1 * state["m"][n] + (1 - b1) * g, state["m"][n])
            v = torch.where(on, b2 * state["v"][n] + (1 - b2) * g * g, state["v"][n])
            state["m"][n], state["v"][n] = m, v
            m_hat = m / _per_member(correct1, t)
            v_hat = v / _per_member(correct2, t)
            t.copy_(torch.where(on, t - _per_member(lr, t) * m_hat / (v_hat.sqrt() + self.eps), t))


def _per_member(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(E,) broadcast against an ensemble tensor (E, ...)."""
    return v.reshape(-1, *[1] * (like.dim() - 1)).to(like.dtype)


# ---------------------------------------------------------------------- schedules and stops
def constant(lr: float, mean: float, prev: Optional[float]) -> float:
    return lr


def halve_on_rise(lr: float, mean: float, prev: Optional[float]) -> float:
    """Halve the learning rate when the epoch's mean error rose."""
    return lr / 2 if prev is not None and mean > prev else lr


def converged(mean: float, prev: Optional[float], scores: Mapping[str, float], settings) -> Optional[str]:
    """Stop when the epoch's mean error changed by less than ``settings.tol``."""
    return "converged" if prev is not None and abs(mean - prev) < settings.tol else None


def solved(mean: float, prev: Optional[float], scores: Mapping[str, float], settings) -> Optional[str]:
    """Stop when every test string is predicted correctly (HS97)."""
    return "solved" if scores["test_string_accuracy"] == 1.0 else None


@dataclass(frozen=True)
class Protocol:
    name: str
    step_loss: Callable            # (y, target) -> per-step loss (E, B, L)
    optimizer: object              # SGD() or Adam()
    batch_size: int
    lr: Dict[str, float]           # default per task
    max_epochs: int
    schedule: Callable             # (lr, epoch mean, previous epoch mean) -> next lr
    stop: Callable                 # (mean, previous mean, epoch scores, run settings) -> reason or None
    settings: Tuple[str, ...] = ()  # run settings its rules read (they join the run's identity)

    def sequence_loss(self, y, target, mask) -> torch.Tensor:
        """Loss per sequence (E, B): the step losses summed over real steps. The sum runs
        over the fixed padded length, so it does not depend on the ensemble's makeup. The step
        losses are row-wise, so they are computed at the real steps only (padded steps: 0)."""
        mask = mask.expand(y.shape[:-1])
        real = mask.nonzero(as_tuple=True)
        out = y.new_zeros(mask.shape)
        out[real] = self.step_loss(y[real], target.expand(mask.shape)[real])
        return out.sum(-1)

    def after_epoch(self, lr: float, mean: float, prev: Optional[float], scores: Mapping[str, float],
                    settings) -> Tuple[float, Optional[str]]:
        """The next learning rate and the reason to stop (None: go on) after an epoch whose
        mean training loss is ``mean`` (``prev``: the epoch before, None after the first)."""
        return self.schedule(lr, mean, prev), self.stop(mean, prev, scores, settings)


PROTOCOLS = {
    "paper": Protocol("paper", squared_error, SGD(), 1, {"reber": 0.05, "embedded-reber": 0.001}, 1000,
                      halve_on_rise, converged, ("tol",)),
    "adam": Protocol("adam", cross_entropy, Adam(), 50, {"reber": 1e-2, "embedded-reber": 1e-2}, 200,
                     constant, solved),
}
