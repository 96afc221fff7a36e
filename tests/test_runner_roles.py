"""The runner's parts one at a time: the ledger's accounts, the packer's tasks, the committer's
files, the reporter's bar, the executor interface, and the runner's dispatch on the closed set
of task outputs (driven by an in-process executor: no Ray)."""
import io
import os
from dataclasses import dataclass
from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pytest

from sweeps import index, runner
from sweeps import spec as specs
from sweeps import task as task_module
from sweeps.committer import Committer
from sweeps.executor import Executor
from sweeps.fileformat import encode, seal_checkpoint
from sweeps.job import get_job
from sweeps.ledger import Ledger
from sweeps.packer import MAX_PACK, TASK_S, Packer, batches
from sweeps.plan import Group, Shard
from sweeps.reporter import LONG_TASK_S, Reporter
from sweeps.store import Store
from sweeps.survey import GroupState, survey
from sweeps.task import Checkpointed, Damaged, Done, Merged, shard_meta, table_meta


@dataclass(frozen=True)
class Params:
    config: str
    seed: int


def group(name, n, job="discrepancy", tables=("t",), config=None):
    shards = tuple(Shard(job, name, Params(config or name, i)) for i in range(n))
    return Group(job, name, {"n": n}, shards, tables)


def fresh(g):
    """The survey's state of a group nothing of which is committed."""
    return GroupState(g, list(g.tables), todo=list(g.shards))


ROWS = pa.schema([("x", pa.int64())])


def shard_output(g, shard):
    return Done(g.name, shard.id, *encode(pa.table({"x": [1]}, schema=ROWS), shard_meta("h", g.job, g.settings, shard)))


def table_output(g, table="t"):
    return Merged(g.name, table, *encode(pa.table({"x": [1, 2]}, schema=ROWS),
                                         table_meta("h", g.job, table, g.name, g.settings)))


# ---------------------------------------------------------------------- ledger
def test_the_ledger_counts_what_is_done_and_pending_and_leaves_the_survey_alone():
    a, b, c = group("a", 3, tables=("t", "u")), group("b", 2), group("c", 1)
    half = GroupState(a, ["t", "u"], done={a.shards[0].id: a.shards[0]}, todo=list(a.shards[1:]))
    done = GroupState(c, [])
    ledger = Ledger([half, fresh(b), done])
    assert (ledger.reused, ledger.skipped, ledger.computed, ledger.committed) == (1, 1, 0, 0)
    assert [ledger.pending(n) for n in "abc"] == [2, 2, 0]
    assert ledger.todo("a") == list(a.shards[1:]) and ledger.todo("c") == []
    assert not any(ledger.ready(n) for n in "abc")      # c is committed: nothing to merge

    ledger.finished("a", a.shards[1].id)
    ledger.finished("a", a.shards[2].id)
    assert ledger.ready("a") and ledger.computed == 2
    assert ledger.table("a", "t") == [] and ledger.committed == 0 and ledger.missing("a") == ["u"]
    assert ledger.table("a", "u") == [] and ledger.committed == 1 and not ledger.ready("a")

    assert ledger.table("b", "t") == sorted(s.id for s in b.shards)   # a table finishes what was pending
    assert ledger.computed == 4 and ledger.committed == 2

    ledger.reopen("a", [a.shards[0].id], reused=True)
    assert ledger.pending("a") == 1 and ledger.reused == 0
    # The survey's states are what they were.
    assert half.missing_tables == ["t", "u"] and half.todo == list(a.shards[1:]) and done.missing_tables == []


def test_the_ledger_refuses_a_group_that_conflicts_with_out():
    g = group("a", 1)
    with pytest.raises(ValueError, match="group a conflicts"):
        Ledger([GroupState(g, ["t"], conflict="other settings")])


# ---------------------------------------------------------------------- packer
def test_batches_run_shards_of_one_configuration_together_up_to_the_jobs_limit():
    limit = get_job("training").max_batch
    runs = [Shard("training", f"seed{i}", Params("a", i)) for i in range(limit + 4)]
    other = [Shard("training", "b", Params("b", 0))]
    alone = list(group("d", 3).shards)
    got = batches(runs[:2] + other + runs[2:] + alone)
    assert [len(b) for b in got] == [limit, 1, 4, 1, 1, 1]
    assert got[0] == runs[:limit] and got[2] == runs[limit:] and got[1] == other


def test_the_first_task_holds_one_shard_then_tasks_last_about_task_s():
    groups = [group(f"g{i}", 1) for i in range(40)]
    ledger = Ledger(map(fresh, groups))
    packer = Packer(ledger, "h")
    packer.add(batches(s for g in groups for s in g.shards))
    first = packer.next(4, lambda s: None, dict)
    assert first.size == 1 and [g.name for g in first.finish] == ["g0"]
    packer.measured(first, 0.1)          # 0.1 s a shard: TASK_S / 0.1 shards a task
    assert packer.next(1, lambda s: None, dict).size == int(TASK_S / 0.1)
    left = packer.queued
    assert packer.next(20, lambda s: None, dict).size == -(-left // 20)   # an even share of what is left
    packer.seconds_per_shard["discrepancy"] = 1e-12
    left = packer.queued
    assert packer.next(1, lambda s: None, dict).size == min(MAX_PACK, left) and not packer


def test_a_task_does_not_end_inside_a_group_that_fits_and_never_mixes_jobs():
    big, small = group("big", 10), group("small", 3, job="training")
    ledger = Ledger([fresh(big), fresh(small)])
    packer = Packer(ledger, "h")
    packer.add(batches(big.shards + small.shards))
    packer.measured(packer.next(100, lambda s: None, dict), 0.01)   # one shard of big; then 50 a task
    task = packer.next(100, lambda s: None, dict)
    # An even share (1 shard) would end inside big: the task takes the rest of big, not small.
    assert task.job == "discrepancy" and task.size == 9 and task.finish == []
    assert packer.next(100, lambda s: None, dict).job == "training"


def test_a_group_that_fits_is_finished_in_its_task_with_checkpoints_and_settings():
    g = group("g", 4)
    packer = Packer(Ledger([fresh(g)]), "h")
    packer.add(batches(g.shards))
    packer.seconds_per_shard["discrepancy"] = 0.001
    task = packer.next(1, lambda s: b"state" if s.params.seed == 2 else None, dict)
    assert task.size == 4 and task.finish == [g] and task.settings == {"g": g.settings}
    assert task.states == [[None], [None], [b"state"], [None]] and packer.queued == 0 and not packer


def test_merges_go_first_and_resumed_shards_go_to_the_front():
    a, b = group("a", 2), group("b", 2)
    packer = Packer(Ledger([fresh(a), fresh(b)]), "h")
    packer.add(batches(b.shards))
    packer.add([[a.shards[1]]], first=True)
    packer.merge("a")
    merge = packer.next(1, lambda s: None, lambda g: {"given": g.name.encode()})
    assert merge.finish == [a] and merge.size == 0 and merge.given == {"given": b"a"}
    assert packer.next(1, lambda s: None, dict).batches == [[a.shards[1]]]


def test_the_measured_time_is_a_moving_average():
    g = group("g", 4)
    packer = Packer(Ledger([fresh(g)]), "h")
    packer.add(batches(g.shards))
    task = packer.next(1, lambda s: None, dict)
    packer.measured(task, 1.0)
    packer.measured(task, 2.0)
    assert packer.seconds_per_shard["discrepancy"] == pytest.approx(0.7 * 1.0 + 0.3 * 2.0)


# ---------------------------------------------------------------------- committer
@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "out"))


def committer_of(store, tables=("t",), jobs=("discrepancy",)):
    return Committer(store, survey(store, tables, jobs))


def test_the_committer_writes_each_kind_of_output_where_it_belongs_and_indexes_the_files(store):
    g = group("g", 3)
    c = committer_of(store)
    done, merged = shard_output(g, g.shards[0]), table_output(g)
    c.commit([done, Checkpointed("g", g.shards[1].id, b"ckpt", "epoch 2"), merged], {"g": g})
    assert store.read_bytes(store.shard_file("discrepancy", "g", g.shards[0].id)) == done.data
    assert store.read_bytes(store.table_file("t", "g")) == merged.data
    ckpt = store.checkpoint_file("discrepancy", "g", g.shards[1].id)
    assert c.checkpoint(g.shards[1]) == b"ckpt"
    assert sorted(e.kind for e in c.new) == ["shard", "table"]       # a checkpoint is not indexed
    assert c.given(g)[g.shards[0].id] == done.data and "g" not in c.fresh
    c.finished(g, [g.shards[1].id])
    assert not store.exists(ckpt) and c.checkpoint(g.shards[1]) is None


def test_the_committer_sets_aside_what_a_damaged_output_names_and_refuses_unknown_outputs(store):
    g = group("g", 2)
    c = committer_of(store)
    c.commit([shard_output(g, g.shards[0])], {"g": g})
    path = store.shard_file("discrepancy", "g", g.shards[0].id)
    c.commit([Damaged("g", g.shards[0].id, "its seal does not match")], {"g": g})
    assert not store.exists(path) and c.damaged == [path]
    assert os.listdir(store.path("_damaged"))

    @dataclass(frozen=True)
    class Stray:
        group: str

    with pytest.raises(TypeError, match="Stray"):
        c.commit([shard_output(g, g.shards[1]), Stray("g")], {"g": g})
    assert not store.exists(store.shard_file("discrepancy", "g", g.shards[1].id))   # nothing written


def test_a_checkpoint_that_does_not_open_is_set_aside_and_the_shard_starts_again(store, caplog):
    g = group("g", 1)
    shard = g.shards[0]
    path = store.checkpoint_file("discrepancy", "g", shard.id)
    other = seal_checkpoint(b"state", {"job": "discrepancy", "group": "g", "shard": "someone-else"})
    store.commit([(path, other)])
    c = committer_of(store)
    assert c.checkpoint(shard) is None and not store.exists(path)
    assert "cannot be used" in caplog.text and c.checkpoint(shard) is None


def test_a_damaged_shard_file_found_by_the_survey_is_read_as_damaged_and_set_aside(store):
    g = group("g", 2)
    c = committer_of(store)
    c.commit([shard_output(g, s) for s in g.shards], {"g": g})
    path = store.shard_file("discrepancy", "g", g.shards[1].id)
    store.write_bytes(path, store.read_bytes(path)[:-5])
    tables, damaged = committer_of(store).read_shards(g)
    assert len(tables) == 1 and damaged == [g.shards[1]] and not store.exists(path)


def test_closing_leaves_one_index_file_without_the_files_that_are_gone(store):
    a, b = group("a", 1), group("b", 1)
    c = committer_of(store)
    c.commit([table_output(a)], {"a": a})
    c.segment()
    c.commit([table_output(b)], {"b": b})
    c.segment()
    store.delete(store.table_file("t", "a"))
    c.close(["t"], ["discrepancy"])
    assert len(store.list_files(store.path(index.DIR))) == 1
    assert sorted(index.read(store)[0]) == ["t/b.parquet"]


def test_dropping_a_group_deletes_its_tables_shards_and_checkpoints(store):
    g, keep = group("g", 2), group("keep", 1)
    c = committer_of(store)
    c.commit([table_output(g), table_output(keep), shard_output(g, g.shards[0]),
              Checkpointed("g", g.shards[1].id, b"x", "")], {"g": g, "keep": keep})
    c.segment()
    later = committer_of(store)
    later.drop(survey(store, ["t"], ["discrepancy"]), [g])
    assert not store.exists(store.table_file("t", "g")) and store.exists(store.table_file("t", "keep"))
    assert not store.exists(store.shard_dir("discrepancy", "g")) and later.checkpoint(g.shards[1]) is None
    assert {"t/g.parquet", f"_shards/discrepancy/g/{g.shards[0].id}.parquet"} <= later.gone


# ---------------------------------------------------------------------- reporter and executor
class Inline(Executor):
    """Runs each task in this process when submitted; ``spoil(task)`` may change a task first."""

    capacity = 2

    def __init__(self, spoil=lambda task: None, console=None):
        self.spoil, self._console, self.done, self.tasks = spoil, console, {}, []

    @property
    def console(self):
        return self._console or super().console

    def submit(self, job, task):
        self.spoil(task)
        self.tasks.append(task)
        self.done[len(self.done)] = task_module.run(job, task)
        return len(self.done) - 1

    def wait(self, handles, timeout):
        return list(handles)

    def result(self, handle, groups):
        return self.done.pop(handle)


def test_an_executor_must_implement_submit_wait_and_result():
    class Partial(Executor):
        def submit(self, job, task):
            return 0

        def wait(self, handles, timeout):
            return handles

    with pytest.raises(TypeError, match="result"):
        Partial()


def test_the_reporter_counts_shards_and_shows_a_long_task(monkeypatch):
    from sweeps import reporter

    text = io.StringIO()
    bar = Reporter("sweep", 4, Inline(console=text), shard_seconds=3600.0)
    bar.finished(3)
    bar.again(2)
    assert (bar.bar.n, bar.bar.total) == (3, 6)
    monkeypatch.setattr(reporter, "time", SimpleNamespace(monotonic=lambda: LONG_TASK_S - 1.0))
    bar.running_since([0.0])
    assert "a task has run" not in text.getvalue()
    monkeypatch.setattr(reporter, "time", SimpleNamespace(monotonic=lambda: LONG_TASK_S + 60.0))
    bar.running_since([])
    assert "a task has run" not in text.getvalue()
    bar.running_since([50.0, 0.0])
    bar.close()
    assert "a task has run 11 min of about 60 min estimated" in text.getvalue(), text.getvalue()


def test_a_quiet_executor_hides_the_bar():
    text = io.StringIO()
    quiet = Inline(console=text)
    quiet.quiet = True
    bar = Reporter("sweep", 4, quiet)
    bar.finished(4)
    bar.close()
    assert text.getvalue() == ""


# ---------------------------------------------------------------------- the runner's dispatch
SPEC = {"discrepancy": {"cells": "gru", "l_max": 4, "k": "1-2", "draws": 200, "shard_size": 50}}


def test_a_sweep_with_an_inline_executor_commits_every_group_and_a_rerun_reuses_them(tmp_path):
    spec = specs.validate(SPEC)
    out = Store(str(tmp_path / "out"))
    ex = Inline()
    done = runner.run(spec, out, executor=ex)
    assert (done.computed, done.groups_committed, done.reused) == (8, 2, 0)
    assert any(t.given for t in ex.tasks), "a group split over tasks is merged by a task of its own"
    again = runner.run(spec, out, executor=Inline())
    assert (again.computed, again.groups_skipped) == (0, 2)


def test_a_damaged_shard_file_given_to_a_merge_is_set_aside_and_computed_again(tmp_path):
    spec = specs.validate(SPEC)
    clean = Store(str(tmp_path / "clean"))
    runner.run(spec, clean, executor=Inline())

    spoiled = []

    def spoil(task):
        if task.given and not spoiled:
            sid = sorted(task.given)[0]
            task.given[sid] = task.given[sid][:-7]
            spoiled.append(sid)

    out = Store(str(tmp_path / "out"))
    done = runner.run(spec, out, executor=Inline(spoil))
    assert spoiled and len(done.damaged) == 1 and spoiled[0] in done.damaged[0]
    assert done.groups_committed == 2 and done.computed == 9
    got, want = (pd.read_parquet(s.path("discrepancy")) for s in (out, clean))
    assert len(got) and len(os.listdir(out.path("discrepancy"))) == 2
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_an_output_of_no_known_type_stops_the_sweep(tmp_path):
    class Stray(Inline):
        def result(self, handle, groups):
            outputs, seconds = super().result(handle, groups)
            return outputs + [object()], seconds

    out = Store(str(tmp_path / "out"))
    with pytest.raises(TypeError, match="not one of sweeps.task.Output"):
        runner.run(specs.validate(SPEC), out, executor=Stray())
    assert not os.path.exists(out.path("discrepancy"))


def test_a_damaged_table_found_by_the_survey_is_set_aside_once_and_its_group_computed_again(tmp_path, caplog):
    spec = specs.validate(SPEC)
    out = Store(str(tmp_path / "out"))
    runner.run(spec, out, executor=Inline())
    table = sorted(os.listdir(out.path("discrepancy")))[0]
    path = out.path("discrepancy", table)
    out.write_bytes(path, out.read_bytes(path)[:100])
    again = runner.run(spec, out, executor=Inline())
    assert again.damaged == [path] and caplog.text.count("is damaged") == 1
    assert (again.groups_committed, again.groups_skipped) == (1, 1)
    assert len(os.listdir(out.path("_damaged"))) == 1
