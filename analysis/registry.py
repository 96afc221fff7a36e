"""The figure registry: a figure is a function of an output directory's tables, registered
with ``@figure(name, title, claims=...)`` in one of the ``fig_*`` modules.

A figure whose table is missing (or holds nothing it can draw) raises :class:`Skip`, whose
message becomes a one-line note; ``claims`` places it under those claims of the report (a
figure with none goes under "Other figures").
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

from matplotlib.figure import Figure

from .tables import NoData, discrepancy_summary, load


class Skip(Exception):
    """A figure that cannot be drawn from what DIR holds; its message is the note."""


class Tables:
    """Lazy, cached access to DIR's tables for the figure builders."""

    def __init__(self, out: str):
        self.out = out
        self._cache: Dict[str, object] = {}

    def get(self, table: str):
        if table not in self._cache:
            try:
                self._cache[table] = load(self.out, table)
            except NoData:
                self._cache[table] = None
        if self._cache[table] is None or len(self._cache[table]) == 0:
            raise Skip(f"no {table!r} table")
        return self._cache[table]

    def dsummary(self):
        """The discrepancy table with seed ensembles combined (analysis.tables.discrepancy_summary)."""
        if "_dsummary" not in self._cache:
            self._cache["_dsummary"] = discrepancy_summary(self.get("discrepancy"))
        return self._cache["_dsummary"]


@dataclass(frozen=True)
class FigureDef:
    name: str                            # file name, without .png / .pdf
    title: str
    build: Callable[[Tables], Figure]
    claims: Tuple[int, ...] = ()


FIGURES: List[FigureDef] = []


def figure(name: str, title: str, claims: Tuple[int, ...] = ()):
    """Decorator: register ``build(tables) -> Figure`` as figure ``name``."""
    def wrap(build):
        FIGURES.append(FigureDef(name, title, build, tuple(claims)))
        return build
    return wrap
