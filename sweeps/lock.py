"""The launcher writing OUT now: one claim at a time, and who holds it.

Two files say it: ``OUT/_lock`` (local disks only), an OS file lock the kernel releases when
its holder dies, however it dies; and ``OUT/_lock.json``, the holder's record
``{host, pid, since, token}`` (``token`` tells this claim's record from a later one's).

- :class:`OsFileLock` (local disks): taking over a dead launcher's lock is atomic, with no
  stale-lock guessing; a ``_lock.json`` whose file lock nobody holds names no writer.
- :class:`ObjectStoreLock`: object stores have no such lock, so the claim is best effort
  (check, then write): a record naming a process that is gone on this host, or one unreadable
  for longer than :data:`LOCK_GRACE_S`, is taken over; a launcher that died on another host
  leaves its record for the user to delete.
"""
import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from typing import Dict, Optional

import filelock

from .errors import SweepError

# On object stores, a lock object that cannot be read yet is being written by a launcher that
# just created it; only one older than this is taken for a leftover.
LOCK_GRACE_S = 10.0


class Lock(ABC):
    """One launcher's claim on the OUT of ``store`` (a :class:`sweeps.store.Store`)."""

    def __init__(self, store):
        self.store = store
        self.info = store.path("_lock.json")
        self.holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                       "token": uuid.uuid4().hex}

    @abstractmethod
    def acquire(self) -> "Lock":
        """Claim OUT (returns self); SweepError naming the holder when another launcher holds it."""

    def release(self) -> None:
        """Give OUT up: delete ``_lock.json`` if it is still this claim's record."""
        held = self.store.read_json(self.info)
        if held and held.get("token") == self.holder["token"]:
            self.store.delete(self.info)

    @abstractmethod
    def writer(self) -> Optional[Dict]:
        """The launcher that holds OUT ({host, pid, since, token, alive}), or None. ``alive`` is
        True when it runs, False when its process is gone, None when that cannot be told
        (another host)."""

    def _refused(self, held: Optional[Dict], hint: str = "") -> SweepError:
        return SweepError(f"{self.store.display()} is being written by another launcher{_who(held)}; "
                          f"wait for it to finish or stop it{hint}")


class OsFileLock(Lock):
    """An OS file lock on ``OUT/_lock`` (``filelock``): exclusive while its holder lives."""

    def __init__(self, store):
        super().__init__(store)
        self.path = store.path("_lock")
        self._flock: Optional[filelock.FileLock] = None

    def acquire(self) -> "OsFileLock":
        os.makedirs(self.store.root, exist_ok=True)
        self.store.refuse_link(self.path)   # the lock file is opened for writing
        flock = filelock.FileLock(self.path)
        try:
            flock.acquire(timeout=0)
        except filelock.Timeout:
            raise self._refused(self.store.read_json(self.info)) from None
        self._flock = flock
        self.store.write_json(self.info, self.holder)
        return self

    def release(self) -> None:
        super().release()
        if self._flock is not None:
            self._flock.release()
            self._flock = None

    def writer(self) -> Optional[Dict]:
        """A leftover ``_lock.json`` whose file lock nobody holds names no writer."""
        held = self.store.read_json(self.info)
        if not held:
            return None
        probe = filelock.FileLock(self.path)
        try:
            probe.acquire(timeout=0)
        except filelock.Timeout:
            return {**held, "alive": True}
        probe.release()
        return None


class ObjectStoreLock(Lock):
    """``OUT/_lock.json`` alone, created if absent (check, then write: two launchers starting
    within one round trip of each other may both believe they hold it)."""

    def acquire(self) -> "ObjectStoreLock":
        store = self.store
        for _ in range(2):
            if not store.exists(self.info):
                store.write_json(self.info, self.holder)
                return self
            held = store.read_json(self.info)
            if held is None and time.time() - store.mtime(self.info) < LOCK_GRACE_S:
                raise SweepError(f"{store.display()} is being claimed by another launcher right now; "
                                 f"wait for it to finish or stop it")
            if held and alive(held) is not False:
                raise self._refused(held, f" (a launcher that died on another host leaves "
                                          f"{store.display(self.info)} behind: delete it)")
            store.delete(self.info)  # the holder is dead (or left an unreadable lock long ago): take over
        raise SweepError(f"could not take the lock {store.display(self.info)}; another launcher is starting")

    def writer(self) -> Optional[Dict]:
        held = self.store.read_json(self.info)
        return {**held, "alive": alive(held)} if held else None


def alive(holder: Dict) -> Optional[bool]:
    """Whether the process named by a lock record still runs: None when it is on another host."""
    if holder.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _who(held: Optional[Dict]) -> str:
    if not held:
        return ""
    return f" (pid {held['pid']} on {held['host']}, since {time.ctime(held['since'])})"
