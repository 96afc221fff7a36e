"""Faults a sweep survives: Ctrl-C, a killed launcher (again and again), corrupt shards,
concurrent launchers, a full disk. Real processes, real files."""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from . import launcher

SWEEP = ["discrepancy", "--cells", "gru", "--l-max", 200, "--k", 30, "--draws", 2000, "--shard-size", 50,
         "--max-workers", 1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_session):
    """The table of an uninterrupted run of SWEEP."""
    from sweeps.cli import main
    out = tmp_path_factory.mktemp("reference")
    assert main([*map(str, SWEEP), "--out", str(out)]) == 0
    return pd.read_parquet(out / "discrepancy")


def test_ctrl_c_commits_finished_shards_and_prints_how_to_resume(tmp_path, cli, reference):
    out = tmp_path / "out"
    proc = launcher.start(SWEEP, out)
    assert launcher.wait_for_shards(proc, out, 3)
    launcher.kill_group(proc, signal.SIGINT)  # what a terminal's Ctrl-C does
    code, _, err = launcher.end(proc)
    assert code == 130, err
    assert "interrupted" in err and f"Resume with: lksweep {' '.join(map(str, SWEEP))} --out {out}" in err
    assert "Traceback" not in err
    done = {p: p.stat().st_mtime_ns for p in launcher.shard_files(out)}
    assert 3 <= len(done) < 40
    assert not (out / "_lock.json").exists(), "an interrupted launcher releases its lock"
    code, stdout, _ = cli(*SWEEP, "--out", out)
    assert code == 0 and f"{len(done)} reused" in stdout
    assert {p: p.stat().st_mtime_ns for p in done} == done
    pd.testing.assert_frame_equal(pd.read_parquet(out / "discrepancy"), reference, check_exact=True)


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path, cli, reference):
    """What `ray job stop` and schedulers send: the launcher stops submitting, keeps what
    finished, says how to resume, releases the lock and exits with 128 + 15."""
    out = tmp_path / "out"
    proc = launcher.start(SWEEP, out)
    assert launcher.wait_for_shards(proc, out, 3)
    os.kill(proc.pid, signal.SIGTERM)            # the launcher alone, as `kill PID` does
    code, _, err = launcher.end(proc)
    assert code == 143, err
    assert "interrupted" in err and f"Resume with: lksweep {' '.join(map(str, SWEEP))} --out {out}" in err
    assert "Traceback" not in err and not (out / "_lock.json").exists()
    done = len(launcher.shard_files(out))
    code, stdout, _ = cli(*SWEEP, "--out", out)
    assert code == 0 and f"{done} reused" in stdout
    pd.testing.assert_frame_equal(pd.read_parquet(out / "discrepancy"), reference, check_exact=True)


@pytest.mark.parametrize("server", ["silent", "http"])
def test_an_address_that_answers_but_is_not_ray_is_refused_at_once(tmp_path, server):
    """Any TCP server at --address: one line, exit 2 within seconds, nothing written."""
    import http.server
    import threading

    if server == "http":
        srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        port = srv.server_address[1]
    else:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        port = srv.getsockname()[1]
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", "discrepancy", "--cells", "vanilla", "--l-max", "5",
                           "--k", "2", "--draws", "50", "--address", f"127.0.0.1:{port}", "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"lksweep: error: --address: no Ray cluster answers at 127.0.0.1:{port} (something listens")
    assert time.monotonic() - t0 < 30 and not out.exists()
    srv.shutdown() if server == "http" else srv.close()


@pytest.mark.slow
def test_ballistic_kills_until_done_equal_an_uninterrupted_run(tmp_path, reference):
    """Start the launcher and SIGKILL it at a random moment, again and again, until one run
    finishes by itself; no committed shard is ever rewritten and the table is the same.

    A third of the kills land while the launcher is still starting; the others land at a
    random moment once it has committed a new shard, so that every such run makes progress
    whatever the machine's speed."""
    out, rng = tmp_path / "out", random.Random(7)
    seen, kills = {}, 0
    for _ in range(30):
        proc = launcher.start(SWEEP, out)
        before = len(launcher.shard_files(out))
        if rng.random() < 1 / 3:
            time.sleep(rng.uniform(0.5, 5.0))
        elif launcher.wait_for_shards(proc, out, before + 1):
            time.sleep(rng.uniform(0.0, 2.0))
        if proc.poll() is None:
            launcher.kill_group(proc)
            kills += 1
        code, _, err = launcher.end(proc)
        for p in launcher.shard_files(out):
            stamp = (p.stat().st_ino, p.stat().st_mtime_ns)
            assert seen.setdefault(p, stamp) == stamp, f"{p.name} was rewritten"
        if code == 0:
            break
        assert code == -signal.SIGKILL, err
    else:
        pytest.fail(f"the sweep never finished: {len(seen)} of 40 shards after {kills} kills")
    assert kills >= 2, "the test should have killed the launcher mid-sweep several times"
    assert len(seen) == 40
    assert not list(out.rglob(".tmp-*")), "temporaries of killed writes are cleaned up by the next launcher"
    pd.testing.assert_frame_equal(pd.read_parquet(out / "discrepancy"), reference, check_exact=True)


def test_truncated_shard_and_table_files_are_found_and_redone(tmp_path, cli, reference):
    out = tmp_path / "out"
    args = [*SWEEP, "--out", out]
    assert cli(*args)[0] == 0
    table = out / "discrepancy" / "gru-normal-k30-seed0.parquet"
    shards = launcher.shard_files(out)
    victim = shards[7]
    victim.write_bytes(victim.read_bytes()[:100])
    table.write_bytes(table.read_bytes()[:-50])
    untouched = {p: p.stat().st_mtime_ns for p in shards if p != victim}
    code, stdout, err = cli(*args)
    assert code == 0, err
    assert f"{victim} is damaged: not a whole Parquet file (truncated?); set aside to" in err
    assert f"{table} is damaged: not a whole Parquet file" in err
    assert "1 shard(s) computed, 39 reused" in stdout
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched
    pd.testing.assert_frame_equal(pd.read_parquet(out / "discrepancy"), reference, check_exact=True)


def test_a_second_launcher_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, cli):
    out = tmp_path / "out"
    args = ["discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", 2, "--draws", 50, "--out", out]
    holder = launcher.hold_lock(out)
    try:
        assert holder.stdout.readline().strip() == "acquired"
        code, _, err = cli(*args)
        assert code == 1
        assert f"is being written by another launcher (pid {holder.pid}" in err
        assert not (out / "discrepancy").exists()
    finally:
        holder.kill()    # SIGKILL: its _lock.json stays behind, its OS lock does not
        holder.wait()
    assert (out / "_lock.json").exists()
    code, _, err = cli(*args)
    assert code == 0, err
    assert (out / "discrepancy" / "vanilla-normal-k2-seed0.parquet").exists()
    assert not (out / "_lock.json").exists()


def test_contenders_released_at_once_get_the_lock_one_at_a_time(tmp_path):
    """Three launchers asking for the lock of a directory at the same instant, over and over
    (with a dead launcher's lock left behind): exactly one gets it each time, the others are
    refused in one line."""
    out = tmp_path / "out"
    out.mkdir()
    for trial in range(15):
        (out / "_lock.json").write_text(json.dumps({"host": os.uname().nodename, "pid": 999999999,
                                                    "since": 0, "token": "dead"}))
        start = time.time() + 1.0
        procs = [launcher.hold_lock(out, start, hold=0.5) for _ in range(3)]
        lines = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert sorted(line.split()[0] for line in lines) == ["acquired", "refused", "refused"], (trial, lines)
        assert all(p.returncode == 0 for p in procs)


def test_a_running_launcher_refuses_a_second(tmp_path, cli):
    out = tmp_path / "out"
    proc = launcher.start(SWEEP, out)
    try:
        assert launcher.wait_for_shards(proc, out, 1)
        code, _, err = cli(*SWEEP, "--out", out)
        assert code == 1 and f"(pid {proc.pid} on" in err
    finally:
        launcher.kill_group(proc)
        launcher.end(proc)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB tmpfs: a disk that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); this test needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_fails_cleanly_and_keeps_committed_results(tiny_disk, cli):
    out = tiny_disk / "out"
    base = ["discrepancy", "--cells", "vanilla", "--l-max", 100, "--draws", 50, "--out", out]
    assert cli(*base, "--k", 1)[0] == 0
    committed = {p: p.read_bytes() for p in out.rglob("*.parquet") if "_index" not in p.parts}
    code, _, err = cli(*base, "--k", "2-60")
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("lksweep: error: No space left on device"), err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in committed} == committed
    assert not [p for p in out.rglob(".tmp-*")], "no half-written file is left behind"
    for p in out.rglob("*.parquet"):  # whatever did land is whole
        pd.read_parquet(p)


def test_unreadable_records_and_tables_are_one_line_errors(tmp_path, cli):
    out = tmp_path / "out"
    args = ["discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", "2-3", "--draws", 50, "--out", out]
    assert cli(*args)[0] == 0
    (out / "_sweeps" / "broken.json").write_text("{not json")
    code, stdout, err = cli("status", out)
    assert code == 0 and "skipping unreadable sweep record" in err and "2/2" in stdout
    table = out / "discrepancy" / "vanilla-normal-k2-seed0.parquet"
    table.write_bytes(table.read_bytes()[:-40])
    code, _, err = cli("figures", out)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert f"{table} is damaged" in err and "--verify" in err and "Traceback" not in err


def test_a_killed_writes_temporary_is_ignored_then_removed(tmp_path, cli):
    out = tmp_path / "out"
    args = ["discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", 2, "--draws", 100, "--shard-size", 50,
            "--out", out]
    assert cli(*args)[0] == 0
    (shard, _) = launcher.shard_files(out)
    half = shard.with_name(f".tmp-dead-{shard.name}")
    half.write_bytes(shard.read_bytes()[:50])           # what a launcher killed mid-write leaves
    (out / "discrepancy" / "vanilla-normal-k2-seed0.parquet").unlink()
    shard.unlink()
    code, stdout, _ = cli(*args)
    assert code == 0 and "1 shard(s) computed, 1 reused" in stdout
    assert not half.exists() and shard.exists()
