"""Reber grammars against an independent acceptor, legal successors worked out by hand, the
lag sampler against path counts enumerated here, the disjoint and balanced sets, cell gradients
against finite differences, and the `grammar` command line."""
import re

import numpy as np
import pytest
import torch

import cells
from sweeps.errors import UsageError
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
def test_independent_sets_are_the_authors_samples_of_streams_of_their_own(task):
    """Under ``independent`` sampling each set is exactly the grammar sample of its own stream
    (data_seed, task, set), as before disjoint sets existed: not a continuation of the training
    strings' stream, and unchanged when the training set grows."""
    def sets(n_train, data_seed=0):
        return reber.draw_sets(task, {"train": n_train, "val": 30, "test": 30}, data_seed, None, "independent")
    small, large = sets(40), sets(200)
    emb = task == "embedded-reber"
    for name in reber.SETS:
        assert small[name] == reber.sample_set(cells.stream("data", 0, task, name), len(small[name]), emb), name
    assert large["train"][:40] == small["train"]
    assert large["val"] == small["val"] and large["test"] == small["test"]
    encoded = reber.datasets(task, {"train": 40, "val": 30, "test": 30}, 0, torch.float64, sampling="independent")
    assert all(_decode(encoded[name]) == small[name] for name in reber.SETS)
    assert small["val"] != small["test"] and sets(40, 1)["val"] != small["val"]   # data_seed changes every set


# Inner strings by brute force over EDGES (independent of reber's path counts): length -> strings.
def enumerate_inner(longest):
    found, frontier = {}, [("B", 0)]
    while frontier:
        s, q = frontier.pop()
        if q == 3 and len(s) + 1 <= longest:
            found.setdefault(len(s) + 1, []).append(s + "E")
        for (state, c), nxt in EDGES.items():
            if state == q and len(s) + 2 <= longest:
                frontier.append((s + c, nxt))
    return found


INNER = enumerate_inner(14)
# 0.999 quantiles of the chi-square distribution by degrees of freedom (from tables): a correct
# sampler fails one of these checks with probability 1e-3.
CHI2_999 = {5: 20.515, 6: 22.458, 9: 27.877, 10: 29.588}


def chi_square(observed, expected_p):
    n = sum(observed)
    return sum((o - n * p) ** 2 / (n * p) for o, p in zip(observed, expected_p))


def test_path_counts_are_the_number_of_strings_of_each_length():
    assert [reber.count(n) for n in range(3, 15)] == [len(INNER.get(n, [])) for n in range(3, 15)]
    for n in (5, 9, 12):
        assert sorted(reber.rank(s) for s in INNER[n]) == list(range(len(INNER[n])))
        assert all(accepts(s) for s in INNER[n])


def test_a_lag_range_draws_lengths_in_proportion_to_their_strings():
    """4000 draws at lag 6-11: the lengths' chi-square against the enumerated counts (5 degrees of
    freedom) stays below its 0.999 quantile."""
    rng, pool = cells.stream("test", "lag-lengths"), reber.Pool((6, 11))
    drawn = [pool.draw(rng) for _ in range(4000)]
    assert all(accepts(s) for s in drawn)
    total = sum(len(INNER[n]) for n in range(6, 12))
    observed = [sum(len(s) == n for s in drawn) for n in range(6, 12)]
    assert chi_square(observed, [len(INNER[n]) / total for n in range(6, 12)]) < CHI2_999[5]


def test_strings_of_one_length_are_equally_likely():
    """2200 draws at lag 9-9 over its 11 strings (10 degrees of freedom)."""
    rng, pool = cells.stream("test", "lag-uniform"), reber.Pool((9, 9))
    drawn = [pool.draw(rng) for _ in range(2200)]
    assert set(drawn) == set(INNER[9])
    assert chi_square([drawn.count(s) for s in INNER[9]], [1 / 11] * 11) < CHI2_999[10]


def test_the_grammars_distribution_without_excluded_strings():
    """With no lag a pool follows the grammar (a string of l symbols: probability 2^-(l-2)),
    conditioned on leaving out what it excludes; the excluded strings reach past the first
    lengths, so both the weighed lengths and the walks longer than every excluded string are
    drawn (6 degrees of freedom over lengths 5..10 and longer)."""
    pool = reber.Pool()
    excluded = INNER[5][:1] + INNER[6][:2] + INNER[8][:5]
    for s in excluded:
        pool.exclude(s)
    rng = cells.stream("test", "grammar")
    drawn = [pool.draw(rng) for _ in range(4000)]
    assert not set(drawn) & set(excluded) and all(accepts(s) for s in drawn)
    mass = {n: sum(2.0 ** -(n - 2) for s in INNER[n] if s not in excluded) for n in range(5, 11)}
    mass["longer"] = 1 - sum(len(INNER[n]) * 2.0 ** -(n - 2) for n in range(5, 11))
    total = sum(mass.values())
    observed = [sum(len(s) == n for s in drawn) for n in range(5, 11)] + [sum(len(s) > 10 for s in drawn)]
    assert chi_square(observed, [m / total for m in mass.values()]) < CHI2_999[6]


class Counting:
    """A generator that counts the draws asked of it."""

    def __init__(self, rng):
        self.rng, self.calls = rng, 0

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls += 1
            return getattr(self.rng, name)(*args, **kwargs)
        return call


def test_lag_60_takes_one_draw_per_string_and_no_rejection():
    """Every string at lag 58-60 costs exactly one uniform integer, also once most of a
    length's strings... would be excluded: the sampler never draws and throws away."""
    rng, pool = Counting(cells.stream("test", "lag60")), reber.Pool((58, 60))
    drawn = []
    for _ in range(300):
        drawn.append(pool.draw(rng))
        pool.exclude(drawn[-1])
    assert rng.calls == 300 and len(set(drawn)) == 300
    assert all(accepts(s) and 58 <= len(s) <= 60 for s in drawn)
    small = reber.Pool((7, 7))          # 4 strings: draw all of them, one draw each
    rng = Counting(cells.stream("test", "lag7"))
    for _ in range(4):
        small.exclude(small.draw(rng))
    assert rng.calls == 4 and small.size() == 0 and sorted(small.excluded[7]) == [0, 1, 2, 3]


@pytest.mark.parametrize("task, lag", [("reber", None), ("embedded-reber", None), ("embedded-reber", (9, 12)),
                                       ("embedded-reber", (40, 44))])
def test_disjoint_sets_share_no_string_and_balance_the_outer_symbol(task, lag):
    sizes = {"train": 60, "val": 40, "test": 40}
    sets = reber.draw_sets(task, sizes, 0, lag, "disjoint")
    emb = task == "embedded-reber"
    for name, strings in sets.items():
        assert len(strings) == sizes[name] and len(set(strings)) == len(strings), name     # no repeat in a set
        assert all(accepts_embedded(s) if emb else accepts(s) for s in strings)
        if emb:
            assert sum(s[1] == "T" for s in strings) == len(strings) // 2, name
            assert reber.constant_outer(strings, True) == 0.5
        if lag:
            assert all(lag[0] <= len(s) - 4 <= lag[1] for s in strings)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(sets[a]) & set(sets[b]), (a, b)
    assert reber.share_in(sets["test"], sets["train"]) == 0
    assert reber.draw_sets(task, sizes, 0, lag, "disjoint") == sets                    # the same strings again
    assert reber.draw_sets(task, sizes, 1, lag, "disjoint")["test"] != sets["test"]


def test_short_lags_shrink_the_sets_and_say_so_in_one_line():
    asked = {"train": 256, "val": 256, "test": 256}
    used, note = reber.set_sizes("embedded-reber", asked, (5, 8), "disjoint")
    have = sum(len(INNER[n]) for n in range(5, 9))                 # 16 inner strings per outer symbol
    assert sum(used.values()) == 2 * have and used["val"] == used["test"] >= 2
    assert all(v % 2 == 0 for v in used.values())
    assert "\n" not in note and "16 inner strings" in note and f"train {used['train']}" in note
    sets = reber.draw_sets("embedded-reber", used, 0, (5, 8), "disjoint")
    assert len(set().union(*map(set, sets.values()))) == 2 * have      # every string used once
    assert reber.set_sizes("embedded-reber", asked, (20, 24), "disjoint") == (asked, None)
    assert reber.set_sizes("reber", asked, None, "disjoint") == (asked, None)          # infinitely many strings
    assert reber.set_sizes("embedded-reber", asked, (5, 8), "independent") == (asked, None)
    odd = {"train": 255, "val": 1, "test": 7}       # an odd embedded set: one T or P more, its size kept
    assert reber.set_sizes("embedded-reber", odd, None, "disjoint") == (odd, None)
    sets = reber.draw_sets("embedded-reber", odd, 0, None, "disjoint")
    for name, strings in sets.items():
        assert len(strings) == odd[name] and abs(2 * sum(s[1] == "T" for s in strings) - odd[name]) == 1
        assert reber.constant_outer(strings, True) == (odd[name] + 1) / (2 * odd[name])
    with pytest.raises(UsageError, match="5-5 holds 2 inner string"):
        reber.set_sizes("embedded-reber", asked, (5, 5), "disjoint")


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
