"""Sweep specs: YAML files (or the specs shipped in the package) validated at the boundary.

A spec is a mapping with an optional ``name`` and ``description`` and one section per job
(``discrepancy``, ...). Its hash covers the validated sections only, so a comment or a
reordered key does not make it another sweep.
"""
import os
from dataclasses import dataclass
from importlib import resources
from typing import Dict, List

import yaml

from .errors import UsageError
from .jobs import JOBS
from .plan import Group, content_hash

META_KEYS = {"name", "description", "report"}  # report: true -> `run` writes figures and report.html


@dataclass(frozen=True)
class Spec:
    name: str
    sections: Dict[str, Dict]
    report: bool = False

    @property
    def hash(self) -> str:
        return content_hash(self.sections)

    def groups(self) -> List[Group]:
        return [g for job, section in self.sections.items() for g in JOBS[job].plan(section)]

    def to_dict(self) -> Dict:
        return {"name": self.name, **({"report": True} if self.report else {}), **self.sections}


def from_record(record: Dict) -> Spec:
    """The spec a launcher recorded in OUT/_sweeps/ (``Spec.to_dict()``: sections already
    validated and normalised, so they are planned as they are)."""
    return Spec(record.get("name", "sweep"), {job: record[job] for job in JOBS if job in record},
                bool(record.get("report", False)))


def shipped() -> List[str]:
    """Names of the specs shipped with the package."""
    return sorted(p.name[:-5] for p in resources.files("sweeps.specs").iterdir() if p.name.endswith(".yaml"))


def load(name_or_path: str) -> Spec:
    """Read and validate a spec from a YAML path or a shipped spec's name."""
    if os.path.exists(name_or_path):
        with open(name_or_path) as f:
            text, default_name = f.read(), os.path.splitext(os.path.basename(name_or_path))[0]
    elif name_or_path in shipped():
        text = resources.files("sweeps.specs").joinpath(f"{name_or_path}.yaml").read_text()
        default_name = name_or_path
    else:
        raise UsageError(f"SPEC: {name_or_path!r} is neither a YAML file nor a shipped spec "
                         f"(shipped: {', '.join(shipped())})")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise UsageError(f"SPEC: {name_or_path} is not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    return validate(raw, default_name)


def validate(raw, default_name: str = "sweep") -> Spec:
    if raw is None:
        raise UsageError(f"SPEC: the spec is empty; give at least one section: {', '.join(JOBS)}")
    if not isinstance(raw, dict):
        raise UsageError(f"SPEC: expected a mapping with sections {', '.join(JOBS)}, got {type(raw).__name__}")
    unknown = set(raw) - set(JOBS) - META_KEYS
    if unknown:
        raise UsageError(f"SPEC: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"allowed: {', '.join(sorted(set(JOBS) | META_KEYS))}")
    sections = {job: JOBS[job].validate(raw[job]) for job in JOBS if job in raw}
    if not sections:
        raise UsageError(f"SPEC: no job section; give at least one of {', '.join(JOBS)}")
    name = raw.get("name", default_name)
    if not isinstance(name, str):
        raise UsageError(f"SPEC: name must be a string, got {name!r}")
    report = raw.get("report", False)
    if not isinstance(report, bool):
        raise UsageError(f"SPEC: report must be true or false, got {report!r}")
    return Spec(name, sections, report)
