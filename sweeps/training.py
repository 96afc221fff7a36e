"""The training job (paper §III, Figs 3-9): Reber-grammar training runs as sweeps of seeds.

A run is one (task, cell, k, protocol, seed). Each run is one group and one shard; runs
of the same configuration that differ only in their seed share a ``batch_key`` and are
trained together as one ensemble (the cells' leading dimension E), up to ``MAX_BATCH``.

Tables (one file per run under OUT/<table>/<run_id>.parquet; read with pandas):

``runs`` — one row per run
    run_id str, task str ('reber'|'embedded-reber'), cell str, k int32, protocol str
    ('paper'|'adam'), seed int32, bias str, init str, n_params int32, n_train int32,
    n_test int32, data_seed int32, lr float64 (initial), final_lr float64, max_epochs int32,
    epochs int32 (epochs trained), stop_reason str ('solved'|'converged'|'max_epochs'),
    final_loss float64 (mean training objective over the last epoch, per sequence),
    train_loss, test_loss float64 (objective of the final model, mean per sequence),
    train_string_accuracy, test_string_accuracy, string_accuracy (= test) float64,
    train_step_accuracy, test_step_accuracy, step_accuracy (= test) float64,
    train_outer_accuracy, test_outer_accuracy, outer_accuracy (= test) float64
    (NaN for the plain Reber task), solved bool (test string accuracy == 1),
    solved_epoch int32 (first epoch with test string accuracy 1; null if never),
    outer_epoch int32 (first epoch with test outer accuracy 1; null if never / reber),
    wall_s float64 (training seconds of this run, its share of its ensemble's time).

``epochs`` — one row per run and epoch; epoch 0 is the initial model
    run_id, task, cell, k, protocol, seed (as in runs), epoch int32, lr float64 (used in
    that epoch), loss float64 (mean training objective over the epoch's updates, per
    sequence; null at epoch 0), train_loss, test_loss, train_/test_string_accuracy,
    train_/test_step_accuracy, train_/test_outer_accuracy float64 (model at epoch end).

``gradients`` — summaries of gradient magnitudes over every training example
    run_id, task, cell, k, protocol, seed, stage str ('init'|'trained'),
    quantity str: 'param' = |∂loss_i/∂θ_j| for every training example i and every
    coefficient j of one parameter tensor (loss_i: the protocol's loss of example i);
    'hidden' = ||∂loss_T/∂h_{T-d}||_2 for every training example, where loss_T is the
    loss of the step predicting the final outer symbol (embedded) or the final E (reber);
    tensor str (parameter name: U<g>, W<g>, b<g>, O, bO; 'h' for hidden),
    distance int32 (d = T - t for 'hidden'; -1 for 'param'),
    n int64 (values summarised), mean, q10, q50, q90, q99, max float64,
    hist_bin list<int16>, hist_count list<int64>: the non-empty bins of the log-spaced
    histogram of sweeps.summaries (bin 0 = exact zeros, 50 bins per decade from 1e-20).

``probes`` — the trained model on the probe strings of DESIGN.md (Reber probes for
reber runs, BPBTXSE and BTBTXSE for embedded runs), one row per (run, probe, position)
    run_id, task, cell, k, protocol, seed, probe str, output_probe bool, hidden_probe bool
    (listed for Figs 3/6/7 resp. 4/8), position int32 (0-based index of the input symbol),
    symbol str (input symbol), state str (automaton state after reading it: 'q0'..'q5'
    for Reber; for embedded e.g. 'T/q2' inside the branch opened by T, or 'start',
    'outer', 'T/end', 'last', 'end'), output list<float32>[7] (raw y_t),
    probs list<float32>[7] (softmax of y_t, order B T S X V P E), hidden list<float32>[k].
"""
import io
import pickle
import time
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import torch

import cells

from . import gradients, metrics, models, probes, reber
from .errors import UsageError
from .plan import Group, Shard, content_hash
from .protocols import PROTOCOLS, optimizer_state, update
from .options import names, one_int, parse_ints, positive

JOB = "training"
TABLES = ("runs", "epochs", "gradients", "probes")
MAX_BATCH = 16                     # seeds of one configuration trained as one ensemble
N_TRAIN = {"reber": 250, "embedded-reber": 2000}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Keys of an experiment block; None = the task's or protocol's default.
DEFAULTS = {"n_train": None, "n_test": None, "lr": None, "max_epochs": None, "batch_size": None,
            "bias": "paper", "init": "normal", "data_seed": 0, "dtype": "float32", "tol": 1e-5,
            "checkpoint_s": 60.0}
REQUIRED = ("task", "cells", "protocol", "seeds")


# --------------------------------------------------------------------------- spec
def validate(section) -> Dict:
    """Check a ``training`` section: one experiment block (a mapping) or a list of them.
    Each block is the product task x cells x protocol x seeds with shared settings."""
    blocks = section if isinstance(section, list) else [section]
    if not blocks:
        raise UsageError("training: expected an experiment mapping or a non-empty list of them")
    out = {"experiments": [_block(b, i) for i, b in enumerate(blocks)]}
    plan(out)   # refuses one run planned twice with different settings
    return out


def _block(block, i: int) -> Dict:
    where = f"training[{i}]" if i else "training"
    if not isinstance(block, dict):
        raise UsageError(f"{where}: expected a mapping of settings, got {type(block).__name__}")
    unknown = set(block) - set(REQUIRED) - set(DEFAULTS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"allowed: {', '.join(sorted(set(REQUIRED) | set(DEFAULTS)))}")
    for key in REQUIRED:
        if key not in block:
            raise UsageError(f"{where}: missing required key {key!r}")
    s = {**DEFAULTS, **block}
    out = {
        "task": names(s["task"], "task", reber.TASKS),
        "cells": _cells(s["cells"]),
        "protocol": names(s["protocol"], "protocol", PROTOCOLS),
        "seeds": parse_ints(s["seeds"], "seeds", minimum=0),
        "bias": names(s["bias"], "bias", models.BIASES)[0],
        "init": names(s["init"], "init", cells.INITS)[0],
        "dtype": names(s["dtype"], "dtype", DTYPES)[0],
        "data_seed": one_int(s["data_seed"], "data_seed", 0),
        "tol": positive(s["tol"], "tol"),
        "checkpoint_s": positive(s["checkpoint_s"], "checkpoint_s"),
        "lr": None if s["lr"] is None else positive(s["lr"], "lr"),
    }
    for key in ("n_train", "n_test", "max_epochs", "batch_size"):
        out[key] = None if s[key] is None else one_int(s[key], key, 1)
    return out


def _cells(value) -> List[List]:
    """'vanilla:18,gru:10' (or a list of such items) -> [['vanilla', 18], ['gru', 10]]."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise UsageError(f"cells: expected CELL:K items such as vanilla:18,gru:10, got {value!r}")
    out = []
    for item in items:
        name, sep, k = str(item).strip().partition(":")
        if not sep:
            raise UsageError(f"cells: expected CELL:K (e.g. gru:10), got {item!r}")
        if name not in cells.CELLS:
            raise UsageError(f"cells: unknown cell {name!r}; allowed: {', '.join(sorted(cells.CELLS))}")
        out += [[name, kk] for kk in parse_ints(k, "cells", minimum=1)]
    return [list(c) for c in dict.fromkeys(tuple(c) for c in out)]


def run_id(task: str, cell: str, k: int, protocol: str, seed: int) -> str:
    return f"{task}-{cell}-k{k}-{protocol}-seed{seed}"


def plan(section: Dict) -> List[Group]:
    """One group (and one shard) per run, in a deterministic order. Settings: everything
    that changes a run's numbers, defaults resolved (so a spec that spells out a default is
    the same run)."""
    groups: Dict[str, Group] = {}
    for ex in section["experiments"]:
        for task in ex["task"]:
            for cell, k in ex["cells"]:
                for name in ex["protocol"]:
                    protocol = PROTOCOLS[name]
                    n_train = ex["n_train"] or N_TRAIN[task]
                    settings = {
                        "n_train": n_train, "n_test": ex["n_test"] or n_train,
                        "lr": ex["lr"] or protocol.lr[task],
                        "max_epochs": ex["max_epochs"] or protocol.max_epochs,
                        "batch_size": ex["batch_size"] or protocol.batch_size,
                        "bias": ex["bias"], "init": ex["init"], "data_seed": ex["data_seed"],
                        "dtype": ex["dtype"], **({"tol": ex["tol"]} if name == "paper" else {}),
                    }
                    for seed in ex["seeds"]:
                        rid = run_id(task, cell, k, name, seed)
                        params = {"task": task, "cell": cell, "k": k, "protocol": name, "seed": seed,
                                  **settings, "checkpoint_s": ex["checkpoint_s"]}
                        group = Group(JOB, rid, settings, (Shard(JOB, rid, params),), TABLES)
                        if rid in groups and groups[rid].settings != settings:
                            raise UsageError(f"training: run {rid} is planned twice with different settings")
                        groups[rid] = group
    return list(groups.values())


def batch_key(shard: Shard) -> str:
    """Runs that differ only in their seed (and checkpoint interval) train as one ensemble."""
    return content_hash({k: v for k, v in shard.params.items() if k not in ("seed",)})


# --------------------------------------------------------------------------- data
def datasets(task: str, n_train: int, n_test: int, data_seed: int, dtype) -> Dict[str, reber.Encoded]:
    """The training and test sets: drawn from streams fixed by (data_seed, task) only, so every
    run of a sweep sees the same strings (seeds vary the initial weights and the order), and
    a smaller training set is a prefix of a larger one. Both are padded to one length."""
    embedded = task == "embedded-reber"
    strings = {"train": reber.sample_set(cells.stream("data", data_seed, task, "train"), n_train, embedded),
               "test": reber.sample_set(cells.stream("data", data_seed, task, "test"), n_test, embedded)}
    length = max(len(s) for ss in strings.values() for s in ss) - 1
    return {name: reber.encode(ss, embedded, length, dtype) for name, ss in strings.items()}


# --------------------------------------------------------------------------- training
class Ensemble:
    """E runs of one configuration (differing only in seed) trained in lockstep.

    Member i keeps its own learning rate, optimizer state, data order stream, epoch count
    and stop flag; a member's numbers depend only on its own (seed, task, cell, k, protocol)
    and settings. Members resumed from checkpoints may be at different epochs: every epoch
    has the same number of updates, so they still advance together.
    """

    def __init__(self, params_list: List[Dict], states: List[Optional[bytes]]):
        c = self.config = params_list[0]
        self.seeds = [p["seed"] for p in params_list]
        self.cell = cells.get_cell(c["cell"])
        self.protocol = PROTOCOLS[c["protocol"]]
        self.embedded = c["task"] == "embedded-reber"
        self.dtype = DTYPES[c["dtype"]]
        self.data = datasets(c["task"], c["n_train"], c["n_test"], c["data_seed"], self.dtype)
        fresh = [i for i, s in enumerate(states) if s is None]
        self.p = models.init_params(c["cell"], c["k"], c["bias"], c["init"], self.seeds, self.dtype)
        self.opt = optimizer_state(self.p, self.protocol.optimizer)
        self.members = [self._fresh(seed) if s is None else pickle.loads(s) for seed, s in zip(self.seeds, states)]
        for i, m in enumerate(self.members):
            if states[i] is not None:
                self._load(i, m)
        if fresh:
            t0 = time.perf_counter()
            self._evaluate(fresh, epoch_loss=None)
            for i, rows in zip(fresh, self._gradients(fresh)):
                self.members[i]["init_gradients"] = rows
            self._charge(fresh, time.perf_counter() - t0)

    def _fresh(self, seed: int) -> Dict:
        c = self.config
        rng = cells.stream("order", seed, c["task"], c["cell"], c["k"], c["protocol"])
        return {"epoch": 0, "lr": c["lr"], "prev_loss": None, "stop": None, "rng": rng.bit_generator.state,
                "epochs": [], "init_gradients": [], "wall_s": 0.0}

    def _load(self, i: int, m: Dict) -> None:
        with torch.no_grad():
            for n, t in self.p.items():
                t[i] = torch.from_numpy(m["params"][n])
            for key in ("m", "v"):
                for n, t in self.opt.get(key, {}).items():
                    t[i] = torch.from_numpy(m["opt"][key][n])
            if self.opt:
                self.opt["t"][i] = m["opt"]["t"]

    def state(self, i: int) -> bytes:
        """Member i's checkpoint: everything its next epochs depend on."""
        m = dict(self.members[i])
        m["params"] = {n: t[i].detach().numpy().copy() for n, t in self.p.items()}
        if self.opt:
            m["opt"] = {key: {n: t[i].numpy().copy() for n, t in self.opt[key].items()} for key in ("m", "v")}
            m["opt"]["t"] = int(self.opt["t"][i])
        return pickle.dumps(m)

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
        e, n, bs = len(self.members), self.config["n_train"], self.config["batch_size"]
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
            update(self.p, dict(zip(self.p, grads)), self.opt, lr, active, self.protocol.optimizer)
            total[idx] += loss.detach().double().sum(1)
        stopped = self._evaluate(active_idx, epoch_loss=(total / n).numpy())
        self._charge(active_idx, time.perf_counter() - t0)
        return stopped

    def _evaluate(self, idx: List[int], epoch_loss) -> List[int]:
        """Record an epoch row for members ``idx`` and apply the stopping rules."""
        p = self.sub(idx)
        scores = {name: metrics.evaluate(self.cell, p, d, self.protocol, self.embedded)
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
            mean, prev = row["loss"], m["prev_loss"]
            if self.protocol.name == "paper" and prev is not None:
                if mean > prev:
                    m["lr"] /= 2
                if abs(mean - prev) < self.config["tol"]:
                    m["stop"] = "converged"
            if self.protocol.name == "adam" and row["test_string_accuracy"] == 1.0:
                m["stop"] = "solved"
            if m["stop"] is None and m["epoch"] >= self.config["max_epochs"]:
                m["stop"] = "max_epochs"
            m["prev_loss"] = mean
            if m["stop"] is not None:
                stopped.append(i)
        return stopped

    def _gradients(self, idx: List[int]) -> List[List[Dict]]:
        return gradients.summarise(self.cell, self.sub(idx), self.data["train"], self.protocol)

    def finish(self, idx: List[int]) -> List[pa.Table]:
        """The packed result tables of members ``idx``, which have stopped."""
        t0 = time.perf_counter()
        trained, probed = self._gradients(idx), probes.probe_rows(self.cell, self.sub(idx), self.config["task"])
        self._charge(idx, time.perf_counter() - t0)
        return [pack(self._tables(i, grads, rows)) for i, grads, rows in zip(idx, trained, probed)]

    def _tables(self, i: int, trained: List[Dict], probe_rows: List[Dict]) -> Dict[str, pa.Table]:
        c, m = self.config, self.members[i]
        key = {"run_id": run_id(c["task"], c["cell"], c["k"], c["protocol"], self.seeds[i]), "task": c["task"],
               "cell": c["cell"], "k": c["k"], "protocol": c["protocol"], "seed": self.seeds[i]}
        last = m["epochs"][-1]
        run = {**key, "bias": c["bias"], "init": c["init"], "n_params": models.n_params(c["cell"], c["k"], c["bias"]),
               "n_train": c["n_train"], "n_test": c["n_test"], "data_seed": c["data_seed"], "lr": c["lr"],
               "final_lr": m["lr"], "max_epochs": c["max_epochs"], "epochs": m["epoch"], "stop_reason": m["stop"],
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


KEY = [("run_id", pa.string()), ("task", pa.string()), ("cell", pa.string()), ("k", pa.int32()),
       ("protocol", pa.string()), ("seed", pa.int32())]
SCORES = [(f"{s}_{q}", pa.float64()) for s in ("train", "test")
          for q in ("loss", "string_accuracy", "step_accuracy", "outer_accuracy")]
F32_LIST = pa.list_(pa.float32())
SCHEMAS = {
    "runs": pa.schema(KEY + [
        ("bias", pa.string()), ("init", pa.string()), ("n_params", pa.int32()), ("n_train", pa.int32()),
        ("n_test", pa.int32()), ("data_seed", pa.int32()), ("lr", pa.float64()), ("final_lr", pa.float64()),
        ("max_epochs", pa.int32()), ("epochs", pa.int32()), ("stop_reason", pa.string()),
        ("final_loss", pa.float64())] + SCORES + [
        ("string_accuracy", pa.float64()), ("step_accuracy", pa.float64()), ("outer_accuracy", pa.float64()),
        ("solved", pa.bool_()), ("solved_epoch", pa.int32()), ("outer_epoch", pa.int32()), ("wall_s", pa.float64())]),
    "epochs": pa.schema(KEY + [("epoch", pa.int32()), ("lr", pa.float64()), ("loss", pa.float64())] + SCORES),
    "gradients": pa.schema(KEY + [
        ("stage", pa.string()), ("quantity", pa.string()), ("tensor", pa.string()), ("distance", pa.int32()),
        ("n", pa.int64()), ("mean", pa.float64()), ("q10", pa.float64()), ("q50", pa.float64()),
        ("q90", pa.float64()), ("q99", pa.float64()), ("max", pa.float64()),
        ("hist_bin", pa.list_(pa.int16())), ("hist_count", pa.list_(pa.int64()))]),
    "probes": pa.schema(KEY + [
        ("probe", pa.string()), ("output_probe", pa.bool_()), ("hidden_probe", pa.bool_()),
        ("position", pa.int32()), ("symbol", pa.string()), ("state", pa.string()),
        ("output", F32_LIST), ("probs", F32_LIST), ("hidden", F32_LIST)]),
}


# --------------------------------------------------------------------------- job interface
def pack(tables: Dict[str, pa.Table]) -> pa.Table:
    """A run's four tables as one shard table: one row per table, its Arrow IPC stream."""
    blobs = []
    for name in TABLES:
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, tables[name].schema) as writer:
            writer.write_table(tables[name])
        blobs.append(sink.getvalue())
    return pa.table({"table": pa.array(TABLES), "ipc": pa.array(blobs, pa.binary())})


def unpack(shard_table: pa.Table) -> Dict[str, pa.Table]:
    return {name: pa.ipc.open_stream(blob.as_py()).read_all()
            for name, blob in zip(shard_table.column("table").to_pylist(), shard_table.column("ipc"))}


def compute(params_list: List[Dict], states: List[Optional[bytes]]) -> List:
    """Train the runs of ``params_list`` (one configuration, several seeds) as one ensemble
    for about ``checkpoint_s`` seconds (at least one epoch); a run that has stopped returns
    its tables, the others a Checkpoint to be resumed from (always at an epoch boundary)."""
    from .jobs import Checkpoint   # here: sweeps.jobs imports this module

    torch.set_num_threads(1)
    deadline = time.monotonic() + params_list[0]["checkpoint_s"]
    ens = Ensemble(params_list, list(states or [None] * len(params_list)))
    results: Dict[int, pa.Table] = {}
    while ens.active():   # at least one epoch per call, so every call makes progress
        stopped = ens.epoch()
        if stopped:
            results.update(zip(stopped, ens.finish(stopped)))
        if time.monotonic() > deadline:
            break
    return [results[i] if i in results else Checkpoint(ens.state(i), f"epoch {m['epoch']}")
            for i, m in enumerate(ens.members)]


def finalize(group: Group, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
    return unpack(shard_tables[0])
