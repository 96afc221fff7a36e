"""Results that cannot be silently wrong: a committed file whose pages were altered, or that
was put in another file's place (another group's, a sibling shard), is found whenever it is
read, named in one line, set aside and computed again; checkpoints are checked the same way,
and a crafted one runs nothing."""
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweeps import spec as specs
from sweeps.fileformat import seal_checkpoint
from sweeps.jobs.training import checkpoint

from . import launcher

# Two groups of two shards on the session's 2 CPUs: the first four tasks are sent before any
# has finished, with one shard each (nothing measured yet), so each group's shards run in two
# tasks and are kept as shard files (the progress a table is rebuilt from).
SWEEP = ["discrepancy", "--cells", "vanilla", "--l-max", 30, "--k", "2,3", "--draws", 100, "--shard-size", 50]
TABLE = "vanilla-normal-k{}-seed0.parquet"


def rows(out):
    return pd.read_parquet(Path(out, "discrepancy")).sort_values(["k", "l"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_session):
    from sweeps.cli import main
    out = tmp_path_factory.mktemp("reference")
    assert main([*map(str, SWEEP), "--out", str(out)]) == 0
    return out


@pytest.fixture
def done(tmp_path, reference):
    """A copy of the finished reference sweep, files and index alike."""
    out = tmp_path / "out"
    shutil.copytree(reference, out, copy_function=shutil.copy2)   # keeps modification times
    return out


def flip(path: Path, offset: int = 40, keep_time: bool = False) -> None:
    """Flip one bit of a data page (the pages begin at byte 4; the footer is at the end)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))
    if keep_time:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_flipped_byte_in_a_table_is_refused_by_readers_and_repaired_from_its_shards(done, cli, reference):
    table = done / "discrepancy" / TABLE.format(2)
    assert len(list(done.glob("_shards/discrepancy/*/*.parquet"))) == 4
    flip(table)
    code, _, err = cli("figures", done)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{table} is damaged: its content does not match its digest" in err and "--verify" in err
    code, stdout, err = cli(*SWEEP, "--out", done)
    assert code == 0, err
    assert f"{table} is damaged: its content does not match its digest (altered or damaged); set aside to" in err
    assert "0 shard(s) computed, 2 reused, 1 group(s) committed, 1 already done" in stdout   # rebuilt from its shards
    assert len(list((done / "_damaged").rglob("*.parquet.*"))) == 1
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)


def test_another_groups_file_in_a_groups_place_is_named_and_recomputed(done, cli, reference):
    wrong = done / "discrepancy" / TABLE.format(3)
    shutil.copyfile(done / "discrepancy" / TABLE.format(2), wrong)
    code, _, err = cli("report", done)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{wrong} is damaged: it holds group 'vanilla-normal-k2-seed0' where its name says group " \
           f"'vanilla-normal-k3-seed0'" in err
    code, stdout, err = cli(*SWEEP, "--out", done)
    assert code == 0 and f"{wrong} is damaged: it holds group" in err
    assert "1 group(s) committed, 1 already done" in stdout
    assert len(rows(done)) == 60                                            # no duplicate rows
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)


def test_a_sibling_shard_in_a_shards_place_is_computed_again(done, cli, reference):
    (done / "discrepancy" / TABLE.format(3)).unlink()                     # the group is unfinished again
    first, second = sorted((done / "_shards" / "discrepancy" / "vanilla-normal-k3-seed0").glob("*.parquet"))
    shutil.copyfile(first, second)
    code, stdout, err = cli(*SWEEP, "--out", done)
    assert code == 0, err
    assert f"{second} is damaged: it holds shard '{first.stem}' where its name says shard '{second.stem}'" in err
    assert "1 shard(s) computed, 1 reused, 1 group(s) committed" in stdout
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)


def test_an_alteration_that_keeps_size_and_time_is_found_by_readers_and_by_verify(done, cli, reference):
    table = done / "discrepancy" / TABLE.format(3)
    flip(table, keep_time=True)
    code, stdout, _ = cli(*SWEEP, "--out", done)
    assert code == 0 and "2 already done" in stdout        # the listing cannot tell: the file is trusted
    code, _, err = cli("figures", done)                    # but no reader uses it
    assert code == 1 and f"{table} is damaged" in err and "with --verify" in err
    code, stdout, err = cli(*SWEEP, "--out", done, "--verify")
    assert code == 0 and f"{table} is damaged: its content does not match its digest" in err
    assert "0 shard(s) computed, 2 reused, 1 group(s) committed, 1 already done" in stdout
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)


def test_a_file_lksweep_did_not_write_is_set_aside(done, cli, reference):
    stray = done / "discrepancy" / "notes.parquet"
    rows(done).head(3).to_parquet(stray)                  # would add three rows to every reader's table
    code, _, err = cli(*SWEEP, "--out", done)
    assert code == 0 and f"{stray} is damaged: it carries no digest" in err
    assert not stray.exists()
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)


# ---------------------------------------------------------------------- checkpoints
TRAIN = ["train", "--task", "reber", "--cells", "vanilla:3", "--protocol", "adam", "--seeds", "0", "--n-train", 12,
         "--max-epochs", 2]


class Boom:
    def __reduce__(self):
        return (Path("/tmp/lksweep-crafted-checkpoint-ran").touch, ())


def plant(out: Path, data: bytes, sealed: bool) -> Path:
    (group,) = specs.from_options("training", {"task": "reber", "cells": "vanilla:3", "protocol": "adam",
                                               "seeds": "0", "n_train": "12", "max_epochs": "2"}).groups()
    (shard,) = group.shards
    path = out / "_shards" / "training" / group.name / f"{shard.id}.ckpt"
    path.parent.mkdir(parents=True)
    identity = {"job": "training", "group": group.name, "shard": shard.id}
    path.write_bytes(seal_checkpoint(data, identity) if sealed else data)
    return path


@pytest.mark.parametrize("case", ["crafted", "garbage"])
def test_an_unusable_checkpoint_is_named_set_aside_and_its_run_starts_over(tmp_path, cli, case):
    marker = Path("/tmp/lksweep-crafted-checkpoint-ran")
    marker.unlink(missing_ok=True)
    if case == "crafted":   # a well-sealed envelope around an archive whose array unpickles code
        buf = io.BytesIO()
        np.savez(buf, **{"param/W": np.array([Boom()], dtype=object),
                         checkpoint.META: np.frombuffer(b"{}", np.uint8)})
        path = plant(tmp_path / "out", buf.getvalue(), sealed=True)
    else:
        path = plant(tmp_path / "out", b"\x00garbage" * 10, sealed=False)
    code, stdout, err = cli(*TRAIN, "--out", tmp_path / "out")
    assert code == 0, err
    reason = "not a training checkpoint" if case == "crafted" else "it is not an lksweep checkpoint"
    assert f"checkpoint {path} cannot be used ({reason}" in err and "starts again from the beginning" in err
    assert not path.exists() and len(list((tmp_path / "out" / "_damaged").rglob("*.ckpt.*"))) == 1
    assert not marker.exists(), "loading a checkpoint ran code"
    assert "1 shard(s) computed" in stdout
    assert cli(*TRAIN, "--out", tmp_path / "clean")[0] == 0
    for table in ("runs", "epochs"):
        a, b = (pd.read_parquet(d / table) for d in (tmp_path / "out", tmp_path / "clean"))
        drop = ["wall_s"] if "wall_s" in a else []
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop), check_exact=True)


def test_a_killed_sweep_leaves_only_whole_checked_files(tmp_path, cli, reference):
    """SIGKILL mid-sweep: every file left is whole and carries a digest that matches."""
    from sweeps.fileformat import check
    out = tmp_path / "out"
    args = ["discrepancy", "--cells", "gru", "--l-max", 200, "--k", 30, "--draws", 1500, "--shard-size", 50,
            "--max-workers", 1]
    files = launcher.killed_after(args, out, 3)
    assert files
    for p in files:
        meta = check(p.read_bytes(), {"kind": "shard", "shard": p.stem})
        assert meta["group"] == "gru-normal-k30-seed0"
