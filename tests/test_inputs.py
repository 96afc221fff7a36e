"""Input as an adversary writes it: specs, sweep records, checkpoints, options and addresses
that would climb out of the results directory, exhaust memory or time, or end in a
traceback. Each is refused in one line (exit 2, before Ray starts and before anything is
written) or, for files found in an output directory, named and set aside; a training run
that diverges is recorded as diverged while the rest of its ensemble finishes."""
import dataclasses
import io
import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from sweeps import spec as specs
from sweeps.cli import main
from sweeps.fileformat import seal_checkpoint
from sweeps.job import Checkpoint, get_job
from sweeps.jobs.training import MAX_EPOCHS, MAX_STRINGS, checkpoint
from sweeps.jobs.training import tables as training_tables
from sweeps.jobs.training.gradients import Magnitudes
from sweeps.settings import INT32

BLOCK = "discrepancy:\n  cells: vanilla\n  l_max: 3\n  k: 2\n  draws: 50\n"


def refused(capsys, argv, expected):
    """Run the CLI in-process; assert exit 2 and one line on stderr holding ``expected``."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lksweep: error: "), (argv, code, err)
    assert expected in lines[0], (expected, lines[0])
    return lines[0]


# ---------------------------------------------------------------------- 1. names and keys
def test_a_spec_name_is_one_directory_inside_results(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("../../escaped", "a/b", "..", ".hidden", "x" * 101, "tab\there"):
        path = tmp_path / "spec.yaml"
        path.write_text(f"name: {json.dumps(name)}\n{BLOCK}")
        refused(capsys, ["run", path], "must be one directory name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]      # nothing written, here or above
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize("text, key, line", [
    (BLOCK + BLOCK.replace("vanilla", "gru"), "'discrepancy'", 6),                  # the later one used to win
    (BLOCK.replace("  k: 2\n", "  k: 2\n  k: 3\n"), "'k'", 5),                       # inside a section
    ("name: a\nname: b\n" + BLOCK, "'name'", 2),
])
def test_a_key_given_twice_is_refused(tmp_path, capsys, text, key, line):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    refused(capsys, ["run", path, "--out", tmp_path / "out"], f"key {key} is given twice in one mapping (again at "
                                                               f"line {line})")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- 2. small inputs, huge cost
BOMB = "".join(f"{a}: &{a} [{', '.join([f'*{p}'] * 9 if p else ['x'] * 9)}]\n"
               for p, a in zip(["", *"abcdefg"], "abcdefgh"))          # 9^8 = 43 million strings in 550 bytes


@pytest.mark.parametrize("key", ["name", "include", "cells"])
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys, key):
    text = BOMB + (f"{key}: *h\n{BLOCK}" if key != "cells" else BLOCK.replace("cells: vanilla", "cells: *h"))
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    assert len(text) < 700
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(capsys, ["run", path, "--out", tmp_path / "out"], "YAML alias at line 2, column 8: aliases are not "
                                                             "accepted in a spec")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000     # KiB: nothing expanded


def test_includes_are_bounded_in_number_and_a_shared_include_is_fine(tmp_path, capsys):
    for i in range(14):      # each file includes the next twice: 2^14 reads
        (tmp_path / f"c{i}.yaml").write_text(f"include: [c{i + 1}.yaml, c{i + 1}.yaml]\n")
    (tmp_path / "c14.yaml").write_text(BLOCK)
    refused(capsys, ["run", tmp_path / "c0.yaml", "--out", tmp_path / "out"],
            f"more than {specs.MAX_INCLUDES} includes in all")
    (tmp_path / "top.yaml").write_text("include: [c12.yaml, c13.yaml]\n")   # 7 reads: accepted, blocks merged
    spec = specs.load(str(tmp_path / "top.yaml"))
    assert len(spec.sections["discrepancy"]) == 6 and len(spec.groups()) == 1


def record(out: Path, name: str, rec) -> None:
    (out / "_sweeps").mkdir(parents=True, exist_ok=True)
    (out / "_sweeps" / name).write_text(json.dumps(rec))


def test_status_plans_a_sweep_record_only_within_the_launch_bounds(tmp_path, capsys):
    good = specs.from_options("discrepancy", {"cells": "vanilla", "l_max": "3", "k": "2", "draws": "50"})
    record(tmp_path, "good.json", {"spec": good.to_dict()})
    bomb = good.to_dict()
    bomb["discrepancy"][0].update(draws=2 * 10**9, k=[1, 2, 3])          # 417 bytes asking for 6 M shards
    record(tmp_path, "bomb.json", {"spec": bomb})
    record(tmp_path, "deep.json", "[" * 100_000)                         # nested deeper than the parser goes
    assert main(["status", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "3 sweep(s)" in out and "discrepancy" in out
    assert f"skipping sweep record {tmp_path}/_sweeps/bomb.json: refused: this sweep plans 6,000,000 shards" in err
    assert f"skipping unreadable sweep record {tmp_path}/_sweeps/deep.json" in err
    assert len(err.strip().splitlines()) == 2


def test_the_report_skips_a_record_with_odd_planned_entries(tmp_path, caplog):
    from analysis.tables import planned_groups
    good = {"spec": {"name": "g"}, "planned": {"discrepancy": {"tables": ["discrepancy"], "groups": ["g1"]}}}
    record(tmp_path, "good.json", good)
    odd = [[1, 2], {"discrepancy": 5}, {"discrepancy": {"tables": "discrepancy", "groups": ["x"]}},
           {"discrepancy": {"tables": ["discrepancy"], "groups": [{"a": 1}]}}, {"discrepancy": {}}]
    for i, planned in enumerate(odd):
        record(tmp_path, f"odd{i}.json", {"spec": {"name": "o"}, "planned": planned})
    sweeps, planned = planned_groups(str(tmp_path))
    assert [s["hash"] for s in sweeps] == ["good"] and planned == {"discrepancy": {"g1"}}
    assert len([r for r in caplog.records if "skipping sweep record" in r.getMessage()]) == len(odd)


def test_grammar_sample_streams_any_number_of_strings(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", "grammar", "sample", "-n", str(10**12)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3)]          # the first strings come at once
    proc.stdout.close()                                          # the reader stops: so does the writer, quietly
    assert proc.wait(timeout=60) == 0 and proc.stderr.read() == ""
    assert all(line.startswith("B") and line.endswith("E\n") for line in lines)


TRAIN = ["train", "--task", "reber", "--cells", "vanilla:3", "--protocol", "paper"]


@pytest.mark.parametrize("flag, value, bound", [
    ("--n-train", 10**9, MAX_STRINGS), ("--max-epochs", 10**12, MAX_EPOCHS), ("--max-epochs", 10**20, MAX_EPOCHS),
    ("--seeds", 2**63 - 1, INT32), ("--data-seed", 10**20, INT32), ("--n-val", 10**7, MAX_STRINGS),
    ("--batch-size", 10**6, MAX_STRINGS), ("--cells", "vanilla:100000", 1024),
])
def test_training_options_are_bounded_before_ray_starts(tmp_path, capsys, flag, value, bound):
    argv = [*TRAIN, flag, value, "--out", tmp_path / "out"]
    refused(capsys, argv, f"{flag}: must be <= {bound:,}")
    assert not (tmp_path / "out").exists()              # Ray logs into OUT/_logs: it never started
    block = {"task": "reber", "cells": "vanilla:3", "protocol": "paper", flag[2:].replace("-", "_"): value}
    with pytest.raises(jsonschema.ValidationError):      # the JSON Schema carries the same bound
        jsonschema.validate({"training": block}, specs.json_schema())


def test_discrepancy_seeds_and_lengths_are_bounded(tmp_path, capsys):
    base = ["discrepancy", "--cells", "vanilla", "--k", "2", "--draws", "50", "--out", tmp_path / "out"]
    refused(capsys, [*base, "--l-max", "3", "--seeds", 2**63 - 1], f"--seeds: must be <= {INT32:,}")
    refused(capsys, [*base, "--l-max", 2**40], f"--l-max: must be <= {INT32:,}")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- 3. divergence
def test_non_finite_values_are_counted_apart_from_the_summary():
    m = Magnitudes()
    m.add(np.array([1.0, np.nan, np.inf, 3.0]))          # NaN used to reach np.bincount as a negative bin
    row = m.row()
    assert (row["n"], row["nonfinite"], row["mean"], row["max"]) == (2, 2, 2.0, 3.0)
    assert row["hist_count"].sum() == 2
    empty = Magnitudes()
    empty.add(np.array([np.nan, -np.inf]))
    row = empty.row()
    assert row["n"] == 0 and row["nonfinite"] == 2 and np.isnan(row["mean"]) and np.isnan(row["q50"])


DIVERGE = [*TRAIN, "--seeds", "0-3", "--n-train", "10", "--max-epochs", "20"]


def alone(seed: int, engine: str, lr: float):
    """Seed ``seed``'s tables trained alone, in-process."""
    (group,) = specs.from_options("training", {"task": "reber", "cells": "vanilla:3", "protocol": "paper",
                                               "seeds": str(seed), "n_train": "10", "max_epochs": "20",
                                               "lr": str(lr), "engine": engine}).groups()
    (result,) = get_job("training").compute([group.shards[0].params], [None])
    assert not isinstance(result, Checkpoint)
    return training_tables.SHARD.unpack(result)


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_a_diverging_run_is_recorded_and_its_ensemble_finishes(tmp_path, cli, engine):
    code, _, err = cli(*DIVERGE, "--lr", "20", "--engine", engine, "--out", tmp_path)
    assert code == 0, err
    runs = pd.read_parquet(tmp_path / "runs").set_index("seed").sort_index()
    diverged = runs[runs.stop_reason == "diverged"]
    assert list(diverged.index) == [1, 3] and set(runs.drop(index=[1, 3]).stop_reason) == {"max_epochs"}
    assert (diverged.epochs < 20).all() and (diverged.selected_epoch < diverged.epochs).all()
    assert np.isfinite(runs.filter(like="test_").drop(columns=["test_outer_accuracy", "test_constant_outer"])).all().all()
    epochs = pd.read_parquet(tmp_path / "epochs")
    for seed, run in diverged.iterrows():
        last = epochs[(epochs.seed == seed) & (epochs.epoch == run.epochs)].iloc[0]
        assert np.isnan(last.val_loss) and np.isnan(last.val_string_accuracy)       # a non-finite model: no score
        assert np.isfinite(run.final_loss) == np.isfinite(last.train_loss)
    g = pd.read_parquet(tmp_path / "gradients")
    assert set(g.seed) == {0, 1, 2, 3} and (g.n > 0).all() and np.isfinite(g["mean"]).all()
    # the other members' numbers are their own: the same as trained alone
    mine = alone(0, engine, 20)["runs"].to_pandas().drop(columns="wall_s")
    ours = pd.read_parquet(tmp_path / "runs").loc[lambda d: d.seed == 0, mine.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, mine, check_exact=True)


def test_the_reported_diverging_sweep_finishes(tmp_path, cli):
    code, out, err = cli(*DIVERGE, "--lr", "50", "--out", tmp_path)
    assert code == 0, err
    assert set(pd.read_parquet(tmp_path / "runs").stop_reason) == {"diverged"}
    code, out, _ = cli(*DIVERGE, "--lr", "50", "--out", tmp_path)       # and a rerun has nothing left to do
    assert code == 0 and "0 shard(s) computed" in out


# ---------------------------------------------------------------------- 4. checkpoints
CKPT = {"task": "reber", "cells": "vanilla:3", "protocol": "adam", "seeds": "0", "n_train": "12", "max_epochs": "3"}
CKPT_ARGS = ["train", *[x for k, v in CKPT.items() for x in (f"--{k.replace('_', '-')}", v)]]


def genuine():
    """The run's group, shard and a real checkpoint of it after one epoch."""
    (group,) = specs.from_options("training", CKPT).groups()
    (shard,) = group.shards
    (first,) = get_job("training").compute([dataclasses.replace(shard.params, checkpoint_s=1e-9)], [None])
    assert isinstance(first, Checkpoint)
    return group, shard, first.state


def rewrite(state: bytes, change) -> bytes:
    """``state`` with ``change(arrays, meta)`` applied."""
    with np.load(io.BytesIO(state)) as z:
        arrays = {name: z[name] for name in z.files}
    meta = json.loads(arrays.pop(checkpoint.META).tobytes())
    change(arrays, meta)
    return checkpoint.write(arrays, meta)


def deflate_bomb(state: bytes, member: str, nbytes: int, header: bytes = b"") -> bytes:
    """``state`` with ``member`` replaced by ``nbytes`` of zeros after ``header``, deflated,
    and declared honestly in the zip directory."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(state)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != member:
                dst.writestr(info.filename, src.read(info))
        with dst.open(member, "w", force_zip64=True) as f:
            f.write(header)
            chunk = b"\x00" * 2**20
            for _ in range(nbytes // len(chunk)):
                f.write(chunk)
    return out.getvalue()


def npy_header(shape, dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    return buf.getvalue()


CASES = {
    "deflate bomb": (lambda s: deflate_bomb(s, "param/O.npy", 2**28, npy_header((2**25,), np.float64)),
                     "param/O is float64[33554432], expected float64[7, 3]"),
    "bookkeeping bomb": (lambda s: deflate_bomb(s, checkpoint.META + ".npy", 2**28, npy_header((2**28,), np.uint8)),
                         "its bookkeeping declares uint8[268435456], expected at most"),
    "padded member": (lambda s: deflate_bomb(s, "param/O.npy", 2**28, npy_header((7, 3), np.float64)),
                      "param/O declares 268,435,584 bytes in the zip directory and 296 in its header"),
    "wrong shape": (lambda s: rewrite(s, lambda a, m: a.update({"param/O": np.zeros((7, 4))})),
                    "param/O is float64[7, 4], expected float64[7, 3]"),
    "missing key": (lambda s: rewrite(s, lambda a, m: a.pop("opt/m/O")), "arrays missing: opt/m/O"),
    "NaN weights": (lambda s: rewrite(s, lambda a, m: a["param/Wh"].fill(np.nan)),
                    "param/Wh hold NaN or infinite values"),
    "odd bookkeeping": (lambda s: rewrite(s, lambda a, m: m["epochs"][0].update(lr="fast")),
                        "its epochs rows do not fit the table"),
    "odd stream": (lambda s: rewrite(s, lambda a, m: m.update(rng={"bit_generator": "MT19937"})),
                   "its data-order stream"),
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory, ray_session):
    out = tmp_path_factory.mktemp("clean")
    assert main([*CKPT_ARGS, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_checkpoint_is_set_aside_and_its_run_starts_over(tmp_path, cli, clean, case):
    make, reason = CASES[case]
    group, shard, state = genuine()
    data = make(state)
    assert len(data) < 2**22                               # a few MB at most on disk
    out = tmp_path / "out"
    path = out / "_shards" / "training" / group.name / f"{shard.id}.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(seal_checkpoint(data, {"job": "training", "group": group.name, "shard": shard.id}))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, stdout, err = cli(*CKPT_ARGS, "--out", out)
    assert code == 0, err
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000      # KiB: the bomb stayed shut
    assert f"checkpoint {path} cannot be used (" in err and reason in err and "starts again from the beginning" in err
    assert len(err.strip().splitlines()) == 2             # what is left to compute; the checkpoint set aside
    assert not path.exists() and len(list((out / "_damaged").rglob("*.ckpt.*"))) == 1
    assert "1 shard(s) computed" in stdout
    for table in ("runs", "epochs", "gradients"):
        a, b = (pd.read_parquet(d / table) for d in (out, clean))
        drop = ["wall_s"] if "wall_s" in a else []
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop), check_exact=True)


def test_a_genuine_checkpoint_is_resumed(tmp_path, cli, clean):
    group, shard, state = genuine()
    out = tmp_path / "out"
    path = out / "_shards" / "training" / group.name / f"{shard.id}.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(seal_checkpoint(state, {"job": "training", "group": group.name, "shard": shard.id}))
    code, stdout, err = cli(*CKPT_ARGS, "--out", out)
    assert code == 0 and "cannot be used" not in err and not (out / "_damaged").exists()
    a, b = (pd.read_parquet(d / "epochs") for d in (out, clean))
    pd.testing.assert_frame_equal(a, b, check_exact=True)


# ---------------------------------------------------------------------- 5. one line, not a traceback
def test_addresses_and_outputs_that_used_to_raise(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = [*TRAIN, "--seeds", "0", "--n-train", "10"]
    refused(capsys, [*base, "--address", "h" * 300 + ":6379", "--out", "o"], "--address: expected HOST:PORT")
    refused(capsys, [*base, "--address", "127.0.0.1:99999", "--out", "o"], "a port from 1 to 65535")
    refused(capsys, [*base, "--out", ""], "--out: expected a directory path or a URI")
    refused(capsys, ["run", "quick", "--out", ""], "--out: expected a directory path or a URI")
    for command in ("status", "report", "figures", "compact"):
        refused(capsys, [command, "s3://"], "'s3://' names no bucket; expected e.g. s3://bucket/prefix")
        refused(capsys, [command, "s3://?endpoint_override=127.0.0.1:1"], "names no bucket")
    assert list(tmp_path.iterdir()) == []                 # no results/, no o/


def test_the_printed_pandas_hint_reads_the_results_from_the_server(cli, s3):
    uri = s3.uri("hint")
    code, stdout, err = cli("discrepancy", "--cells", "vanilla", "--l-max", 4, "--k", 2, "--draws", 50, "--out", uri)
    assert code == 0, err
    hint = stdout[stdout.index("Results:"):].splitlines()[1:]
    hint = [line.strip() for line in hint[:hint.index(next(x for x in hint if x.startswith("Resume")))]]
    assert "endpoint_override=" in hint[0]                  # else following it would reach the public endpoint
    scope = {}
    exec("import pandas, pyarrow.fs\n" + "\n".join(f"df{i} = {line}" if line.startswith("pandas") else line
                                                   for i, line in enumerate(hint)), scope)
    frames = [v for k, v in scope.items() if k.startswith("df")]
    assert len(frames) == len(hint) - 1 >= 2
    assert sorted(len(f) for f in frames) == [1, 4] and all(set(f.cell) == {"vanilla"} for f in frames)
