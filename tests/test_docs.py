"""The documentation site builds with ``mkdocs build --strict``, its reference pages hold every
command, spec key, table and column the code has, and a broken link, an unknown generated
section or a provenance naming a commit that does not exist fails the build; the README links
only to files that exist."""
import html
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps.cli import build_parser
from sweeps.job import jobs
from sweeps.spec import json_schema

ROOT = Path(__file__).resolve().parent.parent
QUIET = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}   # Material's notice about MkDocs 2 (not a build warning)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(out)], capture_output=True, text=True, env=QUIET, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def page(site: Path, name: str) -> str:
    return html.unescape((site / name / "index.html").read_text())


def programs(parser, prog="lksweep"):
    """Every command line the parser knows (``lksweep``, ``lksweep grammar sample``, ...), walked
    here apart from the page's own generator."""
    yield prog
    for action in parser._actions:
        for name, sub in (getattr(action, "choices", None) or {}).items():
            if hasattr(sub, "_actions"):
                yield from programs(sub, f"{prog} {name}")


def test_the_command_line_page_has_every_command_and_its_help(site):
    text = page(site, "reference/cli")
    found = list(programs(build_parser()[0]))
    assert {"lksweep run", "lksweep grammar sample", "lksweep schema"} <= set(found)
    for prog in found:
        assert f"usage: {prog} " in text, prog


def test_the_tables_page_has_every_table_and_column(site):
    text = page(site, "reference/tables")
    for job in jobs().values():
        for table, schema in job.schemas.items():
            assert f"{table} ({job.name} job)" in text, table
            section = text.split(f"{table} ({job.name} job)", 1)[1]
            for column in schema.names:
                assert f"<code>{column}</code>" in section, (table, column)


def test_the_spec_page_has_every_section_and_key(site):
    text = page(site, "reference/spec")
    for section, prop in json_schema()["properties"].items():
        assert f"<code>{section}</code>" in text, section
        for alt in prop.get("oneOf", []):
            for key in alt.get("properties", {}):
                assert f"<code>{key}</code>" in text, (section, key)


def test_findings_say_where_their_numbers_came_from(site):
    text = page(site, "findings")
    assert text.count("Provenance") >= 4 and "spec paper hash" in text.replace("<code>", "").replace("</code>", "")


def build_in_process(tmp_path, caplog, markdown: str):
    """mkdocs build --strict of the site's configuration on one page holding ``markdown``."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(f"# A page\n\n{markdown}\n")
    config = load_config(str(ROOT / "mkdocs.yml"), docs_dir=str(docs), site_dir=str(tmp_path / "site"),
                         nav=[{"Home": "index.md"}], strict=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mkdocs"):
        try:
            config.plugins.on_startup(command="build", dirty=False)
            build(config)
        except Abort:
            return False, caplog.text
        finally:
            config.plugins.on_shutdown()
    return True, caplog.text


def full_history() -> bool:
    done = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == "false"


@pytest.mark.parametrize("markdown, said", [
    ("See [the tables](reference/tables.md).", "reference/tables.md"),
    ("<!-- generated: nope -->", "no generator 'nope'"),
    pytest.param("<!-- provenance: version=0.1.0 commit=0000000 -->", "not in this repository's history",
                 marks=pytest.mark.skipif(not full_history(), reason="a checkout without its git history")),
    ("<!-- provenance: version=0.1.0 commit=56318e6 spec=nope hash=0 -->", "spec 'nope', which is not shipped"),
])
def test_a_broken_link_or_stale_marker_fails_the_strict_build(tmp_path, caplog, markdown, said):
    built, log = build_in_process(tmp_path, caplog, markdown)
    assert not built and said in log, log


def test_a_sound_page_builds(tmp_path, caplog):
    built, log = build_in_process(tmp_path, caplog, "<!-- provenance: version=0.1.0 commit=56318e6 -->")
    assert built, log
    assert "recorded at commit" in (tmp_path / "site" / "index.html").read_text()


def test_the_readme_links_only_to_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert "://" in link or (ROOT / link).exists(), link
