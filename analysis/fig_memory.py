"""Figures of where memory comes from: every cell's D(l) and frac_distinct, D and the largest
Lyapunov exponent against k, the phase diagrams over (gain, k), decay rates against
exponents per draw, and claim 4's decay rates.

Builders read the ``discrepancy`` summary (seeds combined), ``state_discrepancy`` (an LSTM's
whole state), the ``memory`` summary (:func:`analysis.rates.decay_summary`) and the per-draw
``lyapunov`` table; the plotted arrays are those tables' numbers.
"""
import numpy as np
import pandas as pd
from matplotlib.colors import SymLogNorm
from matplotlib.figure import Figure

from .fig_discrepancy import FLOOR, footnote
from .fig_training import panel_grid
from .registry import Skip, figure
from .tables import pick_dtype

CELL_ORDER = ("vanilla", "tanh", "gru", "lstm", "mgu")
SECTION = "origin"
L_COMPARE = 50            # D is compared across k at this l (the paper's longest), or the longest below it


def cells_in(df: pd.DataFrame):
    present = set(df["cell"])
    return [c for c in CELL_ORDER if c in present] + sorted(present - set(CELL_ORDER))


def gain_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``gain:G`` draws (the weight-scale sweep)."""
    return summary[summary["init"].str.startswith("gain:")]


def init_order(init: str):
    """The paper's draws first (by name), then gains in increasing order."""
    gain = init.startswith("gain:")
    return (gain, float(init[len("gain:"):]) if gain else 0.0, init)


def spread_ks(ks, most: int = 5):
    ks = sorted(set(int(k) for k in ks))
    idx = np.unique(np.linspace(0, len(ks) - 1, min(most, len(ks))).round().astype(int))
    return [ks[i] for i in idx]


def k_ticks(ks, octaves: float = 0.45):
    """The measured k to label on a log2 axis: the smallest, the powers of two and the largest, at
    least ``octaves`` apart (the largest kept over its neighbour)."""
    ks = sorted(set(int(k) for k in ks))
    out = []
    for k in [k for k in ks if k in (ks[0], ks[-1]) or k & (k - 1) == 0]:
        if out and np.log2(k) - np.log2(out[-1]) < octaves:
            if k != ks[-1]:
                continue
            out.pop()
        out.append(k)
    return out


def k_axis(ax, ks) -> None:
    """A log2 k axis ticked at measured k (``k_ticks``), written as integers."""
    ax.set_xscale("log", base=2)
    ticks = k_ticks(ks)
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.minorticks_off()
    ax.set_xlabel("k")


def _state_summary(t):
    try:
        return pick_dtype(t.summary("state_discrepancy"))
    except Skip:
        return None


def curves_by_cell(summary: pd.DataFrame, inits, state: pd.DataFrame = None) -> Figure:
    """Median D(l) (10-90 % band) and frac_distinct(l), one column per cell, two rows per init,
    one line per k; an LSTM's whole-state (h, c) median is dotted beside its h."""
    cells = cells_in(summary)
    fig = Figure(figsize=(3.6 * len(cells), 3.0 * 2 * len(inits)))
    axes = fig.subplots(2 * len(inits), len(cells), squeeze=False)
    for r, init in enumerate(inits):
        si = summary[summary["init"] == init]
        ks = spread_ks(si["k"].unique())
        colors = {k: f"C{i}" for i, k in enumerate(ks)}
        for c, cell in enumerate(cells):
            top, bottom = axes[2 * r][c], axes[2 * r + 1][c]
            for k in ks:
                d = si[(si["cell"] == cell) & (si["k"] == k)].sort_values("l")
                if d.empty:
                    continue
                top.plot(d["l"], np.maximum(d["q50"], FLOOR), color=colors[k], label=f"k={k}", gid=f"q50|{cell}|{init}|{k}")
                top.fill_between(d["l"], np.maximum(d["q10"], FLOOR), np.maximum(d["q90"], FLOOR),
                                 color=colors[k], alpha=0.12, linewidth=0)
                bottom.plot(d["l"], d["frac_distinct"], color=colors[k], gid=f"fd|{cell}|{init}|{k}")
                if state is not None:
                    w = state[(state["cell"] == cell) & (state["init"] == init) & (state["k"] == k)].sort_values("l")
                    if not w.empty:
                        top.plot(w["l"], np.maximum(w["q50"], FLOOR), color=colors[k], linestyle=":",
                                 gid=f"state|{cell}|{init}|{k}")
            top.set_yscale("log"), top.set_ylim(bottom=FLOOR / 10)
            top.set_title(f"{cell}, init {init}", fontsize=10)
            bottom.set_ylim(-0.03, 1.03), bottom.set_xlabel("l")
            if c == 0:
                top.set_ylabel("median ||h_u - h_v||"), bottom.set_ylabel("frac_distinct")
                top.legend(fontsize=7)
    whole = state is not None and bool(set(state["cell"]) & set(cells))
    bottom = footnote(fig, "bands: 10-90 % of draws; " + ("dotted: the whole state (h, c) of "
                      + ", ".join(sorted(set(state["cell"]) & set(cells))) + "; " if whole else "")
                      + f"a median of exactly 0 (bit-identical trajectories) sits at the axis floor, {FLOOR:g}.")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig


@figure("memory_curves", "Every cell's median D(l) and share of distinct draws, under N(0,1) and gain 1",
        section=SECTION)
def memory_curves(t):
    s = pick_dtype(t.summary("discrepancy"))
    inits = [i for i in ("normal", "gain:1") if (s["init"] == i).any()] or [sorted(s["init"].unique())[0]]
    return curves_by_cell(s, inits, _state_summary(t))


def at_l(summary: pd.DataFrame, l_want: int = L_COMPARE) -> pd.DataFrame:
    """Each (cell, k)'s row at l = l_want, or at its longest l below it."""
    d = summary[summary["l"] <= l_want]
    return d.loc[d.groupby(["cell", "k"])["l"].idxmax()]


def _positive(values) -> np.ndarray:
    """``values`` with exact zeros (bit-identical trajectories) as NaN: not drawn on a log axis."""
    v = np.asarray(values, float)
    return np.where(v > 0, v, np.nan)


def across_k(summary: pd.DataFrame, memory: pd.DataFrame = None, state: pd.DataFrame = None) -> Figure:
    """Under N(0,1): mean D and median D at l = 50 against k, per cell, and the median largest
    Lyapunov exponent against k (10-90 % of draws) where measured. Exact zeros are not drawn: a
    band whose lower quantile is 0 runs to the axis bottom."""
    s = at_l(summary[summary["init"] == "normal"])
    if memory is not None:
        memory = memory[(memory["init"] == "normal") & memory["lyapunov_q50"].notna()]
    lyapunov = memory is not None and not memory.empty
    panels = 3 if lyapunov else 2
    fig = Figure(figsize=(5.2 * panels, 4.4))
    axes = fig.subplots(1, panels)
    drawn = s[["mean", "ci_lo", "q10", "q50"]].to_numpy(float)
    bottom = float(np.nanmin(np.where(drawn > 0, drawn, np.nan))) / 10 if (drawn > 0).any() else FLOOR
    for i, cell in enumerate(cells_in(s)):
        d = s[s["cell"] == cell].sort_values("k")
        color = f"C{i}"
        axes[0].plot(d["k"], _positive(d["mean"]), "o-", color=color, label=cell, gid=f"mean|{cell}")
        axes[0].fill_between(d["k"], np.maximum(d["ci_lo"], bottom), d["ci_hi"], color=color, alpha=0.15, linewidth=0)
        axes[1].plot(d["k"], _positive(d["q50"]), "o-", color=color, label=cell, gid=f"q50|{cell}")
        axes[1].fill_between(d["k"], np.maximum(d["q10"], bottom), d["q90"], color=color, alpha=0.15, linewidth=0)
        if state is not None and (state["cell"] == cell).any():
            w = at_l(state[(state["init"] == "normal") & (state["cell"] == cell)]).sort_values("k")
            axes[1].plot(w["k"], _positive(w["q50"]), ":", color=color, label=f"{cell} (h, c)")
        if lyapunov and (memory["cell"] == cell).any():
            m = memory[memory["cell"] == cell].sort_values("k")
            axes[2].plot(m["k"], m["lyapunov_q50"], "o-", color=color, label=cell, gid=f"lyap|{cell}")
            axes[2].fill_between(m["k"], m["lyapunov_q10"], m["lyapunov_q90"], color=color, alpha=0.15, linewidth=0)
    l_shown = int(s["l"].max())
    for ax, title in zip(axes, (f"mean D at l = {l_shown} (95 % CI)", f"median D at l = {l_shown} (10-90 % of draws)")):
        k_axis(ax, s["k"]), ax.set_yscale("log"), ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=bottom)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8), axes[1].legend(fontsize=7)
    if lyapunov:
        ax = axes[2]
        ax.axhline(0, color="k", linewidth=0.8)
        k_axis(ax, memory["k"]), ax.grid(True, alpha=0.3)
        ax.set_title("largest Lyapunov exponent per step (median, 10-90 %)", fontsize=10)
    zero = s[s["q50"] == 0]
    zeros = [f"{c} k={', '.join(str(int(k)) for k in sorted(zero[zero['cell'] == c]['k']))}" for c in cells_in(zero)]
    fig.suptitle("Every cell under the paper's N(0,1) weights (gain sqrt(k))", fontsize=11)
    bottom_note = footnote(fig, "A median of exactly 0 (bit-identical trajectories) is not drawn"
                           + (f" ({', '.join(zeros)})" if zeros else "") + "; a band whose lower end is 0 runs to the "
                           "axis bottom." + ("" if lyapunov else " Lyapunov exponents were not measured."))
    fig.tight_layout(rect=(0, bottom_note, 1, 1))
    return fig


@figure("memory_across_k", "D at l = 50 and the largest Lyapunov exponent against k, every cell, N(0,1)",
        section=SECTION)
def memory_across_k(t):
    s = pick_dtype(t.summary("discrepancy"))
    if not (s["init"] == "normal").any():
        raise Skip("no N(0,1) rows in the discrepancy table")
    try:
        m = pick_dtype(t.summary("memory"))
    except Skip:
        m = None
    return across_k(s, m, _state_summary(t))


def phase(memory: pd.DataFrame) -> Figure:
    """Per cell, over (gain, k): the median largest Lyapunov exponent (or, when not measured,
    the decay rate of median D), with the λ = 0 contour between order and chaos."""
    m = gain_rows(memory)
    cells = cells_in(m)
    colour = "lyapunov_q50" if m["lyapunov_q50"].notna().any() else "rate"
    values = m[colour].replace(-np.inf, np.nan)
    top = float(np.nanmax(np.abs(values))) if values.notna().any() else 1.0
    top = min(top, 2.0)
    fig = Figure(figsize=(4.2 * len(cells), 4.0), layout="constrained")
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    for ax, cell in zip(axes, cells):
        grid = m[m["cell"] == cell].pivot(index="k", columns="gain", values=colour).sort_index().sort_index(axis=1)
        z = np.clip(grid.to_numpy(float), -top, top)
        gains, ks = grid.columns.to_numpy(float), grid.index.to_numpy()
        # Symmetric-log colours: the gated cells' exponents near 0 (time constants of hundreds of
        # steps) differ by decades that a linear scale would paint alike.
        mesh = ax.pcolormesh(np.arange(len(gains) + 1) - 0.5, np.arange(len(ks) + 1) - 0.5, z, cmap="RdBu_r",
                             norm=SymLogNorm(linthresh=1e-3, vmin=-top, vmax=top), gid=f"phase|{cell}")
        if len(gains) > 1 and len(ks) > 1 and np.nanmin(z) < 0 < np.nanmax(z):
            ax.contour(np.arange(len(gains)), np.arange(len(ks)), z, levels=[0.0], colors="k", linewidths=1.5)
        ax.set_xticks(range(len(gains)), [f"{g:g}" for g in gains])
        ax.set_yticks(range(len(ks)), [str(k) for k in ks])
        ax.set_xlabel("gain G: weights N(0, G²/fan_in)")
        ax.set_title(cell, fontsize=10)
    axes[0].set_ylabel("k")
    label = "median largest Lyapunov exponent" if colour == "lyapunov_q50" else "decay rate of median D"
    fig.colorbar(mesh, ax=list(axes), label=f"{label} per step")
    fig.suptitle(f"{label} per step; symmetric-log colours, cut at ±{top:.2g}; black line: 0, between order "
                 f"(blue) and chaos (red)", fontsize=9)
    return fig


@figure("memory_phase", "Order and chaos over weight scale and width: the largest Lyapunov exponent per cell",
        section=SECTION)
def memory_phase(t):
    m = pick_dtype(t.summary("memory"))
    if gain_rows(m).empty:
        raise Skip("no gain:G rows in the memory table")
    return phase(m)


def decay_against_lyapunov(draws: pd.DataFrame) -> Figure:
    """Each draw's decay rate of the distance between its two trajectories against its largest
    Lyapunov exponent, like with like (``origin.like_with_like``: the whole state's distance for
    cells whose state is more than h, which the exponent follows): on the diagonal where the
    distance decays as exp(λ l), at 0 where it saturates (λ > 0: chaos). The axes are cut to the
    bulk of the draws; the title says how many fall outside."""
    whole = draws["state_rate"].notna() if "state_rate" in draws else pd.Series(False, index=draws.index)
    rate = draws["state_rate"].where(whole, draws["rate"])
    ok = np.isfinite(draws["lyapunov"]) & np.isfinite(rate)
    d, r, whole = draws[ok], rate[ok], whole[ok]
    fig = Figure(figsize=(6.4, 5.8), layout="constrained")
    ax = fig.subplots()
    for i, cell in enumerate(cells_in(d)):
        c = d["cell"] == cell
        label = f"{cell} (h, c)" if whole[c].any() else cell
        ax.scatter(d.loc[c, "lyapunov"], r[c], s=3, alpha=0.25, color=f"C{i}", label=label, gid=f"draws|{cell}",
                   rasterized=True)
    both = np.concatenate([d["lyapunov"].to_numpy(float), r.to_numpy(float)])
    lo = max(-4.0, float(np.quantile(both, 0.001))) if len(d) else -1.0
    hi = min(2.0, float(both.max())) if len(d) else 1.0
    ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8, label="rate = λ")
    ax.axhline(0, color="grey", linewidth=0.5), ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_xlim(lo, hi), ax.set_ylim(lo, hi)
    ax.set_xlabel("largest Lyapunov exponent λ per step (natural log)")
    ax.set_ylabel("decay rate of the two states' distance per step (natural log)")
    outside = int(((d["lyapunov"] < lo) | (d["lyapunov"] > hi) | (r < lo) | (r > hi)).sum())
    gone = int((~ok & np.isneginf(draws["lyapunov"])).sum())
    ordered = d["lyapunov"] < 0
    gap = float(np.median(np.abs(r[ordered] - d.loc[ordered, "lyapunov"]))) if ordered.any() else np.nan
    ax.set_title(f"{len(d):,} draws; where λ < 0 the median |rate - λ| is {gap:.2g}\naxes cut at [{lo:.3g}, {hi:.3g}]: "
                 f"{outside:,} draws outside not shown" + (f", {gone:,} with a vanished tangent (λ = -inf)" if gone
                                                            else ""), fontsize=9)
    leg = ax.legend(fontsize=8, markerscale=4)
    for h in leg.legend_handles:
        h.set_alpha(1)
    return fig


@figure("memory_decay_vs_lyapunov", "Each draw's decay rate of D against its largest Lyapunov exponent",
        section=SECTION)
def memory_decay_vs_lyapunov(t):
    return decay_against_lyapunov(t.get("lyapunov"))


def claim4_rates(memory: pd.DataFrame) -> Figure:
    """Claim 4's evidence: the decay rate of median D against k with 95 % intervals, vanilla and
    GRU, one panel per init (the paper's draws and any gains), on one y scale, with the 10x
    boundary of the rule (a GRU rate of a tenth of the vanilla's)."""
    from .claims import SLOWER

    m = memory[memory["cell"].isin(["vanilla", "gru"])]
    inits = sorted(m["init"].unique(), key=init_order)
    fig, axes = panel_grid(len(inits), 4, (4.2, 3.6))
    finite = m[np.isfinite(m["rate"])]
    bounds = np.concatenate([finite["rate"], finite["lo"][np.isfinite(finite["lo"])],
                             finite["hi"][np.isfinite(finite["hi"])], [0.0]])
    span = float(bounds.max() - bounds.min()) or 1.0
    ylim = (float(bounds.min()) - 0.05 * span, float(bounds.max()) + 0.05 * span)
    for ax, init in zip(axes, inits):
        for i, cell in enumerate(("vanilla", "gru")):
            d = finite[(finite["cell"] == cell) & (finite["init"] == init)].sort_values("k")
            ax.errorbar(d["k"] * (1.04 if i else 0.96), d["rate"],
                        yerr=[(d["rate"] - d["lo"]).clip(lower=0).fillna(0), (d["hi"] - d["rate"]).clip(lower=0).fillna(0)],
                        fmt="o-" if i == 0 else "s--", color=f"C{i}", markersize=3, capsize=2, label=cell,
                        gid=f"rate|{cell}|{init}")
            if cell == "vanilla" and len(d):
                ax.plot(d["k"], d["rate"] / SLOWER, ":", color="k", linewidth=1,
                        label=f"vanilla rate / {SLOWER:g} (the rule's {SLOWER:g}x)", gid=f"boundary|{init}")
        ax.axhline(0, color="k", linewidth=0.6)
        k_axis(ax, m["k"]), ax.set_title(f"init {init}", fontsize=10)
        ax.set_ylim(*ylim)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("d ln(median D) / dl per step"), axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


@figure("claim4_decay_rates", "Decay rates of median D against k with 95 % intervals, vanilla and GRU", claims=(4,))
def claim4_decay_rates(t):
    m = pick_dtype(t.summary("memory"))
    if not {"vanilla", "gru"} & set(m["cell"]):
        raise Skip("no vanilla or GRU rows in the memory table")
    return claim4_rates(m)
