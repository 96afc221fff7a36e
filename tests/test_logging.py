"""What lksweep says: the command line's messages and progress bar, --quiet and --verbose, and
the ``lksweep`` logger a program using the package quiets or redirects."""
import logging
import re

import pytest

from sweeps import runner
from sweeps import spec as specs
from sweeps.cli import main
from sweeps.store import Store

SWEEP = ["discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", "1-2", "--draws", 100, "--shard-size", 50]
BAR = re.compile(r"\d+/4 \[")        # tqdm's "n/total [elapsed..." of the sweep's 4 shards


@pytest.fixture
def lksweep_logger():
    """The ``lksweep`` logger as the test found it, restored after."""
    log = logging.getLogger("lksweep")
    saved = log.level, list(log.handlers), log.propagate
    yield log
    log.setLevel(saved[0])
    log.handlers[:] = saved[1]
    log.propagate = saved[2]


def run(capfd, *args):
    """``lksweep ARGS`` in-process on the session's Ray instance; file descriptors captured (the
    progress bar goes to the terminal's stderr even while Ray's output goes to its log)."""
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    assert code == 0, err
    return out, err


def test_quiet_silences_messages_and_the_bar_and_verbose_adds_debug_lines(ray_session, capfd, tmp_path,
                                                                          lksweep_logger):
    out, err = run(capfd, *SWEEP, "--out", tmp_path / "normal")
    assert "lksweep: discrepancy: 4 of 4 shard(s) to compute" in err and BAR.search(err)
    assert "debug" not in err and "4 shard(s) computed" in out
    out, err = run(capfd, *SWEEP, "--out", tmp_path / "quiet", "--quiet")
    assert err == "" and "4 shard(s) computed" in out         # results still print
    out, err = run(capfd, "--verbose", *SWEEP, "--out", tmp_path / "verbose")
    assert "lksweep: discrepancy: 4 of 4 shard(s) to compute" in err and BAR.search(err)
    assert "lksweep: debug: lksweep.sweeps.runner: submitted a discrepancy task" in err
    assert "lksweep: debug: lksweep.sweeps.runner: 2 group(s): 0 already committed, 0 shard(s) reused, 4 to " in err
    table = sorted((tmp_path / "quiet" / "discrepancy").rglob("*.parquet"))[0]
    table.write_bytes(table.read_bytes()[:100])
    out, err = run(capfd, *SWEEP, "--out", tmp_path / "quiet", "--quiet")    # a warning still shows
    (line,) = err.splitlines()
    assert line.startswith(f"lksweep: {table} is damaged: ") and "computing it again" in line
    assert "1 group(s) committed, 1 already done" in out


def test_a_library_call_says_its_messages_through_the_lksweep_logger(ray_session, tmp_path, capfd,
                                                                     lksweep_logger):
    got = []

    class Keep(logging.Handler):
        def emit(self, record):
            got.append((record.name, record.levelno, record.getMessage()))

    lksweep_logger.handlers[:] = [Keep()]
    lksweep_logger.setLevel(logging.DEBUG)
    sweep = specs.validate({"discrepancy": {"cells": "gru", "l_max": 4, "k": 2, "draws": 50}})
    done = runner.run(sweep, Store(str(tmp_path / "a")))
    assert done.computed == 1
    assert any(n == "lksweep.sweeps.runner" and lv == logging.INFO and m.startswith("lksweep: sweep: 1 of 1 shard(s)")
               for n, lv, m in got), got
    assert any(n == "lksweep.sweeps.runner" and lv == logging.DEBUG for n, lv, _ in got)
    assert "shard(s) to compute" not in capfd.readouterr().err     # redirected, not printed
    got.clear()
    lksweep_logger.setLevel(logging.WARNING)          # quieted: no info, no progress bar
    runner.run(specs.validate({"discrepancy": {"cells": "gru", "l_max": 4, "k": 3, "draws": 50}}),
               Store(str(tmp_path / "b")))
    assert got == [] and capfd.readouterr().err == ""
