"""Cost before commitment: huge ranges are refused from their size alone, before anything is
expanded, planned, written or started (one line, exit code 2); sizes above the documented
limits need --large; the estimate of a shard follows the job's model."""
import pytest

from sweeps import cost
from sweeps.cli import main
from sweeps.errors import UsageError
from sweeps.jobs.discrepancy import shard_cost
from sweeps.spec import validate

D = ["discrepancy", "--cells", "vanilla,gru", "--l-max", "50", "--k", "2", "--draws", "2000"]


def flags(**changes):
    opts = dict(zip(D[1::2], D[2::2]))
    opts.update({f"--{k.replace('_', '-')}": v for k, v in changes.items()})
    return ["discrepancy", *[x for kv in opts.items() for x in kv]]


CASES = {
    "10^12 draws": (flags(draws=str(10**12)), "plans 2,000,000,000 shards; planning them would take about"),
    "10^12 draws, --large": (flags(draws=str(10**12)) + ["--large"], "at most 100,000,000 shards can be planned"),
    "seeds 0-10^20": (flags(seeds=f"0-{10**20}"), f"--seeds: '0-{10**20}' is {10**20 + 1:,} values; an option takes "
                                                  f"at most 1,000,000"),
    "k 1-100000": (flags(k="1-100000", draws="50", cells="vanilla"), "needs about"),
    "2 million shards": (flags(draws="1000000", shard_size="50", k="1-50"), "plans 2,000,000 shards in 100 groups, more "
                                                                          "than 1,000,000"),
    "a 3-hour shard": (flags(k="256", l_max="1000", draws="100000", shard_size="100000", cells="vanilla"),
                       "with no progress shown; lower the shard size (e.g. --shard-size) to split it"),
    "training seeds": (["train", "--task", "reber", "--cells", "vanilla:3", "--protocol", "adam", "--seeds",
                        "0-5000000"], "--seeds: '0-5000000' is 5,000,001 values"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_huge_sweeps_are_refused_in_one_line_before_anything_runs(tmp_path, capsys, name):
    argv, expected = CASES[name]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line.startswith("lksweep: error: ") and expected in line, line
    assert not out.exists()


def test_a_spec_file_is_held_to_the_same_limits(tmp_path, capsys):
    spec = tmp_path / "huge.yaml"
    spec.write_text("discrepancy:\n  cells: vanilla\n  l_max: 5\n  k: 1-100\n  draws: 100000000\n  seeds: 0-9\n")
    assert main(["run", str(spec), "--out", str(tmp_path / "o")]) == 2
    assert "plans 100,000,000 shards in 1,000 groups, more than 1,000,000" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_large_lifts_the_documented_limits_only():
    block = {"cells": "vanilla", "l_max": 5, "k": "1-60", "draws": 1000000, "shard_size": 50}
    with pytest.raises(UsageError, match="--large"):
        validate({"discrepancy": block})
    e = cost.estimate(validate({"discrepancy": {**block, "k": "1-2"}}).sections)
    assert (e.groups, e.shards) == (2, 40000)
    with pytest.raises(UsageError, match="needs about"):
        cost.check_shard(e, True, e.shard_bytes / 2, "this machine")
    cost.check_shard(e, False, e.shard_bytes * 2, "this machine")


def test_the_discrepancy_estimate_counts_without_planning_and_scales_with_the_shard():
    s = validate({"discrepancy": {"cells": "vanilla,gru", "inits": "normal,xavier", "l_max": 30, "k": "1-5",
                                  "draws": 330, "shard_size": 100, "seeds": "0-2"}})
    planned = s.groups()
    e = cost.estimate(s.sections)
    assert (e.groups, e.shards) == (len(planned), sum(len(g.shards) for g in planned)) == (60, 240)
    small, big = shard_cost("gru", 5, 30, 100), shard_cost("gru", 5, 30, 200)
    assert big[1] == pytest.approx(2 * small[1]) and big[0] > small[0]
    assert shard_cost("gru", 200, 30, 100)[1] == pytest.approx(4 * shard_cost("gru", 100, 30, 100)[1], rel=0.05)
    assert e.shard_seconds == pytest.approx(shard_cost("gru", 5, 30, 100)[1])
