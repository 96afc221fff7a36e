"""The shipped trainability spec: what it asks for, planned within the limits, and a tiny
version of it (one seed, one short lag, two epochs) run end to end by one command, the
trained-memory stage included."""
from importlib import resources

import pandas as pd
import yaml

from sweeps import cost
from sweeps import spec as specs
from sweeps.jobs.training import models

GAINS = {"gain:2", "gain:4", "gain:8"}


def raw_spec():
    return yaml.safe_load(resources.files("sweeps.specs").joinpath("trainability.yaml").read_text())


def test_the_spec_asks_for_the_map_and_plans_within_the_limits():
    spec = specs.load("trainability")
    assert spec.report and set(spec.sections) == {"training", "discrepancy", "task_memory"}
    e = cost.estimate(spec.sections)
    cost.check_count(e, large=False)
    cost.check_shard(e, False, cost.machine_memory(), "this machine")

    training = [g for g in spec.groups() if g.job == "training"]
    runs = pd.DataFrame([{**g.settings, "cell": g.shards[0].params.cell, "k": g.shards[0].params.k,
                          "seed": g.shards[0].params.seed, "lag": tuple(g.settings["lag"])} for g in training])
    assert dict(runs.groupby("cell").k.unique().map(lambda k: int(k[0]))) == models.MATCHED
    lags = sorted(runs.lag.unique())
    assert len(lags) >= 5 and lags[-1][0] >= 40
    assert set(runs.init) == GAINS
    assert (runs.groupby(["cell", "init", "lag"]).seed.nunique() == 16).all()
    budget = ["optimizer", "loss", "batch_size", "order", "lr", "max_epochs", "n_val", "n_test"]
    assert (runs[budget].nunique() == 1).all()    # one recipe, one budget
    # every cell reads the same strings at a lag: the set sizes differ between lags only
    assert (runs.groupby("lag").n_train.nunique() == 1).all()

    discrepancy = [g for g in spec.groups() if g.job == "discrepancy"]
    points = {(g.shards[0].params.cell, g.shards[0].params.init, g.shards[0].params.k) for g in discrepancy}
    assert points == {(c, gain, k) for c, k in models.MATCHED.items() for gain in GAINS}
    assert all({"lyapunov", "decodable"} <= set(g.tables) for g in discrepancy)
    (stage,) = spec.sections["task_memory"]
    assert stage.noise and stage.source is None     # reads the sweep's own training


def tiny(path):
    """The shipped spec at toy size: one seed, one lag, two epochs, 50 draws, 8 strings, no
    report (the report's own tests draw it)."""
    raw = raw_spec()
    raw.update(name="trainability-tiny", report=False)
    for block in raw["training"]:
        block.update(seeds=0, lag="10-14", n_train=10, n_val=6, n_test=6, max_epochs=2)
    for block in raw["discrepancy"]:
        block.update(draws=50, l_max=5)
    raw["task_memory"].update(strings=8)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_tiny_version_runs_end_to_end_with_its_trained_memory_stage(cli, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = cli("run", tiny(tmp_path / "tiny.yaml"), "--out", out)
    assert code == 0, err
    runs = pd.read_parquet(out / "runs")
    assert len(runs) == 15 and set(runs.init) == GAINS and set(runs.cell) == set(models.MATCHED)
    assert runs.run_id.is_unique           # the weight scale names the run
    memory = pd.read_parquet(out / "task_memory")
    assert set(memory.run_id) == set(runs.run_id) and set(memory.stage) == {"init", "trained"}
    assert memory.decodable.notna().all()
    for table in ("discrepancy", "lyapunov", "decodable"):
        frame = pd.read_parquet(out / table)
        assert set(zip(frame.cell, frame.init)) == {(c, g) for c in models.MATCHED for g in GAINS}, table
    code, stdout, _ = cli("run", tiny(tmp_path / "tiny.yaml"), "--out", out)
    assert code == 0 and "0 shard(s) computed" in stdout
