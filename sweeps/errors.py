"""Errors the command line turns into one line and an exit code."""
import reprlib

# An error message quotes the value it refuses; a value read from a file may be huge (a list
# of 10^9 items), so a message shows at most this much of it.
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4
_SHOWN.maxlevel = 2


def shown(value) -> str:
    """``repr(value)`` cut short, for error messages about input of any size."""
    try:
        return _SHOWN.repr(value)
    except ValueError:   # an integer too long to print
        return f"<a {type(value).__name__} too long to show>"


class UsageError(ValueError):
    """Bad input: a spec, an option or an output location. Exit code 2, nothing written."""

    exit_code = 2


class SweepError(RuntimeError):
    """A failure while running (a locked directory, a lost cluster). Exit code 1."""

    exit_code = 1
