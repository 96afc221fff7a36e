"""What lksweep says, and where it goes.

- **Messages** (what a sweep will cost, a damaged file set aside, a plugin that failed to
  load, debug detail) go through :mod:`logging`, to the logger of the module that says them,
  ``lksweep.<module>`` (``lksweep.sweeps.runner``, ``lksweep.cells``): every one is a child of
  the ``lksweep`` logger, so a notebook or another program quiets or redirects them all
  there, e.g. ``logging.getLogger("lksweep").setLevel(logging.WARNING)`` or ``.addHandler(...)``.
  The package adds no handler of its own: without one, Python shows warnings and errors on
  stderr. The progress bar of a sweep shows unless that logger's level is above INFO.
- **Output** of a command (a sweep's summary, the status table, the figures written, the
  schema) is written by :func:`out` on stdout: the one ``print`` of the package.
- The command line (:func:`configure`) sends messages to stderr as written, one line each;
  ``--quiet`` keeps warnings and errors (and hides the bar), ``--verbose`` adds debug lines.
"""
import logging
import sys

ROOT = "lksweep"
LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}


def logger(module: str) -> logging.Logger:
    """The logger of ``module`` (its ``__name__``), a child of ``lksweep``."""
    return logging.getLogger(f"{ROOT}.{module}")


def out(*lines: str, file=None) -> None:
    """A command's output, one line per argument, on stdout (or ``file``)."""
    print(*lines, sep="\n", file=file or sys.stdout)


def progress_shown() -> bool:
    """Whether a sweep shows its progress bar: unless ``lksweep`` is set above INFO."""
    return logging.getLogger(ROOT).level <= logging.INFO


class _Stderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a message comes (pytest replaces it, and while
    Ray runs its file descriptor goes to the Ray log, as every other write to it does)."""

    stream = property(lambda self: sys.stderr, lambda self, value: None)


def configure(verbosity: str = "normal") -> None:
    """The command line's logging: ``lksweep`` messages at ``verbosity`` (quiet, normal,
    verbose) on stderr, as written; debug lines carry the logger's name."""
    root = logging.getLogger(ROOT)
    for h in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(h)
    handler = _Stderr()
    handler.setFormatter(_Format())
    root.addHandler(handler)
    root.setLevel(LEVELS[verbosity])
    root.propagate = False


class _Format(logging.Formatter):
    """Messages as written; a warning that does not name lksweep itself is said as one
    (``lksweep: warning: ...``), debug lines carry their logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno < logging.INFO:
            return f"lksweep: debug: {record.name}: {text}"
        if record.levelno >= logging.WARNING and not text.startswith("lksweep:"):
            return f"lksweep: warning: {text}"
        return text
