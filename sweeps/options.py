"""Spec values as users write them, checked at the boundary: integer ranges (``7``,
``1-20``, ``0,2,5-7`` or a YAML list), single integers, positive numbers and names from a
known set. Every error names the spec key (the CLI turns it into the option's name)."""
from typing import Iterable, List, Sequence, Union

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


def one_int(value, key: str, minimum: int) -> int:
    """A single integer >= ``minimum`` (``"12"`` from the command line is accepted)."""
    if isinstance(value, str):
        ints = parse_ints(value, key, minimum)
        if len(ints) == 1 and "-" not in value and "," not in value:
            return ints[0]
    elif isinstance(value, int) and not isinstance(value, bool):
        if value < minimum:
            raise UsageError(f"{key}: must be >= {minimum}, got {value}")
        return value
    raise UsageError(f"{key}: expected one integer >= {minimum}, got {value!r}")


def positive(value, key: str) -> float:
    """A number > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number > 0:
        raise UsageError(f"{key}: expected a positive number, got {value!r}")
    return number


def names(value, key: str, known: Iterable[str]) -> List[str]:
    """Distinct names, in order, from a comma-separated string or a list; each in ``known``."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(n, str) for n in items):
        raise UsageError(f"{key}: expected a comma-separated list of names, got {value!r}")
    items = [n.strip() for n in items]
    for n in items:
        if n not in known:
            raise UsageError(f"{key}: unknown name {n!r}; allowed: {', '.join(sorted(known))}")
    return list(dict.fromkeys(items))
