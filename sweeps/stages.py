"""Stages: a job that reads the tables another job commits, run after it in one spec.

A job declares ``after = ("training",)``: the jobs whose tables it reads, and a setting
``source``, the directory it reads them from. In a spec holding both, ``source`` may be left
out: the stage reads the sweep's own output. :func:`run` then runs the sweep in two phases:
the earlier jobs first, then the later stage planned against what the earlier ones committed
(two-phase planning; the record ``OUT/_sweeps/_stages/<hash>.json`` of the whole spec names the stage
"not yet planned" until its phase is planned, which ``status`` shows). One spec, one command,
resumable: a rerun skips every committed group of both phases.

A stage's group settings carry the digests of the input rows it read (:func:`inputs`): of the
rows' values, not of the files holding them, so an input that changed (a retrained run) makes
the stage's group one "with other settings", refused or replaced under ``--overwrite``, never
mixed, while the same rows in other files (``lksweep compact``) are the same input.
"""
import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import pyarrow as pa

from .errors import UsageError
from .fileformat import Damaged, decode
from .job import get_job
from .spec import Spec
from .store import Store
from .survey import expected, survey

STAGES_DIR = "_stages"     # OUT/_sweeps/_stages/<spec hash>.json: a staged spec's stages

@dataclass(frozen=True)
class Input:
    """One group's committed rows in each table a stage reads, with their digests (:func:`digest`)."""

    group: str
    tables: Dict[str, pa.Table]
    digests: Dict[str, str]


def digest(rows: pa.Table) -> str:
    """SHA-256 of a group's rows: its columns' names, types and values in order, whatever file
    holds them (a group's own file or a compacted part, the rows at any offset in it); the
    files' and columns' metadata (documentation, seals, which group a part holds) left out."""
    plain = pa.schema([pa.field(f.name, f.type, f.nullable) for f in rows.schema])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, plain) as writer:
        writer.write_table(pa.Table.from_arrays([c.combine_chunks() for c in rows.columns], schema=plain))
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def inputs(source: str, tables: Sequence[str]) -> Dict[str, Input]:
    """The groups committed in every one of ``tables`` of the directory ``source``, each
    file checked against its seal as it is read, by group name. UsageError when ``source``
    holds none, or a damaged file (rerun the job that writes it there)."""
    store = Store(source)
    store.check_readable("source")
    cat = survey(store, tables)
    names = set.intersection(*(set(cat.groups[t]) for t in tables))
    if cat.damaged:
        path, why = cat.damaged[0]
        raise UsageError(f"source: {store.display(path)} is damaged ({why}); run the job that writes it on "
                         f"{store.display()} again first")
    if not names:
        raise UsageError(f"source: {store.display()} holds no committed groups of the tables {', '.join(tables)}; "
                         f"give the output directory of the job that writes them")
    files: Dict[str, pa.Table] = {}     # a compacted part holds many groups: read it once

    def rows(e) -> pa.Table:
        if e.path not in files:
            try:
                files[e.path], _ = decode(store.read_bytes(store.path(e.path)) or b"", expected(e.path))
            except Damaged as why:
                raise UsageError(f"source: {store.display(store.path(e.path))} is damaged ({why})") from None
        return files[e.path].slice(e.start, e.rows)

    out = {}
    for name in sorted(names):
        read, digests = {}, {}
        for t in tables:
            read[t] = rows(cat.groups[t][name])
            digests[t] = digest(read[t])
        out[name] = Input(name, read, digests)
    return out


def later(spec: Spec) -> Dict[str, tuple]:
    """The spec's sections that are stages after another section of the same spec."""
    return {job: blocks for job, blocks in spec.sections.items()
            if set(getattr(get_job(job), "after", ())) & set(spec.sections)}


def check_sources(spec: Spec) -> None:
    """A stage with no ``source`` needs its earlier job in the same spec."""
    staged = later(spec)
    for job, blocks in spec.sections.items():
        after = getattr(get_job(job), "after", ())
        if after and job not in staged and any(b.source is None for b in blocks):
            raise UsageError(f"{job}: source: give the output directory of a {' or '.join(after)} sweep to read "
                             f"(or put a {after[0]} section in the same spec)")


def phases(spec: Spec, out: str):
    """The specs run one after the other: the earlier jobs, then each stage with its
    ``source`` resolved to ``out`` where the spec left it out (planned only when reached)."""
    staged = later(spec)
    first = {job: blocks for job, blocks in spec.sections.items() if job not in staged}
    yield Spec(spec.name, first, spec.report and not staged)
    for i, (job, blocks) in enumerate(staged.items()):
        resolved = tuple(dataclasses.replace(b, source=b.source or out) for b in blocks)
        yield Spec(f"{spec.name}:{job}", {job: resolved}, spec.report and i == len(staged) - 1)


def stage_root(store: Store) -> str:
    return store.root if store.is_local else store.uri


def run(spec: Spec, store: Store, run_one, **options):
    """Run ``spec`` into ``store`` phase by phase with ``run_one(spec, store, **options)`` (the
    runner's single-phase run); returns the results of the phases, in order. The whole spec's
    record names the stages not yet planned until each phase has run."""
    from . import __version__

    check_sources(spec)
    staged = later(spec)
    if not staged:
        return [run_one(spec, store, **options)]
    record = {"spec": spec.to_dict(), "stages": {job: "not yet planned" for job in staged}, "version": __version__}
    results = []
    store.write_json(store.path("_sweeps", STAGES_DIR, f"{spec.hash}.json"), record)
    for phase in phases(spec, stage_root(store)):
        results.append(run_one(phase, store, **options))
        for job in phase.sections:
            if job in record["stages"]:
                record["stages"][job] = f"planned: _sweeps/{phase.hash}.json"
        store.write_json(store.path("_sweeps", STAGES_DIR, f"{spec.hash}.json"), record)
    return results


def pending_stages(store: Store) -> Dict[str, str]:
    """Stages of staged sweeps recorded in ``store`` that are not planned yet, by job."""
    out: Dict[str, str] = {}
    for rel in store.scan(store.path("_sweeps", STAGES_DIR)):
        record: Dict = store.read_json(store.path(rel)) or {}
        for job, state in record.get("stages", {}).items():
            if state == "not yet planned":
                out[job] = f"{record['spec'].get('name', '?')}: not yet planned"
    return out


def resolve(path: Optional[str]) -> Optional[str]:
    """A local directory as an absolute path (the record must not depend on the working
    directory); URIs as given."""
    return path if path is None or "://" in path else os.path.abspath(path)


def combined(spec: Spec, results):
    """One launch's result from its phases' (``sweeps.runner.SweepResult``)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    out = dataclasses.replace(first, spec=spec, damaged=[d for r in results for d in r.damaged],
                              tables=sorted({t for r in results for t in r.tables}))
    for name in ("computed", "reused", "groups_committed", "groups_skipped", "seconds"):
        setattr(out, name, sum(getattr(r, name) for r in results))
    return out
