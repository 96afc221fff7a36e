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
    OUT/_lock, OUT/_lock.json                     the launcher writing OUT now (sweeps.lock)

Files are committed in batches (:meth:`Store.commit`): a crash never leaves a half-written file
that counts as done, and a finished batch survives a power loss. How depends on the filesystem
(temporaries, one syncfs and renames on a local disk; whole objects on object stores): that is
the backend's (:mod:`sweeps.backends`). Names beginning with '.' are temporaries, never listed.
"""
import json
import time
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.fs as pafs

from .backends import open_backend
from .errors import UsageError
from .lock import Lock


@dataclass(frozen=True)
class FileStat:
    """A listed file: its size in bytes and modification time (ns since the epoch)."""

    size: int
    mtime_ns: Optional[int]


class Store:
    """OUT, a local path or a pyarrow filesystem URI (UsageError naming ``--out`` when it
    cannot be opened). Paths are absolute within ``fs``, '/'-separated, below ``root``."""

    def __init__(self, out: str):
        self.backend = open_backend(out)
        self.uri, self.fs, self.root = out, self.backend.fs, self.backend.root

    @property
    def is_local(self) -> bool:
        """Whether OUT is on a local disk (its paths are OS paths)."""
        return self.backend.local

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
        """A path (default OUT) as the user should type it (the URI scheme kept for object stores)."""
        return self.backend.display(path or self.root)

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
        if not self.backend.is_out(info):
            raise UsageError(f"{what}: {self.display()} is not a directory")

    # ------------------------------------------------------------------ links
    def refuse_link(self, path: str) -> None:
        """UsageError when ``path`` or a directory between OUT and it is a symbolic link: lksweep
        follows no link inside OUT (it would read, move or delete what lies elsewhere)."""
        self.backend.refuse_link(path)

    # ------------------------------------------------------------------ listing
    def scan(self, directory: str, recursive: bool = False) -> Dict[str, FileStat]:
        """The files under ``directory``, by path relative to OUT: one listing (object stores
        return it by pages of 1000 keys). Temporaries (names beginning with '.') are skipped;
        on a local disk a symbolic link is refused (UsageError), not followed."""
        return {self.rel(i.path): FileStat(i.size, i.mtime_ns) for i in self.backend.listing(directory, recursive)
                if i.type == pafs.FileType.File and not i.base_name.startswith(".")}

    def list_files(self, directory: str, suffix: str = ".parquet") -> List[str]:
        """Names (not paths) of the committed files directly in ``directory``."""
        return sorted(p.rsplit("/", 1)[-1] for p in self.scan(directory)
                      if p.endswith(suffix) and not p.rsplit("/", 1)[-1].startswith("_"))

    def list_dirs(self, directory: str) -> List[str]:
        """Names of the directories directly in ``directory`` (temporary ones included)."""
        return sorted(i.base_name for i in self.backend.listing(directory, False) if i.type == pafs.FileType.Directory)

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def mtime(self, path: str) -> float:
        """Modification time of ``path`` in seconds since the epoch; 0.0 when unknown."""
        mtime = self.fs.get_file_info(path).mtime
        return mtime.timestamp() if mtime else 0.0

    # ------------------------------------------------------------------ files
    def commit(self, files: Sequence[Tuple[str, bytes]]) -> List[Optional[int]]:
        """Write every (path, bytes) of ``files`` as one batch, replacing what is there. Each
        file is whole or absent whatever crash interrupts the batch (never half-written), and
        when it returns the whole batch is durable. Returns each file's modification time in ns
        (None on object stores, where the listing tells it later)."""
        if not files:
            return []
        return self.backend.commit(files)

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
        """Delete the file or directory (with all it holds) ``path``, if there is one; a link on
        the way is refused (UsageError)."""
        self.refuse_link(path)
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(path)

    def set_aside(self, path: str) -> str:
        """Move a damaged file under OUT/_damaged/ (never read again, kept for inspection);
        returns where it went, or "" when it was gone already. A link on the way is refused."""
        target = self.path("_damaged", f"{self.rel(path)}.{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}")
        self.refuse_link(path)
        self.refuse_link(target)
        try:
            self.backend.move(path, target)
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
        """Delete the temporary files of commits that a killed launcher never finished (they
        never counted as done); call only while holding the lock. Returns how many. On a local
        disk it walks all of OUT and refuses a symbolic link anywhere in it (UsageError) before
        deleting; object stores have none."""
        stale = self.backend.temporaries()
        for path in stale:
            self.fs.delete_file(path)
        return len(stale)

    # ------------------------------------------------------------------ lock
    def acquire_lock(self) -> Lock:
        """Claim OUT for this launcher (see :mod:`sweeps.lock`); SweepError when another
        launcher holds it. Give it back with :meth:`release_lock`."""
        return self.backend.lock(self).acquire()

    def release_lock(self, lock: Lock) -> None:
        lock.release()

    def writer(self) -> Optional[Dict]:
        """The launcher that holds OUT's lock ({host, pid, since, alive}), or None. ``alive``
        is False when that launcher is gone (its process no longer exists), True when it
        runs, None when it cannot be told (another host). For a local OUT a leftover
        ``_lock.json`` whose file lock nobody holds names no writer."""
        return self.backend.lock(self).writer()


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e).splitlines()[0]
