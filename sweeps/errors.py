"""Errors the command line turns into one line and an exit code."""


class UsageError(ValueError):
    """Bad input: a spec, an option or an output location. Exit code 2, nothing written."""

    exit_code = 2


class SweepError(RuntimeError):
    """A failure while running (a locked directory, a lost cluster). Exit code 1."""

    exit_code = 1
