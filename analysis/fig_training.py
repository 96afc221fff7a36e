"""Figures of the training tables (``runs``, ``gradients``, ``probes``; schemas in the
``lksweep schema --tables``): Figs 3, 4, 6, 7, 8, 9, success rates and
||dloss/dh_t|| against distance. Each function returns a Matplotlib Figure whose plotted
arrays are the tables' numbers.

Which run a probe heatmap shows: the paper's model (vanilla k=5 on Reber, vanilla k=18 and
GRU k=10 on embedded Reber; else the most frequent k), one panel per protocol, and within
a protocol the run with the lowest seed — a fixed choice, not the best seed, so the figure
is not cherry-picked; its title gives the run's accuracy.
"""
from typing import Dict, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sweeps.contract import ALPHABET, EMBEDDED, REBER_HIDDEN, REBER_OUTPUT

from . import hist
from .registry import Skip, figure
from .success import PAPER_K, is_embedded, success_flags


class NothingToDraw(Exception):
    pass


def pick_k(df: pd.DataFrame, task: str, cell: str) -> int:
    want = PAPER_K.get((task, cell))
    ks = df["k"].value_counts()
    return want if want in ks.index else int(ks.index[0])


def pick_runs(probes: pd.DataFrame, task: str, cell: str) -> Dict[str, pd.DataFrame]:
    """{protocol: probe rows of its lowest-seed run} for the paper's (task, cell, k)."""
    p = probes[(probes["task"] == task) & (probes["cell"] == cell)]
    if p.empty:
        raise NothingToDraw(f"no {cell} probes on {task}")
    p = p[p["k"] == pick_k(p, task, cell)]
    out = {}
    for protocol in sorted(set(p["protocol"]), key=lambda x: (x != "paper", x)):
        g = p[p["protocol"] == protocol]
        seed = g["seed"].min()
        out[protocol] = g[g["seed"] == seed]
    return out


def probe_matrix(rows: pd.DataFrame, kind: str, task: str):
    """(matrix, row labels, panels) for one run: Reber: one row per probe (its last position);
    embedded: one matrix per probe, one row per position."""
    col = "probs" if kind == "output" else "hidden"
    flag = "output_probe" if kind == "output" else "hidden_probe"
    rows = rows[rows[flag]] if flag in rows.columns else rows
    panels = []
    if not is_embedded(task):
        last = rows.sort_values("position").groupby("probe", sort=False).tail(1)
        order = REBER_OUTPUT if kind == "output" else REBER_HIDDEN
        known = [p for p in order if p in set(last["probe"])]
        rest = sorted(set(last["probe"]) - set(known), key=len)
        last = last.set_index("probe").loc[known + rest]
        labels = [f"{s}:{p}" if kind == "hidden" else p for p, s in zip(last.index, last["state"])]
        panels.append(("", np.stack(last[col].to_numpy()).astype(float), labels))
    else:
        for probe in [p for p in EMBEDDED if p in set(rows["probe"])] + \
                     sorted(set(rows["probe"]) - set(EMBEDDED)):
            r = rows[rows["probe"] == probe].sort_values("position")
            labels = [probe[: i + 1] for i in r["position"]]
            panels.append((probe, np.stack(r[col].to_numpy()).astype(float), labels))
    return panels


def probe_heatmap(probes: pd.DataFrame, task: str, cell: str, kind: str,
                  runs: Optional[pd.DataFrame] = None) -> Figure:
    """Figs 3/4 (task reber) and 6/7/8 (embedded-reber): softmax outputs (kind 'output',
    columns B T S X V P E) or hidden states (kind 'hidden', columns h_1..h_k) after each
    probe prefix. Image gid: '<protocol>|<probe>' ('<protocol>|' for Reber)."""
    task = _task_name(probes, task)
    try:
        chosen = pick_runs(probes, task, cell)
    except NothingToDraw as e:
        raise Skip(str(e)) from None
    per = [(protocol, probe_matrix(rows, kind, task), rows) for protocol, rows in chosen.items()]
    ncols = sum(len(p) for _, p, _ in per)
    if ncols == 0:
        raise Skip(f"no {kind} probes for {cell} on {task}")
    nrow_max = max(m.shape[0] for _, panels, _ in per for _, m, _ in panels)
    fig = Figure(figsize=(max(4.2 * ncols, 5), 1.2 + 0.32 * nrow_max))
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    i = 0
    vmin, vmax = (0, 1) if kind == "output" else (None, None)
    for protocol, panels, rows in per:
        run = rows["run_id"].iloc[0]
        for probe, m, labels in panels:
            ax = axes[i]
            i += 1
            cmap = "Greys" if kind == "output" else "RdBu_r"
            if kind == "hidden" and cell == "vanilla":
                vmin, vmax = 0, 1  # sigmoid states
            elif kind == "hidden":
                vmin, vmax = -1, 1
            im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, gid=f"{protocol}|{probe}")
            ax.set_yticks(range(len(labels)), labels, fontsize=7, family="monospace")
            cols = list(ALPHABET) if kind == "output" else [f"h{j + 1}" for j in range(m.shape[1])]
            ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=0 if kind == "output" else 90)
            k = int(rows["k"].iloc[0])
            title = f"{cell} k={k}, {protocol}, seed {int(rows['seed'].iloc[0])}"
            if probe:
                title += f"\n{probe}"
            ax.set_title(title, fontsize=8)
            ax.set_xlabel(run, fontsize=6)
            fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def _task_name(df: pd.DataFrame, task: str) -> str:
    """Accept 'embedded' for 'embedded-reber'."""
    tasks = set(df["task"])
    if task in tasks:
        return task
    for t in tasks:
        if t.startswith(task):
            return t
    return task


# ---------------------------------------------------------------------- Fig 9
def gradient_histograms(grads: pd.DataFrame, task: str = "embedded-reber") -> Figure:
    """Fig 9: share of |dloss/dθ| coefficients per log-spaced bin (50 per decade), summed
    over every run, tensor and training example of each cell; one row per protocol, one
    column per stage (at init, trained). Step-line gid: '<protocol>|<stage>|<cell>'."""
    g = grads[grads["quantity"] == "param"]
    task = _task_name(g, task)
    if (g["task"] == task).any():
        g = g[g["task"] == task]
    if g.empty:
        raise Skip("no parameter gradients")
    protocols, stages = sorted(g["protocol"].unique()), [s for s in ("init", "trained") if s in set(g["stage"])]
    fig = Figure(figsize=(5.5 * len(stages), 3.4 * len(protocols)))
    axes = fig.subplots(len(protocols), len(stages), squeeze=False)
    edges = hist.edges()
    for r, protocol in enumerate(protocols):
        for c, stage in enumerate(stages):
            ax = axes[r][c]
            for cell, d in g[(g["protocol"] == protocol) & (g["stage"] == stage)].groupby("cell", sort=True):
                h = hist.pooled(d)
                share = h / max(h.sum(), 1)
                lo, hi = hist.span(h)
                ks = sorted(d["k"].unique())
                ax.stairs(share[2 + lo: 2 + hi], edges[lo: hi + 1], gid=f"{protocol}|{stage}|{cell}",
                          label=f"{cell} k={','.join(map(str, ks))} ({int(h.sum()):,} coeffs; "
                                f"{share[0]:.1%} exactly 0)", linewidth=1.2)
            ax.set_xscale("log")
            ax.set_xlabel("|dloss/dθ|")
            ax.set_ylabel("share per bin")
            ax.set_title(f"{task}, {protocol}, {stage}", fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- rates
def success_rates(runs: pd.DataFrame) -> Figure:
    """Bars: success rate per (task, protocol, cell, k) across seeds, Wilson 95 % error bars.
    Bar gid: '<task>|<protocol>|<cell>|<k>'."""
    from .tables import rate_summary
    d = runs.assign(success=success_flags(runs))
    rates = rate_summary(d, ["task", "protocol", "cell", "k"], "success")
    tasks = sorted(rates["task"].unique())
    fig = Figure(figsize=(max(5, 1.3 * rates.groupby("task").size().max() + 2) * len(tasks), 4))
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        t = rates[rates["task"] == task].reset_index(drop=True)
        x = np.arange(len(t))
        colors = ["C0" if c == "vanilla" else "C1" if c == "gru" else "C2" for c in t["cell"]]
        bars = ax.bar(x, t["rate"], color=colors, yerr=[t["rate"] - t["lo"], t["hi"] - t["rate"]], capsize=4)
        for b, row in zip(bars, t.itertuples()):
            b.set_gid(f"{row.task}|{row.protocol}|{row.cell}|{row.k}")
            ax.text(b.get_x() + b.get_width() / 2, 0.02, f"{row.successes}/{row.n}", ha="center", fontsize=7)
        ax.set_xticks(x, [f"{r.cell} k={r.k}\n{r.protocol}" for r in t.itertuples()], fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("success rate (Wilson 95 %)")
        what = "outer T/P accuracy" if is_embedded(task) else "string accuracy"
        ax.set_title(f"{task}: success = {what} >= 95 %", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- dloss/dh
def gradient_vs_distance(grads: pd.DataFrame) -> Figure:
    """||dloss_T/dh_{T-d}|| against d: pooled median over every run and training example of
    each cell (one line per cell and k), 10-90 % band; one panel per (task, protocol), stage
    'trained' (else 'init'). Line gid: '<task>|<protocol>|<cell>|<k>'."""
    g = grads[grads["quantity"] == "hidden"]
    if g.empty:
        raise Skip("no hidden-state gradients")
    stage = "trained" if (g["stage"] == "trained").any() else "init"
    g = g[g["stage"] == stage]
    panels = sorted({(t, p) for t, p in zip(g["task"], g["protocol"])})
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(6 * ncols, 3.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (task, protocol) in zip(axes, panels):
        d = g[(g["task"] == task) & (g["protocol"] == protocol)]
        for (cell, k), dc in d.groupby(["cell", "k"], sort=True):
            q = hist.pooled_quantiles(dc, "distance", (0.1, 0.5, 0.9))
            line, = ax.plot(q.index, q[0.5], marker=".", label=f"{cell} k={k}", gid=f"{task}|{protocol}|{cell}|{k}")
            ax.fill_between(q.index, np.maximum(q[0.1], 1e-20), np.maximum(q[0.9], 1e-20),
                            color=line.get_color(), alpha=0.15, linewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("distance d = T - t")
        ax.set_ylabel("||dloss_T / dh_{T-d}||")
        ax.set_title(f"{task}, {protocol} ({stage}): median, 10-90 %", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- registered figures
@figure("fig03_reber_outputs", "Fig 3 — vanilla k=5 on Reber: outputs on the probe prefixes", claims=(1,))
def fig03(t):
    return probe_heatmap(t.get("probes"), "reber", "vanilla", "output")


@figure("fig04_reber_hidden", "Fig 4 — vanilla k=5 on Reber: hidden states, labelled by automaton state", claims=(1,))
def fig04(t):
    return probe_heatmap(t.get("probes"), "reber", "vanilla", "hidden")


@figure("fig06_embedded_vanilla_outputs", "Fig 6 — vanilla on embedded Reber: outputs", claims=(2,))
def fig06(t):
    return probe_heatmap(t.get("probes"), "embedded", "vanilla", "output")


@figure("fig07_embedded_gru_outputs", "Fig 7 — GRU on embedded Reber: outputs", claims=(2,))
def fig07(t):
    return probe_heatmap(t.get("probes"), "embedded", "gru", "output")


@figure("fig08_embedded_vanilla_hidden", "Fig 8 — vanilla on embedded Reber: hidden state", claims=(2,))
def fig08(t):
    return probe_heatmap(t.get("probes"), "embedded", "vanilla", "hidden")


@figure("fig09_gradients", "Fig 9 — distribution of |dloss/dθ| coefficients (log scale)", claims=(3,))
def fig09(t):
    return gradient_histograms(t.get("gradients"))


@figure("success_rates", "Success rate of each cell and protocol across training seeds (Wilson 95 %)", claims=(1, 2))
def success_rates_figure(t):
    return success_rates(t.get("runs"))


@figure("gradient_vs_distance", "||dloss/dh_t|| against distance to the loss term", claims=(3,))
def gradient_vs_distance_figure(t):
    return gradient_vs_distance(t.get("gradients"))
