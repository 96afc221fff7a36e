"""``lksweep report DIR``: one self-contained HTML page (figures embedded as base64 PNG) that
states each claim of the paper, what this sweep measured, and the verdict of its rule.

The page is the Jinja2 template ``analysis/templates/report.html`` filled with
:func:`context`: the claims, then the registered sections (``analysis.registry.section``); a
figure appears under the claims or the section it names when it registers
(``analysis.registry.figure``), the others under "Other figures".
"""
import base64
import datetime
import json
from typing import Dict, Iterable, List, Optional

import jinja2
import pandas as pd

from sweeps.store import Store

from . import claims as C
from . import origin, sec_trainability, sec_training  # noqa: F401  (they register their sections)
from .figures import FIGURES, Result, destination, write_figures
from .registry import SECTIONS, Skip, Tables
from .rules import Finding, Judged, Verdict
from .tables import NoData, available, provenance

AMBER = "#a86b00"
COLORS = {Verdict.SUPPORTED: "#1b7f3b", Verdict.NOT_SUPPORTED: "#b3261e", Verdict.INCONCLUSIVE: AMBER,
          Verdict.MORE_SEEDS: AMBER, Verdict.LONGER: AMBER, Verdict.CHAOTIC: "#6a3d9a", Verdict.NOT_MEASURED: "#666",
          **sec_training.EFFECT_COLORS}
TEMPLATE = jinja2.Environment(loader=jinja2.PackageLoader("analysis", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined).get_template("report.html")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em} h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em} td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.v{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:.85em}
.rule{background:#f7f7fb;border-left:4px solid #99a;padding:.4em .8em;font-size:.9em}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#444}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.8em;max-height:22em}
.note{color:#666;font-size:.85em}
.partial{color:#a86b00;font-size:.85em;font-weight:600;margin-left:.4em}
"""



def frame(df: Optional[pd.DataFrame]) -> Optional[Dict]:
    """A table for the page: column names and rows of formatted cells (floats to 4 digits)."""
    if df is None or df.empty:
        return None
    fmt = lambda x: f"{x:.4g}" if isinstance(x, float) else str(x)   # noqa: E731
    return {"columns": [str(c) for c in df.columns], "rows": [[fmt(v) for v in row] for row in df.itertuples(index=False)]}


def figure_entry(r: Result, shown: set) -> Dict:
    """A figure for the page: embedded the first time, a link to it after."""
    entry = {"name": r.name, "title": r.title, "note": r.note, "ref": r.name in shown and bool(r.png), "data": ""}
    if r.png and not entry["ref"]:
        entry["data"] = base64.b64encode(r.png_bytes).decode()
    shown.add(r.name)
    return entry


def data_checks(tables: Tables) -> List[str]:
    """Impossible values in the tables, stated on the page rather than hidden."""
    warnings = []
    try:
        d = tables.get("discrepancy")
    except Skip:
        return warnings
    bad = d[(d["frac_distinct"] > 1) | (d["frac_distinct"] < 0)]
    if len(bad):
        warnings.append(f"{len(bad)} discrepancy row(s) have frac_distinct outside [0, 1] (up to "
                        f"{bad['frac_distinct'].max():.3f}; e.g. {bad.iloc[0]['cell']} k={bad.iloc[0]['k']}): the "
                        f"share of distinct draws and the quantiles of those groups are suspect; means are not affected.")
    return warnings



def partial_note(partial: Dict[str, tuple], tables: Iterable[str]) -> str:
    """ "partial: N of M <table> groups" for the tables read that are not complete yet."""
    return "; ".join(f"partial: {partial[t][0]} of {partial[t][1]} {t} groups" for t in sorted(set(tables)) if t in partial)


def context(out: str, results: List[Result], claims: List[Judged], tables: Tables) -> Dict:
    """Everything the template shows; the sections read ``tables`` (DIR's)."""
    prov = provenance(out)
    by_name = {r.name: r for r in results}
    shown: set = set()

    def finding(f: Finding, partial: str = "") -> Dict:
        return {"scope": f.scope, "verdict": str(f.verdict), "color": COLORS[f.verdict], "summary": f.summary,
                "table": frame(f.table), "partial": partial if f.verdict != Verdict.NOT_MEASURED else ""}

    def figures_where(placed_here) -> List[Dict]:
        return [figure_entry(by_name[f.name], shown) for f in FIGURES if placed_here(f) and f.name in by_name]

    page_claims = []
    for c in claims:
        missing = [Finding("—", Verdict.NOT_MEASURED, "the tables this claim needs are missing.")]
        figures = figures_where(lambda f, n=c.number: n in f.claims)
        partial = partial_note(prov["partial"], c.tables)
        page_claims.append({"number": c.number, "statement": c.statement, "rule": c.rule,
                            "findings": [finding(f, partial) for f in c.findings],
                            "glance": [finding(f, partial) for f in (c.findings or missing)], "figures": figures})
    sections = []
    for sd in SECTIONS:
        tables.used.clear()
        try:
            built = sd.build(tables)
        except Skip:
            continue
        partial = partial_note(prov["partial"], tables.used)
        sections.append({"id": sd.id, "title": sd.title, "paragraphs": built.paragraphs,
                         "findings": [finding(f, partial) for f in built.findings],
                         "tables": [frame(t) for t in built.tables],
                         "figures": figures_where(lambda f, i=sd.id: f.section == i)})
    planned = prov["planned"]
    store = Store(out)
    return {
        "name": store.root.rsplit("/", 1)[-1], "out": store.display(), "css": CSS,
        "verdicts": [(v.value, COLORS[v]) for v in Verdict],
        "not_measured": (Verdict.NOT_MEASURED.value, COLORS[Verdict.NOT_MEASURED]),
        "generated": datetime.datetime.now().isoformat(timespec="seconds"), "tables": available(out),
        "claims": page_claims, "data_checks": data_checks(tables), "sections": sections,
        "other_figures": [figure_entry(r, shown) for r in results if r.name not in shown],
        "versions": ", ".join(f"{v} ({n} file(s))" for v, n in sorted(prov["versions"].items())),
        "status": [(t, n, planned.get(t, "?")) for t, n in sorted(prov["groups"].items())],
        "specs": [{"hash": s["hash"], "name": s["spec"].get("name", ""), "json": json.dumps(s["spec"], indent=1, sort_keys=True)}
                  for s in prov["sweeps"]],
        "notes": [r.note for r in results if r.note],
    }


def write_report(out: str, results: Optional[List[Result]] = None, to: Optional[str] = None,
                 tables: Optional[Tables] = None) -> str:
    """Write ``report.html`` into DIR (or the local directory ``to``), drawing the figures
    first unless given; ``tables``: DIR's tables as the figures read them (else read here, once
    for the figures, claims and sections). Returns where the report is, as the user types it."""
    if not available(out):
        raise NoData(f"DIR: {Store(out).display()} holds no lksweep table (expected e.g. DIR/discrepancy/*.parquet)")
    tables = tables or Tables(out)
    if results is None:
        results = write_figures(out, to=to, tables=tables)
    dest = destination(out, to)
    path = dest.path("report.html")
    dest.write_bytes(path, TEMPLATE.render(**context(out, results, C.judge(tables), tables)).encode())
    return dest.display(path)
