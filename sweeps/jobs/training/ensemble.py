"""Training E runs of one configuration, differing only in their seed, as one ensemble."""
import time
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import torch

import cells

from . import checkpoint, evaluation, gradients, models, probes, reber
from .protocols import PROTOCOLS
from .run import DTYPES, Run, run_id
from .tables import SCHEMAS, pack


class Ensemble:
    """E runs of one configuration (differing only in seed) trained in lockstep.

    Member i keeps its own learning rate, optimizer state, data order stream, epoch count
    and stop flag; a member's numbers depend only on its own (seed, task, cell, k, protocol)
    and settings. Members resumed from checkpoints may be at different epochs: every epoch
    has the same number of updates, so they still advance together.
    """

    def __init__(self, runs: List[Run], states: List[Optional[bytes]]):
        c = self.config = runs[0]
        self.seeds = [r.seed for r in runs]
        self.cell = cells.get_cell(c.cell)
        self.protocol = PROTOCOLS[c.protocol]
        self.embedded = c.task == "embedded-reber"
        self.dtype = DTYPES[c.dtype]
        self.data = reber.datasets(c.task, c.n_train, c.n_test, c.data_seed, self.dtype)
        fresh = [i for i, s in enumerate(states) if s is None]
        self.p = models.init_params(c.cell, c.k, c.bias, c.init, self.seeds, self.dtype)
        self.opt = self.protocol.optimizer.state(self.p)
        self.members = [self._fresh(seed) if s is None else self._load(i, s)
                        for i, (seed, s) in enumerate(zip(self.seeds, states))]
        if fresh:
            t0 = time.perf_counter()
            self._evaluate(fresh, epoch_loss=None)
            for i, rows in zip(fresh, self._gradients(fresh)):
                self.members[i]["init_gradients"] = rows
            self._charge(fresh, time.perf_counter() - t0)

    def _fresh(self, seed: int) -> Dict:
        c = self.config
        rng = cells.stream("order", seed, c.task, c.cell, c.k, c.protocol)
        return {"epoch": 0, "lr": c.lr, "prev_loss": None, "stop": None, "rng": rng.bit_generator.state,
                "epochs": [], "init_gradients": [], "wall_s": 0.0}

    def _load(self, i: int, state: bytes) -> Dict:
        """Member i from its checkpoint; returns its bookkeeping."""
        arrays, m = checkpoint.read(state)
        with torch.no_grad():
            for n, t in self.p.items():
                t[i] = torch.from_numpy(arrays[f"param/{n}"])
            for key in ("m", "v"):
                for n, t in self.opt.get(key, {}).items():
                    t[i] = torch.from_numpy(arrays[f"{key}/{n}"])
            if self.opt:
                self.opt["t"][i] = m.pop("adam_t")
        return m

    def state(self, i: int) -> bytes:
        """Member i's checkpoint: everything its next epochs depend on (NumPy arrays and JSON)."""
        m = dict(self.members[i])
        arrays = {f"param/{n}": t[i].detach().numpy() for n, t in self.p.items()}
        if self.opt:
            arrays.update({f"{key}/{n}": t[i].numpy() for key in ("m", "v") for n, t in self.opt[key].items()})
            m["adam_t"] = int(self.opt["t"][i])
        return checkpoint.write(arrays, m)

    def active(self) -> List[int]:
        return [i for i, m in enumerate(self.members) if m["stop"] is None]

    def sub(self, idx: List[int]) -> cells.Params:
        return {n: t.detach()[idx] for n, t in self.p.items()}

    def _charge(self, idx: List[int], seconds: float) -> None:
        for i in idx:
            self.members[i]["wall_s"] += seconds / len(idx)

    def epoch(self) -> List[int]:
        """Train every active member for one epoch; returns the members that stopped."""
        t0 = time.perf_counter()
        active_idx = self.active()
        e, n, bs = len(self.members), self.config.n_train, self.config.batch_size
        active = torch.zeros(e, dtype=torch.bool)
        active[active_idx] = True
        orders = np.tile(np.arange(n), (e, 1))
        for i in active_idx:
            rng = np.random.Generator(np.random.PCG64())
            rng.bit_generator.state = self.members[i]["rng"]
            orders[i] = rng.permutation(n)
            self.members[i]["rng"] = rng.bit_generator.state
        lr = torch.tensor([m["lr"] for m in self.members], dtype=torch.float64)
        train = self.data["train"]
        total = torch.zeros(e, dtype=torch.float64)
        # Only the active members are computed: a member's numbers do not depend on the
        # ensemble it is computed in (cells.with_guard, fixed padded lengths), so a
        # sub-ensemble gives the same gradients, and stopped members cost nothing.
        idx = torch.tensor(active_idx)
        full = len(active_idx) == e
        for a in range(0, n, bs):
            p = self.p if full else {name: t[idx] for name, t in self.p.items()}
            batch = train.take(torch.from_numpy(orders[active_idx, a:a + bs]))   # (E', b, ...)
            for t in p.values():
                t.requires_grad_(True)
            y, _ = models.forward(self.cell, p, batch.x, batch.mask)
            loss = self.protocol.sequence_loss(y, batch.target, batch.mask)  # (E', b)
            grads = torch.autograd.grad(loss.mean(1).sum(), list(p.values()))
            for t in p.values():
                t.requires_grad_(False)
            if not full:   # stopped members get zero gradients; update() leaves them put
                grads = [torch.zeros_like(t).index_copy_(0, idx, g) for t, g in zip(self.p.values(), grads)]
            self.protocol.optimizer.step(self.p, dict(zip(self.p, grads)), self.opt, lr, active)
            total[idx] += loss.detach().double().sum(1)
        stopped = self._evaluate(active_idx, epoch_loss=(total / n).numpy())
        self._charge(active_idx, time.perf_counter() - t0)
        return stopped

    def _evaluate(self, idx: List[int], epoch_loss) -> List[int]:
        """Record an epoch row for members ``idx`` and apply the stopping rules."""
        p = self.sub(idx)
        scores = {name: evaluation.evaluate(self.cell, p, d, self.protocol, self.embedded)
                  for name, d in self.data.items()}
        stopped = []
        for j, i in enumerate(idx):
            m = self.members[i]
            row = {"epoch": m["epoch"] + (epoch_loss is not None), "lr": m["lr"],
                   "loss": None if epoch_loss is None else float(epoch_loss[i]),
                   **{f"{name}_{key}": float(v[j]) for name, s in scores.items() for key, v in s.items()}}
            m["epochs"].append(row)
            if epoch_loss is None:
                continue
            m["epoch"] += 1
            m["lr"], m["stop"] = self.protocol.after_epoch(m["lr"], row["loss"], m["prev_loss"], row, self.config)
            if m["stop"] is None and m["epoch"] >= self.config.max_epochs:
                m["stop"] = "max_epochs"
            m["prev_loss"] = row["loss"]
            if m["stop"] is not None:
                stopped.append(i)
        return stopped

    def _gradients(self, idx: List[int]) -> List[List[Dict]]:
        return gradients.summarise(self.cell, self.sub(idx), self.data["train"], self.protocol)

    def finish(self, idx: List[int]) -> List[pa.Table]:
        """The packed result tables of members ``idx``, which have stopped."""
        t0 = time.perf_counter()
        trained, probed = self._gradients(idx), probes.probe_rows(self.cell, self.sub(idx), self.config.task)
        self._charge(idx, time.perf_counter() - t0)
        return [pack(self._tables(i, grads, rows)) for i, grads, rows in zip(idx, trained, probed)]

    def _tables(self, i: int, trained: List[Dict], probe_rows: List[Dict]) -> Dict[str, pa.Table]:
        c, m = self.config, self.members[i]
        key = {"run_id": run_id(c.task, c.cell, c.k, c.protocol, self.seeds[i]), "task": c.task,
               "cell": c.cell, "k": c.k, "protocol": c.protocol, "seed": self.seeds[i]}
        last = m["epochs"][-1]
        run = {**key, "bias": c.bias, "init": c.init, "n_params": models.n_params(c.cell, c.k, c.bias),
               "n_train": c.n_train, "n_test": c.n_test, "data_seed": c.data_seed, "lr": c.lr,
               "final_lr": m["lr"], "max_epochs": c.max_epochs, "epochs": m["epoch"], "stop_reason": m["stop"],
               "final_loss": last["loss"],
               **{f"{s}_{q}": last[f"{s}_{q}"] for s in ("train", "test")
                  for q in ("loss", "string_accuracy", "step_accuracy", "outer_accuracy")},
               **{q: last[f"test_{q}"] for q in ("string_accuracy", "step_accuracy", "outer_accuracy")},
               "solved": last["test_string_accuracy"] == 1.0,
               "solved_epoch": _first(m["epochs"], "test_string_accuracy"),
               "outer_epoch": _first(m["epochs"], "test_outer_accuracy"),
               "wall_s": m["wall_s"]}
        grads = [{**key, "stage": stage, **r} for stage, rows in (("init", m["init_gradients"]), ("trained", trained))
                 for r in rows]
        return {
            "runs": pa.Table.from_pylist([run], schema=SCHEMAS["runs"]),
            "epochs": pa.Table.from_pylist([{**key, **r} for r in m["epochs"]], schema=SCHEMAS["epochs"]),
            "gradients": pa.Table.from_pylist(grads, schema=SCHEMAS["gradients"]),
            "probes": pa.Table.from_pylist([{**key, **r} for r in probe_rows], schema=SCHEMAS["probes"]),
        }


def _first(rows: List[Dict], key: str) -> Optional[int]:
    """The first epoch whose ``key`` is 1 (None if never)."""
    return next((r["epoch"] for r in rows if r[key] == 1.0), None)
