"""RNN cells as the paper's equations, for whole ensembles at once: pure torch and NumPy, no I/O.

A cell is one small module of this package: a step function under ``@register`` (see
``registry``); every module here other than ``registry`` and ``draws`` is imported below, so
a new file is a new cell, known to the discrepancy and training jobs by its name.

Another installed package adds cells without editing this one: it names a module under the
entry-point group ``lksweep.cells`` whose import registers them (:func:`load_plugins`, run
when this package is imported, so in the driver and in every Ray worker alike).
"""
import importlib
import logging
import pkgutil
from importlib import metadata
from typing import List

from .draws import GAIN, INITS, draw, gain, parse_gain, stream
from .registry import CELLS, GUARD, Cell, Params, affine, get_cell, register, with_guard

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("draws", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

GROUP = "lksweep.cells"
log = logging.getLogger(f"lksweep.{__name__}")


def load_plugins() -> List[str]:
    """Import the module each ``lksweep.cells`` entry point names (its import registers its
    cells); one that fails is a warning naming it, and the others load all the same. Returns
    the names of the entry points loaded."""
    loaded = []
    for ep in metadata.entry_points(group=GROUP):
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001 - whatever a plugin raises, lksweep runs without it
            why = (str(e).strip().splitlines() or [""])[0]
            log.warning(f"lksweep: cells plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                        f"{type(e).__name__}: {why}")
        else:
            loaded.append(ep.name)
    return loaded


PLUGINS = load_plugins()

__all__ = ["CELLS", "GAIN", "GUARD", "PLUGINS", "Cell", "INITS", "Params", "affine", "draw", "gain", "get_cell",
           "load_plugins", "parse_gain", "register", "stream", "with_guard"]
