"""The paper's four claims, and the explicit rules that turn this sweep's tables into verdicts.

Verdicts: ``supported``, ``not supported``, ``inconclusive`` (measured, but the intervals
do not decide: more seeds would) and ``not measured`` (the table or the rows are missing).
Every rule is a function of the tables below and is printed, word for word, in the report
(``RULES``). Claims 1-3 are judged separately for each training protocol, claim 4 for each
parameter init.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pandas as pd

from . import hist
from .success import OUTER_SUCCESS, PAPER_K, STRING_SUCCESS
from .tables import NoData, discrepancy_summary, largest_common, load, rate_summary, wilson

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_MEASURED = "supported", "not supported", "inconclusive", "not measured"

# Thresholds of the rules (module constants so tests and readers see one truth).
MAJORITY = 0.5
D_VANISH = 1e-2           # "very close to 0": the upper 95 % bound of mean D below this
D_SEPARATION = 10.0       # GRU's lower bound at least this many times vanilla's upper bound
L_MIN = 20                # a D(l,k) sweep must reach l >= L_MIN to judge "large l"
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
    4: f"Per init, at the largest l measured for both cells (which must be >= {L_MIN}; float64 rows): "
       f"supported if for every k measured for both cells the upper 95 % bound of the vanilla mean D is "
       f"< {D_VANISH:g}, and at the largest common k the GRU's lower 95 % bound is >= {D_VANISH:g} and >= "
       f"{D_SEPARATION:g} x the vanilla's upper bound. Not supported if at that k the vanilla mean is >= the "
       f"GRU's, or some vanilla lower bound is >= {D_VANISH:g} (vanilla does not vanish); inconclusive "
       f"otherwise. 95 % bounds: t-interval over seed ensembles (see analysis.tables).",
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
def claim4(disc: Optional[pd.DataFrame]) -> Claim:
    c = Claim(4, CLAIMS[4], RULES[4])
    if disc is None:
        return c
    s = discrepancy_summary(disc)
    if (s["dtype"] == "float64").any():
        s = s[s["dtype"] == "float64"]
    for init, si in s.groupby("init", sort=True):
        if not {"vanilla", "gru"} <= set(si["cell"]):
            c.findings.append(Finding(f"init {init}", NOT_MEASURED, "only one cell measured with this init."))
            continue
        L = largest_common(si, "l", ["vanilla", "gru"])
        ks = sorted(set(si.loc[si["cell"] == "vanilla", "k"]) & set(si.loc[si["cell"] == "gru", "k"]))
        if L is None or not ks or L < L_MIN:
            c.findings.append(Finding(f"init {init}", NOT_MEASURED,
                                      f"largest common l is {L}, below {L_MIN}: too short to judge large l."))
            continue
        at = si[(si["l"] == L) & (si["k"].isin(ks))]
        v = at[at["cell"] == "vanilla"].set_index("k")
        g = at[at["cell"] == "gru"].set_index("k")
        K = ks[-1]
        table = pd.DataFrame({
            "k": ks,
            "vanilla mean": v.loc[ks, "mean"].to_numpy(), "vanilla 95% hi": v.loc[ks, "ci_hi"].to_numpy(),
            "vanilla median": v.loc[ks, "q50"].to_numpy(), "vanilla frac_distinct": v.loc[ks, "frac_distinct"].to_numpy(),
            "GRU mean": g.loc[ks, "mean"].to_numpy(), "GRU 95% lo": g.loc[ks, "ci_lo"].to_numpy(),
            "GRU median": g.loc[ks, "q50"].to_numpy(), "GRU frac_distinct": g.loc[ks, "frac_distinct"].to_numpy(),
        })
        vanishes = bool((v.loc[ks, "ci_hi"] < D_VANISH).all())
        persists = bool(g.loc[K, "ci_lo"] >= D_VANISH and g.loc[K, "ci_lo"] >= D_SEPARATION * v.loc[K, "ci_hi"])
        if vanishes and persists:
            verdict = SUPPORTED
        elif v.loc[K, "mean"] >= g.loc[K, "mean"] or bool((v.loc[ks, "ci_lo"] >= D_VANISH).any()):
            verdict = NOT_SUPPORTED
        else:
            verdict = INCONCLUSIVE
        c.findings.append(Finding(
            f"init {init}", verdict,
            f"at l={L}, k={K} ({int(v.loc[K, 'n_seeds'])} ensemble(s) of {int(v.loc[K, 'n_draws'] / v.loc[K, 'n_seeds'])} "
            f"draws): vanilla mean D {v.loc[K, 'mean']:.3g} [{v.loc[K, 'ci_lo']:.3g}, {v.loc[K, 'ci_hi']:.3g}], "
            f"median {v.loc[K, 'q50']:.3g}, {v.loc[K, 'frac_distinct']:.0%} of draws still distinct; GRU mean D "
            f"{g.loc[K, 'mean']:.3g} [{g.loc[K, 'ci_lo']:.3g}, {g.loc[K, 'ci_hi']:.3g}], median {g.loc[K, 'q50']:.3g}, "
            f"{g.loc[K, 'frac_distinct']:.0%} distinct. Vanilla upper bound < {D_VANISH:g} for every k: "
            f"{'yes' if vanishes else 'no'}; GRU separated at k={K}: {'yes' if persists else 'no'}.", table))
    return c


def judge(out: str) -> List[Claim]:
    """All four claims against the tables of output directory ``out``."""
    runs = _try(out, "runs")
    grads = _try(out, "gradients")
    return [claim1(runs), claim2(runs), claim3(grads), claim4(_try(out, "discrepancy"))]
