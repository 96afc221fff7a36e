"""The report: verdict rules flip with the tables, the page loads in a real headless browser
with every image decoded, and `lksweep run` with `report: true` ends with the report."""
import dataclasses
import math
import os
import re
import shutil
import subprocess
import tempfile

import markupsafe
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis import claims as C
from analysis.figures import FIGURES
from analysis.report import write_report
from analysis.rules import Verdict
from analysis.tables import load

from . import analysis_fixtures as F


def _scopes(claim):
    return {f.scope: f.verdict for f in claim.findings}


# ---------------------------------------------------------------------- verdict rules
def test_claim1_flips(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    F.write_runs(str(good), {("reber", "vanilla", 5, "paper"): [1.0] * 6})     # Wilson [61 %, 100 %]
    F.write_runs(str(bad), {("reber", "vanilla", 5, "paper"): [0.4] * 6})      # Wilson [0 %, 39 %]
    assert _scopes(C.claim1(load(str(good), "runs"))) == {"recipe paper": C.SUPPORTED}
    assert _scopes(C.claim1(load(str(bad), "runs"))) == {"recipe paper": C.NOT_SUPPORTED}
    F.write_runs(str(tmp_path / "few"), {("reber", "vanilla", 5, "paper"): [1.0] * 3})  # [44 %, 100 %]
    assert _scopes(C.claim1(load(str(tmp_path / "few"), "runs"))) == {"recipe paper": C.MORE_SEEDS}
    assert C.claim1(None).verdict == C.NOT_MEASURED


def test_every_verdict_is_one_of_the_closed_set(report_dir):
    from analysis.registry import Tables
    judged = C.judge(Tables(report_dir[0]))
    assert [j.number for j in judged] == [1, 2, 3, 4, 5]
    assert all(isinstance(f.verdict, Verdict) for j in judged for f in j.findings)


def test_the_printed_rule_is_the_rule_that_judges(tmp_path):
    """Change claim 1's logic on the object (a stricter majority, then a different case): the
    verdict and the rule the page prints change together."""
    F.write_runs(str(tmp_path), {("reber", "vanilla", 5, "paper"): [1.0] * 5 + [0.4]})   # 5/6: Wilson [44 %, 97 %]
    runs = load(str(tmp_path), "runs")
    claim = C.CLAIMS[1]
    assert _scopes(claim.check(runs, None)) == {"recipe paper": C.MORE_SEEDS}
    assert "supported if lo > 50%; not supported if hi < 50%" in claim.rule
    lenient = C.Rule(claim.rules[0].measure, claim.rules[0].quantities,
                     ((C.SUPPORTED, C.Compare("lo", ">", 0.4)), (C.NOT_SUPPORTED, C.Compare("hi", "<", 0.5))),
                     C.MORE_SEEDS)
    changed = dataclasses.replace(claim, rules=(lenient,))
    assert _scopes(changed.check(runs, None)) == {"recipe paper": C.SUPPORTED}
    assert "supported if lo > 40%; not supported if hi < 50%" in changed.rule
    assert "supported if lo > 50%" not in changed.rule
    # the page prints the rule of the object that judged
    from analysis.registry import Tables
    from analysis.report import TEMPLATE, context
    page = TEMPLATE.render(**context(str(tmp_path), [], [changed.check(runs, None)], Tables(str(tmp_path))))
    assert "supported if lo &gt; 40%" in page and "lo &gt; 50%" not in page
    # a case on the other end: 'not supported' once the upper end is below 98 %
    harsh = dataclasses.replace(lenient, cases=((C.NOT_SUPPORTED, C.Compare("hi", "<", 0.98)),))
    assert _scopes(dataclasses.replace(claim, rules=(harsh,)).check(runs, None)) == {"recipe paper": C.NOT_SUPPORTED}
    assert "not supported if hi < 98%" in dataclasses.replace(claim, rules=(harsh,)).rule
    with pytest.raises(ValueError, match="unknown quantities: median"):
        C.Rule("m", {"lo": "lo"}, ((C.SUPPORTED, C.Compare("median", ">", 0.5)),), C.MORE_SEEDS)


def test_claims_judge_the_papers_models_and_never_pool_settings(tmp_path):
    F.write_runs(str(tmp_path), {("reber", "vanilla", 5, "paper"): [1.0] * 6,
                                 ("reber", "vanilla", 7, "paper"): [0.0] * 6,        # not the paper's k
                                 ("embedded-reber", "vanilla", 18, "adam"): [1.0] * 6,
                                 ("embedded-reber", "gru", 10, "adam"): [1.0] * 6})
    runs = load(str(tmp_path), "runs")
    c1 = C.claim1(runs)
    assert _scopes(c1) == {"recipe paper": C.SUPPORTED} and "6/6 vanilla" in c1.findings[0].summary
    longer = runs[runs.task == "embedded-reber"].assign(max_epochs=100, outer_accuracy=0.5,
                                                        run_id=lambda d: d.run_id + "-long")
    both = pd.concat([runs, longer], ignore_index=True)
    assert _scopes(C.claim2(both)) == {"recipe adam (max_epochs 10)": C.NOT_SUPPORTED,
                                       "recipe adam (max_epochs 100)": C.INCONCLUSIVE}     # the GRU fails too
    other_lr = runs[runs.task == "embedded-reber"].assign(lr=0.01, run_id=lambda d: d.run_id + "-lr")
    assert set(_scopes(C.claim2(pd.concat([runs, other_lr])))) == {"recipe adam (lr 0.05)", "recipe adam (lr 0.01)"}


def test_claim2_flips_per_recipe(tmp_path):
    F.write_runs(str(tmp_path), {
        ("embedded-reber", "vanilla", 18, "paper"): [0.5] * 6,             # [0 %, 39 %]
        ("embedded-reber", "gru", 10, "paper"): [1.0] * 6,                 # [61 %, 100 %]
        ("embedded-reber", "vanilla", 18, "adam"): [1.0] * 6,              # vanilla reliably learns it
        ("embedded-reber", "gru", 10, "adam"): [1.0] * 6,
        ("embedded-reber", "vanilla", 18, "paper+adam"): [1.0] + [0.5] * 5,
        ("embedded-reber", "gru", 10, "paper+adam"): [1.0] * 3 + [0.5] * 3,
        ("embedded-reber", "vanilla", 18, "paper+shuffled"): [0.5] * 6,    # neither cell learned: says nothing
        ("embedded-reber", "gru", 10, "paper+shuffled"): [0.5] * 6,
        # GRU far above vanilla, but vanilla's interval [9 %, 53 %] is not below 50 %
        ("embedded-reber", "vanilla", 18, "paper+cross-entropy"): [1.0] * 3 + [0.5] * 9,
        ("embedded-reber", "gru", 10, "paper+cross-entropy"): [1.0] * 12,
        # vanilla ahead of a GRU at 50 %, but not reliably above 50 % itself ([30 %, 90 %])
        ("embedded-reber", "vanilla", 18, "paper+b10"): [1.0] * 4 + [0.5] * 2,
        ("embedded-reber", "gru", 10, "paper+b10"): [1.0] * 3 + [0.5] * 3,
    })
    c = C.claim2(load(str(tmp_path), "runs"))
    assert _scopes(c) == {"recipe adam": C.NOT_SUPPORTED, "recipe paper": C.SUPPORTED,
                          "recipe paper+adam": C.MORE_SEEDS, "recipe paper+shuffled": C.INCONCLUSIVE,
                          "recipe paper+cross-entropy": C.MORE_SEEDS, "recipe paper+b10": C.MORE_SEEDS}
    assert c.verdict is None                                  # it depends on the recipe
    paper = next(f for f in c.findings if f.scope == "recipe paper")
    assert "GRU 6/6 = 100%" in paper.summary and "vanilla 0/6 = 0%" in paper.summary
    assert "strict (every test string right): GRU 6/6" in paper.summary      # accuracy 1.0 is strict
    assert set(paper.table.columns) >= {"cell", "rate", "lo", "hi", "strict_successes", "strict_lo", "constant"}
    assert paper.summary.endswith("The constant-prediction baseline is not in these tables (written before lksweep "
                                  "recorded the sets' composition): it is at least 50 %, so an accuracy near 50 % "
                                  "may be a constant prediction.")


def test_claim2_tells_a_budget_limited_result_from_a_seed_limited_one(tmp_path):
    """9/16 vanilla successes and a GRU at 16/16: inconclusive. Whether the 7 failures were
    stopped by the cap while still improving decides which kind."""
    spec = {("embedded-reber", "vanilla", 18, "paper+cross-entropy"): [1.0] * 9 + [0.5] * 7,
            ("embedded-reber", "gru", 10, "paper+cross-entropy"): [1.0] * 16}
    seeds = {k: len(v) for k, v in spec.items()}
    cases = {"capped, rising": (None, range(9, 16), C.LONGER),
             "capped, flat": (None, (), C.MORE_SEEDS),
             "converged, rising": ("converged", range(9, 16), C.MORE_SEEDS)}    # the tolerance rule, not the cap
    for name, (stop, rising, want) in cases.items():
        out = str(tmp_path / name.replace(", ", "-"))
        stops = None if stop is None else {k: [stop] * len(v) for k, v in spec.items()}
        F.write_runs(out, spec, stops=stops)
        F.write_epochs(out, seeds, n_epochs=30, rising=set(rising))
        c = C.claim2(load(out, "runs"), load(out, "epochs"))
        assert _scopes(c) == {"recipe paper+cross-entropy": want}, name
        said = c.findings[0].summary
        assert ("7 failed run(s) stopped by the epoch cap while still improving" in said) == (want == C.LONGER), name
    # only three of the seven still rising: even as successes (12/16, [51 %, 93 %]... not above 50 % ) -> seeds
    out = str(tmp_path / "three")
    F.write_runs(out, spec)
    F.write_epochs(out, seeds, n_epochs=30, rising={9, 10})
    assert _scopes(C.claim2(load(out, "runs"), load(out, "epochs"))) == {"recipe paper+cross-entropy": C.MORE_SEEDS}


def test_claim2_says_which_runs_predict_a_constant(tmp_path):
    """The test set holds 127 T and 129 P strings (best constant: 129/256 = 50.4 %); per length
    (5: 60 T of 130; 9: 67 T of 126). Predicting P everywhere scores 70 + 59 = 129; a run that scores
    129 strings but not length by length does not predict a constant."""
    lengths = {5: (130, 70, 60), 9: (126, 59, 67)}         # (n, outer_correct, outer_T): always P
    mixed = {5: (130, 60, 60), 9: (126, 69, 67)}           # 129 right, but not the constant's pattern
    out = str(tmp_path)
    F.write_runs(out, {("embedded-reber", "vanilla", 18, "paper"): [129 / 256] * 6,
                       ("embedded-reber", "gru", 10, "paper"): [1.0] * 6})
    F.write_lengths(out, {("embedded-reber", "vanilla", 18, "paper"): (4, lengths)})
    F.write_lengths(out, {("embedded-reber", "vanilla", 18, "paper"): (2, mixed)}, start=4)
    F.write_lengths(out, {("embedded-reber", "gru", 10, "paper"): (6, {5: (130, 130, 60), 9: (126, 126, 67)})})
    runs, fixed = load(out, "runs"), load(out, "lengths")
    c = C.claim2(runs, None, fixed)
    f = c.findings[0]
    assert f.verdict == C.SUPPORTED
    assert "median test outer accuracy 50.4% against 50.4% for the best constant prediction" in f.summary
    assert "4 of 6 run(s) predict a constant" in f.summary
    assert f.table.set_index("cell").loc["vanilla", "at_constant"] == 4
    # without the lengths table, the runs table's own baseline column: every run at 129/256 is at a constant
    F.write_runs(str(tmp_path / "cols"), {("embedded-reber", "vanilla", 18, "paper"): [129 / 256] * 5 + [0.6],
                                          ("embedded-reber", "gru", 10, "paper"): [1.0] * 6},
                 constant={"train": 0.52, "val": 0.5, "test": 129 / 256})
    c = C.claim2(load(str(tmp_path / "cols"), "runs"))
    assert "5 of 6 run(s) predict a constant" in c.findings[0].summary
    assert "0 of 6 run(s) predict a constant" in c.findings[0].summary          # the GRU's
    table = c.findings[0].table.set_index("cell")
    assert list(table.loc[["vanilla", "gru"], "at_constant"]) == [5, 0]
    assert list(table.loc["vanilla", ["train_constant", "val_constant"]]) == [0.52, 0.5]     # every set's baseline


def test_claim3_splits_into_alike_distributions_and_the_initial_gradient_reaching_the_state(tmp_path):
    scope_a, scope_b = "(a) recipe paper, embedded-reber (trained models)", "(b) embedded-reber"
    cases = {
        "alike": (F.ALIKE_GRADIENTS, C.SUPPORTED),
        "vanish": ({("embedded-reber", "vanilla", 18, "paper"): (-11.0, 0.1),
                    ("embedded-reber", "gru", 10, "paper"): (-3.0, 0.9)}, C.NOT_SUPPORTED),
    }
    for name, (spec, a) in cases.items():
        F.write_gradients(str(tmp_path / name), spec)
        claim = C.claim3(load(str(tmp_path / name), "gradients"))
        # (b) needs a recipe where the vanilla learns and one where it fails: no runs table, not judged
        assert _scopes(claim) == {scope_a: a, scope_b: C.NOT_MEASURED}, name
    vanish = C.claim3(load(str(tmp_path / "vanish"), "gradients"))
    row = vanish.findings[0].table.set_index("cell")
    assert row.loc["vanilla", "vanishing"] > 0.9 and row.loc["gru", "vanishing"] < 0.01
    hidden = vanish.findings[1].table.set_index("recipe")
    assert (hidden["distance"] == 6).all()     # 60 - 5 d strings reach d: half of them reach 6
    assert hidden.loc["paper", "vanilla decay, init"] == pytest.approx(6 * math.log10(1 / 0.1), abs=0.3)


def test_claim3a_leaves_structural_zeros_out(tmp_path):
    """400 lognormal coefficients around 1e-3 per tensor, and 400 structural zeros in U: with them
    counted, a quarter of the vanilla's coefficients 'vanish' (the GRU has none) and the rule says
    not supported; left out, the shares are alike. Tables without the count keep them in and say so."""
    spec = {("embedded-reber", "vanilla", 18, "paper"): (-3.0, 0.5), ("embedded-reber", "gru", 10, "paper"): (-3.0, 0.9)}
    zeros = {("embedded-reber", "vanilla", 18, "paper"): 400, ("embedded-reber", "gru", 10, "paper"): 0}
    F.write_gradients(str(tmp_path / "counted"), spec, structural=zeros)
    a = C.claim3(load(str(tmp_path / "counted"), "gradients")).findings[0]
    assert a.verdict == C.SUPPORTED
    row = a.table.set_index("cell")
    assert row.loc["vanilla", "structural zeros"] == 400 and row.loc["vanilla", "vanishing"] == 0
    assert row.loc["vanilla", "coefficients"] == 800          # trained: W and U, 400 each, the zeros left out
    assert "left out: 400 and 0 structural zeros" in a.summary
    # the same zeros, not counted as structural (a table written before the column): they vanish
    F.write_gradients(str(tmp_path / "old"), spec)
    g = load(str(tmp_path / "old"), "gradients")
    u = (g.cell == "vanilla") & (g.quantity == "param") & (g.tensor == "U")
    extra = [F.hist_row(np.concatenate([10 ** np.random.default_rng(0).normal(-3, 0.7, 400), np.zeros(400)]))
             for _ in range(int(u.sum()))]
    for col in ("n", "hist_bin", "hist_count"):
        g.loc[u, col] = pd.Series([e[col] for e in extra], index=g.index[u])
    a = C.claim3(g).findings[0]
    assert a.verdict == C.NOT_SUPPORTED and "structural zeros are not counted in this table" in a.summary
    assert a.table.set_index("cell").loc["vanilla", "vanishing"] == pytest.approx(400 / 1200)


def test_claim3b_judges_the_initial_decay_against_learning_and_failing(tmp_path):
    """The vanilla fails under paper and learns under paper+cross-entropy. The gradient reaching h
    decays 0.5 per step at initialisation under both: the initial decay does not tell them apart
    (supported), whatever training did after. With a steeper initial decay under paper (0.1 per step,
    5 decades more over 6 steps) it does (not supported)."""
    runs = {("embedded-reber", "vanilla", 18, "paper"): [0.5] * 6, ("embedded-reber", "gru", 10, "paper"): [1.0] * 6,
            ("embedded-reber", "vanilla", 18, "paper+cross-entropy"): [1.0] * 6,
            ("embedded-reber", "gru", 10, "paper+cross-entropy"): [1.0] * 6}
    same = {("embedded-reber", "vanilla", 18, "paper"): (-3.0, 0.2, 0.5),       # trained 0.2, initial 0.5
            ("embedded-reber", "gru", 10, "paper"): (-3.0, 0.9),
            ("embedded-reber", "vanilla", 18, "paper+cross-entropy"): (-3.0, 0.8, 0.5),
            ("embedded-reber", "gru", 10, "paper+cross-entropy"): (-3.0, 0.9)}
    steeper = {**same, ("embedded-reber", "vanilla", 18, "paper"): (-3.0, 0.2, 0.1)}
    # a second failing recipe whose initial decay is the learning one's: one failure set apart, one not
    mixed = {**steeper, ("embedded-reber", "vanilla", 18, "paper+adam"): (-3.0, 0.2, 0.5),
             ("embedded-reber", "gru", 10, "paper+adam"): (-3.0, 0.9)}
    for name, grads, want in (("same", same, C.SUPPORTED), ("steeper", steeper, C.NOT_SUPPORTED),
                              ("mixed", mixed, C.INCONCLUSIVE)):
        out = str(tmp_path / name)
        F.write_runs(out, {**runs, ("embedded-reber", "vanilla", 18, "paper+adam"): [0.5] * 6,
                           ("embedded-reber", "gru", 10, "paper+adam"): [1.0] * 6})
        F.write_gradients(out, grads)
        c = C.claim3(load(out, "gradients"), load(out, "runs"))
        b = next(f for f in c.findings if f.scope == "(b) embedded-reber")
        assert b.verdict == want, name
        t = b.table.set_index("recipe").loc[["paper", "paper+cross-entropy"]]
        assert list(t["vanilla"]) == ["fails", "learns"]
        assert "a consequence of what was learned" in b.summary
    # the trained decays differ by 3.6 decades in every case: the rule does not read them
    assert t.loc["paper", "vanilla decay, trained"] - t.loc["paper+cross-entropy", "vanilla decay, trained"] \
        == pytest.approx(6 * math.log10(0.8 / 0.2), abs=0.3)


def test_mcnemar_against_enumerating_every_sign_pattern():
    """Under no difference each of the b + c discordant seeds goes either way with probability 1/2:
    enumerate all 2**(b + c) patterns and count those at least as lopsided as the one observed."""
    from itertools import product

    from analysis.tables import mcnemar
    for b, c in [(9, 0), (7, 1), (0, 0), (3, 3), (4, 12), (2, 5), (10, 1), (0, 1)]:
        n = b + c
        lopsided = sum(1 for signs in product((0, 1), repeat=n) if abs(2 * sum(signs) - n) >= abs(b - c))
        assert mcnemar(b, c) == pytest.approx(lopsided / 2 ** n, rel=1e-12), (b, c)
    assert mcnemar(9, 0) == pytest.approx(0.0039, abs=1e-4) and mcnemar(7, 1) == pytest.approx(0.0703, abs=1e-4)
    with pytest.raises(ValueError, match="discordant counts"):
        mcnemar(-1, 2)


def test_ingredient_rule_flips(tmp_path):
    from analysis import sec_training as S
    cases = {
        # cross-entropy: vanilla 6/6 against 0/6 with the squared error, the same seeds: 6-0 discordant, p = 0.03
        "decides": ({"paper": [0.5] * 6, "paper+cross-entropy": [1.0] * 6}, {"loss": S.DECIDES}),
        # 8-0 discordant (p = 0.008), but 8/16 [28 %, 72 %] is not above 50 %
        "contributes": ({"paper": [0.5] * 16, "paper+cross-entropy": [1.0] * 8 + [0.5] * 8}, {"loss": S.CONTRIBUTES}),
        # 4/16 and 12/16: apart as independent intervals ([10 %, 50 %], [51 %, 90 %]), but paired the seeds cross:
        # 12-4 discordant, p = 0.08
        "crossed": ({"paper": [1.0] * 4 + [0.5] * 12, "paper+cross-entropy": [0.5] * 4 + [1.0] * 12},
                    {"loss": S.NOT_SHOWN}),
        # with Adam the loss makes no difference the paired test can see: 3-0, p = 0.25
        "mixed": ({"paper": [0.5] * 6, "paper+cross-entropy": [1.0] * 6, "paper+adam": [0.5] * 6,
                   "paper+adam+cross-entropy": [1.0] * 3 + [0.5] * 3},
                  {"loss": S.NOT_SHOWN, "optimizer": S.NOT_SHOWN}),
    }
    for name, (accs, want) in cases.items():
        spec = {("embedded-reber", "vanilla", 18, r): a for r, a in accs.items()}
        spec.update({("embedded-reber", "gru", 10, r): [1.0] * len(a) for r, a in accs.items()})
        F.write_runs(str(tmp_path / name), spec)
        d = S.rated(load(str(tmp_path / name), "runs"))
        comps = S.comparisons(d)
        got = {x: S.ingredient_verdict(g) for x, g in comps[comps.cell == "vanilla"].groupby("ingredient")}
        assert got == want, name
        assert {S.ingredient_verdict(g) for _, g in comps[comps.cell == "gru"].groupby("ingredient")} == {S.NOT_SHOWN}
    crossed = S.comparisons(S.rated(load(str(tmp_path / "crossed"), "runs"))).set_index("cell").loc["vanilla"]
    assert (crossed["a only"], crossed["b only"], crossed["paired seeds"]) == (12, 4, 16)     # a: cross-entropy
    from analysis.registry import Tables
    built = S.ingredients(Tables(str(tmp_path / "decides")))
    assert built.paragraphs[0].startswith("Whether the vanilla cell learns the outer symbol is decided by the loss "
                                          "(with cross-entropy it learns it, with squared-error it does not)")
    assert {f.scope: f.verdict for f in built.findings} == {"loss, vanilla k=18": S.DECIDES, "loss, gru k=10": S.NOT_SHOWN}
    assert "over 6 paired seeds 6-0 discordant, McNemar p = 0.031" in built.findings[1].summary
    table = built.tables[0].set_index("recipe")
    assert table.loc["paper+cross-entropy", "vanilla success"] == "6/6 [61%, 100%]"


def test_the_order_is_not_said_to_decide_when_the_schedule_stopped_the_runs(tmp_path):
    """Shuffled runs fail where fixed-order ones learn. Stopped by the tolerance rule after the lr was
    halved 4 times, the schedule stopped them: not shown. Stopped by the epoch cap: the order decides."""
    from analysis import sec_training as S
    from analysis.registry import Tables
    accs = {"paper": [1.0] * 8, "paper+shuffled": [0.5] * 8}
    spec = {("embedded-reber", "vanilla", 18, r): a for r, a in accs.items()}
    for name, stop, want in (("tolerance", "converged", S.SCHEDULE), ("cap", "max_epochs", S.DECIDES)):
        out = str(tmp_path / name)
        F.write_runs(out, spec, stops={k: ["solved"] * 8 if k[3] == "paper" else [stop] * 8 for k in spec})
        F.write_epochs(out, {k: 8 for k in spec}, n_epochs=12, halved={s: 4 for s in range(8)})
        built = S.ingredients(Tables(out))
        (finding,) = built.findings
        assert finding.verdict == want, name
        assert f"the worse level's failed runs stopped: 8 {stop}" in finding.summary
    assert "the converged ones after 4 lr halving(s)" in S.ingredients(Tables(str(tmp_path / "tolerance"))).findings[0].summary
    assert "that the order itself decides is not shown" in S.ingredients(Tables(str(tmp_path / "tolerance"))).paragraphs[0]


# ---------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def report_dir(disc_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    F.copy_tables(disc_dir, out, F.DISCREPANCY_TABLES)
    F.write_training(str(out))
    F.write_trainability(str(out))
    path = write_report(str(out))
    return str(out), path


def test_report_states_claims_rules_and_provenance(report_dir):
    out, path = report_dir
    page = open(path).read()
    for n in (1, 2, 3, 4):
        assert f"Claim {n}:" in page
        assert str(markupsafe.escape(C.CLAIMS[n].rule)) in page           # printed from the object that judges
    assert page.count("<img ") == len(FIGURES) and page.count("data:image/png;base64,") == len(FIGURES)
    # per-recipe claim 2: the paper protocol supports it, Adam (vanilla 5/6) leaves it inconclusive
    assert re.search(r"recipe paper <span class=\"v\"[^>]*>supported", page)
    assert re.search(r"recipe adam <span class=\"v\"[^>]*>inconclusive: more seeds would decide", page)
    assert re.search(r"recipe paper\+cross-entropy <span class=\"v\"[^>]*>not supported", page)
    # the sections: how the runs were made, what decides (the loss, in these fixtures), accuracy by length
    assert "Departures from the authors&#39; code, in every recipe" in page
    assert "Capped below the authors&#39; 1000 epochs: paper, paper+cross-entropy" in page    # fixtures: 10 epochs
    assert "What decides whether the vanilla cell learns the outer symbol" in page
    assert "decided by the loss (with cross-entropy it learns it, with squared-error it does not)" in page
    assert '<h2 id="lengths">Outer accuracy by dependency length</h2>' in page
    from sweeps import __version__
    assert f"lksweep version in the files' metadata: {__version__} (324 file(s))" in page
    for table in ("discrepancy", "memory", "lyapunov"):                      # committed / planned groups
        assert f'<td class="l">{table}</td><td>108</td><td>108</td>' in page
    assert "&#34;draws&#34;: 200" in page                                    # the spec


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("no chromium in CI: apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


@pytest.mark.slow
def test_report_loads_in_headless_browser(report_dir, tmp_path):
    out, path = report_dir
    probe = ("<script>window.__errors=[];window.addEventListener('error',e=>window.__errors.push(String(e.message)));"
             "window.addEventListener('load',()=>{const im=[...document.images];"
             "document.body.setAttribute('data-probe',im.length+':'+im.filter(i=>i.complete&&i.naturalWidth>0)"
             ".length+':'+window.__errors.length)});</script>")
    page = open(path).read()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + probe, 1))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=10000",
           f"--user-data-dir={tempfile.mkdtemp()}", "--dump-dom", probed.as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'data-probe="(\d+):(\d+):(\d+)"', r.stdout)
    assert m, r.stderr[-2000:]
    total, decoded, errors = map(int, m.groups())
    assert total == len(FIGURES) and decoded == len(FIGURES) and errors == 0
    assert "Verdicts at a glance" in r.stdout


# ---------------------------------------------------------------------- run + report
def test_run_spec_with_report_ends_with_report(cli, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\nreport: true\ndiscrepancy:\n  cells: [vanilla, gru]\n  l_max: 22\n"
                    "  k: 2-3\n  draws: 100\n  seeds: 0-1\ntraining:\n  task: reber\n  cells: vanilla:3\n"
                    "  protocol: adam\n  seeds: 0-1\n  n_train: 10\n  max_epochs: 1\n")
    out = tmp_path / "out"
    code, stdout, err = cli("run", spec, "--out", out)
    assert code == 0, err
    last = stdout.strip().splitlines()[-1]
    assert last == f"Report: {out / 'report.html'}"
    assert (out / "report.html").exists() and (out / "figures" / "fig10_discrepancy_vanilla.pdf").exists()
    page = (out / "report.html").read_text()
    for table, n in [("discrepancy", 8), ("runs", 2), ("probes", 2)]:   # committed / planned per table
        assert f'<td class="l">{table}</td><td>{n}</td><td>{n}</td>' in page, table
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("report: true", "report: yes please"))
    code, stdout, err = cli("run", bad, "--out", tmp_path / "out2")
    assert code == 2 and "report must be true or false" in err


def test_impossible_values_are_flagged(disc_dir, tmp_path):
    from analysis.registry import Tables
    from analysis.report import data_checks
    assert data_checks(Tables(disc_dir)) == []
    df = load(disc_dir, "discrepancy")
    bad = df.assign(frac_distinct=df.frac_distinct.where(df.k != 3, 1.02))
    F.write_sealed(str(tmp_path), "discrepancy", "x", pa.Table.from_pandas(bad, preserve_index=False), "discrepancy")
    (w,) = data_checks(Tables(str(tmp_path)))
    assert w.startswith("432 discrepancy row(s) have frac_distinct outside [0, 1]")
