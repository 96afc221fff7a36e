"""The fast training path: forward pass, backpropagation through time, loss, optimizer update
and evaluation of whole ensembles, hand-derived and compiled with numba, float64.

The torch equations in ``cells/`` are the reference (tests check these kernels against torch
autograd); this module is what trains every shipped cell in practice, tens to hundreds of times
faster than the torch path on one thread (``benchmarks/bench_training.py``), because the models
are tiny (about 600 parameters) and per-operation framework overhead, not arithmetic, is what
the torch path spends its time on.

Layout. A member's parameters are one row of ``theta`` (E, P): for each gate of the cell
``U`` (k, n), ``W`` (k, k) and ``b`` (k,) if the run has gate biases, then ``O`` (7, k) and
``bO`` (7,) if it has an output bias, each row-major, in the order of ``models.shapes``.
``off`` holds the offsets: ``off[3g]``, ``off[3g+1]``, ``off[3g+2]`` for U, W and b of gate
number g of ``LAYOUT`` (-1: none), ``off[-2]`` for O and ``off[-1]`` for bO (-1: none). A
state is h, or h followed by c for the LSTM (``memory`` k wide). Data sets are integer arrays:
``inp`` (N, L) input symbol per step, ``tgt`` (N, L) the next symbol, ``legal`` (N, L) the
legal-successor set as a 7-bit mask, ``steps`` (N,) real steps, ``last`` (N,) the step of the
long-term target, and for evaluation the tree of the strings' prefixes (``evaluate``).

Every kernel loops over members one at a time, each member's numbers computed by the same code
in the same order, so a member's results never depend on the ensemble it is in. Every function
is module-level with ``cache=True``: numba compiles each once per machine and keeps it on disk
(``__pycache__`` beside this file, or, where that is read-only, numba's user-wide cache
directory; ``NUMBA_CACHE_DIR`` overrides both). That cache notices an edit to this file only,
so every constant the kernels read lives here (``N_SYMBOLS``, ``LAYOUT``) or arrives as an
argument (Adam's betas and eps): a global imported from another module would stay frozen in
the compiled kernels at its old value. Every constant is float64 and so is every array, so
nothing is promoted. Inner loops index small views (``w[i, j]`` of a matrix sliced out of
``theta``) with their ``range`` counters, never one flat array at a computed offset: numba then
knows the index is non-negative, drops its negative-index wraparound and lets LLVM vectorise
the loop (1.1x per GRU epoch, 1.35x per vanilla one; the same numbers). The kernels are serial
(one thread, as the torch engine in a Ray worker). A new cell gets a fast path by an entry in
``LAYOUT`` and one branch in ``_step`` and in ``_backward``.
"""
import math

import numpy as np
from numba import njit

from . import models

VANILLA, GRU, TANH, LSTM, MGU = 0, 1, 2, 3, 4
SQUARED, CROSS_ENTROPY = 0, 1
SGD, ADAM = 0, 1
N_SYMBOLS = 7       # the alphabet size (models.N_SYMBOLS; ``check`` compares them)
# The cells with a fast path: name -> (id, gates, memory). The gates are listed in the order the
# kernels number them (gate g's weights at off[3g:3g + 3] and tr[g]; the branches of ``_step`` and
# ``_backward`` read them by these numbers); the engine finds each gate's weights by its name,
# and ``check`` refuses a cell whose registered gates or state width differ from these.
LAYOUT = {
    "vanilla": (VANILLA, ("h",), 1),
    "gru": (GRU, ("z", "r", "h"), 1),
    "tanh": (TANH, ("h",), 1),
    "lstm": (LSTM, ("i", "f", "g", "o"), 2),
    "mgu": (MGU, ("f", "h"), 1),
}
# The names the training job uses, and the ids the kernels know them by.
CELLS = {name: cell for name, (cell, _, _) in LAYOUT.items()}
LOSSES = {"squared-error": SQUARED, "cross-entropy": CROSS_ENTROPY}
OPTIMIZERS = {"sgd": SGD, "adam": ADAM}
_GATES = tuple(len(gates) for _, gates, _ in sorted(LAYOUT.values()))     # by id, as the kernels read them
_MEMORY = tuple(memory for _, _, memory in sorted(LAYOUT.values()))
ACTIVATIONS = 5     # rows of a step's activations: at most five (the LSTM's i, f, g, o, tanh c)


def check(cell) -> None:
    """Refuse to train ``cell`` (a registered ``cells.Cell``) if its gates or state width are not
    those of ``LAYOUT``, or the models' alphabet size is not ``N_SYMBOLS``: the kernels would
    read another gate's weights, or past a state, instead of failing."""
    _, gates, memory = LAYOUT[cell.name]
    if sorted(cell.gates) != sorted(gates) or cell.memory != memory:
        raise ValueError(f"cell {cell.name!r} registers gates {cell.gates} and memory {cell.memory}, but its "
                         f"kernels were written for gates {gates} and memory {memory}: update kernels.LAYOUT and "
                         "the cell's branches of _step and _backward")
    if models.N_SYMBOLS != N_SYMBOLS:
        raise ValueError(f"the models read {models.N_SYMBOLS} symbols but the kernels were written for "
                         f"kernels.N_SYMBOLS = {N_SYMBOLS}")


@njit(cache=True, inline="always")
def _sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a))


@njit(cache=True)
def _prepare(cell, k, off, th, tr):
    """The transposed copies the forward pass reads (so that its inner loops run over
    independent outputs, which vectorise without reordering any sum): ``tr[g, x, i]`` = U_g[i, x],
    ``tr[g, n + j, i]`` = W_g[i, j], ``tr[G, i, o]`` = O[o, i]. Refreshed after every update."""
    for gate in range(_GATES[cell]):
        u, w = off[3 * gate], off[3 * gate + 1]
        for i in range(k):
            for x in range(N_SYMBOLS):
                tr[gate, x, i] = th[u + i * N_SYMBOLS + x]
            for j in range(k):
                tr[gate, N_SYMBOLS + j, i] = th[w + i * k + j]
    o_off, last = off[-2], tr[_GATES[cell]]
    for o in range(N_SYMBOLS):
        for i in range(k):
            last[i, o] = th[o_off + o * k + i]


@njit(cache=True, inline="always")
def _affine(th, tr, gate, b_off, k, x, h, a):
    """a = U_g x + W_g h (+ b_g), summed in that order (W h over j = 0..k-1), for the one-hot
    input x (a symbol index) and the state h (k,)."""
    u, w = tr[gate, x], tr[gate, N_SYMBOLS:]
    for i in range(k):
        a[i] = u[i]
    for j in range(k):
        hj, wj = h[j], w[j]
        for i in range(k):
            a[i] += wj[i] * hj
    if b_off >= 0:
        b = th[b_off:b_off + k]
        for i in range(k):
            a[i] += b[i]


@njit(cache=True, inline="always")
def _step(cell, k, off, th, tr, x, s, out, act, y):
    """One step from state ``s`` on input symbol ``x``: the new state into ``out``, the cell's
    activations into ``act`` (vanilla, tanh: the pre-activation; GRU: z, r, h', h∘r; LSTM: i,
    f, g, o, tanh c; MGU: f, h', f∘h) and the outputs into ``y``. A state is h (k,), or h and
    then c (2k,) for the LSTM."""
    if cell == VANILLA or cell == TANH:
        a = act[0]
        _affine(th, tr, 0, off[2], k, x, s, a)
        if cell == VANILLA:
            for i in range(k):
                out[i] = _sigmoid(a[i])
        else:
            for i in range(k):
                out[i] = math.tanh(a[i])
    elif cell == GRU:
        z, r, c, hr = act[0], act[1], act[2], act[3]
        _affine(th, tr, 0, off[2], k, x, s, z)
        _affine(th, tr, 1, off[5], k, x, s, r)
        for i in range(k):
            z[i] = _sigmoid(z[i])
            r[i] = _sigmoid(r[i])
            hr[i] = s[i] * r[i]
        _affine(th, tr, 2, off[8], k, x, hr, c)
        for i in range(k):
            c[i] = math.tanh(c[i])
            out[i] = (1.0 - z[i]) * c[i] + z[i] * s[i]
    elif cell == LSTM:
        ig, fg, cand, og, tc = act[0], act[1], act[2], act[3], act[4]     # cand: g of the equations
        for gate in range(4):
            _affine(th, tr, gate, off[3 * gate + 2], k, x, s, act[gate])
        for i in range(k):
            ig[i] = _sigmoid(ig[i])
            fg[i] = _sigmoid(fg[i])
            cand[i] = math.tanh(cand[i])
            og[i] = _sigmoid(og[i])
            out[k + i] = fg[i] * s[k + i] + ig[i] * cand[i]
            tc[i] = math.tanh(out[k + i])
            out[i] = og[i] * tc[i]
    else:
        f, c, fh = act[0], act[1], act[2]
        _affine(th, tr, 0, off[2], k, x, s, f)
        for i in range(k):
            f[i] = _sigmoid(f[i])
            fh[i] = f[i] * s[i]
        _affine(th, tr, 1, off[5], k, x, fh, c)
        for i in range(k):
            c[i] = math.tanh(c[i])
            out[i] = (1.0 - f[i]) * s[i] + f[i] * c[i]
    ot, bo_off = tr[_GATES[cell]], off[-1]
    for o in range(N_SYMBOLS):
        y[o] = 0.0
    for i in range(k):
        hi = out[i]
        for o in range(N_SYMBOLS):
            y[o] += ot[i, o] * hi
    if bo_off >= 0:
        for o in range(N_SYMBOLS):
            y[o] += th[bo_off + o]


@njit(cache=True)
def _forward(cell, k, off, th, tr, inp, steps, hs, act, y):
    """One sequence: ``hs[t + 1]`` = the state after step t (``hs[0]`` = 0), ``act[t]`` and
    ``y[t]`` for t < steps."""
    for t in range(steps):
        _step(cell, k, off, th, tr, inp[t], hs[t], hs[t + 1], act[t], y[t])


@njit(cache=True, inline="always")
def _loss(loss, y, target, dy):
    """The step loss of outputs ``y`` (7,) for ``target``; ``dy`` gets its gradient."""
    if loss == SQUARED:
        total = 0.0
        for o in range(N_SYMBOLS):
            d = y[o] - (1.0 if o == target else 0.0)
            total += d * d
            dy[o] = 2.0 * d
        return total
    top = y[0]
    for o in range(1, N_SYMBOLS):
        top = max(top, y[o])
    z = 0.0
    for o in range(N_SYMBOLS):
        dy[o] = math.exp(y[o] - top)
        z += dy[o]
    for o in range(N_SYMBOLS):
        dy[o] = dy[o] / z - (1.0 if o == target else 0.0)
    return top + math.log(z) - y[target]


@njit(cache=True, inline="always")
def _gate_backward(th, g, off_u, off_w, off_b, k, x, h, da, dh):
    """Accumulate the gradients of a = U x + W h + b given da (k,) into ``g``, and W^T da into dh
    (each in a loop of its own: a loop that writes one array vectorises)."""
    for i in range(k):
        g[off_u + i * N_SYMBOLS + x] += da[i]
    if off_b >= 0:
        gb = g[off_b:off_b + k]
        for i in range(k):
            gb[i] += da[i]
    gw, w = g[off_w:off_w + k * k].reshape((k, k)), th[off_w:off_w + k * k].reshape((k, k))
    for i in range(k):
        d = da[i]
        for j in range(k):
            gw[i, j] += d * h[j]
    for i in range(k):
        d = da[i]
        for j in range(k):
            dh[j] += w[i, j] * d


@njit(cache=True)
def _backward(cell, k, off, th, g, inp, steps, hs, act, dys, dh, dprev, da):
    """Backpropagation through time of one sequence whose output gradients are ``dys``
    (steps, 7); parameter gradients are added to ``g``. ``dh``, ``dprev`` (the state's width:
    the gradient with respect to the state after and before the step) and ``da`` (4, k) are
    scratch."""
    o_off, bo_off, width = off[-2], off[-1], _MEMORY[cell] * k
    O = th[o_off:o_off + N_SYMBOLS * k].reshape((N_SYMBOLS, k))
    gO = g[o_off:o_off + N_SYMBOLS * k].reshape((N_SYMBOLS, k))
    for j in range(width):
        dprev[j] = 0.0
    for t in range(steps - 1, -1, -1):
        x, s, out, dy = inp[t], hs[t], hs[t + 1], dys[t]
        for i in range(width):
            dh[i] = dprev[i]
            dprev[i] = 0.0
        for o in range(N_SYMBOLS):
            d, w = dy[o], O[o]
            for i in range(k):
                dh[i] += w[i] * d
        for o in range(N_SYMBOLS):
            d, go = dy[o], gO[o]
            for i in range(k):
                go[i] += d * out[i]
            if bo_off >= 0:
                g[bo_off + o] += d
        if cell == VANILLA or cell == TANH:
            if cell == VANILLA:
                for i in range(k):
                    da[0, i] = dh[i] * out[i] * (1.0 - out[i])
            else:
                for i in range(k):
                    da[0, i] = dh[i] * (1.0 - out[i] * out[i])
            _gate_backward(th, g, off[0], off[1], off[2], k, x, s, da[0], dprev)
        elif cell == GRU:
            z, r, c, hr = act[t, 0], act[t, 1], act[t, 2], act[t, 3]
            dz, dr, dc = da[0], da[1], da[2]
            for i in range(k):
                dprev[i] = dh[i] * z[i]
                dz[i] = dh[i] * (s[i] - c[i]) * z[i] * (1.0 - z[i])
                dc[i] = dh[i] * (1.0 - z[i]) * (1.0 - c[i] * c[i])
                dr[i] = 0.0
            _gate_backward(th, g, off[6], off[7], off[8], k, x, hr, dc, dr)   # dr <- d(h∘r)
            for j in range(k):
                dprev[j] += dr[j] * r[j]
                dr[j] = dr[j] * s[j] * r[j] * (1.0 - r[j])
            _gate_backward(th, g, off[0], off[1], off[2], k, x, s, dz, dprev)
            _gate_backward(th, g, off[3], off[4], off[5], k, x, s, dr, dprev)
        elif cell == LSTM:
            ig, fg, cand, og, tc = act[t, 0], act[t, 1], act[t, 2], act[t, 3], act[t, 4]
            for i in range(k):
                dc = dh[k + i] + dh[i] * og[i] * (1.0 - tc[i] * tc[i])     # dL/dc_t, through c_t+1 and h_t
                dprev[k + i] = dc * fg[i]
                da[0, i] = dc * cand[i] * ig[i] * (1.0 - ig[i])
                da[1, i] = dc * s[k + i] * fg[i] * (1.0 - fg[i])
                da[2, i] = dc * ig[i] * (1.0 - cand[i] * cand[i])
                da[3, i] = dh[i] * tc[i] * og[i] * (1.0 - og[i])
            for gate in range(4):
                _gate_backward(th, g, off[3 * gate], off[3 * gate + 1], off[3 * gate + 2], k, x, s, da[gate], dprev)
        else:
            f, c, fh = act[t, 0], act[t, 1], act[t, 2]
            df, dc, dfh = da[0], da[1], da[2]
            for i in range(k):
                dprev[i] = dh[i] * (1.0 - f[i])
                df[i] = dh[i] * (c[i] - s[i])
                dc[i] = dh[i] * f[i] * (1.0 - c[i] * c[i])
                dfh[i] = 0.0
            _gate_backward(th, g, off[3], off[4], off[5], k, x, fh, dc, dfh)   # dfh <- d(f∘h)
            for j in range(k):
                dprev[j] += dfh[j] * f[j]
                df[j] = (df[j] + dfh[j] * s[j]) * f[j] * (1.0 - f[j])
            _gate_backward(th, g, off[0], off[1], off[2], k, x, s, df, dprev)


@njit(cache=True)
def _scratch(cell, k, length):
    """Per-sequence buffers: tr (see _prepare), hs, act, y, dy, dh, dprev, da."""
    width = _MEMORY[cell] * k
    return (np.zeros((_GATES[cell] + 1, N_SYMBOLS + k, max(k, N_SYMBOLS))), np.zeros((length + 1, width)),
            np.zeros((length, ACTIVATIONS, k)), np.zeros((length, N_SYMBOLS)), np.zeros((length, N_SYMBOLS)),
            np.zeros(width), np.zeros(width), np.zeros((4, k)))


@njit(cache=True)
def _sequence(cell, k, off, th, g, loss, inp, tgt, steps, buf):
    """Forward and backward of one sequence; returns its loss, adds its gradient to ``g``."""
    tr, hs, act, y, dy, dh, dprev, da = buf
    _forward(cell, k, off, th, tr, inp, steps, hs, act, y)
    total = 0.0
    for t in range(steps):
        total += _loss(loss, y[t], tgt[t], dy[t])
    _backward(cell, k, off, th, g, inp, steps, hs, act, dy, dh, dprev, da)
    return total


@njit(cache=True)
def train_epoch(cell, k, off, theta, m, v, t, lr, members, orders, batch, loss, optimizer, betas, eps, inp, tgt,
                steps):
    """One epoch of minibatch training for ``members`` (indices into the ensemble's rows):
    member e visits the strings in the order ``orders[e]``, and after every ``batch`` of them
    (the last batch may be smaller) takes one optimizer step on the batch's mean loss, with
    learning rate ``lr[e]`` (Adam: with ``betas`` (β1, β2) and ``eps``). ``theta``, the Adam
    moments ``m``, ``v`` (E, P) and step counts ``t`` (E,) are updated in place. Returns each
    member's mean loss per sequence over the epoch's updates (loss of each sequence under the
    parameters it was trained with)."""
    n, p = orders.shape[1], theta.shape[1]
    buf = _scratch(cell, k, inp.shape[1])
    g = np.zeros(p)
    out = np.zeros(len(members))
    for a in range(len(members)):
        e = members[a]
        th, order = theta[e], orders[e]
        total = 0.0
        for start in range(0, n, batch):
            _prepare(cell, k, off, th, buf[0])
            stop = min(start + batch, n)
            g[:] = 0.0
            for s in order[start:stop]:
                total += _sequence(cell, k, off, th, g, loss, inp[s], tgt[s], steps[s], buf)
            if stop - start > 1:       # the mean over the batch (a division by 1 is exact: skipped)
                size = float(stop - start)
                for j in range(p):
                    g[j] /= size
            if optimizer == SGD:
                rate = lr[e]
                for j in range(p):
                    th[j] -= rate * g[j]
            else:
                t[e] += 1
                _adam(th, m[e], v[e], g, lr[e], t[e], betas, eps)
        out[a] = total / n
    return out


@njit(cache=True)
def _adam(th, m, v, g, lr, t, betas, eps):
    """One Adam step of one member at step count t; ``g`` (the gradient) is overwritten. Each
    quantity has a loop of its own: so, and only so, does every loop vectorise."""
    beta1, beta2 = betas
    c1, c2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t
    for j in range(len(g)):
        m[j] = beta1 * m[j] + (1.0 - beta1) * g[j]
    for j in range(len(g)):
        v[j] = beta2 * v[j] + (1.0 - beta2) * g[j] * g[j]
    for j in range(len(g)):
        g[j] = math.sqrt(v[j] / c2)
    for j in range(len(g)):
        th[j] -= lr * (m[j] / c1) / (g[j] + eps)


@njit(cache=True)
def evaluate(cell, k, off, theta, members, loss, tgt, legal, steps, last, parent, symbol, node):
    """Per member and string: the loss (A, N), the number of wrong steps (a step is right when
    the smallest output over its legal set is larger than the largest other output, HS97) and
    whether the output at step ``last`` puts the right symbol first (ties: the first largest).

    The strings' prefixes form a tree (``prefix_tree``): prefix m extends prefix ``parent[m]``
    (-1: the empty one, state 0) by the input ``symbol[m]``, and ``node[s, t]`` is the prefix
    string s has read at step t. Each prefix is computed once, by the same arithmetic as a
    sequence's forward pass: a set of embedded Reber strings shares most of its prefixes."""
    n_strings, n_nodes = tgt.shape[0], len(parent)
    tr, _, act, _, dy, _, _, _ = _scratch(cell, k, 1)
    width = _MEMORY[cell] * k
    hs, ys, zero = np.zeros((n_nodes, width)), np.zeros((n_nodes, N_SYMBOLS)), np.zeros(width)
    losses = np.zeros((len(members), n_strings))
    wrong = np.zeros((len(members), n_strings), np.int64)
    first = np.zeros((len(members), n_strings), np.bool_)
    for a in range(len(members)):
        th = theta[members[a]]
        _prepare(cell, k, off, th, tr)
        for m in range(n_nodes):
            h = zero if parent[m] < 0 else hs[parent[m]]
            _step(cell, k, off, th, tr, symbol[m], h, hs[m], act[0], ys[m])
        for s in range(n_strings):
            total, bad = 0.0, 0
            for t in range(steps[s]):
                y = ys[node[s, t]]
                total += _loss(loss, y, tgt[s, t], dy[0])
                low, high = np.inf, -np.inf
                for o in range(N_SYMBOLS):
                    if legal[s, t] >> o & 1:
                        low = min(low, y[o])
                    else:
                        high = max(high, y[o])
                bad += 0 if low > high else 1
            losses[a, s], wrong[a, s] = total, bad
            first[a, s] = np.argmax(ys[node[s, last[s]]]) == tgt[s, last[s]]
    return losses, wrong, first


@njit(cache=True)
def gradient(cell, k, off, theta, member, loss, inp, tgt, steps):
    """Gradient of the summed loss of the given sequences with respect to one member's
    parameters, and that loss (for tests against autograd)."""
    buf = _scratch(cell, k, inp.shape[1])
    _prepare(cell, k, off, theta[member], buf[0])
    g = np.zeros(theta.shape[1])
    total = 0.0
    for s in range(inp.shape[0]):
        total += _sequence(cell, k, off, theta[member], g, loss, inp[s], tgt[s], steps[s], buf)
    return g, total


def cache_dir() -> str:
    """Where numba keeps these kernels compiled: ``__pycache__`` beside this file or, where that
    is not writable (a read-only install), numba's per-user cache directory; ``NUMBA_CACHE_DIR``
    overrides both."""
    return train_epoch._cache._cache_path
