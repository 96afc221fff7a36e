"""Trainable next-symbol models: a registered cell plus a linear output layer, for an
ensemble of E independently trained members at once.

    h_t = cell.step(p, x_t, h_{t-1}),  h_{-1} = 0        h_t: (E, B, k)
    y_t = O h_t (+ b_O)                                   y_t: (E, B, 7), O: (E, 7, k)

Biases (``bias``), all initialised to zero and trainable:

- ``none``: the paper's equations.
- ``hidden``: one bias per gate (``b<g>``, (k,)), none on the output.
- ``all``: gate biases and an output bias ``bO`` (7,).
- ``paper``: the parameter counts the paper reports — 594 for vanilla k=18 (hidden bias,
  no output bias: 7·18 + 18·18 + 18 + 18·7) and 580 for GRU k=10 (no biases:
  3·(10·7 + 10·10) + 10·7). So vanilla gets ``hidden``, every other cell ``none``.
- ``authors``: the authors' training code — vanilla with hidden and output biases, GRU
  (and other cells) with one bias per gate and none on the output.
"""
from typing import Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

import cells

N_SYMBOLS = 7
BIASES = ("paper", "authors", "none", "hidden", "all")
# Each cell's matched width, what ``--cells NAME`` trains: the k whose model's parameter count,
# under the default bias option (authors), is nearest the paper's ~600. Vanilla 18 (601
# parameters) and GRU 10 (610) are the paper's; tanh 18 (594), LSTM 8 (568; k = 9 has 675) and
# MGU 12 (564; k = 13 has 637). One unit more or less moves an LSTM or MGU by 60-110
# parameters, so these two cannot come closer than 5-6 %.
MATCHED = {"vanilla": 18, "gru": 10, "tanh": 18, "lstm": 8, "mgu": 12}


def bias_flags(bias: str, cell: str) -> Tuple[bool, bool]:
    """(gate biases, output bias) of a ``bias`` option for ``cell``."""
    vanilla = cell == "vanilla"
    return {
        "none": (False, False),
        "hidden": (True, False),
        "all": (True, True),
        "paper": (vanilla, False),
        "authors": (True, vanilla),
    }[bias]


def shapes(cell: str, k: int, bias: str) -> Dict[str, Tuple[int, ...]]:
    """Every parameter's shape (without E): the cell's, then ``O`` (7, k) and ``bO`` (7,)."""
    hidden, output = bias_flags(bias, cell)
    out = dict(cells.get_cell(cell).shapes(N_SYMBOLS, k, hidden))
    out["O"] = (N_SYMBOLS, k)
    if output:
        out["bO"] = (N_SYMBOLS,)
    return out


def n_params(cell: str, k: int, bias: str) -> int:
    return sum(int(np.prod(s)) for s in shapes(cell, k, bias).values())


def init_params(cell: str, k: int, bias: str, init: str, seeds: List[int], dtype=torch.float32) -> cells.Params:
    """Initial parameters of an ensemble, one member per seed: weights from ``cells.draw``
    (``init``: normal = the paper's N(0, 1)), biases zero. A member's weights depend only on
    (seed, cell, k, init), so a seed starts from the same weights on every task, protocol
    and bias option, whatever ensemble it is trained in."""
    all_shapes = shapes(cell, k, bias)
    weights = {name: s for name, s in all_shapes.items() if not name.startswith("b")}
    members = [cells.draw(weights, 1, init, cells.stream("init", seed, cell, k, init), dtype) for seed in seeds]
    return {name: (torch.cat([m[name] for m in members]) if name in weights
                   else torch.zeros(len(seeds), *s, dtype=dtype))
            for name, s in all_shapes.items()}


def hidden_states(cell: cells.Cell, p: cells.Params, x: torch.Tensor, steps: int, probe=None) -> torch.Tensor:
    """Hidden states h_t (E, B, L, k) for inputs x (E, B, L, n): the first ``steps`` computed,
    the rest zero. Steps past a sequence's end see x = 0 and are masked by the caller; not
    computing steps past the batch's longest sequence only saves time.

    ``probe`` (E, B, L, k) of zeros, if given, is added to every h_t (the state's h part) so
    that the gradient of a loss with respect to it is ∂loss/∂h_t through the whole recurrence."""
    e, b, length, _ = x.shape
    k = p["O"].shape[-1]
    p = {n: cells.with_guard(t, b * k) for n, t in p.items()}
    x = cells.with_guard(x, b * k)
    s = x.new_zeros(x.shape[0], b, cell.memory * k)
    out = []
    for t in range(steps):
        s = cell.step(p, x[:, :, t], s)
        if probe is not None:
            s = s + F.pad(probe[:, :, t], (0, (cell.memory - 1) * k, 0, 0, 0, x.shape[0] - e))
        out.append(cell.hidden(s)[:e])
    # Padding to the fixed length L keeps every later reduction the same shape whatever the
    # ensemble, so a member's numbers do not depend on the other members' sequence lengths.
    return F.pad(torch.stack(out, dim=2), (0, 0, 0, length - steps))


def outputs(p: cells.Params, hs: torch.Tensor) -> torch.Tensor:
    """y = O h (+ bO): (E, B, L, 7) for hidden states (E, B, L, k)."""
    e, b, length, k = hs.shape
    y = torch.matmul(hs.reshape(e, b * length, k), p["O"].transpose(-1, -2)).reshape(e, b, length, N_SYMBOLS)
    return y if "bO" not in p else y + p["bO"][:, None, None, :]


def forward(cell: cells.Cell, p: cells.Params, x: torch.Tensor, mask: torch.Tensor, probe=None):
    """(y, hs) for inputs x (E, B, L, 7) and the real-step mask (E, B, L) or (B, L)."""
    steps = int(mask.reshape(-1, mask.shape[-1]).any(0).nonzero().max()) + 1
    hs = hidden_states(cell, p, x, steps, probe)
    return outputs(p, hs), hs
