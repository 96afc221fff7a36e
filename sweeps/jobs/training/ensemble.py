"""Training E runs of one configuration, differing only in their seed, as one ensemble.

Each epoch, every active member trains on the training set, then is scored on the validation
set. The validation set decides everything the run chooses:

- **selection**: the run's model is the one of the epoch with the highest validation string
  accuracy (HS97: every step of a string right), then outer accuracy, then step accuracy, the
  earliest such epoch on ties; epoch 0, the initial model, is a candidate. Its train,
  validation and test scores, gradients and probe outputs are what the tables report; the test
  set is scored only for this model, so nothing is chosen on it.
- **stopping**: the protocol's rule (``protocols``), the epoch cap, and, under every protocol,
  a solved validation set (every string right, so every score is 1): no later epoch could then
  be selected (ties go to the earliest), so stopping there changes no reported score, only the
  length of the learning curve.
- **divergence**: a member whose training loss or parameters are no longer finite after an
  epoch stops there (``diverged``); that epoch is never selected, so its tables report the
  best finite model before it. The other members train on: each has its own numbers.
"""
import math
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa
import torch

import cells

from ...errors import shown
from . import checkpoint, engines, gradients, models, probes, reber
from .evaluation import scores
from .protocols import LOSSES, OPTIMIZERS, PROTOCOLS
from .run import DTYPES, Run, run_id
from .tables import KEY, MEASURES, SCHEMAS, SHARD

SELECT_BY = ("string_accuracy", "outer_accuracy", "step_accuracy")   # validation scores, compared in this order
# A member's bookkeeping, as its checkpoint's JSON holds it (Ensemble._fresh).
MEMBER_KEYS = {"epoch", "lr", "prev_loss", "stop", "rng", "epochs", "best_epoch", "best_score", "init_gradients",
               "wall_s"}
# Bytes of that JSON a checkpoint may hold: its gradient summaries at the start (about 20 KB) and
# one row per epoch (about 200 bytes), with room to spare.
META_BYTES, META_BYTES_PER_EPOCH = 2**20, 2048
RUN_COLUMNS = {name for name, _, _ in KEY} | {"stage"}     # what _tables adds to the rows a member keeps


class Ensemble:
    """E runs of one configuration (differing only in seed) trained in lockstep.

    Member i keeps its own learning rate, optimizer state, data order stream, epoch count,
    selected model and stop flag; a member's numbers depend only on its own seed and the
    configuration (each engine computes every member on its own). Members resumed from
    checkpoints may be at different epochs: every epoch has the same number of updates, so
    they still advance together.
    """

    def __init__(self, runs: List[Run], states: List[Optional[bytes]]):
        c = self.config = runs[0]
        self.seeds = [r.seed for r in runs]
        self.cell = cells.get_cell(c.cell)
        self.protocol = PROTOCOLS[c.protocol]
        self.embedded = c.task == "embedded-reber"
        self.strings = reber.draw_sets(c.task, {"train": c.n_train, "val": c.n_val, "test": c.n_test}, c.data_seed,
                                       c.lag, c.sampling)
        self.data = reber.encode_sets(self.strings, self.embedded, DTYPES[c.dtype])
        init = models.init_params(c.cell, c.k, c.bias, c.init, self.seeds, DTYPES[c.dtype])
        params = [{n: t[i].numpy() for n, t in init.items()} for i in range(len(runs))]
        self.engine = engines.make(self.cell, c, self.data, params)
        self.initial = params                      # drawn from the seed alone, so a resumed run has them too
        self.best = [dict(p) for p in params]      # each member's selected model so far
        self.members = [self._fresh(seed) if s is None else self._load(i, s)
                        for i, (seed, s) in enumerate(zip(self.seeds, states))]
        fresh = [i for i, s in enumerate(states) if s is None]
        if fresh:
            t0 = time.perf_counter()
            self._record(fresh, None, self._scores(fresh, "val"))
            for i, rows in zip(fresh, self._gradients(fresh)):
                self.members[i]["init_gradients"] = rows
            self._charge(fresh, time.perf_counter() - t0)

    def _fresh(self, seed: int) -> Dict:
        c = self.config
        rng = cells.stream("order", seed, c.task, c.cell, c.k, c.protocol)
        return {"epoch": 0, "lr": c.lr, "prev_loss": None, "stop": None, "rng": rng.bit_generator.state,
                "epochs": [], "best_epoch": 0, "best_score": None, "init_gradients": [], "wall_s": 0.0}

    def _load(self, i: int, state: bytes) -> Dict:
        """Member i from its checkpoint; returns its bookkeeping."""
        arrays, meta = open_state(state, self.config)
        self.engine.put(i, {n[6:]: a for n, a in arrays.items() if n.startswith("param/")})
        self.engine.load(i, {n[4:]: a for n, a in arrays.items() if n.startswith("opt/")})
        self.best[i] = {n[5:]: a for n, a in arrays.items() if n.startswith("best/")}
        return meta

    def state(self, i: int) -> bytes:
        """Member i's checkpoint: everything its next epochs depend on (NumPy arrays and JSON)."""
        arrays = {**{f"param/{n}": a for n, a in self.engine.get(i).items()},
                  **{f"opt/{n}": a for n, a in self.engine.state(i).items()},
                  **{f"best/{n}": a for n, a in self.best[i].items()}}
        return checkpoint.write(arrays, self.members[i])

    def active(self) -> List[int]:
        return [i for i, m in enumerate(self.members) if m["stop"] is None]

    def _charge(self, idx: List[int], seconds: float) -> None:
        for i in idx:
            self.members[i]["wall_s"] += seconds / len(idx)

    def _scores(self, idx: List[int], name: str) -> Dict[str, np.ndarray]:
        return scores(*self.engine.evaluate(idx, name), self.data[name], self.embedded)

    def epoch(self) -> List[int]:
        """Train every active member for one epoch; returns the members that stopped."""
        t0 = time.perf_counter()
        active = self.active()
        orders = np.tile(np.arange(self.config.n_train), (len(self.members), 1))
        for i in active if self.config.order == "shuffled" else ():
            rng = np.random.Generator(np.random.PCG64())
            rng.bit_generator.state = self.members[i]["rng"]
            orders[i] = rng.permutation(self.config.n_train)
            self.members[i]["rng"] = rng.bit_generator.state
        lr = np.array([m["lr"] for m in self.members])
        losses = self.engine.epoch(active, orders, lr)
        stopped = self._record(active, losses, self._scores(active, "val"))
        self._charge(active, time.perf_counter() - t0)
        return stopped

    def _record(self, idx: List[int], losses: Optional[np.ndarray], val: Dict[str, np.ndarray]) -> List[int]:
        """Record an epoch row for members ``idx`` (``losses`` None: epoch 0, the initial
        model), keep the selected model, and apply the stopping rules."""
        stopped = []
        for j, i in enumerate(idx):
            m = self.members[i]
            row = {"epoch": m["epoch"] + (losses is not None), "lr": m["lr"],
                   "train_loss": None if losses is None else float(losses[j]),
                   **{f"val_{key}": float(v[j]) for key, v in val.items()}}
            params = self.engine.get(i)
            diverged = losses is not None and not (np.isfinite(row["train_loss"])
                                                   and all(np.isfinite(a).all() for a in params.values()))
            if diverged:   # a non-finite model's outputs may still rank the legal symbols first: no score
                row.update({f"val_{key}": np.nan for key in val})
            m["epochs"].append(row)
            score = [0.0 if np.isnan(row[f"val_{q}"]) else row[f"val_{q}"] for q in SELECT_BY]
            if not diverged and (m["best_score"] is None or score > m["best_score"]):
                m["best_epoch"], m["best_score"] = row["epoch"], score
                self.best[i] = params
            if losses is None:
                continue
            m["epoch"] += 1
            if diverged:
                m["stop"] = "diverged"
            else:
                m["lr"], m["stop"] = self.protocol.after_epoch(m["lr"], row["train_loss"], m["prev_loss"], self.config)
                if row["val_string_accuracy"] == 1.0:
                    m["stop"] = "solved"
                elif m["stop"] is None and m["epoch"] >= self.config.max_epochs:
                    m["stop"] = "max_epochs"
            m["prev_loss"] = row["train_loss"]
            if m["stop"] is not None:
                stopped.append(i)
        return stopped

    def _torch_params(self, i: int) -> cells.Params:
        """Member i's selected model as a one-member ensemble of torch tensors."""
        return {n: torch.from_numpy(a).to(DTYPES[self.config.dtype])[None] for n, a in self.best[i].items()}

    def _gradients(self, idx: List[int]) -> List[List[Dict]]:
        # One member at a time, for the reason TorchEngine gives.
        return [gradients.summarise(self.cell, self._torch_params(i), self.data["train"], LOSSES[self.config.loss])[0]
                for i in idx]

    def finish(self, idx: List[int]) -> List[pa.Table]:
        """The packed result tables of members ``idx``, which have stopped: their selected
        models scored on every set, their gradients and probe outputs."""
        t0 = time.perf_counter()
        for i in idx:
            self.engine.put(i, self.best[i])
        per_set = {name: self.engine.evaluate(idx, name) for name in reber.SETS}
        sets = {name: scores(*r, self.data[name], self.embedded) for name, r in per_set.items()}
        trained = self._gradients(idx)
        probed = [probes.probe_rows(self.cell, self._torch_params(i), self.config.task)[0] for i in idx]
        self._charge(idx, time.perf_counter() - t0)
        _, wrong, first = per_set["test"]
        return [SHARD.pack(self._tables(i, {name: {key: float(v[j]) for key, v in s.items()} for name, s in sets.items()},
                                  wrong[j], first[j], trained[j], probed[j]))
                for j, i in enumerate(idx)]

    def _tables(self, i: int, sets: Dict[str, Dict[str, float]], wrong: np.ndarray, first: np.ndarray,
                trained: List[Dict], probe_rows: List[Dict]) -> Dict[str, pa.Table]:
        c, m = self.config, self.members[i]
        recipe = self.protocol.recipe(c.optimizer, c.loss, c.batch_size, c.order)
        key = {"run_id": run_id(c.task, c.cell, c.k, recipe, self.seeds[i], c.lag, c.init), "task": c.task,
               "cell": c.cell, "k": c.k, "protocol": c.protocol, "recipe": recipe,
               "optimizer": c.optimizer, "loss": c.loss, "seed": self.seeds[i]}
        floor, floor_guess = reber.loss_floors(self.data["train"], c.loss, self.embedded)
        test = sets["test"]
        run = {**key, "bias": c.bias, "init": c.init, "dtype": c.dtype, "engine": c.engine,
               "n_params": models.n_params(c.cell, c.k, c.bias), "n_train": c.n_train, "n_val": c.n_val,
               "n_test": c.n_test, "data_seed": c.data_seed, "lag_min": c.lag[0] if c.lag else None,
               "lag_max": c.lag[1] if c.lag else None, "sampling": c.sampling,
               "test_in_train": reber.share_in(self.strings["test"], self.strings["train"]),
               **{f"{s}_constant_outer": reber.constant_outer(self.strings[s], self.embedded) for s in reber.SETS},
               "batch_size": c.batch_size, "order": c.order, "lr": c.lr,
               "final_lr": m["lr"], "max_epochs": c.max_epochs, "tol": c.tol, "epochs": m["epoch"], "stop_reason": m["stop"],
               "final_loss": m["epochs"][-1]["train_loss"], "selected_epoch": m["best_epoch"],
               **{f"{s}_{q}": sets[s][q] for s in reber.SETS for q in MEASURES},
               **{q: test[q] for q in MEASURES if q != "loss"},
               "strict": test["string_accuracy"] == 1.0,
               "solved_epoch": _first(m["epochs"], "val_string_accuracy"),
               "outer_epoch": _first(m["epochs"], "val_outer_accuracy") if self.embedded else None,
               "loss_floor": floor, "loss_floor_guess": floor_guess, "wall_s": m["wall_s"]}
        grads = [{**key, "stage": stage, **r} for stage, rows in (("init", m["init_gradients"]), ("trained", trained))
                 for r in rows]
        lengths = reber.dependency_length(self.data["test"], self.embedded)
        outer_t = np.array([s[1] == "T" for s in self.strings["test"]])
        by_length = [{**key, "length": int(n), "n": int((lengths == n).sum()),
                      "string_correct": int((wrong[lengths == n] == 0).sum()),
                      "outer_correct": int(first[lengths == n].sum()) if self.embedded else None,
                      "outer_T": int(outer_t[lengths == n].sum()) if self.embedded else None}
                     for n in np.unique(lengths)]
        return {
            "runs": pa.Table.from_pylist([run], schema=SCHEMAS["runs"]),
            "epochs": pa.Table.from_pylist([{**key, **r} for r in m["epochs"]], schema=SCHEMAS["epochs"]),
            "gradients": pa.Table.from_pylist(grads, schema=SCHEMAS["gradients"]),
            "probes": pa.Table.from_pylist([{**key, **r} for r in probe_rows], schema=SCHEMAS["probes"]),
            "lengths": pa.Table.from_pylist(by_length, schema=SCHEMAS["lengths"]),
            "weights": pa.Table.from_pylist(
                [{**key, "stage": stage, "tensor": name, "shape": list(a.shape), "values": a.ravel().tolist()}
                 for stage, model in (("init", self.initial[i]), ("trained", self.best[i])) for name, a in model.items()],
                schema=SCHEMAS["weights"]),
        }


def _first(rows: List[Dict], key: str) -> Optional[int]:
    """The first epoch whose ``key`` is 1 (None if never)."""
    return next((r["epoch"] for r in rows if r[key] == 1.0), None)


def layout(run: Run) -> Dict[str, Tuple[Tuple[int, ...], np.dtype]]:
    """The arrays of a member's checkpoint (:meth:`Ensemble.state`), name -> (shape, dtype):
    its parameters, its selected model's, and its optimizer's state as the optimizer declares it."""
    dtype = DTYPES[run.dtype]
    shapes = models.shapes(run.cell, run.k, run.bias)
    out = {f"{part}/{n}": (s, np.dtype(str(dtype).removeprefix("torch."))) for part in ("param", "best")
           for n, s in shapes.items()}
    opt = OPTIMIZERS[run.optimizer].state({n: torch.zeros(1, *s, dtype=dtype) for n, s in shapes.items()})
    for key, value in opt.items():
        named = value.items() if isinstance(value, dict) else [(None, value)]
        out.update({f"opt/{key}" + (f"/{n}" if n else ""): (tuple(t.shape[1:]) if n else tuple(t.shape),
                                                            np.dtype(str(t.dtype).removeprefix("torch.")))
                    for n, t in named})
    return out


def open_state(state: bytes, run: Run) -> Tuple[Dict[str, np.ndarray], Dict]:
    """(arrays, bookkeeping) of a member's checkpoint for ``run``; ValueError unless it is one
    this run can resume from: the arrays of :func:`layout` (checked from the file's declared
    sizes before any is read), all finite, and the bookkeeping of an unfinished run, of the
    types the trainer and the tables use."""
    arrays, meta = checkpoint.read(state, layout(run), META_BYTES + META_BYTES_PER_EPOCH * run.max_epochs)
    bad = [n for n, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    if bad:
        raise ValueError(f"{', '.join(bad[:3])} hold NaN or infinite values")
    if not isinstance(meta, dict) or set(meta) != MEMBER_KEYS:
        raise ValueError(f"its bookkeeping has keys {shown(sorted(meta) if isinstance(meta, dict) else meta)}, "
                         f"expected {', '.join(sorted(MEMBER_KEYS))}")
    epoch = meta["epoch"]
    if not (_count(epoch) and epoch < run.max_epochs and meta["stop"] is None):
        raise ValueError(f"epoch {shown(epoch)} is not that of an unfinished run of at most {run.max_epochs} epochs")
    if not (_count(meta["best_epoch"]) and meta["best_epoch"] <= epoch):
        raise ValueError(f"its selected epoch {shown(meta['best_epoch'])} is not one of epochs 0-{epoch}")
    numbers = {"lr": [meta["lr"]], "prev_loss": [] if meta["prev_loss"] is None else [meta["prev_loss"]],
               "best_score": meta["best_score"], "wall_s": [meta["wall_s"]]}
    for key, values in numbers.items():
        if not (isinstance(values, list) and all(_finite(x) for x in values)):
            raise ValueError(f"its {key} {shown(meta[key])} is not finite numbers")
    if not (meta["lr"] > 0 and len(meta["best_score"]) == len(SELECT_BY)):
        raise ValueError(f"its learning rate {meta['lr']} or its best score {shown(meta['best_score'])} is out of range")
    _rows(meta["epochs"], "epochs", epoch + 1)
    _rows(meta["init_gradients"], "gradients", None)
    try:
        np.random.PCG64().state = meta["rng"]
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ValueError(f"its data-order stream {shown(meta['rng'])} is not a generator state") from None
    return arrays, meta


def _rows(rows, table: str, count: Optional[int]) -> None:
    """ValueError unless ``rows`` are ``count`` (None: any number of) rows of ``table`` without
    its run columns, each with all of them, of the column types."""
    schema = pa.schema([f for f in SCHEMAS[table] if f.name not in RUN_COLUMNS])
    if not (isinstance(rows, list) and (count is None or len(rows) == count)
            and all(isinstance(r, dict) and set(r) == set(schema.names) for r in rows)):
        raise ValueError(f"its {table} rows are not {count if count is not None else 'the'} rows of columns "
                         f"{', '.join(schema.names)}")
    try:
        pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"its {table} rows do not fit the table ({str(e)[:100]})") from None


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
