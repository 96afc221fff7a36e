"""Small training tables built from the training job's own schemas (runs, gradients,
probes), one Parquet file per run as the store writes them, for the analysis and report
tests; plus a real tiny discrepancy sweep."""
import os
import shutil

import numpy as np
import pyarrow as pa

from sweeps import contract as S
from sweeps.fileformat import encode
from sweeps.jobs.training.tables import SCHEMAS


def write_sealed(out, table, name, t: pa.Table, job="training"):
    """``t`` as OUT/<table>/<name>.parquet, sealed as the store commits a group's file."""
    d = os.path.join(out, table)
    os.makedirs(d, exist_ok=True)
    meta = {"job": job, "kind": "table", "table": table, "group": name, "settings": {}}
    with open(os.path.join(d, f"{name}.parquet"), "wb") as f:
        f.write(encode(t, meta)[0])


def _write(out, table, run_id, rows):
    """``rows`` under the job's schema; keys it does not have become extra columns."""
    t = pa.Table.from_pylist(rows, schema=SCHEMAS[table])
    for extra in dict.fromkeys(k for r in rows for k in r if k not in SCHEMAS[table].names):
        t = t.append_column(extra, pa.array([r.get(extra) for r in rows]))
    write_sealed(out, table, run_id, t)


def run_id(task, cell, k, recipe, seed):
    return f"{task}-{cell}-k{k}-{recipe}-seed{seed}"


OWN = {"paper": {"optimizer": "sgd", "loss": "squared-error", "order": "fixed", "batch_size": 1},
       "adam": {"optimizer": "adam", "loss": "cross-entropy", "order": "shuffled", "batch_size": 50}}
LEVELS = {"sgd": "optimizer", "adam": "optimizer", "squared-error": "loss", "cross-entropy": "loss",
          "fixed": "order", "shuffled": "order"}


def key(task, cell, k, recipe, seed):
    """The key columns of a run of ``recipe`` ('paper', 'paper+adam+cross-entropy', ...; a protocol
    name other than paper and adam gets the paper's ingredients)."""
    protocol, *changes = recipe.split("+")
    ingredients = dict(OWN.get(protocol, OWN["paper"]))
    for c in changes:
        if c.startswith("b") and c[1:].isdigit():
            ingredients["batch_size"] = int(c[1:])
        else:
            ingredients[LEVELS[c]] = c
    return {"run_id": run_id(task, cell, k, recipe, seed), "task": task, "cell": cell, "k": k, "protocol": protocol,
            "recipe": recipe, "optimizer": ingredients["optimizer"], "loss": ingredients["loss"], "seed": seed}, ingredients


def _defaults(schema):
    """A value of every column's type: the columns a fixture does not set."""
    fill = {pa.string(): "x", pa.bool_(): False, pa.float64(): 1.0, pa.int32(): 1, pa.int64(): 1}
    return {f.name: fill.get(f.type) for f in schema}


def run_row(task, cell, k, recipe, seed, acc):
    """A runs row of ``recipe`` whose test score (string accuracy on reber, outer accuracy on
    embedded-reber) is ``acc``; the other columns at fixed defaults."""
    keys, ingredients = key(task, cell, k, recipe, seed)
    emb = task.startswith("embedded")
    return {**_defaults(SCHEMAS["runs"]), **keys, **ingredients,
            "bias": "authors", "init": "normal", "dtype": "float64", "engine": "numba", "n_params": 500,
            "n_train": 100, "n_val": 100, "n_test": 100, "data_seed": 0, "lr": 0.05, "max_epochs": 10,
            "tol": 1e-5 if keys["protocol"] == "paper" else None, "epochs": 10, "stop_reason": "max_epochs",
            "selected_epoch": 10, "string_accuracy": acc, "test_string_accuracy": acc,
            "outer_accuracy": acc if emb else np.nan, "test_outer_accuracy": acc if emb else np.nan,
            "train_outer_accuracy": acc if emb else np.nan, "val_outer_accuracy": acc if emb else np.nan,
            "strict": bool(acc == 1.0), "solved_epoch": None, "outer_epoch": None,
            "loss_floor": 3.5 if emb else 2.0, "loss_floor_guess": 4.0 if emb else 2.0,
            # the sets' composition and lag are unknown unless a fixture says (tables written before them)
            **{f"{which}_constant_outer": None for which in ("train", "val", "test")},
            "test_in_train": None, "lag_min": None, "lag_max": None}


def write_runs(out, spec, constant=None, stops=None):
    """``spec``: {(task, cell, k, recipe): [accuracy per seed]} — the string accuracy for
    reber, the outer accuracy for embedded-reber (test set, selected model). ``constant``: {set:
    share} adds the columns ``<set>_constant_outer`` (the best constant prediction's outer
    accuracy on that set) that newer runs tables carry; ``stops``: {(task, cell, k, recipe):
    [stop_reason per seed]} (default max_epochs)."""
    for (task, cell, k, recipe), accs in spec.items():
        for seed, acc in enumerate(accs):
            row = run_row(task, cell, k, recipe, seed, acc)
            if stops:
                row["stop_reason"] = stops[(task, cell, k, recipe)][seed]
            row.update({f"{which}_constant_outer": share for which, share in (constant or {}).items()})
            _write(out, "runs", row["run_id"], [row])


def write_epochs(out, spec, n_epochs=12, rising=(), halved=None):
    """Per run of ``spec`` ({(task, cell, k, recipe): seeds}): a training loss falling from 20
    towards 4 + seed / 10 over ``n_epochs`` (seed 1 stops halfway), and validation scores: flat
    at 0.5, except for the seeds in ``rising``, whose validation outer and string accuracies
    climb from 0.5 to 0.9 over the last third of the epochs. ``halved``: {seed: h}, the lr is
    halved once at each of the last h epochs."""
    for (task, cell, k, recipe), seeds in spec.items():
        for seed in range(seeds):
            keys, _ = key(task, cell, k, recipe, seed)
            last = n_epochs // 2 if seed == 1 else n_epochs
            rows = []
            for e in range(last + 1):
                score = 0.5 + (0.4 * max(0, e - 2 * last / 3) / (last / 3) if seed in rising else 0)
                lr = 0.001 * 0.5 ** max(0, e - last + (halved or {}).get(seed, 0))
                rows.append({**_defaults(SCHEMAS["epochs"]), **keys, "epoch": e, "lr": lr,
                             "val_outer_accuracy": score, "val_string_accuracy": score,
                             "train_loss": None if e == 0 else 4 + seed / 10 + 16 * 0.7 ** e})
            _write(out, "epochs", keys["run_id"], rows)


def write_lengths(out, spec, start=0):
    """``spec``: {(task, cell, k, recipe): (seeds, {length: (n, outer_correct[, outer_T])})}: with
    a third value, the column ``outer_T`` (strings of that length whose outer symbol is T) that
    newer lengths tables carry. Seeds ``start`` to ``start + seeds - 1``."""
    for (task, cell, k, recipe), (seeds, by_length) in spec.items():
        for seed in range(start, start + seeds):
            keys, _ = key(task, cell, k, recipe, seed)
            rows = [{**keys, "length": n, "n": v[0], "string_correct": v[1], "outer_correct": v[1],
                     **({"outer_T": v[2]} if len(v) > 2 else {})} for n, v in by_length.items()]
            _write(out, "lengths", keys["run_id"], rows)


def hist_row(values):
    b, c = S.sparse_histograms(np.asarray(values, float)[:, None])
    dense = S.dense_histogram(b, c)
    q = {name: S.quantile(dense, p) for name, p in (("q10", .1), ("q50", .5), ("q90", .9), ("q99", .99))}
    return {"n": len(values), "mean": float(np.mean(values)), **q, "max": float(np.max(values)),
            "hist_bin": b[0].tolist(), "hist_count": c[0].tolist()}


def write_gradients(out, spec, seed=0, structural=None):
    """``spec``: {(task, cell, k, recipe): (param log10 centre, hidden decay per step[, decay at
    init])}: lognormal |g| around 10**centre for 'param' (init and trained), and hidden-state
    norms ||dloss/dh|| = decay**d (times lognormal noise) for d = 0..9, from 60 strings at d = 0
    down to 15 at d = 9 (so the largest distance half the strings reach is 6). ``structural``:
    {(task, cell, k, recipe): z} adds z exact zeros to each U row, counted as structural_zeros
    (else the column is null, as in tables written before it existed)."""
    rng = np.random.default_rng(seed)
    for (task, cell, k, recipe), (centre, decay, *init_decay) in spec.items():
        base, _ = key(task, cell, k, recipe, 0)
        rid, rows = base["run_id"], []
        zeros = None if structural is None else structural[(task, cell, k, recipe)]
        for stage in ("init", "trained"):
            for tensor in ("W", "U"):
                vals = 10 ** rng.normal(centre, 0.7, 400)
                z = (zeros or 0) if tensor == "U" else 0
                rows.append({**base, "stage": stage, "quantity": "param", "tensor": tensor, "distance": -1,
                             **hist_row(np.concatenate([vals, np.zeros(z)])),
                             "structural_zeros": None if zeros is None else z})
            rate = init_decay[0] if init_decay and stage == "init" else decay
            for d in range(10):
                vals = rate ** d * 10 ** rng.normal(0, 0.3, 60 - 5 * d)
                rows.append({**base, "stage": stage, "quantity": "hidden", "tensor": "h", "distance": d,
                             **hist_row(vals)})
        _write(out, "gradients", rid, rows)


REBER_OUT = "B BT BTSSS BTX BTXXVP BTXS BP BPTT BPV BPVV".split()
REBER_HID = [p.split(":") for p in ("q0:B q1:BT q1:BTSS q2:BTX q2:BPTTTVP q3:BTXS q3:BPVV q4:BPTTT "
                                    "q5:BPV").split()]


def write_probes(out, configs, seed=0):
    """Probe rows (random outputs and states) for each (task, cell, k, recipe) run."""
    rng = np.random.default_rng(seed)
    for task, cell, k, recipe in configs:
        for s in (0, 1):
            keys, _ = key(task, cell, k, recipe, s)
            rid, rows = keys["run_id"], []
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
                    rows.append({**keys, "probe": probe, "output_probe": o, "hidden_probe": h, "position": i, "symbol": sym,
                                 "state": (state if i == len(probe) - 1 and state else f"x{i}"),
                                 "output": logits.tolist(), "probs": (np.exp(logits) / np.exp(logits).sum()).tolist(),
                                 "hidden": rng.uniform(0, 1, k).tolist()})
            _write(out, "probes", rid, rows)


PAPER_LIKE_RUNS = {
    ("reber", "vanilla", 5, "paper"): [1.0, 1.0, 1.0, 0.98, 1.0, 1.0],
    ("embedded-reber", "vanilla", 18, "paper"): [0.5, 0.52, 0.48, 0.5, 0.55, 0.5],
    ("embedded-reber", "gru", 10, "paper"): [1.0, 1.0, 0.99, 1.0, 1.0, 1.0],
    ("embedded-reber", "vanilla", 18, "paper+cross-entropy"): [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ("embedded-reber", "gru", 10, "paper+cross-entropy"): [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ("embedded-reber", "vanilla", 18, "adam"): [1.0, 1.0, 1.0, 1.0, 1.0, 0.5],
    ("embedded-reber", "gru", 10, "adam"): [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
}
ALIKE_GRADIENTS = {("embedded-reber", "vanilla", 18, "paper"): (-3.0, 0.5),
                   ("embedded-reber", "gru", 10, "paper"): (-3.2, 0.9)}
PROBE_CONFIGS = [("reber", "vanilla", 5, "paper"), ("embedded-reber", "vanilla", 18, "paper"),
                 ("embedded-reber", "gru", 10, "paper"), ("embedded-reber", "vanilla", 18, "adam")]
EPOCH_CONFIGS = {("reber", "vanilla", 5, "paper"): 3, ("embedded-reber", "vanilla", 18, "paper"): 3,
                 ("embedded-reber", "gru", 10, "paper"): 3}
# vanilla: 50 % at every length; GRU: right on short strings, worse on the longest. (n, outer_correct,
# outer_T): the best constant prediction scores 32/60 on lengths 5-6, 6/10 on 9, 1/2 on 21.
LENGTH_CONFIGS = {
    ("embedded-reber", "vanilla", 18, "paper"): (6, {5: (40, 20, 18), 6: (20, 10, 10), 9: (10, 5, 4), 21: (2, 1, 1)}),
    ("embedded-reber", "gru", 10, "paper"): (6, {5: (40, 40, 18), 6: (20, 20, 10), 9: (10, 9, 4), 21: (2, 1, 1)})}


def write_training(out, runs=PAPER_LIKE_RUNS, grads=ALIKE_GRADIENTS, probes=PROBE_CONFIGS):
    write_runs(out, runs)
    write_gradients(out, grads)
    write_probes(out, probes)
    write_epochs(out, EPOCH_CONFIGS)
    write_lengths(out, LENGTH_CONFIGS)


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


# ---------------------------------------------------------------------- the trainability map
LAGS = ((5, 8), (12, 16), (20, 26), (30, 36))


def map_run_id(cell, k, init, lag, seed, recipe="adam"):
    return f"embedded-reber-{cell}-k{k}-{recipe}-{init}-lag{lag[0]}-{lag[1]}-seed{seed}"


def write_map_runs(out, spec, recipe="adam", stops=None, max_epochs=10):
    """``spec``: {(cell, k, init): {lag range: [success per seed]}}: embedded-Reber runs of
    ``recipe`` with that lag range and init, test outer accuracy 1.0 for a success and 0.5 for a
    failure. ``stops``: {(cell, k, init): {lag range: [stop_reason per seed]}} (default max_epochs)."""
    for (cell, k, init), by_lag in spec.items():
        for lag, wins in by_lag.items():
            for seed, win in enumerate(wins):
                row = run_row("embedded-reber", cell, k, recipe, seed, 1.0 if win else 0.5)
                row.update({"run_id": map_run_id(cell, k, init, lag, seed, recipe), "init": init,
                            "lag_min": lag[0], "lag_max": lag[1], "max_epochs": max_epochs,
                            "test_constant_outer": 0.5})
                if stops:
                    row["stop_reason"] = stops[(cell, k, init)][lag][seed]
                _write(out, "runs", row["run_id"], [row])


def write_map_epochs(out, spec, rising, recipe="adam", n_epochs=12):
    """Epochs of the map's runs (``spec`` as in :func:`write_map_runs`): validation outer accuracy
    flat at 0.5, except for the runs (cell, k, init, lag, seed) in ``rising``, climbing from 0.5 to
    0.9 over the last third."""
    for (cell, k, init), by_lag in spec.items():
        for lag, wins in by_lag.items():
            for seed in range(len(wins)):
                keys, _ = key("embedded-reber", cell, k, recipe, seed)
                keys["run_id"] = map_run_id(cell, k, init, lag, seed, recipe)
                up = (cell, k, init, lag, seed) in rising
                rows = [{**_defaults(SCHEMAS["epochs"]), **keys, "epoch": e, "lr": 0.01, "train_loss": 1.0,
                         "val_outer_accuracy": 0.5 + (0.4 * max(0, e - 2 * n_epochs / 3) / (n_epochs / 3) if up else 0),
                         "val_string_accuracy": 0.5} for e in range(n_epochs + 1)]
                _write(out, "epochs", keys["run_id"], rows)


def falling(l50s, seeds=6, lags=LAGS):
    """Success per seed at each lag range: seed s succeeds while the range's centre is below its
    own threshold, the thresholds spread evenly around ``l50`` (so about half succeed there)."""
    out = {}
    for point, l50 in l50s.items():
        edges = l50 + np.linspace(-3, 3, seeds)
        out[point] = {lag: [bool((lag[0] + lag[1]) / 2 < e) for e in edges] for lag in lags}
    return out


def write_memory(out, rates, lyapunov=None, decodable=None, l_max=50):
    """Memory-side fixtures at initialisation: ``rates`` {(cell, k, init): [decay rate per seed
    ensemble]} as memory rows (95 % interval ±10 %); ``lyapunov`` {(cell, k, init): exponent} as 20
    draws around it (median exactly it); ``decodable`` {(cell, k, init): lag}: an accuracy
    1/2 + 1/2 exp(-l ln 2 / lag), which falls to 0.75 at l = lag."""
    from sweeps.jobs import decodable as D
    from sweeps.jobs import memory as M

    for (cell, k, init), rs in rates.items():
        gain = float(init.split(":")[1]) if init.startswith("gain:") else 1.0
        base = {"cell": cell, "init": init, "gain": gain, "k": k, "dtype": "float64"}
        name = f"{cell}-{init}-k{k}"
        rows = [{**_defaults(M.MEMORY), **base, "seed": s, "n_draws": 100, "l_max": l_max, "rate": r,
                 "rate_lo": r * 1.1, "rate_hi": r * 0.9, "l_half": None,
                 **{f"lyapunov_{q}": None for q in ("mean", "std", "q10", "q50", "q90", "positive", "vanished")},
                 "saturated": None} for s, r in enumerate(rs)]
        write_sealed(out, "memory", name, pa.Table.from_pylist(rows, schema=M.MEMORY), job="discrepancy")
        if lyapunov and (cell, k, init) in lyapunov:
            lam = lyapunov[(cell, k, init)]
            rows = [{**_defaults(M.LYAPUNOV), **base, "seed": 0, "draw": d, "lyapunov": lam + 0.01 * (d - 10),
                     "rate": lam, "saturated": None, "state_rate": None, "attractor": "fixed", "v_attractor": "fixed",
                     "v_shift": 0} for d in range(21)]
            write_sealed(out, "lyapunov", name, pa.Table.from_pylist(rows, schema=M.LYAPUNOV), job="discrepancy")
        if decodable and (cell, k, init) in decodable:
            lag = decodable[(cell, k, init)]
            rows = []
            for l in range(1, l_max + 1):
                acc = 0.5 + 0.5 * np.exp(-l * np.log(2) / lag)
                rows.append({**_defaults(D.SCHEMA), **base, "seed": 0, "l": l, "n_draws": 50, "noise": 0.05,
                             "repeats": 16, "decodable": acc, "decodable_std": 0.01, "decodable_q10": acc,
                             "decodable_q50": acc, "decodable_q90": acc})
            write_sealed(out, "decodable", name, pa.Table.from_pylist(rows, schema=D.SCHEMA), job="discrepancy")


def write_task_memory(out, spec, recipe="adam", strings=8, steps=12):
    """task_memory rows of the map's runs (``spec`` as in :func:`write_map_runs`): at init, the
    decodable accuracy falls as 1/2 + 1/2 exp(-l/3) and the exponent is -0.5; trained, a run that
    succeeded keeps 0.95 (exponent -0.05), one that failed 0.55 (exponent -0.8). n_strings =
    max(strings - l // 2, 2): half of 8 strings reach step 9."""
    from sweeps.jobs import task_memory as TM

    for (cell, k, init), by_lag in spec.items():
        for lag, wins in by_lag.items():
            for seed, win in enumerate(wins):
                keys, _ = key("embedded-reber", cell, k, recipe, seed)
                keys["run_id"] = map_run_id(cell, k, init, lag, seed, recipe)
                rows = []
                for stage in ("init", "trained"):
                    for l in range(1, steps + 1):
                        acc = 0.5 + 0.5 * np.exp(-l / 3) if stage == "init" else 0.95 if win else 0.55
                        lam = -0.5 if stage == "init" else -0.05 if win else -0.8
                        dist = float(np.exp(lam * l))
                        rows.append({**keys, "stage": stage, "l": l, "n_strings": max(strings - l // 2, 2),
                                     "strings": strings, "data_seed": 0, "distance_mean": dist, "distance_q10": dist,
                                     "distance_q50": dist, "distance_q90": dist, "lyapunov_q10": lam,
                                     "lyapunov_q50": lam, "lyapunov_q90": lam, "noise": 0.05, "decodable": acc})
                write_sealed(out, "task_memory", keys["run_id"], pa.Table.from_pylist(rows, schema=TM.SCHEMA),
                             job="task_memory")


# Points at the fixture discrepancy sweep's cells, widths and inits (its memory and lyapunov tables):
# L50 spread over the lags trained, two of them censored.
MAP_POINTS = {("vanilla", 6, "normal"): 9.0, ("vanilla", 6, "xavier"): 17.0, ("vanilla", 6, "gain:2"): 3.0,
              ("gru", 4, "normal"): 24.0, ("gru", 4, "xavier"): 29.0, ("gru", 4, "gain:2"): 45.0}


def write_trainability(out):
    """The map's runs and task_memory rows at MAP_POINTS (memory from the discrepancy fixture)."""
    spec = falling(MAP_POINTS)
    write_map_runs(out, spec)
    write_task_memory(out, spec)
