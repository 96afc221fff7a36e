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

import pandas as pd
import pytest
import torch

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
            return [training_tables.unpack(r) for r in results]
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
    ("adam", "gru:4", "torch"), ("paper", "vanilla:5", "torch"), ("adam", "gru:3", "numba"), ("paper", "vanilla:5", "numba")])
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


def test_spec_sections_plan_one_group_per_run_with_resolved_settings():
    s = specs.load("paper-training")
    groups = {g.name: g for g in s.groups()}
    assert len(groups) == len(s.groups())
    g = groups["embedded-reber-gru-k10-paper-seed3"]
    assert g.settings == {"optimizer": "sgd", "loss": "squared-error", "order": "fixed", "n_train": 256, "n_val": 256,
                          "n_test": 256, "lr": 0.001, "max_epochs": 1000, "batch_size": 1, "bias": "authors",
                          "init": "normal", "data_seed": 0, "dtype": "float64", "engine": "numba", "tol": 1e-5}
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
])
def test_cli_train_bad_input_is_one_line_and_exit_2(tmp_path, cli, args, option):
    base = {"--task": "reber", "--cells": "gru:3", "--protocol": "adam", "--seeds": "0"}
    base.update(dict(zip(args[::2], args[1::2])))
    code, out, err = cli("train", *[x for kv in base.items() for x in kv], "--out", tmp_path / "o")
    assert code == 2 and err.startswith(f"lksweep: error: {option}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


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
