"""Where OUT's bytes live: a local filesystem or an object store, behind one interface.

:class:`sweeps.store.Store` says what a sweep's files are; a :class:`Backend` says how the
filesystem under them commits a batch, lists a directory, moves a file and claims OUT. The two
differ in what they can promise cheaply:

- :class:`LocalBackend` (a local path or ``file://``): a file is written under a temporary name
  beginning with '.' and ending in '.tmp' (which pyarrow, pandas and DuckDB's ``*.parquet`` globs
  skip), the batch is flushed with one ``syncfs`` (one ``fsync`` per file where the system has no
  ``syncfs``), then renamed into place and the renames flushed the same way. It follows no
  symbolic link inside OUT. The lock is an OS file lock (:class:`sweeps.lock.OsFileLock`).
- :class:`ObjectStoreBackend` (``s3://`` and the other pyarrow URIs): an object appears whole
  when its upload completes, so files are uploaded in place, several at a time, and there are no
  temporaries and no links. The lock is best effort (:class:`sweeps.lock.ObjectStoreLock`).

Either way a crash never leaves a half-written file that counts as done.
"""
import ctypes
import os
import sys
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.fs as pafs

from .errors import UsageError
from .lock import Lock, ObjectStoreLock, OsFileLock

# Uploads in flight at once when committing a batch to an object store.
UPLOADS = 16
TMP_PREFIX, TMP_SUFFIX = ".tmp-", ".tmp"


def open_backend(out: str) -> "Backend":
    """The backend of ``--out``: a local path, or a pyarrow filesystem URI; UsageError naming
    ``--out`` when it cannot be opened."""
    if not isinstance(out, str) or not out.strip():
        raise UsageError("--out: expected a directory path or a URI such as s3://bucket/prefix")
    if "://" not in out:
        return LocalBackend(out, pafs.LocalFileSystem(), os.path.abspath(out))
    try:
        fs, root = pafs.FileSystem.from_uri(out)
    except (pa.ArrowInvalid, OSError, ValueError) as e:
        raise UsageError(f"--out: cannot open {out!r}: {e}") from None
    if isinstance(fs, pafs.LocalFileSystem):
        return LocalBackend(out, fs, root)
    return ObjectStoreBackend(out, fs, root)


class Backend(ABC):
    """The filesystem under OUT. Paths are absolute within ``fs`` ('/'-separated, no scheme)
    and lie under ``root``."""

    local: bool   # whether OUT is on a local disk (its paths are OS paths)

    def __init__(self, uri: str, fs: pafs.FileSystem, root: str):
        self.uri, self.fs, self.root = uri, fs, root.rstrip("/")

    def display(self, path: str) -> str:
        """``path`` as the user should type it."""
        return path

    @abstractmethod
    def is_out(self, info: pafs.FileInfo) -> bool:
        """Whether ``info`` (of OUT itself) is something OUT can be read from."""

    @abstractmethod
    def refuse_link(self, path: str) -> None:
        """UsageError when ``path`` or a directory between OUT and it is a symbolic link."""

    @abstractmethod
    def listing(self, directory: str, recursive: bool) -> List[pafs.FileInfo]:
        """What ``directory`` holds (with ``recursive``, everything below it), temporaries
        included; nothing when it does not exist."""

    @abstractmethod
    def commit(self, files: Sequence[Tuple[str, bytes]]) -> List[Optional[int]]:
        """Write every (path, bytes) of a non-empty batch so that each file is either whole or
        absent, never partly written, whatever crash interrupts it; when it returns, the batch
        is durable. Returns each file's modification time in ns, or None where only a listing
        tells it."""

    @abstractmethod
    def move(self, path: str, target: str) -> None:
        """Move the file ``path`` to ``target`` (its directory made as needed);
        FileNotFoundError when ``path`` is gone."""

    @abstractmethod
    def temporaries(self) -> List[str]:
        """The temporary files that unfinished commits left anywhere in OUT."""

    @abstractmethod
    def lock(self, store) -> Lock:
        """A claim on OUT for one launcher (not taken yet) through ``store``."""


class LocalBackend(Backend):
    """OUT on a local disk: temporaries, one syncfs, renames, one more syncfs; no links."""

    local = True

    def __init__(self, uri: str, fs: pafs.LocalFileSystem, root: str):
        super().__init__(uri, fs, root)
        self._made: set = set()   # directories known to exist (one makedirs each per launch)

    def is_out(self, info: pafs.FileInfo) -> bool:
        return info.type == pafs.FileType.Directory

    def refuse_link(self, path: str) -> None:
        """Following a link inside OUT would read, move or delete what lies elsewhere."""
        if not path.startswith(self.root + "/"):
            return
        at = self.root
        for part in path[len(self.root) + 1:].split("/"):
            at = f"{at}/{part}"
            if os.path.islink(at):
                raise UsageError(_link_error(self, at))

    def listing(self, directory: str, recursive: bool) -> List[pafs.FileInfo]:
        """UsageError at the first symbolic link instead of following it."""
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

    def commit(self, files: Sequence[Tuple[str, bytes]]) -> List[Optional[int]]:
        """A crash before the renames leaves only temporaries (which count for nothing and
        :meth:`temporaries` finds); one during them leaves each file whole or absent. An error
        deletes this batch's temporaries; renamed files stay."""
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

    def move(self, path: str, target: str) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        self.fs.move(path, target)

    def temporaries(self) -> List[str]:
        """Walking all of OUT, UsageError at a symbolic link anywhere in it."""
        return [i.path for i in self.listing(self.root, recursive=True)
                if i.type == pafs.FileType.File and i.base_name.startswith(TMP_PREFIX)]

    def lock(self, store) -> Lock:
        return OsFileLock(store)


class ObjectStoreBackend(Backend):
    """OUT on an object store: whole objects uploaded in place, several at a time."""

    local = False

    def __init__(self, uri: str, fs: pafs.FileSystem, root: str):
        super().__init__(uri, fs, root)
        if not self.root:
            raise UsageError(f"--out: {uri.split('?', 1)[0]!r} names no bucket; expected e.g. s3://bucket/prefix")

    def display(self, path: str) -> str:
        """The URI's scheme kept (its query, with endpoints and keys, left out)."""
        return f"{self.uri.split('://', 1)[0]}://{path}"

    def is_out(self, info: pafs.FileInfo) -> bool:
        return info.type != pafs.FileType.NotFound    # a prefix is not a directory of its own

    def refuse_link(self, path: str) -> None:
        """Object stores have no links."""

    def listing(self, directory: str, recursive: bool) -> List[pafs.FileInfo]:
        """One listing, by pages of 1000 keys."""
        return self.fs.get_file_info(pafs.FileSelector(directory, recursive=recursive, allow_not_found=True))

    def commit(self, files: Sequence[Tuple[str, bytes]]) -> List[Optional[int]]:
        """An object appears whole when its upload completes and not before: a crash leaves
        each file whole or absent, though the batch may be partly uploaded."""
        with ThreadPoolExecutor(min(UPLOADS, len(files))) as pool:
            list(pool.map(lambda f: _put(self.fs, *f), files))
        return [None] * len(files)

    def move(self, path: str, target: str) -> None:
        # A copy of a missing key fails with a plain OSError: ask first (damaged files are rare).
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(path)
        self.fs.move(path, target)

    def temporaries(self) -> List[str]:
        """None: objects appear whole, so nothing is listed."""
        return []

    def lock(self, store) -> Lock:
        return ObjectStoreLock(store)


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


def _link_error(backend: Backend, path: str) -> str:
    return (f"{backend.display(path)} is a symbolic link; lksweep follows no link inside its output directory "
            f"(it would read, move or delete files elsewhere): remove the link, or move what it points to into "
            f"{backend.display(backend.root)}")
