"""Random parameter draws for an ensemble of cells.

``normal`` is the paper's N(0, 1); ``xavier`` is N(0, 1/fan_in) and ``uniform`` is
U(-sqrt(1/fan_in), +sqrt(1/fan_in)), the two alternatives the authors tried; ``gain:G`` is
N(0, G²/fan_in), the weight scale as a dimension (xavier is G = 1 in distribution; the
paper's N(0, 1) is G = sqrt(fan_in)). ``fan_in`` is a weight matrix's number of columns (n for
U, k for W); biases are drawn with the fan-in of their gate's recurrent matrix (k).
"""
import math
import zlib
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .registry import Params

INITS = ("normal", "xavier", "uniform")
GAIN = "gain"          # the family gain:G, G > 0


def stream(*identity) -> np.random.Generator:
    """A random stream that is a function of ``identity`` (ints and strings) only, never of
    the worker, the shard or the ensemble a computation runs in."""
    entropy = [zlib.crc32(x.encode()) if isinstance(x, str) else int(x) for x in identity]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def parse_gain(init: str) -> Optional[float]:
    """G of a ``gain:G`` init; None for the named inits. ValueError for anything else."""
    if init in INITS:
        return None
    family, sep, value = init.partition(":")
    try:
        g = float(value) if family == GAIN and sep else math.nan
    except ValueError:
        g = math.nan
    if not (g > 0 and math.isfinite(g)):
        raise ValueError(f"unknown init {init!r}; known inits: {', '.join(INITS)} or {GAIN}:G with G > 0 (e.g. gain:2)")
    return g


def gain(init: str, fan_in: int) -> float:
    """The gain of a weight matrix with ``fan_in`` columns drawn by ``init``: sqrt(fan_in x the
    variance of its entries), so that W ~ N(0, gain²/fan_in) or a draw of the same variance."""
    g = parse_gain(init)
    return g if g is not None else {"normal": math.sqrt(fan_in), "xavier": 1.0, "uniform": 1 / math.sqrt(3)}[init]


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
    g = parse_gain(init)
    out = {}
    for name, shape in shapes.items():
        fan_in = shape[-1] if len(shape) == 2 else shape[0]
        size = (ensemble, *shape)
        if init == "normal":
            t = generator.standard_normal(size)
        elif init == "xavier":
            t = generator.standard_normal(size) / math.sqrt(fan_in)
        elif init == "uniform":
            t = generator.uniform(-math.sqrt(1.0 / fan_in), math.sqrt(1.0 / fan_in), size)
        else:
            t = generator.standard_normal(size) * (g / math.sqrt(fan_in))
        out[name] = torch.from_numpy(t).to(dtype)
    return out
