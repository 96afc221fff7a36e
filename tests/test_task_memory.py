"""The trained-memory stage: one spec trains and then measures the trained networks; the
measure agrees with a plain NumPy reference; a stage killed mid-way resumes into identical
tables; a stage whose inputs were retrained is refused (or replaced under --overwrite), never
mixed."""
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import yaml

from analysis.weights import parameters
from sweeps.job import get_job
from sweeps.jobs import decodable
from sweeps.jobs import task_memory as tm

from . import launcher

TRAINING = {"task": "embedded-reber", "cells": "vanilla:4", "protocol": "adam", "seeds": "0-3", "n_train": 40,
            "n_test": 20, "max_epochs": 3, "batch_size": 8}
STAGE = {"strings": 400, "noise": 0.1}


def write_spec(path, **training):
    path.write_text(yaml.safe_dump({"name": "staged", "training": {**TRAINING, **training}, "task_memory": STAGE}))
    return path


def table(out, name="task_memory"):
    keys = ["run_id", "stage", "l"] if name == "task_memory" else ["run_id"]
    frame = pd.read_parquet(out / name).sort_values(keys, kind="stable").reset_index(drop=True)
    return frame.drop(columns="wall_s") if name == "runs" else frame


@pytest.fixture(scope="module")
def staged(ray_session, tmp_path_factory):
    """A training stage and its trained-memory stage, run by one command from one spec."""
    from sweeps.cli import main

    root = tmp_path_factory.mktemp("staged")
    spec = write_spec(root / "staged.yaml")
    assert main(["run", str(spec), "--out", str(root / "out")]) == 0
    return spec, root / "out"


def test_one_spec_runs_the_stage_on_what_training_committed_and_a_rerun_reuses_both(staged, cli):
    spec, out = staged
    runs, memory = table(out, "runs"), table(out)
    assert sorted(set(memory.run_id)) == sorted(runs.run_id)
    assert set(memory.stage) == {"init", "trained"}
    assert (memory.n_strings <= STAGE["strings"]).all() and (memory.groupby(["run_id", "stage"]).n_strings.first()
                                                             == STAGE["strings"]).all()
    first = memory[memory.l == 1]
    assert (first.decodable > 0.5).all()          # the outer symbol was just read: it is decodable
    code, stdout, err = cli("run", spec, "--out", out)
    assert code == 0 and "0 shard(s) computed" in stdout, (stdout, err)
    code, stdout, _ = cli("status", out)
    assert code == 0 and "task_memory" in stdout and "not yet planned" not in stdout


def test_the_measure_agrees_with_a_plain_numpy_reference(staged):
    """One run, both stages: the vanilla cell's equations written out, string by string, with
    an explicit Jacobian for the exponent and each string's noise drawn only as long as it is."""
    _, out = staged
    job = get_job("task_memory")
    run = job.plan(job.Settings.parse({"source": str(out), "strings": 24, "noise": 0.3}, "task_memory"))[0].shards[0].params
    got = pd.DataFrame(tm.table(run).to_pylist())
    models = parameters(pd.read_parquet(out / "weights", filters=[("run_id", "==", run.run_id)]))
    strings = tm.inner_strings(run.data_seed, run.strings)
    r = decodable.REPEATS
    for stage in ("init", "trained"):
        p = models[run.run_id, stage]
        U, W, b = p["Uh"], p["Wh"], p["bh"]

        def step(x, h, U=U, W=W, b=b):
            return 1 / (1 + np.exp(-(U[:, "BTSXVPE".index(x)] + W @ h + b)))

        dist, lyap, acc = {}, {}, {}
        for i, s in enumerate(strings):
            hT, hP = step("T", step("B", np.zeros(4))), step("P", step("B", np.zeros(4)))
            delta, logs = (hP - hT) / np.linalg.norm(hP - hT), 0.0
            kicks = 0.3 * tm.noise_streams(run.data_seed, run.strings)[i].standard_normal((2 + len(s), 2 * r, 4))
            noisy = np.zeros((2 * r, 4))
            for j in range(2 * r):
                noisy[j] = step("TP"[j // r], step("B", np.zeros(4)) + kicks[0, j]) + kicks[1, j]
            for l, x in enumerate(s, start=1):
                new = step(x, hT)
                delta = (new * (1 - new))[:, None] * W @ delta
                logs += np.log(np.linalg.norm(delta))
                delta /= np.linalg.norm(delta)
                hT, hP = new, step(x, hP)
                noisy = np.array([step(x, h) for h in noisy]) + kicks[1 + l]
                dist.setdefault(l, []).append(np.linalg.norm(hT - hP))
                lyap.setdefault(l, []).append(logs / l)
                acc.setdefault(l, []).append(decodable.accuracy(noisy))
        rows = got[got.stage == stage].set_index("l")
        assert list(rows.index) == sorted(dist)
        for l in dist:
            assert rows.n_strings[l] == len(dist[l])
            np.testing.assert_allclose(rows.distance_mean[l], np.mean(dist[l]), rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose([rows.distance_q10[l], rows.distance_q50[l], rows.distance_q90[l]],
                                       np.quantile(dist[l], [0.1, 0.5, 0.9]), rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose([rows.lyapunov_q10[l], rows.lyapunov_q50[l], rows.lyapunov_q90[l]],
                                       np.quantile(lyap[l], [0.1, 0.5, 0.9]), rtol=1e-8, atol=1e-10)
            assert rows.decodable[l] == pytest.approx(np.mean(acc[l]), abs=1e-12)


def test_a_stage_killed_mid_way_resumes_into_identical_tables(staged, tmp_path, ray_session):
    """SIGKILL of a real launcher once the stage has committed some runs; the rerun computes
    the rest and its tables equal those of the uninterrupted run."""
    spec, whole = staged
    out = tmp_path / "out"
    address = ray_session.get_runtime_context().gcs_address
    proc = launcher.start(["run", spec, "--address", address], out)
    try:
        done = []
        while not done and proc.poll() is None:
            done = [p for p in (out / "task_memory").glob("*.parquet") if not p.name.startswith(".")] \
                if (out / "task_memory").is_dir() else []
    finally:
        launcher.kill_group(proc)
        launcher.end(proc)
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "task_memory").glob("*.parquet")}
    assert 1 <= len(kept) < 4, kept      # killed inside the stage
    code, stdout, err = launcher.end(launcher.start(["run", spec, "--address", address], out), timeout=300)
    assert code == 0, err
    assert all((out / "task_memory" / n).stat().st_mtime_ns == t for n, t in kept.items())   # not rewritten
    for name in ("runs", "weights", "task_memory"):
        pd.testing.assert_frame_equal(table(out, name), table(whole, name), check_exact=True)


def test_a_stage_whose_inputs_were_retrained_is_refused_or_recomputed_never_mixed(staged, tmp_path, cli):
    spec, out = staged
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    retrained = write_spec(tmp_path / "retrained.yaml", max_epochs=4)
    code, stdout, err = cli("run", retrained, "--out", copy)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "already exists" in err, err
    pd.testing.assert_frame_equal(table(copy), table(out), check_exact=True)

    # The stage on its own, reading the first directory, then the retrained one into the same place.
    alone = tmp_path / "alone"
    args = ["task-memory", "--strings", 16, "--out", alone, "--source"]
    assert cli(*args, out)[0] == 0
    before = table(alone)
    assert cli("run", retrained, "--out", copy, "--overwrite")[0] == 0
    code, _, err = cli(*args, copy)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "task_memory group" in err and "already exists" in err and "--overwrite" in err, err
    pd.testing.assert_frame_equal(table(alone), before, check_exact=True)

    # Under --overwrite the stage of the retrained runs is recomputed: the initial models are
    # the same, the trained ones are not.
    new, old = table(copy), table(out)
    init = [f.query("stage == 'init'").reset_index(drop=True) for f in (new, old)]
    pd.testing.assert_frame_equal(*init, check_exact=True)
    assert not np.array_equal(new.query("stage == 'trained'").distance_q50, old.query("stage == 'trained'").distance_q50)


def test_a_compacted_training_directory_is_the_same_input(staged, tmp_path, cli):
    """Compaction moves the runs' rows into parts: the stage finds the same inputs and
    computes nothing; its table is unchanged."""
    spec, out = staged
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert cli("compact", copy)[0] == 0
    assert all(p.name.startswith("part-") for t in ("runs", "weights") for p in (copy / t).glob("*.parquet"))
    code, stdout, err = cli("run", spec, "--out", copy)
    assert code == 0 and "0 shard(s) computed" in stdout, (stdout, err)
    pd.testing.assert_frame_equal(table(copy), table(out), check_exact=True)


def test_an_input_is_its_rows_values_whatever_file_holds_them(staged):
    """The digest of a group's rows read alone equals that of the same rows at an offset of a
    larger table with other metadata; one changed value changes it."""
    from sweeps import stages

    _, out = staged
    weights = pa.Table.from_pandas(pd.read_parquet(out / "weights"), preserve_index=False)
    rows = weights.slice(3, 5)
    alone = pa.Table.from_pylist(rows.to_pylist(), schema=rows.schema.remove_metadata())
    assert stages.digest(rows) == stages.digest(alone)
    values = rows.column("values").to_pylist()
    values[2] = [v + 1e-12 for v in values[2]]
    changed = rows.set_column(rows.schema.get_field_index("values"), "values", pa.array(values, rows.schema.field("values").type))
    assert stages.digest(changed) != stages.digest(rows)


def test_a_stage_without_its_input_is_refused_with_one_line(cli, tmp_path):
    code, _, err = cli("task-memory", "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "source" in err, err
    code, _, err = cli("task-memory", "--source", tmp_path / "nothing", "--out", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "source" in err, err


def test_a_stage_not_reached_yet_is_recorded_as_not_yet_planned(tmp_path):
    """The whole spec's record names the stage until its phase is planned: here the first
    phase is interrupted, so the stage was never planned."""
    from sweeps import spec as specs
    from sweeps import stages
    from sweeps.store import Store

    spec = specs.validate({"training": TRAINING, "task_memory": STAGE}, "staged")
    store = Store(str(tmp_path / "out"))
    ran = []

    def interrupted(phase, store_, **options):
        ran.append(sorted(phase.sections))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stages.run(spec, store, interrupted)
    assert ran == [["training"]]
    assert stages.pending_stages(store) == {"task_memory": "staged: not yet planned"}


def test_a_second_launcher_is_refused_between_the_phases_of_a_staged_spec(ray_session, tmp_path, monkeypatch):
    """One launch holds OUT's lock from its first phase to its last: a launcher starting
    after training committed, before the stage is planned, is refused; after the launch it
    gets the lock."""
    from sweeps import runner, stages
    from sweeps import spec as specs
    from sweeps.store import Store

    out = tmp_path / "out"
    phases, asked = stages.phases, []

    def with_a_contender(spec, root):
        for i, phase in enumerate(phases(spec, root)):
            if i:
                asked.append(launcher.hold_lock(out, hold=0).communicate(timeout=60)[0].split()[0])
            yield phase

    monkeypatch.setattr(stages, "phases", with_a_contender)
    done = runner.run(specs.validate({"training": TRAINING, "task_memory": STAGE}, "staged"), Store(str(out)))
    assert done.groups_committed and (out / "task_memory").exists()
    assert asked == ["refused"]
    assert launcher.hold_lock(out, hold=0).communicate(timeout=60)[0].split()[0] == "acquired"
