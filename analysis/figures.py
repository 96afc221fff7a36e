"""``write_figures(DIR)`` (``lksweep figures DIR``): every registered figure, as PNG and PDF in
``DIR/figures/`` (DIR a path or a URI: they are written back there), or in ``TO/figures/`` for
a local directory ``TO``. Figures register themselves in the ``fig_*`` modules
(``analysis.registry``); one whose table is missing is skipped with a one-line note, never an
error."""
import io
from dataclasses import dataclass
from typing import List, Optional

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (before any pyplot import anywhere)

from sweeps.store import Store  # noqa: E402

from . import fig_discrepancy, fig_memory, fig_trainability, fig_training  # noqa: E402,F401  (register their figures)
from .registry import FIGURES, FigureDef, Skip, Tables  # noqa: E402
from .tables import NoData, available  # noqa: E402

__all__ = ["FIGURES", "FigureDef", "Result", "Skip", "Tables", "build", "write_figures"]


@dataclass
class Result:
    name: str
    title: str
    png: Optional[str] = None        # where it was written, as the user types it
    pdf: Optional[str] = None
    note: str = ""
    png_bytes: bytes = b""


def build(tables: Tables, names: Optional[List[str]] = None):
    """Yield (definition, Figure or None, note) for every figure (or those in ``names``)."""
    for fig in FIGURES:
        if names and fig.name not in names:
            continue
        try:
            yield fig, fig.build(tables), ""
        except Skip as e:
            yield fig, None, f"skipped {fig.name}: {e}"


def destination(out: str, to: Optional[str]) -> Store:
    """Where figures and the report go: DIR itself, or the local directory ``to``."""
    return Store(to) if to else Store(out)


def write_figures(out: str, names: Optional[List[str]] = None, pdf: bool = True, to: Optional[str] = None,
                  tables: Optional[Tables] = None) -> List[Result]:
    """Draw every figure DIR's tables allow into ``figures/`` of DIR (or of ``to``); NoData if
    DIR holds no table. ``tables``: DIR's tables as already read (a report passes its own, so
    each table is read once), else read here."""
    if not available(out):
        raise NoData(f"DIR: {Store(out).display()} holds no lksweep table (expected e.g. DIR/discrepancy/*.parquet)")
    dest = destination(out, to)
    results = []
    for spec, fig, note in build(tables or Tables(out), names):
        r = Result(spec.name, spec.title, note=note)
        if fig is not None:
            r.png_bytes = _render(fig, "png", dpi=110)
            r.png = _save(dest, f"{spec.name}.png", r.png_bytes)
            if pdf:
                r.pdf = _save(dest, f"{spec.name}.pdf", _render(fig, "pdf"))
        results.append(r)
    return results


def _render(fig, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _save(dest: Store, name: str, data: bytes) -> str:
    path = dest.path("figures", name)
    dest.write_bytes(path, data)
    return dest.display(path)
