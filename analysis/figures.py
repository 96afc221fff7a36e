"""``write_figures(DIR)`` (``lksweep figures DIR``): every registered figure, as PNG and PDF in
``DIR/figures/``. Figures register themselves in the ``fig_*`` modules (``analysis.registry``);
one whose table is missing is skipped with a one-line note, never an error."""
import io
import os
from dataclasses import dataclass
from typing import List, Optional

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (before any pyplot import anywhere)

import pyarrow.fs as pafs  # noqa: E402

from sweeps.store import atomic_write  # noqa: E402

from . import fig_discrepancy, fig_memory, fig_training  # noqa: E402,F401  (register their figures)
from .registry import FIGURES, FigureDef, Skip, Tables  # noqa: E402
from .tables import NoData, available  # noqa: E402

__all__ = ["FIGURES", "FigureDef", "Result", "Skip", "Tables", "build", "write_figures"]


@dataclass
class Result:
    name: str
    title: str
    png: Optional[str] = None
    pdf: Optional[str] = None
    note: str = ""


def build(out: str, names: Optional[List[str]] = None):
    """Yield (definition, Figure or None, note) for every figure (or those in ``names``)."""
    tables = Tables(out)
    for fig in FIGURES:
        if names and fig.name not in names:
            continue
        try:
            yield fig, fig.build(tables), ""
        except Skip as e:
            yield fig, None, f"skipped {fig.name}: {e}"


def write_figures(out: str, names: Optional[List[str]] = None, pdf: bool = True) -> List[Result]:
    """Draw every figure DIR's tables allow into ``DIR/figures/``; NoData if DIR holds no table."""
    if not available(out):
        raise NoData(f"DIR: {out} holds no lksweep table (expected e.g. {out}/discrepancy/*.parquet)")
    fdir = os.path.join(os.path.abspath(out), "figures")
    results = []
    for spec, fig, note in build(out, names):
        r = Result(spec.name, spec.title, note=note)
        if fig is not None:
            r.png = _save(fig, os.path.join(fdir, spec.name + ".png"), dpi=110)
            if pdf:
                r.pdf = _save(fig, os.path.join(fdir, spec.name + ".pdf"))
        results.append(r)
    return results


def _save(fig, path: str, **kwargs) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format=path.rsplit(".", 1)[1], **kwargs)
    atomic_write(pafs.LocalFileSystem(), path, buf.getvalue())
    return path
