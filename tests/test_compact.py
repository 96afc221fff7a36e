"""`lksweep compact`: a table's group files become a few parts, and nothing else changes: the
rows pandas, pyarrow datasets and DuckDB read, what a rerun computes (nothing), adding seeds,
refusing other settings, status, figures and the report."""
import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest

import sweeps.compact as compaction
from analysis.tables import load

KEY = ["cell", "k", "seed", "l"]
BASE = ["discrepancy", "--cells", "vanilla,gru", "--l-max", 10, "--k", "2-4", "--draws", 100, "--shard-size", 50,
        "--max-workers", 1]


def readers(table_dir: Path):
    """The table as pandas, a pyarrow dataset and DuckDB read it, rows in one order."""
    frames = [pd.read_parquet(table_dir), ds.dataset(table_dir).to_table().to_pandas(),
              duckdb.sql(f"SELECT * FROM read_parquet('{table_dir}/*.parquet')").df()]
    return [f.sort_values(KEY).reset_index(drop=True) for f in frames]


def parquet_files(table_dir: Path):
    return sorted(p.name for p in table_dir.glob("*.parquet"))


@pytest.fixture
def sweep(tmp_path, cli):
    out = tmp_path / "out"
    assert cli(*BASE, "--out", out)[0] == 0
    return out


def test_compaction_keeps_rows_and_resume(sweep, cli, tmp_path):
    out, table = sweep, sweep / "discrepancy"
    before = readers(table)
    assert len(parquet_files(table)) == 6 and list(out.glob("_shards/discrepancy/*/*.parquet"))
    code, stdout, _ = cli("compact", out)
    assert code == 0 and "discrepancy: 6 file(s) -> 1 part(s), 6 group(s)" in stdout
    (part,) = parquet_files(table)
    assert part.startswith("part-") and not list(out.glob("_shards/discrepancy/*/*.parquet"))
    for a, b in zip(before, readers(table)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(load(str(out), "discrepancy").sort_values(KEY).reset_index(drop=True), before[0],
                                  check_exact=True)
    code, stdout, _ = cli(*BASE, "--out", out)
    assert code == 0 and "0 shard(s) computed, 0 reused, 0 group(s) committed, 6 already done" in stdout
    code, stdout, _ = cli("status", out)
    assert [line.split()[1:] for line in stdout.splitlines() if line.startswith("discrepancy")] == [["6/6", "12/12", "0"]]
    # more seeds beside a part, then compacted again: the rows of one run of every seed
    code, stdout, _ = cli(*BASE, "--seeds", "0-1", "--out", out)
    assert code == 0 and "6 group(s) committed, 6 already done" in stdout
    assert len(parquet_files(table)) == 7
    assert cli("compact", out, "--part-mb", 1)[0] == 0
    whole = tmp_path / "whole"
    assert cli(*BASE, "--seeds", "0-1", "--out", whole, "--compact")[0] == 0      # compacted when it ends
    assert len(parquet_files(whole / "discrepancy")) == 1
    for a, b in zip(readers(whole / "discrepancy"), readers(table)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    code, stdout, err = cli("figures", out)
    assert code == 0 and "fig10_discrepancy_vanilla.png" in stdout, err


def test_other_settings_for_a_group_inside_a_part_are_refused_then_replaced(sweep, cli):
    out = sweep
    assert cli("compact", out)[0] == 0
    code, _, err = cli(*BASE, "--k", 3, "--l-max", 12, "--out", out)
    assert code == 2 and "vanilla-normal-k3-seed0 already exists" in err and "l_max=10" in err
    code, stdout, err = cli(*BASE, "--k", 3, "--l-max", 12, "--out", out, "--overwrite")
    assert code == 0, err
    df = load(str(out), "discrepancy")
    assert df.groupby(["cell", "k"]).l.max().to_dict() == {(c, k): 12 if k == 3 else 10 for c in ("gru", "vanilla")
                                                            for k in (2, 3, 4)}
    assert not df.duplicated(KEY).any()
    code, _, err = cli(*BASE, "--out", out)         # the replaced group keeps its new settings
    assert code == 2 and "vanilla-normal-k3-seed0 already exists" in err and "l_max=12" in err


def test_an_interrupted_swap_is_finished_by_the_next_launch(sweep, cli, monkeypatch):
    out, table = sweep, sweep / "discrepancy"
    before = readers(table)

    def crash(store, name, tag):
        raise KeyboardInterrupt("killed between staging and swapping")

    monkeypatch.setattr(compaction, "_finish", crash)
    with pytest.raises(KeyboardInterrupt):
        compaction.compact(compaction.Store(str(out)))
    monkeypatch.undo()
    (staged,) = [p for p in os.listdir(out) if p.startswith(compaction.STAGE)]
    assert len(parquet_files(table)) == 6                   # readers still see the whole table as it was
    code, stdout, _ = cli(*BASE, "--out", out)              # a launch finishes the swap first
    assert code == 0 and "6 already done" in stdout
    assert not os.path.exists(out / staged) and len(parquet_files(table)) == 1
    for a, b in zip(before, readers(table)):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_compaction_on_an_object_store(cli, s3):
    uri = s3.uri("compacted")
    args = ["discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", "2-5", "--draws", 50]
    assert cli(*args, "--out", uri)[0] == 0
    before = load(uri, "discrepancy").sort_values(KEY).reset_index(drop=True)
    code, stdout, _ = cli("compact", uri)
    assert code == 0 and "discrepancy: 4 file(s) -> 1 part(s), 4 group(s)" in stdout
    after = load(uri, "discrepancy").sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    code, stdout, _ = cli(*args, "--out", uri)
    assert code == 0 and "4 already done" in stdout
