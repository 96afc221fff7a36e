"""One grammar per kind of option: ``lksweep schema``'s JSON Schema and the validator accept the
same specs, on thousands of generated ones: values drawn from each kind's grammar (its
schema's patterns), near misses written from the same characters, and arbitrary JSON."""
import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps import spec as specs
from sweeps.cli import main
from sweeps.errors import UsageError
from sweeps.job import jobs
from sweeps.settings import Flag, Int, Ints, Number, int_range

# What a JSON Schema cannot state (the schema says so in the settings' docstring): a range
# written high-low, and more values than an option holds. The validator alone refuses these.
BEYOND_SCHEMA = re.compile(r"is reversed; write|an option takes at most")

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**20)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
NEAR = st.text(alphabet="0123456789-,:. eE+_\n\tgainormlxvuf", max_size=14)


def patterns(schema):
    """Every string pattern in a schema fragment."""
    if isinstance(schema, dict):
        if "pattern" in schema:
            yield schema["pattern"]
        for value in schema.values():
            yield from patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from patterns(value)


def kind_values(kind):
    """Values of one kind: mostly from its grammar (its schema's patterns and numbers in its
    bounds), else near misses and arbitrary JSON."""
    schema = kind.schema()
    grammar = [st.from_regex(p) for p in patterns(schema)]
    if "enum" in schema:
        grammar.append(st.sampled_from(schema["enum"]))
    if isinstance(kind, Int):
        step = kind.multiple_of
        grammar.append(st.integers(-(-kind.minimum // step), kind.minimum // step + 400).map(lambda i: i * step))
    if isinstance(kind, Ints):
        grammar.append(st.integers(kind.minimum, kind.minimum + 300))
    if isinstance(kind, Number):
        grammar.append(st.floats(min_value=1e-300, max_value=1e300))
    if isinstance(kind, Flag):
        grammar.append(st.booleans())
    if any(p.get("type") == "array" for p in schema.get("oneOf", [])):
        grammar.append(st.lists(st.one_of(grammar), min_size=1, max_size=3))
    valid = st.one_of(grammar)
    anything = st.one_of(NEAR, JSON, st.lists(valid, max_size=3), st.integers(-10, 10**30),
                         st.floats(allow_nan=False, allow_infinity=False))
    return st.sampled_from(range(10)).flatmap(lambda i: valid if i < 8 else anything)


def chance(draw, percent: int) -> bool:
    # Hypothesis starts from (and shrinks towards) index 0: make that the likely outcome
    i = draw(st.sampled_from(range(100)))
    return i < percent if percent >= 50 else i >= 100 - percent


VALUES = {(job, o.name): kind_values(o.kind) for job in jobs().values() for o in job.options}


@st.composite
def blocks(draw, job):
    block = {}
    for o in job.options:
        if chance(draw, 97 if o.required else 30):
            block[o.name] = draw(VALUES[(job, o.name)])
    if chance(draw, 3):
        block[draw(st.text(max_size=8))] = draw(JSON)
    return block


@st.composite
def spec_dicts(draw):
    raw = {}
    for name, job in jobs().items():
        if chance(draw, 60):
            one = draw(blocks(job))
            raw[name] = draw(st.sampled_from([one, one, [one], [one, draw(blocks(job))], []]))
    # no include: the schema checks a file as written, the validator the spec its includes make
    for key, values in (("name", st.text(max_size=5) | JSON), ("report", st.booleans() | JSON),
                        ("description", st.text(max_size=5) | JSON)):
        if chance(draw, 10):
            raw[key] = draw(values)
    if chance(draw, 3):
        raw[draw(st.text(max_size=8))] = draw(JSON)
    return raw


def _printed_schema() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["schema"]) == 0
    return buf.getvalue()


def agree(validator, raw) -> str:
    """'accepted', 'refused', or 'beyond' (the validator's own checks); fails on disagreement."""
    by_schema = validator.is_valid(raw)
    try:
        specs.parse(raw)
    except UsageError as e:
        if by_schema and BEYOND_SCHEMA.search(str(e)):
            return "beyond"
        assert not by_schema, f"the schema accepts what the validator refuses ({e}): {raw!r}"
        assert "\n" not in str(e), str(e)
        return "refused"
    assert by_schema, f"the validator accepts what the schema refuses: {raw!r}: " + \
        "; ".join(err.message for err in validator.iter_errors(raw))
    return "accepted"


SEEN = {"accepted": 0, "refused": 0, "beyond": 0}


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=spec_dicts())
def test_the_schema_and_the_validator_accept_the_same_specs(raw):
    SEEN[agree(_validator(), raw)] += 1


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=JSON)
def test_the_schema_and_the_validator_agree_on_arbitrary_json(raw):
    agree(_validator(), raw)


def test_the_generated_specs_were_accepted_and_refused_both():
    # runs after the property test in this module: it must have met both outcomes, many times
    assert SEEN["accepted"] >= 50 and SEEN["refused"] >= 100, SEEN


_CACHE = {}


def _validator():
    if "v" not in _CACHE:
        schema = json.loads(_printed_schema())
        jsonschema.Draft202012Validator.check_schema(schema)
        _CACHE["v"] = jsonschema.Draft202012Validator(schema)
    return _CACHE["v"]


@pytest.mark.parametrize("text", ["gain:+1", "gain:1_0", "gain:inf", "gain:0", "gain:1e999", "gain:.", "gain:٣"])
def test_gain_is_written_as_the_grammar_says(text):
    raw = {"discrepancy": {"cells": "vanilla", "l_max": 5, "k": 2, "draws": 50, "inits": text}}
    assert agree(_validator(), raw) == "refused"


@pytest.mark.parametrize("value, verdict", [("5", "refused"), (5, "accepted"), (5.0, "accepted"), (True, "refused")])
def test_an_integer_in_a_spec_is_a_number(value, verdict):
    raw = {"discrepancy": {"cells": "vanilla", "l_max": value, "k": 2, "draws": 50}}
    assert agree(_validator(), raw) == verdict


def test_the_command_line_reads_its_text_with_the_same_grammar():
    assert Int(minimum=1).parse_text(" 12 ", "--n") == 12 and Number().parse_text("1e-3", "--lr") == 1e-3
    assert Flag().parse_text("Yes", "--x") is True
    for kind, text in [(Int(), "1_0"), (Int(), "+3"), (Number(), "1_0"), (Number(), "inf"), (Number(), "0.0")]:
        with pytest.raises(UsageError, match="^--x: "):
            kind.parse_text(text, "--x")


@pytest.mark.parametrize("low, high", [(0, None), (1, None), (7, 7), (3, 120), (50, 1000), (99, 101)])
def test_int_range_matches_exactly_the_integers_in_range(low, high):
    pattern = re.compile(rf"^{int_range(low, high)}$")
    for n in range(0, 1300):
        inside = n >= low and (high is None or n <= high)
        for text in (str(n), "0" + str(n)):
            assert bool(pattern.match(text)) == inside, (low, high, text)


def test_settings_carry_their_types():
    import typing

    hints = typing.get_type_hints(jobs()["discrepancy"].Settings)
    assert hints["k"] == typing.List[int] and hints["draws"] is int and hints["threshold"] is float
    assert hints["lyapunov"] is bool and hints["dtype"] is str and hints["cells"] == typing.List[str]
    training = typing.get_type_hints(jobs()["training"].Settings)
    assert training["lr"] == typing.Optional[float] and training["n_train"] == typing.Optional[int]


def test_a_block_reads_back_its_normalised_form():
    """A sweep record stores ``to_dict``; reading it back gives the same block (lag's ranges
    are lists of [lo, hi])."""
    from sweeps.job import get_job

    settings = get_job("training").Settings
    block = settings.parse({"task": "embedded-reber", "cells": "gru:3", "protocol": "adam", "lag": "5-8,20-24"})
    assert block.lag == [[5, 8], [20, 24]]
    assert settings.parse(block.to_dict()) == block
