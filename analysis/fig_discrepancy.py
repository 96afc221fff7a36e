"""Figures of the ``discrepancy`` table: the paper's Fig 10/11 and what the mean hides.

Every function takes the *summary* frame of :func:`analysis.tables.discrepancy_summary`
(seeds combined) and returns a Matplotlib Figure; the plotted arrays are exactly the
summary's numbers (log10 images use ``log10(max(D, FLOOR))``).
"""
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .registry import Skip, figure
from .tables import grid, pick_dtype

FLOOR = 1e-20          # the smallest non-zero distance the store's histograms resolve
CELL_STYLE = {"vanilla": "-", "gru": "--"}


def pick_init(summary: pd.DataFrame) -> str:
    """The paper's N(0,1) draws when measured, else the first init in the table."""
    inits = sorted(summary["init"].unique())
    return "normal" if "normal" in inits else inits[0]


PAPER_CELLS = ("vanilla", "gru")
PAPER_INITS = ("normal", "xavier", "uniform")


def paper_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of the paper's two cells and three draws when there are any (claim 4's
    figures; the other cells and gains have figures of their own), else all rows."""
    s = summary[summary["cell"].isin(PAPER_CELLS)] if summary["cell"].isin(PAPER_CELLS).any() else summary
    return s[s["init"].isin(PAPER_INITS)] if s["init"].isin(PAPER_INITS).any() else s


def default_ks(ks, want=(1, 3, 5, 10, 20)):
    ks = sorted(set(int(k) for k in ks))
    chosen = [k for k in want if k in ks]
    if chosen and ks[-1] not in chosen and len(chosen) < 5:
        chosen.append(ks[-1])
    if len(chosen) < 2:
        idx = np.unique(np.linspace(0, len(ks) - 1, min(4, len(ks))).round().astype(int))
        chosen = [ks[i] for i in idx]
    return chosen


def log_grid(g: pd.DataFrame) -> np.ndarray:
    return np.log10(np.maximum(g.to_numpy(float), FLOOR))


def show_grid(ax, values, ls, ks, **kw):
    """A (k, l) grid as an image: one row per k at its index, labelled with the k values
    (which need not be contiguous, e.g. 4, 8, 16); l runs 1..l_max."""
    im = ax.imshow(values, aspect="auto", origin="lower", extent=(ls[0] - 0.5, ls[-1] + 0.5, -0.5, len(ks) - 0.5),
                   **kw)
    step = max(1, -(-len(ks) // 10))
    ax.set_yticks(range(0, len(ks), step), [str(k) for k in ks[::step]])
    return im


def footnote(fig: Figure, text: str, size: float = 8) -> float:
    """``text`` under the panels, wrapped to the figure's width; returns the share of the figure's height
    it takes (the bottom of the rectangle ``tight_layout`` leaves to the panels)."""
    width, height = fig.get_size_inches()
    lines = textwrap.wrap(text, int(width * 72 / (0.55 * size)))
    fig.text(0.01, 0.005, "\n".join(lines), fontsize=size, va="bottom")
    return (len(lines) * 1.25 * size / 72 + 0.08) / height


def log_range(summary: pd.DataFrame, columns=("mean", "q50")) -> tuple:
    """(vmin, vmax) of log10 max(D, FLOOR) over ``columns`` of ``summary``: one colour scale for every
    panel drawn from it."""
    v = np.log10(np.maximum(summary[list(columns)].to_numpy(float), FLOOR))
    return float(np.nanmin(v)), float(np.nanmax(v))


def surface(summary: pd.DataFrame, cell: str, init: str = None) -> Figure:
    """Fig 10 (vanilla) / Fig 11 (GRU): log10 D(l,k) as heatmaps of the mean (the paper's statistic,
    which the vanilla's rare draws rule) and of the median (what claim 4's rule reads), on one colour
    scale shared with the other cell's figure (the paper's two cells under this init), one row per k."""
    s = pick_dtype(summary)
    init = init or pick_init(s)
    vmin, vmax = log_range(paper_rows(s[s["init"] == init]))
    s = s[(s["cell"] == cell) & (s["init"] == init)]
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    n = int(s["n_seeds"].max()), int(s["n_draws"].max())
    for ax, stat, what in zip(axes, ("mean", "q50"), ("mean", "median")):
        g = grid(s, stat)
        ks, ls = g.index.to_numpy(), g.columns.to_numpy()
        im = show_grid(ax, log_grid(g), ls, ks, cmap="viridis", vmin=vmin, vmax=vmax, gid=f"{stat}|{cell}")
        ax.set_xlabel("l")
        ax.set_title(f"log10 {what} D(l,k), {cell}, init {init}", fontsize=10)
    axes[0].set_ylabel("k")
    fig.colorbar(im, ax=list(axes), label=f"log10 D(l,k) (exact 0 shown at {np.log10(FLOOR):g})")
    fig.suptitle(f"{n[0]} ensemble(s) of {n[1] // n[0]} draws; the median is the mean over ensembles of each "
                 f"ensemble's median", fontsize=9)
    return fig


def curves(summary: pd.DataFrame, ks=None) -> Figure:
    """D(l) for chosen k on a log axis, one row per init: left the mean with its 95 %
    confidence band across ensembles, right the median with the 10-90 % band of draws."""
    s = paper_rows(pick_dtype(summary))
    inits = sorted(s["init"].unique())
    ks = list(ks) if ks is not None else default_ks(s["k"].unique())
    fig = Figure(figsize=(12, 3.6 * len(inits)))
    axes = fig.subplots(len(inits), 2, squeeze=False, sharey=True)
    colors = {k: f"C{i}" for i, k in enumerate(ks)}
    for row, init in enumerate(inits):
        left, right = axes[row]
        for cell in sorted(s["cell"].unique()):
            for k in ks:
                d = s[(s["cell"] == cell) & (s["init"] == init) & (s["k"] == k)].sort_values("l")
                if d.empty:
                    continue
                kw = dict(color=colors[k], linestyle=CELL_STYLE.get(cell, ":"), label=f"{cell} k={k}")
                left.plot(d["l"], d["mean"], gid=f"mean|{cell}|{init}|{k}", **kw)
                left.fill_between(d["l"], np.maximum(d["ci_lo"], FLOOR), np.maximum(d["ci_hi"], FLOOR),
                                  color=colors[k], alpha=0.15, linewidth=0)
                right.plot(d["l"], d["q50"], gid=f"q50|{cell}|{init}|{k}", **kw)
                right.fill_between(d["l"], np.maximum(d["q10"], FLOOR), np.maximum(d["q90"], FLOOR),
                                   color=colors[k], alpha=0.15, linewidth=0)
        for ax, what in ((left, "mean D, 95 % CI across ensembles"), (right, "median, 10-90 % of draws (mean over ensembles)")):
            ax.set_yscale("log")
            ax.set_ylim(bottom=1e-18)
            ax.set_xlabel("l")
            ax.set_title(f"init {init}: {what}", fontsize=10)
            ax.grid(True, which="major", alpha=0.3)
        left.set_ylabel("||h_u - h_v||")
        left.legend(fontsize=7, ncol=2)
    bottom = footnote(fig, "solid: vanilla, dashed: GRU. A median of exactly 0 (bit-identical trajectories) is not "
                           "drawn on the log axis.")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


def frac_distinct(summary: pd.DataFrame, thresholds=()) -> Figure:
    """Share of draws whose ||h_u - h_v|| stays above the sweep's threshold (``thresholds``: the values
    the table holds), over (l,k): one panel per cell (columns) and init (rows)."""
    s = paper_rows(pick_dtype(summary))
    inits, cells = sorted(s["init"].unique()), sorted(s["cell"].unique())
    fig = Figure(figsize=(5.2 * len(cells), 3.8 * len(inits)), layout="constrained")
    axes = fig.subplots(len(inits), len(cells), squeeze=False)
    for r, init in enumerate(inits):
        for c, cell in enumerate(cells):
            ax = axes[r][c]
            d = s[(s["cell"] == cell) & (s["init"] == init)]
            if d.empty:
                ax.set_axis_off()
                continue
            g = grid(d, "frac_distinct")
            ks, ls = g.index.to_numpy(), g.columns.to_numpy()
            im = show_grid(ax, g.to_numpy(float), ls, ks, vmin=0, vmax=1, cmap="magma", gid=f"{cell}|{init}")
            ax.set_title(f"{cell}, init {init}", fontsize=10)
            ax.set_xlabel("l"), ax.set_ylabel("k")
    above = " or ".join(f"{t:g}" for t in sorted(thresholds)) or "the sweep's threshold"
    fig.colorbar(im, ax=axes.ravel().tolist(), label=f"share of draws with ||h_u - h_v|| > {above}")
    return fig


# ---------------------------------------------------------------------- registered figures
def _need_cell(summary: pd.DataFrame, cell: str) -> pd.DataFrame:
    if not (summary["cell"] == cell).any():
        raise Skip(f"no {cell} rows in the discrepancy table")
    return summary


@figure("fig10_discrepancy_vanilla", "Fig 10 — D(l,k) of the vanilla RNN", claims=(4,))
def fig10(t):
    return surface(_need_cell(t.summary("discrepancy"), "vanilla"), "vanilla")


@figure("fig11_discrepancy_gru", "Fig 11 — D(l,k) of the GRU", claims=(4,))
def fig11(t):
    return surface(_need_cell(t.summary("discrepancy"), "gru"), "gru")


@figure("discrepancy_curves", "D(l) for chosen k: mean with 95 % CI, and median with 10-90 % band", claims=(4,))
def discrepancy_curves(t):
    return curves(t.summary("discrepancy"))


@figure("discrepancy_frac_distinct", "Share of draws that still tell u from v", claims=(4,))
def discrepancy_frac_distinct(t):
    return frac_distinct(t.summary("discrepancy"), t.get("discrepancy")["threshold"].unique())
