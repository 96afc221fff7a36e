"""``lksweep status DIR``: what every sweep launched on DIR has done and has left."""
import sys
from collections import defaultdict

from .errors import UsageError
from .spec import from_record
from .store import Store
from .survey import survey_group


def print_status(store: Store, file=None) -> int:
    file = file or sys.stdout
    names = store.list_files(store.path("_sweeps"), suffix=".json")
    if not names:
        raise UsageError(f"DIR: {store.display()} holds no lksweep sweep (no _sweeps/ records)")
    groups = {}
    # The newest sweep's settings win: after an --overwrite, older records plan groups that
    # were replaced on purpose.
    for name in sorted(names, key=lambda n: store.mtime(store.path("_sweeps", n)), reverse=True):
        record = store.read_json(store.path("_sweeps", name))
        if not isinstance(record, dict):
            print(f"lksweep: skipping unreadable sweep record {store.display(store.path('_sweeps', name))}",
                  file=sys.stderr)
            continue
        for g in from_record(record).groups():
            groups.setdefault((g.job, g.name), g)
    rows = defaultdict(lambda: [0, 0, 0, 0])  # table -> groups done, groups, shards done, shards
    for g in groups.values():
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
    held = store.read_json(store.path("_lock.json"))
    print(f"{store.display()}: {len(names)} sweep(s)" + (f"; being written by pid {held['pid']} on {held['host']}"
                                                         if held else ""), file=file)
    print(f"{'table':<14}{'groups done':>14}{'shards done':>14}{'pending':>10}", file=file)
    for table, (gd, gt, sd, st) in sorted(rows.items()):
        print(f"{table:<14}{f'{gd}/{gt}':>14}{f'{sd}/{st}':>14}{st - sd:>10}", file=file)
    return 0
