"""Report sections on the training runs beyond the paper's four claims: which ingredient of the
training recipe decides whether the vanilla cell learns the outer symbol (``ingredients``), and
the outer accuracy against the length of the dependency (``lengths``). Both read the ``runs``
(and ``lengths``) tables of the paper's embedded-Reber models, selected models on the test set.
"""
from itertools import combinations

import pandas as pd

from .claims import MAJORITY, Finding
from .registry import Section, Skip, Tables, section
from .success import INGREDIENTS, OUTER_SUCCESS, SETTINGS, paper_models, success_flags
from .tables import rate_summary

DECIDES, CONTRIBUTES, NOT_SHOWN = "decides", "contributes", "no effect shown"
INGREDIENT_RULE = (
    f"Over the embedded-Reber runs of vanilla k=18 and GRU k=10 (a run succeeds when the test outer T/P accuracy "
    f"of its selected model is >= {OUTER_SUCCESS:.0%}), every pair of recipes that differ in one ingredient only "
    f"(same protocol, other ingredients and settings; an optimizer brings its own default learning rate) is a "
    f"comparison. An ingredient decides whether a cell learns the outer symbol if in every comparison one level's "
    f"Wilson 95 % interval of the success rate lies above {MAJORITY:.0%} and the other's below, the same level "
    f"winning each time; it contributes if in every comparison the same level's interval lies entirely above the "
    f"other's; otherwise no effect is shown (the intervals overlap somewhere, or the winner changes).")
# Inner-string lengths, grouped so that each bucket holds enough test strings (the grammar makes long strings rare).
BUCKETS = ((5, 6), (7, 8), (9, 10), (11, 13), (14, 17), (18, None))


def rated(runs: pd.DataFrame) -> pd.DataFrame:
    """The paper's embedded-Reber models with a ``success`` flag; Skip if there are none."""
    d = paper_models(runs, "embedded-reber")
    if d.empty:
        raise Skip("no embedded-Reber runs of the paper's models")
    return d.assign(success=success_flags(d))


def comparisons(d: pd.DataFrame) -> pd.DataFrame:
    """Every pair of recipes that differ in one ingredient only, per cell: one row each with the
    two levels, their success counts and Wilson intervals, and the level whose interval lies
    entirely above the other's (``better``, None if they overlap) and whether that is a flip
    across MAJORITY."""
    key = ["protocol", *INGREDIENTS, *[c for c in SETTINGS if c != "lr"]]
    rates = rate_summary(d, [*key, "cell", "k", "recipe"], "success")
    rows = []
    for x in INGREDIENTS:
        for _, g in rates.groupby([c for c in key if c != x] + ["cell"], sort=True, dropna=False):
            for (_, a), (_, b) in combinations(g.sort_values(x, key=lambda s: s.astype(str)).iterrows(), 2):
                better = a if a.lo > b.hi else b if b.lo > a.hi else None
                worse = None if better is None else b if better is a else a
                rows.append({"ingredient": x, "cell": a.cell, "k": a.k, "level a": a[x], "level b": b[x],
                             "recipe a": a.recipe, "recipe b": b.recipe,
                             "success a": f"{a.successes}/{a.n} [{a.lo:.0%}, {a.hi:.0%}]",
                             "success b": f"{b.successes}/{b.n} [{b.lo:.0%}, {b.hi:.0%}]",
                             "better": None if better is None else better[x],
                             "flip": better is not None and better.lo > MAJORITY and worse.hi < MAJORITY})
    return pd.DataFrame(rows, columns=["ingredient", "cell", "k", "level a", "level b", "recipe a", "recipe b",
                                       "success a", "success b", "better", "flip"])


def ingredient_verdict(comps: pd.DataFrame) -> str:
    """The rule (INGREDIENT_RULE) on one ingredient's comparisons for one cell."""
    if len(comps) == 0 or comps["better"].isna().any() or comps["better"].nunique() != 1:
        return NOT_SHOWN
    return DECIDES if comps["flip"].all() else CONTRIBUTES


def _rate(g: pd.DataFrame, column: str) -> str:
    r = rate_summary(g.assign(flag=g[column].astype(bool)), ["cell"], "flag").iloc[0]
    return f"{int(r.successes)}/{int(r.n)} [{r.lo:.0%}, {r.hi:.0%}]"


@section("ingredients", "What decides whether the vanilla cell learns the outer symbol")
def ingredients(t: Tables) -> Section:
    d = rated(t.get("runs"))
    comps = comparisons(d)
    recipes = []
    for recipe, g in d.groupby("recipe", sort=True):
        row = {"recipe": recipe, **{x: g[x].iloc[0] for x in INGREDIENTS}}
        for cell, gc in g.groupby("cell", sort=True):
            row[f"{cell} success"] = _rate(gc, "success")
            row[f"{cell} strict"] = _rate(gc, "strict")
        recipes.append(row)
    s = Section(paragraphs=[INGREDIENT_RULE], tables=[pd.DataFrame(recipes)])
    verdicts = {}
    for (cell, x), g in comps.groupby(["cell", "ingredient"], sort=True):
        verdict = verdicts.setdefault(cell, {})[x] = ingredient_verdict(g)
        said = "; ".join(f"{r['level a']} {r['success a']} vs {r['level b']} {r['success b']}"
                         f" ({r['recipe a']} vs {r['recipe b']})" for _, r in g.iterrows())
        s.findings.append(Finding(f"{x}, {cell} k={g['k'].iloc[0]}", verdict, f"success: {said}.",
                                  g.drop(columns=["ingredient", "cell", "k"])))
    if not verdicts:
        s.paragraphs.insert(0, "No two recipes of these runs differ in one ingredient only: nothing to compare.")
        return s
    s.paragraphs.insert(0, _headline(verdicts.get("vanilla", {}), comps))
    return s


def _headline(verdicts, comps: pd.DataFrame) -> str:
    """The sentence that names what decides for the vanilla cell."""
    def winners(x):
        levels = comps[(comps["cell"] == "vanilla") & (comps["ingredient"] == x)]["better"]
        return levels.iloc[0]
    decide = [x for x, v in verdicts.items() if v == DECIDES]
    contribute = [x for x, v in verdicts.items() if v == CONTRIBUTES]
    if decide:
        return ("Whether the vanilla cell learns the outer symbol is decided by the "
                + " and the ".join(f"{x} ({winners(x)} learns it, the other level does not)" for x in decide)
                + (f"; the {', '.join(contribute)} contribute(s)" if contribute else "") + ".")
    if contribute:
        return ("No single ingredient decides whether the vanilla cell learns the outer symbol; the "
                + " and the ".join(f"{x} contributes ({winners(x)} is better every time)" for x in contribute) + ".")
    return ("No ingredient compared here changes whether the vanilla cell learns the outer symbol beyond what the "
            "intervals can tell.")


def bucket(length: int) -> str:
    for lo, hi in BUCKETS:
        if length >= lo and (hi is None or length <= hi):
            return f"{lo}+" if hi is None else f"{lo}-{hi}"
    return f"<{BUCKETS[0][0]}"


def by_length(t: Tables) -> pd.DataFrame:
    """Test outer accuracy of the selected models by dependency length (inner-string length,
    bucketed), pooled over seeds: one row per (recipe, cell, k, bucket) with the strings
    counted, the correct ones and their share."""
    runs = rated(t.get("runs"))
    lengths = t.get("lengths")
    d = lengths[lengths["run_id"].isin(runs["run_id"])]
    if d.empty:
        raise Skip("no dependency-length rows for the paper's embedded-Reber models")
    d = d.assign(bucket=d["length"].map(bucket), order=d["length"].map(lambda n: min(n, BUCKETS[-1][0])))
    g = d.groupby(["recipe", "cell", "k", "bucket"], sort=False).agg(
        first=("order", "min"), n=("n", "sum"), correct=("outer_correct", "sum"), runs=("run_id", "nunique"))
    g = g.reset_index().sort_values(["recipe", "cell", "first"]).drop(columns="first")
    return g.assign(outer_accuracy=g["correct"] / g["n"]).reset_index(drop=True)


@section("lengths", "Outer accuracy by dependency length")
def lengths_section(t: Tables) -> Section:
    g = by_length(t)
    wide = g.pivot_table(index=["recipe", "cell", "k"], columns="bucket", values="outer_accuracy", sort=False)
    wide = wide[list(dict.fromkeys(g["bucket"]))].reset_index()
    per_string = g.groupby("bucket", sort=False)["n"].first() / g.groupby("bucket", sort=False)["runs"].first()
    counts = ", ".join(f"{b}: {int(n)}" for b, n in per_string.items())
    return Section(paragraphs=[
        "Test outer T/P accuracy of each run's selected model against the length of the inner Reber string the "
        "outer symbol must be carried across, pooled over seeds (correct predictions / strings). A cell that "
        "guesses scores about 50 % at every length; one that carries the symbol, about 100 %; one that forgets "
        f"with distance, less and less as strings grow. Test strings per run in each bucket: {counts}."],
        tables=[wide])
