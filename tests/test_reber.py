"""Reber grammars against an independent acceptor, legal successors worked out by hand,
cell gradients against finite differences, and the `grammar` command line."""
import re

import numpy as np
import pytest
import torch

import cells
from sweeps.jobs.training import models, protocols, reber

# The automaton as an edge list, walked independently of sweeps.jobs.training.reber.
EDGES = {(0, "T"): 1, (0, "P"): 4, (1, "S"): 1, (1, "X"): 2, (2, "S"): 3, (2, "X"): 4,
         (4, "T"): 4, (4, "V"): 5, (5, "P"): 2, (5, "V"): 3}
PAPER_REGEX = re.compile(r"^(BPT*V(PSE|VE)|BTS*X(SE|XT*V(PSE|VE)))$")


def accepts(s: str) -> bool:
    if len(s) < 2 or s[0] != "B" or s[-1] != "E":
        return False
    q = 0
    for c in s[1:-1]:
        if (q, c) not in EDGES:
            return False
        q = EDGES[(q, c)]
    return q == 3


def accepts_embedded(s: str) -> bool:
    return len(s) > 4 and s[0] == "B" and s[1] in "TP" and s[-2] == s[1] and s[-1] == "E" and accepts(s[2:-2])


def test_samples_are_in_the_grammar_and_cover_both_branches():
    rng = np.random.default_rng(0)
    plain = reber.sample_set(rng, 400)
    assert all(accepts(s) for s in plain)
    assert {s[1] for s in plain} == {"T", "P"}
    assert any("PX" in s for s in plain)       # the loop 5 -P-> 2 -X-> 4 the paper's regex misses
    embedded = reber.sample_set(rng, 400, embedded=True)
    assert all(accepts_embedded(s) for s in embedded)
    assert {s[1] for s in embedded} == {"T", "P"}


def test_sampling_is_seeded():
    assert reber.sample_set(cells.stream(1), 20) == reber.sample_set(cells.stream(1), 20)
    assert reber.sample_set(cells.stream(1), 20) != reber.sample_set(cells.stream(2), 20)


def _decode(data):
    return ["".join(reber.ALPHABET[i] for i in row[:m]) + reber.ALPHABET[int(t[m - 1])]
            for row, t, m in zip(data.x.argmax(-1).tolist(), data.target, data.mask.sum(1).tolist())]


@pytest.mark.parametrize("task", ["reber", "embedded-reber"])
def test_validation_and_test_sets_come_from_streams_of_their_own(task):
    """Each set is the sample of its own stream (data_seed, task, set): not a continuation of the
    training strings' stream, and unchanged when the training set grows (a larger training set
    extends the smaller one)."""
    small = reber.datasets(task, {"train": 40, "val": 30, "test": 30}, 0, torch.float64)
    large = reber.datasets(task, {"train": 200, "val": 30, "test": 30}, 0, torch.float64)
    emb = task == "embedded-reber"
    for name in reber.SETS:
        plain = reber.sample_set(cells.stream("data", 0, task, name), len(_decode(small[name])), emb)
        assert _decode(small[name]) == plain, name              # the set is exactly its stream's sample
    assert _decode(large["train"])[:40] == _decode(small["train"])
    assert _decode(large["val"]) == _decode(small["val"]) and _decode(large["test"]) == _decode(small["test"])
    train = reber.sample_set(cells.stream("data", 0, task, "train"), 400, emb)
    for name in ("val", "test"):               # no run of 10 consecutive strings of the training stream
        held = _decode(small[name])
        windows = {tuple(train[i:i + 10]) for i in range(len(train) - 9)}
        assert not any(tuple(held[i:i + 10]) in windows for i in range(len(held) - 9)), name
    assert _decode(small["val"]) != _decode(small["test"])
    other = reber.datasets(task, {"train": 40, "val": 30, "test": 30}, 1, torch.float64)
    assert _decode(other["val"]) != _decode(small["val"])      # data_seed changes every set


def test_the_automaton_is_the_truth_not_the_papers_regex():
    assert reber.first_error("BPVPXTVVE") is None and accepts("BPVPXTVVE")
    assert not PAPER_REGEX.match("BPVPXTVVE")


@pytest.mark.parametrize("string, embedded, position", [
    ("BTSSXXTTTTVPSE", False, None), ("BTSSE", False, 4), ("TSE", False, 0), ("BTXX", False, 4),
    ("BPVVEE", False, 5), ("BTBPVVETE", True, None), ("BTBPVVEPE", True, 7), ("BTBPVVE", True, 7),
    ("BTPPVVETE", True, 2),
])
def test_first_bad_position(string, embedded, position):
    assert reber.first_error(string, embedded) == position


def test_legal_successor_sets_worked_by_hand():
    assert reber.legal_sets("BTSSXXVVE") == ["TP", "SX", "SX", "SX", "SX", "TV", "PV", "E"]
    assert [set(s) for s in reber.legal_sets("BPTVPXVPSE")] == [
        set("TP"), set("TV"), set("TV"), set("PV"), set("SX"), set("TV"), set("PV"), set("SX"), set("E")]
    assert reber.legal_sets("BTBPVVETE", embedded=True) == ["TP", "B", "TP", "TV", "PV", "E", "T", "E"]
    assert reber.legal_sets("BPBTXSEPE", embedded=True)[6] == "P"   # the long-term dependency


def test_encoding_is_one_hot_with_targets_legal_sets_and_mask():
    enc = reber.encode(["BTXSE", "BPVVE"], embedded=False, length=6)
    assert enc.x.shape == (2, 6, 7) and enc.x.sum().item() == 8
    assert enc.x[0, 1].tolist() == [0, 1, 0, 0, 0, 0, 0]                      # T
    assert enc.target[1, :4].tolist() == [reber.INDEX[c] for c in "PVVE"]
    assert enc.mask.sum(1).tolist() == [4, 4]
    assert enc.legal[0, 2].tolist() == [False, False, True, True, False, False, False]   # after BTX: S or X
    assert not enc.legal[0, 4].any() and not enc.mask[0, 4]                            # padding
    assert enc.last.tolist() == [3, 3]
    assert reber.encode(["BTBTXSETE"], embedded=True, length=8).last.tolist() == [6]


@pytest.mark.parametrize("cell, bias", [("vanilla", "all"), ("gru", "hidden")])
def test_cell_gradients_match_finite_differences(cell, bias):
    rng = cells.stream("gradcheck", cell)
    p = models.init_params(cell, 3, bias, "normal", [0, 1], torch.float64)
    for name in p:
        if name.startswith("b"):
            p[name] = torch.from_numpy(rng.standard_normal(p[name].shape))
    enc = reber.encode(["BTXSE", "BPVVE"], False, 4, torch.float64)
    x = enc.x.expand(2, *enc.x.shape)
    target = enc.target.expand(2, *enc.target.shape)
    names = list(p)

    def loss(*tensors):
        y, _ = models.forward(cells.get_cell(cell), dict(zip(names, tensors)), x, enc.mask)
        return protocols.sequence_loss(protocols.cross_entropy, y, target, enc.mask).sum()

    assert torch.autograd.gradcheck(loss, [t.clone().requires_grad_() for t in p.values()])


def test_paper_parameter_counts():
    assert models.n_params("vanilla", 18, "paper") == 594
    assert models.n_params("gru", 10, "paper") == 580
    assert models.n_params("vanilla", 18, "authors") == 601
    assert models.n_params("gru", 10, "authors") == 610


def test_cli_sample_prints_valid_strings_one_a_line(capsys):
    from sweeps.cli import main
    assert main(["grammar", "sample", "-n", "5", "--seed", "3", "--embedded"]) == 0
    lines = capsys.readouterr().out.split()
    assert len(lines) == 5 and all(accepts_embedded(s) for s in lines)
    assert main(["grammar", "sample", "-n", "5", "--seed", "3", "--embedded"]) == 0
    assert capsys.readouterr().out.split() == lines


def test_cli_check_exit_codes_and_positions(capsys):
    from sweeps.cli import main
    assert main(["grammar", "check", "BPVPXTVVE", "BTXSE"]) == 0
    assert main(["grammar", "check", "BTXSE", "BTSSE"]) == 1
    out = capsys.readouterr().out
    assert "BTSSE: invalid at position 4" in out and "BTXSE: valid" in out
    assert main(["grammar", "check", "--embedded", "BTBPVVEPE"]) == 1
    assert "position 7" in capsys.readouterr().out


def test_cli_check_refuses_symbols_outside_the_alphabet(capsys):
    from sweeps.cli import main
    assert main(["grammar", "check", "BTXQE"]) == 2
    err = capsys.readouterr().err
    assert "'Q'" in err and "BTSXVPE" in err and len(err.strip().splitlines()) == 1
