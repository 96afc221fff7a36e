"""Every figure of the report, by name, and ``write_figures(DIR)`` (``lksweep figures DIR``).

A figure whose table is missing (or holds nothing it can draw) is skipped with a one-line
note, never an error. Figures are written as PNG and PDF to ``DIR/figures/``.
"""
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (before any pyplot import anywhere)

from matplotlib.figure import Figure  # noqa: E402

from . import fig_discrepancy, fig_training  # noqa: E402
from .tables import NoData, available, discrepancy_summary, load  # noqa: E402


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
        if "_dsummary" not in self._cache:
            self._cache["_dsummary"] = discrepancy_summary(self.get("discrepancy"))
        return self._cache["_dsummary"]


@dataclass
class Spec:
    name: str
    title: str
    build: Callable[[Tables], Figure]


def _need_cell(summary, cell):
    if not (summary["cell"] == cell).any():
        raise Skip(f"no {cell} rows in the discrepancy table")
    return summary


FIGURES: List[Spec] = [
    Spec("fig03_reber_outputs", "Fig 3 — vanilla k=5 on Reber: outputs on the probe prefixes",
         lambda t: fig_training.probe_heatmap(t.get("probes"), "reber", "vanilla", "output")),
    Spec("fig04_reber_hidden", "Fig 4 — vanilla k=5 on Reber: hidden states, labelled by automaton state",
         lambda t: fig_training.probe_heatmap(t.get("probes"), "reber", "vanilla", "hidden")),
    Spec("fig06_embedded_vanilla_outputs", "Fig 6 — vanilla on embedded Reber: outputs",
         lambda t: fig_training.probe_heatmap(t.get("probes"), "embedded", "vanilla", "output")),
    Spec("fig07_embedded_gru_outputs", "Fig 7 — GRU on embedded Reber: outputs",
         lambda t: fig_training.probe_heatmap(t.get("probes"), "embedded", "gru", "output")),
    Spec("fig08_embedded_vanilla_hidden", "Fig 8 — vanilla on embedded Reber: hidden state",
         lambda t: fig_training.probe_heatmap(t.get("probes"), "embedded", "vanilla", "hidden")),
    Spec("fig09_gradients", "Fig 9 — distribution of |dloss/dθ| coefficients (log scale)",
         lambda t: fig_training.gradient_histograms(t.get("gradients"))),
    Spec("fig10_discrepancy_vanilla", "Fig 10 — D(l,k) of the vanilla RNN",
         lambda t: fig_discrepancy.surface(_need_cell(t.dsummary(), "vanilla"), "vanilla")),
    Spec("fig11_discrepancy_gru", "Fig 11 — D(l,k) of the GRU",
         lambda t: fig_discrepancy.surface(_need_cell(t.dsummary(), "gru"), "gru")),
    Spec("discrepancy_curves", "D(l) for chosen k: mean with 95 % CI, and median with 10-90 % band",
         lambda t: fig_discrepancy.curves(t.dsummary())),
    Spec("discrepancy_frac_distinct", "Share of draws that still tell u from v",
         lambda t: fig_discrepancy.frac_distinct(t.dsummary())),
    Spec("success_rates", "Success rate of each cell and protocol across training seeds (Wilson 95 %)",
         lambda t: fig_training.success_rates(t.get("runs"))),
    Spec("gradient_vs_distance", "||dloss/dh_t|| against distance to the loss term",
         lambda t: fig_training.gradient_vs_distance(t.get("gradients"))),
]


@dataclass
class Result:
    name: str
    title: str
    png: Optional[str] = None
    pdf: Optional[str] = None
    note: str = ""


def build(out: str, names: Optional[List[str]] = None):
    """Yield (spec, Figure or None, note) for every figure (or those in ``names``)."""
    tables = Tables(out)
    for spec in FIGURES:
        if names and spec.name not in names:
            continue
        try:
            yield spec, spec.build(tables), ""
        except Skip as e:
            yield spec, None, f"skipped {spec.name}: {e}"


def write_figures(out: str, names: Optional[List[str]] = None, pdf: bool = True) -> List[Result]:
    """Draw every figure DIR's tables allow into ``DIR/figures/``; NoData if DIR holds no table."""
    if not available(out):
        raise NoData(f"DIR: {out} holds no lksweep table (expected e.g. {out}/discrepancy/*.parquet)")
    fdir = os.path.join(out, "figures")
    os.makedirs(fdir, exist_ok=True)
    results = []
    for spec, fig, note in build(out, names):
        r = Result(spec.name, spec.title, note=note)
        if fig is not None:
            r.png = os.path.join(fdir, spec.name + ".png")
            fig.savefig(r.png, dpi=110)
            if pdf:
                r.pdf = os.path.join(fdir, spec.name + ".pdf")
                fig.savefig(r.pdf)
        results.append(r)
    return results
