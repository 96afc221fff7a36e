"""The paper's four claims, each one object (``analysis.rules.Claim``): its statement, the tables
it reads, its rules and its judge. The page prints each rule from the object that decides
(``analysis.rules.Rule``), so the printed rule is the one applied.

Verdicts are the closed set ``analysis.rules.Verdict``: supported, not supported, inconclusive
(the rule's measures disagree), inconclusive because more seeds would decide or because a longer
training budget would (runs stopped by the epoch cap while still improving), chaotic, not
measured (the table or the rows are missing). Claims 1-3 are judged separately for each training
recipe (a protocol and the ingredients that differ from its own; runs with other budgets are
never pooled), claim 4 for each parameter init and k (neighbouring k with one verdict reported
as one range). Training scores are those of each run's selected model (best validation epoch) on
its test set, and outer accuracies are set against the constant-prediction baseline of the same
strings.
"""
import math
from typing import Dict, List, Optional

import pandas as pd

from . import hist
from . import trainability as T
from .rates import decay_summary, runs_of, time_constant
from .rules import All, Claim, Compare, Finding, Judged, Prose, Rule, Verdict
from .success import (
    OUTER_SUCCESS,
    RISE,
    RISE_WINDOW,
    STRING_SUCCESS,
    constant_share,
    flag_runs,
    outer_score,
    paper_models,
    predicts_constant,
    success_flags,
)
from .tables import pick_dtype, rate_summary, wilson

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_MEASURED = (Verdict.SUPPORTED, Verdict.NOT_SUPPORTED, Verdict.INCONCLUSIVE,
                                                        Verdict.NOT_MEASURED)
MORE_SEEDS, LONGER = Verdict.MORE_SEEDS, Verdict.LONGER

# Thresholds of the rules (module constants so tests and readers see one truth).
MAJORITY = 0.5
SLOWER = 10.0             # claim 4: the GRU's D decays at least this many times slower than the vanilla's
SENSITIVITY = (5.0, 20.0)  # claim 4: the thresholds its verdicts are also stated at
CHAOTIC = Verdict.CHAOTIC  # claim 4 at a k where a cell's median Lyapunov exponent is > 0: D cannot tell memory from chaos
GRAD_DECADES = 1.0        # gradient medians within one decade ...
GRAD_TAIL = 0.10          # ... and shares of vanishing / exploding coefficients within 10 points
GRAD_VANISH, GRAD_EXPLODE = 1e-8, 1e2
REACH = 0.5               # claim 3(b) judges the distance that at least this share of training strings reach
SEPARATE = 0.5            # claim 3(b): a failing recipe's initial decay this many decades steeper sets it apart

IMPROVING = (f"still improving: stopped by the epoch cap while its best validation score over the last "
             f"{RISE_WINDOW:.0%} of its epochs exceeded its best before them by more than {RISE:.0%}")


def _power(x: float) -> str:
    """A power of ten as the page writes it: 1e-8, 1e2."""
    return f"1e{round(math.log10(x))}"


def _fmt_rate(r) -> str:
    return f"{int(r.successes)}/{int(r.n)} = {r.rate:.0%} [{r.lo:.0%}, {r.hi:.0%}]"


def _interval(flags: pd.Series) -> Dict[str, float]:
    lo, hi = wilson(int(flags.sum()), len(flags))
    return {"lo": lo, "hi": hi}


def success_rates(runs: Optional[pd.DataFrame], task: str, by: List[str], epochs: Optional[pd.DataFrame] = None):
    """(runs, rates): the paper's models on ``task`` with their ``success`` (``success_flags``) and
    ``improving`` (failed, and ``still_improving`` at the cap; NaN without ``epochs``), and Wilson
    rates per scope and ``by``; (None, None) if none ran."""
    d = None if runs is None else paper_models(runs, task)
    if d is None or d.empty:
        return None, None
    d = flag_runs(d, epochs)
    return d, rate_summary(d, ["scope", *by], "success")


def _improving(g: pd.DataFrame) -> str:
    """How many of the failed runs of ``g`` the cap stopped while still improving, as a clause."""
    if g["improving"].isna().all():
        return "; no epochs table, so whether the cap stopped runs still improving is not known"
    n = int(g["improving"].astype(bool).sum())
    return f"; {n} failed run(s) stopped by the epoch cap while still improving" if n else ""


# ---------------------------------------------------------------------- claim 1
RULE_1 = Rule(
    measure=(f"Per recipe (and training budget), over the Reber runs of the vanilla cell with k=5: a run succeeds "
             f"when the test string accuracy of its selected model is >= {STRING_SUCCESS:.0%}; [lo, hi] is the "
             f"Wilson 95 % interval of the success rate. A failed run is {IMPROVING}."),
    quantities={"lo": "lo", "hi": "hi"},
    cases=((SUPPORTED, Compare("lo", ">", MAJORITY)), (NOT_SUPPORTED, Compare("hi", "<", MAJORITY))),
    otherwise=MORE_SEEDS, budget=True)


def claim1(runs: Optional[pd.DataFrame], epochs: Optional[pd.DataFrame] = None, claim: Optional[Claim] = None) -> Judged:
    c = Judged(claim or CLAIMS[1])
    rule = c.claim.rules[0]
    d, rates = success_rates(runs, "reber", ["k"], epochs)
    if d is None:
        return c
    for scope, g in d.groupby("scope", sort=True):
        x, n = int(g["success"].sum()), len(g)
        q = _interval(g["success"])
        verdict = rule.decide(q, [_interval(g["success"] | g["improving"].fillna(False).astype(bool))])
        acc = g["string_accuracy"]
        c.findings.append(Finding(
            scope, verdict,
            f"{x}/{n} vanilla Reber runs reached string accuracy >= {STRING_SUCCESS:.0%}: rate {x / n:.0%}, "
            f"Wilson 95 % [{q['lo']:.0%}, {q['hi']:.0%}]; median string accuracy {acc.median():.1%}"
            f"{_improving(g)}.", rates[rates["scope"] == scope]))
    return c


# ---------------------------------------------------------------------- claim 2
RULE_2 = Rule(
    measure=(f"Per recipe (and training budget), over the embedded-Reber runs of vanilla k=18 and GRU k=10: a run "
             f"succeeds when the test outer T/P accuracy of its selected model is >= {OUTER_SUCCESS:.0%}; [lo, hi] "
             f"is the Wilson 95 % interval of a cell's success rate. A failed run is {IMPROVING}. Reported beside, "
             f"not judged: the strict criterion of Hochreiter & Schmidhuber (every test string right), and every "
             f"outer accuracy against the constant-prediction baseline of the same strings (the share of the "
             f"commoner outer symbol); a run that scores exactly what predicting one outer symbol for every string "
             f"scores (at every dependency length, where the tables say) predicts a constant."),
    quantities={"gru_lo": "the GRU's lo", "gru_hi": "the GRU's hi", "vanilla_lo": "the vanilla's lo",
                "vanilla_hi": "the vanilla's hi"},
    cases=((SUPPORTED, All((Compare("gru_lo", ">", MAJORITY), Compare("vanilla_hi", "<", MAJORITY)))),
           (NOT_SUPPORTED, Compare("vanilla_lo", ">", MAJORITY)),
           # the GRU fails too: this recipe cannot tell the cells apart, whatever the seeds
           (INCONCLUSIVE, Compare("gru_hi", "<", MAJORITY))),
    otherwise=MORE_SEEDS, budget=True)


def _cells(d: pd.DataFrame, flag: str, optimistic=()) -> Dict[str, float]:
    """{<cell>_lo, <cell>_hi}: the Wilson intervals of column ``flag`` per cell; the cells in
    ``optimistic`` count their still-improving runs as successes."""
    q = {}
    for cell, g in d.groupby("cell"):
        flags = g[flag] | (g["improving"].fillna(False).astype(bool) if cell in optimistic else False)
        q.update({f"{cell}_{k}": v for k, v in _interval(flags).items()})
    return q


UNKNOWN_BASELINE = (" The constant-prediction baseline is not in these tables (written before lksweep recorded the "
                    "sets' composition): it is at least 50 %, so an accuracy near 50 % may be a constant prediction.")


def _baseline(g: pd.DataFrame) -> str:
    """One cell's test outer accuracy against the constant-prediction baseline, as a clause."""
    acc, share = g["outer_accuracy"], g["constant"]
    if share.isna().all():
        return f"median test outer accuracy {acc.median():.1%}"
    at = int(g["at_constant"].fillna(False).astype(bool).sum())
    return (f"median test outer accuracy {acc.median():.1%} against {share.median():.1%} for the best constant "
            f"prediction of the same strings; {at} of {len(g)} run(s) predict a constant")


def claim2(runs: Optional[pd.DataFrame], epochs: Optional[pd.DataFrame] = None,
           lengths: Optional[pd.DataFrame] = None, claim: Optional[Claim] = None) -> Judged:
    c = Judged(claim or CLAIMS[2])
    rule = c.claim.rules[0]
    d, rates = success_rates(runs, "embedded-reber", ["cell"], epochs)
    if d is None:
        return c
    d["constant"] = constant_share(d, lengths)
    d["at_constant"] = predicts_constant(d, lengths)
    strict = rate_summary(d, ["scope", "cell"], "strict").set_index(["scope", "cell"])
    for scope, g in rates.groupby("scope", sort=True):
        runs_here = d[d["scope"] == scope]
        by = {r.cell: r for r in g.itertuples()}
        if "vanilla" not in by or "gru" not in by:
            c.findings.append(Finding(scope, NOT_MEASURED, f"only {', '.join(by)} runs under this recipe.", g))
            continue
        cells = runs_here[runs_here["cell"].isin(["vanilla", "gru"])]
        alternatives = [_cells(cells, "success", o) for o in (("gru",), ("vanilla",), ("gru", "vanilla"))]
        verdict = rule.decide(_cells(cells, "success"), alternatives)
        per_cell = cells.groupby("cell").agg(
            median_outer=("outer_accuracy", "median"), constant=("constant", "median"),
            at_constant=("at_constant", lambda s: int(s.fillna(False).astype(bool).sum())),
            improving=("improving", lambda s: int(s.fillna(False).astype(bool).sum()))).reset_index()
        for which in ("train", "val"):       # the other sets, where the runs table gives their baseline
            share = constant_share(cells, None, which)
            if share.notna().any():
                per_cell = per_cell.merge(cells.assign(acc=outer_score(cells, which), base=share).groupby("cell").agg(
                    **{f"median_{which}_outer": ("acc", "median"), f"{which}_constant": ("base", "median")}),
                    on="cell")
        table = (g.merge(strict.loc[scope].add_prefix("strict_").reset_index(), on="cell")
                 .merge(per_cell, on="cell"))
        v, gr = by["vanilla"], by["gru"]
        said = {cell: _baseline(cells[cells["cell"] == cell]) + _improving(cells[cells["cell"] == cell])
                for cell in ("vanilla", "gru")}
        c.findings.append(Finding(
            scope, verdict,
            f"success (test outer T/P accuracy >= {OUTER_SUCCESS:.0%}): GRU {_fmt_rate(gr)}, vanilla {_fmt_rate(v)} "
            f"(Wilson 95 %); strict (every test string right): GRU {_fmt_rate(strict.loc[(scope, 'gru')])}, "
            f"vanilla {_fmt_rate(strict.loc[(scope, 'vanilla')])}. Vanilla: {said['vanilla']}. GRU: {said['gru']}."
            + (UNKNOWN_BASELINE if cells["constant"].isna().all() else ""), table))
    return c


# ---------------------------------------------------------------------- claim 3
RULE_3A = Rule(
    label="(a)",
    measure=(f"The distributions are alike: per recipe and task, over all |dloss/dθ| coefficients of every training "
             f"example (trained models; pooled histograms, 50 bins per decade), leaving out the structural zeros "
             f"(input-weight coefficients of symbols absent from a string, exactly 0 by construction; counted "
             f"apart), the distance between the two cells' median |g| in decades, and the differences between "
             f"their shares of vanishing (< {_power(GRAD_VANISH)}) and of exploding (> {_power(GRAD_EXPLODE)}) coefficients."),
    quantities={"decades": "the medians' distance", "vanishing": "the vanishing shares' difference",
                "exploding": "the exploding shares' difference"},
    cases=((SUPPORTED, All((Compare("decades", "<=", GRAD_DECADES, fmt="{:g} decade(s)"),
                            Compare("vanishing", "<", GRAD_TAIL, fmt="{:.0%}"),
                            Compare("exploding", "<", GRAD_TAIL, fmt="{:.0%}")))),),
    otherwise=NOT_SUPPORTED)
RULE_3B = Rule(
    label="(b)",
    measure=(f"So gradients do not explain the failure: per task, the vanilla's loss of learning signal with "
             f"distance before anything was learned, its decay: the decades between the pooled median "
             f"||dloss_T/dh_{{T-d}}|| at d = 0 and at the largest d that at least {REACH:.0%} of the training "
             f"strings reach under every recipe (loss_T: the loss of the step predicting the outer symbol, or the "
             f"final E on Reber), at initialisation. The recipes where the vanilla learns (its claim-2 success "
             f"interval above {MAJORITY:.0%}) are set against those where it fails (below). The decay after "
             f"training is reported beside and not judged: it follows what the model learned, a consequence and not "
             f"a cause."),
    quantities={"most": "the largest excess of the initial decay under a recipe where the vanilla fails over "
                        "that under one where it learns",
                "least": "the smallest such excess"},
    cases=((NOT_SUPPORTED, Compare("least", ">", SEPARATE, fmt="{:g} decade")),
           (SUPPORTED, Compare("most", "<=", SEPARATE, fmt="{:g} decade"))),
    otherwise=INCONCLUSIVE)


def gradient_stats(rows: pd.DataFrame) -> Dict:
    """Median, shares of vanishing / exploding |g| and the 99th percentile of the pooled histograms
    of ``rows``, the structural zeros (column ``structural_zeros``, where the table has it) left out."""
    h = hist.pooled(rows)
    known = "structural_zeros" in rows.columns and rows["structural_zeros"].notna().all()
    structural = int(rows["structural_zeros"].sum()) if known else None
    h[0] -= structural or 0
    small, big = hist.shares(h, GRAD_VANISH, GRAD_EXPLODE)
    return {"median": hist.quantile(h, 0.5), "vanishing": float(small), "exploding": float(big),
            "exact zeros": float(h[0] / max(h.sum(), 1)), "q99": hist.quantile_text(h, 0.99),
            "coefficients": int(h.sum()), "structural zeros": structural, "runs": int(rows["run_id"].nunique())}


def _structural(v: Dict, r: Dict) -> str:
    if v["structural zeros"] is None or r["structural zeros"] is None:
        return ("; structural zeros are not counted in this table (written before lksweep counted them): the "
                "shares include them")
    return (f"; left out: {v['structural zeros']:,} and {r['structural zeros']:,} structural zeros (input-weight "
            f"coefficients of symbols absent from a string)")


def claim3(grads: Optional[pd.DataFrame], runs: Optional[pd.DataFrame] = None,
           claim: Optional[Claim] = None) -> Judged:
    c = Judged(claim or CLAIMS[3])
    rule_a, rule_b = c.claim.rules
    if grads is None:
        return c
    g = grads[grads["quantity"] == "param"]
    stage = "trained" if (g["stage"] == "trained").any() else "init"
    g = g[g["stage"] == stage]
    for (task, recipe), d in g.groupby(["task", "recipe"], sort=True):
        stats = {cell: gradient_stats(d[d["cell"] == cell]) for cell in ("vanilla", "gru") if (d["cell"] == cell).any()}
        if len(stats) < 2:
            continue  # e.g. Reber, where the paper trains only the vanilla cell
        table = pd.DataFrame(stats).T.rename_axis("cell").reset_index()
        v, r = stats["vanilla"], stats["gru"]
        q = {"decades": abs(_log(v["median"]) - _log(r["median"])), "vanishing": abs(v["vanishing"] - r["vanishing"]),
             "exploding": abs(v["exploding"] - r["exploding"])}
        c.findings.append(Finding(
            f"(a) recipe {recipe}, {task} ({stage} models)", rule_a.decide(q),
            f"median |g|: vanilla {v['median']:.3g}, GRU {r['median']:.3g} ({q['decades']:.2f} decades apart); "
            f"share < {_power(GRAD_VANISH)}: {v['vanishing']:.1%} vs {r['vanishing']:.1%}; "
            f"share > {_power(GRAD_EXPLODE)}: {v['exploding']:.1%} vs {r['exploding']:.1%}; 99th percentile "
            f"{v['q99']} vs {r['q99']} ({v['coefficients']:,} and {r['coefficients']:,} coefficients"
            f"{_structural(v, r)}).", table))
    hidden = grads[grads["quantity"] == "hidden"]
    for task, h in hidden.groupby("task", sort=True):
        finding = hidden_finding(h, runs, rule_b, f"(b) {task}")
        if finding is not None:
            c.findings.append(finding)
    return c


def _log(x: float) -> float:
    return math.log10(max(x, 1e-300))


def reach_distance(hidden: pd.DataFrame) -> int:
    """The largest distance d that at least REACH of a run's training strings reach (a row's n
    at d counts the strings with a step d before the loss term; at d = 0, all of them)."""
    n = hidden.groupby(["run_id", "distance"])["n"].sum().groupby("distance").min()
    return int(n.index[n >= REACH * n.loc[0]].max())


def decay(hidden: pd.DataFrame, d: int) -> float:
    """Decades between the pooled median ||dloss_T/dh|| at distance 0 and at ``d``."""
    at = {dist: hist.quantile(hist.pooled(hidden[hidden["distance"] == dist]), 0.5) for dist in (0, d)}
    return _log(at[0]) - _log(at[d])


def outcome(flags: pd.Series) -> str:
    """'learns' or 'fails' where the Wilson interval of the success rate lies above or below
    MAJORITY, else 'undecided'."""
    q = _interval(flags)
    return "learns" if q["lo"] > MAJORITY else "fails" if q["hi"] < MAJORITY else "undecided"


def hidden_finding(hidden: pd.DataFrame, runs: Optional[pd.DataFrame], rule: Rule, scope: str) -> Optional[Finding]:
    """Claim 3(b) on the ``hidden`` rows of one task (None without both cells at initialisation)."""
    init = hidden[hidden["stage"] == "init"]
    recipes = sorted(r for r, g in init.groupby("recipe") if {"vanilla", "gru"} <= set(g["cell"]))
    if not recipes:
        return None
    hidden = hidden[hidden["recipe"].isin(recipes)]
    d = min(reach_distance(g) for _, g in hidden.groupby(["recipe", "cell"]))
    rated = None if runs is None else paper_models(runs, hidden["task"].iloc[0])
    rows = []
    for recipe in recipes:
        row = {"recipe": recipe, "distance": d}
        vanilla = None if rated is None else rated[(rated["recipe"] == recipe) & (rated["cell"] == "vanilla")]
        row["vanilla"] = "not run" if vanilla is None or vanilla.empty else outcome(success_flags(vanilla))
        for stage in ("init", "trained"):
            for cell in ("vanilla", "gru"):
                rows_here = hidden[(hidden["recipe"] == recipe) & (hidden["stage"] == stage) & (hidden["cell"] == cell)]
                row[f"{cell} decay, {stage}"] = decay(rows_here, d) if len(rows_here) else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    learn = table.loc[table["vanilla"] == "learns", "vanilla decay, init"].to_numpy()
    fail = table.loc[table["vanilla"] == "fails", "vanilla decay, init"].to_numpy()
    diff = (fail[:, None] - learn[None, :]).ravel()
    q = {"most": float(diff.max()) if diff.size else math.nan, "least": float(diff.min()) if diff.size else math.nan}
    said = "; ".join(f"{r['recipe']} (vanilla {r['vanilla']}): {r['vanilla decay, init']:.2f} "
                     f"(GRU {r['gru decay, init']:.2f}), trained {r['vanilla decay, trained']:.2f} "
                     f"(GRU {r['gru decay, trained']:.2f})" for r in rows)
    why = "" if diff.size else (" Not judged: no recipe here where the vanilla learns and one where it fails"
                                + ("" if runs is not None else " (no runs table)") + ".")
    return Finding(scope, rule.decide(q),
                   f"decades lost by the median ||dloss_T/dh_(T-d)|| between d = 0 and d = {d}, vanilla at "
                   f"initialisation (GRU), and after training, a consequence of what was learned: {said}.{why}", table)


# ---------------------------------------------------------------------- claim 4
RULE_4 = Prose(
    f"Per init and per k, on decay rates r of log median D(l) per step (memory table, float64 rows; 95 % "
       f"intervals [lo, hi]: t-interval over seed ensembles, or one ensemble's order-statistic interval; see "
       f"analysis.rates). At each k measured for both cells: chaotic if either cell's median largest Lyapunov "
       f"exponent is > 0 (nearby states separate, so D staying away from 0 is not memory of the first symbol); "
       f"where the exponent was not measured, the finding says so. Otherwise, where the vanilla's interval lies "
       f"below 0, the ratio r_vanilla / r_GRU (how many times slower the GRU's D decays) gets the interval of every "
       f"pair of rates in the two intervals (infinite where the GRU's interval reaches 0). Not supported if even "
       f"the vanilla's fastest plausible decay would shrink D by less than a factor e over the l measured (vanilla "
       f"lo >= -1/l_max: its D does not vanish there), or if the GRU decays too and less than {SLOWER:g} times "
       f"slower (the ratio's interval lies at or below {SLOWER:g}); supported if the ratio's interval lies at or "
       f"above {SLOWER:g} (the GRU's D does not decay, or at least {SLOWER:g} times slower); inconclusive "
       f"otherwise. The {SLOWER:g}x threshold is a choice: each finding gives the ratio and the verdicts at "
       f"{' and '.join(f'{x:g}x' for x in SENSITIVITY)}. Neighbouring k with the same verdict form one range, so the "
       f"ranges say where the claim holds and where it fails.")


def rate_ratio(v_lo: float, v_hi: float, g_lo: float, g_hi: float):
    """(lo, hi): how many times slower the GRU's D decays than the vanilla's, r_vanilla / r_GRU, over every pair of
    rates in the two 95 % intervals (inf where the GRU's interval reaches 0: it may not decay at all); None unless the
    vanilla's interval lies below 0."""
    if not v_hi < 0:
        return None
    if g_hi >= 0:
        return (v_hi / g_lo if g_lo < 0 else math.inf), math.inf
    return v_hi / g_lo, v_lo / g_hi


def rate_verdict(v_lo: float, v_hi: float, g_lo: float, g_hi: float, l_max: int, slower: float = SLOWER,
                 lyapunov=(math.nan, math.nan)) -> str:
    """Claim 4 at one k from the two cells' decay-rate intervals (RULE_4) over l <= l_max, the GRU counting as
    keeping D when it decays at least ``slower`` times slower; ``lyapunov``: the two cells' median exponents
    (nan where not measured)."""
    if any(lam > 0 for lam in lyapunov):
        return CHAOTIC
    ratio = rate_ratio(v_lo, v_hi, g_lo, g_hi)
    if v_lo * l_max >= -1 or (ratio is not None and ratio[1] <= slower):
        return NOT_SUPPORTED
    if ratio is not None and ratio[0] >= slower:
        return SUPPORTED
    return INCONCLUSIVE


def _fmt_decay(r) -> str:
    return f"{r.rate:.3g} [{r.lo:.3g}, {r.hi:.3g}]"


def _tau(r) -> str:
    """The time constant, where the interval says D decays."""
    return f" (time constant {time_constant(r.rate):.3g} steps)" if r.hi < 0 else ""


def _fmt_ratio(row) -> str:
    if math.isnan(row["ratio lo"]):
        return "no ratio (the vanilla's D may not decay)"
    point = "inf" if math.isinf(row["ratio"]) else f"{row['ratio']:.3g}"
    hi = "inf" if math.isinf(row["ratio hi"]) else f"{row['ratio hi']:.3g}"
    return f"the GRU decays {point} times slower [{row['ratio lo']:.3g}, {hi}]"


def _said(row) -> str:
    """One k's verdict in words: the ratio and what would change the verdict, or the exponents that rule it out."""
    if row["verdict"] == CHAOTIC:
        return (f"median λ per step vanilla {row['vanilla λ']:.3g}, GRU {row['GRU λ']:.3g}: "
                f"chaotic, D does not tell memory from chaos")
    text = _fmt_ratio(row)
    if row["verdict"] == NOT_SUPPORTED and row["ratio hi"] <= SLOWER:
        text = f"the GRU decays too, {row['ratio']:.3g} times slower [{row['ratio lo']:.3g}, {row['ratio hi']:.3g}]"
    other = {f"{x:g}x": row[f"verdict at {x:g}x"] for x in SENSITIVITY if row[f"verdict at {x:g}x"] != row["verdict"]}
    text += ("; " + ", ".join(f"verdict at {x}: {v}" for x, v in other.items()) if other
             else f"; the same verdict at {' and '.join(f'{x:g}x' for x in SENSITIVITY)}")
    if math.isnan(row["vanilla λ"]) or math.isnan(row["GRU λ"]):
        text += "; Lyapunov exponent not measured, so D alone does not tell memory from chaos here"
    return text


def claim4(memory: Optional[pd.DataFrame], claim: Optional[Claim] = None) -> Judged:
    c = Judged(claim or CLAIMS[4])
    if memory is None:
        return c
    s = pick_dtype(decay_summary(memory))
    for init, si in s.groupby("init", sort=True):
        by = {cell: si[si["cell"] == cell].set_index("k") for cell in ("vanilla", "gru")}
        ks = sorted(set(by["vanilla"].index) & set(by["gru"].index))
        if not ks:
            c.findings.append(Finding(f"init {init}", NOT_MEASURED, "the two cells were not measured at a common k."))
            continue
        rows = []
        for k in ks:
            v, g = by["vanilla"].loc[k], by["gru"].loc[k]
            lam = (v["lyapunov_q50"], g["lyapunov_q50"])
            ratio = rate_ratio(v["lo"], v["hi"], g["lo"], g["hi"]) or (math.nan, math.nan)
            rows.append({
                "k": k, "vanilla rate": v["rate"], "vanilla lo": v["lo"], "vanilla hi": v["hi"],
                "GRU rate": g["rate"], "GRU lo": g["lo"], "GRU hi": g["hi"],
                "ratio": v["rate"] / g["rate"] if g["rate"] < 0 else math.inf, "ratio lo": ratio[0],
                "ratio hi": ratio[1], "vanilla λ": lam[0], "GRU λ": lam[1],
                "verdict": rate_verdict(v["lo"], v["hi"], g["lo"], g["hi"], v["l_max"], SLOWER, lam),
                **{f"verdict at {x:g}x": rate_verdict(v["lo"], v["hi"], g["lo"], g["hi"], v["l_max"], x, lam)
                   for x in SENSITIVITY},
                "vanilla l_half": v["l_half"], "GRU l_half": g["l_half"]})
        table = pd.DataFrame(rows).set_index("k", drop=False)
        for part in runs_of(ks, table["verdict"].get):
            v, g = by["vanilla"].loc[part], by["gru"].loc[part]
            scope = f"init {init}, k {part[0]}-{part[-1]}" if len(part) > 1 else f"init {init}, k {part[0]}"
            ends = "; ".join(f"k={k}: vanilla {_fmt_decay(v.loc[k])}{_tau(v.loc[k])}, GRU {_fmt_decay(g.loc[k])}"
                             f"{_tau(g.loc[k])}, {_said(table.loc[k])}" for k in dict.fromkeys((part[0], part[-1])))
            K = part[-1]
            c.findings.append(Finding(
                scope, Verdict(table.loc[part[0], "verdict"]),   # pandas keeps a str Enum's value as a plain str
                f"decay rate of log median D per step ({int(v.loc[K, 'n_seeds'])} ensemble(s), "
                f"{int(v.loc[K, 'n_draws'] / v.loc[K, 'n_seeds'])} draws each, l <= {int(v.loc[K, 'l_max'])}): {ends}.",
                table.loc[part].reset_index(drop=True)))
    return c


# ---------------------------------------------------------------------- beyond the paper: the trainability map
PREDICTS = 0.5            # claim 5: a rank correlation this strong between L50 and the initial time constant
RULE_5 = Rule(
    measure=(f"Per recipe (and training budget), over the (cell, k, init) points of the embedded-Reber runs with a lag "
             f"range and of the memory table at the same cell, k and init: L50 is the lag (the centre of a run's "
             f"lag range) at which half the seeds succeed (test outer accuracy >= {OUTER_SUCCESS:.0%}, as for claim "
             f"2), from a maximum-likelihood logistic fit of success on lag (slope between -1/{T.S_MIN:g} per "
             f"symbol and 0); the memory at initialisation is the time constant -1/rate of median D (infinite where "
             f"D does not decay). ρ is Spearman's rank correlation between them over the points; a censored L50 "
             f"(the observed success rate above one half at every lag trained, or below at every lag) enters the "
             f"ranks as larger, or smaller, than every measured L50, tied with those censored the same way (so a "
             f"shared lag grid is assumed), and an infinite time constant ranks above every finite one. [lo, hi] is its 95 % "
             f"percentile interval over {T.BOOT} bootstrap replicates, each resampling the seeds of every point "
             f"(its L50) and the ensembles of its memory rows (its time constant): the measurement's spread, not "
             f"a resampling of the cells and gains. With fewer than {T.MIN_POINTS} points, or every L50 or time "
             f"constant tied, ρ is not defined; its interval neither where more than 2.5 % of the "
             f"replicates tie all their ranks. A failed run is {IMPROVING}. Reported beside, not judged: ρ "
             f"between L50 and the lag at which decodable falls to {T.DECODED:g} (memory under noise, which tells "
             f"memory from chaos), and the median Lyapunov exponent."),
    quantities={"rho_lo": "lo", "rho_hi": "hi",
                "measured": "the points whose L50 lies within the lags trained (not censored)"},
    cases=((SUPPORTED, All((Compare("rho_lo", ">", PREDICTS, fmt="{:g}"),
                            Compare("measured", ">=", T.MIN_POINTS, fmt="{:g}")))),
           (NOT_SUPPORTED, All((Compare("rho_hi", "<", PREDICTS, fmt="{:g}"),
                                Compare("measured", ">=", T.MIN_POINTS, fmt="{:g}")))),
           # censored points tie: with few measured L50 the ranks cannot say how memory orders them
           (INCONCLUSIVE, Compare("measured", "<", T.MIN_POINTS, fmt="{:g}"))),
    otherwise=MORE_SEEDS, budget=True)


def _rho(c: Dict[str, float]) -> str:
    return f"ρ = {c['rho']:.2f} [{c['rho_lo']:.2f}, {c['rho_hi']:.2f}] over {c['points']} points"


def claim5(runs: Optional[pd.DataFrame], epochs: Optional[pd.DataFrame] = None,
           memory: Optional[pd.DataFrame] = None, lyapunov: Optional[pd.DataFrame] = None,
           decodable: Optional[pd.DataFrame] = None, claim: Optional[Claim] = None) -> Judged:
    c = Judged(claim or MAP_CLAIM)
    rule = c.claim.rules[0]
    if runs is None or memory is None:
        return c
    m = T.trainability_map(runs, memory, lyapunov, decodable, epochs)
    if m.empty:
        return c
    longer = (T.trainability_map(runs, memory, lyapunov, decodable, epochs, optimistic=True)
              if m["improving"].any() else None)
    for scope, g in m.groupby("scope", sort=True):
        q = T.correlation(g)
        alt = [] if longer is None else [T.correlation(longer[longer["scope"] == scope])]
        verdict = rule.decide(q, alt)
        known = g[g["L50"].notna() & g["tau"].notna()]
        censored = ", ".join(f"{n} {side}" for n, side in (
            (int((known["L50"] == math.inf).sum()), "beyond the longest lag"),
            (int((known["L50"] == -math.inf).sum()), "short of the shortest")) if n)
        grids = {tuple(x) for x in g["lags"]}
        capped, improving = int(g["capped"].sum()), int(g["improving"].sum())
        beside = T.correlation(g, "decodable_lag")
        said = (f"Spearman's {_rho(q)} (L50 against the initial time constant of D)"
                + f"; {q['measured']} of {len(known)} points have an L50 within the lags trained"
                + (f" (censored: {censored})" if censored else "")
                + ("" if len(grids) == 1 else "; the points were trained on different lag grids, so censored L50 "
                   "do not rank reliably")
                + (f". Not defined: {len(known)} point(s) with both L50 and a time constant"
                   if math.isnan(q["rho"]) else "")
                + ("; each time constant comes from one ensemble, so the interval carries the seeds' spread only"
                   if len(known) and known["ensembles"].max() == 1 else "")
                + f". Beside, not judged: ρ against the lag at which decodable falls to {T.DECODED:g}: "
                + (f"{beside['rho']:.2f} over {beside['points']} points" if not math.isnan(beside["rho"])
                   else "not measured (no decodable rows)" if g["decodable_lag"].isna().all()
                   else f"not defined ({beside['points']} points)")
                + f". Training budget: {capped} of {int(g['runs'].sum())} runs stopped by the epoch cap"
                + (f", {improving} of them failed while still improving" if improving else "")
                + ("" if longer is None else f" (counted as successes: {_rho(alt[0])})") + ".")
        table = g[
            ["cell", "k", "init", "seeds", "L50_text", "L50_interval", "tau", "tau_lo", "tau_hi", "lyapunov",
             "decodable_lag", "capped", "improving"]].rename(columns={"L50_text": "L50", "L50_interval": "L50 95 %"})
        c.findings.append(Finding(scope, verdict, said, table.reset_index(drop=True)))
    if not c.findings:
        c.findings.append(Finding("—", NOT_MEASURED, "no embedded-Reber runs with a lag range."))
    return c


MAP_CLAIM = Claim(5, "A cell's memory at initialisation predicts the longest dependency training can learn.",
                  ("runs", "epochs", "memory", "lyapunov", "decodable"), (RULE_5,), claim5)

CLAIMS = {c.number: c for c in (
    Claim(1, "A vanilla RNN (k=5) learns Reber's grammar.", ("runs", "epochs"), (RULE_1,), claim1),
    Claim(2, "On embedded Reber, the vanilla RNN (k=18) fails where the GRU (k=10) succeeds.",
          ("runs", "epochs", "lengths"), (RULE_2,), claim2),
    Claim(3, "The gradient coefficient distributions of the two cells are alike, so unstable gradients do not "
             "explain the vanilla failure.", ("gradients", "runs"), (RULE_3A, RULE_3B), claim3),
    Claim(4, "D(l,k) vanishes for the vanilla RNN as l grows, but not for the GRU.", ("memory",), (RULE_4,), claim4),
    MAP_CLAIM,
)}


def judge(tables) -> List[Judged]:
    """Every claim (the paper's four, and claim 5 beyond it) against an output directory's tables
    (``analysis.registry.Tables``)."""
    return [claim(tables) for claim in CLAIMS.values()]
