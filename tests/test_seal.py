"""Sealed means sealed: every byte of a committed file is covered by its seal and checked before
the Parquet library parses it (a flipped bit anywhere, the footer included, is found, never
read, never a crash); compaction seals only what it read and checked; nothing outside OUT is
touched through a symbolic link; readers and status agree on what is data."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import sweeps.compact as compaction
from analysis.tables import Corrupt, load
from sweeps import index
from sweeps.fileformat import decode, encode
from sweeps.store import Store

SWEEP = ["discrepancy", "--cells", "vanilla", "--l-max", 4, "--k", "2,3,4", "--draws", 20, "--max-workers", 1]
GROUP = "vanilla-normal-k{}-seed0"
KEY = ["k", "l"]


def rows(out, table="discrepancy"):
    return load(str(out), table).sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_session):
    from sweeps.cli import main
    out = tmp_path_factory.mktemp("sealed") / "out"
    assert main([*map(str, SWEEP), "--out", str(out)]) == 0
    return out


@pytest.fixture
def done(tmp_path, reference):
    out = tmp_path / "out"
    shutil.copytree(reference, out, copy_function=shutil.copy2, symlinks=True)
    return out


def group_file(out, k=2):
    return out / "discrepancy" / f"{GROUP.format(k)}.parquet"


def one_line(err):
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------------- the seal
FUZZ = textwrap.dedent("""
    import json, os, sys
    from sweeps.fileformat import Damaged, decode
    from sweeps.survey import expected
    counts = {}
    for path, rel, whole in json.loads(sys.argv[1]):
        data = open(path, "rb").read()
        table, meta = decode(data, expected(rel))
        start = 0 if whole else len(data) - 8 - int.from_bytes(data[-8:-4], "little")
        for i in range(start, len(data)):
            for bit in range(8):
                flipped = bytearray(data)
                flipped[i] ^= 1 << bit
                try:
                    t, m = decode(bytes(flipped), expected(rel))
                    k = "same" if t.equals(table) and m == meta else f"changed at byte {i} bit {bit}"
                except Damaged:
                    k = "detected"
                except Exception as e:
                    k = f"{type(e).__name__} at byte {i} bit {bit}"
                counts[k] = counts.get(k, 0) + 1
        print(rel, "checked", flush=True)
    print(json.dumps(counts), flush=True)
    os._exit(0)   # (the outcome is printed: nothing at interpreter exit can change it)
""")


def test_every_bit_flip_of_a_group_file_and_of_a_parts_footer_is_found(done, cli):
    """Each flip, read as every reader reads (``decode``), in a child process so that an abort
    of the Parquet library would fail this test instead of ending the session."""
    group = group_file(done)
    copy = done.parent / "compacted"
    shutil.copytree(done, copy, copy_function=shutil.copy2)
    assert cli("compact", copy)[0] == 0
    (part,) = (copy / "discrepancy").glob("part-*.parquet")
    cases = [(str(group), f"discrepancy/{group.name}", True), (str(part), f"discrepancy/{part.name}", False)]
    run = subprocess.run([sys.executable, "-c", FUZZ, json.dumps(cases)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"the reading process died ({run.returncode}): {run.stderr[-2000:]}"
    counts = json.loads(run.stdout.strip().splitlines()[-1])
    footer = 8 + int.from_bytes(part.read_bytes()[-8:-4], "little")      # with its length and magic
    assert sum(counts.values()) == 8 * (len(group.read_bytes()) + footer)
    assert set(counts) <= {"detected", "same"}, {k: v for k, v in counts.items() if k not in ("detected", "same")}


def test_a_flipped_bit_in_a_footers_row_count_is_found_by_readers_and_by_verify(done, cli, reference):
    """One bit of the footer's `"rows": N` (N a single digit) gives another count: unchecked,
    readers once returned that many rows of the group."""
    path = group_file(done)
    stat, data = path.stat(), bytearray(path.read_bytes())
    at = data.rindex(b'"rows": ') + len(b'"rows": ')
    n = int(chr(data[at]))
    data[at] ^= 1                                        # "4" <-> "5"
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(Corrupt, match="does not match its digest"):
        load(str(done), "discrepancy")
    code, stdout, err = cli(*SWEEP, "--out", done, "--verify")
    assert code == 0 and f"{path} is damaged: its content does not match its digest" in err
    assert "1 group(s) committed, 2 already done" in stdout
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)
    assert (rows(done).groupby("k").size() == n).all()


# ---------------------------------------------------------------------- compaction
def test_compaction_sets_aside_a_file_that_holds_other_rows_than_it_was_told(done, cli, reference):
    store = Store(str(done))
    by_path, files = index.read(store)
    rel = f"discrepancy/{group_file(done).name}"
    entries = [dataclasses.replace(e, rows=1) if e.path == rel else e for es in by_path.values() for e in es]
    index.rewrite(store, entries, files)                 # a well-sealed index that says 1 row
    code, stdout, err = cli("compact", done)
    assert code == 0 and f"{group_file(done)}: it does not hold what the index recorded for group " \
                         f"'{GROUP.format(2)}' (rows differ" in err
    assert one_line(err) and "discrepancy: 3 file(s) -> 1 part(s), 2 group(s)" in stdout
    assert sorted(rows(done).k.unique()) == [3, 4]       # nothing sealed from the lie
    code, stdout, err = cli(*SWEEP, "--out", done, "--verify")
    assert code == 0 and "1 group(s) committed, 2 already done" in stdout, err
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)


def test_compact_refuses_a_directory_lksweep_never_wrote(tmp_path, cli):
    mine = tmp_path / "mine"
    (mine / "exports").mkdir(parents=True)
    pd.DataFrame({"x": [1, 2]}).to_parquet(mine / "exports" / "a.parquet")
    code, _, err = cli("compact", mine)
    assert code == 2 and one_line(err) and "holds no lksweep sweep" in err
    assert sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*")) == ["exports", "exports/a.parquet"]


# ---------------------------------------------------------------------- links inside OUT
@pytest.mark.parametrize("name", ["x", ".compacted-discrepancy-abcd1234", "_damaged"])
def test_a_symbolic_link_inside_out_is_refused_before_anything_is_touched(done, cli, tmp_path, name):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".tmp-keep.tmp").write_bytes(b"not lksweep's")
    (elsewhere / "keep.parquet").write_bytes(b"not lksweep's")
    (elsewhere / f".compacted-{name.rsplit('-', 1)[-1]}").write_bytes(b"")
    (done / name).symlink_to(elsewhere, target_is_directory=True)
    group_file(done, 3).write_bytes(b"damaged")          # what compaction would set aside
    before = sorted(os.listdir(done / "discrepancy"))
    for args in ([*SWEEP, "--out", done], ["compact", done]):
        code, _, err = cli(*args)
        assert code == 2 and one_line(err), err
        assert f"{done / name} is a symbolic link; lksweep follows no link inside its output directory" in err
    assert sorted(os.listdir(elsewhere)) == sorted([".tmp-keep.tmp", "keep.parquet", f".compacted-{name.rsplit('-', 1)[-1]}"])
    assert sorted(os.listdir(done / "discrepancy")) == before


def test_figures_written_through_a_link_are_refused(done, cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (done / "figures").symlink_to(elsewhere, target_is_directory=True)
    code, _, err = cli("figures", done)
    assert code == 2 and one_line(err) and f"{done / 'figures'} is a symbolic link" in err
    assert not list(elsewhere.iterdir())


# ---------------------------------------------------------------------- readers agree
def test_a_foreign_parquet_file_is_damaged_for_readers_and_status_alike(done, cli):
    export = done / "discrepancy" / "export.parquet"
    rows(done).head(5).to_parquet(export)
    with pytest.raises(Corrupt, match="export.parquet is damaged: it carries no digest"):
        load(str(done), "discrepancy")
    code, stdout, _ = cli("status", done)
    assert code == 0 and f"damaged (the next launch sets it aside and computes it again): {export}" in stdout
    code, _, err = cli("report", done)
    assert code == 1 and one_line(err) and "export.parquet is damaged" in err


def reseal(path: Path, table=None, **meta_changes):
    """Rewrite a committed file as lksweep would seal it, with other contents (a crafted file:
    a bit flip cannot make one)."""
    t, meta = decode(path.read_bytes(), {})
    meta = {k: v for k, v in {**meta, **meta_changes}.items() if k not in ("rows", "seal") and v is not None}
    path.write_bytes(encode(table if table is not None else t, meta)[0])


def test_a_sealed_part_without_its_groups_is_one_line_for_every_reader(done, cli):
    assert cli("compact", done)[0] == 0
    (part,) = (done / "discrepancy").glob("part-*.parquet")
    reseal(part, groups=None)
    code, stdout, err = cli("status", done)
    assert code == 0 and "its lksweep metadata is not usable: groups missing or of the wrong type" in stdout, err
    code, _, err = cli("report", done)
    assert code == 1 and one_line(err) and "groups missing or of the wrong type" in err
    code, _, err = cli("compact", done)
    assert code == 0 and one_line(err) and "groups missing or of the wrong type" in err


def test_a_file_whose_column_types_differ_from_the_others_is_named(done, cli):
    path = group_file(done)
    t, _ = decode(path.read_bytes(), {})
    i = t.schema.get_field_index("l")
    reseal(path, t.set_column(i, pa.field("l", pa.string()), pc.cast(t.column("l"), pa.string())))
    code, _, err = cli("report", done)
    assert code == 1 and one_line(err)
    assert f"{path} holds column 'l' as string where the table's other files hold int32" in err


def test_a_reader_during_a_compaction_reads_the_table_again(done, monkeypatch, reference):
    """The table is swapped between the reader's listing and its reads: it lists again."""
    listed = Store.list_files

    def then_compact(self, directory, suffix=".parquet"):
        names = listed(self, directory, suffix)
        if directory.endswith("/discrepancy") and not any(n.startswith("part-") for n in names):
            compaction.compact(Store(str(done)))
        return names

    monkeypatch.setattr(Store, "list_files", then_compact)
    df = rows(done)
    monkeypatch.undo()
    assert list((done / "discrepancy").glob("part-*.parquet"))
    pd.testing.assert_frame_equal(df, rows(reference), check_exact=True)


def test_a_directory_named_like_a_stage_that_no_compaction_made_does_not_stop_launches(done, cli, reference, caplog):
    for name in (".compacted-.-abcd1234", ".compacted-discrepancy-abcd1234"):
        (done / name).mkdir()
        (done / name / "keep").write_bytes(b"")
    code, stdout, err = cli(*SWEEP, "--out", done)
    assert code == 0 and "3 already done" in stdout, err
    assert "is not a compaction's stage directory; left alone" in caplog.text
    assert (done / ".compacted-.-abcd1234" / "keep").exists()
    pd.testing.assert_frame_equal(rows(done), rows(reference), check_exact=True)
