"""The store's backends and locks, each on its own: a process killed in the middle of a commit
leaves no file that counts as done, on a local disk and on an object store (a real
S3-compatible server); listings skip temporaries; links inside a local OUT are refused; the
lock lets one launcher in at a time and tells who holds it."""
import json
import os
import socket
import subprocess
import sys

import pytest

from sweeps import lock as lock_module
from sweeps.errors import SweepError, UsageError
from sweeps.lock import ObjectStoreLock, OsFileLock
from sweeps.store import Store

FILES = {"t/a.parquet": b"a" * 1000, "t/b.parquet": b"b" * 2000, "u/c.parquet": b"c" * 3000}

# Commits FILES to OUT (argv[1]) with the process killed (os._exit, so no clean-up runs) at the
# point named by argv[2].
CRASH = """
import os, sys
from sweeps import backends
from sweeps.store import Store
FILES = {files!r}
where = sys.argv[2]
if where == "before renames":
    backends._sync = lambda paths: os._exit(9)
elif where == "during renames":
    replace, done = os.replace, []
    def one_then_die(a, b):
        if done:
            os._exit(9)
        done.append(replace(a, b))
    os.replace = one_then_die
elif where == "during an upload":
    put = backends._put
    def half_of_b(fs, path, data):
        if path.endswith("b.parquet"):
            f = fs.open_output_stream(path)   # held: a stream dropped is closed, which completes it
            f.write(data[: len(data) // 2])
            os._exit(9)
        put(fs, path, data)
    backends._put = half_of_b
store = Store(sys.argv[1])
store.commit([(store.path(rel), data) for rel, data in FILES.items()])
"""


@pytest.fixture(params=["local", "s3"])
def out(request, tmp_path):
    """OUT on each backend: a local directory, or a prefix on the S3 test server."""
    if request.param == "local":
        return str(tmp_path / "out")
    return request.getfixturevalue("s3").uri(f"store-{request.node.name}".replace("[", "-").replace("]", ""))


def crash(out: str, where: str) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH.format(files=FILES), out, where], capture_output=True, text=True)
    assert done.returncode == 9, done.stderr


def committed(store: Store):
    """Every file that counts as done, with its bytes."""
    listed = {rel for d in ("t", "u") for rel in (f"{d}/{n}" for n in store.list_files(store.path(d)))}
    return {rel: store.read_bytes(store.path(rel)) for rel in listed}


@pytest.mark.parametrize("where", ["before renames", "during renames"])
def test_a_crash_in_a_local_commit_leaves_no_file_that_counts_as_done_but_whole_ones(tmp_path, where):
    out = str(tmp_path / "out")
    crash(out, where)
    store = Store(out)
    done = committed(store)
    assert {rel: FILES[rel] for rel in done} == done, "a listed file is whole"
    assert len(done) == (0 if where == "before renames" else 1)
    left = store.backend.temporaries()
    assert len(left) == len(FILES) - len(done) and all(os.path.basename(p).startswith(".tmp-") for p in left)
    assert store.remove_temporaries() == len(left)
    assert not store.backend.temporaries() and committed(store) == done


def test_a_crash_during_an_upload_leaves_no_object_that_counts_as_done_but_whole_ones(s3):
    out = s3.uri("store-crashed")
    crash(out, "during an upload")
    store = Store(out)
    done = committed(store)
    assert "t/b.parquet" not in done, "a half-uploaded object does not exist"
    assert {rel: FILES[rel] for rel in done} == done
    assert store.remove_temporaries() == 0


def test_a_commit_replaces_files_and_returns_their_times(out):
    store = Store(out)
    store.commit([(store.path(rel), b"old") for rel in FILES])
    times = store.commit([(store.path(rel), data) for rel, data in FILES.items()])
    assert committed(store) == FILES
    scanned = store.scan(store.root, recursive=True)
    if store.is_local:
        assert times == [scanned[rel].mtime_ns for rel in FILES]
    else:
        assert times == [None] * len(FILES)
    assert store.commit([]) == []


def test_listing_skips_temporaries_and_names_beginning_with_a_dot(out):
    store = Store(out)
    store.commit([(store.path("t", "a.parquet"), b"a")])
    with store.fs.open_output_stream(store.path("t", ".tmp-0123456789ab-b.parquet.tmp")) as f:
        f.write(b"half")
    with store.fs.open_output_stream(store.path("t", ".hidden.parquet")) as f:
        f.write(b"x")
    assert list(store.scan(store.path("t"))) == ["t/a.parquet"]
    assert store.list_files(store.path("t")) == ["a.parquet"]
    assert list(store.scan(store.root, recursive=True)) == ["t/a.parquet"]


def test_a_damaged_file_is_set_aside_under_damaged(out):
    store = Store(out)
    store.commit([(store.path("t", "a.parquet"), b"bad")])
    target = store.set_aside(store.path("t", "a.parquet"))
    assert target.startswith(store.path("_damaged", "t", "a.parquet."))
    assert store.read_bytes(target) == b"bad" and not store.list_files(store.path("t"))
    assert store.set_aside(store.path("t", "a.parquet")) == "", "a file gone already is not moved"


def test_display_paths_keep_the_scheme_and_drop_the_query(s3, tmp_path):
    remote = Store(s3.uri("shown"))
    assert remote.display() == f"s3://{s3.bucket}/shown" and not remote.is_local
    assert remote.display(remote.path("t")) == f"s3://{s3.bucket}/shown/t"
    local = Store(str(tmp_path / "out"))
    assert local.display() == str(tmp_path / "out") and local.is_local
    assert Store(f"file://{tmp_path}/out").display() == str(tmp_path / "out")


@pytest.mark.parametrize("out", ["", "s3://", 3])
def test_an_unusable_out_is_refused_naming_the_option(out):
    with pytest.raises(UsageError, match="--out"):
        Store(out)


def test_links_inside_a_local_out_are_refused_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "t").mkdir(parents=True)
    (elsewhere / "t" / "a.parquet").write_bytes(b"theirs")
    store = Store(str(tmp_path / "out"))
    store.check_writable()
    os.symlink(elsewhere / "t", tmp_path / "out" / "t")
    with pytest.raises(UsageError, match="is a symbolic link"):
        store.scan(store.root, recursive=True)
    with pytest.raises(UsageError, match="is a symbolic link"):
        store.commit([(store.path("t", "a.parquet"), b"ours")])
    with pytest.raises(UsageError, match="is a symbolic link"):
        store.set_aside(store.path("t", "a.parquet"))
    with pytest.raises(UsageError, match="is a symbolic link"):
        store.remove_temporaries()
    assert (elsewhere / "t" / "a.parquet").read_bytes() == b"theirs"


def record(store: Store, pid: int, token: str = "theirs") -> None:
    store.write_json(store.path("_lock.json"), {"host": socket.gethostname(), "pid": pid, "since": 0, "token": token})


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", ""])
    p.wait()
    return p.pid


def test_the_os_file_lock_lets_one_launcher_in_and_ignores_a_dead_ones_record(tmp_path):
    store = Store(str(tmp_path / "out"))
    record(store, dead_pid())
    assert store.writer() is None, "a record whose file lock nobody holds names no writer"
    lock = store.acquire_lock()
    assert isinstance(lock, OsFileLock)
    assert store.writer() == {**lock.holder, "alive": True}
    with pytest.raises(SweepError, match=f"being written by another launcher \\(pid {os.getpid()} on"):
        Store(str(tmp_path / "out")).acquire_lock()
    store.release_lock(lock)
    assert store.writer() is None and not os.path.exists(store.path("_lock.json"))
    store.release_lock(store.acquire_lock())


def test_the_object_store_lock_is_taken_over_only_from_a_dead_launcher(s3, monkeypatch):
    store = Store(s3.uri("locked-store"))
    lock = store.acquire_lock()
    assert isinstance(lock, ObjectStoreLock) and store.writer() == {**lock.holder, "alive": True}
    with pytest.raises(SweepError, match="delete it"):
        store.acquire_lock()
    store.release_lock(lock)
    assert store.writer() is None

    record(store, dead_pid())
    lock = store.acquire_lock()          # the holder is gone: taken over
    assert json.loads(store.read_bytes(store.path("_lock.json")))["token"] == lock.holder["token"]
    record(store, os.getpid(), token="later")
    store.release_lock(lock)             # a record that is no longer ours stays
    assert store.read_json(store.path("_lock.json"))["token"] == "later"

    store.write_bytes(store.path("_lock.json"), b"{half")
    with pytest.raises(SweepError, match="being claimed by another launcher right now"):
        store.acquire_lock()
    monkeypatch.setattr(lock_module, "LOCK_GRACE_S", -1.0)   # as if written long ago: a leftover
    store.release_lock(store.acquire_lock())
    assert store.writer() is None
