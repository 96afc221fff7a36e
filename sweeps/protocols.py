"""Training protocols (DESIGN.md §1): the loss, the update and the stopping rule.

``paper`` — the authors' notebooks: loss = Σ_t ||y_t - onehot(x_{t+1})||² per sequence on
the linear output; plain SGD, one sequence per update; the learning rate halves whenever an
epoch's mean error rises; stop when the epoch mean error changes by less than ``tol`` (1e-5).

``adam`` — modern: loss = Σ_t -log softmax(y_t)[x_{t+1}] per sequence; Adam on the mean
over a minibatch of 50 sequences; stop as soon as the test set is solved (HS97 string
accuracy 100 %).

Both stop at ``max_epochs``. Every rule acts per ensemble member: E members carry their own
learning rate, optimizer moments and stop flag, and a stopped member's parameters stay put.
"""
from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F

import cells


def squared_error(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||y_t - onehot(target_t)||² per step: (E, B, L) from y (E, B, L, 7), target (E, B, L)."""
    return ((y - F.one_hot(target, y.shape[-1]).to(y.dtype)) ** 2).sum(-1)


def cross_entropy(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log softmax(y_t)[target_t] per step: (E, B, L)."""
    return -torch.log_softmax(y, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)


@dataclass(frozen=True)
class Protocol:
    name: str
    step_loss: callable           # (y, target) -> per-step loss (E, B, L)
    optimizer: str                # 'sgd' or 'adam'
    batch_size: int
    lr: Dict[str, float]          # default per task
    max_epochs: int

    def sequence_loss(self, y, target, mask) -> torch.Tensor:
        """Loss per sequence (E, B): the step losses summed over real steps. The sum runs
        over the fixed padded length, so it does not depend on the ensemble's makeup. The step
        losses are row-wise, so they are computed at the real steps only (padded steps: 0)."""
        mask = mask.expand(y.shape[:-1])
        real = mask.nonzero(as_tuple=True)
        out = y.new_zeros(mask.shape)
        out[real] = self.step_loss(y[real], target.expand(mask.shape)[real])
        return out.sum(-1)


PROTOCOLS = {
    "paper": Protocol("paper", squared_error, "sgd", 1, {"reber": 0.05, "embedded-reber": 0.001}, 1000),
    "adam": Protocol("adam", cross_entropy, "adam", 50, {"reber": 1e-2, "embedded-reber": 1e-2}, 200),
}
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def optimizer_state(p: cells.Params, optimizer: str) -> Dict:
    """Zero moments and step counts of an ensemble; empty for SGD."""
    if optimizer == "sgd":
        return {}
    e = next(iter(p.values())).shape[0]
    return {"m": {n: torch.zeros_like(t) for n, t in p.items()},
            "v": {n: torch.zeros_like(t) for n, t in p.items()},
            "t": torch.zeros(e, dtype=torch.int64)}


@torch.no_grad()
def update(p: cells.Params, grads: cells.Params, state: Dict, lr: torch.Tensor, active: torch.Tensor,
           optimizer: str) -> None:
    """One in-place step of SGD or Adam for the active members (lr and active: (E,))."""
    def per_member(v, like):
        return v.reshape(-1, *[1] * (like.dim() - 1)).to(like.dtype)

    if optimizer == "sgd":
        for n, t in p.items():
            t.sub_(per_member(lr * active, t) * grads[n])
        return
    b1, b2 = ADAM_BETAS
    state["t"] += active.long()
    # Bias corrections with Python's pow: torch's vector and scalar pow round differently.
    steps = [max(int(t), 1) for t in state["t"]]
    correct1 = torch.tensor([1 - b1 ** s for s in steps], dtype=torch.float64)
    correct2 = torch.tensor([1 - b2 ** s for s in steps], dtype=torch.float64)
    for n, t in p.items():
        on = per_member(active, t).bool()
        g = grads[n]
        m = torch.where(on, b1 * state["m"][n] + (1 - b1) * g, state["m"][n])
        v = torch.where(on, b2 * state["v"][n] + (1 - b2) * g * g, state["v"][n])
        state["m"][n], state["v"][n] = m, v
        m_hat = m / per_member(correct1, t)
        v_hat = v / per_member(correct2, t)
        t.copy_(torch.where(on, t - per_member(lr, t) * m_hat / (v_hat.sqrt() + ADAM_EPS), t))
