"""Job settings, declared once.

A job lists its settings as :class:`Option` s (name, kind of value, default, help). Everything
else is derived from that one declaration:

- validation of a spec block (:meth:`Settings.parse`): defaults filled in, values checked and
  normalised, every error one line that names the key (``k: range '20-1' is reversed``) or,
  for a command line, the flag (``--k: ...``);
- the flags of the job's command (:func:`add_flags`): ``l_max`` becomes ``--l-max``, with the
  option's help and default;
- the JSON Schema of a block (:meth:`Settings.json_schema`), which ``lksweep schema`` prints.

A validated block is an instance of the job's settings class, a frozen dataclass made from its
options (:func:`settings_class`); that object, not a loose dict, is what the job plans from.
Integer options accept the range syntax users write: ``7``, ``1-20``, ``0,2,5-7`` or a YAML
list of those.
"""
import argparse
import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import UsageError, shown


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()
# An integer option holds at most this many values (counted before anything is expanded).
MAX_VALUES = 10**6
# The largest value of a setting the tables store as a 32-bit integer (seeds, k, l, epochs).
INT32 = 2**31 - 1


def _range_pattern(maximum: Optional[int]) -> str:
    """The regular expression of one item of the range syntax (``3`` or ``1-20``) in a JSON
    Schema; with a ``maximum``, a number has no more digits than it (a pattern cannot say more)."""
    number = r"\d+" if maximum is None else rf"\d{{1,{len(str(maximum))}}}"
    return rf"\s*{number}\s*(-\s*{number}\s*)?"


class Kind:
    """How one option's value is written, checked and described."""

    def parse(self, value, key: str):
        raise NotImplementedError

    def schema(self) -> Dict:
        raise NotImplementedError


@dataclass(frozen=True)
class Ints(Kind):
    """Distinct integers from ``minimum`` to ``maximum`` (None: no bound), sorted: ``3``,
    ``1-20``, ``0,2,5-7`` or a list; at most :data:`MAX_VALUES` of them (counted before
    expanding, so ``0-10**20`` is refused at once rather than filling memory)."""

    minimum: int = 0
    maximum: Optional[int] = None

    def parse(self, value, key: str) -> List[int]:
        if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
            raise UsageError(f"{key}: expected integers such as 3, 1-20 or 0,2,5-7, got {shown(value)}")
        parts = [value] if isinstance(value, int) else value.split(",") if isinstance(value, str) else list(value)
        ranges = [_expand(part, key) for part in parts]
        count = sum(r.stop - r.start for r in ranges)
        if not count:
            raise UsageError(f"{key}: expected at least one integer, got {shown(value)}")
        if count > MAX_VALUES:
            raise UsageError(f"{key}: {shown(value)} is {count:,} values; an option takes at most {MAX_VALUES:,} "
                             f"(split the sweep into several)")
        low = min(r.start for r in ranges)
        if low < self.minimum:
            raise UsageError(f"{key}: must be >= {self.minimum}, got {low}")
        _check_maximum(max(r.stop - 1 for r in ranges), self.maximum, key)
        return sorted(set().union(*ranges))

    def schema(self) -> Dict:
        item = _range_pattern(self.maximum)
        one = [_int_schema(self.minimum, self.maximum), {"type": "string", "pattern": f"^{item}(,{item})*$"}]
        return {"oneOf": [*one, {"type": "array", "items": {"oneOf": one}, "minItems": 1}]}


def _check_maximum(high: int, maximum: Optional[int], key: str) -> None:
    if maximum is not None and high > maximum:
        raise UsageError(f"{key}: must be <= {maximum:,}, got {high:,}")


def _int_schema(minimum: int, maximum: Optional[int]) -> Dict:
    return {"type": "integer", "minimum": minimum, **({} if maximum is None else {"maximum": maximum})}


def _expand(part, key: str) -> range:
    if isinstance(part, bool) or not isinstance(part, (int, str)):
        raise UsageError(f"{key}: expected integers such as 3, 1-20 or 0,2,5-7, got {shown(part)}")
    if isinstance(part, int):
        return range(part, part + 1)
    text = part.strip()
    lo, sep, hi = text.partition("-")
    if not sep:
        return range(_int(text, key), _int(text, key) + 1)
    if not lo:  # a leading '-' is a negative number, which no option here accepts
        raise UsageError(f"{key}: values must be non-negative integers, got {shown(text)}")
    a, b = _int(lo, key), _int(hi, key)
    if b < a:
        raise UsageError(f"{key}: range {shown(text)} is reversed; write {b}-{a}")
    return range(a, b + 1)


def _int(text: str, key: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(f"{key}: {shown(text)} is not an integer (expected e.g. 3, 1-20 or 0,2,5-7)") from None


@dataclass(frozen=True)
class Ranges(Kind):
    """Inclusive ranges of integers, each its own value: ``20-24`` (``7`` is ``7-7``), a
    comma-separated list ``5-8,20-24`` or a list of those; normalised to ``[[lo, hi], ...]`` in
    the order given, each within [``minimum``, ``maximum``] (``floor`` says what the minimum is)."""

    minimum: int
    maximum: int
    floor: str

    def parse(self, value, key: str) -> List[List[int]]:
        if isinstance(value, bool) or not isinstance(value, (int, str, list, tuple)):
            raise UsageError(f"{key}: expected ranges such as 20-24 or 5-8,20-24, got {value!r}")
        parts = [value] if isinstance(value, int) else value.split(",") if isinstance(value, str) else list(value)
        out = []
        for part in parts:
            r = _expand(part, key)
            lo, hi = r.start, r.stop - 1
            if hi < self.minimum:
                raise UsageError(f"{key}: nothing lies in {lo}-{hi}: {self.floor}; write a range from {self.minimum}, "
                                 f"e.g. {self.minimum}-{self.minimum + 4}")
            if lo < self.minimum:
                raise UsageError(f"{key}: range {lo}-{hi} starts below {self.minimum}: {self.floor}; write "
                                 f"{self.minimum}-{hi}")
            if hi > self.maximum:
                raise UsageError(f"{key}: range {lo}-{hi} ends above {self.maximum}, the largest allowed; write "
                                 f"{min(lo, self.maximum)}-{self.maximum} or less")
            out.append([lo, hi])
        return [list(t) for t in dict.fromkeys(map(tuple, out))]

    def schema(self) -> Dict:
        one = {"type": "string", "pattern": r"^\s*\d+\s*(-\s*\d+\s*)?$"}
        return {"oneOf": [{"type": "integer", "minimum": self.minimum, "maximum": self.maximum},
                          {"type": "string", "pattern": r"^\s*\d+\s*(-\s*\d+\s*)?(,\s*\d+\s*(-\s*\d+\s*)?)*$"},
                          {"type": "array", "items": {"oneOf": [{"type": "integer"}, one]}, "minItems": 1}]}


@dataclass(frozen=True)
class Int(Kind):
    """One integer from ``minimum`` to ``maximum`` (None: no bound), a multiple of
    ``multiple_of``; ``"12"`` is accepted."""

    minimum: int = 0
    multiple_of: int = 1
    maximum: Optional[int] = None

    def parse(self, value, key: str) -> int:
        if isinstance(value, str) and "," not in value and "-" not in value.strip()[1:]:
            value = _int(value, key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(f"{key}: expected one integer >= {self.minimum}, got {shown(value)}")
        if value < self.minimum:
            raise UsageError(f"{key}: must be >= {self.minimum}, got {value}")
        _check_maximum(value, self.maximum, key)
        if value % self.multiple_of:
            raise UsageError(f"{key}: must be a multiple of {self.multiple_of}, got {value}")
        return value

    def schema(self) -> Dict:
        s = _int_schema(self.minimum, self.maximum)
        return {**s, "multipleOf": self.multiple_of} if self.multiple_of > 1 else s


@dataclass(frozen=True)
class Number(Kind):
    """A number > 0."""

    def parse(self, value, key: str) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not number > 0 or math.isinf(number):
            raise UsageError(f"{key}: expected a positive number, got {shown(value)}")
        return number

    def schema(self) -> Dict:
        return {"type": "number", "exclusiveMinimum": 0}


Values = Union[Sequence[str], Callable[[], Iterable[str]]]


def _values(values: Values) -> List[str]:
    return list(values() if callable(values) else values)


@dataclass(frozen=True)
class Choice(Kind):
    """One name from ``values`` (a sequence, or a function returning one, for registries)."""

    values: Values

    def parse(self, value, key: str) -> str:
        allowed = _values(self.values)
        if value not in allowed:
            raise UsageError(f"{key}: expected one of {', '.join(allowed)}, got {shown(value)}")
        return value

    def schema(self) -> Dict:
        return {"enum": _values(self.values)}


@dataclass(frozen=True)
class Choices(Kind):
    """Distinct names from ``values``, in the order given: ``a,b`` or a list."""

    values: Values

    def parse(self, value, key: str) -> List[str]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(n, str) for n in items):
            raise UsageError(f"{key}: expected a comma-separated list of names, got {shown(value)}")
        allowed = _values(self.values)
        items = [n.strip() for n in items]
        for n in items:
            if n not in allowed:
                raise UsageError(f"{key}: unknown name {shown(n)}; allowed: {', '.join(sorted(allowed))}")
        return list(dict.fromkeys(items))

    def schema(self) -> Dict:
        names = _values(self.values)
        alt = "|".join(re.escape(n) for n in names)
        return {"oneOf": [{"type": "string", "pattern": rf"^\s*({alt})\s*(,\s*({alt})\s*)*$"},
                          {"type": "array", "items": {"enum": names}, "minItems": 1}]}


@dataclass(frozen=True)
class Families(Kind):
    """Distinct names, each one of ``values`` or ``FAMILY:X`` for a family in ``families`` and X a
    number > 0, in the order given: ``normal,gain:0.5,gain:2`` or a list. X is normalised
    (``gain:2.0`` is ``gain:2``), so one value has one name."""

    values: Values
    families: Tuple[str, ...]

    def parse(self, value, key: str) -> List[str]:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(n, str) for n in items):
            raise UsageError(f"{key}: expected a comma-separated list of names, got {shown(value)}")
        allowed, out = _values(self.values), []
        for item in (n.strip() for n in items):
            family, sep, x = item.partition(":")
            if sep and family in self.families:
                number = _positive(x)
                if number is None:
                    raise UsageError(f"{key}: {shown(item)} needs a number > 0 after '{family}:' (e.g. {family}:0.5)")
                item = f"{family}:{number:g}"
            elif item not in allowed:
                raise UsageError(f"{key}: unknown name {shown(item)}; allowed: {', '.join(sorted(allowed))}"
                                 + "".join(f" or {f}:X with X > 0" for f in self.families))
            out.append(item)
        return list(dict.fromkeys(out))

    def schema(self) -> Dict:
        alt = "|".join([*(re.escape(n) for n in _values(self.values)),
                        *(rf"{re.escape(f)}:\s*(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?" for f in self.families)])
        item = rf"\s*({alt})\s*"
        return {"oneOf": [{"type": "string", "pattern": rf"^{item}(,{item})*$"},
                          {"type": "array", "items": {"type": "string", "pattern": rf"^{item}$"}, "minItems": 1}]}


@dataclass(frozen=True)
class Family(Families):
    """One name, as :class:`Families` allows them: ``normal`` or ``gain:0.5``."""

    def parse(self, value, key: str) -> str:
        if not isinstance(value, str) or "," in value:
            raise UsageError(f"{key}: expected one name (e.g. normal or gain:2), got {shown(value)}")
        return super().parse(value, key)[0]

    def schema(self) -> Dict:
        return super().schema()["oneOf"][0]


def _positive(text: str) -> Optional[float]:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if x > 0 and math.isfinite(x) else None


@dataclass(frozen=True)
class Flag(Kind):
    """true or false (a command line writes ``--flag true``; yes/no and 1/0 are accepted too)."""

    WORDS: ClassVar[Dict[str, bool]] = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

    def parse(self, value, key: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self.WORDS:
            return self.WORDS[value.strip().lower()]
        raise UsageError(f"{key}: expected true or false, got {shown(value)}")

    def schema(self) -> Dict:
        return {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": sorted(self.WORDS)}]}


@dataclass(frozen=True)
class Sized(Kind):
    """Names with sizes, ``name:K`` items such as ``vanilla:18,gru:10`` (K in the range syntax:
    ``gru:4-8``), normalised to a list of ``"name:K"`` strings, one per size; K from 1 to
    ``maximum`` (None: no bound). With ``sizes`` (name -> K), a name alone stands for its size
    there: ``lstm`` is ``lstm:8``."""

    values: Values
    sizes: Optional[Dict[str, int]] = None
    maximum: Optional[int] = None

    def parse(self, value, key: str) -> List[str]:
        example = "vanilla:18,gru:10" + (" or vanilla,gru" if self.sizes else "")
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise UsageError(f"{key}: expected NAME:K items such as {example}, got {shown(value)}")
        allowed, out = _values(self.values), []
        for item in items:
            name, sep, k = str(item).strip().partition(":")
            if name not in allowed:
                raise UsageError(f"{key}: unknown name {shown(name)}; allowed: {', '.join(sorted(allowed))}")
            if not sep and name not in (self.sizes or {}):
                raise UsageError(f"{key}: expected NAME:K (e.g. gru:10), got {shown(item)}")
            out += [f"{name}:{kk}" for kk in (Ints(minimum=1, maximum=self.maximum).parse(k, key) if sep
                                               else [self.sizes[name]])]
        return list(dict.fromkeys(out))

    def schema(self) -> Dict:
        alt = "|".join(re.escape(n) for n in _values(self.values))
        size = _range_pattern(self.maximum)
        item = rf"\s*({alt})" + (rf"(:{size})?\s*" if self.sizes else rf":{size}")
        return {"oneOf": [{"type": "string", "pattern": rf"^{item}(,{item})*$"},
                          {"type": "array", "items": {"type": "string", "pattern": rf"^{item}$"}, "minItems": 1}]}

    @staticmethod
    def split(item: str) -> Tuple[str, int]:
        name, _, k = item.partition(":")
        return name, int(k)


@dataclass(frozen=True)
class Option:
    """One setting of a job. ``default`` is REQUIRED, a value, or None for "decided by other
    settings" (the help says by which)."""

    name: str
    kind: Kind
    help: str
    default: Any = REQUIRED

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


class Settings:
    """Base of the settings classes :func:`settings_class` makes; one instance is one block."""

    options: ClassVar[Tuple[Option, ...]] = ()
    section: ClassVar[str] = ""

    @classmethod
    def parse(cls, raw, where: str = "", flags: bool = False) -> "Settings":
        """Validate one block (a mapping of key -> value as written). ``where`` prefixes
        errors about the block itself; value errors name the key, or the flag when ``flags``."""
        where = where or cls.section
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
        known = {o.name: o for o in cls.options}
        unknown = set(raw) - set(known)
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                             f"allowed: {', '.join(sorted(known))}")
        values = {}
        for o in cls.options:
            value = raw.get(o.name)
            label = o.flag if flags else o.name
            if value is None:
                if o.required:
                    raise UsageError(f"{where}: missing required key {o.name!r}" if not flags
                                     else f"the following arguments are required: {o.flag}")
                values[o.name] = o.default if o.default is None else o.kind.parse(o.default, label)
            else:
                values[o.name] = o.kind.parse(value, label)
        return cls(**values)

    def to_dict(self) -> Dict[str, Any]:
        """The normalised block, JSON-able; :meth:`parse` accepts it as it is."""
        return dataclasses.asdict(self)

    @classmethod
    def json_schema(cls) -> Dict:
        props = {}
        for o in cls.options:
            p = {**o.kind.schema(), "description": o.help}
            if not o.required and o.default is not None:
                p["default"] = o.default
            props[o.name] = p
        return {"type": "object", "properties": props, "additionalProperties": False,
                "required": [o.name for o in cls.options if o.required]}


def settings_class(name: str, section: str, options: Sequence[Option]) -> type:
    """A frozen dataclass with one field per option, subclass of :class:`Settings`."""
    fields = [(o.name, Any) for o in options]
    return dataclasses.make_dataclass(name, fields, bases=(Settings,), frozen=True,
                                      namespace={"options": tuple(options), "section": section})


def add_flags(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """One flag per option; values stay strings here and are checked by :meth:`Settings.parse`."""
    for o in options:
        default = "" if o.required or o.default is None else f" (default {_show(o.default)})"
        parser.add_argument(o.flag, dest=o.name, metavar=o.name.upper(), required=o.required, help=o.help + default)


def from_flags(args: argparse.Namespace, options: Sequence[Option]) -> Dict[str, Any]:
    """The block the given flags describe (flags left out are absent, so defaults apply)."""
    return {o.name: getattr(args, o.name) for o in options if getattr(args, o.name, None) is not None}


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
