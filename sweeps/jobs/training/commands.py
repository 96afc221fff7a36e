"""``lksweep grammar sample|check``: the Reber grammars from the command line."""
import argparse
import os
import sys

import cells

from ... import console
from ...errors import UsageError
from ...settings import Int
from . import reber


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    sample = actions.add_parser("sample", help="print N strings of the grammar, one a line")
    sample.add_argument("-n", default="1", help="strings to sample (default 1)")
    sample.add_argument("--seed", default="0", help="sampling seed (default 0)")
    check = actions.add_parser("check", help="exit 0 when every STRING is valid, 1 otherwise")
    check.add_argument("strings", nargs="+", metavar="STRING")
    for action in (sample, check):
        action.add_argument("--embedded", action="store_true", help="the embedded Reber grammar")


def grammar(a) -> int:
    """``grammar sample``: one string a line; ``grammar check``: 0 when all are valid, else 1."""
    if a.action == "sample":
        n, seed = Int(minimum=1).parse_text(a.n, "-n"), Int(minimum=0).parse_text(a.seed, "--seed")
        rng = cells.stream("cli", seed)
        try:
            for _ in range(n):   # one string at a time (the strings of reber.sample_set): memory stays flat
                console.out(reber.sample(rng, a.embedded))
        except BrokenPipeError:   # the reader stopped early (`| head`): so do we, quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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
            console.out(f"{s}: valid")
            continue
        invalid += 1
        allowed = "".join(reber.moves(states[-1] if states else reber.START, a.embedded))
        found = f"{s[pos]!r}" if pos < len(s) else "the end of the string"
        console.out(f"{s}: invalid at position {pos} (0-based): {found} where the grammar allows {', '.join(allowed)}")
    return 1 if invalid else 0


COMMANDS = {"grammar": ("sample or check (embedded) Reber strings", add_arguments, grammar)}
