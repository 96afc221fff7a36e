"""Verdict rules that print themselves: one source for what the page says a rule is and for
what decides.

A :class:`Rule` names the quantities a judge measures (``quantities``: name -> the words the page
uses for it), and decides with ordered cases, each a verdict and a condition on those quantities
(:class:`Compare`, :class:`All`, :class:`AnyOf`); the first case that holds gives the verdict,
else ``otherwise``. The page prints :attr:`Rule.text`, rendered from the same cases, thresholds
and names the judge evaluates, so a change to the logic changes the printed rule.

A :class:`Claim` is one object: its statement, the tables it reads, its rules and its judge;
``claim(tables)`` judges it (a :class:`Judged`: the claim and its findings). Verdicts are the
closed set :class:`Verdict`.
"""
import math
import operator
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd

from .registry import Skip


class Verdict(str, Enum):
    SUPPORTED = "supported"
    NOT_SUPPORTED = "not supported"
    INCONCLUSIVE = "inconclusive"                                          # the rule's measures disagree
    MORE_SEEDS = "inconclusive: more seeds would decide"
    LONGER = "inconclusive: a longer training budget would decide"
    CHAOTIC = "chaotic"                                                    # D cannot tell memory from chaos
    NOT_MEASURED = "not measured"

    def __str__(self) -> str:
        return self.value


OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
WORDS = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass(frozen=True)
class Compare:
    """``left op right``: ``right`` a number (printed with ``fmt``) or another quantity's name,
    multiplied by ``factor``."""
    left: str
    op: str
    right: Union[float, str]
    factor: float = 1.0
    fmt: str = "{:.0%}"

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}, got {self.op!r}")

    def names(self) -> Tuple[str, ...]:
        return (self.left,) + ((self.right,) if isinstance(self.right, str) else ())

    def holds(self, q: Mapping[str, float]) -> bool:
        right = q[self.right] if isinstance(self.right, str) else self.right
        return bool(OPS[self.op](q[self.left], right * self.factor))

    def text(self, names: Mapping[str, str]) -> str:
        if isinstance(self.right, str):
            right = names[self.right] + ("" if self.factor == 1 else f" x {self.factor:g}")
        else:
            right = self.fmt.format(self.right * self.factor)
        return f"{names[self.left]} {WORDS[self.op]} {right}"


@dataclass(frozen=True)
class All:
    parts: Tuple

    def names(self):
        return tuple(n for p in self.parts for n in p.names())

    def holds(self, q) -> bool:
        return all(p.holds(q) for p in self.parts)

    def text(self, names) -> str:
        return " and ".join(_nested(p, names) for p in self.parts)


@dataclass(frozen=True)
class AnyOf:
    parts: Tuple

    def names(self):
        return tuple(n for p in self.parts for n in p.names())

    def holds(self, q) -> bool:
        return any(p.holds(q) for p in self.parts)

    def text(self, names) -> str:
        return "either " + " or ".join(_nested(p, names) for p in self.parts)


def _nested(p, names) -> str:
    return f"({p.text(names)})" if isinstance(p, (All, AnyOf)) else p.text(names)


Condition = Union[Compare, All, AnyOf]
DECISIVE = (Verdict.SUPPORTED, Verdict.NOT_SUPPORTED)
LONGER_TEXT = ("{longer} if one of these holds once the failed runs that the epoch cap stopped while their "
               "validation score was still rising count as successes")


@dataclass(frozen=True)
class Rule:
    measure: str                              # what is measured, over which runs (the quantities' definitions)
    quantities: Mapping[str, str]             # name -> the words the rule text uses for it
    cases: Tuple[Tuple[Verdict, Condition], ...]
    otherwise: Verdict
    budget: bool = False                      # tell a budget-limited result from a seed-limited one
    label: str = ""                           # e.g. "(a)" for a claim with several rules

    def __post_init__(self):
        unknown = {n for _, c in self.cases for n in c.names()} - set(self.quantities)
        if unknown:
            raise ValueError(f"rule conditions name unknown quantities: {', '.join(sorted(unknown))}")

    def decide(self, q: Mapping[str, float], if_longer: Sequence[Mapping[str, float]] = ()) -> Verdict:
        """The verdict on quantities ``q``: NOT_MEASURED if one the cases read is missing or NaN;
        else the first decisive case (supported, not supported) that holds; else, with ``budget``,
        LONGER if a decisive case holds on one of ``if_longer`` (the quantities with the capped,
        still-improving runs counted as successes); else the first other case that holds; else
        ``otherwise``."""
        needed = {n for _, c in self.cases for n in c.names()}
        if any(q.get(n) is None or (isinstance(q[n], float) and math.isnan(q[n])) for n in needed):
            return Verdict.NOT_MEASURED
        decisive = [(v, c) for v, c in self.cases if v in DECISIVE]
        for verdict, condition in decisive:
            if condition.holds(q):
                return verdict
        if self.budget and any(c.holds(alt) for alt in if_longer for _, c in decisive):
            return Verdict.LONGER
        for verdict, condition in self.cases:
            if verdict not in DECISIVE and condition.holds(q):
                return verdict
        return self.otherwise

    @property
    def text(self) -> str:
        def said(cases):
            return [f"{v} if {c.text(self.quantities)}" for v, c in cases]
        parts = said([(v, c) for v, c in self.cases if v in DECISIVE])
        if self.budget:
            parts.append(LONGER_TEXT.format(longer=Verdict.LONGER))
        parts += said([(v, c) for v, c in self.cases if v not in DECISIVE]) + [f"{self.otherwise} otherwise"]
        return (f"{self.label + ' ' if self.label else ''}{self.measure} Verdict, the first that applies: "
                + "; ".join(parts) + f". {Verdict.NOT_MEASURED.value.capitalize()} where a quantity it reads is "
                "missing.")


@dataclass(frozen=True)
class Prose:
    """A rule stated in words, its decision in the judge's own code (claim 4's rate_verdict)."""
    text: str


@dataclass
class Finding:
    scope: str                      # e.g. "recipe paper", "init normal"
    verdict: Enum                   # a Verdict (claims), or a section's own closed set (e.g. sec_training.Effect)
    summary: str                    # one sentence with the numbers
    table: Optional[pd.DataFrame] = None


@dataclass(frozen=True)
class Claim:
    number: int
    statement: str
    tables: Tuple[str, ...]                   # what the judge reads, in its arguments' order
    rules: Tuple[Union[Rule, Prose], ...]
    judge: Callable[..., "Judged"]            # judge(*frames, claim=self): frames None where missing

    @property
    def rule(self) -> str:
        return " ".join(r.text for r in self.rules)

    def check(self, *frames: Optional[pd.DataFrame]) -> "Judged":
        return self.judge(*frames, claim=self)

    def __call__(self, tables) -> "Judged":
        """Judge against ``tables`` (``analysis.registry.Tables``)."""
        frames = []
        for t in self.tables:
            try:
                frames.append(tables.get(t))
            except Skip:
                frames.append(None)
        return self.check(*frames)


@dataclass
class Judged:
    claim: Claim
    findings: List[Finding] = field(default_factory=list)

    number = property(lambda self: self.claim.number)
    statement = property(lambda self: self.claim.statement)
    rule = property(lambda self: self.claim.rule)
    tables = property(lambda self: self.claim.tables)

    @property
    def verdict(self) -> Optional[Verdict]:
        """The claim's one verdict; None where it depends on the scope (see the findings)."""
        vs = {f.verdict for f in self.findings}
        if not vs:
            return Verdict.NOT_MEASURED
        return vs.pop() if len(vs) == 1 else None
