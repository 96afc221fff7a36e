"""Small training tables built from the training job's own schemas (runs, gradients,
probes), one Parquet file per run as the store writes them, for the analysis and report
tests; plus a real tiny discrepancy sweep."""
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sweeps import contract as S
from sweeps.jobs.training.tables import SCHEMAS


def _write(out, table, run_id, rows):
    t = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
    d = os.path.join(out, table)
    os.makedirs(d, exist_ok=True)
    pq.write_table(t, os.path.join(d, f"{run_id}.parquet"))


def run_id(task, cell, k, protocol, seed):
    return f"{task}-{cell}-k{k}-{protocol}-seed{seed}"


def write_runs(out, spec):
    """``spec``: {(task, cell, k, protocol): [accuracy per seed]} — the string accuracy for
    reber, the outer accuracy for embedded-reber."""
    for (task, cell, k, protocol), accs in spec.items():
        for seed, acc in enumerate(accs):
            rid = run_id(task, cell, k, protocol, seed)
            emb = task.startswith("embedded")
            row = {
                "run_id": rid, "task": task, "cell": cell, "k": k, "protocol": protocol,
                "seed": seed, "bias": "zero", "init": "normal", "n_params": 500,
                "n_train": 100, "n_test": 100, "data_seed": 0,
                "lr": 0.05, "final_lr": 0.05, "max_epochs": 10, "epochs": 10,
                "stop_reason": "max_epochs", "final_loss": 1.0, "train_loss": 1.0, "test_loss": 1.0,
                "train_string_accuracy": acc, "test_string_accuracy": acc, "string_accuracy": acc,
                "train_step_accuracy": 1.0, "test_step_accuracy": 1.0, "step_accuracy": 1.0,
                "train_outer_accuracy": acc if emb else np.nan, "test_outer_accuracy": acc if emb else np.nan,
                "outer_accuracy": acc if emb else np.nan, "solved": bool(acc == 1.0),
                "solved_epoch": None, "outer_epoch": None, "wall_s": 1.0,
            }
            _write(out, "runs", rid, [row])


def hist_row(values):
    b, c = S.sparse_histograms(np.asarray(values, float)[:, None])
    dense = S.dense_histogram(b, c)
    q = {name: S.quantile(dense, p) for name, p in (("q10", .1), ("q50", .5), ("q90", .9), ("q99", .99))}
    return {"n": len(values), "mean": float(np.mean(values)), **q, "max": float(np.max(values)),
            "hist_bin": b[0].tolist(), "hist_count": c[0].tolist()}


def write_gradients(out, spec, seed=0):
    """``spec``: {(task, cell, k, protocol): (param log10 centre, hidden decay per step)}:
    lognormal |g| around 10**centre for 'param' (init and trained), and hidden-state norms
    ||dloss/dh|| = decay**d (times lognormal noise) for d = 0..9."""
    rng = np.random.default_rng(seed)
    for (task, cell, k, protocol), (centre, decay) in spec.items():
        rid = run_id(task, cell, k, protocol, 0)
        rows = []
        base = {"run_id": rid, "task": task, "cell": cell, "k": k, "protocol": protocol, "seed": 0}
        for stage in ("init", "trained"):
            for tensor in ("W", "U"):
                vals = 10 ** rng.normal(centre, 0.7, 400)
                rows.append({**base, "stage": stage, "quantity": "param", "tensor": tensor, "distance": -1,
                             **hist_row(vals)})
            for d in range(10):
                vals = decay ** d * 10 ** rng.normal(0, 0.3, 60)
                rows.append({**base, "stage": stage, "quantity": "hidden", "tensor": "h", "distance": d,
                             **hist_row(vals)})
        _write(out, "gradients", rid, rows)


REBER_OUT = "B BT BTSSS BTX BTXXVP BTXS BP BPTT BPV BPVV".split()
REBER_HID = [p.split(":") for p in ("q0:B q1:BT q1:BTSS q2:BTX q2:BPTTTVP q3:BTXS q3:BPVV q4:BPTTT "
                                    "q5:BPV").split()]


def write_probes(out, configs, seed=0):
    """Probe rows (random outputs and states) for each (task, cell, k, protocol) run."""
    rng = np.random.default_rng(seed)
    for task, cell, k, protocol in configs:
        for s in (0, 1):
            rid = run_id(task, cell, k, protocol, s)
            rows = []
            if task == "reber":
                probes = {p: (True, False, None) for p in REBER_OUT}
                for state, p in REBER_HID:
                    o = probes.get(p, (False, False, None))[0]
                    probes[p] = (o, True, state)
            else:
                probes = {p: (True, True, None) for p in ("BPBTXSE", "BTBTXSE")}
            for probe, (o, h, state) in probes.items():
                for i, sym in enumerate(probe):
                    logits = rng.normal(size=7)
                    rows.append({"run_id": rid, "task": task, "cell": cell, "k": k, "protocol": protocol, "seed": s,
                                 "probe": probe, "output_probe": o, "hidden_probe": h, "position": i, "symbol": sym,
                                 "state": (state if i == len(probe) - 1 and state else f"x{i}"),
                                 "output": logits.tolist(), "probs": (np.exp(logits) / np.exp(logits).sum()).tolist(),
                                 "hidden": rng.uniform(0, 1, k).tolist()})
            _write(out, "probes", rid, rows)


PAPER_LIKE_RUNS = {
    ("reber", "vanilla", 5, "paper"): [1.0, 1.0, 1.0, 0.98, 1.0, 1.0],
    ("embedded-reber", "vanilla", 18, "paper"): [0.5, 0.52, 0.48, 0.5, 0.55, 0.5],
    ("embedded-reber", "gru", 10, "paper"): [1.0, 1.0, 0.99, 1.0, 1.0, 1.0],
    ("embedded-reber", "vanilla", 18, "adam"): [1.0, 1.0, 1.0, 1.0, 1.0, 0.5],
    ("embedded-reber", "gru", 10, "adam"): [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
}
ALIKE_GRADIENTS = {("embedded-reber", "vanilla", 18, "paper"): (-3.0, 0.5),
                   ("embedded-reber", "gru", 10, "paper"): (-3.2, 0.9)}
PROBE_CONFIGS = [("reber", "vanilla", 5, "paper"), ("embedded-reber", "vanilla", 18, "paper"),
                 ("embedded-reber", "gru", 10, "paper"), ("embedded-reber", "vanilla", 18, "adam")]


def write_training(out, runs=PAPER_LIKE_RUNS, grads=ALIKE_GRADIENTS, probes=PROBE_CONFIGS):
    write_runs(out, runs)
    write_gradients(out, grads)
    write_probes(out, probes)


DISCREPANCY_ARGS = ["discrepancy", "--cells", "vanilla,gru", "--inits", "normal,xavier,gain:2", "--l-max", "24",
                    "--k", "1-6", "--draws", "200", "--seeds", "0-2", "--lyapunov", "true"]
DISCREPANCY_TABLES = ["discrepancy", "memory", "lyapunov", "_sweeps"]


def real_discrepancy(out):
    """A real tiny discrepancy sweep into ``out`` (needs the session's Ray instance)."""
    from sweeps.cli import main
    assert main([*DISCREPANCY_ARGS, "--out", str(out)]) == 0


def copy_tables(src, dst, tables):
    for t in tables:
        shutil.copytree(os.path.join(src, t), os.path.join(dst, t))
