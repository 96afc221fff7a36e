"""The ``lksweep`` command line. Bad input: one line on stderr, exit code 2."""
import argparse
import json
import shlex
import sys
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

from . import __version__, console, contract, cost, runner
from . import compact as compaction
from . import spec as specs
from .cluster import interrupts, resolve_address
from .errors import SweepError, UsageError
from .job import jobs
from .settings import add_flags, from_flags
from .store import Store

log = console.logger(__name__)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _positive(name):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} expects an integer >= 1, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} expects an integer >= 1, got {value}")
        return value
    return parse


def _launch_options(p: argparse.ArgumentParser, out_required: bool) -> None:
    p.add_argument("--out", required=out_required, help="output directory or URI (s3://..., file://...)"
                   + ("" if out_required else "; default: results/<spec name>"))
    p.add_argument("--address", help="Ray cluster to join (HOST:PORT, ray://HOST:PORT or auto); default: "
                   "RAY_ADDRESS if set, else a fresh local instance")
    p.add_argument("--max-workers", type=_positive("--max-workers"), help="at most this many tasks at a time "
                   "(a local instance gets this many CPUs); default: every CPU")
    p.add_argument("--overwrite", action="store_true",
                   help="replace groups that already exist in --out with other settings")
    p.add_argument("--verify", action="store_true", help="read and check every committed file, not only those "
                   "whose size or modification time changed since they were committed")
    p.add_argument("--compact", action="store_true", help="compact the tables when the sweep ends (lksweep compact)")
    p.add_argument("--large", action="store_true", help=f"run a sweep of more than {cost.MAX_SHARDS:,} shards, or "
                   f"whose longest shard is estimated above {cost.MAX_SHARD_HOURS:g} h")


def build_parser() -> Tuple[Parser, Dict[str, Callable]]:
    """The parser, and the function that runs each command (its args, its argv) -> exit code."""
    parser = Parser(prog="lksweep", description="Sweeps of the (l,k)-discrepancy and of Reber-grammar "
                    "training of recurrent cells, on Ray, into Parquet.")
    parser.add_argument("--version", action="version", version=f"lksweep {__version__}")
    _verbosity(parser, "normal")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    handlers: Dict[str, Callable] = {}
    for job in jobs().values():
        p = sub.add_parser(job.command, help=job.help)
        add_flags(p, job.options)
        _launch_options(p, out_required=True)
        handlers[job.command] = partial(_launch_job, job)
        for name, (help_, add_arguments, run) in job.commands().items():
            add_arguments(sub.add_parser(name, help=help_))
            handlers[name] = lambda a, argv, run=run: run(a)

    r = sub.add_parser("run", help="run a YAML sweep spec or a shipped one (" + ", ".join(specs.shipped()) + ")")
    r.add_argument("spec", metavar="SPEC")
    _launch_options(r, out_required=False)
    handlers["run"] = lambda a, argv: launch(specs.load(a.spec, a.large), a, argv)

    s = sub.add_parser("status", help="shards done and pending per table in an output directory")
    s.add_argument("out", metavar="DIR", help="an output directory or URI (s3://..., file://...)")
    handlers["status"] = lambda a, argv: status(a)

    c = sub.add_parser("compact", help="rewrite DIR's tables into a few large Parquet files; drop the shards "
                       "of committed groups")
    c.add_argument("out", metavar="DIR", help="an output directory or URI (s3://..., file://...)")
    c.add_argument("--part-mb", type=_positive("--part-mb"), default=compaction.PART_MB,
                   help=f"largest part, MiB of table data (default {compaction.PART_MB})")
    handlers["compact"] = lambda a, argv: compact(Store(a.out), a.part_mb)

    f = sub.add_parser("figures", help="draw the paper's figures (and more) from DIR's tables into DIR/figures/")
    rp = sub.add_parser("report", help="write DIR/report.html: the paper's claims against DIR's tables")
    for p in (f, rp):
        p.add_argument("out", metavar="DIR", help="an output directory or URI (s3://..., file://...)")
        p.add_argument("--to", help="write there (a local directory) instead of into DIR")
    for name in ("figures", "report"):
        handlers[name] = lambda a, argv: analysis_command(a.command, a.out, a.to)

    sc = sub.add_parser("schema", help="print the JSON Schema of sweep specs (or, with --tables, every table's columns)")
    sc.add_argument("--tables", action="store_true", help="the columns of every table, documented, as Markdown")
    handlers["schema"] = lambda a, argv: schema(a)
    for p in sub.choices.values():
        _verbosity(p, argparse.SUPPRESS)   # after the command too; absent, the one before it holds
    return parser, handlers


def _verbosity(p: argparse.ArgumentParser, default) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", dest="verbosity", action="store_const", const="quiet", default=default,
                   help="say only warnings and errors, no progress bar (results still print)")
    g.add_argument("--verbose", dest="verbosity", action="store_const", const="verbose", default=default,
                   help="say debug detail too")


def _launch_job(job, a, argv: List[str]) -> int:
    return launch(specs.from_options(job.name, from_flags(a, job.options), a.large), a, argv)


def launch(sweep: specs.Spec, a, argv: List[str]) -> int:
    address = resolve_address(a.address)
    store = Store(f"results/{sweep.name}" if a.out is None else a.out)
    cost.check_shard(sweep.cost, a.large, cost.machine_memory() if address is None else None, "this machine")
    store.check_writable()
    command = "lksweep " + " ".join(shlex.quote(x) for x in argv)
    if a.out is None:
        command += f" --out {shlex.quote(store.display())}"
    with interrupts():
        summary = runner.run(sweep, store, address=address, max_workers=a.max_workers, overwrite=a.overwrite,
                             resume_hint=command, verify=a.verify, large=a.large)
        print_summary(summary)
        console.out(f"Resume or extend: {command}")
        if a.compact:
            compact(store)
        if sweep.report:
            analysis_command("report", store.uri)
    return 0


def print_summary(summary: runner.SweepResult) -> None:
    store = summary.store
    console.out(f"lksweep: {summary.spec.name}: {summary.computed} shard(s) computed, {summary.reused} reused, "
                f"{summary.groups_committed} group(s) committed, {summary.groups_skipped} already done "
                f"in {summary.seconds:.1f} s", f"Results: {store.display()}")
    if store.is_local:
        console.out(*(f"  pandas.read_parquet({store.path(table)!r})" for table in summary.tables))
        return
    # the URI's options (an endpoint, a region) travel with the filesystem, not with a path
    console.out(f"  fs = pyarrow.fs.FileSystem.from_uri({store.uri!r})[0]",
                *(f"  pandas.read_parquet({store.path(table)!r}, filesystem=fs)" for table in summary.tables))


def compact(store: Store, part_mb: float = compaction.PART_MB) -> int:
    store.check_readable()
    done = compaction.compact(store, part_mb)
    for line in done.damaged:
        log.warning(f"lksweep: damaged, set aside (its groups will be computed again): {line}")
    console.out(*(f"  {table}: {before} file(s) -> {after} part(s), {groups} group(s)"
                  for table, (before, after, groups) in sorted(done.tables.items())),
                f"Compacted {store.display()}: {len(done.tables)} table(s); {done.shards_removed} shard file(s) of "
                f"committed groups removed")
    return 0


def analysis_command(command: str, out: str, to: Optional[str] = None) -> int:
    """``figures`` / ``report``: the analysis package (pandas and matplotlib, no Ray)."""
    from analysis import commands
    try:
        getattr(commands, command)(out, to)
    except commands.NoData as e:
        raise UsageError(str(e)) from None
    except commands.Corrupt as e:
        raise SweepError(str(e)) from None
    return 0


def status(a) -> int:
    from .status import print_status
    return print_status(Store(a.out))


def schema(a) -> int:
    if not a.tables:
        console.out(json.dumps(specs.json_schema(), indent=1))
        return 0
    for job in jobs().values():
        for table, columns in job.schemas.items():
            console.out(f"## {table} ({job.name} job)\n\n{contract.describe(columns)}\n")
    for job in jobs().values():
        console.out(f"## {job.name} shards (format {job.shard.version}): the tables a shard returns, which "
                    f"finalize merges into the tables above\n")
        for table, columns in job.shard.tables.items():
            same = table in job.schemas and contract.same_columns(columns, job.schemas[table])
            console.out(f"### {table}\n\n{f'its rows of table {table}' if same else contract.describe(columns)}\n")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        console.configure()
        parser, handlers = build_parser()
        a = parser.parse_args(argv)
        console.configure(a.verbosity)
        return handlers[a.command](a, argv)
    except (UsageError, SweepError) as e:
        console.out(f"lksweep: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a full disk, a lost mount: committed files stay as they were
        console.out(f"lksweep: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}; files committed "
                    f"so far are intact, run the same command again to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:   # sweeps.cluster.Interrupted for SIGTERM: 143
        return getattr(e, "exit_code", 130)


if __name__ == "__main__":
    sys.exit(main())
