"""The report: verdict rules flip with the tables, the page loads in a real headless browser
with every image decoded, and `lksweep run` with `report: true` ends with the report."""
import math
import os
import re
import shutil
import subprocess
import tempfile

import markupsafe
import pandas as pd
import pytest

from analysis import claims as C
from analysis.figures import FIGURES
from analysis.report import write_report
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
    assert _scopes(C.claim1(load(str(tmp_path / "few"), "runs"))) == {"recipe paper": C.INCONCLUSIVE}
    assert C.claim1(None).verdict == C.NOT_MEASURED


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
                                       "recipe adam (max_epochs 100)": C.INCONCLUSIVE}
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
                          "recipe paper+adam": C.INCONCLUSIVE, "recipe paper+shuffled": C.INCONCLUSIVE,
                          "recipe paper+cross-entropy": C.INCONCLUSIVE, "recipe paper+b10": C.INCONCLUSIVE}
    assert c.verdict.startswith("depends:")
    paper = next(f for f in c.findings if f.scope == "recipe paper")
    assert "GRU 6/6 = 100%" in paper.summary and "vanilla 0/6 = 0%" in paper.summary
    assert "strict (every test string right): GRU 6/6" in paper.summary      # accuracy 1.0 is strict
    assert set(paper.table.columns) >= {"cell", "rate", "lo", "hi", "strict_successes", "strict_lo"}


def test_claim3_splits_into_alike_distributions_and_the_gradient_reaching_the_state(tmp_path):
    scope_a, scope_b = "(a) recipe paper, embedded-reber (trained models)", "(b) recipe paper, embedded-reber"
    cases = {
        # parameter gradients alike, but the gradient reaching h 6 steps back is 0.5**6 vs 0.9**6: 1.5 decades
        "alike": (F.ALIKE_GRADIENTS, C.SUPPORTED, C.NOT_SUPPORTED),
        "vanish": ({("embedded-reber", "vanilla", 18, "paper"): (-11.0, 0.1),
                    ("embedded-reber", "gru", 10, "paper"): (-3.0, 0.9)}, C.NOT_SUPPORTED, C.NOT_SUPPORTED),
        "reaches": ({("embedded-reber", "vanilla", 18, "paper"): (-3.0, 0.85),
                     ("embedded-reber", "gru", 10, "paper"): (-3.2, 0.9)}, C.SUPPORTED, C.SUPPORTED),
        # reaching at initialisation (0.9 per step), vanishing once trained (0.5): the stages disagree
        "stages": ({("embedded-reber", "vanilla", 18, "paper"): (-3.0, 0.5, 0.9),
                    ("embedded-reber", "gru", 10, "paper"): (-3.2, 0.9)}, C.SUPPORTED, C.INCONCLUSIVE),
    }
    for name, (spec, a, b) in cases.items():
        F.write_gradients(str(tmp_path / name), spec)
        claim = C.claim3(load(str(tmp_path / name), "gradients"))
        assert _scopes(claim) == {scope_a: a, scope_b: b}, name
    vanish = C.claim3(load(str(tmp_path / "vanish"), "gradients"))
    row = vanish.findings[0].table.set_index("cell")
    assert row.loc["vanilla", "vanishing"] > 0.9 and row.loc["gru", "vanishing"] < 0.01
    hidden = vanish.findings[1].table.set_index("stage")
    assert (hidden["distance"] == 6).all()     # 60 - 5 d strings reach d: half of them reach 6
    assert hidden.loc["trained", "decades vanilla below GRU"] == pytest.approx(6 * math.log10(0.9 / 0.1), abs=0.3)


def test_ingredient_rule_flips(tmp_path):
    from analysis import sec_training as S
    cases = {
        # cross-entropy: vanilla 6/6 [61 %, 100 %] against 0/6 [0 %, 39 %] with the squared error
        "decides": ({"paper": [0.5] * 6, "paper+cross-entropy": [1.0] * 6}, {"loss": S.DECIDES}),
        # 8/16 [28 %, 72 %] lies above 0/16 [0 %, 19 %] but not above 50 %
        "contributes": ({"paper": [0.5] * 16, "paper+cross-entropy": [1.0] * 8 + [0.5] * 8}, {"loss": S.CONTRIBUTES}),
        # with Adam the loss makes no difference the intervals can see: 3/6 vs 0/6
        "mixed": ({"paper": [0.5] * 6, "paper+cross-entropy": [1.0] * 6, "paper+adam": [0.5] * 6,
                   "paper+adam+cross-entropy": [1.0] * 3 + [0.5] * 3},
                  {"loss": S.NOT_SHOWN, "optimizer": S.NOT_SHOWN}),
    }
    for name, (accs, want) in cases.items():
        spec = {("embedded-reber", "vanilla", 18, r): a for r, a in accs.items()}
        spec.update({("embedded-reber", "gru", 10, r): [1.0] * 6 for r in accs})
        F.write_runs(str(tmp_path / name), spec)
        d = S.rated(load(str(tmp_path / name), "runs"))
        comps = S.comparisons(d)
        got = {x: S.ingredient_verdict(g) for x, g in comps[comps.cell == "vanilla"].groupby("ingredient")}
        assert got == want, name
        assert {S.ingredient_verdict(g) for _, g in comps[comps.cell == "gru"].groupby("ingredient")} == {S.NOT_SHOWN}
    from analysis.registry import Tables
    built = S.ingredients(Tables(str(tmp_path / "decides")))
    assert built.paragraphs[0].startswith("Whether the vanilla cell learns the outer symbol is decided by the loss "
                                          "(with cross-entropy it learns it, with squared-error it does not)")
    assert {f.scope: f.verdict for f in built.findings} == {"loss, vanilla k=18": S.DECIDES, "loss, gru k=10": S.NOT_SHOWN}
    table = built.tables[0].set_index("recipe")
    assert table.loc["paper+cross-entropy", "vanilla success"] == "6/6 [61%, 100%]"


# ---------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def report_dir(disc_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    F.copy_tables(disc_dir, out, F.DISCREPANCY_TABLES)
    F.write_training(str(out))
    path = write_report(str(out))
    return str(out), path


def test_report_states_claims_rules_and_provenance(report_dir):
    out, path = report_dir
    page = open(path).read()
    for n in (1, 2, 3, 4):
        assert f"Claim {n}:" in page
        assert str(markupsafe.escape(C.RULES[n].split(".")[0]))[:40] in page
    assert page.count("<img ") == len(FIGURES) and page.count("data:image/png;base64,") == len(FIGURES)
    # per-recipe claim 2: the paper protocol supports it, Adam (vanilla 5/6) leaves it inconclusive
    assert re.search(r"recipe paper <span class=\"v\"[^>]*>supported", page)
    assert re.search(r"recipe adam <span class=\"v\"[^>]*>inconclusive", page)
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
    os.makedirs(tmp_path / "discrepancy")
    df.assign(frac_distinct=df.frac_distinct.where(df.k != 3, 1.02)).to_parquet(tmp_path / "discrepancy" / "x.parquet")
    (w,) = data_checks(Tables(str(tmp_path)))
    assert w.startswith("432 discrepancy row(s) have frac_distinct outside [0, 1]")
