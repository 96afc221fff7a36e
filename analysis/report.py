"""``lksweep report DIR``: one self-contained HTML page (figures embedded as base64 PNG) that
states each claim of the paper, what this sweep measured, and the verdict of its rule."""
import base64
import datetime
import html
import json
import os
from typing import Dict, List, Optional

import pandas as pd

from . import claims as C
from .figures import FIGURES, Result, write_figures
from .tables import NoData, available, provenance

CLAIM_FIGURES = {
    1: ["fig03_reber_outputs", "fig04_reber_hidden", "success_rates"],
    2: ["fig06_embedded_vanilla_outputs", "fig07_embedded_gru_outputs", "fig08_embedded_vanilla_hidden",
        "success_rates"],
    3: ["fig09_gradients", "gradient_vs_distance"],
    4: ["fig10_discrepancy_vanilla", "fig11_discrepancy_gru", "discrepancy_curves", "discrepancy_frac_distinct"],
}
COLORS = {C.SUPPORTED: "#1b7f3b", C.NOT_SUPPORTED: "#b3261e", C.INCONCLUSIVE: "#a86b00", C.NOT_MEASURED: "#666"}

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
"""


def badge(verdict: str) -> str:
    color = COLORS.get(verdict, "#345")
    return f'<span class="v" style="background:{color}">{html.escape(verdict)}</span>'


def frame_html(df: Optional[pd.DataFrame]) -> str:
    if df is None or df.empty:
        return ""
    def fmt(x):
        if isinstance(x, float):
            return f"{x:.4g}"
        return html.escape(str(x))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_html(r: Result) -> str:
    if not r.png:
        return f'<p class="note" id="{r.name}">{html.escape(r.title)}: {html.escape(r.note)}.</p>'
    with open(r.png, "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return (f'<figure id="{r.name}"><img alt="{html.escape(r.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(r.title)} <span class='note'>({r.name}.png / .pdf)</span></figcaption></figure>")


def data_checks(out: str) -> List[str]:
    """Impossible values in the tables, stated on the page rather than hidden."""
    warnings = []
    try:
        from .tables import load
        d = load(out, "discrepancy")
    except NoData:
        return warnings
    bad = d[(d["frac_distinct"] > 1) | (d["frac_distinct"] < 0)]
    if len(bad):
        warnings.append(f"{len(bad)} discrepancy row(s) have frac_distinct outside [0, 1] (up to "
                        f"{bad['frac_distinct'].max():.3f}; e.g. {bad.iloc[0]['cell']} k={bad.iloc[0]['k']}): the "
                        f"share of distinct draws and the quantiles of those groups are suspect; means are not affected.")
    return warnings


def render(out: str, results: List[Result], claims: List[C.Claim]) -> str:
    prov = provenance(out)
    by_name = {r.name: r for r in results}
    shown = set()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>lksweep report — "
             f"{html.escape(os.path.basename(os.path.abspath(out)))}</title><style>{CSS}</style></head><body>",
             "<h1>Vanilla RNN vs GRU: the paper's claims against this sweep</h1>",
             f"<p class='note'>Output directory <code>{html.escape(os.path.abspath(out))}</code>; generated "
             f"{datetime.datetime.now().isoformat(timespec='seconds')}; tables: {', '.join(available(out))}. "
             "Paper: Stérin, Farrugia, Gripon, <i>An Intrinsic Difference Between Vanilla RNNs and GRU Models</i>.</p>",
             "<h2>Verdicts at a glance</h2><table><tr><th class='l'>claim</th><th class='l'>scope</th>"
             "<th class='l'>verdict</th><th class='l'>measured</th></tr>"]
    for c in claims:
        findings = c.findings or [C.Finding("—", C.NOT_MEASURED, "the tables this claim needs are missing.")]
        for i, f in enumerate(findings):
            first = f"<td class='l' rowspan='{len(findings)}'>{c.number}. {html.escape(c.statement)}</td>" if i == 0 else ""
            parts.append(f"<tr>{first}<td class='l'>{html.escape(f.scope)}</td><td class='l'>{badge(f.verdict)}</td>"
                         f"<td class='l'>{html.escape(f.summary)}</td></tr>")
    parts.append("</table>")
    for w in data_checks(out):
        parts.append(f"<p style='color:#b3261e'><b>Data check:</b> {html.escape(w)}</p>")
    parts.append("<p class='note'>Verdicts: <b>supported</b> / <b>not supported</b> by the rule below; "
                 "<b>inconclusive</b>: measured, but the 95 % intervals do not decide (more seeds would); "
                 "<b>not measured</b>: the table is missing.</p>")
    for c in claims:
        parts.append(f"<h2 id='claim{c.number}'>Claim {c.number}: {html.escape(c.statement)}</h2>")
        parts.append(f"<div class='rule'><b>Rule.</b> {html.escape(c.rule)}</div>")
        if not c.findings:
            parts.append(f"<p>{badge(C.NOT_MEASURED)} The tables this claim needs are missing from this directory.</p>")
        for f in c.findings:
            parts.append(f"<h3>{html.escape(f.scope)} {badge(f.verdict)}</h3><p>{html.escape(f.summary)}</p>")
            parts.append(frame_html(f.table))
        for name in CLAIM_FIGURES[c.number]:
            r = by_name.get(name)
            if r is None:
                continue
            if name in shown:
                parts.append(f"<p class='note'>See <a href='#{name}'>{html.escape(r.title)}</a> above.</p>")
                continue
            shown.add(name)
            parts.append(figure_html(r))
    rest = [r for r in results if r.name not in shown]
    if rest:
        parts.append("<h2>Other figures</h2>" + "".join(figure_html(r) for r in rest))
    parts.append("<h2>Provenance</h2>")
    versions = ", ".join(f"{v} ({n} file(s))" for v, n in sorted(prov["versions"].items()))
    parts.append(f"<p>lksweep version in the files' metadata: {html.escape(versions or 'unknown')}.</p>")
    planned = prov["planned"]
    rows = "".join(f"<tr><td class='l'>{t}</td><td>{n}</td><td>{planned.get(t, '?')}</td></tr>"
                   for t, n in sorted(prov["groups"].items()))
    parts.append("<p>Sweep status (committed groups per table; planned by the specs below):</p>"
                 f"<table><tr><th class='l'>table</th><th>committed</th><th>planned</th></tr>{rows}</table>")
    for s in prov["sweeps"]:
        parts.append(f"<p>Spec <code>{s['hash']}</code> ({html.escape(str(s['spec'].get('name', '')))}):</p>"
                     f"<pre>{html.escape(json.dumps(s['spec'], indent=1, sort_keys=True))}</pre>")
    notes = [r.note for r in results if r.note]
    if notes:
        parts.append("<p class='note'>" + "<br>".join(html.escape(n) for n in notes) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: str, results: Optional[List[Result]] = None) -> str:
    """Write ``DIR/report.html`` (drawing the figures first unless given); returns its path."""
    if not available(out):
        raise NoData(f"DIR: {out} holds no lksweep table (expected e.g. {out}/discrepancy/*.parquet)")
    if results is None:
        results = write_figures(out)
    claims = C.judge(out)
    path = os.path.join(out, "report.html")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(render(out, results, claims))
    os.replace(tmp, path)
    return path
