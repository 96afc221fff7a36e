"""``lksweep figures DIR`` and ``lksweep report DIR`` (the CLI calls these; no Ray here)."""
import os
import sys

from .tables import Corrupt, NoData


def check_dir(out: str) -> None:
    if not os.path.isdir(out):
        raise NoData(f"DIR: {out} is not a directory")


def figures(out: str, file=None):
    """Write DIR/figures/*.png|pdf, print one line per figure written or skipped."""
    file = file or sys.stdout
    from .figures import write_figures
    check_dir(out)
    results = write_figures(out)
    for r in results:
        print(f"  {r.png}" if r.png else f"  {r.note}", file=file)
    n = sum(1 for r in results if r.png)
    print(f"{n} figure(s) written to {os.path.join(out, 'figures')} (PNG and PDF)", file=file)
    return results


def report(out: str, file=None) -> str:
    """Figures, then DIR/report.html; the last line printed says where the report is."""
    file = file or sys.stdout
    from .report import write_report
    results = figures(out, file)
    path = write_report(out, results)
    print(f"Report: {os.path.abspath(path)}", file=file)
    return path


__all__ = ["figures", "report", "Corrupt", "NoData"]
