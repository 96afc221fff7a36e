"""What the site says about the code comes from the code, when the site is built (mkdocs hooks).

- ``<!-- generated: NAME -->`` on a page is replaced by ``GENERATED[NAME]()``: every command's
  ``--help``, the spec format (``lksweep schema``), the shipped specs with their hashes, every
  table's columns (``lksweep schema --tables``), each claim's rules as the report prints them,
  what the site was built from.
- ``<!-- provenance: version=V commit=C[,C2] [spec=S hash=H] [bench=PATH] -->`` above a section of
  findings or performance figures says what its numbers came from. It is printed as a box with
  the commit's date (from git, where the checkout has its history); when the shipped spec ``S``
  hashes to something else today, the box says so, so numbers measured on an earlier spec are
  never presented as today's.

A marker with an unknown name, a spec that is not shipped, a commit git does not know or a
benchmark that is not there is a warning, which fails ``mkdocs build --strict``.
"""
import argparse
import contextlib
import io
import json
import logging
import re
import subprocess
from functools import cache, partial
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.lksweep")
ROOT = Path(__file__).resolve().parent.parent
HELP_WIDTH = 100      # argparse wraps to the terminal; the page must not depend on it
MARKER = re.compile(r"<!-- generated: ([\w-]+) -->")
PROVENANCE = re.compile(r"<!-- provenance: ([^>]*?) -->")


def commands(parser: argparse.ArgumentParser, prog: str = "lksweep"):
    """(``lksweep sub ...``, its parser) for the program and every command under it, depth first."""
    yield prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, f"{prog} {name}")


def cli() -> str:
    from sweeps.cli import build_parser
    parts = []
    for prog, parser in commands(build_parser()[0]):
        parser.formatter_class = partial(parser.formatter_class, width=HELP_WIDTH)
        parts.append(f"## {prog}\n\n```text\n{parser.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


def _cli_output(*argv: str) -> str:
    """What ``lksweep ARGV`` prints on stdout, run in this process."""
    from sweeps.cli import main
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"lksweep {' '.join(argv)} exited {code}")
    return buffer.getvalue()


def tables() -> str:
    return _cli_output("schema", "--tables")


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _keys(block: dict) -> str:
    """A table of an object schema's keys: default (or required) and meaning."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, prop in block["properties"].items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        default = "required" if key in block.get("required", ()) else default
        rows.append(f"| `{key}` | {_cell(default)} | {_cell(prop.get('description', ''))} |")
    return "\n".join(rows)


def spec() -> str:
    from sweeps.job import jobs
    schema = json.loads(_cli_output("schema"))
    sections = {job.name for job in jobs().values()}
    top = {key: prop for key, prop in schema["properties"].items() if key not in sections}
    needs = ", ".join(f"`{key}`" for alt in schema.get("anyOf", []) for key in alt["required"])
    parts = ["## Top-level keys\n", f"A spec holds at least one of {needs}.\n", _keys({"properties": top}), ""]
    for section, prop in schema["properties"].items():
        if section in top:
            continue
        block = next(alt for alt in prop["oneOf"] if alt.get("type") == "object")
        parts += [f"## `{section}`\n", "One block of these keys, or a list of blocks.\n", _keys(block), ""]
    parts += ['??? note "The whole JSON Schema (`lksweep schema`)"', "",
              "    ```json", *("    " + line for line in json.dumps(schema, indent=1).splitlines()), "    ```", ""]
    return "\n".join(parts)


def specs() -> str:
    from sweeps import spec as sweep_spec
    parts = []
    for name in sweep_spec.shipped():
        text = (ROOT / "sweeps" / "specs" / f"{name}.yaml").read_text()
        parts.append(f"## {name}\n\n`lksweep run {name}` · spec hash `{sweep_spec.load(name).hash}`\n\n"
                     f"```yaml\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def claims() -> str:
    from analysis.claims import CLAIMS
    from analysis.rules import Verdict
    parts = ["Verdicts, a closed set: " + ", ".join(f"*{v}*" for v in Verdict) + ".\n"]
    for c in CLAIMS.values():
        reads = ", ".join(f"`{t}`" for t in c.tables)
        rules = "\n\n".join(r.text for r in c.rules)
        parts.append(f"## Claim {c.number}\n\n> {c.statement}\n\nReads the tables {reads}.\n\n{rules}\n")
    return "\n".join(parts)


def build() -> str:
    from sweeps import __version__
    return f"This site was built from lksweep {__version__}{_describe()}."


GENERATED = {"cli": cli, "tables": tables, "spec": spec, "specs": specs, "claims": claims, "build": build}


def _git(*args: str):
    """git's answer in this checkout, or None where there is no git or it says no."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _describe() -> str:
    described = _git("describe", "--always", "--dirty", "--tags")
    return f", commit {described}" if described else ""


@cache
def _has_history() -> bool:
    """A checkout with its whole history, where every recorded commit can be looked up."""
    return _git("rev-parse", "--is-shallow-repository") == "false"


def provenance(fields: str, where: str) -> str:
    """The box printed for a provenance marker's ``key=value`` fields (``where``: the page)."""
    f = dict(item.split("=", 1) for item in fields.split())
    if "version" not in f or "commit" not in f:
        log.warning(f"{where}: a provenance marker needs version= and commit=: {fields!r}")
    recorded = []
    for commit in f.get("commit", "?").split(","):
        date = _git("show", "-s", "--format=%cs", f"{commit}^{{commit}}") if _has_history() else None
        if _has_history() and date is None:
            log.warning(f"{where}: provenance commit {commit} is not in this repository's history")
        recorded.append(f"`{commit}`" + (f" ({date})" if date else ""))
    said = [f"lksweep {f.get('version', '?')}, recorded at commit {' and '.join(recorded)}"]
    stale = ""
    if "spec" in f:
        from sweeps import spec as sweep_spec
        name = f["spec"]
        if name not in sweep_spec.shipped():
            log.warning(f"{where}: provenance names spec {name!r}, which is not shipped")
            return ""
        said.append(f"spec `{name}` hash `{f.get('hash', '?')}`")
        today = sweep_spec.load(name).hash
        if today != f.get("hash"):
            specs_page = "../" * where.count("/") + "reference/specs.md"
            stale = (f"The shipped spec `{name}` hashes to `{today}` today: its settings changed since (see "
                     f"[Shipped specs]({specs_page})); these numbers are the earlier spec's until it is run "
                     f"again and this section updated.")
    if "bench" in f:
        if not (ROOT / f["bench"]).exists():
            log.warning(f"{where}: provenance names {f['bench']}, which does not exist")
        said.append(f"measured with `{f['bench']}`")
    box = [f'!!! {"warning" if stale else "info"} "Provenance"', "", f"    {'; '.join(said)}."]
    return "\n".join(box + ([f"\n    {stale}"] if stale else []) + [""])


def on_page_markdown(markdown: str, page, config, files) -> str:
    where = page.file.src_uri

    def generate(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATED:
            log.warning(f"{where}: no generator {name!r} (known: {', '.join(GENERATED)})")
            return match.group(0)
        text = GENERATED[name]()
        if not text.strip():
            log.warning(f"{where}: generator {name!r} produced nothing")
        return text

    markdown = MARKER.sub(generate, markdown)
    return PROVENANCE.sub(lambda m: provenance(m.group(1), where), markdown)
