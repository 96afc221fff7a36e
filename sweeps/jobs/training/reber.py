"""Reber and embedded Reber grammars (paper §III): sampling, validation, legal successors,
one-hot encoding, and the data sets of the training runs.

The automaton is the truth, {state: {symbol: next state}}, each choice taken with
probability 1/2 (the regular expression printed in the paper omits the loop 5 -P-> 2 -X-> 4,
so it rejects the valid ``BPVPXTVVE``). A state is a tuple; ``moves(state)`` maps every legal
next symbol to the state it leads to, so sampling, checking and legal-successor sets are
all one walk over the same table.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import cells

from ...contract import ALPHABET  # one-hot order, n = 7

INDEX = {s: i for i, s in enumerate(ALPHABET)}
TASKS = ("reber", "embedded-reber")

# Reber automaton, {state: {symbol: next state}}: 'start' reads B, state 3 reads the final E.
REBER: Dict[object, Dict[str, object]] = {
    "start": {"B": 0},
    0: {"T": 1, "P": 4},
    1: {"S": 1, "X": 2},
    2: {"S": 3, "X": 4},
    3: {"E": "end"},
    4: {"T": 4, "V": 5},
    5: {"P": 2, "V": 3},
    "end": {},
}
START = ("start",)


def moves(state: Tuple, embedded: bool) -> Dict[str, Tuple]:
    """Legal next symbols from ``state`` and where each leads.

    Plain states are ``(q,)``. Embedded states: ``('start',)`` -B-> ``('outer',)`` -a->
    ``(a, 'start')`` ... inner walk ``(a, q)`` ... ``(a, 'end')`` -a-> ``('last',)`` -E-> ``('end',)``.
    """
    if not embedded:
        return {s: (q,) for s, q in REBER[state[0]].items()}
    if state == ("start",):
        return {"B": ("outer",)}
    if state == ("outer",):
        return {a: (a, "start") for a in "TP"}
    if state == ("last",):
        return {"E": ("end",)}
    if state == ("end",):
        return {}
    a, q = state
    if q == "end":
        return {a: ("last",)}
    return {s: (a, nxt) for s, nxt in REBER[q].items()}


def state_name(state: Tuple) -> str:
    """'q2' for Reber state 2, 'T/q2' inside the embedded branch opened by T, 'start', ..."""
    names = [f"q{q}" if isinstance(q, int) else q for q in state]
    return "/".join(names)


def sample(rng: np.random.Generator, embedded: bool = False) -> str:
    """One string of the grammar; every binary choice is taken with probability 1/2."""
    state, out = START, []
    while True:
        options = moves(state, embedded)
        if not options:
            return "".join(out)
        symbols = list(options)
        symbol = symbols[rng.integers(len(symbols))] if len(symbols) > 1 else symbols[0]
        out.append(symbol)
        state = options[symbol]


def sample_set(rng: np.random.Generator, size: int, embedded: bool = False) -> List[str]:
    return [sample(rng, embedded) for _ in range(size)]


def walk(string: str, embedded: bool = False) -> Tuple[List[Tuple], Optional[int]]:
    """The states after each symbol of ``string`` and the first bad position (0-based):
    the index of the first symbol the grammar does not allow there, ``len(string)`` when
    the string stops before the final E, or None when the string is valid."""
    state, states = START, []
    for i, symbol in enumerate(string):
        nxt = moves(state, embedded).get(symbol)
        if nxt is None:
            return states, i
        state = nxt
        states.append(state)
    return states, (None if not moves(state, embedded) else len(string))


def first_error(string: str, embedded: bool = False) -> Optional[int]:
    return walk(string, embedded)[1]


def legal_sets(string: str, embedded: bool = False) -> List[str]:
    """For each prefix string[:t+1], t = 0..m-2, the symbols allowed next (the targets'
    legal sets of next-symbol prediction)."""
    states, _ = walk(string, embedded)
    return ["".join(moves(s, embedded)) for s in states[:-1]]


def outer_step(string: str) -> int:
    """The step t whose prediction must be the outer symbol: the input is the inner E."""
    return len(string) - 3


@dataclass
class Encoded:
    """A padded batch of B strings as next-symbol prediction over L steps.

    x (B, L, 7) float one-hot of x_0..x_{m-2}; target (B, L) long index of x_{t+1};
    legal (B, L, 7) bool legal-successor sets; mask (B, L) bool true on real steps;
    last (B,) long the step of the long-term target (outer symbol; the final E for reber).
    Padding is zero everywhere (the padded x is the zero vector).
    """

    x: torch.Tensor
    target: torch.Tensor
    legal: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor

    def take(self, index) -> "Encoded":
        return Encoded(*(t[index] for t in (self.x, self.target, self.legal, self.mask, self.last)))


def encode(strings: Sequence[str], embedded: bool, length: int, dtype=torch.float32) -> Encoded:
    """Encode valid strings padded to ``length`` steps (>= the longest string - 1)."""
    b = len(strings)
    x = torch.zeros(b, length, 7, dtype=dtype)
    target = torch.zeros(b, length, dtype=torch.long)
    legal = torch.zeros(b, length, 7, dtype=torch.bool)
    mask = torch.zeros(b, length, dtype=torch.bool)
    last = torch.zeros(b, dtype=torch.long)
    for i, s in enumerate(strings):
        m = len(s) - 1
        idx = torch.tensor([INDEX[c] for c in s])
        x[i, torch.arange(m), idx[:-1]] = 1
        target[i, :m] = idx[1:]
        for t, allowed in enumerate(legal_sets(s, embedded)):
            legal[i, t, [INDEX[c] for c in allowed]] = True
        mask[i, :m] = True
        last[i] = outer_step(s) if embedded else m - 1
    return Encoded(x, target, legal, mask, last)


def one_hot(string: str, dtype=torch.float32) -> torch.Tensor:
    """(len(string), 7) one-hot rows of any string over the alphabet."""
    return torch.eye(7, dtype=dtype)[[INDEX[c] for c in string]]


SETS = ("train", "val", "test")


def datasets(task: str, sizes: Dict[str, int], data_seed: int, dtype) -> Dict[str, Encoded]:
    """The training, validation and test sets (``sizes``: strings per set name of ``SETS``).
    Each set is drawn from its own stream, fixed by (data_seed, task, set name) only, so every
    run of a sweep sees the same strings (seeds vary the initial weights and the order), the
    sets' draws are independent of each other, and a smaller set is a prefix of a larger one.
    (Strings are drawn from the grammar's distribution, so a short string may occur in several
    sets, as it would in any sample.) All sets are padded to one length."""
    embedded = task == "embedded-reber"
    strings = {name: sample_set(cells.stream("data", data_seed, task, name), sizes[name], embedded) for name in SETS}
    length = max(len(s) for ss in strings.values() for s in ss) - 1
    return {name: encode(ss, embedded, length, dtype) for name, ss in strings.items()}


def dependency_length(data: Encoded, embedded: bool) -> np.ndarray:
    """(B,) the length of each string's inner Reber string (embedded: B a <inner> a E, so the
    outer symbol must be carried across it), or of the whole string (reber)."""
    symbols = data.mask.sum(1).numpy() + 1
    return symbols - 4 if embedded else symbols


def loss_floors(data: Encoded, loss: str, embedded: bool) -> Tuple[float, float]:
    """The mean loss per sequence on ``data`` of the ideal predictor that knows the automaton's
    state, and of one that knows it except for the outer symbol, which it guesses (embedded; on
    reber both are the same). At a step with |S| equally likely successors the ideal outputs are
    1/|S| on S: squared error 1 - 1/|S|, cross-entropy log |S|; guessing T or P costs the
    outer step 1/2 resp. log 2 instead of 0. (About seven binary choices per embedded string:
    floors near 3.5 and 4.0 for the squared error.)"""
    size = data.legal.sum(-1).double()[data.mask]
    per_step = (1 - 1 / size) if loss == "squared-error" else size.log()
    known = float(per_step.sum()) / data.mask.shape[0]
    guess = {"squared-error": 0.5, "cross-entropy": math.log(2)}[loss] if embedded else 0.0
    return known, known + guess
