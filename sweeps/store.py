"""The store: where a sweep's files live, how they are committed, listed and set aside.

Layout of an output directory ``OUT`` (a local path or a pyarrow filesystem URI such as
``s3://bucket/prefix`` or ``file:///abs/path``)::

    OUT/<table>/<group>.parquet                   committed results, read by pandas
    OUT/<table>/part-<gen>-<n>.parquet            many groups' rows, after `lksweep compact`
    OUT/_shards/<job>/<group>/<shard id>.parquet  finished shards, kept apart from the tables
    OUT/_shards/<job>/<group>/<shard id>.ckpt     the last checkpoint of an unfinished shard
    OUT/_index/*.parquet                          what each committed file holds (sweeps.index)
    OUT/_sweeps/<spec hash>.json                  every sweep launched on OUT, for `status`
    OUT/_damaged/...                              files found damaged, set aside (never read)
    OUT/_lock, OUT/_lock.json                     the launcher writing OUT now (lock, holder)

Files are committed in batches (:meth:`Store.commit`). On a local disk each file is written
under a temporary name beginning with '.' and ending in '.tmp' (which pyarrow, pandas and
DuckDB's ``*.parquet`` globs skip), the batch is flushed to disk with one ``syncfs`` (one
``fsync`` per file where the system has no ``syncfs``), every file is renamed into place and
the renames are flushed the same way (a second ``syncfs``, or one ``fsync`` per directory): a
crash never leaves a half-written file that counts as done, and a finished batch survives a
power loss. On object stores an object appears whole when its
upload completes, so files are written in place, several at a time.
"""
import ctypes
import json
import os
import socket
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import filelock
import pyarrow as pa
import pyarrow.fs as pafs

from .errors import SweepError, UsageError

# On object stores, a lock object that cannot be read yet is being written by a launcher that
# just created it; only one older than this is taken for a leftover.
LOCK_GRACE_S = 10.0
# Uploads in flight at once when committing a batch to an object store.
UPLOADS = 16
TMP_PREFIX, TMP_SUFFIX = ".tmp-", ".tmp"


@dataclass(frozen=True)
class FileStat:
    """A listed file: its size in bytes and modification time (ns since the epoch)."""

    size: int
    mtime_ns: Optional[int]


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
        if not self.is_local and not self.root:
            raise UsageError(f"--out: {out.split('?', 1)[0]!r} names no bucket; expected e.g. s3://bucket/prefix")
        self._made: set = set()

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def rel(self, path: str) -> str:
        return path[len(self.root) + 1:]

    def table_file(self, table: str, name: str) -> str:
        return self.path(table, f"{name}.parquet")

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

    def check_readable(self, what: str = "DIR") -> None:
        """UsageError unless OUT is an existing directory (a prefix, on object stores)."""
        try:
            info = self.fs.get_file_info(self.root)
        except (OSError, pa.ArrowException) as e:
            raise UsageError(f"{what}: cannot read {self.display()} ({_reason(e)})") from None
        if info.type == pafs.FileType.NotFound or (self.is_local and info.type != pafs.FileType.Directory):
            raise UsageError(f"{what}: {self.display()} is not a directory")

    # ------------------------------------------------------------------ listing
    # ------------------------------------------------------------------ links
    def refuse_link(self, path: str) -> None:
        """UsageError when ``path`` or a directory between OUT and it is a symbolic link: lksweep
        follows no link inside OUT (it would read, move or delete what lies elsewhere)."""
        if not self.is_local or not path.startswith(self.root + "/"):
            return
        at = self.root
        for part in self.rel(path).split("/"):
            at = f"{at}/{part}"
            if os.path.islink(at):
                raise UsageError(_link_error(self, at))

    def _listing(self, directory: str, recursive: bool) -> List[pafs.FileInfo]:
        """What ``directory`` holds (with ``recursive``, everything below it); on a local disk
        UsageError at the first symbolic link instead of following it."""
        if not self.is_local:
            sel = pafs.FileSelector(directory, recursive=recursive, allow_not_found=True)
            return self.fs.get_file_info(sel)
        self.refuse_link(directory)
        out, todo = [], [directory]
        while todo:
            try:
                with os.scandir(todo.pop()) as entries:
                    entries = list(entries)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in entries:
                if e.is_symlink():
                    raise UsageError(_link_error(self, e.path))
                kind = (pafs.FileType.Directory if e.is_dir(follow_symlinks=False) else
                        pafs.FileType.File if e.is_file(follow_symlinks=False) else pafs.FileType.Unknown)
                if kind == pafs.FileType.Directory and recursive:
                    todo.append(e.path)
                st = e.stat(follow_symlinks=False)
                out.append(pafs.FileInfo(e.path, kind, size=st.st_size, mtime_ns=st.st_mtime_ns))
        return out

    def scan(self, directory: str, recursive: bool = False) -> Dict[str, FileStat]:
        """The files under ``directory``, by path relative to OUT: one listing (object stores
        return it by pages of 1000 keys). Temporaries (names beginning with '.') are skipped."""
        return {self.rel(i.path): FileStat(i.size, i.mtime_ns) for i in self._listing(directory, recursive)
                if i.type == pafs.FileType.File and not i.base_name.startswith(".")}

    def list_files(self, directory: str, suffix: str = ".parquet") -> List[str]:
        """Names (not paths) of the committed files directly in ``directory``."""
        return sorted(p.rsplit("/", 1)[-1] for p in self.scan(directory)
                      if p.endswith(suffix) and not p.rsplit("/", 1)[-1].startswith("_"))

    def list_dirs(self, directory: str) -> List[str]:
        return sorted(i.base_name for i in self._listing(directory, False) if i.type == pafs.FileType.Directory)

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def mtime(self, path: str) -> float:
        mtime = self.fs.get_file_info(path).mtime
        return mtime.timestamp() if mtime else 0.0

    # ------------------------------------------------------------------ files
    def commit(self, files: Sequence[Tuple[str, bytes]]) -> List[Optional[int]]:
        """Write every (path, bytes) of ``files`` atomically, as one batch (see the module
        docstring). Returns each file's modification time in ns (None on object stores, where
        the listing tells it later)."""
        if not files:
            return []
        if not self.is_local:
            with ThreadPoolExecutor(min(UPLOADS, len(files))) as pool:
                list(pool.map(lambda f: _put(self.fs, *f), files))
            return [None] * len(files)
        tmps: List[str] = []
        try:
            for path, data in files:
                directory, name = path.rsplit("/", 1)
                if directory not in self._made:
                    self.refuse_link(directory)
                    os.makedirs(directory, exist_ok=True)
                    self._made.add(directory)
                tmp = f"{directory}/{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{name}{TMP_SUFFIX}"
                tmps.append(tmp)
                with open(tmp, "wb") as f:
                    f.write(data)
            _sync(tmps)
            for tmp, (path, _) in zip(tmps, files):
                os.replace(tmp, path)
            tmps = []
            _sync_dirs({p.rsplit("/", 1)[0] for p, _ in files})
        except FileNotFoundError:
            self._made.clear()   # a directory was removed under us (e.g. --overwrite): recreate next time
            raise
        finally:
            for tmp in tmps:
                if os.path.exists(tmp):
                    os.remove(tmp)
        return [os.stat(p).st_mtime_ns for p, _ in files]

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write one file atomically (:meth:`commit` of one)."""
        self.commit([(path, data)])

    def read_bytes(self, path: str) -> Optional[bytes]:
        """The bytes of ``path``, or None when it does not exist or cannot be read."""
        try:
            with self.fs.open_input_stream(path) as f:
                return f.read()
        except (FileNotFoundError, pa.ArrowException, OSError):
            return None

    def delete(self, path: str) -> None:
        self.refuse_link(path)
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(path)

    def set_aside(self, path: str) -> str:
        """Move a damaged file under OUT/_damaged/ (never read again, kept for inspection);
        returns where it went."""
        target = self.path("_damaged", f"{self.rel(path)}.{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}")
        self.refuse_link(path)
        self.refuse_link(target)
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            self.fs.move(path, target)
        except FileNotFoundError:
            return ""
        return target

    def write_json(self, path: str, obj: Dict) -> None:
        self.write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode())

    def read_json(self, path: str) -> Optional[Dict]:
        data = self.read_bytes(path)
        try:
            return json.loads(data) if data is not None else None
        except (ValueError, RecursionError):   # not JSON, or nested deeper than the parser goes
            return None

    def remove_temporaries(self) -> int:
        """Delete the temporary files of writes that a killed launcher never finished (they
        never counted as done); call only while holding the lock. Returns how many. Walking
        all of OUT, it refuses a symbolic link anywhere in it (UsageError) before deleting. Object
        stores get no temporaries (objects appear whole), so they are not listed."""
        if not self.is_local:
            return 0
        stale = [i.path for i in self._listing(self.root, recursive=True)
                 if i.type == pafs.FileType.File and i.base_name.startswith(TMP_PREFIX)]
        for path in stale:
            self.fs.delete_file(path)
        return len(stale)

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
            self.refuse_link(self.path("_lock"))   # the lock file is opened for writing
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
            if held and _alive(held) is not False:
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
        """The launcher that holds OUT's lock ({host, pid, since, alive}), or None. ``alive``
        is False when that launcher is gone (its process no longer exists), True when it
        runs, None when it cannot be told (another host). For a local OUT a leftover
        ``_lock.json`` whose file lock nobody holds names no writer."""
        held = self.read_json(self.path("_lock.json"))
        if not held:
            return None
        if self.is_local:
            probe = filelock.FileLock(self.path("_lock"))
            try:
                probe.acquire(timeout=0)
            except filelock.Timeout:
                return {**held, "alive": True}
            probe.release()
            return None
        return {**held, "alive": _alive(held)}

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


def _put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as f:
        f.write(data)


LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _sync(paths: Sequence[str]) -> None:
    """Flush ``paths`` (files or directories, all on one filesystem) to disk: one syncfs(2) of
    their filesystem where there is one (a whole batch at once), else one fsync each."""
    if LIBC is not None and hasattr(LIBC, "syncfs") and paths:
        fd = os.open(os.path.dirname(paths[0]), os.O_RDONLY)
        try:
            if LIBC.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    fsync_each(paths)


def fsync_each(paths: Sequence[str]) -> None:
    """One fsync per file or directory."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sync_dirs(directories) -> None:
    """Make the renames into ``directories`` durable: one more syncfs where there is one, else
    one fsync per directory."""
    _sync(sorted(directories))


def _who(held: Optional[Dict]) -> str:
    if not held:
        return ""
    return f" (pid {held['pid']} on {held['host']}, since {time.ctime(held['since'])})"


def _alive(lock: Dict) -> Optional[bool]:
    """Whether the process named by a lock still runs: None when it is on another host."""
    if lock.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(lock["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _link_error(store: Store, path: str) -> str:
    return (f"{store.display(path)} is a symbolic link; lksweep follows no link inside its output directory "
            f"(it would read, move or delete files elsewhere): remove the link, or move what it points to into "
            f"{store.display()}")


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).splitlines()[0]
