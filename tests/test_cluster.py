"""Cluster runs: the launcher config, a loopback cluster losing a worker node, and results
written to an S3-compatible object store started on 127.0.0.1."""
import os
from collections import Counter

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from . import launcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = ["discrepancy", "--cells", "vanilla,gru", "--l-max", 150, "--k", "24", "--draws", 1500, "--shard-size", 50]


def test_cluster_yaml_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        config = yaml.safe_load(f)
    validate_config(prepare_config(config))
    assert any("lksweep" in c for c in config["setup_commands"]), "the setup installs this package"
    config["available_node_types"]["cpu-worker"]["max_workers"] = "eight"
    with pytest.raises(Exception, match="eight"):
        validate_config(prepare_config(config))


@pytest.mark.slow
def test_losing_a_worker_node_mid_sweep_changes_nothing(tmp_path, cli):
    """A head (no CPUs for tasks) and two worker nodes on loopback; one worker node dies
    mid-sweep; Ray retries its tasks on the other, every shard lands exactly once, and the
    table equals a single-node run's."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        doomed = cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out = tmp_path / "cluster"
        proc = launcher.start([*SWEEP, "--address", cluster.address], out)
        try:
            assert launcher.wait_for_shards(proc, out, 8)
            cluster.remove_node(doomed, allow_graceful=False)
            code, stdout, err = launcher.end(proc, timeout=300)
        finally:
            launcher.kill_group(proc)
        assert code == 0, err
        assert "60 shard(s) computed" in stdout
    finally:
        cluster.shutdown()
    files = launcher.shard_files(out)
    assert len(files) == len({f.name for f in files})                   # every shard landed once
    # A group whose pending shards all fit one task is merged in that task and keeps no shard
    # files (how tasks are packed depends on timing); a group split over tasks keeps all 30.
    per_group = Counter(f.parent.name for f in files)
    assert per_group and set(per_group.values()) == {30}, per_group
    single = tmp_path / "single"
    assert cli(*SWEEP, "--out", single)[0] == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "discrepancy"), pd.read_parquet(single / "discrepancy"),
                                  check_exact=True)


def test_results_go_to_s3_and_resume_there(tmp_path, cli, s3):
    uri = s3.uri("sweeps/run1")
    args = ["discrepancy", "--cells", "vanilla,gru", "--l-max", 20, "--k", "2-3", "--draws", 100, "--shard-size", 50]
    code, stdout, err = cli(*args, "--out", uri)
    assert code == 0, err
    assert "8 shard(s) computed" in stdout and "s3://lksweep-results/sweeps/run1" in stdout
    fs, root = pafs.FileSystem.from_uri(uri)
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{root}/discrepancy"))}
    assert names == {f"{c}-normal-k{k}-seed0.parquet" for c in ("vanilla", "gru") for k in (2, 3)}
    remote = pq.read_table(f"{root}/discrepancy", filesystem=fs).to_pandas()
    assert cli(*args, "--out", tmp_path / "local")[0] == 0
    local = pd.read_parquet(tmp_path / "local" / "discrepancy")
    key = ["cell", "k", "l"]
    pd.testing.assert_frame_equal(remote.sort_values(key).reset_index(drop=True),
                                  local.sort_values(key).reset_index(drop=True), check_exact=True)
    code, stdout, _ = cli(*args, "--out", uri)
    assert code == 0 and "0 shard(s) computed" in stdout and "4 already done" in stdout
    code, _, err = cli(*args[:-4], "--draws", 150, "--shard-size", 50, "--out", uri)
    assert code == 2 and "already exists" in err
