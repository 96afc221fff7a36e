"""The paper's four claims, and the explicit rules that turn this sweep's tables into verdicts.

Verdicts: ``supported``, ``not supported``, ``inconclusive`` (measured, but the intervals
do not decide: more seeds would), ``not measured`` (the table or the rows are missing) and,
for claim 4, ``chaotic`` (D cannot tell memory from chaos there).
Every rule is a function of the tables below and is printed, word for word, in the report
(``RULES``). Claims 1-3 are judged separately for each training recipe (a protocol and the
ingredients that differ from its own; runs with other budgets are never pooled), claim 4 for
each parameter init and k (neighbouring k with one verdict reported as one range). Training
scores are those of each run's selected model (best validation epoch) on its test set.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pandas as pd

from . import hist
from .rates import decay_summary, runs_of, time_constant
from .registry import Skip, Tables
from .success import OUTER_SUCCESS, STRING_SUCCESS, paper_models, success_flags
from .tables import pick_dtype, rate_summary, wilson

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_MEASURED = "supported", "not supported", "inconclusive", "not measured"

# Thresholds of the rules (module constants so tests and readers see one truth).
MAJORITY = 0.5
SLOWER = 10.0             # claim 4: the GRU's D decays at least this many times slower than the vanilla's
SENSITIVITY = (5.0, 20.0)  # claim 4: the thresholds its verdicts are also stated at
CHAOTIC = "chaotic"       # claim 4 at a k where a cell's median Lyapunov exponent is > 0: D cannot tell memory from chaos
GRAD_DECADES = 1.0        # gradient medians within one decade ...
GRAD_TAIL = 0.10          # ... and shares of vanishing / exploding coefficients within 10 points
GRAD_VANISH, GRAD_EXPLODE = 1e-8, 1e2
REACH = 0.5               # claim 3(b) judges the distance that at least this share of training strings reach

CLAIMS = {
    1: "A vanilla RNN (k=5) learns Reber's grammar.",
    2: "On embedded Reber, the vanilla RNN (k=18) fails where the GRU (k=10) succeeds.",
    3: "The gradient coefficient distributions of the two cells are alike, so unstable "
       "gradients do not explain the vanilla failure.",
    4: "D(l,k) vanishes for the vanilla RNN as l grows, but not for the GRU.",
}

RULES = {
    1: f"Per recipe (and training budget), over the Reber runs of the vanilla cell with k=5: a run succeeds when "
       f"the test string accuracy of its selected model is >= {STRING_SUCCESS:.0%}. Supported if the Wilson 95 % "
       f"interval of the success rate lies above {MAJORITY:.0%}; not supported if it lies below; inconclusive "
       f"otherwise.",
    2: f"Per recipe (and training budget), over the embedded-Reber runs of vanilla k=18 and GRU k=10: a run "
       f"succeeds when the test outer T/P accuracy of its selected model is >= {OUTER_SUCCESS:.0%}. Supported only "
       f"if the GRU's Wilson 95 % interval of the success rate lies above {MAJORITY:.0%} and the vanilla's below "
       f"{MAJORITY:.0%}; not supported if the vanilla's interval lies above {MAJORITY:.0%} (vanilla reliably "
       f"learns the outer symbol); inconclusive otherwise (e.g. the GRU does not reliably learn it either under "
       f"this recipe, or too few seeds). The strict criterion of Hochreiter & Schmidhuber (every test string "
       f"right) is reported beside, not judged.",
    3: f"Two findings per recipe and task. (a) The distributions are alike: over all |dloss/dθ| coefficients of "
       f"every training example (trained models; pooled histograms, 50 bins per decade), supported if the two "
       f"cells' median |g| are within {GRAD_DECADES:g} decade(s) and their shares of vanishing (< {GRAD_VANISH:g}) "
       f"and of exploding (> {GRAD_EXPLODE:g}) coefficients differ by less than {GRAD_TAIL:.0%} points; not "
       f"supported otherwise. (b) So gradients do not explain the failure: judged on the gradient reaching the "
       f"hidden state, ||dloss_T/dh_{{T-d}}|| (loss_T: the loss of the step predicting the outer symbol, or the "
       f"final E on Reber), at the largest distance d that at least {REACH:.0%} of the training strings reach "
       f"(the typical span of the dependency), pooled median per cell, at initialisation and for the trained "
       f"models. Supported if at both stages the vanilla's median is no more than {GRAD_DECADES:g} decade(s) "
       f"below the GRU's; not supported if at both stages it is more than {GRAD_DECADES:g} decade(s) below "
       f"(the learning signal for the dependency vanishes in the vanilla cell); inconclusive otherwise.",
    4: f"Per init and per k, on decay rates r of log median D(l) per step (memory table, float64 rows; 95 % "
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
       f"ranges say where the claim holds and where it fails.",
}


@dataclass
class Finding:
    scope: str                      # e.g. "recipe paper", "init normal"
    verdict: str
    summary: str                    # one sentence with the numbers
    table: Optional[pd.DataFrame] = None


@dataclass
class Claim:
    number: int
    statement: str
    rule: str
    findings: List[Finding] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        vs = {f.verdict for f in self.findings}
        if not vs:
            return NOT_MEASURED
        return vs.pop() if len(vs) == 1 else "depends: " + ", ".join(f"{f.scope}: {f.verdict}" for f in self.findings)


def _get(tables: Tables, table: str) -> Optional[pd.DataFrame]:
    """``table`` from the report's tables, None when it is missing or empty."""
    try:
        return tables.get(table)
    except Skip:
        return None


def _fmt_rate(r) -> str:
    return f"{int(r.successes)}/{int(r.n)} = {r.rate:.0%} [{r.lo:.0%}, {r.hi:.0%}]"


# ---------------------------------------------------------------------- claim 1
def success_rates(runs: Optional[pd.DataFrame], task: str, by: List[str]):
    """(runs, rates): the paper's models on ``task`` with their ``success`` (``success_flags``),
    and Wilson rates per scope and ``by``; (None, None) if none ran."""
    d = None if runs is None else paper_models(runs, task)
    if d is None or d.empty:
        return None, None
    d["success"] = success_flags(d)
    return d, rate_summary(d, ["scope", *by], "success")


def claim1(runs: Optional[pd.DataFrame]) -> Claim:
    c = Claim(1, CLAIMS[1], RULES[1])
    d, rates = success_rates(runs, "reber", ["k"])
    if d is None:
        return c
    for scope, g in rates.groupby("scope", sort=True):
        x, n = int(g["successes"].sum()), int(g["n"].sum())
        lo, hi = wilson(x, n)
        verdict = SUPPORTED if lo > MAJORITY else NOT_SUPPORTED if hi < MAJORITY else INCONCLUSIVE
        acc = d[d["scope"] == scope]["string_accuracy"]
        c.findings.append(Finding(
            scope, verdict,
            f"{x}/{n} vanilla Reber runs reached string accuracy >= {STRING_SUCCESS:.0%}: rate {x / n:.0%}, "
            f"Wilson 95 % [{lo:.0%}, {hi:.0%}]; median string accuracy {acc.median():.1%}.", g))
    return c


# ---------------------------------------------------------------------- claim 2
def claim2_verdict(gru, vanilla) -> str:
    """The rule of claim 2 on the two cells' Wilson intervals (rows with lo, hi)."""
    if gru.lo > MAJORITY and vanilla.hi < MAJORITY:
        return SUPPORTED
    return NOT_SUPPORTED if vanilla.lo > MAJORITY else INCONCLUSIVE


def claim2(runs: Optional[pd.DataFrame]) -> Claim:
    c = Claim(2, CLAIMS[2], RULES[2])
    d, rates = success_rates(runs, "embedded-reber", ["cell"])
    if d is None:
        return c
    strict = rate_summary(d, ["scope", "cell"], "strict").set_index(["scope", "cell"])
    for scope, g in rates.groupby("scope", sort=True):
        by = {r.cell: r for r in g.itertuples()}
        if "vanilla" not in by or "gru" not in by:
            c.findings.append(Finding(scope, NOT_MEASURED, f"only {', '.join(by)} runs under this recipe.", g))
            continue
        v, gr = by["vanilla"], by["gru"]
        best = d[(d["scope"] == scope) & (d["cell"] == "vanilla")]["outer_accuracy"].max()
        table = g.merge(strict.loc[scope].add_prefix("strict_").reset_index(), on="cell")
        c.findings.append(Finding(
            scope, claim2_verdict(gr, v),
            f"success (test outer T/P accuracy >= {OUTER_SUCCESS:.0%}): GRU {_fmt_rate(gr)}, vanilla {_fmt_rate(v)} "
            f"(Wilson 95 %); strict (every test string right): GRU {_fmt_rate(strict.loc[(scope, 'gru')])}, "
            f"vanilla {_fmt_rate(strict.loc[(scope, 'vanilla')])}; best vanilla outer accuracy {best:.1%}.", table))
    return c


# ---------------------------------------------------------------------- claim 3
def gradient_stats(rows: pd.DataFrame) -> Dict:
    """Median and shares of vanishing / exploding |g| of the pooled histograms of ``rows``."""
    h = hist.pooled(rows)
    small, big = hist.shares(h, GRAD_VANISH, GRAD_EXPLODE)
    return {"median": hist.quantile(h, 0.5), "vanishing": float(small), "exploding": float(big),
            "coefficients": int(h.sum()), "runs": int(rows["run_id"].nunique())}


def claim3(grads: Optional[pd.DataFrame]) -> Claim:
    c = Claim(3, CLAIMS[3], RULES[3])
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
        decades = abs(_log(v["median"]) - _log(r["median"]))
        alike = (decades <= GRAD_DECADES and abs(v["vanishing"] - r["vanishing"]) < GRAD_TAIL
                 and abs(v["exploding"] - r["exploding"]) < GRAD_TAIL)
        c.findings.append(Finding(
            f"(a) recipe {recipe}, {task} ({stage} models)", SUPPORTED if alike else NOT_SUPPORTED,
            f"median |g|: vanilla {v['median']:.3g}, GRU {r['median']:.3g} ({decades:.2f} decades apart); "
            f"share < {GRAD_VANISH:g}: {v['vanishing']:.1%} vs {r['vanishing']:.1%}; "
            f"share > {GRAD_EXPLODE:g}: {v['exploding']:.1%} vs {r['exploding']:.1%} "
            f"({v['coefficients']:,} and {r['coefficients']:,} coefficients).", table))
        hidden = grads[(grads["quantity"] == "hidden") & (grads["task"] == task) & (grads["recipe"] == recipe)]
        finding = hidden_finding(hidden, f"(b) recipe {recipe}, {task}")
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


def hidden_finding(hidden: pd.DataFrame, scope: str) -> Optional[Finding]:
    """Claim 3(b) on the ``hidden`` rows of one recipe and task (None without both cells and stages)."""
    if set(hidden["cell"]) < {"vanilla", "gru"} or not {"init", "trained"} <= set(hidden["stage"]):
        return None
    d = min(reach_distance(hidden[hidden["cell"] == cell]) for cell in ("vanilla", "gru"))
    rows = []
    for stage in ("init", "trained"):
        at = hidden[(hidden["stage"] == stage) & (hidden["distance"] == d)]
        med = {cell: hist.quantile(hist.pooled(at[at["cell"] == cell]), 0.5) for cell in ("vanilla", "gru")}
        rows.append({"stage": stage, "distance": d, "vanilla median": med["vanilla"], "GRU median": med["gru"],
                     "decades vanilla below GRU": _log(med["gru"]) - _log(med["vanilla"])})
    table = pd.DataFrame(rows)
    gaps = table["decades vanilla below GRU"]
    verdict = (SUPPORTED if (gaps <= GRAD_DECADES).all() else NOT_SUPPORTED if (gaps > GRAD_DECADES).all()
               else INCONCLUSIVE)
    said = "; ".join(f"{r['stage']}: vanilla {r['vanilla median']:.3g}, GRU {r['GRU median']:.3g} "
                     f"({r['decades vanilla below GRU']:.1f} decades apart)" for r in rows)
    return Finding(scope, verdict, f"median ||dloss_T/dh_(T-d)|| at d = {d}: {said}.", table)


# ---------------------------------------------------------------------- claim 4
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
    """Claim 4 at one k from the two cells' decay-rate intervals (RULES[4]) over l <= l_max, the GRU counting as
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


def claim4(memory: Optional[pd.DataFrame]) -> Claim:
    c = Claim(4, CLAIMS[4], RULES[4])
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
                scope, table.loc[part[0], "verdict"],
                f"decay rate of log median D per step ({int(v.loc[K, 'n_seeds'])} ensemble(s), "
                f"{int(v.loc[K, 'n_draws'] / v.loc[K, 'n_seeds'])} draws each, l <= {int(v.loc[K, 'l_max'])}): {ends}.",
                table.loc[part].reset_index(drop=True)))
    return c


def judge(tables: Tables) -> List[Claim]:
    """All four claims against an output directory's tables (``analysis.registry.Tables``)."""
    runs = _get(tables, "runs")
    return [claim1(runs), claim2(runs), claim3(_get(tables, "gradients")), claim4(_get(tables, "memory"))]
