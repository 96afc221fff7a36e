"""Training protocols: each is a recipe of ingredients (optimizer, loss, batch size, training
set size, learning rate) and rules (learning-rate schedule, stopping rule), so the trainer
applies a protocol without knowing which one it is. A run may override any ingredient, which
is how the ingredients are swept (``optimizer: [sgd, adam]``, ``loss: [squared-error,
cross-entropy]``, ``batch_size``, ``order: [fixed, shuffled]``) while the rules stay the
protocol's.

``paper`` — the authors' notebooks: loss = Σ_t ||y_t - onehot(x_{t+1})||² per sequence on
the linear output (``squared-error``); plain SGD, one sequence per update, 256 training
strings visited in the same order every epoch; the learning rate halves whenever an epoch's mean error rises; stop when the epoch
mean error changes by less than ``tol`` (1e-5), at most 1000 epochs.

``adam`` — modern: loss = Σ_t -log softmax(y_t)[x_{t+1}] per sequence (``cross-entropy``);
Adam on the mean over a minibatch of 50 sequences, the strings shuffled every epoch, the
paper's text's set sizes (250 Reber, 2000 embedded), a constant learning rate, at most 200
epochs.

Under every protocol a run also stops once its validation set is solved (the trainer's rule,
see ``ensemble``). Every rule acts per ensemble member: E members carry their own learning
rate, optimizer moments and stop flag. A new protocol is one entry of ``PROTOCOLS``.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

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


def converged(mean: float, prev: Optional[float], settings) -> Optional[str]:
    """Stop when the epoch's mean error changed by less than ``settings.tol``."""
    return "converged" if prev is not None and abs(mean - prev) < settings.tol else None


def never(mean: float, prev: Optional[float], settings) -> Optional[str]:
    return None


def sequence_loss(step_loss: Callable, y: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Loss per sequence (E, B): the step losses summed over real steps. The sum runs over the
    fixed padded length, so it does not depend on the ensemble's makeup. The step losses are
    row-wise, so they are computed at the real steps only (padded steps: 0)."""
    mask = mask.expand(y.shape[:-1])
    real = mask.nonzero(as_tuple=True)
    out = y.new_zeros(mask.shape)
    out[real] = step_loss(y[real], target.expand(mask.shape)[real])
    return out.sum(-1)


LOSSES = {"squared-error": squared_error, "cross-entropy": cross_entropy}
OPTIMIZERS = {"sgd": SGD(), "adam": Adam()}
# fixed: the training set in its own order every epoch (the authors' notebooks); shuffled: a new
# permutation every epoch, drawn from the run's seed.
ORDERS = ("fixed", "shuffled")


@dataclass(frozen=True)
class Protocol:
    """A training recipe: its default ingredients (optimizer, loss, batch size, training set
    size and learning rates, each of which a run may override), its schedule and its stop."""

    name: str
    optimizer: str                 # default optimizer (a key of OPTIMIZERS)
    loss: str                      # default loss (a key of LOSSES)
    batch_size: int
    order: str                     # default order of the training strings: fixed or shuffled (ORDERS)
    n_train: Dict[str, int]        # default training strings per task
    lr: Dict[str, Dict[str, float]]  # default learning rate per optimizer and task
    max_epochs: int
    schedule: Callable             # (lr, epoch mean, previous epoch mean) -> next lr
    stop: Callable                 # (mean, previous mean, run settings) -> reason or None
    settings: Tuple[str, ...] = ()  # run settings its rules read (they join the run's identity)

    def after_epoch(self, lr: float, mean: float, prev: Optional[float], settings) -> Tuple[float, Optional[str]]:
        """The next learning rate and the reason to stop (None: go on) after an epoch whose
        mean training loss is ``mean`` (``prev``: the epoch before, None after the first)."""
        return self.schedule(lr, mean, prev), self.stop(mean, prev, settings)

    def recipe(self, optimizer: str, loss: str, batch_size: int, order: str) -> str:
        """The protocol's name followed by each ingredient that differs from its own, e.g.
        'paper', 'paper+adam+cross-entropy' or 'adam+b10': what tells variants apart."""
        own = (self.optimizer, self.loss, self.batch_size, self.order)
        return self.name + "".join(f"+{v}" if isinstance(v, str) else f"+b{v}"
                                   for v, d in zip((optimizer, loss, batch_size, order), own) if v != d)


# The authors trained with SGD at 0.05 (Reber) and 0.001 (embedded); Adam's lr follows the
# batch size: Kingma & Ba's default 1e-3 for one sequence per update, 1e-2 for 50.
SGD_LR = {"reber": 0.05, "embedded-reber": 0.001}
PROTOCOLS = {
    "paper": Protocol("paper", "sgd", "squared-error", 1, "fixed", {"reber": 256, "embedded-reber": 256},
                      {"sgd": SGD_LR, "adam": {"reber": 1e-3, "embedded-reber": 1e-3}}, 1000,
                      halve_on_rise, converged, ("tol",)),
    "adam": Protocol("adam", "adam", "cross-entropy", 50, "shuffled", {"reber": 250, "embedded-reber": 2000},
                     {"sgd": SGD_LR, "adam": {"reber": 1e-2, "embedded-reber": 1e-2}}, 200,
                     constant, never),
}
