"""Figures of the trainability map (``analysis.trainability``), under the report's section
"From memory at initialisation to what training learns": the success rate against the lag per
cell and weight scale with the logistic fit and L50, L50 against the initial time constant of D,
and the memory of the initial and the trained models along the inner string (``task_memory``).
"""
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from .fig_discrepancy import footnote
from .fig_memory import cells_in, init_order
from .palette import cell_color
from .registry import Skip, figure
from .sec_trainability import MEASURES, SECTION, _optional, lag_runs, reach, stage_values
from .success import flag_runs
from .trainability import correlation, fit, l50, lag_text, success_by_lag, trainability_map

MARKERS = ("o", "s", "D", "P", "X", "*")


def _points(d: pd.DataFrame):
    """The (scope, cell, k) rows and the inits (columns) of the success figure, in order."""
    rows = sorted({(s, c, int(k)) for s, c, k in zip(d["scope"], d["cell"], d["k"])},
                  key=lambda r: (r[0], cells_in(d).index(r[1]), r[2]))
    return rows, sorted(d["init"].unique(), key=init_order)


def success_against_lag(d: pd.DataFrame) -> Figure:
    """One panel per (scope, cell, k) row and init column: the success rate per lag range
    (Wilson 95 % bars; the horizontal bar spans the range), the logistic fit and L50 (dashed)
    where it falls inside the lags trained. Errorbar gid: '<scope>|<cell>|<k>|<init>'."""
    rates = success_by_lag(d)
    rows, inits = _points(d)
    scopes = len({r[0] for r in rows})
    fig = Figure(figsize=(3.3 * len(inits) + 0.6, 2.5 * len(rows) + 0.9))
    axes = fig.subplots(len(rows), len(inits), squeeze=False, sharex=True, sharey=True)
    span = (float(rates["lag_min"].min()) - 1, float(rates["lag_max"].max()) + 1)
    for r, (scope, cell, k) in enumerate(rows):
        for c, init in enumerate(inits):
            ax = axes[r][c]
            g = rates[(rates["scope"] == scope) & (rates["cell"] == cell) & (rates["k"] == k)
                      & (rates["init"] == init)].sort_values("lag")
            label = f"{cell} k={k}, {init}" + (f"\n{scope}" if scopes > 1 else "")
            if g.empty:
                ax.text(0.5, 0.5, f"{label}:\nnot trained", ha="center", va="center", fontsize=8,
                        transform=ax.transAxes)
                ax.set_axis_off()
                continue
            color = cell_color(cell)
            ax.errorbar(g["lag"], g["rate"], yerr=[g["rate"] - g["lo"], g["hi"] - g["rate"]],
                        xerr=[g["lag"] - g["lag_min"], g["lag_max"] - g["lag"]], fmt="o", color=color,
                        markersize=4, capsize=2, elinewidth=1, gid=f"{scope}|{cell}|{k}|{init}")
            x = g["lag"].to_numpy(float)
            s, n = g["successes"].to_numpy(float), g["n"].to_numpy(float)
            b0, b1 = fit(x - x.mean(), s, n)
            grid = np.linspace(*span, 200)
            ax.plot(grid, 1 / (1 + np.exp(-(float(b0) + float(b1) * (grid - x.mean())))), color=color, linewidth=1)
            at = float(l50(x, s, n))
            if math.isfinite(at):
                ax.axvline(at, color="0.3", linestyle="--", linewidth=0.8)
            ax.axhline(0.5, color="0.7", linewidth=0.6, zorder=0)
            ax.set_title(f"{label}: L50 {lag_text(at, x)}", fontsize=8)
            ax.set_ylim(-0.05, 1.05), ax.set_xlim(*span)
            ax.grid(True, alpha=0.3)
            if c == 0:
                ax.set_ylabel("success rate")
            if r == len(rows) - 1:
                ax.set_xlabel("lag: inner-string length")
    bottom = footnote(fig, "Success: test outer accuracy >= 95 % (selected model). Bars: Wilson 95 % over seeds "
                      "(vertical), the lag range trained (horizontal). Line: the logistic fit; dashed: L50 (the title "
                      "gives a bound instead where the observed rate stays on one side of one half).")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


@figure("trainability_success", "Success against the lag, per cell and weight scale (Wilson 95 %), with the "
        "logistic fit and L50", section=SECTION)
def trainability_success(t):
    return success_against_lag(lag_runs(t))


def l50_against_memory(m: pd.DataFrame) -> Figure:
    """One panel per scope: L50 (bootstrap 95 % bar) against the initial time constant of D (its 95 %
    interval), one point per (cell, k, init): colour the cell, marker the init. A censored L50 sits
    at the lag it is bounded by, hollow, with an arrow pointing where it lies; a time constant that
    is infinite (D does not decay) sits at the right edge, hollow, with an arrow to the right.
    Marker gid: '<scope>|<cell>|<k>|<init>'."""
    scopes = sorted(m["scope"].unique())
    fig = Figure(figsize=(7.4 * len(scopes), 5.4))
    axes = fig.subplots(1, len(scopes), squeeze=False)[0]
    inits = sorted(m["init"].unique(), key=init_order)
    marker = {init: MARKERS[i % len(MARKERS)] for i, init in enumerate(inits)}
    for ax, scope in zip(axes, scopes):
        g = m[m["scope"] == scope]
        lags = np.concatenate(g["lags"].to_numpy())
        lo_lag, hi_lag = float(lags.min()), float(lags.max())
        finite = g["tau"][np.isfinite(g["tau"])]
        ends = np.concatenate([finite, g["tau_lo"][np.isfinite(g["tau_lo"]) & (g["tau_lo"] > 0)]])
        x_lo = float(ends.min()) / 2 if len(ends) else 1.0
        tops = np.concatenate([finite.to_numpy(float), g["tau_hi"].to_numpy(float)])
        tops = tops[np.isfinite(tops)]
        x_edge = float(tops.max()) * 4 if len(tops) else 100.0
        some_infinite = bool((~np.isfinite(g["tau"])).any())
        for _, r in g.iterrows():
            color, infinite = cell_color(r["cell"]), not math.isfinite(r["tau"])
            x = x_edge if infinite else r["tau"]
            censored = not math.isfinite(r["L50"])
            y = min(max(r["L50"], lo_lag), hi_lag) if censored else r["L50"]   # a fitted L50 may lie a little outside
            face = "none" if censored or infinite else color
            xlo = x - (r["tau_lo"] if math.isfinite(r["tau_lo"]) else x)
            xhi = (min(r["tau_hi"], x_edge) if not infinite else x) - x
            ylo = y - min(max(r["L50_lo"], lo_lag), hi_lag) if math.isinf(r["L50_lo"]) else y - r["L50_lo"]
            yhi = min(max(r["L50_hi"], lo_lag), hi_lag) - y if math.isinf(r["L50_hi"]) else r["L50_hi"] - y
            ax.errorbar([x], [y], xerr=[[max(xlo, 0)], [max(xhi, 0)]], yerr=[[max(ylo, 0)], [max(yhi, 0)]],
                        fmt=marker[r["init"]], color=color, mfc=face, markersize=7, capsize=2, elinewidth=0.9,
                        gid=f"{scope}|{r['cell']}|{r['k']}|{r['init']}")
            if censored:
                ax.annotate("", xy=(x, y + (0.06 if r["L50"] > 0 else -0.06) * (hi_lag - lo_lag)), xytext=(x, y),
                            arrowprops={"arrowstyle": "->", "color": color})
            if infinite:
                ax.annotate("", xy=(x * 1.5, y), xytext=(x, y), arrowprops={"arrowstyle": "->", "color": color})
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())     # a narrow range would label minor ticks into each other
        ax.set_xlim(x_lo, x_edge * 2.2 if some_infinite else x_edge / 2)
        pad = 0.12 * (hi_lag - lo_lag) or 1.0
        ax.set_ylim(lo_lag - pad, hi_lag + pad)
        ax.axhline(hi_lag, color="0.75", linewidth=0.6, zorder=0), ax.axhline(lo_lag, color="0.75", linewidth=0.6, zorder=0)
        ax.set_xlabel("time constant of D at initialisation (steps, log)")
        ax.set_ylabel("L50: lag at which half the seeds succeed")
        q = correlation(g)
        ends = (f"[{q['rho_lo']:.2f}, {q['rho_hi']:.2f}]" if math.isfinite(q["rho_lo"])
                else "(interval not defined: ranks tie in many replicates)")
        rho = (f"Spearman ρ = {q['rho']:.2f} {ends}, {q['points']} points"
               if math.isfinite(q["rho"]) else f"ρ not defined ({q['points']} points)")
        ax.set_title(f"{scope}\n{rho}", fontsize=9)
        ax.grid(True, alpha=0.3, which="both")
        cells = [Line2D([], [], color=cell_color(c), marker="o", linestyle="", label=c) for c in cells_in(g)]
        shapes = [Line2D([], [], color="0.3", marker=marker[i], linestyle="", label=i) for i in inits
                  if (g["init"] == i).any()]
        # beside the axes: no point hides under them
        first = ax.legend(handles=cells, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="cell",
                          title_fontsize=7)
        ax.add_artist(first)
        ax.legend(handles=shapes, fontsize=7, loc="lower left", bbox_to_anchor=(1.01, 0.0), title="init",
                  title_fontsize=7)
    bottom = footnote(fig, "Bars: L50's bootstrap 95 % interval over seeds; the time constant's 95 % interval. Hollow "
                      "with an arrow: L50 beyond the longest or short of the shortest lag trained (grey lines), or a "
                      "time constant that is infinite (D does not decay; drawn at the right edge).")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


@figure("trainability_l50_vs_memory", "L50 against the time constant of D at initialisation, one point per cell, "
        "width and weight scale", section=SECTION)
def trainability_l50_vs_memory(t):
    lag_runs(t)                          # Skip where no run has a lag range
    m = trainability_map(t.get("runs"), t.get("memory"), _optional(t, "lyapunov"), _optional(t, "decodable"),
                         _optional(t, "epochs"))
    m = m[m["tau"].notna()]
    if m.empty:
        raise Skip("no memory rows at the cells, widths and inits trained with a lag range")
    return l50_against_memory(m)


def memory_along_string(tm: pd.DataFrame, runs: pd.DataFrame) -> Figure:
    """One column per (cell, k), one row per measure of ``task_memory`` measured (decodable, the
    median distance, the finite-time exponent): the median over runs along the inner string of the
    initial models (grey, dashed) and of the trained ones, split by whether the run learned the
    outer symbol (solid) or failed (dotted). Steps that fewer than half the strings reach are
    left out. Line gid: '<measure>|<cell>|<k>|<stage or outcome>'."""
    tm = tm[tm["l"] <= reach(tm)]
    measures = [m for m in MEASURES if m in tm.columns and tm[m].notna().any()]
    points = sorted({(c, int(k)) for c, k in zip(tm["cell"], tm["k"])}, key=lambda p: (cells_in(tm).index(p[0]), p[1]))
    fig = Figure(figsize=(3.4 * len(points) + 0.6, 2.6 * len(measures) + 0.8))
    axes = fig.subplots(len(measures), len(points), squeeze=False, sharex=True)
    ls = sorted(tm["l"].unique())
    per_l = [stage_values(tm, runs, l).assign(l=l) for l in ls]
    v = pd.concat(per_l, ignore_index=True)
    for c, (cell, k) in enumerate(points):
        g = v[(v["cell"] == cell) & (v["k"] == k)]
        for r, m in enumerate(measures):
            ax = axes[r][c]
            init = g.groupby("l")[f"{m} init"].median()
            ax.plot(init.index, init.to_numpy(), "--", color="0.45", label="initial", gid=f"{m}|{cell}|{k}|init")
            for outcome, style in (("learned", "-"), ("failed", ":"), ("unknown", "-.")):
                h = g[g["outcome"] == outcome]
                if h.empty:
                    continue
                trained = h.groupby("l")[f"{m} trained"].median()
                ax.plot(trained.index, trained.to_numpy(), style, color=cell_color(cell),
                        label=f"trained, {outcome} ({h['run_id'].nunique()})", gid=f"{m}|{cell}|{k}|{outcome}")
            if m == "decodable":
                ax.axhline(0.5, color="0.75", linewidth=0.6, zorder=0)
            if m == "lyapunov_q50":
                ax.axhline(0, color="0.75", linewidth=0.6, zorder=0)
            if m == "distance_q50":
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            if r == 0:
                ax.set_title(f"{cell} k={k}", fontsize=9)
                ax.legend(fontsize=6, loc="best")
            if c == 0:
                ax.set_ylabel(MEASURES[m], fontsize=8)
            if r == len(measures) - 1:
                ax.set_xlabel("step l of the inner string")
    bottom = footnote(fig, "Medians over runs (all weight scales and lags together); the same inner strings after "
                      "B T and after B P. decodable: the held-out readout under noise (1/2: the outer symbol is "
                      "lost); exponent: along the actual inputs, averaged over the first l steps.")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


@figure("trainability_task_memory", "Memory of the initial and the trained models along the inner string "
        "(task_memory)", section=SECTION)
def trainability_task_memory(t):
    return memory_along_string(t.get("task_memory"), flag_runs(t.get("runs")))
