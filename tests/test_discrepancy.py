"""The (l,k)-discrepancy: numbers against plain references, sharding invariance, resume."""
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sweeps import contract
from sweeps.jobs import discrepancy as D

from . import launcher


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_h(cell, p, word):
    """Hidden state after reading ``word`` (a list of 0/1), straight from the paper's equations,
    one draw at a time; ``p`` maps names to (k, n) / (k, k) arrays."""
    k = p["Wh"].shape[0]
    h = np.zeros(k)
    for symbol in word:
        x = np.eye(2)[symbol]
        if cell == "vanilla":
            h = sigmoid(p["Uh"] @ x + p["Wh"] @ h)
        else:
            z = sigmoid(p["Uz"] @ x + p["Wz"] @ h)
            r = sigmoid(p["Ur"] @ x + p["Wr"] @ h)
            h_new = np.tanh(p["Uh"] @ x + p["Wh"] @ (h * r))
            h = (1 - z) * h_new + z * h
    return h


def reference_draw(cell, init, k, rng):
    names = ["Uh", "Wh"] if cell == "vanilla" else ["Uz", "Wz", "Ur", "Wr", "Uh", "Wh"]
    out = {}
    for name in names:
        shape = (k, 2) if name[0] == "U" else (k, k)
        fan_in = shape[1]
        if init == "normal":
            out[name] = rng.normal(0, 1, shape)
        elif init == "xavier":
            out[name] = rng.normal(0, math.sqrt(1 / fan_in), shape)
        else:
            out[name] = rng.uniform(-math.sqrt(1 / fan_in), math.sqrt(1 / fan_in), shape)
    return out


def reference_distance(cell, p, l):
    u, v = [0] * l, [1] + [0] * (l - 1)
    return np.linalg.norm(reference_h(cell, p, u) - reference_h(cell, p, v))


def sweep_rows(tmp_path, cli, *args):
    out = tmp_path / "out"
    code, _, err = cli("discrepancy", "--out", out, *args)
    assert code == 0, err
    return pd.read_parquet(out / "discrepancy").sort_values(["cell", "init", "k", "seed", "l"]).reset_index(drop=True)


@pytest.mark.parametrize("cell,init,k,l", [("vanilla", "normal", 3, 4), ("vanilla", "xavier", 8, 10),
                                           ("gru", "normal", 5, 12), ("gru", "uniform", 2, 6)])
def test_mean_agrees_with_independent_per_draw_loop(tmp_path, cli, cell, init, k, l):
    """The sweep's D(l,k) and an independent Monte Carlo estimate (other random draws, a plain
    per-draw loop) agree within 4 standard errors of their difference."""
    n = 400
    df = sweep_rows(tmp_path, cli, "--cells", cell, "--inits", init, "--l-max", l, "--k", k, "--draws", n)
    row = df[df.l == l].iloc[0]
    rng = np.random.default_rng(12345)
    ref = np.array([reference_distance(cell, reference_draw(cell, init, k, rng), l) for _ in range(n)])
    se = math.sqrt(row["std"] ** 2 / n + ref.std(ddof=1) ** 2 / n)
    assert row["n_draws"] == n
    assert abs(row["mean"] - ref.mean()) <= 4 * se, (row["mean"], ref.mean(), se)
    assert row["std"] == pytest.approx(ref.std(ddof=1), rel=0.35)


@pytest.mark.parametrize("cell", ["vanilla", "gru"])
def test_every_statistic_matches_the_definition_on_the_same_draws(tmp_path, cli, cell):
    """On the very draws the sweep used, a per-draw loop gives the same distances: mean and
    std to rounding, frac_distinct exactly, quantiles within one histogram bin (4.7 %)."""
    k, l_max, n = 4, 30, 120
    df = sweep_rows(tmp_path, cli, "--cells", cell, "--l-max", l_max, "--k", k, "--draws", n, "--seeds", 3)
    draws = []
    for b in range(-(-n // D.BLOCK)):
        p = D.draw_block(cell, "normal", k, 3, b)
        draws += [{name: t[i].numpy() for name, t in p.items()} for i in range(D.BLOCK)]
    dist = np.array([[reference_distance(cell, draws[i], l) for l in range(1, l_max + 1)] for i in range(n)])
    np.testing.assert_allclose(df["mean"], dist.mean(axis=0), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(df["std"], dist.std(axis=0, ddof=1), rtol=1e-7, atol=1e-15)
    np.testing.assert_array_equal(df["frac_distinct"], (dist > 1e-6).mean(axis=0))
    bin_ratio = 10 ** (1 / contract.BINS_PER_DECADE)
    for q, col in [(0.1, "q10"), (0.5, "q50"), (0.9, "q90")]:
        exact = np.quantile(dist, q, axis=0, method="inverted_cdf")
        got = df[col].to_numpy()
        # Below ~1e-13 a distance is a difference of nearly equal states, so the sweep and
        # this loop may round it differently: compare those absolutely.
        tiny = exact < 1e-13
        assert np.all(np.abs(got[tiny] - exact[tiny]) < 1e-13)
        ratio = got[~tiny] / exact[~tiny]
        assert np.all((ratio <= bin_ratio * 1.0001) & (ratio >= 1 / bin_ratio / 1.0001)), ratio


def test_bit_identical_for_other_shard_sizes_and_worker_counts(tmp_path, cli):
    args = ["--cells", "vanilla,gru", "--inits", "normal,uniform", "--l-max", 20, "--k", "2,7", "--draws", 500,
            "--seeds", "0-1"]
    a = sweep_rows(tmp_path / "a", cli, *args, "--shard-size", 100, "--max-workers", 1)
    b = sweep_rows(tmp_path / "b", cli, *args, "--shard-size", 250, "--max-workers", 2)
    c = sweep_rows(tmp_path / "c", cli, *args, "--shard-size", 1000)
    assert len(a) == 2 * 2 * 2 * 2 * 20
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(a, c, check_exact=True)


def test_seed_ensembles_differ_and_extend_a_directory(tmp_path, cli):
    out = tmp_path / "out"
    base = ["discrepancy", "--cells", "gru", "--l-max", 10, "--k", 3, "--draws", 100, "--out", out]
    assert cli(*base, "--seeds", 0)[0] == 0
    first = pd.read_parquet(out / "discrepancy")
    code, stdout, _ = cli(*base, "--seeds", "0-2")
    assert code == 0 and "1 already done" in stdout
    df = pd.read_parquet(out / "discrepancy")
    assert sorted(df.seed.unique()) == [0, 1, 2]
    pd.testing.assert_frame_equal(df[df.seed == 0].reset_index(drop=True), first, check_exact=True)
    assert not np.array_equal(df[df.seed == 0]["mean"], df[df.seed == 1]["mean"])


def test_other_settings_are_refused_then_overwritten_on_purpose(tmp_path, cli):
    out = tmp_path / "out"
    base = ["discrepancy", "--cells", "vanilla", "--k", 2, "--draws", 100, "--out", out]
    assert cli(*base, "--l-max", 10)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in (out / "discrepancy").iterdir()}
    code, _, err = cli(*base, "--l-max", 12)
    assert code == 2
    assert "vanilla-normal-k2-seed0" in err and "l_max=10" in err and "--overwrite" in err
    assert {p: p.stat().st_mtime_ns for p in (out / "discrepancy").iterdir()} == before
    assert cli(*base, "--l-max", 12, "--overwrite")[0] == 0
    assert pd.read_parquet(out / "discrepancy").l.max() == 12


def test_files_carry_spec_hash_and_version(tmp_path, cli):
    import json

    import pyarrow.parquet as pq
    df = sweep_rows(tmp_path, cli, "--cells", "vanilla", "--l-max", 5, "--k", 2, "--draws", 50)
    assert list(df.columns[:13]) == ["cell", "init", "k", "l", "seed", "dtype", "n_draws", "mean", "std",
                                     "q10", "q50", "q90", "frac_distinct"]
    assert (df.threshold == 1e-6).all()
    (path,) = (tmp_path / "out" / "discrepancy").iterdir()
    meta = json.loads(pq.read_metadata(path).metadata[b"lksweep"])
    assert len(meta["spec_hash"]) == 16 and meta["version"]
    assert meta["settings"] == {"draws": 50, "l_max": 5, "dtype": "float64", "threshold": 1e-6}


def test_status_counts_done_and_pending(tmp_path, cli):
    out = tmp_path / "out"
    assert cli("discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", "1-2", "--draws", 100,
               "--shard-size", 50, "--out", out)[0] == 0
    shard = next((out / "_shards" / "discrepancy" / "vanilla-normal-k2-seed0").iterdir())
    shard.unlink()
    (out / "discrepancy" / "vanilla-normal-k2-seed0.parquet").unlink()
    code, stdout, _ = cli("status", out)
    assert code == 0
    line = next(x for x in stdout.splitlines() if x.startswith("discrepancy"))
    assert line.split()[1:] == ["1/2", "3/4", "1"]


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, cli):
    """SIGKILL a launcher mid-sweep; the rerun keeps every committed shard file untouched
    and ends with the table of an uninterrupted run."""
    args = ["discrepancy", "--cells", "gru", "--l-max", 200, "--k", "30", "--draws", 3000, "--shard-size", 50,
            "--max-workers", 1]
    out = tmp_path / "killed"
    done = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in launcher.killed_after(args, out, 3)}
    assert 3 <= len(done) < 60, "the launcher should have been killed mid-sweep"
    assert not (out / "discrepancy").exists()
    code, stdout, err = cli(*args, "--out", out)
    assert code == 0, err
    assert f"{len(done)} reused" in stdout
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done} == done
    code, _, _ = cli(*args, "--out", tmp_path / "whole")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "discrepancy"), pd.read_parquet(tmp_path / "whole" / "discrepancy"),
                                  check_exact=True)


def test_a_shard_split_into_chunks_gives_the_same_summaries(monkeypatch):
    """A shard too big for one chunk (forced here) summarises exactly the same draws:
    every draw counted once, nothing else counted."""
    job = D.Discrepancy()
    (group,) = job.plan(job.Settings.parse({"cells": "gru", "l_max": 30, "k": 6, "draws": 330, "shard_size": 1000}))
    whole = job.finalize(group, [D.compute_shard(s.params) for s in group.shards])["discrepancy"].to_pandas()
    monkeypatch.setattr(D, "CHUNK_BYTES", 1)  # one block per chunk
    chunked = job.finalize(group, [D.compute_shard(s.params) for s in group.shards])["discrepancy"].to_pandas()
    pd.testing.assert_frame_equal(whole, chunked, check_exact=True)
    assert (chunked.n_draws == 330).all() and (chunked.frac_distinct <= 1).all()


def test_float32_groups_sit_beside_float64_ones(tmp_path, cli):
    out = tmp_path / "out"
    base = ["discrepancy", "--cells", "vanilla", "--l-max", 30, "--k", 3, "--draws", 100, "--out", out]
    assert cli(*base)[0] == 0
    code, _, err = cli(*base, "--dtype", "float32")
    assert code == 0, err
    df = pd.read_parquet(out / "discrepancy")
    assert sorted(df.dtype.unique()) == ["float32", "float64"] and len(df) == 60
    d64, d32 = (df[df.dtype == t].set_index("l") for t in ("float64", "float32"))
    # the same draws: close early on, while in float32 trajectories merge far earlier
    assert d32.loc[1, "mean"] == pytest.approx(d64.loc[1, "mean"], rel=1e-5)
    assert (d32.loc[30, "frac_distinct"] <= d64.loc[30, "frac_distinct"])


# ---------------------------------------------------------------------- the shard format
def noisy_lstm_group():
    job = D.Discrepancy()
    (group,) = job.plan(job.Settings.parse({"cells": "lstm", "l_max": 6, "k": 3, "draws": 120, "shard_size": 50,
                                            "lyapunov": True, "noise": 0.1, "noise_draws": 60}))
    return job, group


def test_a_shard_holds_the_tables_its_settings_declare():
    """Every shard packs the declared tables its settings need, a row per l or per draw; a group
    measured without the dynamics has no per-draw table and writes no lyapunov table."""
    job, group = noisy_lstm_group()
    shards = [D.SHARD.unpack(D.compute_shard(s.params)) for s in group.shards]
    assert [list(s) for s in shards] == [["moments", "state_moments", "decodable", "draws"]] * 3
    assert [s["draws"]["draw"].to_pylist() for s in shards] == [list(range(50)), list(range(50, 100)),
                                                                 list(range(100, 120))]
    assert [s["decodable"]["block_n"][0].as_py() for s in shards] == [[50], [10], []]
    assert all(s[t].num_rows == 6 for s in shards for t in ("moments", "state_moments", "decodable"))
    (plain,) = job.plan(job.Settings.parse({"cells": "vanilla", "l_max": 6, "k": 3, "draws": 50}))
    assert not plain.shards[0].params.lyapunov and plain.shards[0].params.noise is None
    assert list(D.SHARD.unpack(D.compute_shard(plain.shards[0].params))) == ["moments"]
    assert set(job.finalize(plain, [D.compute_shard(plain.shards[0].params)])) == {"discrepancy", "memory"}


def test_a_shard_that_differs_from_its_declaration_is_refused_by_name():
    """A column renamed (written or read), a table missing, or a shard of the earlier format
    (one table, per-draw lists in its first row) is refused with a message naming it."""
    job, group = noisy_lstm_group()
    packed = [D.compute_shard(s.params) for s in group.shards]
    tables = D.SHARD.unpack(packed[0])
    renamed = {**tables, "draws": tables["draws"].rename_columns(
        ["draw_rate" if c == "rate" else c for c in tables["draws"].column_names])}
    with pytest.raises(ValueError, match=r"shard table 'draws' has columns draw \(int32\), draw_rate \(double\)"):
        D.SHARD.pack(renamed)
    other = contract.ShardFormat("discrepancy", 2, {**D.SHARD.tables, "draws": renamed["draws"].schema})
    with pytest.raises(ValueError, match="shard table 'draws' has columns .*draw_rate .*its declaration .* rate "):
        job.finalize(group, [other.pack(renamed), *packed[1:]])
    without = D.SHARD.pack({name: t for name, t in tables.items() if name != "draws"})
    with pytest.raises(ValueError, match="holds tables moments, state_moments, decodable where its settings need "
                                         "moments, state_moments, decodable, draws"):
        job.finalize(group, [without, *packed[1:]])
    old = pa.table({"l": pa.array(range(1, 7), pa.int32()),
                    "draw_lyapunov": pa.array([[0.1] * 50] + [None] * 5, pa.list_(pa.float64()))})
    with pytest.raises(ValueError, match="shard format 2 of the discrepancy job: a shard with columns l, "
                                         "draw_lyapunov is not of this format"):
        job.finalize(group, [old, *packed[1:]])


def test_shards_of_the_earlier_format_are_computed_again_and_committed_tables_kept(tmp_path, cli):
    """A directory from before the shard format's version 2: a committed group, and the format-1
    shard files of a group not committed yet (their parameters carry no format, so their ids are
    other shards'). The committed group's files stay untouched; the other group is computed
    from scratch, never from those files (left as they are), equal to a fresh directory."""
    from sweeps import __version__
    from sweeps.fileformat import encode
    from sweeps.plan import as_dict, content_hash

    args = ["discrepancy", "--cells", "vanilla", "--l-max", 10, "--k", "2,3", "--draws", 100, "--shard-size", 50,
            "--lyapunov", "true"]
    fresh, out = tmp_path / "fresh", tmp_path / "out"
    assert cli(*args, "--out", fresh)[0] == 0
    job = D.Discrepancy()
    kept, planted = job.plan(job.Settings.parse({"cells": "vanilla", "l_max": 10, "k": "2,3", "draws": 100,
                                                  "shard_size": 50, "lyapunov": True}))
    for table in kept.tables:
        (out / table).mkdir(parents=True)
        (out / table / f"{kept.name}.parquet").write_bytes((fresh / table / f"{kept.name}.parquet").read_bytes())
    committed = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*/*.parquet")}
    old_files = []
    for shard in planted.shards:
        params = {k: v for k, v in as_dict(shard.params).items() if k != "format"}
        sid = content_hash({"job": "discrepancy", "params": params})
        assert sid != shard.id
        table = pa.table({"l": pa.array(range(1, 11), pa.int32()),
                          "draw_lyapunov": pa.array([[0.0] * 50] + [None] * 9, pa.list_(pa.float64()))})
        data, _ = encode(table, {"version": __version__, "spec_hash": "0" * 16, "job": "discrepancy", "kind": "shard",
                                 "group": planted.name, "settings": planted.settings, "shard": sid, "params": params})
        path = out / "_shards" / "discrepancy" / planted.name / f"{sid}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        old_files.append((path, data))
    code, stdout, err = cli(*args, "--out", out)
    assert code == 0, err
    assert "2 shard(s) computed, 0 reused, 1 group(s) committed, 1 already done" in stdout
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in committed} == committed
    assert all(path.read_bytes() == data for path, data in old_files)
    for table in kept.tables:
        pd.testing.assert_frame_equal(pd.read_parquet(out / table), pd.read_parquet(fresh / table), check_exact=True)
