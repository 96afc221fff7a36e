"""Bad input: one line naming the problem, exit code 2, no traceback, nothing written."""
import subprocess
import sys

import pytest

from sweeps.cli import main

GOOD = {"--cells": "vanilla", "--l-max": "5", "--k": "2", "--draws": "50"}


def discrepancy(**changes):
    opts = {**GOOD, **changes}
    return ["discrepancy", *[x for kv in opts.items() if kv[1] is not None for x in kv]]


YAML_CASES = {
    "malformed": ("discrepancy: [cells: vanilla\n", "not valid YAML at line"),
    "empty": ("", "the spec is empty"),
    "unknown top key": ("discrepency:\n  cells: [vanilla]\n", "unknown key(s) discrepency"),
    "unknown section key": ("discrepancy:\n  cells: [vanilla]\n  l_max: 5\n  k: 2\n  draws: 50\n  nsamples: 3\n",
                            "unknown key(s) nsamples"),
    "section not a mapping": ("discrepancy: 5\n", "expected a mapping"),
    "wrong type": ("discrepancy:\n  cells: [vanilla]\n  l_max: 5\n  k: 2\n  draws: many\n", "draws"),
    "list for one int": ("discrepancy:\n  cells: [vanilla]\n  l_max: [1, 2]\n  k: 2\n  draws: 50\n", "l_max"),
    "missing key": ("discrepancy:\n  cells: [vanilla]\n  k: 2\n  draws: 50\n", "missing required key 'l_max'"),
    "not a mapping": ("- discrepancy\n", "expected a mapping"),
    "cells not names": ("discrepancy:\n  cells: 3\n  l_max: 5\n  k: 2\n  draws: 50\n", "cells"),
}


def error_cases(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = {
        "unknown cell": (discrepancy(**{"--cells": "vanilla,lstmx"}),
                         "--cells: unknown name 'lstmx'; allowed: gru, lstm, mgu, tanh, vanilla"),
        "unknown init": (discrepancy(**{"--inits": "he"}), "--inits: unknown name 'he'"),
        "k < 1": (discrepancy(**{"--k": "0"}), "--k: must be >= 1"),
        "l_max < 1": (discrepancy(**{"--l-max": "0"}), "--l-max: must be >= 1"),
        "reversed k": (discrepancy(**{"--k": "20-1"}), "range '20-1' is reversed; write 1-20"),
        "reversed seeds": (discrepancy(**{"--seeds": "3-1"}), "--seeds: range '3-1' is reversed"),
        "negative seed": (discrepancy(**{"--seeds": "-1"}), "--seeds: values must be non-negative"),
        "non-integer draws": (discrepancy(**{"--draws": "abc"}), "--draws: 'abc' is not an integer"),
        "fractional k": (discrepancy(**{"--k": "1.5"}), "--k: '1.5' is not an integer"),
        "draws < 1": (discrepancy(**{"--draws": "0"}), "--draws: must be >= 1"),
        "shard size": (discrepancy(**{"--shard-size": "120"}), "--shard-size: must be a multiple of 50"),
        "dtype": (discrepancy(**{"--dtype": "float16"}), "--dtype: expected one of float64, float32"),
        "missing option": (discrepancy(**{"--cells": None}), "the following arguments are required: --cells"),
        "max workers": (discrepancy(**{"--max-workers": "0"}), "--max-workers expects an integer >= 1"),
        "unreachable address": (discrepancy(**{"--address": "127.0.0.1:1"}), "--address: no Ray cluster answers at 127.0.0.1:1"),
        "malformed address": (discrepancy(**{"--address": "nohost"}), "--address: expected HOST:PORT"),
        "unwritable out": (discrepancy(**{"--out": str(blocker / "sub")}), "--out: cannot write to"),
        "out is a file": (discrepancy(**{"--out": str(blocker)}), "is a file, expected a directory"),
        "unknown spec": (["run", "no-such-spec"], "neither a YAML file nor a shipped spec"),
        "unknown command": (["discrepency"], "invalid choice: 'discrepency'"),
        "status of nothing": (["status", str(tmp_path / "empty")], "holds no lksweep sweep"),
    }
    for name, (text, expected) in YAML_CASES.items():
        path = tmp_path / f"{name.replace(' ', '-')}.yaml"
        path.write_text(text)
        cases[f"yaml: {name}"] = (["run", str(path)], expected)
    return cases




def test_at_least_twenty_bad_inputs_are_refused_cleanly(tmp_path, capsys):
    cases = error_cases(tmp_path)
    assert len(cases) >= 20
    out = tmp_path / "out"
    for name, (argv, expected) in cases.items():
        if "--out" not in argv and argv[0] != "status":
            argv = [*argv, "--out", str(out)]
        code = main(argv)
        stdout, stderr = capsys.readouterr()
        assert code == 2, (name, code, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lksweep: error: "), (name, stderr)
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in stderr + stdout
        assert not out.exists(), f"{name}: something was written"


def test_the_installed_command_exits_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", *discrepancy(**{"--k": "5-3"}), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "lksweep: error: --k: range '5-3' is reversed; write 3-5"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", sorted(YAML_CASES))
def test_yaml_errors_name_the_problem(tmp_path, capsys, name):
    text, expected = YAML_CASES[name]
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    assert expected in capsys.readouterr().err


def test_address_auto_resolves_to_the_running_cluster(ray_session):
    """With the test session's Ray instance running, ``--address auto`` finds it before Ray is
    asked to connect (with none running it is a one-line error, exit 2)."""
    import socket

    from sweeps.cluster import resolve_address

    address = resolve_address("auto")
    host, _, port = address.rpartition(":")
    socket.create_connection((host, int(port)), timeout=1.0).close()
    assert address == ray_session.get_runtime_context().gcs_address
