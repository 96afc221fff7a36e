"""The Parquet store: where a sweep's files live and how they are committed.

Layout of an output directory ``OUT`` (a local path or a pyarrow filesystem URI such as
``s3://bucket/prefix`` or ``file:///abs/path``)::

    OUT/<table>/<group>.parquet                   committed results, read by pandas
    OUT/_shards/<job>/<group>/<shard id>.parquet  finished shards, kept apart from the tables
    OUT/_shards/<job>/<group>/<shard id>.ckpt     the last checkpoint of an unfinished shard
    OUT/_sweeps/<spec hash>.json                  every sweep launched on OUT, for `status`
    OUT/_lock, OUT/_lock.json                     the launcher writing OUT now (lock, holder)

A file is committed by writing it under a temporary name beginning with '.' (which
pyarrow and pandas ignore) and renaming it, so a crash never leaves a half-written file
that counts as done. On object stores, where an object appears whole when its upload
completes, files are written in place.
"""
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional

import filelock
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import SweepError, UsageError

META_KEY = b"lksweep"
# On object stores, a lock object that cannot be read yet is being written by a launcher that
# just created it; only one older than this is taken for a leftover.
LOCK_GRACE_S = 10.0


class Store:
    def __init__(self, out: str):
        if not isinstance(out, str) or not out.strip():
            raise UsageError("--out: expected a directory path or a URI such as s3://bucket/prefix")
        self.uri = out
        if "://" in out:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(out)
            except (pa.ArrowInvalid, OSError, ValueError) as e:
                raise UsageError(f"--out: cannot open {out!r}: {e}") from None
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(out)
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def table_file(self, table: str, group: str) -> str:
        return self.path(table, f"{group}.parquet")

    def shard_file(self, job: str, group: str, shard_id: str) -> str:
        return self.path("_shards", job, group, f"{shard_id}.parquet")

    def checkpoint_file(self, job: str, group: str, shard_id: str) -> str:
        return self.path("_shards", job, group, f"{shard_id}.ckpt")

    def shard_dir(self, job: str, group: str) -> str:
        return self.path("_shards", job, group)

    def display(self, path: str = "") -> str:
        """A path as the user should type it (the URI prefix kept for remote stores)."""
        path = path or self.root
        if self.is_local:
            return path
        scheme = self.uri.split("://", 1)[0]
        return f"{scheme}://{path}"

    # ------------------------------------------------------------------ checks
    def check_writable(self) -> None:
        """Create OUT if needed and prove a file can be written there; UsageError if not."""
        probe = self.path(f".probe-{uuid.uuid4().hex}")
        try:
            info = self.fs.get_file_info(self.root)
            if info.type == pafs.FileType.File:
                raise UsageError(f"--out: {self.display()} is a file, expected a directory")
            self.fs.create_dir(self.root, recursive=True)
            with self.fs.open_output_stream(probe) as f:
                f.write(b"ok")
            self.fs.delete_file(probe)
        except UsageError:
            raise
        except (OSError, pa.ArrowException) as e:
            raise UsageError(f"--out: cannot write to {self.display()} ({_reason(e)}); choose a writable directory") from None

    # ------------------------------------------------------------------ files
    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def list_files(self, directory: str, suffix: str = ".parquet") -> List[str]:
        """Names (not paths) of the committed files directly in ``directory``."""
        sel = pafs.FileSelector(directory, allow_not_found=True)
        return sorted(i.base_name for i in self.fs.get_file_info(sel)
                      if i.type == pafs.FileType.File and i.base_name.endswith(suffix)
                      and not i.base_name.startswith((".", "_")))

    def list_dirs(self, directory: str) -> List[str]:
        sel = pafs.FileSelector(directory, allow_not_found=True)
        return sorted(i.base_name for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.Directory)

    def write_table(self, path: str, table: pa.Table, meta: Dict) -> None:
        """Commit ``table`` at ``path`` with ``meta`` in its Parquet metadata, atomically."""
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write_bytes(path, sink.getvalue().to_pybytes())

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` atomically (:func:`atomic_write`)."""
        atomic_write(self.fs, path, data)

    def read_bytes(self, path: str) -> Optional[bytes]:
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except (FileNotFoundError, pa.ArrowException):
            return None

    def read_table(self, path: str) -> pa.Table:
        return pq.read_table(path, filesystem=self.fs)

    def read_meta(self, path: str) -> Dict:
        """The lksweep metadata of a committed file (only its footer is read)."""
        md = pq.read_metadata(path, filesystem=self.fs).metadata or {}
        return json.loads(md[META_KEY]) if META_KEY in md else {}

    def remove_temporaries(self) -> int:
        """Delete the temporary files of writes that a killed launcher never finished (they
        never counted as done); call only while holding the lock. Returns how many. Object
        stores get no temporaries (objects appear whole), so they are not listed."""
        if not self.is_local:
            return 0
        sel = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        stale = [i.path for i in self.fs.get_file_info(sel)
                 if i.type == pafs.FileType.File and i.base_name.startswith(".tmp-")]
        for path in stale:
            self.fs.delete_file(path)
        return len(stale)

    def delete(self, path: str) -> None:
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(path)

    def write_json(self, path: str, obj: Dict) -> None:
        self.write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())

    def read_json(self, path: str) -> Optional[Dict]:
        try:
            with self.fs.open_input_stream(path) as f:
                return json.loads(f.read())
        except (FileNotFoundError, pa.ArrowException, json.JSONDecodeError):
            return None

    # ------------------------------------------------------------------ lock
    def acquire_lock(self) -> "Lock":
        """Claim OUT for this launcher; SweepError when another launcher holds it.

        A local OUT is locked with an OS file lock (``filelock``) on ``OUT/_lock``, which the
        kernel releases when its holder dies, however it dies: taking over a dead launcher's
        lock is atomic, with no stale-lock guessing. ``OUT/_lock.json`` says who holds it.
        Object stores have no such lock: there the claim is best effort (check, then write).
        """
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), "token": uuid.uuid4().hex}
        info = self.path("_lock.json")
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
            flock = filelock.FileLock(self.path("_lock"))
            try:
                flock.acquire(timeout=0)
            except filelock.Timeout:
                raise SweepError(f"{self.display()} is being written by another launcher"
                                 f"{_who(self.read_json(info))}; wait for it to finish or stop it") from None
            self.write_json(info, me)
            return Lock(me, flock)
        for _ in range(2):
            if self._create_exclusive(info, me):
                return Lock(me, None)
            held = self.read_json(info)
            if held is None and time.time() - self.mtime(info) < LOCK_GRACE_S:
                raise SweepError(f"{self.display()} is being claimed by another launcher right now; "
                                 f"wait for it to finish or stop it")
            if held and _alive(held):
                raise SweepError(f"{self.display()} is being written by another launcher{_who(held)}; wait for "
                                 f"it to finish or stop it (a launcher that died on another host leaves "
                                 f"{self.display(info)} behind: delete it)")
            self.delete(info)  # the holder is dead (or left an unreadable lock long ago): take over
        raise SweepError(f"could not take the lock {self.display(info)}; another launcher is starting")

    def release_lock(self, lock: "Lock") -> None:
        info = self.path("_lock.json")
        held = self.read_json(info)
        if held and held.get("token") == lock.holder["token"]:
            self.delete(info)
        if lock.flock is not None:
            lock.flock.release()

    def writer(self) -> Optional[Dict]:
        """The launcher writing OUT now ({host, pid, since}), or None. For a local OUT a
        leftover ``_lock.json`` whose file lock nobody holds names no writer."""
        held = self.read_json(self.path("_lock.json"))
        if not held or not self.is_local:
            return held
        probe = filelock.FileLock(self.path("_lock"))
        try:
            probe.acquire(timeout=0)
        except filelock.Timeout:
            return held
        probe.release()
        return None

    def mtime(self, path: str) -> float:
        mtime = self.fs.get_file_info(path).mtime
        return mtime.timestamp() if mtime else 0.0

    def _create_exclusive(self, path: str, obj: Dict) -> bool:
        # Object stores have no exclusive create here: best effort, check then write.
        if self.exists(path):
            return False
        self.write_json(path, obj)
        return True


@dataclass
class Lock:
    holder: Dict
    flock: Optional[filelock.FileLock]


def atomic_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` so that no reader ever sees part of it: on a local disk under
    a temporary name beginning with '.' (which pyarrow and pandas ignore), fsynced, then
    renamed; on object stores, where an object appears whole when its upload completes, in
    place."""
    directory, name = path.rsplit("/", 1)
    fs.create_dir(directory, recursive=True)
    if not isinstance(fs, pafs.LocalFileSystem):
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    tmp = f"{directory}/.tmp-{uuid.uuid4().hex}-{name}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _who(held: Optional[Dict]) -> str:
    if not held:
        return ""
    return f" (pid {held['pid']} on {held['host']}, since {time.ctime(held['since'])})"


def _alive(lock: Dict) -> bool:
    if lock.get("host") != socket.gethostname():
        return True  # cannot tell from here: assume a launcher elsewhere is alive
    try:
        os.kill(int(lock["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).splitlines()[0]
