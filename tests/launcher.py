"""Launchers as real processes, for tests that kill or interrupt them.

A launcher runs in its own session, so that it and the Ray processes it starts can be
signalled as one process group, as a terminal would, and nothing lingers afterwards."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start(args, out, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "sweeps.cli", *map(str, args), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)


def shard_files(out):
    """Committed shard files (a temporary file of an unfinished write starts with '.')."""
    return sorted(p for p in Path(out, "_shards").glob("*/*/*.parquet") if not p.name.startswith("."))


def wait_for_shards(proc, out, n, timeout=120.0):
    """Wait until ``out`` holds at least ``n`` finished shards; False if the launcher ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(shard_files(out)) >= n:
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    raise TimeoutError(f"fewer than {n} shards after {timeout} s")


def killed_after(args, out, n):
    """Start a launcher, SIGKILL it (and what it started) once ``out`` holds ``n`` finished
    shards; returns the shard files it left."""
    proc = start(args, out)
    try:
        assert wait_for_shards(proc, out, n)
    finally:
        kill_group(proc)
        end(proc)
    return shard_files(out)


def kill_group(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def end(proc, timeout=60):
    """Wait for the launcher, then end whatever its session left running."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    return proc.returncode, out, err


HOLD_LOCK = """
import sys, time
from sweeps.store import Store
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
try:
    lock = Store(sys.argv[1]).acquire_lock()
except Exception as e:
    print("refused", e, flush=True)
    sys.exit(0)
print("acquired", flush=True)
time.sleep(float(sys.argv[3]))
"""


def hold_lock(out, start=0.0, hold=60.0):
    """A process that asks for the lock of ``out`` at time ``start`` and holds it ``hold``
    seconds; its first line says "acquired" or "refused"."""
    return subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out), str(start), str(hold)],
                            stdout=subprocess.PIPE, text=True)
