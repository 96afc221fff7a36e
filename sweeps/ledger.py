"""What a launch has done and still needs, per group: the runner's accounts.

The ledger starts from the survey's view of each planned group (``sweeps.survey.GroupState``,
which it copies and never changes) and is told what the launch commits: a finished shard, a
table, a shard found damaged again. It answers what is pending, which groups are ready to be
merged, and the counts a launch reports. It touches no file.
"""
from typing import Dict, Iterable, List, Set

from .plan import Group, Shard
from .survey import GroupState


class Ledger:
    """Per group: the shards not finished yet and the tables not committed yet.

    ``computed``: shards finished by this launch (a committed table counts every shard of
    its group still pending); ``reused``: shards finished by earlier launches;
    ``committed`` / ``skipped``: groups this launch committed / found committed."""

    def __init__(self, states: Iterable[GroupState]):
        self.groups: Dict[str, Group] = {}
        self._missing: Dict[str, List[str]] = {}
        self._pending: Dict[str, Set[str]] = {}
        self.computed = self.reused = self.committed = self.skipped = 0
        for s in states:
            if s.conflict:
                raise ValueError(f"group {s.group.name} conflicts with OUT: drop it first ({s.conflict})")
            name = s.group.name
            self.groups[name] = s.group
            self._missing[name] = list(s.missing_tables)
            self._pending[name] = {sh.id for sh in s.todo}
            self.reused += len(s.done)
            self.skipped += s.committed

    def missing(self, name: str) -> List[str]:
        """The tables of group ``name`` not committed yet."""
        return list(self._missing[name])

    def pending(self, name: str) -> int:
        """How many shards of group ``name`` are not finished yet."""
        return len(self._pending[name])

    def todo(self, name: str) -> List[Shard]:
        """The shards of group ``name`` not finished yet, in plan order."""
        return [s for s in self.groups[name].shards if s.id in self._pending[name]]

    def ready(self, name: str) -> bool:
        """Whether group ``name`` has every shard finished and a table still to commit: it
        is merged next."""
        return not self._pending[name] and bool(self._missing[name])

    def finished(self, name: str, shard_id: str) -> None:
        """A shard of group ``name`` was committed as a shard file."""
        self._pending[name].discard(shard_id)
        self.computed += 1

    def table(self, name: str, table: str) -> List[str]:
        """Table ``table`` of group ``name`` was committed: every shard still pending is
        finished (returns their ids); the group counts as committed with its last table."""
        ids = sorted(self._pending[name])
        self._pending[name].clear()
        self.computed += len(ids)
        if table in self._missing[name]:
            self._missing[name].remove(table)
            self.committed += not self._missing[name]
        return ids

    def reopen(self, name: str, shard_ids: Iterable[str], reused: bool = False) -> None:
        """Shards of group ``name`` whose files were found damaged are pending again
        (``reused``: they had been counted as finished by earlier launches)."""
        ids = set(shard_ids)
        self._pending[name] |= ids
        if reused:
            self.reused -= len(ids)
