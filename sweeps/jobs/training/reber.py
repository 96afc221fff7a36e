"""Reber and embedded Reber grammars (paper §III): sampling, validation, legal successors,
one-hot encoding, and the data sets of the training runs.

The automaton is the truth, {state: {symbol: next state}}, each choice taken with
probability 1/2 (the regular expression printed in the paper omits the loop 5 -P-> 2 -X-> 4,
so it rejects the valid ``BPVPXTVVE``). A state is a tuple; ``moves(state)`` maps every legal
next symbol to the state it leads to, so sampling, checking and legal-successor sets are
all one walk over the same table.

Lengths. An inner Reber string is B, m binary choices ending in state 3, then E: its length is
l = m + 2 symbols (B and E included; BTXSE and BPVVE, l = 5, are the shortest), which is the
dependency length of the embedded task (``B a <inner> a E``: the outer symbol a is carried
across the l symbols). The grammar gives such a string probability 2^-m, so all strings of one
length are equally likely under it too. Counting the automaton's paths (``ending``, ``alive``)
lets a ``Pool`` draw exactly, with no rejection: uniformly over the strings of a range of
lengths (``--lag``), or from the grammar's own distribution, in both cases without the strings
already drawn.
"""
import bisect
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import cells

from ... import console
from ...contract import ALPHABET  # one-hot order, n = 7
from ...errors import UsageError

log = console.logger(__name__)
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
SHORTEST = 5          # BTXSE, BPVVE: the shortest inner strings, so the least a lag can be
LONGEST_LAG = 100     # the longest inner string --lag accepts (its counts stay below 2**63)


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
# disjoint: no string in two sets nor twice in one, each embedded set half T, half P (the default);
# independent: each set its own sample of the grammar, repeats and overlaps included (the authors').
SAMPLINGS = ("disjoint", "independent")


# ---------------------------------------------------------------------- counting strings
def _paths(base: Dict[int, int]):
    """m -> {q: number of m-choice walks from Reber state q that satisfy ``base`` at their end},
    memoised (the counts are exact Python integers)."""
    memo = [base]

    def at(m: int) -> Dict[int, int]:
        while len(memo) <= m:
            prev = memo[-1]
            memo.append({q: sum(prev[n] for n in REBER[q].values() if n != "end") for q in base})
        return memo[m]
    return at


ending = _paths({q: int(q == 3) for q in range(6)})   # walks whose last choice enters state 3 (an inner string)
alive = _paths({q: int(q != 3) for q in range(6)})    # walks that never enter state 3 (a string not yet ended)


def count(length: int) -> int:
    """The number of inner Reber strings of ``length`` symbols (B and E included)."""
    return ending(length - 2)[0] if length >= 2 else 0


def _unrank(r: int, m: int, table) -> str:
    """The r-th (0-based, in the automaton's edge order) of the m-choice walks from state 0 that
    ``table`` counts, as its symbols."""
    q, out = 0, []
    for left in range(m - 1, -1, -1):
        for symbol, nxt in REBER[q].items():
            if r < table(left)[nxt]:
                out.append(symbol)
                q = nxt
                break
            r -= table(left)[nxt]
    return "".join(out)


def rank(inner: str) -> int:
    """The index of an inner string among those of its length (the inverse of ``_unrank``)."""
    q, r, m = 0, 0, len(inner) - 2
    for i, symbol in enumerate(inner[1:-1]):
        for other, nxt in REBER[q].items():
            if other == symbol:
                q = nxt
                break
            r += ending(m - 1 - i)[nxt]
    return r


def below(rng: np.random.Generator, n: int) -> int:
    """A uniform integer in [0, n): one draw of numpy's for n < 2**63; beyond (only the grammar's
    distribution after a string of more than 60 symbols was excluded reaches it), whole random
    bytes until they fall below n (fewer than two tries on average)."""
    if n < 2**63:
        return int(rng.integers(n))
    bits = n.bit_length()
    while True:
        x = int.from_bytes(rng.bytes((bits + 7) // 8), "little") >> (-bits % 8)
        if x < n:
            return x


class Pool:
    """Inner Reber strings to draw from, minus those excluded: uniform over the strings whose
    length lies in ``lag`` (lo, hi), so a length comes with probability proportional to its
    number of strings; or, with ``lag`` None, the grammar's own distribution (2^-m for m choices).

    A draw is one uniform integer r over the remaining weight, read as a length and then as a
    walk that takes each edge in proportion to the number of completions through it, skipping
    the excluded strings' ranks: no rejection, so a lag of 60 costs what a lag of 6 does. Under
    the grammar's distribution every length l up to the longest excluded one, H, is weighed
    exactly (its strings times 2^(H - l)); the rest of r's range counts the walks of H - 2
    choices that have not ended (each as likely as one string of length H), and the one r names
    goes on with fair coins: nothing longer is excluded.
    """

    def __init__(self, lag: Optional[Tuple[int, int]] = None):
        self.lag = lag
        self.excluded: Dict[int, List[int]] = {}     # length -> sorted ranks of the excluded strings

    def size(self) -> Optional[int]:
        """Strings left to draw (None: unbounded, the grammar's distribution)."""
        return None if self.lag is None else sum(self._left(n) for n in range(self.lag[0], self.lag[1] + 1))

    def exclude(self, inner: str) -> None:
        bisect.insort(self.excluded.setdefault(len(inner), []), rank(inner))

    def _left(self, length: int) -> int:
        return count(length) - len(self.excluded.get(length, ()))

    def _nth(self, length: int, r: int) -> str:
        """The r-th string of ``length`` that is not excluded."""
        for x in self.excluded.get(length, ()):
            if x > r:
                break
            r += 1
        return "B" + _unrank(r, length - 2, ending) + "E"

    def draw(self, rng: np.random.Generator) -> str:
        top = self.lag[1] if self.lag else max([SHORTEST - 1, *self.excluded])
        first = self.lag[0] if self.lag else SHORTEST
        scale = {n: 0 if self.lag else top - n for n in range(first, top + 1)}
        weights = {n: self._left(n) << scale[n] for n in scale}
        tail = 0 if self.lag else alive(top - 2)[0]
        r = below(rng, sum(weights.values()) + tail)
        for n, w in weights.items():
            if r < w:
                return self._nth(n, r >> scale[n])
            r -= w
        prefix = _unrank(r, top - 2, alive)      # longer than every excluded string
        q = 0
        for symbol in prefix:
            q = REBER[q][symbol]
        out = [prefix]
        while q != 3:
            symbol, q = list(REBER[q].items())[rng.integers(2)]
            out.append(symbol)
        return "B" + "".join(out) + "E"


# ---------------------------------------------------------------------- the data sets
def set_sizes(task: str, asked: Dict[str, int], lag: Optional[Tuple[int, int]], sampling: str
              ) -> Tuple[Dict[str, int], Optional[str]]:
    """The sizes the sets use, and a one-line note when they differ from ``asked``: under
    ``disjoint``, where a lag range holds fewer strings per outer symbol than the three sets ask
    for, validation and test get their shares of them in proportion to what they asked (at
    least one per outer symbol each) and training the rest. UsageError when not even three
    remain."""
    halves = 2 if task == "embedded-reber" else 1
    have = Pool(lag).size()
    want = {name: -(-n // halves) for name, n in asked.items()}     # per outer symbol, an odd set's extra included
    if sampling == "independent" or have is None or sum(want.values()) <= have:
        return dict(asked), None
    if have < len(SETS):
        raise UsageError(f"lag: {lag[0]}-{lag[1]} holds {have} inner string(s), too few for a training, a "
                         f"validation and a test string per outer symbol; widen the range (e.g. "
                         f"{lag[0]}-{lag[1] + 2})")
    total = sum(want.values())
    share = {name: max(1, have * want[name] // total) for name in ("val", "test")}
    share["train"] = have - share["val"] - share["test"]
    used = {name: share[name] * halves for name in SETS}
    return used, (f"{task}: lag {lag[0]}-{lag[1]} holds {have} inner strings" + (" per outer symbol" if halves == 2
                  else "") + f", fewer than the {sum(asked.values())} strings asked for; using train {used['train']}, "
                  f"val {used['val']}, test {used['test']}, each string once")


def draw_sets(task: str, sizes: Dict[str, int], data_seed: int, lag: Optional[Tuple[int, int]] = None,
              sampling: str = "disjoint") -> Dict[str, List[str]]:
    """The training, validation and test strings (``sizes``: strings per set name, as
    ``set_sizes`` leaves them). Each set draws from its own stream, fixed by (data_seed, task, set
    name, and the lag range when there is one) only, so every run of a sweep sees the same strings
    (seeds vary the initial weights and the order).

    ``disjoint``: each embedded set is half T, half P, in an order drawn from its stream (an odd
    set's extra string takes an outer symbol drawn from its stream too); the sets
    take turns, one string each (train, val, test, train, ...), each string drawn without every
    string drawn before it, so no string occurs twice in a set or in two sets and the three sets
    follow one distribution. (Drawing the whole training set first would leave the others only
    the rarer strings: under the grammar's own distribution, longer ones.) ``independent``: every
    string drawn afresh; without a lag exactly the authors' sampling, so a short string recurs
    within and across sets."""
    embedded = task == "embedded-reber"
    streams = {name: cells.stream("data", data_seed, task, name, *(("lag", *lag) if lag else ())) for name in SETS}
    if sampling == "independent" and lag is None:
        return {name: sample_set(streams[name], sizes[name], embedded) for name in SETS}
    outers = ("T", "P") if embedded else ("",)
    pools = {a: Pool(lag) for a in outers}
    labels = {name: [outers[i] for i in rng.integers(len(outers), size=sizes[name])] if sampling == "independent"
              else rng.permutation([a for a in outers for _ in range(sizes[name] // len(outers))]
                                   + [outers[rng.integers(len(outers))] for _ in range(sizes[name] % len(outers))])
              for name, rng in streams.items()}
    out: Dict[str, List[str]] = {name: [] for name in SETS}
    for i in range(max(sizes.values())):
        for name in (name for name in SETS if i < sizes[name]):
            a = labels[name][i]
            inner = pools[a].draw(streams[name])
            if sampling == "disjoint":
                pools[a].exclude(inner)
            out[name].append(f"B{a}{inner}{a}E" if a else inner)
    return out


def encode_sets(strings: Dict[str, List[str]], embedded: bool, dtype) -> Dict[str, Encoded]:
    """Every set encoded, padded to one length."""
    length = max(len(s) for ss in strings.values() for s in ss) - 1
    return {name: encode(ss, embedded, length, dtype) for name, ss in strings.items()}


def datasets(task: str, sizes: Dict[str, int], data_seed: int, dtype, lag: Optional[Tuple[int, int]] = None,
             sampling: str = "disjoint") -> Dict[str, Encoded]:
    """The encoded sets of ``draw_sets``, at the sizes ``set_sizes`` allows (logging its note)."""
    used, note = set_sizes(task, sizes, lag, sampling)
    if note:
        log.warning(note)
    return encode_sets(draw_sets(task, used, data_seed, lag, sampling), task == "embedded-reber", dtype)


def constant_outer(strings: Sequence[str], embedded: bool) -> float:
    """The outer-symbol accuracy of the best constant prediction: max(share of T, share of P)
    (NaN on reber)."""
    if not embedded:
        return math.nan
    t = sum(s[1] == "T" for s in strings) / len(strings)
    return max(t, 1 - t)


def share_in(strings: Sequence[str], other: Sequence[str]) -> float:
    """The share of ``strings`` that occur verbatim in ``other``."""
    seen = set(other)
    return sum(s in seen for s in strings) / len(strings)


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
