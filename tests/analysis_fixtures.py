"""Small training tables with the production schema of the training job (runs,
gradients, probes), written as the store writes them (one Parquet file per run), for the
analysis and report tests; plus a real tiny discrepancy sweep."""
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sweeps import contract as S

PROBS7 = pa.list_(pa.float32())


def _write(out, table, run_id, t: pa.Table):
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
                "run_id": rid, "task": task, "cell": cell, "k": np.int32(k), "protocol": protocol,
                "seed": np.int32(seed), "bias": "zero", "init": "normal", "n_params": np.int32(500),
                "n_train": np.int32(100), "n_test": np.int32(100), "data_seed": np.int32(0),
                "lr": 0.05, "final_lr": 0.05, "max_epochs": np.int32(10), "epochs": np.int32(10),
                "stop_reason": "max_epochs", "final_loss": 1.0, "train_loss": 1.0, "test_loss": 1.0,
                "train_string_accuracy": acc, "test_string_accuracy": acc, "string_accuracy": acc,
                "train_step_accuracy": 1.0, "test_step_accuracy": 1.0, "step_accuracy": 1.0,
                "train_outer_accuracy": acc if emb else np.nan, "test_outer_accuracy": acc if emb else np.nan,
                "outer_accuracy": acc if emb else np.nan, "solved": bool(acc == 1.0),
                "solved_epoch": None, "outer_epoch": None, "wall_s": 1.0,
            }
            t = pa.Table.from_pylist([row])
            t = t.set_column(t.schema.get_field_index("solved_epoch"), "solved_epoch", pa.array([None], pa.int32()))
            t = t.set_column(t.schema.get_field_index("outer_epoch"), "outer_epoch", pa.array([None], pa.int32()))
            _write(out, "runs", rid, t)


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
        t = pa.Table.from_pylist(rows)
        t = t.cast(pa.schema([
            *(pa.field(n, pa.string()) for n in ("run_id", "task", "cell")), pa.field("k", pa.int32()),
            pa.field("protocol", pa.string()), pa.field("seed", pa.int32()), pa.field("stage", pa.string()),
            pa.field("quantity", pa.string()), pa.field("tensor", pa.string()), pa.field("distance", pa.int32()),
            pa.field("n", pa.int64()), *(pa.field(n, pa.float64()) for n in ("mean", "q10", "q50", "q90", "q99", "max")),
            pa.field("hist_bin", pa.list_(pa.int16())), pa.field("hist_count", pa.list_(pa.int64()))]))
        _write(out, "gradients", rid, t)


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
            t = pa.Table.from_pylist(rows).cast(pa.schema([
                *(pa.field(n, pa.string()) for n in ("run_id", "task", "cell")), pa.field("k", pa.int32()),
                pa.field("protocol", pa.string()), pa.field("seed", pa.int32()), pa.field("probe", pa.string()),
                pa.field("output_probe", pa.bool_()), pa.field("hidden_probe", pa.bool_()),
                pa.field("position", pa.int32()), pa.field("symbol", pa.string()), pa.field("state", pa.string()),
                pa.field("output", PROBS7), pa.field("probs", PROBS7), pa.field("hidden", pa.list_(pa.float32()))]))
            _write(out, "probes", rid, t)


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


DISCREPANCY_ARGS = ["discrepancy", "--cells", "vanilla,gru", "--inits", "normal,xavier", "--l-max", "24",
                    "--k", "1-6", "--draws", "200", "--seeds", "0-2"]


def real_discrepancy(out):
    """A real tiny discrepancy sweep into ``out`` (needs the session's Ray instance)."""
    from sweeps.cli import main
    assert main([*DISCREPANCY_ARGS, "--out", str(out)]) == 0


def copy_tables(src, dst, tables):
    for t in tables:
        shutil.copytree(os.path.join(src, t), os.path.join(dst, t))
