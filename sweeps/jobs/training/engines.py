"""The two engines that compute a training ensemble's numbers; the trainer (``ensemble``) keeps
the bookkeeping and calls them. Both hold E members' parameters and optimizer states:

    epoch(members, orders, lr) -> (A,)      one epoch of updates of the members listed; member i
                                            visits the training strings in the order orders[i]
                                            with learning rate lr[i]; returns the mean loss per
                                            sequence over the epoch's updates
    evaluate(members, name) -> (loss, wrong, first), each (A, N): per-string results on data
                                            set ``name`` (``evaluation.per_string``)
    get(i) / put(i, params)                 member i's parameters as named arrays (models.shapes)
    state(i) / load(i, arrays)              its optimizer state as named arrays

``torch`` is the reference: the cells' torch equations with autograd, for every registered cell
and both dtypes. ``numba`` is the fast path (``kernels``): float64, for the cells that have
kernels (``kernels.LAYOUT``: every shipped cell). The two agree to rounding, so the engine is
part of a run's identity; ``auto`` picks ``numba`` wherever it applies.
"""
import os
from typing import Dict, List

import numpy as np
import torch

import cells

from ... import console
from ...errors import UsageError
from . import kernels, models
from .evaluation import per_string
from .protocols import LOSSES, OPTIMIZERS, Adam, sequence_loss
from .reber import Encoded
from .run import DTYPES, Run

ENGINES = ("auto", "numba", "torch")

log = console.logger(__name__)


def resolve(engine: str, cell: str, dtype: str) -> str:
    """The engine a run uses: ``auto`` is ``numba`` for a cell with kernels in float64, else
    ``torch``; an explicit ``numba`` that cannot apply is a UsageError."""
    fast = cell in kernels.CELLS and dtype == "float64"
    if engine == "numba" and not fast:
        why = f"cell {cell!r} has no fast path" if cell not in kernels.CELLS else f"it computes in float64, not {dtype}"
        raise UsageError(f"engine: numba cannot train this run ({why}); fast cells: "
                         f"{', '.join(kernels.CELLS)}. Use engine auto or torch")
    return engine if engine != "auto" else "numba" if fast else "torch"


class TorchEngine:
    """The cells' torch equations with autograd. Each member is computed on tensors of its own:
    in a tensor shared by members, the memory alignment of a member's slice changes how BLAS
    rounds its products, so its numbers would depend on the ensemble it was trained in."""

    def __init__(self, cell: cells.Cell, run: Run, data: Dict[str, Encoded], params: List[Dict[str, np.ndarray]]):
        self.cell, self.run, self.data = cell, run, data
        self.step_loss, self.optimizer = LOSSES[run.loss], OPTIMIZERS[run.optimizer]
        dtype = DTYPES[run.dtype]
        self.p = [{n: torch.from_numpy(a).to(dtype)[None].clone() for n, a in member.items()} for member in params]
        self.opt = [self.optimizer.state(p) for p in self.p]

    def epoch(self, members: List[int], orders: np.ndarray, lr: np.ndarray) -> np.ndarray:
        train, n, bs = self.data["train"], self.run.n_train, self.run.batch_size
        out, on = np.zeros(len(members)), torch.ones(1, dtype=torch.bool)
        for a, i in enumerate(members):
            p, rate, total = self.p[i], torch.tensor(lr[i:i + 1], dtype=torch.float64), 0.0
            for start in range(0, n, bs):
                batch = train.take(torch.from_numpy(orders[i, start:start + bs]))
                for t in p.values():
                    t.requires_grad_(True)
                y, _ = models.forward(self.cell, p, batch.x[None], batch.mask)
                loss = sequence_loss(self.step_loss, y, batch.target[None], batch.mask)   # (1, b)
                grads = torch.autograd.grad(loss.mean(1).sum(), list(p.values()))
                for t in p.values():
                    t.requires_grad_(False)
                self.optimizer.step(p, dict(zip(p, grads)), self.opt[i], rate, on)
                total += float(loss.detach().double().sum())
            out[a] = total / n
        return out

    def evaluate(self, members: List[int], name: str):
        parts = [per_string(self.cell, self.p[i], self.data[name], self.step_loss) for i in members]
        return tuple(np.concatenate(x) for x in zip(*parts))

    def get(self, i: int) -> Dict[str, np.ndarray]:
        return {n: t[0].detach().numpy().copy() for n, t in self.p[i].items()}

    def put(self, i: int, params: Dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for n, t in self.p[i].items():
                t[0] = torch.from_numpy(params[n])

    def state(self, i: int) -> Dict[str, np.ndarray]:
        opt = self.opt[i]
        if not opt:
            return {}
        return {**{f"{key}/{n}": t[0].numpy().copy() for key in ("m", "v") for n, t in opt[key].items()},
                "t": opt["t"].numpy().copy()}

    def load(self, i: int, arrays: Dict[str, np.ndarray]) -> None:
        opt = self.opt[i]
        for key in ("m", "v"):
            for n, t in opt.get(key, {}).items():
                t[0] = torch.from_numpy(arrays[f"{key}/{n}"])
        if opt:
            opt["t"][:] = torch.from_numpy(arrays["t"])


class NumbaEngine:
    """The fast path: the ensemble's parameters as rows of one float64 array, trained and
    evaluated by the compiled kernels (``kernels``)."""

    said_where = False      # whether this process has said where the kernels compile

    def __init__(self, cell: cells.Cell, run: Run, data: Dict[str, Encoded], params: List[Dict[str, np.ndarray]]):
        where = kernels.cache_dir()
        if not NumbaEngine.said_where and os.path.dirname(where) != os.path.dirname(kernels.__file__):
            log.warning(f"lksweep: the training kernels are compiled into {where} (the package directory is not "
                        "writable, or NUMBA_CACHE_DIR says so)")
        NumbaEngine.said_where = True
        kernels.check(cell)
        self.run = run
        self.shapes = models.shapes(run.cell, run.k, run.bias)
        sizes = [int(np.prod(s)) for s in self.shapes.values()]
        self.slices = dict(zip(self.shapes, (slice(a, a + n) for a, n in zip(np.cumsum([0, *sizes]), sizes))))
        start = {n: s.start for n, s in self.slices.items()}
        # each gate's weights found by name, in the kernels' order (a cell may register its gates in another)
        self.off = np.array([start.get(f"{x}{g}", -1) for g in kernels.LAYOUT[run.cell][1] for x in "UWb"]
                            + [start["O"], start.get("bO", -1)], np.int64)
        self.ids = (kernels.CELLS[run.cell], kernels.LOSSES[run.loss], kernels.OPTIMIZERS[run.optimizer])
        self.theta = np.stack([np.concatenate([m[n].ravel() for n in self.shapes]) for m in params]).astype(np.float64)
        self.m, self.v = np.zeros_like(self.theta), np.zeros_like(self.theta)
        self.t = np.zeros(len(params), np.int64)
        self.sets = {name: kernel_arrays(d) for name, d in data.items()}

    def epoch(self, members: List[int], orders: np.ndarray, lr: np.ndarray) -> np.ndarray:
        cell, loss, optimizer = self.ids
        d = self.sets["train"]
        betas, eps = tuple(float(b) for b in Adam.betas), float(Adam.eps)
        return kernels.train_epoch(cell, self.run.k, self.off, self.theta, self.m, self.v, self.t,
                                   np.asarray(lr, np.float64), np.asarray(members, np.int64), orders,
                                   self.run.batch_size, loss, optimizer, betas, eps, d["inp"], d["tgt"], d["steps"])

    def evaluate(self, members: List[int], name: str):
        cell, loss, _ = self.ids
        d = self.sets[name]
        return kernels.evaluate(cell, self.run.k, self.off, self.theta, np.asarray(members, np.int64), loss,
                                *(d[key] for key in ("tgt", "legal", "steps", "last", "parent", "symbol", "node")))

    def get(self, i: int) -> Dict[str, np.ndarray]:
        return self._unpack(self.theta[i])

    def put(self, i: int, params: Dict[str, np.ndarray]) -> None:
        for n, s in self.slices.items():
            self.theta[i, s] = params[n].ravel()

    def state(self, i: int) -> Dict[str, np.ndarray]:
        if self.run.optimizer != "adam":
            return {}
        return {**{f"m/{n}": a for n, a in self._unpack(self.m[i]).items()},
                **{f"v/{n}": a for n, a in self._unpack(self.v[i]).items()}, "t": self.t[i:i + 1].copy()}

    def load(self, i: int, arrays: Dict[str, np.ndarray]) -> None:
        if self.run.optimizer != "adam":
            return
        for n, s in self.slices.items():
            self.m[i, s], self.v[i, s] = arrays[f"m/{n}"].ravel(), arrays[f"v/{n}"].ravel()
        self.t[i] = int(arrays["t"][0])

    def _unpack(self, row: np.ndarray) -> Dict[str, np.ndarray]:
        return {n: row[s].reshape(self.shapes[n]).copy() for n, s in self.slices.items()}


def kernel_arrays(d: Encoded) -> Dict[str, np.ndarray]:
    """A data set as the kernels read it, int64 arrays: ``inp``, ``tgt`` (N, L) the input and
    target symbol of each step, ``legal`` (N, L) the legal set as a 7-bit mask, ``steps`` (N,),
    ``last`` (N,) the long-term step, and the prefix tree of the strings (``prefix_tree``)."""
    legal = (d.legal.long() << torch.arange(models.N_SYMBOLS)).sum(-1)
    out = {name: np.ascontiguousarray(t.numpy(), np.int64) for name, t in
           (("inp", d.x.argmax(-1)), ("tgt", d.target), ("legal", legal), ("steps", d.mask.sum(1)), ("last", d.last))}
    return {**out, **prefix_tree(out["inp"], out["steps"])}


def prefix_tree(inp: np.ndarray, steps: np.ndarray) -> Dict[str, np.ndarray]:
    """The distinct prefixes of the strings, each an extension of an earlier one: ``parent``
    (M,) the prefix it extends (-1: the empty prefix), ``symbol`` (M,) its last input, and
    ``node`` (N, L) the prefix string s has read after step t (0 past its end)."""
    index, parent, symbol = {}, [], []
    node = np.zeros_like(inp)
    for s in range(len(inp)):
        at = -1
        for t in range(steps[s]):
            key = (at, int(inp[s, t]))
            if key not in index:
                index[key] = len(parent)
                parent.append(at)
                symbol.append(key[1])
            at = node[s, t] = index[key]
    return {"parent": np.array(parent, np.int64), "symbol": np.array(symbol, np.int64), "node": node}


def make(cell: cells.Cell, run: Run, data: Dict[str, Encoded], params: List[Dict[str, np.ndarray]]):
    return {"torch": TorchEngine, "numba": NumbaEngine}[run.engine](cell, run, data, params)
