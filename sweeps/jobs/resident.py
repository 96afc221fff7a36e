"""The cache-resident path of the discrepancy job, and the largest Lyapunov exponent.

Wide cells spend their time reading every draw's matrices once per step: a block of 50 GRU
draws at k = 256 holds 79 MB of float64 weights, which no cache keeps. This path advances
a few draws at a time (``chunk_size``: as many as fit in ``CACHE_BYTES``, a divisor of the
block so that a draw's numbers never depend on the shard), runs the cells' own step functions
on NumPy arrays (OpenBLAS's products of a matrix with two vectors run 2-3x faster than
torch's here), and keeps each draw's matrices in cache across the l_max steps. Its numbers
agree with the reference torch path to rounding: to 1e-12 for the vanilla cell, and for
gated cells as long as their chaos leaves rounding below that (tested).

The largest Lyapunov exponent of the autonomous map s -> step(p, 0, s) follows one tangent
vector along u's trajectory, renormalised every step: the state carries it in its
imaginary part (s + iεδ, ε = ``EPS``), which the cells' helpers propagate to first order
exactly (``cells.registry``), so J δ is exact to rounding for any registered cell, without a
hand-written Jacobian. The first tangent is the direction of s_v - s_u after the first
symbol, so the tangent follows the linearisation of D itself.

The noisy runs of memory under noise (:func:`decodability`) take this path whatever k: 32
runs a draw make matrix products of the chunk's own weights, and each draw reads its noise
from a stream of its own.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

import cells

from . import decodable, memory

CACHE_BYTES = 8 * 2**20     # the weights a chunk keeps resident (measured fastest here: 4-8 MiB of a 32 MiB L3)
BLOCK_DIVISORS = (50, 25, 10, 5, 2, 1)
EPS = 1e-20                 # size of the imaginary tangent: its square vanishes beside rounding
RETAIN_SATURATED = 0.99     # a unit whose retain gate exceeds this keeps its memory
NORM_STEPS = 64             # steps whose differences are buffered before one vectorised norm


def chunk_size(params: cells.Params) -> int:
    """Draws advanced together: the largest divisor of a block of 50 whose weights fit in
    ``CACHE_BYTES`` (at least 1)."""
    return chunk_size_of(sum(t[0].numel() * t.element_size() for t in params.values()))


def chunk_size_of(per_draw: int) -> int:
    """:func:`chunk_size` for draws of ``per_draw`` bytes of weights."""
    return next((e for e in BLOCK_DIVISORS if e * per_draw <= CACHE_BYTES), 1)


def as_numpy(params: cells.Params, a: int, b: int, dtype=None) -> dict:
    """Draws [a, b) as NumPy arrays whose matrices' transposes are contiguous: ``h @ W.T`` then
    reads each matrix row by row, the layout OpenBLAS is fastest on."""
    out = {}
    for name, t in params.items():
        x = t[a:b].numpy() if dtype is None else t[a:b].numpy().astype(dtype)
        out[name] = np.ascontiguousarray(x.swapaxes(-1, -2)).swapaxes(-1, -2) if x.ndim == 3 else x
    return out


def distances(cell: cells.Cell, params: cells.Params, l_max: int,
              need: Optional[int] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """||h_u - h_v||_2 after each of l_max steps, (E, l_max), and for cells whose state is more
    than h the distance of the whole states, (E, l_max) (else None). With ``need``, only the
    chunks holding the first ``need`` draws are computed (the rest of the rows are undefined):
    chunks stay whole, so a draw's numbers never depend on how many draws follow it."""
    w = params[f"W{cell.gates[0]}"]
    e_all, k = w.shape[0], w.shape[-1]
    width = cell.memory * k
    dtype = w.numpy().dtype
    d_h = np.empty((e_all, l_max))
    d_s = np.empty((e_all, l_max)) if cell.memory > 1 else None
    first = np.eye(2, dtype=dtype)          # u starts with 0, v with 1 (one-hot rows)
    zeros = first[[0, 0]]                   # then both read 0
    step = chunk_size(params)
    with np.errstate(over="ignore"):       # exp overflows to inf in σ of very negative inputs: σ = 0, as it should
        for a in range(0, e_all if need is None else need, step):
            p = as_numpy(params, a, a + step)
            e = min(step, e_all - a)
            s = np.zeros((e, 2, width), dtype)
            diff = np.empty((min(NORM_STEPS, l_max), e, width))
            for t0 in range(0, l_max, NORM_STEPS):
                t1 = min(t0 + NORM_STEPS, l_max)
                for t in range(t0, t1):
                    s = cell.step(p, first if t == 0 else zeros, s)
                    np.subtract(s[:, 0], s[:, 1], out=diff[t - t0])
                part = diff[: t1 - t0]
                d_h[a: a + e, t0:t1] = np.sqrt((part[..., :k] ** 2).sum(-1)).T
                if d_s is not None:
                    d_s[a: a + e, t0:t1] = np.sqrt((part**2).sum(-1)).T
    return d_h, d_s


def decodability(cell: cells.Cell, params: cells.Params, l_max: int, noise: float,
                 streams: Sequence[np.random.Generator], need: Optional[int] = None) -> np.ndarray:
    """Per draw and step, (E, l_max): the held-out accuracy of the linear readout telling u
    from v (:func:`sweeps.jobs.decodable.accuracy`) when every step adds N(0, noise²) to the
    state of each of ``REPEATS`` runs of u and of v. Draw i's noise comes from ``streams[i]``,
    step after step (an array (2 REPEATS, state width) a step: u's repeats, then v's), drawn in
    float64 whatever the dtype, so a draw's numbers depend on nothing but the draw and its
    stream, and l_max only cuts them short. ``need`` as in :func:`distances`."""
    w = params[f"W{cell.gates[0]}"]
    e_all, k = w.shape[0], w.shape[-1]
    width = cell.memory * k
    dtype = w.numpy().dtype
    r = decodable.REPEATS
    acc = np.empty((e_all, l_max))
    first = np.repeat(np.eye(2, dtype=dtype), r, axis=0)    # u's repeats read 0, v's 1
    zeros = first[[0] * 2 * r]                              # then all read 0
    step = chunk_size(params)
    with np.errstate(over="ignore"):
        for a in range(0, e_all if need is None else need, step):
            p = as_numpy(params, a, a + step)
            e = min(step, e_all - a)
            s = np.zeros((e, 2 * r, width), dtype)
            h = np.empty((min(NORM_STEPS, l_max), e, 2 * r, k), dtype)
            for t0 in range(0, l_max, NORM_STEPS):
                t1 = min(t0 + NORM_STEPS, l_max)
                kicks = np.zeros((t1 - t0, e, 2 * r, width))      # draws past ``streams`` are not needed
                for i, g in enumerate(streams[a: a + e]):
                    kicks[:, i] = g.standard_normal((t1 - t0, 2 * r, width))
                kicks = (noise * kicks).astype(dtype)
                for t in range(t0, t1):
                    s = cell.step(p, first if t == 0 else zeros, s) + kicks[t - t0]
                    h[t - t0] = cell.hidden(s)
                acc[a: a + e, t0:t1] = decodable.accuracy(h[: t1 - t0]).T
    return acc


def lyapunov(cell: cells.Cell, params: cells.Params, l_max: int,
             need: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per draw, in float64: the largest Lyapunov exponent (per step, natural log) of the map
    s -> step(p, 0, s) along u's trajectory, averaged over steps (l_max // 2, l_max] (the first
    half lets the tangent align with the most expanding direction), and the share of units
    whose retain gate exceeds ``RETAIN_SATURATED`` at step l_max (NaN for ungated cells).

    An exponent of -inf means the tangent vanished to float64 resolution (a derivative below
    about 1e-300 in every direction); NaN when l_max < 2. ``need`` as in :func:`distances`."""
    w = params[f"W{cell.gates[0]}"]
    e_all = w.shape[0]
    lam = np.full(e_all, np.nan)
    saturated = np.full(e_all, np.nan)
    if l_max < 2:
        return lam, saturated
    first = np.eye(2)
    x0, x1 = first[[0]], first[[1]]
    step = chunk_size(params)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for a in range(0, e_all if need is None else need, step):
            p = as_numpy(params, a, a + step, np.float64)
            e = min(step, e_all - a)
            s0 = np.zeros((e, 1, cell.memory * w.shape[-1]))
            s = cell.step(p, x0, s0)
            delta = _unit(cell.step(p, x1, s0) - s)
            total = np.zeros(e)
            for t in range(2, l_max + 1):
                s = cell.step(p, x0, s + 1j * EPS * delta)
                tangent = s.imag / EPS
                growth = np.sqrt((tangent**2).sum(axis=(-1, -2)))
                if t > l_max // 2:
                    total += np.log(growth)
                s = s.real
                # A vanished tangent stays vanished (its exponent is already -inf).
                delta = np.where(growth[:, None, None] > 0, tangent / growth[:, None, None], delta)
            lam[a: a + e] = total / (l_max - l_max // 2)
            if cell.retain is not None:
                saturated[a: a + e] = (cell.retain(p, x0, s) > RETAIN_SATURATED).mean(axis=(-1, -2))
    return lam, saturated


def settled(cell: cells.Cell, params: cells.Params, l_max: int,
            need: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What u's and v's trajectories settled on, per draw, in float64 (``sweeps.jobs.memory.period``
    and ``phase_shift``): u's period and v's (1: a fixed point, p: an orbit of period p, 0: neither
    within ``memory.PERIOD_MAX`` steps), and the shift j at which v's last state lies on u's
    state j steps earlier (0: v merged with u; j > 0: v on u's orbit at another phase; -1: on
    none of u's last states). ``need`` as in :func:`distances`."""
    w = params[f"W{cell.gates[0]}"]
    e_all = w.shape[0]
    out = np.full((3, e_all), np.nan)
    first = np.eye(2)
    zeros = first[[0, 0]]
    step = chunk_size(params)
    recent = min(memory.PERIOD_MAX + 1, l_max)
    with np.errstate(over="ignore"):
        for a in range(0, e_all if need is None else need, step):
            p = as_numpy(params, a, a + step, np.float64)
            e = min(step, e_all - a)
            s = np.zeros((e, 2, cell.memory * w.shape[-1]))
            last = np.empty((recent, e, 2, s.shape[-1]))      # last[j]: the states j steps before l_max
            for t in range(l_max):
                s = cell.step(p, first if t == 0 else zeros, s)
                if t >= l_max - recent:
                    last[l_max - 1 - t] = s
            out[:, a: a + e] = (memory.period(last[:, :, 0]), memory.period(last[:, :, 1]),
                                memory.phase_shift(last[0, :, 1], last[:, :, 0]))
    return out[0], out[1], out[2]


def _unit(v: np.ndarray) -> np.ndarray:
    """``v`` (E, 1, m) scaled to unit norm per draw (a zero vector becomes the uniform direction)."""
    n = np.sqrt((v**2).sum(axis=(-1, -2), keepdims=True))
    uniform = np.full_like(v, 1 / np.sqrt(v.shape[-1]))
    return np.where(n > 0, v / np.where(n > 0, n, 1), uniform)
