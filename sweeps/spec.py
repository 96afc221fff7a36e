"""Sweep specs: YAML files (or the specs shipped in the package) validated at the boundary.

A spec is a mapping with an optional ``name``, ``description``, ``report`` (true: ``run``
writes the figures and report.html when the sweep ends) and ``include`` (other specs, by
shipped name or by path relative to this file, whose sections are added to this one's),
and one section per job (``discrepancy``, ``training``, ...). A section is one block of the
job's settings or a list of blocks. Its hash covers the validated blocks only, so a comment,
a reordered key or a spelled-out default does not make it another sweep.

A spec is read as plain data, with bounds: a key given twice in one mapping is refused (YAML
would keep the last one silently), and so are YAML aliases (``*name``): they let a few hundred
bytes stand for billions of values, and ``include`` is how a spec reuses another. A spec
includes at most :data:`MAX_INCLUDES` specs in all (a chain that includes each file twice
would otherwise grow exponentially). The name, which becomes ``results/<name>``, is one path
component.
"""
import os
from dataclasses import dataclass
from importlib import resources
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from . import cost
from .errors import UsageError, shown
from .job import get_job, jobs
from .plan import Group, content_hash
from .settings import Settings, key_name

META_KEYS = ("name", "description", "report", "include")
MAX_INCLUDES = 100        # specs read through ``include``, in all
MAX_NAME = 100            # characters of a spec's name


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and a key given twice in one mapping."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise UsageError(f"SPEC: YAML alias at line {mark.line + 1}, column {mark.column + 1}: aliases are not "
                             f"accepted in a spec; write the value out, or share blocks with include")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:    # an unhashable key: the constructor says so below
                continue
            if duplicate:
                mark = key_node.start_mark
                raise UsageError(f"SPEC: key {shown(key)} is given twice in one mapping (again at line "
                                 f"{mark.line + 1}); give each key once")
            seen.add(key)
        return super().construct_mapping(node, deep)


@dataclass(frozen=True)
class Spec:
    name: str
    sections: Dict[str, Tuple[Settings, ...]]     # job name -> validated blocks
    report: bool = False

    @property
    def hash(self) -> str:
        if "_hash" not in self.__dict__:
            object.__setattr__(self, "_hash", content_hash(self.to_dict(meta=False)))
        return self.__dict__["_hash"]

    def groups(self) -> List[Group]:
        """Every planned group, once, in spec order (planned once, then kept). UsageError when
        two blocks plan the same group with different settings."""
        if "_groups" not in self.__dict__:
            out: Dict[Tuple[str, str], Group] = {}
            for job, blocks in self.sections.items():
                for block in blocks:
                    for g in get_job(job).plan(block):
                        seen = out.setdefault((job, g.name), g)
                        if seen.settings != g.settings:
                            raise UsageError(f"{job}: group {g.name} is planned twice with different settings")
            object.__setattr__(self, "_groups", list(out.values()))
        return self.__dict__["_groups"]

    @property
    def cost(self) -> "cost.SweepCost":
        """What the sweep will cost, from its settings alone (``sweeps.cost``)."""
        if "_cost" not in self.__dict__:
            object.__setattr__(self, "_cost", cost.estimate(self.sections))
        return self.__dict__["_cost"]

    def to_dict(self, meta: bool = True) -> Dict:
        """The validated spec; :func:`validate` accepts it as it is (OUT/_sweeps/ records)."""
        sections = {job: [b.to_dict() for b in blocks] for job, blocks in self.sections.items()}
        return {"name": self.name, **({"report": True} if self.report else {}), **sections} if meta else sections


def shipped() -> List[str]:
    """Names of the specs shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files("sweeps.specs").iterdir() if p.name.endswith(".yaml"))


def load(name_or_path: str, large: bool = False) -> Spec:
    """Read and validate a spec from a YAML path or a shipped spec's name."""
    raw, default_name = _read(name_or_path, base=None, chain=(), count=[0])
    return validate(raw, default_name, large)


def _read(name_or_path: str, base: Optional[str], chain: Sequence[str], count: List[int]) -> Tuple[Dict, str]:
    """The raw mapping of a spec with its includes merged in, and its default name; ``count``
    holds the number of specs read so far."""
    path = name_or_path if base is None or os.path.isabs(name_or_path) else os.path.join(base, name_or_path)
    if os.path.isfile(path):
        with open(path) as f:
            text, default_name, where = f.read(), os.path.splitext(os.path.basename(path))[0], os.path.abspath(path)
    elif name_or_path in shipped():
        text = resources.files("sweeps.specs").joinpath(f"{name_or_path}.yaml").read_text()
        default_name = where = name_or_path
    else:
        raise UsageError(f"SPEC: {shown(name_or_path)} is neither a YAML file nor a shipped spec "
                         f"(shipped: {', '.join(shipped())})")
    if where in chain:
        raise UsageError(f"SPEC: {where} includes itself ({' -> '.join([*chain, where])})")
    count[0] += 1
    if count[0] > MAX_INCLUDES + 1:
        raise UsageError(f"SPEC: more than {MAX_INCLUDES} includes in all (the next: {where}, {len(chain)} levels "
                         f"down); a spec may include at most {MAX_INCLUDES} specs, counting repeats")
    try:
        raw = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"SPEC: {name_or_path} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    except ValueError as e:   # e.g. an integer of more digits than Python converts
        if isinstance(e, UsageError):
            raise
        raise UsageError(f"SPEC: {name_or_path} holds a value that cannot be read ({e})") from None
    if not isinstance(raw, dict) or "include" not in raw:
        return raw, default_name
    includes = raw.pop("include")
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise UsageError(f"SPEC: include must be a spec name or path, or a list of them, got {shown(includes)}")
    here = os.path.dirname(where) if os.path.isabs(where) else None
    merged = {key: value for key, value in raw.items() if key in META_KEYS}
    for other in [*includes, None]:
        part = raw if other is None else _read(other, here, [*chain, where], count)[0]
        if not isinstance(part, dict):
            raise UsageError(f"SPEC: included spec {shown(other)} is not a mapping")
        for key, value in part.items():
            if key not in META_KEYS:
                merged[key] = _blocks(merged.get(key)) + _blocks(value)
    return merged, default_name


def _blocks(section) -> list:
    return [] if section is None else list(section) if isinstance(section, list) else [section]


def validate(raw, default_name: str = "sweep", large: bool = False) -> Spec:
    """The Spec of a raw mapping, every value checked (:func:`parse`), and its number of shards
    (``sweeps.cost.check_count``: ``large`` lifts the documented limit) before it is planned."""
    return _checked(parse(raw, default_name), large)


def parse(raw, default_name: str = "sweep") -> Spec:
    """The Spec of a raw mapping, every value checked: what :func:`json_schema` accepts, and
    no more (a range's order and the count of an option's values aside, which no JSON Schema
    states). Cost limits and planning come after (:func:`validate`)."""
    known = jobs()
    if raw is None:
        raise UsageError(f"SPEC: the spec is empty; give at least one section: {', '.join(known)}")
    if not isinstance(raw, dict):
        raise UsageError(f"SPEC: expected a mapping with sections {', '.join(known)}, got {type(raw).__name__}")
    unknown = set(raw) - set(known) - set(META_KEYS)
    if unknown:
        raise UsageError(f"SPEC: unknown key(s) {', '.join(sorted(map(key_name, unknown)))}; "
                         f"allowed: {', '.join(sorted(set(known) | set(META_KEYS)))}")
    sections = {}
    for name, job in known.items():
        if name not in raw:
            continue
        blocks = raw[name] if isinstance(raw[name], list) else [raw[name]]
        if not blocks:
            raise UsageError(f"{name}: expected a mapping of settings or a non-empty list of them")
        sections[name] = tuple(job.Settings.parse(b, f"{name}[{i}]" if len(blocks) > 1 else name)
                               for i, b in enumerate(blocks))
    if not sections:
        raise UsageError(f"SPEC: no job section; give at least one of {', '.join(known)}")
    name = check_name(raw.get("name", default_name))
    report = raw.get("report", False)
    if not isinstance(report, bool):
        raise UsageError(f"SPEC: report must be true or false, got {shown(report)}")
    if not isinstance(raw.get("description", ""), str):
        raise UsageError(f"SPEC: description must be text, got {shown(raw['description'])}")
    includes = raw.get("include", [])
    if not isinstance(includes, (str, list)) or not all(isinstance(i, str) for i in includes):
        raise UsageError(f"SPEC: include must be a spec name or path, or a list of them, got {shown(includes)}")
    return Spec(name, sections, report)


def check_name(name) -> str:
    """A spec's name, which names its default output directory ``results/<name>``: one path
    component (no separator, not '.' or '..', no leading '.', no control character)."""
    if not isinstance(name, str):
        raise UsageError(f"SPEC: name must be a string, got {shown(name)}")
    if (not name.strip() or len(name) > MAX_NAME or name.startswith(".") or "/" in name or "\\" in name
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise UsageError(f"SPEC: name {shown(name)} must be one directory name of at most {MAX_NAME} characters "
                         f"(no '/' or '\\', not beginning with '.'), e.g. my-sweep")
    return name


def from_options(job: str, block: Dict, large: bool = False) -> Spec:
    """A one-block spec from a job command's flags; errors name the flags (``--l-max``)."""
    settings = get_job(job).Settings.parse(block, job, flags=True)
    return _checked(Spec(job, {job: (settings,)}), large)


def _checked(spec: Spec, large: bool) -> Spec:
    cost.check_count(spec.cost, large)
    spec.groups()   # refuses a group planned twice with different settings
    return spec


def json_schema() -> Dict:
    """The JSON Schema of a spec file (``lksweep schema``), derived from every job's options."""
    props = {
        # check_name's rule: one directory name (no separator, no leading '.', no control character)
        "name": {"type": "string", "pattern": r"^(?![.])(?!\s*$)[^/\\\x00-\x1f\x7f]*$", "maxLength": MAX_NAME,
                 "description": "the sweep's name, one directory name (default: the file's name)"},
        "description": {"type": "string"},
        "report": {"type": "boolean", "description": "write the figures and report.html when the sweep ends"},
        "include": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                    "description": "specs (shipped names or paths relative to this file) whose sections are added"},
    }
    for name, job in jobs().items():
        block = {**job.Settings.json_schema(), "description": job.help}
        props[name] = {"oneOf": [block, {"type": "array", "items": block, "minItems": 1}]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "lksweep sweep spec",
            "type": "object", "properties": props, "additionalProperties": False,
            "anyOf": [*({"required": [name]} for name in jobs()), {"required": ["include"]}]}
