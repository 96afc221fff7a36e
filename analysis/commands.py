"""``lksweep figures DIR`` and ``lksweep report DIR`` (the CLI calls these; no Ray here). DIR is
a path or a URI (``s3://...``); figures and the report are written back into DIR, or into the
local directory ``to``."""
from typing import Optional

from sweeps import console
from sweeps.errors import UsageError
from sweeps.store import Store

from .tables import Corrupt, NoData


def check_dir(out: str) -> None:
    try:
        Store(out).check_readable()
    except UsageError as e:
        raise NoData(str(e)) from None


def figures(out: str, to: Optional[str] = None, file=None, tables=None):
    """Write figures/*.png|pdf (into DIR or ``to``), print one line per figure written or skipped;
    ``tables`` as in :func:`analysis.figures.write_figures`."""
    from .figures import destination, write_figures
    check_dir(out)
    results = write_figures(out, to=to, tables=tables)
    n = sum(1 for r in results if r.png)
    dest = destination(out, to)
    console.out(*(f"  {r.png}" if r.png else f"  {r.note}" for r in results),
                f"{n} figure(s) written to {dest.display(dest.path('figures'))} (PNG and PDF)", file=file)
    return results


def report(out: str, to: Optional[str] = None, file=None) -> str:
    """Figures, then report.html; the last line printed says where the report is."""
    from .registry import Tables
    from .report import write_report
    tables = Tables(out)       # read once, for the figures and the report
    results = figures(out, to, file, tables)
    path = write_report(out, results, to, tables)
    console.out(f"Report: {path}", file=file)
    return path


__all__ = ["figures", "report", "Corrupt", "NoData"]
