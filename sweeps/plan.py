"""Shards and groups: the units a sweep is planned, computed and committed in.

A shard is a piece of work whose id is a hash of its content, so the same work always gets
the same id whatever the sweep that planned it. Its ``params`` are a frozen dataclass of the
job's (everything the shard's numbers depend on). A group is the set of shards whose merged
result is committed as one file per table; its ``settings`` are what a later sweep must agree
with to count as the same group.
"""
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple


def content_hash(obj: Any, length: int = 16) -> str:
    """A stable hex digest of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def as_dict(params: Any) -> Dict[str, Any]:
    """A shard's params as a JSON-able dict (for its id, its file's metadata and batch keys)."""
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    if all(isinstance(v, SCALARS) for v in values.values()):
        return values          # what dataclasses.asdict gives, without its deep copies
    return dataclasses.asdict(params)


SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class Shard:
    job: str
    group: str
    params: Any = field(hash=False, compare=False)
    _id: Optional[str] = field(default=None, init=False, repr=False, hash=False, compare=False)

    @property
    def id(self) -> str:
        """A hash of the shard's content (computed once)."""
        if self._id is None:
            object.__setattr__(self, "_id", content_hash({"job": self.job, "params": as_dict(self.params)}))
        return self._id


@dataclass(frozen=True)
class Group:
    job: str
    name: str
    settings: Dict[str, Any] = field(hash=False, compare=False)
    shards: Tuple[Shard, ...] = field(hash=False, compare=False)
    tables: Tuple[str, ...] = ()
