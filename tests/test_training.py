"""Training runs: the loss falls, per-seed results do not depend on the ensemble a seed
was trained in (either engine), checkpoints resume bit-identically (also after a SIGKILLed
sweep), the ingredients expand into the right runs, validation selects and stops, the tables
have the documented columns, and bad input is refused with one line."""
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

import cells
from sweeps import spec as specs
from sweeps.job import Checkpoint, get_job
from sweeps.jobs.training import models
from sweeps.jobs.training import tables as training_tables

training = get_job("training")

TINY = {"task": "embedded-reber", "n_train": 40, "n_test": 20, "max_epochs": 3, "batch_size": 8}


def runs(**section):
    """Shard params of the runs a training section plans, in plan order."""
    return [g.shards[0].params for g in specs.validate({"training": {**TINY, **section}}).groups()]


def to_completion(params, states=None):
    """compute() rounds, feeding checkpoints back, until every run returns its tables."""
    states = states or [None] * len(params)
    while True:
        results = training.compute(params, states)
        if not any(isinstance(r, Checkpoint) for r in results):
            return [training_tables.SHARD.unpack(r) for r in results]
        states = [r.state if isinstance(r, Checkpoint) else None for r in results]
        assert all(isinstance(r, Checkpoint) for r in results)   # runs here stop together


def without_timing(tables):
    return {name: t.drop(["wall_s"]) if name == "runs" else t for name, t in tables.items()}


def test_loss_falls_in_a_short_real_training_run():
    (out,) = to_completion(runs(task="reber", cells="vanilla:5", protocol="adam", seeds=0, n_train=100,
                                max_epochs=8, batch_size=10))
    epochs = out["epochs"].to_pandas()
    assert list(epochs.epoch) == list(range(9))
    assert epochs.val_loss.iloc[-1] < 0.7 * epochs.val_loss.iloc[0]
    assert epochs.train_loss.iloc[-1] < 0.8 * epochs.train_loss.iloc[1]
    assert epochs.val_step_accuracy.iloc[-1] > epochs.val_step_accuracy.iloc[0]


@pytest.mark.parametrize("protocol, cell, engine", [
    ("adam", "gru:4", "torch"), ("paper", "vanilla:5", "torch"), ("adam", "gru:3", "numba"), ("paper", "vanilla:5", "numba"),
    ("adam", "tanh:4", "numba"), ("paper", "lstm:3", "numba"), ("adam", "mgu:3", "numba")])
def test_a_seed_gives_the_same_numbers_alone_or_in_an_ensemble(protocol, cell, engine):
    params = runs(cells=cell, protocol=protocol, seeds="0-2", engine=engine, order="shuffled")
    (alone,) = to_completion([params[1]])
    grouped = to_completion(params)
    for name, table in without_timing(alone).items():
        assert table.equals(without_timing(grouped[1])[name]), name
    assert not without_timing(grouped[0])["epochs"].equals(without_timing(alone)["epochs"])


def test_the_torch_engine_gives_the_same_numbers_on_any_number_of_threads():
    """(The numba kernels are serial: one thread whatever the machine.)"""
    import numpy as np
    import torch

    from sweeps.jobs.training.ensemble import Ensemble
    params = runs(cells="gru:3", protocol="adam", seeds="0-1", engine="torch", batch_size=20)
    before, trained = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            ens = Ensemble(params, [None, None])
            ens.epoch()
            trained.append([ens.engine.get(i) for i in range(2)])
    finally:
        torch.set_num_threads(before)
    for one, two in zip(*trained):
        assert all(np.array_equal(one[n], two[n]) for n in one)


@pytest.mark.parametrize("engine", ["torch", "numba"])
def test_resuming_from_checkpoints_is_bit_identical(engine):
    params = runs(cells="gru:3", protocol="adam", seeds="0-1", max_epochs=4, engine=engine)
    whole = to_completion(params)
    first = training.compute([dataclasses.replace(p, checkpoint_s=1e-9) for p in params], [None, None])
    assert all(isinstance(r, Checkpoint) and r.progress == "epoch 1" for r in first)
    # resume each seed in another ensemble than it started in
    resumed = to_completion(params[1:], [first[1].state]) + to_completion(params[:1], [first[0].state])
    for a, b in zip(whole, resumed[::-1]):
        for name in training.tables:
            assert without_timing(a)[name].equals(without_timing(b)[name]), name


def test_a_cell_alone_is_its_matched_width_of_about_600_parameters():
    """Counted on the built model under the default bias option (authors). The nearest width is
    chosen; one unit moves an LSTM or MGU by 60-110 parameters, hence 6.5 %, not 5 %."""
    def count(cell, k):
        return sum(t[0].numel() for t in models.init_params(cell, k, "authors", "normal", [0]).values())

    assert set(models.MATCHED) == set(cells.CELLS) and (models.MATCHED["vanilla"], models.MATCHED["gru"]) == (18, 10)
    for cell, k in models.MATCHED.items():
        off = {w: abs(count(cell, w) - 600) for w in (k - 1, k, k + 1)}
        assert off[k] <= 0.065 * 600 and off[k] == min(off.values()), (cell, off)
    planned = runs(cells="lstm,mgu,gru:4,vanilla", protocol="paper")
    assert [(p.cell, p.k, p.bias) for p in planned] == [
        ("lstm", models.MATCHED["lstm"], "authors"), ("mgu", models.MATCHED["mgu"], "authors"), ("gru", 4, "authors"),
        ("vanilla", 18, "authors")]
    assert planned[0] == runs(cells=f"lstm:{models.MATCHED['lstm']}", protocol="paper")[0]      # the same run, spelled out


def test_spec_sections_plan_one_group_per_run_with_resolved_settings():
    s = specs.load("paper-training")
    groups = {g.name: g for g in s.groups()}
    assert len(groups) == len(s.groups())
    g = groups["embedded-reber-gru-k10-paper-seed3"]
    assert g.settings == {"optimizer": "sgd", "loss": "squared-error", "order": "fixed", "n_train": 256, "n_val": 256,
                          "n_test": 256, "lr": 0.001, "max_epochs": 1000, "batch_size": 1, "bias": "authors",
                          "init": "normal", "data_seed": 0, "lag": None, "sampling": "disjoint", "dtype": "float64",
                          "engine": "numba", "tol": 1e-5}
    assert g.tables == training.tables
    # the paper protocol at the authors' budget, and its 2x2 of optimizer x loss on the same strings and seeds
    for cell in ("vanilla-k18", "gru-k10"):
        factorial = {name.split("-seed")[0].split(f"{cell}-")[1] for name in groups
                     if name.startswith(f"embedded-reber-{cell}-paper")}
        assert {"paper", "paper+adam", "paper+cross-entropy", "paper+adam+cross-entropy"} <= factorial
        for recipe in ("paper", "paper+adam", "paper+cross-entropy", "paper+adam+cross-entropy"):
            seeds = [groups[f"embedded-reber-{cell}-{recipe}-seed{i}"].shards[0].params for i in range(16)]
            assert {(p.n_train, p.data_seed, p.batch_size, p.order, p.max_epochs, p.dtype) for p in seeds} == \
                {(256, 0, 1, "fixed", 1000, "float64")}
    a, b = (specs.validate({"training": {**TINY, "cells": "gru:3", "protocol": "adam", "seeds": sd}}).groups()
            for sd in ("0", "1"))
    assert training.batch_key(a[0].shards[0]) == training.batch_key(b[0].shards[0])


def test_ingredients_expand_into_one_run_per_combination_named_by_what_differs():
    groups = specs.validate({"training": {"task": "embedded-reber", "cells": "vanilla:4", "protocol": "paper,adam",
                                          "optimizer": "sgd,adam", "loss": "squared-error,cross-entropy",
                                          "batch_size": "1,50", "seeds": "0-1"}}).groups()
    assert len(groups) == 2 * 2 * 2 * 2 * 2
    names = {g.name for g in groups}
    assert "embedded-reber-vanilla-k4-paper-seed0" in names                      # the protocol's own ingredients
    assert "embedded-reber-vanilla-k4-paper+adam+cross-entropy+b50-seed1" in names
    assert "embedded-reber-vanilla-k4-adam+sgd+squared-error+b1+fixed-seed0" not in names   # adam keeps its order
    assert "embedded-reber-vanilla-k4-adam+sgd+squared-error+b1-seed0" in names
    adam_sgd = next(g for g in groups if g.name == "embedded-reber-vanilla-k4-adam+sgd-seed0")
    assert adam_sgd.settings["lr"] == 0.001 and adam_sgd.settings["n_train"] == 2000
    paper_adam = next(g for g in groups if g.name == "embedded-reber-vanilla-k4-paper+adam-seed0")
    assert paper_adam.settings["lr"] == 1e-3 and paper_adam.settings["order"] == "fixed"
    a, b = (specs.validate({"training": {**TINY, "cells": "gru:3", "protocol": "adam", "seeds": sd}}).groups()
            for sd in ("0", "1"))
    assert training.batch_key(a[0].shards[0]) == training.batch_key(b[0].shards[0])


def test_a_run_starts_from_gain_draws_of_the_variance_it_names():
    (run,) = runs(cells="gru:10", protocol="paper", seeds="0", init="gain:2.0")
    assert run.init == "gain:2"                                   # one value, one name
    p = models.init_params("gru", 10, "authors", run.init, list(range(200)), torch.float64)
    for name, fan_in in (("Wz", 10), ("Uh", 7), ("O", 10)):
        x = p[name].numpy().ravel()
        want = 4.0 / fan_in
        assert abs(x.var(ddof=1) - want) <= 4 * want * math.sqrt(2 / (len(x) - 1)), name
    assert not p["bz"].any()                                      # biases start at zero whatever the draws


def test_cli_train_writes_the_documented_tables(tmp_path, cli):
    code, out, err = cli("train", "--task", "embedded-reber", "--cells", "vanilla:18,gru:10", "--protocol", "adam",
                         "--seeds", "0-1", "--n-train", "20", "--max-epochs", "1", "--out", tmp_path)
    assert code == 0, err
    r = pd.read_parquet(tmp_path / "runs")
    assert len(r) == 4 and set(r.n_params) == {601, 610}      # the authors' biases (the paper says 594, 580)
    assert set(r.engine) == {"numba"} and set(r.recipe) == {"adam"}
    for name, schema in training.schemas.items():
        df = pd.read_parquet(tmp_path / name)
        assert list(df.columns) == schema.names, name
    g = pd.read_parquet(tmp_path / "gradients")
    assert set(g.stage) == {"init", "trained"} and set(g.quantity) == {"param", "hidden"}
    hidden = g[(g.quantity == "hidden") & (g.distance == 0)]
    assert (hidden.n == 20).all()   # one norm per training example at d = 0
    # structural zeros: only input weights have them (most strings leave a symbol unread), all among the exact zeros
    params = g[g.quantity == "param"]
    u = params.tensor.str.startswith("U")
    assert (params[u].structural_zeros > 0).all() and (params[~u].structural_zeros == 0).all()
    assert (g[g.quantity == "hidden"].structural_zeros == 0).all()
    exact_zeros = [dict(zip(b, c)).get(0, 0) for b, c in zip(params.hist_bin, params.hist_count)]
    assert (params.structural_zeros <= exact_zeros).all()
    p = pd.read_parquet(tmp_path / "probes")
    assert set(p.probe) == {"BPBTXSE", "BTBTXSE"} and p.probs.map(len).eq(7).all()
    code, out, _ = cli("status", tmp_path)
    assert code == 0
    assert [line.split()[1:] for line in out.splitlines() if line.startswith(("runs", "probes"))] == \
        [["4/4", "4/4", "0"]] * 2
    # the same command again trains nothing
    code, out, _ = cli("train", "--task", "embedded-reber", "--cells", "vanilla:18,gru:10", "--protocol", "adam",
                       "--seeds", "0-1", "--n-train", "20", "--max-epochs", "1", "--out", tmp_path)
    assert code == 0 and "0 shard(s) computed" in out


def test_results_of_the_other_engine_are_refused_not_mixed(tmp_path, cli):
    """The engines agree to rounding only, so a run's engine is part of its group's settings: a
    directory holding torch-engine results refuses the same runs from the fast path (as it would
    results written before the engine existed) unless told to replace them."""
    args = ["train", "--task", "reber", "--cells", "vanilla:3", "--protocol", "adam", "--seeds", "0", "--n-train", "10",
            "--max-epochs", "1", "--out", tmp_path]
    assert cli(*args, "--engine", "torch")[0] == 0
    before = pd.read_parquet(tmp_path / "runs")
    code, _, err = cli(*args)
    assert code == 2 and "refused" in err and "engine=torch" in err and "engine=numba" in err
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "runs"), before)
    assert cli(*args, "--overwrite")[0] == 0
    assert list(pd.read_parquet(tmp_path / "runs").engine) == ["numba"]


@pytest.mark.parametrize("args, option", [
    (["--task", "penn"], "--task"), (["--cells", "nosuchcell:4"], "--cells"), (["--cells", "gru:0"], "--cells"),
    (["--protocol", "sgd"], "--protocol"), (["--seeds", "5-2"], "--seeds"), (["--n-train", "0"], "--n-train"),
    (["--optimizer", "rmsprop"], "--optimizer"), (["--loss", "hinge"], "--loss"), (["--order", "sorted"], "--order"),
    (["--batch-size", "0"], "--batch-size"), (["--engine", "jax"], "--engine"), (["--init", "gain:0"], "--init"),
    (["--init", "gain:2,normal"], "--init"), (["--init", "he"], "--init"),
    (["--engine", "numba", "--dtype", "float32"], "engine"),
    (["--lag", "20-24"], "lag: task reber has no inner string"), (["--sampling", "shuffled"], "--sampling"),
    (["--task", "embedded-reber", "--lag", "24-20"], "--lag: range '24-20' is reversed; write 20-24"),
    (["--task", "embedded-reber", "--lag", "3-8"], "--lag: range 3-8 starts below 5"),
    (["--task", "embedded-reber", "--lag", "1-4"], "--lag: nothing lies in 1-4"),
    (["--task", "embedded-reber", "--lag", "90-200"], "--lag: range 90-200 ends above 100"),
    (["--task", "embedded-reber", "--lag", "5-5"], "lag: 5-5 holds 2 inner string(s), too few"),
])
def test_cli_train_bad_input_is_one_line_and_exit_2(tmp_path, cli, args, option):
    base = {"--task": "reber", "--cells": "gru:3", "--protocol": "adam", "--seeds": "0"}
    base.update(dict(zip(args[::2], args[1::2])))
    code, out, err = cli("train", *[x for kv in base.items() for x in kv], "--out", tmp_path / "o")
    assert code == 2 and err.startswith(f"lksweep: error: {option}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_lag_range_trains_on_those_lengths_only_and_short_ranges_say_so(tmp_path, cli):
    """Two lag ranges are two runs: 20-24 has strings enough, 5-8 holds 16 inner strings per outer
    symbol, fewer than asked, which the one warning line says; the runs table records the ranges
    and the sizes used, the lengths table only lengths of each run's range, and the sets are
    disjoint and balanced (no test string in training, constant prediction at 0.5)."""
    code, out, err = cli("train", "--task", "embedded-reber", "--lag", "20-24,5-8", "--cells", "gru:3", "--protocol",
                         "adam", "--seeds", "0", "--n-train", "24", "--max-epochs", "2", "--out", tmp_path)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("lksweep: warning:")]
    assert len(warnings) == 1 and "lag 5-8 holds 16 inner strings per outer symbol" in warnings[0]
    r = pd.read_parquet(tmp_path / "runs").set_index("run_id")
    long, short = r.loc["embedded-reber-gru-k3-adam-lag20-24-seed0"], r.loc["embedded-reber-gru-k3-adam-lag5-8-seed0"]
    assert (long.lag_min, long.lag_max, long.n_train, long.n_val, long.n_test) == (20, 24, 24, 24, 24)
    assert (short.lag_min, short.lag_max) == (5, 8) and short.n_train + short.n_val + short.n_test == 32
    assert f"train {short.n_train}, val {short.n_val}, test {short.n_test}" in warnings[0]
    assert (r.sampling == "disjoint").all() and (r.test_in_train == 0).all()
    assert (r[[f"{s}_constant_outer" for s in ("train", "val", "test")]] == 0.5).all().all()
    lengths = pd.read_parquet(tmp_path / "lengths")
    for run_id, (lo, hi) in (("embedded-reber-gru-k3-adam-lag20-24-seed0", (20, 24)),
                             ("embedded-reber-gru-k3-adam-lag5-8-seed0", (5, 8))):
        rows = lengths[lengths.run_id == run_id]
        assert rows.length.between(lo, hi).all() and rows.n.sum() == r.loc[run_id, "n_test"]
        assert rows.outer_T.sum() * 2 == rows.n.sum() and (rows.outer_T <= rows.n).all()


def test_independent_sampling_records_the_authors_overlap_and_imbalance(tmp_path, cli):
    code, _, err = cli("train", "--task", "embedded-reber,reber", "--cells", "vanilla:3", "--protocol", "adam",
                       "--seeds", "0", "--n-train", "64", "--max-epochs", "1", "--sampling", "independent",
                       "--out", tmp_path)
    assert code == 0 and "warning" not in err
    r = pd.read_parquet(tmp_path / "runs").set_index("task")
    emb = r.loc["embedded-reber"]
    assert emb.sampling == "independent" and emb.test_in_train > 0.3        # short strings recur, as in the authors'
    assert emb.test_constant_outer >= 0.5 and math.isnan(r.loc["reber", "test_constant_outer"])
    lengths = pd.read_parquet(tmp_path / "lengths")
    assert lengths[lengths.task == "reber"].outer_T.isna().all()
    t = lengths[lengths.task == "embedded-reber"]
    assert max(t.outer_T.sum(), t.n.sum() - t.outer_T.sum()) / t.n.sum() == emb.test_constant_outer


def test_a_killed_training_sweep_resumes_to_the_uninterrupted_result(tmp_path, cli):
    args = ["train", "--task", "reber", "--cells", "vanilla:5", "--protocol", "paper", "--seeds", "0-1",
            "--n-train", "60", "--max-epochs", "12", "--checkpoint-s", "0.5", "--engine", "torch"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args, "--out", str(killed), "--max-workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not list(Path(killed).glob("_shards/training/*/*.ckpt")):
            assert proc.poll() is None and time.time() < deadline, "no checkpoint before the sweep ended"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (killed / "runs").exists()
    assert cli(*args, "--out", killed)[0] == 0
    assert cli(*args, "--out", tmp_path / "whole", "--checkpoint-s", "600")[0] == 0
    for name in training.tables:
        a, b = (pd.read_parquet(d / name).sort_values(["run_id"], kind="stable").reset_index(drop=True)
                for d in (killed, tmp_path / "whole"))
        if name == "runs":
            a, b = a.drop(columns="wall_s"), b.drop(columns="wall_s")
        pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.parametrize("task, cell, engine", [("embedded-reber", "gru:3", "numba"), ("reber", "vanilla:5", "torch")])
def test_the_weights_table_rebuilds_models_that_reproduce_the_test_scores_bit_for_bit(tmp_path, task, cell, engine):
    """Both stages of every run, written as plain Parquet and read back with pandas, rebuild
    (without torch) the initial model and the selected one, whose test scores under the
    training job's own evaluation are the runs table's, bit for bit."""
    from analysis.weights import parameters
    from sweeps.jobs.training import engines, reber
    from sweeps.jobs.training.evaluation import scores

    params = runs(task=task, cells=cell, protocol="adam", seeds="0-1", n_train=60, max_epochs=6, batch_size=10,
                  engine=engine)
    for run, out in zip(params, to_completion(params)):
        path = tmp_path / f"{run.seed}.parquet"
        pq.write_table(out["weights"], path)
        models_ = parameters(pd.read_parquet(path))
        (rid,) = out["runs"].column("run_id").to_pylist()
        assert set(models_) == {(rid, "init"), (rid, "trained")}
        initial = models.init_params(run.cell, run.k, run.bias, run.init, [run.seed], torch.float64)
        assert all((models_[rid, "init"][n] == t[0].numpy()).all() for n, t in initial.items())
        data = reber.datasets(run.task, {"train": run.n_train, "val": run.n_val, "test": run.n_test}, run.data_seed,
                              torch.float64)
        row = out["runs"].to_pylist()[0]
        assert row["selected_epoch"] > 0       # the trained model is not the initial one
        reported = [row[f"test_{q}"] for q in training_tables.MEASURES]
        for stage in ("trained", "init"):
            engine_ = engines.make(cells.get_cell(run.cell), run, data, [models_[rid, stage]])
            got = scores(*engine_.evaluate([0], "test"), data["test"], run.task == "embedded-reber")
            got = [float(got[q][0]) for q in training_tables.MEASURES]
            if stage == "trained":
                np.testing.assert_array_equal(got, reported)       # exact; NaN (reber's outer accuracy) too
            else:
                assert got[0] != reported[0]                        # the initial model's loss is another
