"""RNN cells as the paper's equations, for whole ensembles at once: pure torch and NumPy, no I/O.

A cell is one small module of this package: a step function under ``@register`` (see
``registry``); every module here other than ``registry`` and ``draws`` is imported below, so
a new file is a new cell, known to the discrepancy and training jobs by its name.
"""
import importlib
import pkgutil

from .draws import GAIN, INITS, draw, gain, parse_gain, stream
from .registry import CELLS, GUARD, Cell, Params, affine, get_cell, register, with_guard

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("draws", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["CELLS", "GAIN", "GUARD", "Cell", "INITS", "Params", "affine", "draw", "gain", "get_cell", "parse_gain",
           "register", "stream", "with_guard"]
