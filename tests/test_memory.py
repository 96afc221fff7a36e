"""The memory and lyapunov tables: decay rates and their intervals against a direct computation
and by coverage, the tables' guarantees (bit-identical whatever the sharding, rebuilt from
committed shards), claim 4's rule flipping, and the figures and section built on them."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import cells
from analysis import claims as C
from analysis import fig_memory, origin, registry
from analysis.rates import decay_summary, runs_of
from analysis.tables import load, mean_ci, wilson
from sweeps.jobs import discrepancy as D
from sweeps.jobs import memory as M
from sweeps.jobs import resident

from .test_discrepancy import reference_distance
from .test_dynamics import group_rows


# ---------------------------------------------------------------------- rates against a direct computation
def test_decay_rates_and_l_half_match_a_direct_computation():
    """On the very draws of a group: exact medians and order statistics from a per-draw loop
    give the table's rate, interval and window (within the histogram's 4.7 % bins)."""
    cell, init, k, l_max, n = "gru", "gain:1", 4, 24, 300
    row = group_rows(cell, init, k, l_max, n)["memory"].iloc[0]
    draws = []
    for b in range(-(-n // D.BLOCK)):
        p = D.draw_block(cell, init, k, 0, b)
        draws += [{name: t[i].numpy() for name, t in p.items()} for i in range(D.BLOCK)]
    d = np.array([[reference_distance(cell, draws[i], l) for l in range(1, l_max + 1)] for i in range(n)])
    z = 2.241402727604947                                     # 97.5 % two-sided at each end
    p_lo, p_hi = 0.5 - z / (2 * math.sqrt(n)), 0.5 + z / (2 * math.sqrt(n))
    med = np.quantile(d, 0.5, axis=0, method="inverted_cdf")
    lo = np.quantile(d, p_lo, axis=0, method="inverted_cdf")
    hi = np.quantile(d, p_hi, axis=0, method="inverted_cdf")
    usable = lo > 1e3 * np.finfo(float).eps
    end = int(np.argmin(usable)) if not usable.all() else l_max
    start = max(1, end // 2)
    assert (row["rate_from"], row["rate_to"]) == (start, end)
    span, bin_log = end - start, math.log(10 ** (1 / 50))
    a, b = start - 1, end - 1
    assert row["rate"] == pytest.approx(math.log(med[b] / med[a]) / span, abs=2 * bin_log / span)
    exact_lo, exact_hi = math.log(lo[b] / hi[a]) / span, math.log(hi[b] / lo[a]) / span
    assert exact_lo - 4 * bin_log / span <= row["rate_lo"] <= exact_lo + 1e-12      # widened by a bin, never narrower
    assert exact_hi - 1e-12 <= row["rate_hi"] <= exact_hi + 4 * bin_log / span
    frac = (d > 1e-6).mean(axis=0)
    below = np.flatnonzero(frac < 0.5)
    assert row["l_half"] == (below[0] + 1 if len(below) else None) or (pd.isna(row["l_half"]) and not len(below))
    x = (d > 1e-6).sum(axis=0)
    w = [wilson(int(v), n, level=0.975) for v in x]
    ends = (int(row["distinct_from"]) - 1, int(row["distinct_to"]) - 1)
    span = ends[1] - ends[0]
    assert row["distinct_rate"] == pytest.approx(math.log(frac[ends[1]] / frac[ends[0]]) / span, rel=1e-9, abs=1e-12)
    assert row["distinct_lo"] == pytest.approx(math.log(w[ends[1]][0] / w[ends[0]][1]) / span, rel=1e-6)
    assert row["distinct_hi"] == pytest.approx(math.log(w[ends[1]][1] / w[ends[0]][0]) / span, rel=1e-6)


def test_the_rate_interval_covers_the_population_rate():
    """40 independent ensembles of 200 draws: the 95 % interval of each ensemble's decay rate
    covers the rate of the median of 20,000 draws over the same window at least 35 times
    (a 95 % interval misses more than 5 times out of 40 with probability 1.4 %)."""
    cell, init, k, l_max = "gru", "gain:1", 8, 30
    c = cells.get_cell(cell)
    big = {n: torch.cat([D.draw_block(cell, init, k, 999, b)[n] for b in range(400)]) for n in c.shapes(2, k)}
    d = resident.distances(c, big, l_max)[0]
    rows = [group_rows(cell, init, k, l_max, 200, seed=s)["memory"].iloc[0] for s in range(40)]
    assert all((r["rate_from"], r["rate_to"]) == (15, 30) for r in rows)
    med = np.median(d, axis=0)
    truth = math.log(med[29] / med[14]) / 15
    covered = sum(r["rate_lo"] <= truth <= r["rate_hi"] for r in rows)
    assert covered >= 35, (covered, truth)


# ---------------------------------------------------------------------- the tables' guarantees
TABLES = ("discrepancy", "state_discrepancy", "memory", "lyapunov")
ARGS = ["discrepancy", "--cells", "lstm,tanh", "--inits", "normal,gain:2", "--k", f"3,{D.RESIDENT_K + 1}",
        "--l-max", 15, "--draws", 230, "--lyapunov", "true"]


def read(out, table):
    keys = [k for k in ("cell", "init", "k", "seed", "draw", "l") if k in pd.read_parquet(out / table).columns]
    return pd.read_parquet(out / table).sort_values(keys).reset_index(drop=True)


def test_new_tables_are_bit_identical_whatever_the_shards_and_workers(tmp_path, cli):
    outs = []
    for shard, workers in ((50, 1), (100, 2), (1000, 2)):
        out = tmp_path / f"s{shard}"
        code, _, err = cli(*ARGS, "--shard-size", shard, "--max-workers", workers, "--out", out)
        assert code == 0, err
        outs.append(out)
    for table in TABLES:
        first = read(outs[0], table)
        assert len(first) == {"discrepancy": 8 * 15, "state_discrepancy": 4 * 15, "memory": 8, "lyapunov": 8 * 230}[table]
        for other in outs[1:]:
            pd.testing.assert_frame_equal(first, read(other, table), check_exact=True)


def test_derived_tables_that_went_missing_are_rebuilt_and_nothing_else_is_rewritten(tmp_path, cli):
    """A directory whose memory and lyapunov files are gone (or that predates them) gets them
    back, equal, on rerun; the committed discrepancy files are not written again. (Groups
    whose shards were kept, those split over several tasks, are rebuilt from them; the others
    are computed again: the engine keeps no shard of a group finished in one task.)"""
    out = tmp_path / "out"
    assert cli(*ARGS, "--out", out)[0] == 0
    before = {t: read(out, t) for t in ("memory", "lyapunov")}
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "discrepancy").iterdir()}
    for t in before:
        for f in (out / t).iterdir():
            f.unlink()
    code, stdout, err = cli(*ARGS, "--out", out)
    assert code == 0, err
    for t, df in before.items():
        pd.testing.assert_frame_equal(df, read(out, t), check_exact=True)
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "discrepancy").iterdir()} == kept


# ---------------------------------------------------------------------- combining ensembles
def memory_frame(rates):
    """A memory table from {(cell, init, k): [(rate, lo, hi) per seed]} (l_max 50)."""
    rows = []
    for (cell, init, k), seeds in rates.items():
        for seed, (rate, lo, hi) in enumerate(seeds):
            rows.append({"cell": cell, "init": init, "gain": 1.0, "k": k, "seed": seed, "dtype": "float64",
                         "n_draws": 500, "l_max": 50, "threshold": 1e-6, "rate": rate, "rate_lo": lo, "rate_hi": hi,
                         "rate_from": 25, "rate_to": 50, "distinct_rate": rate, "distinct_lo": lo,
                         "distinct_hi": hi, "l_half": None, "lyapunov_q10": rate - 0.1, "lyapunov_q50": rate,
                         "lyapunov_q90": rate + 0.1, "lyapunov_positive": float(rate > 0), "saturated": None})
    return pd.DataFrame(rows)


def test_decay_summary_combines_ensembles():
    m = memory_frame({("gru", "normal", 4): [(-0.1, -0.2, 0.0), (-0.3, -0.4, -0.2), (-0.2, -0.25, -0.15)],
                      ("gru", "normal", 8): [(-0.5, -0.6, -0.45)],
                      ("gru", "normal", 16): [(-math.inf, -math.inf, -3.0), (-2.0, -2.5, -1.5)]})
    s = decay_summary(m).set_index("k")
    mean, lo, hi = mean_ci([-0.1, -0.3, -0.2])
    assert (s.loc[4, "rate"], s.loc[4, "lo"], s.loc[4, "hi"], s.loc[4, "ci_method"]) == pytest.approx(
        (mean, lo, hi, "seeds"))
    assert s.loc[4, "hi"] - s.loc[4, "rate"] == pytest.approx(4.302652729 * 0.1 / math.sqrt(3))   # t_{0.975, 2}
    assert (s.loc[8, "rate"], s.loc[8, "lo"], s.loc[8, "hi"], s.loc[8, "ci_method"]) == (-0.5, -0.6, -0.45, "draws")
    assert (s.loc[16, "lo"], s.loc[16, "hi"], s.loc[16, "ci_method"]) == (-math.inf, -1.5, "envelope")
    label = {1: 'a', 2: 'a', 4: 'b', 16: 'a', 17: 'a', 300: 'a'}.get
    assert runs_of([17, 1, 4, 2, 300, 16], label) == [[1, 2], [4], [16, 17, 300]]


# ---------------------------------------------------------------------- claim 4
def _scopes(claim):
    return {f.scope: f.verdict for f in claim.findings}


VANILLA = (-0.5, -0.6, -0.4)


def judged(gru_by_k, vanilla=VANILLA):
    rates = {}
    for k, g in gru_by_k.items():
        rates[("vanilla", "normal", k)] = [vanilla]
        rates[("gru", "normal", k)] = [g]
    return _scopes(C.claim4(memory_frame(rates)))


def test_claim4_flips_on_decay_rates():
    keeps, ten_x_slower = (0.0, -0.01, 0.01), (-0.03, -0.035, -0.025)
    alike, between = (-0.3, -0.35, -0.25), (-0.05, -0.08, -0.03)
    assert judged({2: keeps, 3: ten_x_slower}) == {"init normal, k 2-3": C.SUPPORTED}
    # the verdict changes with k: two ranges, one where the claim holds and one where it fails
    assert judged({2: keeps, 3: alike, 4: keeps}) == {"init normal, k 2": C.SUPPORTED, "init normal, k 3": C.NOT_SUPPORTED,
                                                      "init normal, k 4": C.SUPPORTED}
    assert judged({2: between, 3: between}) == {"init normal, k 2-3": C.INCONCLUSIVE}
    assert judged({2: alike, 20: keeps, 100: keeps}) == {"init normal, k 2": C.NOT_SUPPORTED,
                                                         "init normal, k 20-100": C.SUPPORTED}
    # the vanilla's D does not vanish: its fastest plausible decay loses less than e over l <= 50
    assert judged({2: keeps}, vanilla=(0.0, -0.015, 0.015)) == {"init normal, k 2": C.NOT_SUPPORTED}
    assert judged({2: keeps}, vanilla=(-0.02, -0.05, 0.01)) == {"init normal, k 2": C.INCONCLUSIVE}
    # a GRU interval that reaches 0 but also plausibly decays nearly as fast as the vanilla decides nothing
    assert judged({2: (-0.1, -0.3, 0.01)}) == {"init normal, k 2": C.INCONCLUSIVE}
    only_gru = memory_frame({("gru", "normal", 2): [keeps]})
    assert _scopes(C.claim4(only_gru)) == {"init normal": C.NOT_MEASURED}
    assert C.claim4(None).verdict == C.NOT_MEASURED


def test_claim4_states_the_ratio_and_where_the_threshold_would_change_the_verdict():
    # vanilla [-0.6, -0.4]: a GRU in [-0.06, -0.05] decays 6.7-12 times slower (inconclusive at 10x); one in
    # [-0.03, -0.025] 13-24 times slower (supported at 10x, inconclusive at 20x); one in [-0.1, -0.08] 4-7.5 times
    # slower (not supported at 10x, inconclusive at 5x)
    assert C.rate_ratio(-0.6, -0.4, -0.06, -0.05) == pytest.approx((0.4 / 0.06, 0.6 / 0.05))
    assert C.rate_ratio(-0.6, -0.4, -0.06, 0.01) == (pytest.approx(0.4 / 0.06), math.inf)
    assert C.rate_ratio(-0.6, 0.01, -0.06, -0.05) is None
    cases = {"between": ((-0.055, -0.06, -0.05), C.INCONCLUSIVE, {"5x": C.SUPPORTED, "20x": C.NOT_SUPPORTED}),
             "slower": ((-0.028, -0.03, -0.025), C.SUPPORTED, {"5x": C.SUPPORTED, "20x": C.INCONCLUSIVE}),
             "faster": ((-0.09, -0.1, -0.08), C.NOT_SUPPORTED, {"5x": C.INCONCLUSIVE, "20x": C.NOT_SUPPORTED})}
    for name, (gru, at10, others) in cases.items():
        (f,) = C.claim4(memory_frame({("vanilla", "normal", 3): [VANILLA], ("gru", "normal", 3): [gru]})).findings
        row = f.table.iloc[0]
        assert f.verdict == at10 and row["verdict at 5x"] == others["5x"] and row["verdict at 20x"] == others["20x"]
        assert row["ratio"] == pytest.approx(0.5 / -gru[0]), name
        assert f"{row['ratio lo']:.3g}, {row['ratio hi']:.3g}]" in f.summary
        for x, v in others.items():
            assert (f"verdict at {x}: {v}" in f.summary) == (v != at10), (name, f.summary)
    # "decays alike" is not what a GRU 5.6 times slower does: it decays too, and the sentence says how much slower
    (f,) = C.claim4(memory_frame({("vanilla", "normal", 3): [VANILLA],
                                  ("gru", "normal", 3): [(-0.09, -0.1, -0.08)]})).findings
    assert "the GRU decays too, 5.56 times slower [4, 7.5]" in f.summary and "alike" not in f.summary


def test_claim4_calls_a_k_chaotic_where_a_median_exponent_is_positive():
    def frame(lam_vanilla, lam_gru):
        m = memory_frame({("vanilla", "normal", 128): [(0.0, -0.001, 0.001)],
                          ("gru", "normal", 128): [(0.0, -0.001, 0.001)],
                          ("vanilla", "normal", 4): [VANILLA], ("gru", "normal", 4): [(-0.3, -0.35, -0.25)]})
        big = m["k"] == 128
        m.loc[big & (m["cell"] == "vanilla"), "lyapunov_q50"] = lam_vanilla
        m.loc[big & (m["cell"] == "gru"), "lyapunov_q50"] = lam_gru
        return m
    # the vanilla's D does not vanish at k = 128: chaos where a median exponent is > 0, not supported where < 0
    assert _scopes(C.claim4(frame(0.2, -0.01))) == {"init normal, k 4": C.NOT_SUPPORTED,
                                                    "init normal, k 128": C.CHAOTIC}
    assert _scopes(C.claim4(frame(-0.2, 0.05))) == {"init normal, k 4": C.NOT_SUPPORTED,
                                                    "init normal, k 128": C.CHAOTIC}
    assert _scopes(C.claim4(frame(-0.2, -0.01))) == {"init normal, k 4-128": C.NOT_SUPPORTED}
    # where the exponent was not measured, the finding says so rather than guess
    (f,) = C.claim4(frame(math.nan, math.nan)).findings
    assert f.verdict == C.NOT_SUPPORTED and f.summary.count("Lyapunov exponent not measured") == 1
    assert "not measured" not in C.claim4(frame(-0.2, -0.01)).findings[0].summary
    chaotic = [f for f in C.claim4(frame(0.2, -0.01)).findings if f.verdict == C.CHAOTIC][0]
    assert "D does not tell memory from chaos" in chaotic.summary and "not measured" not in chaotic.summary


def test_claim4_flips_on_real_tables(disc_dir):
    real = load(disc_dir, "memory")
    findings = C.claim4(real).findings
    # per init, the ranges cover every k measured for both cells, each with one verdict, and neighbours differ
    for init in ("normal", "xavier", "gain:2"):
        mine = [f for f in findings if f.scope.startswith(f"init {init}, k ")]
        assert [k for f in mine for k in f.table["k"]] == sorted(set(real[real["init"] == init]["k"]))
        assert all(set(f.table["verdict"]) == {f.verdict} for f in mine)
        assert all(a.verdict != b.verdict for a, b in zip(mine, mine[1:]))
    vanilla = real[real["cell"] == "vanilla"]
    # the GRU rows take the vanilla's numbers: both decay alike, everywhere
    alike = pd.concat([vanilla, vanilla.assign(cell="gru")], ignore_index=True)
    assert set(_scopes(C.claim4(alike)).values()) == {C.NOT_SUPPORTED}
    # the GRU rows keep D (rate 0 +- 0.001): supported wherever the vanilla's D decays
    keeps = vanilla.assign(cell="gru", rate=0.0, rate_lo=-1e-3, rate_hi=1e-3)
    s = decay_summary(vanilla).set_index(["init", "k"])
    for f in C.claim4(pd.concat([vanilla, keeps], ignore_index=True)).findings:
        init = f.scope.split(",")[0][len("init "):]
        if all(s.loc[(init, k), "hi"] < 0 for k in f.table["k"]):
            assert f.verdict == C.SUPPORTED, f.scope


# ---------------------------------------------------------------------- figures and the section
def test_phase_diagram_plots_the_median_exponent():
    rates = {(cell, f"gain:{g:g}", k): [(r, r - 0.01, r + 0.01)] for cell, base in (("vanilla", -1.0), ("gru", -0.2))
             for g in (0.5, 1, 4) for k in (4, 16) for r in [base + 0.1 * math.log2(g) + 0.01 * k]}
    m = memory_frame(rates)
    m["gain"] = m["init"].str[5:].astype(float)
    fig = fig_memory.phase(decay_summary(m))
    mesh = {c.get_gid(): c for ax in fig.axes for c in ax.collections if c.get_gid()}
    for cell in ("vanilla", "gru"):
        want = m[m["cell"] == cell].pivot(index="k", columns="gain", values="lyapunov_q50").to_numpy()
        np.testing.assert_allclose(np.asarray(mesh[f"phase|{cell}"].get_array()).reshape(want.shape), want)


def test_decay_against_lyapunov_scatters_each_draw(disc_dir):
    draws = load(disc_dir, "lyapunov")
    fig = fig_memory.decay_against_lyapunov(draws)
    points = {c.get_gid(): c.get_offsets() for c in fig.axes[0].collections if c.get_gid()}
    ok = draws[np.isfinite(draws["lyapunov"]) & np.isfinite(draws["rate"])]
    for cell in ("vanilla", "gru"):
        c = ok[ok["cell"] == cell]
        np.testing.assert_array_equal(np.asarray(points[f"draws|{cell}"]), c[["lyapunov", "rate"]].to_numpy())


def test_across_k_plots_d_at_l_50_or_the_longest_l(disc_dir):
    from analysis.tables import discrepancy_summary
    s = discrepancy_summary(load(disc_dir, "discrepancy"))
    fig = fig_memory.across_k(s, decay_summary(load(disc_dir, "memory")))
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()}
    want = s[(s["init"] == "normal") & (s["cell"] == "gru") & (s["l"] == 24)].sort_values("k")
    np.testing.assert_allclose(lines["q50|gru"].get_ydata(), want["q50"])
    np.testing.assert_allclose(lines["mean|gru"].get_ydata(), want["mean"])
    # exact zeros (bit-identical trajectories) are not drawn on the log axis, and say so
    zeros = s[(s["init"] == "normal") & (s["cell"] == "vanilla") & (s["l"] == 24)].sort_values("k")["q50"] == 0
    assert zeros.any() and np.isnan(lines["q50|vanilla"].get_ydata()[zeros.to_numpy()]).all()
    assert any("(vanilla k=1" in t.get_text() for t in fig.texts)
    # without exponents there is no third panel
    assert len(fig_memory.across_k(s, decay_summary(load(disc_dir, "memory")).assign(lyapunov_q50=np.nan)).axes) == 2


def test_variance_split_and_crossings_against_hand_computation():
    cells_, gains, ks = {"a": -1.0, "b": 0.5}, {1.0: -0.3, 2.0: 0.0, 4.0: 0.3}, {4: -0.05, 8: 0.05}
    grid = pd.DataFrame([{"cell": c, "gain": g, "k": k, "v": cv + gv + kv}
                         for c, cv in cells_.items() for g, gv in gains.items() for k, kv in ks.items()])
    shares = origin.variance_split(grid, "v")
    var = {"cell": np.var(list(cells_.values())), "gain": np.var(list(gains.values())), "k": np.var(list(ks.values()))}
    for f in ("cell", "gain", "k"):
        assert shares[f] == pytest.approx(var[f] / sum(var.values()))
    assert all(shares[t] == pytest.approx(0.0, abs=1e-12) for t in shares if " x " in t)
    assert origin.zero_crossing(np.array([1.0, 2.0, 4.0]), np.array([-0.2, -0.1, 0.1])) == pytest.approx(2 * math.sqrt(2))
    assert math.isnan(origin.zero_crossing(np.array([1.0, 2.0]), np.array([-0.2, -0.1])))


def test_variance_split_against_plain_two_way_sums_of_squares():
    """A 3 x 4 x 2 balanced grid with interactions: each term against the textbook sums of squares,
    written as loops over the levels."""
    rng = np.random.default_rng(1)
    A, B, K = ["a", "b", "c"], [0.25, 1.0, 4.0, 8.0], [4, 16]
    y = {(a, b, k): rng.normal() + (2.0 * i * j if k == 4 else 0.0) + i
         for i, a in enumerate(A) for j, b in enumerate(B) for k in K}
    grid = pd.DataFrame([{"cell": a, "gain": b, "k": k, "v": v} for (a, b, k), v in y.items()])
    shares = origin.variance_split(grid, "v")
    n = len(y)
    m = sum(y.values()) / n
    levels = {"cell": A, "gain": B, "k": K}
    pos = {"cell": 0, "gain": 1, "k": 2}

    def mean(**fixed):
        vals = [v for key, v in y.items() if all(key[pos[f]] == x for f, x in fixed.items())]
        return sum(vals) / len(vals)

    total = sum((v - m) ** 2 for v in y.values())
    ss = {f: sum((n / len(levels[f])) * (mean(**{f: x}) - m) ** 2 for x in levels[f]) for f in levels}
    for f, g in (("cell", "gain"), ("cell", "k"), ("gain", "k")):
        reps = n / (len(levels[f]) * len(levels[g]))
        ss[f"{f} x {g}"] = sum(reps * (mean(**{f: x, g: z}) - mean(**{f: x}) - mean(**{g: z}) + m) ** 2
                               for x in levels[f] for z in levels[g])
    ss["cell x gain x k"] = sum((y[(a, b, k)] - mean(cell=a, gain=b) - mean(cell=a, k=k) - mean(gain=b, k=k)
                                 + mean(cell=a) + mean(gain=b) + mean(k=k) - m) ** 2 for a in A for b in B for k in K)
    assert sum(ss.values()) == pytest.approx(total)               # balanced: the terms are orthogonal
    assert set(shares) == set(ss)
    for term, value in ss.items():
        assert shares[term] == pytest.approx(value / total, abs=1e-12), term
    assert shares["cell x gain"] > 0.05 and origin.balanced(grid) and not origin.balanced(grid.iloc[1:])


def test_the_section_states_the_split_with_its_caveats():
    rates = {(cell, f"gain:{g:g}", k): [(r, r - 0.01, r + 0.01)]
             for cell, base in (("vanilla", -2.0), ("gru", 0.0), ("tanh", -1.0))
             for g in (0.5, 2) for k in (4, 8) for r in [base + 0.05 * math.log2(g)]}
    m = memory_frame(rates)
    m["gain"] = m["init"].str[5:].astype(float)

    class Tables(registry.Tables):      # the report's tables, with only this memory table in them
        def __init__(self):
            super().__init__("")

        def get(self, name):
            if name == "memory":
                return m
            raise fig_memory.Skip(name)

    out = origin.origin(Tables())
    text = " ".join(out.paragraphs)
    assert "3 cells x 2 gains (0.5, 2) x 2 widths (4, 8), one ensemble of 500 draws per combination" in text
    assert "cell x gain" in text and "without it the split is" in text and "does not name a cause" in text
    assert "decides" not in text and "vanilla: stays below 0 at every gain up to 2" in text
    split = out.tables[0].set_index("cells")
    assert list(split.index) == ["all", "without vanilla"]
    assert split.loc["all", "cell"] > 0.9 and split.loc["without vanilla", "gain"] > split.loc["all", "gain"]


def test_memory_rows_summarise_the_exponents():
    lam = np.array([-1.0, -0.5, 0.2, -np.inf, 0.4])
    s = M.lyapunov_summary(lam)
    finite = lam[np.isfinite(lam)]
    assert s["lyapunov_mean"] == pytest.approx(finite.mean()) and s["lyapunov_std"] == pytest.approx(finite.std(ddof=1))
    assert (s["lyapunov_q10"], s["lyapunov_q50"], s["lyapunov_q90"]) == (-np.inf, -0.5, 0.4)
    assert s["lyapunov_positive"] == 0.4 and s["lyapunov_vanished"] == 0.2
    assert all(v is None for v in M.lyapunov_summary(None).values())


def test_a_smaller_group_is_a_prefix_of_a_larger_one():
    """Per-draw numbers do not depend on how many draws a group has (resident path, exponents)."""
    k = D.RESIDENT_K
    small, large = (group_rows("mgu", "gain:2", k, 20, n, lyapunov=True)["lyapunov"] for n in (31, 50))
    pd.testing.assert_frame_equal(small, large.iloc[:31], check_exact=True)


def test_kept_draws_are_classified_before_a_mechanism_is_named():
    """Ordered draws that keep D: shares of what their trajectories settled on, counted by hand; the LSTM's
    rate is the whole state's (what its exponent follows); without the attractor columns nothing is named."""
    rows = []
    for cell, kinds in (("tanh", [("period-2", "period-2", 1)] * 3 + [("fixed", "fixed", None)] * 2
                         + [("other", "other", None)] * 5),
                        ("gru", [("period-2", "period-4", None)] * 1 + [("other", "other", None)] * 3)):
        for a, b, j in kinds:
            rows.append({"cell": cell, "lyapunov": -0.5, "rate": 0.001, "state_rate": np.nan, "attractor": a,
                         "v_attractor": b, "v_shift": j})
    rows += [{"cell": "lstm", "lyapunov": -0.3, "rate": -0.1, "state_rate": -0.3 + 0.001 * i, "attractor": "fixed",
              "v_attractor": "fixed", "v_shift": 0} for i in range(4)]
    draws = pd.DataFrame(rows)
    draws["v_shift"] = draws["v_shift"].astype("Int32")
    text, (shares,) = origin.agreement(draws)
    s = shares.set_index("cell")
    assert list(s.index) == ["tanh", "gru"] and s.loc["tanh", "draws"] == 10 and s.loc["gru", "draws"] == 4
    assert s.loc["tanh", "v on u's orbit, shifted phase"] == pytest.approx(0.3)
    assert s.loc["tanh", "distinct fixed points"] == pytest.approx(0.2)
    assert s.loc["gru", "distinct periodic orbits"] == pytest.approx(0.25)
    assert s.loc["tanh", origin.UNSETTLED] == pytest.approx(0.5) and s.loc["gru", origin.UNSETTLED] == pytest.approx(0.75)
    assert "memory by multistability (3 of the 14 draws)" in text[0] and "shifted in time (3)" in text[0]
    assert "lstm: median |rate - λ| 0.0015 with the whole state's rate, 0.2 with h's" in text[0]
    assert "cause" not in text[0] and "consistency check" in text[0]
    text, tables = origin.agreement(draws.drop(columns=["attractor", "v_attractor", "v_shift", "state_rate"]))
    assert tables == [] and "no mechanism is named" in text[0] and "not like with like" in text[0]
