"""RNN cells as the paper's equations, for whole ensembles at once: pure torch, no I/O.

Adding a cell is one small module: a step function under ``@register``.
"""
from . import gru, vanilla  # noqa: F401  (registers the cells)
from .draws import INITS, draw, stream
from .registry import CELLS, GUARD, Cell, Params, affine, get_cell, register, with_guard

__all__ = ["CELLS", "GUARD", "Cell", "INITS", "Params", "affine", "draw", "get_cell", "register", "stream", "with_guard"]
