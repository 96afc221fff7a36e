"""The registries of the report's parts: figures and sections, each a function of an output
directory's tables.

A figure registers with ``@figure(name, title, claims=..., section=...)`` in one of the
``fig_*`` modules; ``claims`` places it under those claims of the report, ``section`` under that
section, and a figure with neither goes under "Other figures". A section (a part of the report
beyond the paper's four claims, e.g. what decides a result) registers with
``@section(id, title)`` and returns a :class:`Section`. A figure or section whose table is
missing (or holds nothing it can use) raises :class:`Skip`, whose message becomes a one-line note.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import pandas as pd
from matplotlib.figure import Figure

from .rates import decay_summary
from .tables import NoData, discrepancy_summary, load

# The summaries several figures and sections read, by the table they summarise.
SUMMARIES = {"discrepancy": discrepancy_summary, "state_discrepancy": discrepancy_summary, "memory": decay_summary}


class Skip(Exception):
    """A figure that cannot be drawn from what DIR holds; its message is the note."""


class Tables:
    """Lazy, cached access to DIR's tables and their summaries for the figure builders; ``used`` collects the
    tables asked for (the report marks what a section read while it was being written)."""

    def __init__(self, out: str):
        self.out = out
        self._cache: Dict[str, object] = {}
        self.used: set = set()

    def get(self, table: str):
        self.used.add(table)
        if table not in self._cache:
            try:
                self._cache[table] = load(self.out, table)
            except NoData:
                self._cache[table] = None
        if self._cache[table] is None or len(self._cache[table]) == 0:
            raise Skip(f"no {table!r} table")
        return self._cache[table]

    def summary(self, table: str):
        """``table`` with seed ensembles combined (``SUMMARIES``: analysis.tables.discrepancy_summary,
        analysis.rates.decay_summary), computed once; a later call still counts as reading ``table``."""
        key = f"summary/{table}"
        if key not in self._cache:
            self._cache[key] = SUMMARIES[table](self.get(table))
        self.used.add(table)
        return self._cache[key]


@dataclass(frozen=True)
class FigureDef:
    name: str                            # file name, without .png / .pdf
    title: str
    build: Callable[[Tables], Figure]
    claims: Tuple[int, ...] = ()
    section: str = ""


FIGURES: List[FigureDef] = []


def figure(name: str, title: str, claims: Tuple[int, ...] = (), section: str = ""):
    """Decorator: register ``build(tables) -> Figure`` as figure ``name``."""
    def wrap(build):
        FIGURES.append(FigureDef(name, title, build, tuple(claims), section))
        return build
    return wrap


@dataclass
class Section:
    """What a section of the report states: paragraphs of text with the numbers, findings
    (``analysis.rules.Finding``: a scope, a verdict and a sentence, with its table) and tables."""

    paragraphs: List[str] = field(default_factory=list)
    findings: List = field(default_factory=list)
    tables: List[pd.DataFrame] = field(default_factory=list)


@dataclass(frozen=True)
class SectionDef:
    id: str                              # the page anchor
    title: str
    build: Callable[[Tables], Section]


SECTIONS: List[SectionDef] = []


def section(id: str, title: str):
    """Decorator: register ``build(tables) -> Section`` as a section of the report."""
    def wrap(build):
        SECTIONS.append(SectionDef(id, title, build))
        return build
    return wrap
