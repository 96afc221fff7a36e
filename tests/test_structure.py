"""The architecture holds: layers import one way, analysis runs on the tables alone, every
option is declared once and reaches the spec, the CLI and the JSON Schema, specs compose,
and checkpoints are data only."""
import ast
import dataclasses
import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from sweeps import spec as specs
from sweeps.cli import build_parser, main
from sweeps.errors import UsageError
from sweeps.job import jobs
from sweeps.jobs.training import checkpoint

from . import analysis_fixtures as F

ROOT = Path(__file__).resolve().parent.parent


def module_imports(path: Path, package: str):
    """Absolute names of the modules a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    here = package.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            name = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:
                yield from (f"{name}.{a.name}" for a in node.names)
            else:
                yield name


def modules(top: str):
    for path in sorted((ROOT / top).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = ".".join(parts[:-1]) if parts[-1] != "__init__" else name
        yield name, path, package


def test_layers_import_one_way():
    for name, path, package in modules("cells"):
        outside = {m.split(".")[0] for m in module_imports(path, package)} - {"cells", "torch", "numpy", "math",
                                                                               "zlib", "typing", "dataclasses",
                                                                               "importlib", "pkgutil", "logging"}
        assert not outside, (name, outside)
    for name, path, package in modules("analysis"):
        bad = [m for m in module_imports(path, package) if m.split(".")[0] in ("torch", "ray", "cells")
               or m.startswith("sweeps.jobs")]
        assert not bad, (name, bad)
    for name, path, package in modules("sweeps"):
        if name.startswith("sweeps.jobs"):
            continue
        bad = [m for m in module_imports(path, package) if m.startswith("sweeps.jobs") or m.split(".")[0] == "cells"]
        assert not bad, (name, bad)   # the engine finds jobs through the registry only


def test_no_import_cycles():
    graph = {}
    for top in ("cells", "sweeps", "analysis"):
        for name, path, package in modules(top):
            graph[name] = set()
            for m in module_imports(path, package):
                # ``from . import x`` names a module x or an attribute of the package: keep modules
                graph[name].add(m)
    names = set(graph)
    graph = {n: {m for m in deps if m in names and m != n} for n, deps in graph.items()}
    # A package importing its own submodules is how Python packages work, not a cycle.
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for m in graph[n]:
            if n.startswith(m + "."):
                continue
            if state.get(m) == "open":
                pytest.fail(f"import cycle: {' -> '.join([*stack, n, m])}")
            if m not in state:
                visit(m, [*stack, n])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [])


ANALYSIS_ONLY = """
import sys
import analysis
from analysis.figures import FIGURES, write_figures
from analysis.report import write_report
results = write_figures(sys.argv[1])
assert sum(bool(r.png) for r in results) == len(FIGURES), [r.note for r in results if not r.png]
write_report(sys.argv[1], results)
assert len(analysis.load(sys.argv[1], "runs")) > 0
loaded = sorted(m for m in ("torch", "ray", "cells", "sweeps.jobs") if m in sys.modules)
print("loaded:", loaded)
"""


def test_analysis_draws_every_figure_and_the_report_without_torch_or_ray(disc_dir, tmp_path):
    F.copy_tables(disc_dir, tmp_path, F.DISCREPANCY_TABLES)
    F.write_training(str(tmp_path))
    F.write_trainability(str(tmp_path))
    done = subprocess.run([sys.executable, "-c", ANALYSIS_ONLY, str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "loaded: []"
    assert (tmp_path / "report.html").stat().st_size > 100_000


# ---------------------------------------------------------------------- one declaration per option
def test_every_option_is_a_flag_of_its_command_and_a_key_of_its_spec_section(capsys):
    parser, _ = build_parser()
    schema = specs.json_schema()
    for name, job in jobs().items():
        with pytest.raises(SystemExit):
            parser.parse_args([job.command, "-h"])
        usage = capsys.readouterr().out
        block = schema["properties"][name]["oneOf"][0]
        for o in job.options:
            assert o.flag in usage, (job.command, o.flag)
            assert block["properties"][o.name]["description"] == o.help
        assert set(block["properties"]) == {o.name for o in job.options}


def test_flags_and_yaml_keys_give_the_same_spec(tmp_path):
    yaml_block = {"task": "reber", "cells": "vanilla:3,gru:2", "protocol": "adam", "seeds": "0-1", "n_train": 12,
                  "n_test": 7, "lr": 0.02, "max_epochs": 3, "batch_size": 4, "bias": "authors", "init": "xavier",
                  "data_seed": 5, "dtype": "float64", "tol": 0.001, "checkpoint_s": 30}
    from_yaml = specs.validate({"name": "training", "training": yaml_block})
    parser, _ = build_parser()
    argv = ["train", *[x for k, v in yaml_block.items() for x in (f"--{k.replace('_', '-')}", str(v))],
            "--out", str(tmp_path)]
    from sweeps.settings import from_flags
    job = jobs()["training"]
    from_cli = specs.from_options("training", from_flags(parser.parse_args(argv), job.options))
    assert from_cli.hash == from_yaml.hash
    (block,) = from_cli.sections["training"]
    assert block.n_test == 7 and block.cells == ["vanilla:3", "gru:2"] and block.tol == 0.001


@pytest.mark.parametrize("name", specs.shipped())
def test_shipped_specs_follow_the_schema_and_round_trip(name):
    s = specs.load(name)
    raw = specs.yaml.safe_load((ROOT / "sweeps" / "specs" / f"{name}.yaml").read_text())
    jsonschema.validate(raw, specs.json_schema())
    again = specs.validate(json.loads(json.dumps(s.to_dict())))      # what OUT/_sweeps/ records
    assert again.hash == s.hash and [g.name for g in again.groups()] == [g.name for g in s.groups()]


def test_schema_tables_documents_every_table(capsys):
    # that the spec schema and the validator accept the same specs: tests/test_settings.py
    assert main(["schema", "--tables"]) == 0
    tables = capsys.readouterr().out
    for table in ("discrepancy", "runs", "epochs", "gradients", "probes"):
        assert f"## {table} (" in tables
    assert "- `frac_distinct` (double): share of draws" in tables


# ---------------------------------------------------------------------- specs compose
def test_paper_spec_is_its_two_includes(tmp_path):
    paper = specs.load("paper")
    parts = [specs.load("paper-discrepancy"), specs.load("paper-training")]
    assert paper.sections == {**parts[0].sections, **parts[1].sections} and paper.report and paper.name == "paper"
    (tmp_path / "mine.yaml").write_text("include: [paper-discrepancy, extra.yaml]\ndiscrepancy:\n"
                                        "  cells: gru\n  l_max: 5\n  k: 30\n  draws: 50\n")
    (tmp_path / "extra.yaml").write_text("training:\n  task: reber\n  cells: vanilla:3\n  protocol: adam\n")
    mine = specs.load(str(tmp_path / "mine.yaml"))
    assert len(mine.sections["discrepancy"]) == 2 and len(mine.sections["training"]) == 1
    assert mine.name == "mine"
    (tmp_path / "loop.yaml").write_text("include: loop.yaml\n")
    with pytest.raises(UsageError, match="includes itself"):
        specs.load(str(tmp_path / "loop.yaml"))
    (tmp_path / "missing.yaml").write_text("include: nowhere.yaml\n")
    with pytest.raises(UsageError, match="'nowhere.yaml' is neither a YAML file nor a shipped spec"):
        specs.load(str(tmp_path / "missing.yaml"))


def test_two_blocks_planning_one_group_differently_are_refused():
    block = {"cells": "vanilla", "l_max": 5, "k": 2, "draws": 50}
    with pytest.raises(UsageError, match="planned twice with different settings"):
        specs.validate({"discrepancy": [block, {**block, "draws": 100}]})
    assert len(specs.validate({"discrepancy": [block, block]}).groups()) == 1


# ---------------------------------------------------------------------- checkpoints
class Boom:
    def __reduce__(self):
        return (Path("/tmp/lksweep-pwned").touch, ())


def test_checkpoints_are_data_and_a_crafted_one_runs_nothing(tmp_path):
    arrays = {"param/W": np.arange(6.0).reshape(2, 3)}
    meta = {"epoch": 3, "lr": 0.025, "rng": {"state": 2**100 + 1}, "rows": [{"loss": float("nan")}],
            "hist": np.array([1, 2], np.int16)}
    layout = {"param/W": ((2, 3), np.dtype(np.float64))}
    a, m = checkpoint.read(checkpoint.write(arrays, meta), layout, max_meta=1000)
    np.testing.assert_array_equal(a["param/W"], arrays["param/W"])
    assert m["rng"]["state"] == 2**100 + 1 and m["hist"] == [1, 2] and np.isnan(m["rows"][0]["loss"])
    target = Path("/tmp/lksweep-pwned")
    target.unlink(missing_ok=True)
    crafted = io.BytesIO()
    np.savez(crafted, **{"param/W": np.array([Boom()], dtype=object), checkpoint.META: np.frombuffer(b"{}", np.uint8)})
    for data in (crafted.getvalue(), pickle.dumps({"epoch": Boom()})):
        with pytest.raises(ValueError, match="not a training checkpoint"):
            checkpoint.read(data, layout, max_meta=1000)
    assert not target.exists()


def test_a_shards_params_are_the_jobs_typed_settings():
    s = specs.load("quick")
    for g in s.groups():
        for shard in g.shards:
            assert dataclasses.is_dataclass(shard.params) and dataclasses.fields(shard.params)
