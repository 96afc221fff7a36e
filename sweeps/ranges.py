"""Integer ranges as users write them: ``7``, ``1-20``, ``0,2,5-7`` or a YAML list."""
from typing import List, Sequence, Union

from .errors import UsageError

RangeLike = Union[int, str, Sequence[Union[int, str]]]


def parse_ints(value: RangeLike, name: str, minimum: int = 0) -> List[int]:
    """Expand ``value`` into a sorted list of distinct ints, each >= ``minimum``.

    ``name`` is the option or spec key, used in error messages.
    """
    if isinstance(value, bool):
        raise UsageError(f"{name}: expected integers such as 3, 1-20 or 0,2,5-7, got {value!r}")
    if isinstance(value, int):
        parts: list = [value]
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise UsageError(f"{name}: expected integers such as 3, 1-20 or 0,2,5-7, got {value!r}")
    out = set()
    for part in parts:
        out.update(_expand(part, name))
    if not out:
        raise UsageError(f"{name}: expected at least one integer, got {value!r}")
    low = min(out)
    if low < minimum:
        raise UsageError(f"{name}: must be >= {minimum}, got {low}")
    return sorted(out)


def _expand(part, name: str) -> range:
    if isinstance(part, bool) or not isinstance(part, (int, str)):
        raise UsageError(f"{name}: expected integers such as 3, 1-20 or 0,2,5-7, got {part!r}")
    if isinstance(part, int):
        return range(part, part + 1)
    text = part.strip()
    lo, sep, hi = text.partition("-")
    if not sep:
        return range(_int(text, name), _int(text, name) + 1)
    if not lo:  # a leading '-' is a negative number, which no option here accepts
        raise UsageError(f"{name}: values must be non-negative integers, got {text!r}")
    a, b = _int(lo, name), _int(hi, name)
    if b < a:
        raise UsageError(f"{name}: range {text!r} is reversed; write {b}-{a}")
    return range(a, b + 1)


def _int(text: str, name: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(f"{name}: {text!r} is not an integer (expected e.g. 3, 1-20 or 0,2,5-7)") from None


def format_ints(values: Sequence[int]) -> str:
    """The inverse of :func:`parse_ints`: ``[0, 1, 2, 5]`` -> ``'0-2,5'``."""
    out, run = [], []
    for v in sorted(values):
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(_run(run))
        run = [v]
    if run:
        out.append(_run(run))
    return ",".join(out)


def _run(run: List[int]) -> str:
    return str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}"
