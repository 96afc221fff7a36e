"""Job settings, declared once.

A job lists its settings as :class:`Option` s (name, kind of value, default, help). Everything
else is derived from that one declaration:

- validation of a spec block (:meth:`Settings.parse`): defaults filled in, values checked and
  normalised, every error one line that names the key (``k: range '20-1' is reversed``) or,
  for a command line, the flag (``--k: ...``);
- the flags of the job's command (:func:`add_flags`): ``l_max`` becomes ``--l-max``, with the
  option's help and default;
- the JSON Schema of a block (:meth:`Settings.json_schema`), which ``lksweep schema`` prints.

One grammar per kind of value. A kind declares the JSON forms it accepts as a JSON Schema
fragment (:meth:`Kind.schema`), whose string forms are regular expressions built here from
the same pieces the validator matches (:data:`DIGITS`, :func:`int_range`, :data:`POSITIVE`,
:func:`names`), and a converter from an accepted value to its typed setting. So the schema and
the validator accept the same values (``tests/test_settings.py`` checks it on generated specs),
with two checks no JSON Schema can state: a range must not be reversed (``20-1``), and an
integer option holds at most :data:`MAX_VALUES` values. A command line writes every value as
text; each kind reads its text (:meth:`Kind.from_text`) into the JSON value a spec would hold.

A validated block is an instance of the job's settings class, a frozen dataclass made from its
options (:func:`settings_class`) with typed fields; that object, not a loose dict, is what the
job plans from. Integer options accept the range syntax users write: ``7``, ``1-20``,
``0,2,5-7`` or a YAML list of those.
"""
import argparse
import dataclasses
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import UsageError, shown


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()
# An integer option holds at most this many values (counted before anything is expanded).
MAX_VALUES = 10**6
# The largest value of a list of integers (a seed, a size): 18 digits.
LARGEST = 10**18 - 1
# The largest value of a setting the tables store as a 32-bit integer (seeds, k, l, epochs).
INT32 = 2**31 - 1

# ---------------------------------------------------------------------- the grammar's pieces
DIGITS = "[0-9]+"
# A number > 0 as text: a non-zero digit somewhere, and at most a few dozen digits and a
# two-digit exponent, so that its float is neither 0 nor infinite.
POSITIVE = (r"([0-9]{0,19}[1-9][0-9]{0,19}(\.[0-9]{0,20})?|[0-9]{0,20}\.[0-9]{0,19}[1-9][0-9]{0,19})"
            r"([eE][-+]?[0-9]{1,2})?")


def whole(pattern: str) -> str:
    """``pattern`` as a JSON Schema pattern: the whole string, spaces around it allowed."""
    return rf"^\s*({pattern})\s*$"


def listed(item: str) -> str:
    """Comma-separated ``item`` s (each may have spaces around it)."""
    return rf"\s*({item})\s*(,\s*({item})\s*)*"


def int_range(low: int, high: Optional[int] = None) -> str:
    """The decimal integers in [low, high] (no upper end when ``high`` is None), leading zeros
    allowed."""
    if high is not None and high < low:
        return "(?!)"
    top = len(str(low if high is None else high))
    parts = [_same_length(str(max(low, 10 ** (n - 1) if n > 1 else 0)),
                          str(10**n - 1 if high is None or n < top else high))
             for n in range(len(str(low)), top + 1)]
    if high is None:
        parts.append(f"[1-9][0-9]{{{top},}}")
    return "0*(" + "|".join(p for p in parts if p) + ")"


def _same_length(a: str, b: str) -> str:
    """The numbers from a to b, both written with the same number of digits."""
    if int(a) > int(b):
        return ""
    if len(a) == 1:
        return f"[{a}-{b}]" if a != b else a
    if set(a[1:]) == {"0"} and set(b[1:]) == {"9"}:
        return f"[{a[0]}-{b[0]}][0-9]{{{len(a) - 1}}}"
    if a[0] == b[0]:
        return a[0] + "(" + _same_length(a[1:], b[1:]) + ")"
    n = len(a) - 1
    parts = [a[0] + "(" + _same_length(a[1:], "9" * n) + ")"]
    if int(b[0]) - int(a[0]) > 1:
        parts.append(f"[{int(a[0]) + 1}-{int(b[0]) - 1}][0-9]{{{n}}}")
    parts.append(b[0] + "(" + _same_length("0" * n, b[1:]) + ")")
    return "|".join(parts)


def names(values: Iterable[str]) -> str:
    return "|".join(re.escape(v) for v in values)


def _matches(pattern: str, text: str) -> bool:
    # re.search, as JSON Schema validators apply a pattern (anchors are the pattern's own)
    return re.search(pattern, text) is not None


def _items(value, key: str, what: str) -> List:
    """The items of a list option: a comma-separated string, or a non-empty list."""
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list) and value:
        return value
    raise UsageError(f"{key}: expected {what}, got {shown(value)}")


def _is_int(value) -> bool:
    # JSON Schema counts 5.0 as an integer
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())


class Kind:
    """How one option's value is written, checked and described.

    ``schema()``: the JSON forms accepted; ``parse(value, key)``: one of them as the typed
    setting (``type``), or a UsageError naming ``key``; ``from_text(text, key)``: a command
    line's text as a JSON value (default: the text itself, for kinds with a string form)."""

    type: ClassVar[Any] = Any

    def parse(self, value, key: str):
        raise NotImplementedError

    def schema(self) -> Dict:
        raise NotImplementedError

    def from_text(self, text: str, key: str):
        return text

    def parse_text(self, text: str, key: str):
        return self.parse(self.from_text(text, key), key)


@dataclass(frozen=True)
class Ints(Kind):
    """Distinct integers in [``minimum``, ``maximum``] (default :data:`LARGEST`), sorted: ``3``,
    ``1-20``, ``0,2,5-7`` or a list; at most :data:`MAX_VALUES` of them (counted before
    expanding, so ``0-10**17`` is refused at once rather than filling memory)."""

    minimum: int = 0
    maximum: Optional[int] = None
    type: ClassVar[Any] = List[int]

    @property
    def top(self) -> int:
        return LARGEST if self.maximum is None else self.maximum

    @property
    def token(self) -> str:
        """One item of the range syntax: N or N-N."""
        n = int_range(self.minimum, self.top)
        return rf"{n}\s*(-\s*{n})?"

    def parse(self, value, key: str) -> List[int]:
        if _is_int(value):
            value = [value]
        parts = _items(value, key, "integers such as 3, 1-20 or 0,2,5-7")
        ranges = [_expand(part, key) for part in parts]
        count = sum(r.stop - r.start for r in ranges)
        if count > MAX_VALUES:
            raise UsageError(f"{key}: {shown(value)} is {count:,} values; an option takes at most {MAX_VALUES:,} "
                             f"(split the sweep into several)")
        for part, r in zip(parts, ranges):
            for bound in (r.start, r.stop - 1):
                if bound < self.minimum:
                    raise UsageError(f"{key}: must be >= {self.minimum}, got {bound}")
                if bound > self.top:
                    raise UsageError(f"{key}: must be <= {self.top:,}, got {bound:,}")
            if isinstance(part, str) and not re.fullmatch(rf"\s*({self.token})\s*", part):
                # what the checks above leave to the grammar
                raise UsageError(f"{key}: expected integers such as 3, 1-20 or 0,2,5-7, got {shown(part.strip())}")
        return sorted(set().union(*ranges))

    def schema(self) -> Dict:
        one = {"type": "integer", "minimum": self.minimum, "maximum": self.top}
        text = {"type": "string", "pattern": whole(listed(self.token))}
        item = {"type": "string", "pattern": whole(self.token)}
        return {"oneOf": [one, text, {"type": "array", "items": {"oneOf": [one, item]}, "minItems": 1}]}


@dataclass(frozen=True)
class Ranges(Kind):
    """Inclusive ranges of integers, each its own value: ``20-24`` (``7`` is ``7-7``), a
    comma-separated list ``5-8,20-24`` or a list of those; normalised to ``[[lo, hi], ...]`` in
    the order given, each within [``minimum``, ``maximum``] (``floor`` says what the minimum is)."""

    minimum: int
    maximum: int
    floor: str
    type: ClassVar[Any] = List[List[int]]

    @property
    def token(self) -> str:
        n = int_range(self.minimum, self.maximum)
        return rf"{n}\s*(-\s*{n})?"

    def parse(self, value, key: str) -> List[List[int]]:
        if _is_int(value):
            value = [value]
        out = []
        for part in _items(value, key, "ranges such as 20-24 or 5-8,20-24"):
            if isinstance(part, (list, tuple)) and len(part) == 2 and all(map(_is_int, part)):
                part = f"{part[0]}-{part[1]}"      # the normalised form, as a sweep record stores it
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
            out.append((lo, hi))
        return [list(t) for t in dict.fromkeys(out)]

    def schema(self) -> Dict:
        one = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        return {"oneOf": [one, {"type": "string", "pattern": whole(listed(self.token))},
                          {"type": "array", "items": {"oneOf": [one, {"type": "string", "pattern": whole(self.token)}]},
                           "minItems": 1}]}


def _expand(part, key: str) -> range:
    """The integers one item of the range syntax writes (for ``Ints`` and ``Ranges``), their
    bounds not checked yet (so that a huge range is counted first)."""
    if _is_int(part):
        return range(int(part), int(part) + 1)
    if not isinstance(part, str):
        raise UsageError(f"{key}: expected integers such as 3, 1-20 or 0,2,5-7, got {shown(part)}")
    text = part.strip()
    lo, sep, hi = text.partition("-")
    if sep and not lo:  # a leading '-' is a negative number, which no option here accepts
        raise UsageError(f"{key}: values must be non-negative integers, got {shown(text)}")
    a, b = (_digits(lo, text, key), _digits(hi, text, key)) if sep else (_digits(text, text, key),) * 2
    if b < a:
        raise UsageError(f"{key}: range {shown(text)} is reversed; write {b}-{a}")
    return range(a, b + 1)


def _digits(text: str, whole_text: str, key: str) -> int:
    if not re.fullmatch(rf"\s*{DIGITS}\s*", text):
        raise UsageError(f"{key}: {shown(whole_text)} is not an integer (expected e.g. 3, 1-20 or 0,2,5-7)")
    if len(text.strip().lstrip("0")) > 4000:   # Python reads no longer number
        raise UsageError(f"{key}: {shown(whole_text)} is too large (at most {LARGEST})")
    return _int(text)


def _int(text: str) -> int:
    # leading zeros do not count against Python's limit on the digits of a number it reads
    digits = text.strip()
    sign = "-" if digits.startswith("-") else ""
    return int(sign + (digits.lstrip("-").lstrip("0") or "0"))


def _at_most(maximum) -> Dict:
    return {} if maximum is None else {"maximum": maximum}


@dataclass(frozen=True)
class Int(Kind):
    """One integer in [``minimum``, ``maximum``], a multiple of ``multiple_of``. A spec gives a
    number; a command line's text is read as one."""

    minimum: int = 0
    multiple_of: int = 1
    maximum: Optional[int] = None
    type: ClassVar[Any] = int

    def from_text(self, text: str, key: str):
        if not re.fullmatch(r"\s*-?0*[0-9]{1,30}\s*", text):
            raise UsageError(f"{key}: {shown(text)} is not an integer (expected e.g. {max(self.minimum, 1)})")
        return _int(text)

    def parse(self, value, key: str) -> int:
        if not _is_int(value):
            raise UsageError(f"{key}: expected one integer >= {self.minimum}, got {shown(value)}")
        if value < self.minimum:
            raise UsageError(f"{key}: must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise UsageError(f"{key}: must be <= {self.maximum:,}, got {value:,}")
        # a float divides as JSON Schema's multipleOf does: the quotient is an integer
        if not (value / self.multiple_of).is_integer() if isinstance(value, float) else value % self.multiple_of:
            raise UsageError(f"{key}: must be a multiple of {self.multiple_of}, got {value}")
        return int(value)

    def schema(self) -> Dict:
        s = {"type": "integer", "minimum": self.minimum, **_at_most(self.maximum)}
        return {**s, "multipleOf": self.multiple_of} if self.multiple_of > 1 else s


@dataclass(frozen=True)
class Number(Kind):
    """A number > 0 (and at most ``maximum``). A spec gives a number, or the text of one
    (YAML 1.1 reads ``1e-3``, without a dot, as text); a command line's text is read as one."""

    maximum: Optional[float] = None
    type: ClassVar[Any] = float

    def from_text(self, text: str, key: str):
        if not _matches(whole(POSITIVE), text):
            raise UsageError(f"{key}: expected a positive number, got {shown(text)}")
        return float(text.strip())

    def parse(self, value, key: str) -> float:
        top = sys.float_info.max if self.maximum is None else self.maximum
        if isinstance(value, str):
            value = self.from_text(value, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= sys.float_info.max:
            raise UsageError(f"{key}: expected a positive number, got {shown(value)}")
        if value > top:
            raise UsageError(f"{key}: must be <= {top:g}, got {shown(value)}")
        return float(value)

    def schema(self) -> Dict:
        # the largest float as the maximum keeps out infinity, which YAML can write (.inf)
        number = {"type": "number", "exclusiveMinimum": 0,
                  "maximum": sys.float_info.max if self.maximum is None else self.maximum}
        if self.maximum is not None:   # a pattern cannot bound the text's value: numbers only
            return number
        return {"oneOf": [number, {"type": "string", "pattern": whole(POSITIVE)}]}


Values = Union[Sequence[str], Callable[[], Iterable[str]]]


def _values(values: Values) -> List[str]:
    return list(values() if callable(values) else values)


@dataclass(frozen=True)
class Choice(Kind):
    """One name from ``values`` (a sequence, or a function returning one, for registries)."""

    values: Values
    type: ClassVar[Any] = str

    def parse(self, value, key: str) -> str:
        allowed = _values(self.values)
        if not isinstance(value, str) or value not in allowed:
            raise UsageError(f"{key}: expected one of {', '.join(allowed)}, got {shown(value)}")
        return value

    def schema(self) -> Dict:
        return {"enum": _values(self.values)}


@dataclass(frozen=True)
class Choices(Kind):
    """Distinct names from ``values``, in the order given: ``a,b`` or a list."""

    values: Values
    type: ClassVar[Any] = List[str]

    def parse(self, value, key: str) -> List[str]:
        allowed, out = _values(self.values), []
        for item in _items(value, key, "a comma-separated list of names"):
            name = item.strip() if isinstance(item, str) else item
            if name not in allowed:
                raise UsageError(f"{key}: unknown name {shown(name)}; allowed: {', '.join(sorted(allowed))}")
            out.append(name)
        return list(dict.fromkeys(out))

    def item(self) -> str:
        return names(_values(self.values))

    def schema(self) -> Dict:
        return {"oneOf": [{"type": "string", "pattern": whole(listed(self.item()))},
                          {"type": "array", "items": {"type": "string", "pattern": whole(self.item())}, "minItems": 1}]}


@dataclass(frozen=True)
class Families(Choices):
    """Distinct names, each one of ``values`` or ``FAMILY:X`` for a family in ``families`` and X a
    number > 0, in the order given: ``normal,gain:0.5,gain:2`` or a list. X is normalised
    (``gain:2.0`` is ``gain:2``), so one value has one name."""

    families: Tuple[str, ...] = ()

    def parse(self, value, key: str) -> List[str]:
        allowed, out = _values(self.values), []
        for item in _items(value, key, "a comma-separated list of names"):
            out.append(self._one(item, allowed, key))
        return list(dict.fromkeys(out))

    def _one(self, item, allowed: List[str], key: str) -> str:
        name = item.strip() if isinstance(item, str) else item
        if name in allowed:
            return name
        family, sep, x = name.partition(":") if isinstance(name, str) else ("", "", "")
        if sep and family in self.families:
            if not _matches(whole(POSITIVE), x):
                raise UsageError(f"{key}: {shown(name)} needs a number > 0 after '{family}:' (e.g. {family}:0.5)")
            return f"{family}:{float(x.strip()):g}"
        raise UsageError(f"{key}: unknown name {shown(name)}; allowed: {', '.join(sorted(allowed))}"
                         + "".join(f" or {f}:X with X > 0" for f in self.families))

    def item(self) -> str:
        return "|".join([names(_values(self.values)), *(rf"{re.escape(f)}:\s*({POSITIVE})" for f in self.families)])


@dataclass(frozen=True)
class Family(Families):
    """One name, as :class:`Families` allows them: ``normal`` or ``gain:0.5``."""

    type: ClassVar[Any] = str

    def parse(self, value, key: str) -> str:
        if not isinstance(value, str) or "," in value:
            raise UsageError(f"{key}: expected one name (e.g. normal or gain:2), got {shown(value)}")
        return self._one(value, _values(self.values), key)

    def schema(self) -> Dict:
        return {"type": "string", "pattern": whole(self.item())}


@dataclass(frozen=True)
class Flag(Kind):
    """true or false (a command line writes ``--flag true``; yes/no and 1/0 are read too)."""

    WORDS: ClassVar[Dict[str, bool]] = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    type: ClassVar[Any] = bool

    def from_text(self, text: str, key: str):
        word = text.strip().lower()
        if word not in self.WORDS:
            raise UsageError(f"{key}: expected true or false, got {shown(text)}")
        return self.WORDS[word]

    def parse(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            raise UsageError(f"{key}: expected true or false, got {shown(value)}")
        return value

    def schema(self) -> Dict:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Sized(Kind):
    """Names with sizes, ``name:K`` items such as ``vanilla:18,gru:10`` (K in the range syntax:
    ``gru:4-8``, from 1 to ``maximum``), normalised to a list of ``"name:K"`` strings, one per
    size. With ``sizes`` (name -> K), a name alone stands for its size there: ``lstm`` is
    ``lstm:8``."""

    values: Values
    sizes: Optional[Dict[str, int]] = None
    maximum: Optional[int] = None
    type: ClassVar[Any] = List[str]

    @property
    def size_kind(self) -> Ints:
        return Ints(minimum=1, maximum=self.maximum)

    def parse(self, value, key: str) -> List[str]:
        allowed, alone, out = _values(self.values), self.sizes or {}, []
        example = "vanilla:18,gru:10" + (" or vanilla,gru" if alone else "")
        for item in _items(value, key, f"NAME:K items such as {example}"):
            if isinstance(item, str) and item.strip() in alone:
                out.append(f"{item.strip()}:{alone[item.strip()]}")
                continue
            if not isinstance(item, str) or ":" not in item:
                raise UsageError(f"{key}: expected NAME:K (e.g. gru:10), got {shown(item)}")
            name, _, k = item.strip().partition(":")
            if "," in k:
                raise UsageError(f"{key}: expected NAME:K (e.g. gru:10), got {shown(item)}")
            if name not in allowed:
                raise UsageError(f"{key}: unknown name {shown(name)}; allowed: {', '.join(sorted(allowed))}")
            out += [f"{name}:{kk}" for kk in self.size_kind.parse(k, key)]
        return list(dict.fromkeys(out))

    def item(self) -> str:
        sized = rf"({names(_values(self.values))}):\s*{self.size_kind.token}"
        return sized + (rf"|{names(self.sizes)}" if self.sizes else "")

    def schema(self) -> Dict:
        return {"oneOf": [{"type": "string", "pattern": whole(listed(self.item()))},
                          {"type": "array", "items": {"type": "string", "pattern": whole(self.item())}, "minItems": 1}]}

    @staticmethod
    def split(item: str) -> Tuple[str, int]:
        name, _, k = item.partition(":")
        return name, int(k)


@dataclass(frozen=True)
class Option:
    """One setting of a job. ``default`` is REQUIRED, a value, or None for "decided by other
    settings" (the help says by which). A spec may write null for an optional setting: its
    default."""

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
        """Validate one block (a mapping of key -> value as written; with ``flags``, each value
        is a command line's text). ``where`` prefixes errors about the block itself; value
        errors name the key, or the flag when ``flags``."""
        where = where or cls.section
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
        known = {o.name: o for o in cls.options}
        unknown = set(raw) - set(known)
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {', '.join(sorted(map(key_name, unknown)))}; "
                             f"allowed: {', '.join(sorted(known))}")
        values = {}
        for o in cls.options:
            value = raw.get(o.name)
            label = o.flag if flags else o.name
            if value is None:
                if o.required:
                    raise UsageError(f"{where}: missing required key {shown(o.name)}" if not flags
                                     else f"the following arguments are required: {o.flag}")
                values[o.name] = o.default if o.default is None else o.kind.parse(o.default, label)
            else:
                values[o.name] = o.kind.parse_text(value, label) if flags else o.kind.parse(value, label)
        return cls(**values)

    def to_dict(self) -> Dict[str, Any]:
        """The normalised block, JSON-able; :meth:`parse` accepts it as it is."""
        return dataclasses.asdict(self)

    @classmethod
    def json_schema(cls) -> Dict:
        props = {}
        for o in cls.options:
            kind = o.kind.schema()
            p = {**kind, "description": o.help} if o.required else {"anyOf": [kind, {"type": "null"}],
                                                                     "description": o.help}
            if not o.required and o.default is not None:
                p["default"] = o.default
            props[o.name] = p
        return {"type": "object", "properties": props, "additionalProperties": False,
                "required": [o.name for o in cls.options if o.required]}


def key_name(key) -> str:
    """A key as an error names it: as written, or quoted when it is not plain text."""
    return key if isinstance(key, str) and key.isprintable() and key.strip() == key and key else repr(key)


def settings_class(name: str, section: str, options: Sequence[Option]) -> type:
    """A frozen dataclass with one typed field per option (Optional where the default is
    None), subclass of :class:`Settings`."""
    fields = [(o.name, Optional[o.kind.type] if o.default is None else o.kind.type) for o in options]
    return dataclasses.make_dataclass(name, fields, bases=(Settings,), frozen=True,
                                      namespace={"options": tuple(options), "section": section})


def add_flags(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """One flag per option; values stay text here and are read by :meth:`Settings.parse`."""
    for o in options:
        default = "" if o.required or o.default is None else f" (default {_show(o.default)})"
        parser.add_argument(o.flag, dest=o.name, metavar=o.name.upper(), required=o.required, help=o.help + default)


def from_flags(args: argparse.Namespace, options: Sequence[Option]) -> Dict[str, Any]:
    """The block the given flags describe (flags left out are absent, so defaults apply)."""
    return {o.name: getattr(args, o.name) for o in options if getattr(args, o.name, None) is not None}


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
