"""The cell registry: a cell is a name, its gates and one ``step`` function.

Every parameter tensor carries a leading ensemble dimension ``E`` (independent draws or
independently trained seeds), so one call advances a whole ensemble:

    x: (E, B, n) or (B, n)    s: (E, B, m k)    step(p, x, s) -> (E, B, m k)

where ``B`` is a batch of sequences sharing the ensemble member's parameters; a 2-D ``x``
is the same input for every member. The state ``s`` is the hidden state h (m = 1) or, for
cells that carry more (an LSTM's cell state c), h followed by the rest (m = ``memory``);
``hidden(s)`` is h, what the output layer reads and what the discrepancy compares.

A step is written with the helpers below (:func:`affine`, :func:`sigmoid`, :func:`tanh`,
:func:`split`, :func:`cat`) and arithmetic, so the one definition runs on torch tensors
(training, the reference discrepancy) and on NumPy arrays (the discrepancy's cache-resident
path). On NumPy it also runs on complex arrays whose imaginary part carries a tangent
(``s + iεδ``): every helper then propagates it to first order exactly, which is how the
largest Lyapunov exponent is measured for any registered cell. A step must therefore be built
from these operations only (no ``abs``, ``max``, comparisons on the state).
"""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

Params = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class Cell:
    """A recurrent cell ``s_t = step(p, x_t, s_{t-1})`` with ``s_{-1} = 0``.

    ``gates`` names the affine maps the cell uses; gate ``g`` owns ``U<g>`` (k, n),
    ``W<g>`` (k, k) and, when biases are on, ``b<g>`` (k,). ``memory`` is the state's width
    in units of k (1: the state is h). ``retain(p, x, s)``, for gated cells, is the weight
    each unit gives its old memory in the convex update (GRU z, LSTM f, MGU 1 - f), (E, B, k).
    """

    name: str
    gates: Tuple[str, ...]
    step: Callable[[Params, torch.Tensor, torch.Tensor], torch.Tensor]
    equations: str
    memory: int = 1
    retain: Optional[Callable] = None

    def hidden(self, s):
        """h, the first k entries of the state (..., memory k)."""
        return s if self.memory == 1 else s[..., : s.shape[-1] // self.memory]

    def shapes(self, n: int, k: int, bias: bool = False) -> Dict[str, Tuple[int, ...]]:
        """Parameter shapes (without the ensemble dimension), in a fixed order."""
        out: Dict[str, Tuple[int, ...]] = {}
        for g in self.gates:
            out[f"U{g}"] = (k, n)
            out[f"W{g}"] = (k, k)
            if bias:
                out[f"b{g}"] = (k,)
        return out


CELLS: Dict[str, Cell] = {}


def register(name: str, gates: Tuple[str, ...], equations: str, memory: int = 1, retain: Optional[Callable] = None):
    """Decorator: ``@register("vanilla", ("h",), "h = σ(U x + W h)")`` over a step function."""

    def wrap(step):
        CELLS[name] = Cell(name, gates, step, equations, memory, retain)
        return step

    return wrap


def get_cell(name: str) -> Cell:
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; known cells: {', '.join(sorted(CELLS))}") from None


def affine(p: Params, gate: str, x, h):
    """``U^g x + W^g h (+ b^g)`` for ``x`` (E, B, n) or (B, n) and ``h`` (E, B, k)."""
    if not isinstance(h, torch.Tensor):
        return _affine_numpy(p, gate, x, h)
    u = p[f"U{gate}"]
    # An input shared by the ensemble is one (E*k, n) @ (n, B) product instead of E tiny ones.
    ux = torch.matmul(x, u.transpose(-1, -2)) if x.dim() == 3 else torch.matmul(u, x.T).transpose(-1, -2)
    # W h first: the sum then takes its contiguous (E, B, k) layout.
    out = torch.matmul(h, p[f"W{gate}"].transpose(-1, -2)) + ux
    bias = p.get(f"b{gate}")
    return out if bias is None else out + bias.unsqueeze(-2)


def _affine_numpy(p, gate, x, h):
    w_t = p[f"W{gate}"].swapaxes(-1, -2)
    if np.iscomplexobj(h):
        # The tangent rides in the imaginary part: one product with the real weights for both.
        b = h.shape[-2]
        both = np.concatenate([h.real, h.imag], axis=-2) @ w_t
        wh = both[..., :b, :] + 1j * both[..., b:, :]
    else:
        wh = h @ w_t
    out = wh + x @ p[f"U{gate}"].swapaxes(-1, -2)
    bias = p.get(f"b{gate}")
    return out if bias is None else out + bias[..., None, :]


def sigmoid(a):
    """The logistic function σ(a) = 1 / (1 + e^-a)."""
    if isinstance(a, torch.Tensor):
        return torch.sigmoid(a)
    if np.iscomplexobj(a):   # σ(x + iεd) = σ(x) + iε σ'(x) d
        y = sigmoid(a.real)
        return y + 1j * (a.imag * (y * (1 - y)))
    return 1 / (1 + np.exp(-a))


def tanh(a):
    """The hyperbolic tangent."""
    if isinstance(a, torch.Tensor):
        return torch.tanh(a)
    if np.iscomplexobj(a):   # tanh(x + iεd) = tanh(x) + iε (1 - tanh²(x)) d
        y = np.tanh(a.real)
        return y + 1j * (a.imag * (1 - y * y))
    return np.tanh(a)


def split(s, parts: int):
    """``s`` (..., parts k) as ``parts`` views of width k: an LSTM's state is ``h, c = split(s, 2)``."""
    k = s.shape[-1] // parts
    return tuple(s[..., i * k: (i + 1) * k] for i in range(parts))


def cat(*parts):
    """The state made of ``parts`` (each (..., k)), side by side."""
    return torch.cat(parts, dim=-1) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts, axis=-1)


# torch computes sigmoid and tanh of a tensor's last (numel mod SIMD width) elements with
# scalar code that rounds differently from its vector code. Members appended after the
# real ones take that tail, so a member's numbers never depend on its ensemble's size.
GUARD = 64


def with_guard(t: torch.Tensor, per_member: int) -> torch.Tensor:
    """``t`` (E, ...) with copies of its last member appended, enough that at least
    ``GUARD`` elements follow the real members in every ensemble-wide tensor holding
    ``per_member`` elements per member. Slice ``[:E]`` to drop them."""
    guard = -(-GUARD // per_member)
    return torch.cat([t, t[-1:].detach().expand(guard, *t.shape[1:])])
