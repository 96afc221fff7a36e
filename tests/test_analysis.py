"""analysis: loading, intervals (checked against independent slow computations), and every
figure's plotted data against the tables' numbers."""
import math
import os

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from analysis import fig_discrepancy, fig_training, hist
from analysis.figures import FIGURES, Skip, Tables, write_figures
from analysis.palette import cell_color
from analysis.tables import NoData, discrepancy_summary, load, mean_ci, t_quantile, wilson, z_quantile

from . import analysis_fixtures as F


@pytest.fixture(scope="module")
def full_dir(disc_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    F.copy_tables(disc_dir, out, F.DISCREPANCY_TABLES)
    F.write_training(str(out))
    F.write_trainability(str(out))
    return str(out)


# ---------------------------------------------------------------------- load
def test_load_filters_match_pandas(disc_dir):
    raw = pd.read_parquet(os.path.join(disc_dir, "discrepancy"))
    got = load(disc_dir, "discrepancy", cell="gru", k=[2, 5], init="normal")
    want = raw[(raw.cell == "gru") & raw.k.isin([2, 5]) & (raw.init == "normal")]
    assert len(got) == len(want) == 2 * 3 * 24
    assert sorted(got["mean"]) == sorted(want["mean"])
    with pytest.raises(NoData, match="no 'runs' table"):
        load(disc_dir, "runs")
    with pytest.raises(NoData, match="no column"):
        load(disc_dir, "discrepancy", colour="red")


# ---------------------------------------------------------------------- intervals
def _t_pdf(x, df):
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    return c * (1 + x * x / df) ** (-(df + 1) / 2)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 10, 29])
def test_t_quantile_against_numerical_integration(df):
    # Independent slow computation: integrate the t density on a fine grid from 0 upward
    # until half the remaining mass (0.475) is reached.
    q = t_quantile(0.975, df)
    x = np.linspace(0, q, 200_001)
    y = np.array([_t_pdf(v, df) for v in x[::100]])  # coarse check of the pdf formula first
    assert y[0] > 0
    pdf = (math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))) * (1 + x * x / df) ** (-(df + 1) / 2)
    mass = np.trapezoid(pdf, x)
    assert abs(mass - 0.475) < 1e-6
    assert abs(t_quantile(0.5, df)) < 1e-9
    assert abs(t_quantile(0.025, df) + q) < 1e-9


def test_mean_ci_coverage_by_simulation():
    rng = np.random.default_rng(1)
    hits = 0
    trials = 4000
    for _ in range(trials):
        x = rng.normal(3.0, 2.0, 4)
        _, lo, hi = mean_ci(x)
        hits += lo <= 3.0 <= hi
    assert abs(hits / trials - 0.95) < 0.015


@pytest.mark.parametrize("x,n", [(0, 10), (3, 10), (10, 10), (7, 25), (1, 3)])
def test_wilson_against_brute_force(x, n):
    # The Wilson interval is the set of p whose score test does not reject: |p_hat - p| <= z sqrt(p(1-p)/n).
    z = z_quantile(0.975)
    ps = np.linspace(0, 1, 400_001)
    ok = ps[np.abs(x / n - ps) <= z * np.sqrt(ps * (1 - ps) / n)]
    lo, hi = wilson(x, n)
    assert abs(lo - ok.min()) < 1e-5 and abs(hi - ok.max()) < 1e-5


def test_one_wilson_interval_for_arrays_and_numbers_and_the_memory_jobs_quantile():
    from sweeps import stats
    from sweeps.jobs import memory

    x, n = np.array([0, 3, 10, 7, 0]), np.array([10, 10, 10, 25, 0])
    lo, hi = stats.wilson(x, n, level=0.975)
    for i in range(4):
        assert (lo[i], hi[i]) == wilson(int(x[i]), int(n[i]), level=0.975)
    assert np.isnan(lo[4]) and np.isnan(hi[4]) and all(map(math.isnan, wilson(0, 0)))
    exact = z_quantile(1 - (1 - memory.LEVEL) / 4)
    assert abs(memory.Z_END - exact) <= math.ulp(exact)     # the written-out constant is that quantile


def test_discrepancy_summary_against_direct_computation(disc_dir):
    raw = pd.read_parquet(os.path.join(disc_dir, "discrepancy"))
    s = discrepancy_summary(raw)
    for cell, k, l in [("vanilla", 3, 24), ("gru", 6, 10), ("gru", 1, 1)]:
        seeds = raw[(raw.cell == cell) & (raw.init == "normal") & (raw.k == k) & (raw.l == l)]
        row = s[(s.cell == cell) & (s.init == "normal") & (s.k == k) & (s.l == l)].iloc[0]
        m = seeds["mean"].to_numpy()
        assert row.n_seeds == 3 and row.n_draws == 600 and row.ci_method == "seeds"
        half = 4.302652729 * m.std(ddof=1) / math.sqrt(3)       # t_{0.975, 2}
        assert row["mean"] == pytest.approx(m.mean(), rel=1e-12)
        assert row.ci_hi == pytest.approx(m.mean() + half, rel=1e-8)
        assert row.ci_lo == pytest.approx(max(0.0, m.mean() - half), rel=1e-8, abs=1e-300)
        assert row.frac_distinct == pytest.approx(seeds.frac_distinct.mean())
    one = discrepancy_summary(raw[raw.seed == 0])
    r = one[(one.cell == "gru") & (one.init == "normal") & (one.k == 4) & (one.l == 12)].iloc[0]
    src = raw[(raw.seed == 0) & (raw.cell == "gru") & (raw.init == "normal") & (raw.k == 4) & (raw.l == 12)].iloc[0]
    assert r.ci_method == "draws"
    assert r.ci_hi - r["mean"] == pytest.approx(1.959963985 * src["std"] / math.sqrt(200), rel=1e-8)


# ---------------------------------------------------------------------- discrepancy figures
def _image(fig, gid=None):
    ims = [im for ax in fig.axes for im in ax.get_images() if gid is None or im.get_gid() == gid]
    assert len(ims) == 1
    return np.asarray(ims[0].get_array())


def test_surface_figures_plot_the_table(disc_dir):
    raw = pd.read_parquet(os.path.join(disc_dir, "discrepancy"))
    s = discrepancy_summary(raw)
    scales = set()
    for cell in ("vanilla", "gru"):
        fig = fig_discrepancy.surface(s, cell)
        for stat in ("mean", "q50"):          # the paper's mean, and the median claim 4's rule reads
            want = (raw[(raw.cell == cell) & (raw.init == "normal")].groupby(["k", "l"])[stat].mean()
                    .unstack("l").sort_index())
            np.testing.assert_allclose(_image(fig, f"{stat}|{cell}"), np.log10(np.maximum(want.to_numpy(), 1e-20)),
                                       rtol=1e-12)
        scales |= {im.get_clim() for ax in fig.axes for im in ax.get_images()}
        assert "init normal" in fig.axes[0].get_title()
        assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["1", "2", "3", "4", "5", "6"]
    assert len(scales) == 1                    # one colour scale for both cells' mean and median


def test_curves_plot_mean_and_median(disc_dir):
    raw = pd.read_parquet(os.path.join(disc_dir, "discrepancy"))
    fig = fig_discrepancy.curves(discrepancy_summary(raw), ks=[1, 6])
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    assert len(lines) == 2 * 2 * 2 * 2  # stat x cell x init x k
    for (cell, init, k) in [("vanilla", "xavier", 6), ("gru", "normal", 1)]:
        sel = raw[(raw.cell == cell) & (raw.init == init) & (raw.k == k)]
        mean = sel.groupby("l")["mean"].mean()
        q50 = sel.groupby("l")["q50"].mean()
        np.testing.assert_allclose(lines[f"mean|{cell}|{init}|{k}"].get_ydata(), mean.to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(lines[f"q50|{cell}|{init}|{k}"].get_ydata(), q50.to_numpy(), rtol=1e-12)
        np.testing.assert_array_equal(lines[f"mean|{cell}|{init}|{k}"].get_xdata(), np.arange(1, 25))
    assert all(ax.get_yscale() == "log" for ax in fig.axes)


def test_frac_distinct_heatmap(disc_dir):
    raw = pd.read_parquet(os.path.join(disc_dir, "discrepancy"))
    fig = fig_discrepancy.frac_distinct(discrepancy_summary(raw))
    for cell in ("vanilla", "gru"):
        want = raw[(raw.cell == cell) & (raw.init == "xavier")].groupby(["k", "l"])["frac_distinct"].mean().unstack("l")
        np.testing.assert_allclose(_image(fig, f"{cell}|xavier"), want.to_numpy(), rtol=1e-12)


# ---------------------------------------------------------------------- training figures
def test_probe_heatmaps_plot_the_probes(full_dir):
    probes = load(full_dir, "probes")
    fig = fig_training.probe_heatmap(probes, "reber", "vanilla", "output")
    run = probes[(probes.task == "reber") & (probes.seed == 0) & probes.output_probe]
    last = run.sort_values("position").groupby("probe").tail(1).set_index("probe").loc[F.REBER_OUT]
    # the paper's recipe trains the squared error of the raw outputs: the heatmap shows them raw
    np.testing.assert_allclose(_image(fig, "paper|"), np.stack(last.output.to_numpy()), rtol=1e-6)
    im = next(im for ax in fig.axes for im in ax.get_images())
    assert im.get_clim() == (min(0.0, last.output.map(min).min()), max(1.0, last.output.map(max).max()))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == F.REBER_OUT

    fig = fig_training.probe_heatmap(probes, "reber", "vanilla", "hidden")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[:3] == ["q0:B", "q1:BT", "q1:BTSS"]
    hid = probes[(probes.task == "reber") & (probes.seed == 0) & probes.hidden_probe]
    last = hid.sort_values("position").groupby("probe").tail(1).set_index("probe").loc["BTX"]
    np.testing.assert_allclose(_image(fig, "paper|")[3], last.hidden, rtol=1e-6)

    fig = fig_training.probe_heatmap(probes, "embedded", "vanilla", "output")   # Fig 6: both protocols
    for recipe, shown in (("paper", "output"), ("adam", "probs")):             # raw for squared error only
        r = probes[(probes.task == "embedded-reber") & (probes.cell == "vanilla") & (probes.recipe == recipe)
                   & (probes.seed == 0) & (probes.probe == "BTBTXSE")].sort_values("position")
        np.testing.assert_allclose(_image(fig, f"{recipe}|BTBTXSE"), np.stack(r[shown].to_numpy()), rtol=1e-6)
    fig = fig_training.probe_heatmap(probes, "embedded-reber", "gru", "hidden")
    assert _image(fig, "paper|BPBTXSE").shape == (7, 10)
    with pytest.raises(Skip):
        fig_training.probe_heatmap(probes, "reber", "gru", "output")


def test_gradient_histograms_and_distance(full_dir):
    grads = load(full_dir, "gradients")
    fig = fig_training.gradient_histograms(grads)
    steps = {p.get_gid(): p for ax in fig.axes for p in ax.patches}
    for cell in ("vanilla", "gru"):
        rows = grads[(grads.cell == cell) & (grads.quantity == "param") & (grads.stage == "trained")]
        dense = np.zeros(hist.S.N_BINS)
        for b, c in zip(rows.hist_bin, rows.hist_count):
            dense[np.asarray(b)] += c                     # bins are distinct within a row
        share = dense / dense.sum()
        data = steps[f"paper|trained|{cell}"].get_data()
        values, edges = data.values, data.edges
        lo = np.nonzero(dense[2:])[0][0]
        np.testing.assert_allclose(values, share[2 + lo: 2 + lo + len(values)], rtol=1e-12)
        assert values.sum() == pytest.approx(1.0)        # every coefficient is in a log bin here
        assert edges[0] == pytest.approx(10 ** (-20 + lo / 50))
    assert all(ax.get_xscale() == "log" for ax in fig.axes)

    fig = fig_training.gradient_vs_distance(grads)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    for cell, k in (("vanilla", 18), ("gru", 10)):
        for stage in ("init", "trained"):
            rows = grads[(grads.cell == cell) & (grads.quantity == "hidden") & (grads.stage == stage)].sort_values("distance")
            ln = lines[f"embedded-reber|paper|{cell}|{k}|{stage}"]
            np.testing.assert_array_equal(ln.get_xdata(), rows.distance.to_numpy())
            np.testing.assert_allclose(ln.get_ydata(), rows.q50.to_numpy(), rtol=1e-12)  # one run: pooled = its median


def test_learning_curves_plot_median_over_seeds_and_the_floors(full_dir):
    epochs, runs = load(full_dir, "epochs"), load(full_dir, "runs")
    fig = fig_training.learning_curves(epochs, runs)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    for (task, cell, k, recipe), seeds in F.EPOCH_CONFIGS.items():
        # plain reference: per epoch the median over seeds, a stopped seed carrying its last loss
        per_seed = []
        for seed in range(seeds):
            e = epochs[(epochs.run_id == F.run_id(task, cell, k, recipe, seed)) & (epochs.epoch > 0)]
            loss = dict(zip(e.epoch, e.train_loss))
            per_seed.append([loss.get(n, loss[max(loss)]) for n in range(1, 13)])
        want = np.median(np.array(per_seed), axis=0)
        ln = lines[f"{task}|{recipe}|{cell}|{k}"]
        np.testing.assert_array_equal(ln.get_xdata(), np.arange(1, 13))
        np.testing.assert_allclose(ln.get_ydata(), want, rtol=1e-12)
        # the runs still training: seed 1 stopped after epoch 6
        alive = lines[f"alive|{task}|{recipe}|{cell}|{k}"]
        assert list(alive.get_ydata()) == [3] * 6 + [2] * 6
    assert all("stopped runs carried at their last loss" in a.get_title() for a in fig.axes if a.get_title())
    ax = next(a for a in fig.axes if a.get_title().startswith("embedded-reber, paper:"))
    floors = sorted(ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_linestyle() in ("--", ":"))
    assert floors == [3.5, 4.0]       # the runs' loss_floor and loss_floor_guess
    assert ax.get_ylim() == (3.5 * 0.9, 7.0)


def test_outer_accuracy_by_length_is_pooled_over_seeds_in_buckets(full_dir):
    from analysis import sec_training
    from analysis.registry import Tables
    table = sec_training.by_length(Tables(full_dir))
    gru = table[(table.cell == "gru") & (table.recipe == "paper")].set_index("bucket")
    # fixture: lengths 5 and 6 share a bucket, 9 is alone, 21 falls in 18+; six seeds each
    assert list(gru.index) == ["5-6", "9-10", "18+"]
    assert gru.loc["5-6", "n"] == 6 * 60 and gru.loc["5-6", "outer_accuracy"] == 1.0
    assert gru.loc["9-10", "outer_accuracy"] == pytest.approx(0.9) and gru.loc["18+", "outer_accuracy"] == 0.5
    # the best constant prediction of the same strings (the commoner outer symbol's share), per bucket
    np.testing.assert_allclose(gru["constant"], [32 / 60, 6 / 10, 1 / 2])
    for b, n, right in (("9-10", 60, 54), ("18+", 12, 6)):
        assert (gru.loc[b, "lo"], gru.loc[b, "hi"]) == pytest.approx(wilson(right, n))
    fig = fig_training.outer_by_length(table)
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["paper|gru|10"].get_ydata(), [1.0, 0.9, 0.5])
    np.testing.assert_allclose(lines["paper|vanilla|18"].get_ydata(), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(lines["constant|paper"].get_ydata(), [32 / 60, 6 / 10, 1 / 2])   # not 0.5
    bars = [c for ax in fig.axes for c in ax.collections if len(c.get_segments()) == 3]
    spans = sorted(tuple(np.round([seg[0][1], seg[1][1]], 9)) for c in bars for seg in c.get_segments())
    assert tuple(np.round(wilson(54, 60), 9)) in spans           # the GRU's 9-10 bucket, Wilson 95 %
    built = sec_training.lengths_section(Tables(full_dir))
    assert list(built.tables[0].columns) == ["recipe", "cell", "k", "5-6", "9-10", "18+"]
    assert "5-6: 60, 9-10: 10, 18+: 2 (paper)" in built.paragraphs[0]
    (row,) = built.tables[1].to_dict("records")                  # one test set, shared by the recipe's cells
    assert row["9-10"] == pytest.approx(0.6) and row["best constant prediction, test set of"] == "paper"
    # tables written before the sets' composition was recorded: 0.5, labelled as such
    fig = fig_training.outer_by_length(table.assign(constant=np.nan))
    ln = next(ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "constant|paper")
    assert list(ln.get_ydata()) == [0.5, 0.5] and "not in tables" in ln.get_label()


def test_success_rate_bars(full_dir):
    runs = load(full_dir, "runs")
    fig = fig_training.success_rates(runs[runs["lag_min"].isna()])       # the figure leaves out the map's runs
    bars = {b.get_gid(): b for ax in fig.axes for b in ax.patches if b.get_gid()}
    for (task, cell, k, protocol), accs in F.PAPER_LIKE_RUNS.items():
        bar = bars[f"{task}|{protocol}|{cell}|{k}"]
        assert bar.get_height() == pytest.approx(np.mean(np.array(accs) >= 0.95))
        assert matplotlib.colors.same_color(bar.get_facecolor(), cell_color(cell))     # one palette
    zero = bars["embedded-reber|paper|vanilla|18"]                 # 0/6: an outlined bar, drawn above the axis
    assert zero.get_height() == 0 and zero.get_linewidth() > 0 and fig.axes[0].get_ylim()[0] < 0
    for ax in fig.axes:                                            # a legend names every cell of the panel
        task = ax.get_title().split("\n")[0]
        want = {f"{c} k={k}" for (t, c, k, _) in F.PAPER_LIKE_RUNS if t == task}
        assert {t.get_text() for t in ax.get_legend().get_texts()} == want
        assert min(t.get_fontsize() for t in ax.get_xticklabels()) >= 8


# ---------------------------------------------------------------------- writing
def test_write_figures_skips_missing_tables(disc_dir, tmp_path):
    F.copy_tables(disc_dir, tmp_path, ["discrepancy"])
    results = write_figures(str(tmp_path))
    assert {r.name for r in results} == {f.name for f in FIGURES}
    drawn = {r.name for r in results if r.png}
    assert drawn == {"fig10_discrepancy_vanilla", "fig11_discrepancy_gru", "discrepancy_curves",
                     "discrepancy_frac_distinct", "memory_curves", "memory_across_k"}
    for r in results:
        if r.png:
            assert os.path.getsize(r.png) > 1000 and os.path.getsize(r.pdf) > 1000
        else:
            assert r.note.startswith(f"skipped {r.name}: no '") and "\n" not in r.note


def test_all_figures_from_full_tables(full_dir):
    tables = Tables(full_dir)
    for spec in FIGURES:
        fig = spec.build(tables)
        assert fig.axes, spec.name


def test_cli_figures(cli, full_dir, tmp_path):
    code, out, err = cli("figures", full_dir)
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith(f"{len(FIGURES)} figure(s) written")
    assert sorted(os.listdir(os.path.join(full_dir, "figures"))) == sorted(
        [f"{f.name}.png" for f in FIGURES] + [f"{f.name}.pdf" for f in FIGURES])
    code, out, err = cli("figures", tmp_path)
    assert code == 2 and err.count("\n") == 1 and "holds no lksweep table" in err
    code, out, err = cli("report", tmp_path / "nope")
    assert code == 2 and "not a directory" in err


def test_heatmap_rows_are_labelled_with_their_k_even_when_k_skips():
    from matplotlib.figure import Figure
    ax = Figure().add_subplot()
    values = np.arange(3 * 5, dtype=float).reshape(3, 5)
    im = fig_discrepancy.show_grid(ax, values, np.arange(1, 6), np.array([4, 8, 16]))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["4", "8", "16"]
    assert list(ax.get_yticks()) == [0, 1, 2]          # k=8 sits on its own row, not at 10
    np.testing.assert_array_equal(im.get_array(), values)


def test_histogram_reaches_1e8_and_a_quantile_beyond_it_says_so():
    """Gradient coefficients of N(0,1) initial weights exceed 1e2 (the old top, which hid them and
    made the 99th percentile the cut): up to 1e8 they fall in log bins; beyond, the quantile is a bound."""
    from sweeps import contract as S
    values = np.concatenate([np.full(97, 1.0), [3e2, 5e4, 2e7]])
    h = S.dense_histogram(*S.sparse_histograms(values[:, None]))
    assert h[-1] == 0 and S.quantile(h, 0.99) == pytest.approx(5e4, rel=0.05)     # the order statistic, in range
    assert hist.quantile_text(h, 0.99) == f"{S.quantile(h, 0.99):.3g}"
    over = S.dense_histogram(*S.sparse_histograms(np.concatenate([np.ones(97), [1e9] * 3])[:, None]))
    assert over[-1] == 3 and S.beyond(over, 0.99) and not S.beyond(over, 0.5)
    assert hist.quantile_text(over, 0.99) == ">= 1e+08 (beyond the histogram)"
    assert hist.shares(over, 1e-8, 1e2) == (0, 0.03)
