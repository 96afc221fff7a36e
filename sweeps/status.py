"""``lksweep status DIR``: what every sweep launched on DIR has done and has left."""
import sys
from collections import defaultdict
from typing import Dict, List

from .errors import UsageError
from .plan import Group
from .spec import validate
from .store import Store
from .survey import survey_group


def recorded_groups(store: Store) -> Dict:
    """Every group planned by the sweeps recorded in OUT/_sweeps/, the newest record's
    settings winning (after an --overwrite, older records plan groups replaced on purpose)."""
    names = store.list_files(store.path("_sweeps"), suffix=".json")
    if not names:
        raise UsageError(f"DIR: {store.display()} holds no lksweep sweep (no _sweeps/ records)")
    groups: Dict = {}
    for name in sorted(names, key=lambda n: store.mtime(store.path("_sweeps", n)), reverse=True):
        path = store.path("_sweeps", name)
        record = store.read_json(path)
        try:
            planned = validate(record["spec"]).groups()
        except (UsageError, KeyError, TypeError):   # unreadable, or written by another lksweep version
            print(f"lksweep: skipping unreadable sweep record {store.display(path)}", file=sys.stderr)
            continue
        for g in planned:
            groups.setdefault((g.job, g.name), g)
    return groups


def print_status(store: Store, file=None) -> int:
    file = file or sys.stdout
    groups: List[Group] = list(recorded_groups(store).values())
    rows = defaultdict(lambda: [0, 0, 0, 0])  # table -> groups done, groups, shards done, shards
    for g in groups:
        state = survey_group(store, g, check_shards=False)
        for table in g.tables:
            row = rows[table]
            row[1] += 1
            row[3] += len(g.shards)
            if state.committed:
                row[0] += 1
                row[2] += len(g.shards)
            else:
                row[2] += len(state.done)
    writer = store.writer()
    n = len(store.list_files(store.path("_sweeps"), suffix=".json"))
    print(f"{store.display()}: {n} sweep(s)" + (f"; being written by pid {writer['pid']} on {writer['host']}"
                                                if writer else ""), file=file)
    print(f"{'table':<14}{'groups done':>14}{'shards done':>14}{'pending':>10}", file=file)
    for table, (gd, gt, sd, st) in sorted(rows.items()):
        print(f"{table:<14}{f'{gd}/{gt}':>14}{f'{sd}/{st}':>14}{st - sd:>10}", file=file)
    return 0
