"""What an output directory already holds for a planned sweep: committed groups, finished
shards, and groups that exist with other settings (conflicts)."""
from dataclasses import dataclass, field
from typing import Dict, List

import pyarrow as pa

from .errors import UsageError
from .plan import Group, Shard
from .store import Store


@dataclass
class GroupState:
    group: Group
    missing_tables: List[str]
    done: Dict[str, Shard] = field(default_factory=dict)      # shard id -> shard
    todo: List[Shard] = field(default_factory=list)
    conflict: str = ""
    corrupt: List[str] = field(default_factory=list)          # paths of unreadable files, redone

    @property
    def committed(self) -> bool:
        return not self.missing_tables and not self.conflict


def describe(settings: Dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def survey_group(store: Store, group: Group, check_shards: bool = True) -> GroupState:
    """Inspect one group. With ``check_shards``, every finished shard file of an
    uncommitted group is read in full, so a truncated or corrupt one is found now."""
    missing, corrupt_tables = [], []
    for table in group.tables:
        path = store.table_file(table, group.name)
        if not store.exists(path):
            missing.append(table)
            continue
        try:
            existing = store.read_meta(path).get("settings")
        except (OSError, pa.ArrowException, ValueError):
            corrupt_tables.append(path)  # rebuilt from the group's shards
            missing.append(table)
            continue
        if existing != group.settings:
            return GroupState(group, missing, conflict=(
                f"{group.job} group {group.name} already exists in {store.display()} with "
                f"{describe(existing or {})}; this sweep asks for {describe(group.settings)}"))
    state = GroupState(group, missing, corrupt=corrupt_tables)
    if not missing:
        return state
    planned = {s.id: s for s in group.shards}
    shard_dir = store.shard_dir(group.job, group.name)
    for name in store.list_files(shard_dir):
        sid, path = name[: -len(".parquet")], f"{shard_dir}/{name}"
        try:
            meta = store.read_meta(path)
            if check_shards and sid in planned:
                store.read_table(path)
        except (OSError, pa.ArrowException, ValueError):
            state.corrupt.append(path)
            continue
        if sid in planned:
            state.done[sid] = planned[sid]
        elif meta.get("settings") != group.settings:
            state.conflict = (f"{group.job} group {group.name} has unfinished shards in {store.display()} "
                              f"from a sweep with {describe(meta.get('settings') or {})}; this sweep asks for "
                              f"{describe(group.settings)}")
            return state
    state.todo = [s for s in group.shards if s.id not in state.done]
    return state


def survey_sweep(groups: List[Group], store: Store, overwrite: bool = False) -> List[GroupState]:
    """The state of every planned group; refuses (UsageError) on conflicts unless
    ``overwrite``, in which case the conflicting groups are deleted first."""
    states = [survey_group(store, g) for g in groups]
    conflicts = [s for s in states if s.conflict]
    if conflicts and not overwrite:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise UsageError(f"refused: {conflicts[0].conflict}{more}. Write to a new --out directory, "
                         f"or pass --overwrite to replace those groups")
    for s in conflicts:
        for table in s.group.tables:
            store.delete(store.table_file(table, s.group.name))
        store.delete(store.shard_dir(s.group.job, s.group.name))
    return [survey_group(store, s.group) if s.conflict else s for s in states]
