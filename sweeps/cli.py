"""The ``lksweep`` command line. Bad input: one line on stderr, exit code 2."""
import argparse
import shlex
import sys
from typing import List, Optional

from . import __version__, runner, spec as specs
from .cluster import resolve_address
from .errors import SweepError, UsageError
from .store import Store


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


def build_parser() -> Parser:
    parser = Parser(prog="lksweep", description="Sweeps of the (l,k)-discrepancy and of Reber-grammar "
                    "training for vanilla RNN and GRU cells, on Ray, into Parquet.")
    parser.add_argument("--version", action="version", version=f"lksweep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    d = sub.add_parser("discrepancy", help="sweep D(l,k) over cells, inits, k and seed ensembles")
    d.add_argument("--cells", required=True, help="comma-separated cells, e.g. vanilla,gru")
    d.add_argument("--inits", default="normal", help="parameter draws: normal, xavier, uniform (default normal)")
    d.add_argument("--l-max", required=True, help="longest sequence length l (one pass gives every l <= l_max)")
    d.add_argument("--k", required=True, help="hidden sizes, e.g. 1-20 or 4,8,16")
    d.add_argument("--draws", required=True, help="parameter draws per ensemble (N in the paper)")
    d.add_argument("--seeds", default="0", help="ensemble seeds, e.g. 0 or 0-4 (default 0)")
    d.add_argument("--shard-size", help="draws per shard, a multiple of 50 (default 1000)")
    d.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    _launch_options(d, out_required=True)

    t = sub.add_parser("train", help="train vanilla/GRU models on (embedded) Reber grammars over many seeds")
    t.add_argument("--task", required=True, help="reber, embedded-reber or both (comma-separated)")
    t.add_argument("--cells", required=True, help="CELL:K items, e.g. vanilla:18,gru:10")
    t.add_argument("--protocol", required=True, help="paper, adam or paper,adam")
    t.add_argument("--seeds", default="0", help="training seeds, e.g. 0-31 (default 0)")
    t.add_argument("--n-train", help="training strings (default 250 reber, 2000 embedded); the test set is as large")
    t.add_argument("--max-epochs", help="epoch cap (default 1000 paper, 200 adam)")
    t.add_argument("--lr", help="learning rate (default: the protocol's for the task)")
    t.add_argument("--bias", help="paper (default), authors, none, hidden or all")
    t.add_argument("--dtype", help="float32 (default) or float64")
    t.add_argument("--checkpoint-s", help="seconds between checkpoints of a running ensemble (default 60)")
    _launch_options(t, out_required=True)

    g = sub.add_parser("grammar", help="sample or check (embedded) Reber strings")
    actions = g.add_subparsers(dest="action", required=True, parser_class=Parser)
    gs = actions.add_parser("sample", help="print N strings of the grammar, one a line")
    gs.add_argument("-n", type=_positive("-n"), default=1, help="strings to sample (default 1)")
    gs.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    gc = actions.add_parser("check", help="exit 0 when every STRING is valid, 1 otherwise")
    gc.add_argument("strings", nargs="+", metavar="STRING")
    for action in (gs, gc):
        action.add_argument("--embedded", action="store_true", help="the embedded Reber grammar")

    r = sub.add_parser("run", help="run a YAML sweep spec or a shipped one (" + ", ".join(specs.shipped()) + ")")
    r.add_argument("spec", metavar="SPEC")
    _launch_options(r, out_required=False)

    s = sub.add_parser("status", help="shards done and pending per table in an output directory")
    s.add_argument("out", metavar="DIR")

    f = sub.add_parser("figures", help="draw the paper's figures (and more) from DIR's tables into DIR/figures/")
    f.add_argument("out", metavar="DIR")
    rp = sub.add_parser("report", help="write DIR/report.html: the paper's claims against DIR's tables")
    rp.add_argument("out", metavar="DIR")
    return parser


def spec_from_options(job: str, section: dict) -> specs.Spec:
    """A one-section spec from command-line options; errors name the option (``--l-max``),
    not the spec key (``l_max``)."""
    section = {key: value for key, value in section.items() if value is not None}
    try:
        return specs.validate({"name": job, job: section})
    except UsageError as e:
        key, sep, rest = str(e).partition(":")
        if sep and key in section:
            raise UsageError(f"--{key.replace('_', '-')}:{rest}") from None
        raise


def _discrepancy_spec(a) -> specs.Spec:
    return spec_from_options("discrepancy", {
        "cells": a.cells, "inits": a.inits, "l_max": a.l_max, "k": a.k, "draws": a.draws, "seeds": a.seeds,
        "dtype": a.dtype, "shard_size": a.shard_size})


def _train_spec(a) -> specs.Spec:
    return spec_from_options("training", {
        "task": a.task, "cells": a.cells, "protocol": a.protocol, "seeds": a.seeds, "n_train": a.n_train,
        "max_epochs": a.max_epochs, "lr": a.lr, "bias": a.bias, "dtype": a.dtype, "checkpoint_s": a.checkpoint_s})


def grammar(a) -> int:
    """``grammar sample``: one string a line; ``grammar check``: 0 when all are valid, else 1."""
    import cells
    from . import reber
    if a.action == "sample":
        if a.seed < 0:
            raise UsageError(f"--seed: expected an integer >= 0, got {a.seed}")
        for s in reber.sample_set(cells.stream("cli", a.seed), a.n, a.embedded):
            print(s)
        return 0
    for s in a.strings:
        bad = sorted(set(s) - set(reber.ALPHABET))
        if bad:
            raise UsageError(f"STRING: {s!r} has symbol(s) {', '.join(map(repr, bad))} outside the alphabet "
                             f"{reber.ALPHABET}")
    invalid = 0
    for s in a.strings:
        states, pos = reber.walk(s, a.embedded)
        if pos is None:
            print(f"{s}: valid")
            continue
        invalid += 1
        allowed = "".join(reber.moves(states[-1] if states else reber.START, a.embedded))
        found = f"{s[pos]!r}" if pos < len(s) else "the end of the string"
        print(f"{s}: invalid at position {pos} (0-based): {found} where the grammar allows {', '.join(allowed)}")
    return 1 if invalid else 0


def launch(sweep: specs.Spec, a, argv: List[str]) -> int:
    address = resolve_address(a.address)
    store = Store(a.out or f"results/{sweep.name}")
    store.check_writable()
    command = "lksweep " + " ".join(shlex.quote(x) for x in argv)
    if not a.out:
        command += f" --out {shlex.quote(store.display())}"
    summary = runner.run(sweep, store, address=address, max_workers=a.max_workers, overwrite=a.overwrite,
                         resume_hint=command)
    runner.print_summary(summary)
    print(f"Resume or extend: {command}")
    if sweep.report:
        if not store.is_local:
            print(f"No report: figures and report need a local --out; copy the tables and run "
                  f"`lksweep report DIR`")
        else:
            analysis_command("report", store.root)
    return 0


def analysis_command(command: str, out: str) -> int:
    """``figures`` / ``report``: the analysis package (pandas and matplotlib, no Ray)."""
    from analysis import commands
    try:
        getattr(commands, command)(out)
    except commands.NoData as e:
        raise UsageError(str(e)) from None
    except commands.Corrupt as e:
        raise SweepError(str(e)) from None
    return 0


def status(a) -> int:
    from .status import print_status
    return print_status(Store(a.out))


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        a = build_parser().parse_args(argv)
        if a.command == "discrepancy":
            return launch(_discrepancy_spec(a), a, argv)
        if a.command == "train":
            return launch(_train_spec(a), a, argv)
        if a.command == "grammar":
            return grammar(a)
        if a.command == "run":
            return launch(specs.load(a.spec), a, argv)
        if a.command in ("figures", "report"):
            return analysis_command(a.command, a.out)
        return status(a)
    except (UsageError, SweepError) as e:
        print(f"lksweep: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a full disk, a lost mount: committed files stay as they were
        print(f"lksweep: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}; files committed "
              f"so far are intact, run the same command again to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
