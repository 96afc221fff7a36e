"""The paper's four claims, and the explicit rules that turn this sweep's tables into verdicts.

Verdicts: ``supported``, ``not supported``, ``inconclusive`` (measured, but the intervals
do not decide: more seeds would) and ``not measured`` (the table or the rows are missing).
Every rule is a function of the tables below and is printed, word for word, in the report
(``RULES``). Claims 1-3 are judged separately for each training protocol, claim 4 for each
parameter init and range of k.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pandas as pd

from . import hist
from .rates import decay_summary, float64_rows, k_ranges, time_constant
from .success import OUTER_SUCCESS, PAPER_K, STRING_SUCCESS
from .tables import NoData, load, rate_summary, wilson

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_MEASURED = "supported", "not supported", "inconclusive", "not measured"

# Thresholds of the rules (module constants so tests and readers see one truth).
MAJORITY = 0.5
SLOWER = 10.0             # claim 4: the GRU's D decays at least this many times slower than the vanilla's
GRAD_DECADES = 1.0        # gradient medians within one decade ...
GRAD_TAIL = 0.10          # ... and shares of vanishing / exploding coefficients within 10 points
GRAD_VANISH, GRAD_EXPLODE = 1e-8, 1e2

CLAIMS = {
    1: "A vanilla RNN (k=5) learns Reber's grammar.",
    2: "On embedded Reber, the vanilla RNN (k=18) fails where the GRU (k=10) succeeds.",
    3: "The gradient coefficient distributions of the two cells are alike, so unstable "
       "gradients do not explain the vanilla failure.",
    4: "D(l,k) vanishes for the vanilla RNN as l grows, but not for the GRU.",
}

RULES = {
    1: f"Per protocol (and training budget), over the Reber runs of the vanilla cell with k=5: a run succeeds when "
       f"its string accuracy is >= {STRING_SUCCESS:.0%}. Supported if the Wilson 95 % interval of the success rate lies above "
       f"{MAJORITY:.0%}; not supported if it lies below; inconclusive otherwise.",
    2: f"Per protocol (and training budget), over the embedded-Reber runs of vanilla k=18 and GRU k=10: a run "
       f"succeeds when its outer T/P accuracy is >= {OUTER_SUCCESS:.0%}. Supported if the GRU's Wilson 95 % "
       f"interval of the success rate lies "
       f"entirely above the vanilla's; not supported if the GRU succeeds on >= {MAJORITY:.0%} of seeds and the "
       f"vanilla's rate is >= the GRU's, or if the vanilla's interval lies above {MAJORITY:.0%} (vanilla reliably "
       f"succeeds); inconclusive otherwise (e.g. neither cell learned under this training budget).",
    3: f"Per protocol and task, over all |dloss/dθ| coefficients of every training example in the gradients "
       f"table (trained models; pooled histograms, 50 bins per decade): supported if the "
       f"two cells' median |g| are within {GRAD_DECADES:g} decade(s) and their shares of vanishing "
       f"(< {GRAD_VANISH:g}) and of exploding (> {GRAD_EXPLODE:g}) coefficients differ by less than "
       f"{GRAD_TAIL:.0%} points; not supported otherwise.",
    4: f"Per init and per range of k (1-4, 5-16, 17-64, 65-256, above), on decay rates r of log median D(l) per "
       f"step (memory table, float64 rows; 95 % intervals [lo, hi]: t-interval over seed ensembles, or one "
       f"ensemble's order-statistic interval; see analysis.rates). At each k measured for both cells: supported if "
       f"the vanilla's interval lies below 0 (its D decays) and the GRU's reaches 0 or above (it does not) or its "
       f"fastest plausible decay is at most 1/{SLOWER:g} of the vanilla's slowest (GRU lo >= vanilla hi / {SLOWER:g}); "
       f"not supported if even the vanilla's fastest plausible decay would shrink D by less than a factor e over the "
       f"l measured (vanilla lo >= -1/l_max: its D does not vanish there), or if both decay alike: "
       f"the GRU's interval lies below 0 and even its slowest plausible decay is at least 1/{SLOWER:g} of the "
       f"vanilla's fastest (GRU hi <= vanilla lo / {SLOWER:g}); inconclusive otherwise. A range is supported if "
       f"every k in it is, not supported if some k is, inconclusive otherwise.",
}


@dataclass
class Finding:
    scope: str                      # e.g. "protocol paper", "init normal"
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


def _try(out, table, **filters) -> Optional[pd.DataFrame]:
    try:
        df = load(out, table, **filters)
    except NoData:
        return None
    return df if len(df) else None


BUDGET = ["n_train", "max_epochs"]


def paper_models(runs: pd.DataFrame, task: str) -> pd.DataFrame:
    """The runs of the paper's models on ``task`` (vanilla k=5 on Reber; vanilla k=18 and
    GRU k=10 on embedded Reber), with a ``scope`` column: the protocol, and the training
    budget when a protocol was run with several (so that budgets are never pooled)."""
    d = runs[runs["task"] == task]
    d = d[[PAPER_K.get((task, c)) == k for c, k in zip(d["cell"], d["k"])]].copy()
    if d.empty:
        return d
    several = d.groupby("protocol")[BUDGET].nunique().max(axis=1) > 1
    d["scope"] = [f"protocol {p}" + (f" ({n} strings, <= {m} epochs)" if several[p] else "")
                  for p, n, m in zip(d["protocol"], d["n_train"], d["max_epochs"])]
    return d


def _fmt_rate(r) -> str:
    return f"{int(r.successes)}/{int(r.n)} = {r.rate:.0%} [{r.lo:.0%}, {r.hi:.0%}]"


# ---------------------------------------------------------------------- claim 1
def success_rates(runs: Optional[pd.DataFrame], task: str, column: str, threshold: float, by: List[str]):
    """(runs, rates): the paper's models on ``task``, a run succeeding when ``column`` >=
    ``threshold``, and Wilson rates per scope, protocol and ``by``; (None, None) if none ran."""
    d = None if runs is None else paper_models(runs, task)
    if d is None or d.empty:
        return None, None
    d["success"] = d[column] >= threshold
    return d, rate_summary(d, ["scope", "protocol", *by], "success")


def claim1(runs: Optional[pd.DataFrame]) -> Claim:
    c = Claim(1, CLAIMS[1], RULES[1])
    d, rates = success_rates(runs, "reber", "string_accuracy", STRING_SUCCESS, ["k"])
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
def claim2(runs: Optional[pd.DataFrame]) -> Claim:
    c = Claim(2, CLAIMS[2], RULES[2])
    d, rates = success_rates(runs, "embedded-reber", "outer_accuracy", OUTER_SUCCESS, ["cell"])
    if d is None:
        return c
    for scope, g in rates.groupby("scope", sort=True):
        by = {r.cell: r for r in g.itertuples()}
        if "vanilla" not in by or "gru" not in by:
            c.findings.append(Finding(scope, NOT_MEASURED, f"only {', '.join(by)} runs under this protocol.", g))
            continue
        v, gr = by["vanilla"], by["gru"]
        if gr.lo > v.hi:
            verdict = SUPPORTED
        elif (v.rate >= gr.rate and gr.rate >= MAJORITY) or v.lo > MAJORITY:
            verdict = NOT_SUPPORTED
        else:
            verdict = INCONCLUSIVE
        best = d[(d["scope"] == scope) & (d["cell"] == "vanilla")]["outer_accuracy"].max()
        c.findings.append(Finding(
            scope, verdict,
            f"success (outer T/P accuracy >= {OUTER_SUCCESS:.0%}): GRU {_fmt_rate(gr)}, vanilla {_fmt_rate(v)} "
            f"(Wilson 95 %); best vanilla outer accuracy {best:.1%}.", g))
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
    for (task, protocol), d in g.groupby(["task", "protocol"], sort=True):
        scope = f"protocol {protocol}, {task} ({stage} models)"
        stats = {cell: gradient_stats(d[d["cell"] == cell]) for cell in ("vanilla", "gru") if (d["cell"] == cell).any()}
        table = pd.DataFrame(stats).T.rename_axis("cell").reset_index()
        if len(stats) < 2:
            continue  # e.g. Reber, where the paper trains only the vanilla cell
        v, r = stats["vanilla"], stats["gru"]
        decades = abs(math.log10(max(v["median"], 1e-300)) - math.log10(max(r["median"], 1e-300)))
        alike = (decades <= GRAD_DECADES and abs(v["vanishing"] - r["vanishing"]) < GRAD_TAIL
                 and abs(v["exploding"] - r["exploding"]) < GRAD_TAIL)
        c.findings.append(Finding(
            scope, SUPPORTED if alike else NOT_SUPPORTED,
            f"median |g|: vanilla {v['median']:.3g}, GRU {r['median']:.3g} ({decades:.2f} decades apart); "
            f"share < {GRAD_VANISH:g}: {v['vanishing']:.1%} vs {r['vanishing']:.1%}; "
            f"share > {GRAD_EXPLODE:g}: {v['exploding']:.1%} vs {r['exploding']:.1%} "
            f"({v['coefficients']:,} and {r['coefficients']:,} coefficients)." + hidden_note(grads, task, protocol, stage),
            table))
    return c


def hidden_note(grads: pd.DataFrame, task: str, protocol: str, stage: str) -> str:
    """Beyond the paper (not part of the rule): ||dloss_T/dh_{T-d}|| at the largest distance
    both cells reach, pooled medians."""
    h = grads[(grads["quantity"] == "hidden") & (grads["task"] == task) & (grads["protocol"] == protocol)
              & (grads["stage"] == stage)]
    if h.empty or set(h["cell"]) < {"vanilla", "gru"}:
        return ""
    d = min(h.loc[h["cell"] == c, "distance"].max() for c in ("vanilla", "gru"))
    med = {c: hist.quantile(hist.pooled(h[(h["cell"] == c) & (h["distance"] == d)]), 0.5) for c in ("vanilla", "gru")}
    return (f" Beyond the paper (not in the rule): the gradient reaching the hidden state d={d} steps before the "
            f"loss term has median norm {med['vanilla']:.3g} for vanilla and {med['gru']:.3g} for GRU.")


# ---------------------------------------------------------------------- claim 4
def rate_verdict(v_lo: float, v_hi: float, g_lo: float, g_hi: float, l_max: int) -> str:
    """Claim 4 at one k from the two cells' decay-rate intervals (RULES[4]) over l <= l_max."""
    if v_lo * l_max >= -1 or (g_hi < 0 and g_hi <= v_lo / SLOWER):
        return NOT_SUPPORTED
    if v_hi < 0 and (g_hi >= 0 or g_lo >= v_hi / SLOWER):
        return SUPPORTED
    return INCONCLUSIVE


def _fmt_decay(r) -> str:
    return f"{r.rate:.3g} [{r.lo:.3g}, {r.hi:.3g}]"


def _tau(r) -> str:
    """The time constant, where the interval says D decays."""
    return f" (time constant {time_constant(r.rate):.3g} steps)" if r.hi < 0 else ""


def claim4(memory: Optional[pd.DataFrame]) -> Claim:
    c = Claim(4, CLAIMS[4], RULES[4])
    if memory is None:
        return c
    s = float64_rows(decay_summary(memory))
    for init, si in s.groupby("init", sort=True):
        by = {cell: si[si["cell"] == cell].set_index("k") for cell in ("vanilla", "gru")}
        ks = sorted(set(by["vanilla"].index) & set(by["gru"].index))
        if not ks:
            c.findings.append(Finding(f"init {init}", NOT_MEASURED, "the two cells were not measured at a common k."))
            continue
        verdicts = {k: rate_verdict(by["vanilla"].loc[k, "lo"], by["vanilla"].loc[k, "hi"], by["gru"].loc[k, "lo"],
                                    by["gru"].loc[k, "hi"], by["vanilla"].loc[k, "l_max"]) for k in ks}
        for part in k_ranges(ks):
            found = {verdicts[k] for k in part}
            verdict = (NOT_SUPPORTED if NOT_SUPPORTED in found else SUPPORTED if found == {SUPPORTED} else INCONCLUSIVE)
            v, g = by["vanilla"].loc[part], by["gru"].loc[part]
            K = part[-1]
            table = pd.DataFrame({
                "k": part, "vanilla rate": v["rate"].to_numpy(), "vanilla lo": v["lo"].to_numpy(),
                "vanilla hi": v["hi"].to_numpy(), "GRU rate": g["rate"].to_numpy(), "GRU lo": g["lo"].to_numpy(),
                "GRU hi": g["hi"].to_numpy(), "verdict": [verdicts[k] for k in part],
                "vanilla l_half": v["l_half"].to_numpy(), "GRU l_half": g["l_half"].to_numpy(),
            })
            counts = ", ".join(f"{sum(verdicts[k] == x for k in part)} {x}" for x in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
                               if any(verdicts[k] == x for k in part))
            scope = f"init {init}, k {part[0]}-{part[-1]}" if len(part) > 1 else f"init {init}, k {part[0]}"
            c.findings.append(Finding(
                scope, verdict,
                f"decay rate of log median D per step at k={K} ({int(v.loc[K, 'n_seeds'])} ensemble(s), "
                f"{int(v.loc[K, 'n_draws'] / v.loc[K, 'n_seeds'])} draws each, l <= {int(v.loc[K, 'l_max'])}): vanilla "
                f"{_fmt_decay(v.loc[K])}{_tau(v.loc[K])}, GRU {_fmt_decay(g.loc[K])}{_tau(g.loc[K])}; per k: {counts}.", table))
    return c


def judge(out: str) -> List[Claim]:
    """All four claims against the tables of output directory ``out``."""
    runs = _try(out, "runs")
    grads = _try(out, "gradients")
    return [claim1(runs), claim2(runs), claim3(grads), claim4(_try(out, "memory"))]
