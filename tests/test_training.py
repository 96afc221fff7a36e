"""Training runs: the loss falls, per-seed results do not depend on the ensemble a seed
was trained in, checkpoints resume bit-identically (also after a SIGKILLed sweep), the
tables have the documented columns, and bad input is refused with one line."""
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sweeps import spec as specs
from sweeps.job import Checkpoint, get_job
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
    assert epochs.train_loss.iloc[-1] < 0.7 * epochs.train_loss.iloc[0]
    assert epochs.test_step_accuracy.iloc[-1] > epochs.test_step_accuracy.iloc[0]


@pytest.mark.parametrize("protocol, cell", [("adam", "gru:4"), ("paper", "vanilla:5")])
def test_a_seed_gives_the_same_numbers_alone_or_in_an_ensemble(protocol, cell):
    params = runs(cells=cell, protocol=protocol, seeds="0-2")
    (alone,) = to_completion([params[1]])
    grouped = to_completion(params)
    for name, table in without_timing(alone).items():
        assert table.equals(without_timing(grouped[1])[name]), name
    assert not without_timing(grouped[0])["epochs"].equals(without_timing(alone)["epochs"])


def test_resuming_from_checkpoints_is_bit_identical():
    params = runs(cells="gru:3", protocol="adam", seeds="0-1", max_epochs=4)
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
    names = [g.name for g in s.groups()]
    assert len(names) == len(set(names)) == 96
    g = next(g for g in s.groups() if g.name == "embedded-reber-gru-k10-paper-seed3")
    assert g.settings["n_train"] == 256 and g.settings["lr"] == 0.001 and g.tables == training.tables
    a, b = (specs.validate({"training": {**TINY, "cells": "gru:3", "protocol": "adam", "seeds": sd}}).groups()
            for sd in ("0", "1"))
    assert training.batch_key(a[0].shards[0]) == training.batch_key(b[0].shards[0])


def test_cli_train_writes_the_documented_tables(tmp_path, cli):
    code, out, err = cli("train", "--task", "embedded-reber", "--cells", "vanilla:18,gru:10", "--protocol", "adam",
                         "--seeds", "0-1", "--n-train", "20", "--max-epochs", "1", "--out", tmp_path)
    assert code == 0, err
    r = pd.read_parquet(tmp_path / "runs")
    assert len(r) == 4 and set(r.n_params) == {594, 580}
    for name, schema in training.schemas.items():
        df = pd.read_parquet(tmp_path / name)
        assert list(df.columns) == schema.names, name
    g = pd.read_parquet(tmp_path / "gradients")
    assert set(g.stage) == {"init", "trained"} and set(g.quantity) == {"param", "hidden"}
    hidden = g[(g.quantity == "hidden") & (g.distance == 0)]
    assert (hidden.n == 20).all()   # one norm per training example at d = 0
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


@pytest.mark.parametrize("args, option", [
    (["--task", "penn"], "--task"), (["--cells", "lstmx:4"], "--cells"), (["--cells", "gru:0"], "--cells"),
    (["--protocol", "sgd"], "--protocol"), (["--seeds", "5-2"], "--seeds"), (["--n-train", "0"], "--n-train"),
])
def test_cli_train_bad_input_is_one_line_and_exit_2(tmp_path, cli, args, option):
    base = {"--task": "reber", "--cells": "gru:3", "--protocol": "adam", "--seeds": "0"}
    base.update(dict(zip(args[::2], args[1::2])))
    code, out, err = cli("train", *[x for kv in base.items() for x in kv], "--out", tmp_path / "o")
    assert code == 2 and err.startswith(f"lksweep: error: {option}") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_killed_training_sweep_resumes_to_the_uninterrupted_result(tmp_path, cli):
    args = ["train", "--task", "reber", "--cells", "vanilla:5", "--protocol", "paper", "--seeds", "0-1",
            "--n-train", "60", "--max-epochs", "12", "--checkpoint-s", "0.5"]
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
