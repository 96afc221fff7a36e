"""Cells from outside the package: a plugin package (tests/plugin/lksweep_demo_cell), really
installed, registers the cell ``leaky`` through the ``lksweep.cells`` entry point group; both
jobs compute it on a fresh local Ray instance (whose workers find the plugin as the driver
does), the schema and the errors list it, and its broken second entry point is one warning."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

PLUGIN = Path(__file__).parent / "plugin" / "lksweep_demo_cell"
SPEC = """\
name: plugin
discrepancy:
  cells: [leaky, vanilla]
  l_max: 6
  k: 2-3
  draws: 100
  shard_size: 50
training:
  task: reber
  cells: leaky:3
  protocol: adam
  seeds: 0-1
  n_train: 20
  max_epochs: 3
"""
WARNING = "lksweep: cells plugin 'broken' (lksweep_demo_cell.broken) failed to load and is skipped: ImportError: "


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """The plugin installed with pip into a directory of its own (built from a copy of its
    source, so no build files land in the repository), on PYTHONPATH."""
    root = tmp_path_factory.mktemp("plugin")
    source, target = root / "src", root / "site"
    shutil.copytree(PLUGIN, source)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(target.glob("lksweep_demo_cell-*.dist-info"))
    path = os.pathsep.join([str(target), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}


def lksweep(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "sweeps.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_a_plugin_cell_is_listed_in_the_schema_and_in_errors(plugin_env):
    done = lksweep(plugin_env, "schema")
    assert done.returncode == 0 and "leaky" in done.stdout
    assert done.stderr.count(WARNING) == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = lksweep(plugin_env, "discrepancy", "--cells", "nope", "--l-max", 5, "--k", 2, "--draws", 50, "--out", "x")
    assert done.returncode == 2
    assert "--cells: unknown name 'nope'; allowed: gru, leaky, lstm, mgu, tanh, vanilla" in done.stderr
    assert "leaky" not in lksweep({**plugin_env, "PYTHONPATH": ""}, "schema").stdout   # not installed: not there


def test_both_jobs_compute_a_plugin_cell_on_a_local_ray_instance(plugin_env, tmp_path):
    (tmp_path / "plugin.yaml").write_text(SPEC)
    out = tmp_path / "out"
    done = lksweep(plugin_env, "run", tmp_path / "plugin.yaml", "--out", out, "--max-workers", 2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count(WARNING) == 1, done.stderr      # the driver's; a worker's goes to the Ray log
    disc = pd.read_parquet(out / "discrepancy")
    leaky = disc[disc.cell == "leaky"]
    assert sorted(leaky.k.unique()) == [2, 3] and (leaky.n_draws == 100).all() and len(leaky) == 2 * 6
    assert (leaky["mean"] > 0).all() and not leaky["mean"].equals(disc[disc.cell == "vanilla"]["mean"])
    runs = pd.read_parquet(out / "runs")
    assert sorted(runs.seed) == [0, 1] and set(runs.cell) == {"leaky"} and set(runs.engine) == {"torch"}
    epochs = pd.read_parquet(out / "epochs")
    assert len(epochs) == 2 * 4 and epochs[epochs.epoch > 0].train_loss.notna().all()   # epoch 0: the initial weights
