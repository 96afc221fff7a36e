"""Figures of the training tables (``runs``, ``epochs``, ``gradients``, ``probes``, ``lengths``;
schemas in ``lksweep schema --tables``): Figs 3, 4, 6, 7, 8, 9, success rates, learning curves,
||dloss/dh_t|| against distance and outer accuracy against dependency length. Each function
returns a Matplotlib Figure whose plotted arrays are the tables' numbers.

The paper's figures (heatmaps, Fig 9, the gradient against distance) show each protocol's own
recipe (``paper``, ``adam``) when the tables hold it, not every variant of a sweep over
ingredients, which the claims and the success-rate figure cover. Which run a probe heatmap
shows: the paper's model (vanilla k=5 on Reber, vanilla k=18 and GRU k=10 on embedded Reber;
else the most frequent k), one row of panels per recipe, and within a recipe the run with the
lowest seed — a fixed choice, not the best seed, so the figure is not cherry-picked. The
outputs shown are the raw y_t for squared-error runs (what that loss trains, as the authors
showed them) and softmax(y_t) for cross-entropy runs.
"""
from typing import Dict, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sweeps.contract import ALPHABET, EMBEDDED, REBER_HIDDEN, REBER_OUTPUT

from . import hist
from .palette import cell_color
from .registry import Skip, figure
from .sec_training import by_length
from .success import PAPER_K, is_embedded, success_flags


def pick_k(df: pd.DataFrame, task: str, cell: str) -> int:
    want = PAPER_K.get((task, cell))
    ks = df["k"].value_counts()
    return want if want in ks.index else int(ks.index[0])


def own_recipes(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each protocol's own recipe (its default ingredients), or all rows if none are."""
    own = df[df["recipe"] == df["protocol"]]
    return own if len(own) else df


def pick_runs(probes: pd.DataFrame, task: str, cell: str) -> Dict[str, pd.DataFrame]:
    """{recipe: probe rows of its lowest-seed run} for the paper's (task, cell, k)."""
    p = probes[(probes["task"] == task) & (probes["cell"] == cell)]
    if p.empty:
        raise Skip(f"no {cell} probes on {task}")
    p = own_recipes(p[p["k"] == pick_k(p, task, cell)])
    out = {}
    for recipe in sorted(set(p["recipe"]), key=lambda x: (not x.startswith("paper"), x)):
        g = p[p["recipe"] == recipe]
        out[recipe] = g[g["seed"] == g["seed"].min()]
    return out


def probe_matrix(rows: pd.DataFrame, kind: str, task: str):
    """(matrix, row labels, panels) for one run: Reber: one row per probe (its last position);
    embedded: one matrix per probe, one row per position. Outputs: raw for squared-error runs,
    softmax for cross-entropy runs."""
    col = ("output" if rows["loss"].iloc[0] == "squared-error" else "probs") if kind == "output" else "hidden"
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
    """Figs 3/4 (task reber) and 6/7/8 (embedded-reber): outputs (kind 'output', columns
    B T S X V P E: raw y_t for squared-error runs, softmax for cross-entropy runs) or hidden
    states (kind 'hidden', columns h_1..h_k) after each probe prefix; one row of panels per
    recipe. Image gid: '<recipe>|<probe>' ('<recipe>|' for Reber)."""
    task = _task_name(probes, task)
    per = [(recipe, probe_matrix(rows, kind, task), rows) for recipe, rows in pick_runs(probes, task, cell).items()]
    ncols = max(len(p) for _, p, _ in per)
    if ncols == 0:
        raise Skip(f"no {kind} probes for {cell} on {task}")
    nrow_max = max(m.shape[0] for _, panels, _ in per for _, m, _ in panels)
    fig = Figure(figsize=(max(4.2 * ncols, 5), (1.2 + 0.32 * nrow_max) * len(per)))
    axes = fig.subplots(len(per), ncols, squeeze=False)
    for r, (recipe, panels, rows) in enumerate(per):
        raw = kind == "output" and rows["loss"].iloc[0] == "squared-error"
        for ax in axes[r][len(panels):]:
            ax.set_axis_off()
        for ax, (probe, m, labels) in zip(axes[r], panels):
            if kind == "output":
                cmap, (vmin, vmax) = "Greys", (min(0.0, m.min()), max(1.0, m.max())) if raw else (0, 1)
            else:
                cmap, (vmin, vmax) = "RdBu_r", (0, 1) if cell == "vanilla" else (-1, 1)   # sigmoid / tanh states
            im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, gid=f"{recipe}|{probe}")
            ax.set_yticks(range(len(labels)), labels, fontsize=7, family="monospace")
            cols = list(ALPHABET) if kind == "output" else [f"h{j + 1}" for j in range(m.shape[1])]
            ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=0 if kind == "output" else 90)
            what = ("raw y" if raw else "softmax(y)") if kind == "output" else "h"
            title = f"{cell} k={int(rows['k'].iloc[0])}, {recipe}, seed {int(rows['seed'].iloc[0])}: {what}"
            ax.set_title(title + (f"\n{probe}" if probe else ""), fontsize=8)
            ax.set_xlabel(rows["run_id"].iloc[0], fontsize=6)
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


def panel_grid(n: int, max_cols: int, size):
    """(figure, axes) for ``n`` panels, at most ``max_cols`` a row, each ``size`` (w, h)
    inches; the axes left over in the last row are hidden."""
    ncols = min(max_cols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


# ---------------------------------------------------------------------- Fig 9
def gradient_histograms(grads: pd.DataFrame, task: str = "embedded-reber") -> Figure:
    """Fig 9: share of |dloss/dθ| coefficients per log-spaced bin (50 per decade), summed
    over every run, tensor and training example of each cell; one row per recipe (each
    protocol's own), one column per stage (at init, trained). Step-line gid:
    '<recipe>|<stage>|<cell>'."""
    g = grads[grads["quantity"] == "param"]
    task = _task_name(g, task)
    if (g["task"] == task).any():
        g = g[g["task"] == task]
    if g.empty:
        raise Skip("no parameter gradients")
    g = own_recipes(g)
    recipes, stages = sorted(g["recipe"].unique()), [s for s in ("init", "trained") if s in set(g["stage"])]
    fig = Figure(figsize=(5.5 * len(stages), 3.4 * len(recipes)))
    axes = fig.subplots(len(recipes), len(stages), squeeze=False)
    edges = hist.edges()
    for r, recipe in enumerate(recipes):
        for c, stage in enumerate(stages):
            ax = axes[r][c]
            for cell, d in g[(g["recipe"] == recipe) & (g["stage"] == stage)].groupby("cell", sort=True):
                h = hist.pooled(d)
                share = h / max(h.sum(), 1)
                lo, hi = hist.span(h)
                ks = sorted(d["k"].unique())
                structural = (f", {d['structural_zeros'].sum() / max(h.sum(), 1):.1%} structural"
                              if "structural_zeros" in d.columns and d["structural_zeros"].notna().all() else "")
                ax.stairs(share[2 + lo: 2 + hi], edges[lo: hi + 1], gid=f"{recipe}|{stage}|{cell}",
                          color=cell_color(cell), linewidth=1.2,
                          label=f"{cell} k={','.join(map(str, ks))} ({int(h.sum()):,} coeffs; "
                                f"{share[0]:.1%} exactly 0{structural})")
            ax.set_xscale("log")
            ax.set_xlabel("|dloss/dθ|")
            ax.set_ylabel("share per bin")
            ax.set_title(f"{task}, {recipe}, {stage} (exact zeros, off the log axis: legend)", fontsize=9)
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- rates
def success_rates(runs: pd.DataFrame) -> Figure:
    """Bars: success rate per (task, recipe, cell, k) across seeds, Wilson 95 % error bars, the
    cells of a recipe side by side in their colours (``palette``); a rate of 0 shows as a line at
    0 with its count. Bar gid: '<task>|<recipe>|<cell>|<k>'."""
    from .tables import rate_summary
    d = runs.assign(success=success_flags(runs))
    rates = rate_summary(d, ["task", "recipe", "cell", "k"], "success")
    tasks = sorted(rates["task"].unique())
    widths = [rates[rates["task"] == t]["recipe"].nunique() for t in tasks]
    fig = Figure(figsize=(max(7, 1.3 * sum(widths) + 2), 4.8))
    axes = fig.subplots(1, len(tasks), squeeze=False, gridspec_kw={"width_ratios": [max(w, 2) for w in widths]})[0]
    for ax, task in zip(axes, tasks):
        t = rates[rates["task"] == task]
        recipes = list(dict.fromkeys(t.sort_values("recipe")["recipe"]))
        cells = sorted(set(zip(t["cell"], t["k"])), key=lambda c: (c[0] != "vanilla", c))
        width = 0.8 / len(cells)
        for j, (cell, k) in enumerate(cells):
            rows = t[(t["cell"] == cell) & (t["k"] == k)].set_index("recipe")
            x = np.array([recipes.index(r) for r in rows.index]) + (j - (len(cells) - 1) / 2) * width
            bars = ax.bar(x, rows["rate"], width * 0.9, color=cell_color(cell), edgecolor=cell_color(cell),
                          linewidth=1.5, label=f"{cell} k={k}",
                          yerr=[rows["rate"] - rows["lo"], rows["hi"] - rows["rate"]], capsize=3,
                          error_kw={"elinewidth": 0.8, "ecolor": "0.3"})
            for b, (recipe, row) in zip(bars, rows.iterrows()):
                b.set_gid(f"{task}|{recipe}|{cell}|{k}")
                ax.text(b.get_x() + b.get_width() / 2, row["hi"] + 0.02, f"{row['successes']}/{row['n']}",
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(recipes)), recipes, fontsize=8, rotation=25, ha="right", rotation_mode="anchor")
        ax.set_ylim(-0.03, 1.15)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.axhline(0, color="0.6", linewidth=0.6, zorder=0)
        ax.set_ylabel("success rate (Wilson 95 %)")
        what = "outer T/P accuracy" if is_embedded(task) else "string accuracy"
        ax.set_title(f"{task}\nsuccess: test {what} >= 95 %", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", ncols=len(cells), frameon=False)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- learning curves
def learning_curves(epochs: pd.DataFrame, runs: pd.DataFrame) -> Figure:
    """Training loss per epoch (the mean over the epoch's updates): median and 10-90 % band
    over seeds, one line per cell and k, one panel per (task, recipe); a run that stopped
    carries its last value on (so the median is over every seed at every epoch), and a thin
    step line on the right axis counts the runs still training. Dashed: the loss of the ideal predictor that knows the
    automaton's state, and dotted: of one that guesses the outer symbol (runs.loss_floor,
    loss_floor_guess; near 3.5 and 4.0 for the squared error on embedded Reber). The y axis
    spans the floors and twice the ideal loss (the first epochs' higher losses run off the top),
    so that the gap between the two floors shows. Line gid: '<task>|<recipe>|<cell>|<k>'."""
    e = epochs[epochs["epoch"] > 0]
    if e.empty:
        raise Skip("no trained epochs")
    panels = sorted({(t, r) for t, r in zip(e["task"], e["recipe"])})
    fig, axes = panel_grid(len(panels), 3, (5.2, 3.8))
    for ax, (task, recipe) in zip(axes, panels):
        d = e[(e["task"] == task) & (e["recipe"] == recipe)]
        alive_ax = ax.twinx()
        for (cell, k), dc in d.groupby(["cell", "k"], sort=True):
            wide = dc.pivot(index="epoch", columns="run_id", values="train_loss")
            alive = wide.notna()[::-1].cummax()[::-1].sum(axis=1)       # runs with an epoch here or later
            wide = wide.ffill()
            q = wide.quantile([0.1, 0.5, 0.9], axis=1).T
            ax.plot(q.index, q[0.5], color=cell_color(cell), label=f"{cell} k={k} ({wide.shape[1]} seeds)",
                    gid=f"{task}|{recipe}|{cell}|{k}")
            ax.fill_between(q.index, q[0.1], q[0.9], color=cell_color(cell), alpha=0.15, linewidth=0)
            alive_ax.step(alive.index, alive, where="post", color=cell_color(cell), linewidth=0.7, alpha=0.6,
                          gid=f"alive|{task}|{recipe}|{cell}|{k}")
        alive_ax.set_ylim(0, None)
        alive_ax.set_ylabel("runs still training (thin steps)", fontsize=7)
        alive_ax.tick_params(labelsize=7)
        r = runs[(runs["task"] == task) & (runs["recipe"] == recipe)]
        if len(r):
            floor = r["loss_floor"].median()
            ax.axhline(floor, color="k", linestyle="--", linewidth=0.8, label=f"ideal {floor:.2f}")
            if is_embedded(task):
                ax.axhline(r["loss_floor_guess"].median(), color="k", linestyle=":", linewidth=0.8,
                           label=f"outer guessed {r['loss_floor_guess'].median():.2f}")
            ax.set_ylim(min(0.9 * floor, d["train_loss"].min()), 2 * floor)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"training {d['loss'].iloc[0]} per string")
        ax.set_title(f"{task}, {recipe}: median, 10-90 %\n(stopped runs carried at their last loss)", fontsize=8)
        # centre right: the losses have fallen to the floors there and the run counts start at the top
        ax.legend(fontsize=6, loc="center right")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- dloss/dh
def gradient_vs_distance(grads: pd.DataFrame) -> Figure:
    """||dloss_T/dh_{T-d}|| against d: pooled median over every run and training example of
    each cell (one line per cell, k and stage: solid trained, dashed at initialisation),
    10-90 % band for trained models; one panel per (task, recipe), each protocol's own recipe.
    Line gid: '<task>|<recipe>|<cell>|<k>|<stage>'."""
    g = grads[grads["quantity"] == "hidden"]
    if g.empty:
        raise Skip("no hidden-state gradients")
    g = own_recipes(g)
    panels = sorted({(t, r) for t, r in zip(g["task"], g["recipe"])})
    fig, axes = panel_grid(len(panels), 2, (6, 3.8))
    for ax, (task, recipe) in zip(axes, panels):
        d = g[(g["task"] == task) & (g["recipe"] == recipe)]
        for (cell, k), dc in d.groupby(["cell", "k"], sort=True):
            for stage in ("trained", "init"):
                ds = dc[dc["stage"] == stage]
                if ds.empty:
                    continue
                q = hist.pooled_quantiles(ds, "distance", (0.1, 0.5, 0.9))
                ax.plot(q.index, q[0.5], marker="." if stage == "trained" else None, color=cell_color(cell),
                        linestyle="-" if stage == "trained" else "--", label=f"{cell} k={k}, {stage}",
                        gid=f"{task}|{recipe}|{cell}|{k}|{stage}")
                if stage == "trained":
                    ax.fill_between(q.index, np.maximum(q[0.1], 1e-20), np.maximum(q[0.9], 1e-20),
                                    color=cell_color(cell), alpha=0.15, linewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("distance d = T - t")
        ax.set_ylabel("||dloss_T / dh_{T-d}||")
        ax.set_title(f"{task}, {recipe}: median (10-90 % trained)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- dependency length
def outer_by_length(table: pd.DataFrame) -> Figure:
    """Test outer T/P accuracy of the selected models against the dependency length (bucketed
    inner-string length; ``sec_training.by_length``), pooled over seeds, with Wilson 95 %
    intervals: one panel per recipe, one line per cell and k; the dotted line is the best
    constant prediction of the same strings per bucket (where the tables give it, else 0.5,
    labelled as such). Line gid: '<recipe>|<cell>|<k>'; baseline gid: 'constant|<recipe>'."""
    recipes = list(dict.fromkeys(table["recipe"]))
    fig, axes = panel_grid(len(recipes), 3, (4.6, 3.6))
    for ax, recipe in zip(axes, recipes):
        r = table[table["recipe"] == recipe]
        buckets = list(dict.fromkeys(r["bucket"]))
        for (cell, k), g in r.groupby(["cell", "k"], sort=True):
            x = [buckets.index(b) for b in g["bucket"]]
            acc = g["outer_accuracy"].to_numpy(float)
            lo, hi = g["lo"].to_numpy(float), g["hi"].to_numpy(float)
            line, _, _ = ax.errorbar(x, acc, yerr=np.maximum(0, [acc - lo, hi - acc]), marker="o",
                                     markersize=4, capsize=2, color=cell_color(cell), label=f"{cell} k={k}")
            line.set_gid(f"{recipe}|{cell}|{k}")
        baseline = r.groupby("bucket", sort=False)["constant"].max().reindex(buckets)
        if baseline.notna().all():
            ax.plot(range(len(buckets)), baseline, color="k", linestyle=":", marker="_", linewidth=1,
                    label="best constant prediction", gid=f"constant|{recipe}")
        else:
            ax.axhline(0.5, color="k", linestyle=":", linewidth=0.8, label="0.5 (constant baseline not in tables)",
                       gid=f"constant|{recipe}")
        ax.set_xticks(range(len(buckets)), buckets, fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("inner-string length")
        ax.set_ylabel("test outer accuracy (Wilson 95 %)")
        ax.set_title(recipe, fontsize=9)
        ax.legend(fontsize=6, loc="lower left")
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


@figure("success_rates", "Success rate of each cell and recipe across training seeds (Wilson 95 %)", claims=(1, 2))
def success_rates_figure(t):
    runs = t.get("runs")
    if "lag_min" in runs.columns:
        # a bar would pool runs of different lag ranges: those are the trainability map's (fig_trainability)
        runs = runs[runs["lag_min"].isna()]
    if runs.empty:
        raise Skip("every run has a lag range (see the trainability map's figures)")
    return success_rates(runs)


@figure("learning_curves", "Training loss per epoch, median and 10-90 % over seeds, with the ideal and "
        "outer-guessing floors", claims=(1, 2))
def learning_curves_figure(t):
    return learning_curves(t.get("epochs"), t.get("runs"))


@figure("outer_by_length", "Test outer accuracy against dependency length (inner-string length)", section="lengths")
def outer_by_length_figure(t):
    return outer_by_length(by_length(t))


@figure("gradient_vs_distance", "||dloss/dh_t|| against distance to the loss term, at initialisation and trained",
        claims=(3,))
def gradient_vs_distance_figure(t):
    return gradient_vs_distance(t.get("gradients"))
