"""Random parameter draws for an ensemble of cells.

``normal`` is the paper's N(0, 1); ``xavier`` is N(0, 1/fan_in) and ``uniform`` is
U(-sqrt(1/fan_in), +sqrt(1/fan_in)), the two alternatives the authors tried. ``fan_in`` is
a weight matrix's number of columns (n for U, k for W); biases are drawn with the fan-in
of their gate's recurrent matrix (k).
"""
import math
import zlib
from typing import Dict, Tuple

import numpy as np
import torch

from .registry import Params

INITS = ("normal", "xavier", "uniform")


def stream(*identity) -> np.random.Generator:
    """A random stream that is a function of ``identity`` (ints and strings) only, never of
    the worker, the shard or the ensemble a computation runs in."""
    entropy = [zlib.crc32(x.encode()) if isinstance(x, str) else int(x) for x in identity]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def draw(
    shapes: Dict[str, Tuple[int, ...]],
    ensemble: int,
    init: str,
    generator: np.random.Generator,
    dtype: torch.dtype = torch.float64,
) -> Params:
    """Draw ``ensemble`` independent parameter sets; each tensor is (ensemble, *shape).

    Tensors are drawn in float64, in the order of ``shapes``, from a NumPy generator (its
    streams are stable across releases and its normals several times faster than torch's),
    so a generator in a given state always yields the same parameters.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; known inits: {', '.join(INITS)}")
    out = {}
    for name, shape in shapes.items():
        fan_in = shape[-1] if len(shape) == 2 else shape[0]
        size = (ensemble, *shape)
        if init == "normal":
            t = generator.standard_normal(size)
        elif init == "xavier":
            t = generator.standard_normal(size) / math.sqrt(fan_in)
        else:
            t = generator.uniform(-math.sqrt(1.0 / fan_in), math.sqrt(1.0 / fan_in), size)
        out[name] = torch.from_numpy(t).to(dtype)
    return out
