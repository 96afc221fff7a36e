"""``lksweep status DIR``: what every sweep launched on DIR has done and has left."""
from collections import defaultdict
from typing import Dict, List, Tuple

from . import console
from .errors import UsageError
from .plan import Group
from .spec import validate
from .stages import pending_stages
from .store import FileStat, Store
from .survey import group_state, survey

log = console.logger(__name__)


def sweep_records(store: Store) -> Dict[str, FileStat]:
    """The sweep records of OUT/_sweeps/ (one listing, which also gives their times);
    UsageError when there is none: lksweep never launched a sweep on OUT."""
    listed = store.scan(store.path("_sweeps"))
    records = {r: s for r, s in listed.items() if r.endswith(".json") and not r.rsplit("/", 1)[-1].startswith("_")}
    if not records:
        raise UsageError(f"DIR: {store.display()} holds no lksweep sweep (no _sweeps/ records)")
    return records


def recorded_groups(store: Store) -> Tuple[Dict, int]:
    """Every group planned by the sweeps recorded in OUT/_sweeps/, the newest record's
    settings winning (after an --overwrite, older records plan groups replaced on purpose), and
    the number of records."""
    listed = sweep_records(store)
    rels = list(listed)
    groups: Dict = {}
    for rel in sorted(rels, key=lambda r: listed[r].mtime_ns or 0, reverse=True):
        path = store.path(rel)
        record = store.read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
            # unreadable, or written by another lksweep version
            log.warning(f"lksweep: skipping unreadable sweep record {store.display(path)}")
            continue
        try:
            # checked as its launch was (a record is input too): nothing is planned beyond the sizes
            # a launch accepts, with --large only where the launch said so
            planned = validate(record["spec"], large=record.get("large") is True).groups()
        except UsageError as e:
            log.warning(f"lksweep: skipping sweep record {store.display(path)}: {e}")
            continue
        for g in planned:
            groups.setdefault((g.job, g.name), g)
    return groups, len(rels)


def writer_line(store: Store) -> str:
    """Who writes DIR now, or that the launcher holding its lock is gone."""
    w = store.writer()
    if w is None:
        return ""
    who = f"pid {w['pid']} on {w['host']}"
    if w["alive"] is False:
        return (f"; its lock names {who}, which is gone (the launcher died): the next launch takes over, "
                f"or delete {store.display(store.path('_lock.json'))}")
    if w["alive"] is None:
        return f"; being written by {who} (another host: if that launcher died, delete {store.display(store.path('_lock.json'))})"
    return f"; being written by {who}"


def print_status(store: Store, file=None) -> int:
    planned, n = recorded_groups(store)
    groups: List[Group] = list(planned.values())
    cat = survey(store, {t for g in groups for t in g.tables}, {g.job for g in groups})
    rows = defaultdict(lambda: [0, 0, 0, 0])  # table -> groups done, groups, shards done, shards
    for g in groups:
        state = group_state(cat, g)
        for table in g.tables:
            row = rows[table]
            row[1] += 1
            row[3] += len(g.shards)
            if state.committed:
                row[0] += 1
                row[2] += len(g.shards)
            else:
                row[2] += len(state.done)
    console.out(f"{store.display()}: {n} sweep(s){writer_line(store)}",
                f"{'table':<14}{'groups done':>14}{'shards done':>14}{'pending':>10}",
                *(f"{table:<14}{f'{gd}/{gt}':>14}{f'{sd}/{st}':>14}{st - sd:>10}"
                  for table, (gd, gt, sd, st) in sorted(rows.items())),
                *(f"{job:<14}{state}" for job, state in sorted(pending_stages(store).items())),
                *(f"damaged (the next launch sets it aside and computes it again): {store.display(path)}: {why}"
                  for path, why in cat.damaged), file=file)
    return 0
