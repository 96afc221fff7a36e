"""The code that decides the science, each part against a plain computation written here:

- ``metrics.step_correct``: the HS97 rule on hand-made outputs (ties at the boundary are wrong);
- ``metrics.evaluate``: on hand-made embedded Reber strings, with outputs set by hand and with
  a real model whose outputs a per-string Python loop recomputes from the cell equations;
- the ``paper`` protocol's schedule on a real small run (lr halving, the 'converged' stop);
- ``gradients.summarise``: per-example |∂loss_i/∂θ| and ||∂loss_T/∂h_{T-d}|| against a
  per-example loop of torch.autograd.grad over a hand-built recurrence.
"""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import cells
from sweeps import contract
from sweeps.jobs.training import ensemble, gradients, models, protocols, reber
from sweeps.jobs.training import evaluation as metrics

ALPHABET = "BTSXVPE"
# Valid embedded Reber strings of different lengths (so padding is exercised); the legal
# sets are written out by hand for the first one to pin down what the rule is scored on.
STRINGS = ["BTBTXSETE", "BPBPVVEPE", "BTBPTVPXVVETE", "BPBTSSXXTVVEPE", "BTBPVPXTVVETE"]
HAND_LEGAL_0 = ["TP", "B", "TP", "SX", "SX", "E", "T", "E"]   # after B, BT, BTB, ..., BTBTXSET


def test_hand_legal_sets_agree_with_the_grammar_module():
    assert reber.legal_sets(STRINGS[0], embedded=True) == HAND_LEGAL_0
    assert all(reber.first_error(s, embedded=True) is None for s in STRINGS)


# --------------------------------------------------------------------------- step_correct
def _mask(symbols):
    return torch.tensor([c in symbols for c in ALPHABET])


#      B     T     S     X     V     P     E
@pytest.mark.parametrize("y, legal, expected", [
    ([0.1, 0.9, 0.0, 0.2, 0.3, 0.8, 0.1], "TP", True),     # |S| = 2, exactly the top two
    ([0.1, 0.9, 0.0, 0.85, 0.3, 0.8, 0.1], "TP", False),   # illegal X between T and P
    ([0.1, 0.7, 0.0, 0.2, 0.3, 0.8, 0.9], "TP", False),    # illegal E first
    ([0.1, 0.9, 0.0, 0.2, 0.3, 0.8, 0.8], "TP", False),    # tie at the boundary: P == E -> wrong
    ([0.1, 0.9, 0.0, 0.2, 0.3, 0.9, 0.1], "TP", True),     # tie inside S is fine
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "TP", False),    # all equal: a tie at the boundary
    ([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0], "E", True),      # |S| = 1
    ([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0], "E", False),     # |S| = 1, tie for first
    ([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 1.9], "E", False),     # |S| = 1, legal symbol second
    ([-5., -1., -3., -4., -2., -6., -0.5], "E", True),     # negative outputs
    ([0.3, -1., 0.2, 0.25, 0.1, -2., 0.0], "BSX", True),   # |S| = 3
])
def test_step_correct_on_hand_made_outputs(y, legal, expected):
    y = torch.tensor(y, dtype=torch.float64)
    # The plain rule: the |S| largest outputs are exactly S and strictly above every other.
    order = sorted(range(7), key=lambda i: -y[i].item())
    s = {ALPHABET.index(c) for c in legal}
    plain = set(order[:len(s)]) == s and bool(y[order[len(s) - 1]] != y[order[len(s)]])
    assert plain == expected
    assert bool(metrics.step_correct(y[None], _mask(legal))[0]) is expected
    # Batched shapes: outputs (E, B, L, 7) against legal sets (B, L, 7).
    batch = torch.stack([y, y.flip(0)])[None, :, None].expand(3, 2, 1, 7)
    legal_b = torch.stack([_mask(legal), _mask(legal)])[:, None]
    got = metrics.step_correct(batch, legal_b)
    flipped = y.flip(0)
    order_f = sorted(range(7), key=lambda i: -flipped[i].item())
    plain_f = set(order_f[:len(s)]) == s and bool(flipped[order_f[len(s) - 1]] != flipped[order_f[len(s)]])
    assert got.shape == (3, 2, 1)
    assert got[:, 0, 0].tolist() == [expected] * 3 and got[:, 1, 0].tolist() == [plain_f] * 3


# --------------------------------------------------------------------------- plain model
def plain_outputs(cell: str, p: dict, string: str):
    """Outputs y_t and hidden states h_t (lists) of ONE member (unbatched parameters) on
    ``string``'s inputs x_0..x_{m-2}, built step by step from the paper's cell equations."""
    def b(name):
        return p[name] if name in p else 0.0

    k = p["O"].shape[-1]
    h = torch.zeros(k, dtype=p["O"].dtype)
    ys, hs = [], []
    for c in string[:-1]:
        x = torch.zeros(7, dtype=p["O"].dtype)
        x[ALPHABET.index(c)] = 1
        if cell == "vanilla":
            h = torch.sigmoid(p["Uh"] @ x + p["Wh"] @ h + b("bh"))
        else:
            z = torch.sigmoid(p["Uz"] @ x + p["Wz"] @ h + b("bz"))
            r = torch.sigmoid(p["Ur"] @ x + p["Wr"] @ h + b("br"))
            cand = torch.tanh(p["Uh"] @ x + p["Wh"] @ (h * r) + b("bh"))
            h = (1 - z) * cand + z * h
        hs.append(h)
        ys.append(p["O"] @ h + b("bO"))
    return ys, hs


def plain_step_loss(loss: str, y: torch.Tensor, target: int) -> torch.Tensor:
    if loss == "squared-error":
        onehot = torch.zeros(7, dtype=y.dtype)
        onehot[target] = 1
        return ((y - onehot) ** 2).sum()
    return torch.logsumexp(y, 0) - y[target]


def plain_scores(ys_per_string, strings, loss_name):
    """Loss per sequence, string, step and outer accuracy of one member, one string at a time."""
    loss, strings_ok, steps_ok, n_steps, outer_ok = 0.0, 0, 0, 0, 0
    for ys, s in zip(ys_per_string, strings):
        all_ok = True
        for t, (y, allowed) in enumerate(zip(ys, reber.legal_sets(s, embedded=True))):
            target = ALPHABET.index(s[t + 1])
            loss += float(plain_step_loss(loss_name, y, target))
            order = sorted(range(7), key=lambda i: -y[i].item())
            legal = {ALPHABET.index(c) for c in allowed}
            ok = set(order[:len(legal)]) == legal and bool(y[order[len(legal) - 1]] != y[order[len(legal)]])
            steps_ok += ok
            n_steps += 1
            all_ok &= ok
        strings_ok += all_ok
        outer_t = len(s) - 3                 # the input is the inner E, the target the outer symbol
        assert s[outer_t] == "E" and s[outer_t + 1] == s[1]
        outer_ok += max(range(7), key=lambda i: ys[outer_t][i].item()) == ALPHABET.index(s[1])
    n = len(strings)
    return {"loss": loss / n, "string_accuracy": strings_ok / n, "step_accuracy": steps_ok / n_steps,
            "outer_accuracy": outer_ok / n}


def member(p, i):
    return {n: t[i] for n, t in p.items()}


def tiny_params(cell, k, seeds, bias="authors"):
    """float64 parameters with non-zero biases (so the bias terms are tested too)."""
    p = models.init_params(cell, k, bias, "normal", seeds, torch.float64)
    g = torch.Generator().manual_seed(1)
    for n, t in p.items():
        if n.startswith("b"):
            t.copy_(0.5 * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return p


# --------------------------------------------------------------------------- evaluate
def designed_outputs(data):
    """Member 0: every step right (legal symbols 1, others 0). Member 1 the same except
    string 0: an illegal symbol above a legal one after the first B; string 1: at the outer
    step the other outer symbol first; string 2: a boundary tie at one step with |S| = 2."""
    y = data.legal.double().clone()[None].repeat(2, 1, 1, 1)           # (2, B, L, 7)
    i = ALPHABET.index
    y[1, 0, 0, i("X")] = 2.0                                             # string 0, step 0: legal TP
    s1, t1 = STRINGS[1], len(STRINGS[1]) - 3
    y[1, 1, t1, i("T" if s1[1] == "P" else "P")] = 3.0                   # string 1: wrong outer symbol
    s2 = STRINGS[2]
    t2 = reber.legal_sets(s2, embedded=True).index("TV")                 # string 2: T, V legal
    y[1, 2, t2, i("S")] = 1.0                                            # ties with T and V -> wrong
    return y


@pytest.mark.parametrize("loss", ["squared-error", "cross-entropy"])
def test_evaluate_with_outputs_set_by_hand(monkeypatch, loss):
    data = reber.encode(STRINGS, True, max(map(len, STRINGS)) - 1, torch.float64)
    y = designed_outputs(data)
    monkeypatch.setattr(models, "forward", lambda cell, p, x, mask: (y, None))
    p = {"O": torch.zeros(2, 7, 3, dtype=torch.float64)}
    got = metrics.evaluate(None, p, data, protocols.LOSSES[loss], embedded=True)
    n_steps = sum(len(s) - 1 for s in STRINGS)
    # numbers worked out by hand
    assert got["string_accuracy"].tolist() == [1.0, 2 / 5]
    assert got["step_accuracy"].tolist() == [1.0, (n_steps - 3) / n_steps]
    assert got["outer_accuracy"].tolist() == [1.0, 4 / 5]
    if loss == "squared-error":   # member 0: per step ||legal - onehot(target)||² = |S| - 1
        hand = sum(len(S) - 1 for s in STRINGS for S in reber.legal_sets(s, True)) / len(STRINGS)
        assert got["loss"][0] == pytest.approx(hand, rel=1e-12)
    # and the plain per-string loop over the same outputs
    for e in range(2):
        ys = [[y[e, b, t] for t in range(len(s) - 1)] for b, s in enumerate(STRINGS)]
        plain = plain_scores(ys, STRINGS, loss)
        for key, value in plain.items():
            assert got[key][e] == pytest.approx(value, rel=1e-12, abs=1e-15), (key, e)


@pytest.mark.parametrize("cell, k, loss", [("vanilla", 3, "squared-error"), ("gru", 2, "cross-entropy"),
                                           ("gru", 3, "squared-error")])
def test_evaluate_matches_a_plain_per_string_loop(monkeypatch, cell, k, loss):
    monkeypatch.setattr(metrics, "CHUNK", 2)    # several chunks, the last one partial
    strings = STRINGS * 2
    data = reber.encode(strings, True, max(map(len, strings)) + 2, torch.float64)   # extra padding
    p = tiny_params(cell, k, [0, 1, 2])
    got = metrics.evaluate(cells.get_cell(cell), p, data, protocols.LOSSES[loss], embedded=True)
    for e in range(3):
        ys = [plain_outputs(cell, member(p, e), s)[0] for s in strings]
        plain = plain_scores(ys, strings, loss)
        for key, value in plain.items():
            assert got[key][e] == pytest.approx(value, rel=1e-10, abs=1e-12), (key, e)
    # plain Reber: outer accuracy is NaN, the rest still scored
    inner = [s[2:-2] for s in STRINGS]
    plain_data = reber.encode(inner, False, max(map(len, inner)) - 1, torch.float64)
    got = metrics.evaluate(cells.get_cell(cell), p, plain_data, protocols.LOSSES[loss], embedded=False)
    assert np.isnan(got["outer_accuracy"]).all()
    steps = sum(len(s) - 1 for s in inner)
    ok = sum(bool(metrics.step_correct(y[None], _mask(S))[0])
             for s in inner for y, S in zip(plain_outputs(cell, member(p, 0), s)[0], reber.legal_sets(s)))
    assert got["step_accuracy"][0] == pytest.approx(ok / steps, rel=1e-12)


# --------------------------------------------------------------------------- paper protocol
def test_paper_protocol_halves_lr_when_the_epoch_error_rises_and_stops_when_it_settles(tmp_path, cli):
    """Indexing (the training job): the epochs row of epoch e >= 1 holds the lr USED in epoch e
    and loss[e], the mean training error over epoch e's updates; epoch 0 is the initial model
    (loss null). After epoch e >= 2 (epoch 1 has no predecessor to compare with):
        lr[e+1] = lr[e] / 2   if loss[e] > loss[e-1],   else lr[e+1] = lr[e];
        stop 'converged'      if |loss[e] - loss[e-1]| < tol,
    so lr[0] = lr[1] = lr[2] = 0.05 and a converged run's last row is the epoch whose change
    fell below tol. runs.final_lr is the lr after the last epoch's rule (halved if it rose).
    A run may also stop because its validation set is solved (then its last row has validation
    string accuracy 1). The same as ``lksweep train --task reber --cells vanilla:3 --protocol paper
    --seeds 0-3 --n-train 30 --max-epochs 40 --tol 1e-3 --order shuffled``: on these four seeds three
    converge and one hits the cap, and every one of them halves its rate at least twice."""
    tol = 1e-3
    spec = tmp_path / "paper-schedule.yaml"
    spec.write_text("name: paper-schedule\ntraining:\n  task: reber\n  cells: vanilla:3\n  protocol: paper\n"
                    f"  seeds: 0-3\n  n_train: 30\n  max_epochs: 40\n  tol: {tol}\n  order: shuffled\n")
    out = tmp_path / "out"
    code, _, err = cli("run", spec, "--out", out)
    assert code == 0, err
    runs = pd.read_parquet(out / "runs").set_index("run_id")
    epochs = pd.read_parquet(out / "epochs")
    assert len(runs) == 4 and epochs.run_id.nunique() == 4
    halvings = 0
    for rid, g in epochs.groupby("run_id"):
        g = g.sort_values("epoch")
        lr, loss, last = g.lr.tolist(), g.train_loss.tolist(), len(g) - 1
        assert g.epoch.tolist() == list(range(last + 1)) and math.isnan(loss[0])
        assert lr[0] == lr[1] == lr[2] == 0.05
        for e in range(2, last):
            rose = loss[e] > loss[e - 1]
            assert lr[e + 1] == (lr[e] / 2 if rose else lr[e]), (rid, e)
            halvings += rose
            assert abs(loss[e] - loss[e - 1]) >= tol, (rid, e)          # no earlier stop
        run = runs.loc[rid]
        assert run.epochs == last and run.lr == 0.05
        assert run.final_lr == (lr[last] / 2 if loss[last] > loss[last - 1] else lr[last])
        if run.stop_reason == "converged":
            assert abs(loss[last] - loss[last - 1]) < tol
        elif run.stop_reason == "solved":
            assert g.val_string_accuracy.iloc[-1] == 1.0 and (g.val_string_accuracy.iloc[:-1] < 1).all()
        else:
            assert run.stop_reason == "max_epochs" and last == 40
            assert abs(loss[last] - loss[last - 1]) >= tol
    # the checks above are not vacuous on this data: the rule fired both ways
    assert halvings > 0
    assert "converged" in set(runs.stop_reason)


def _schedule(losses, max_epochs=50, tol=1e-5):
    """Feed a made-up sequence of epoch mean errors to a real paper-protocol member's
    end-of-epoch rule; returns the lr used in each epoch 1.. and the stop reason."""
    from sweeps import spec as specs

    section = {"task": "reber", "cells": "vanilla:2", "protocol": "paper", "seeds": 0, "n_train": 4,
               "max_epochs": max_epochs, "tol": tol}
    params = [g.shards[0].params for g in specs.validate({"training": section}).groups()]
    ens = ensemble.Ensemble(params, [None])
    for loss in losses:
        assert ens.active() == [0]
        ens._record([0], np.array([loss]), ens._scores([0], "val"))
    m = ens.members[0]
    return [r["lr"] for r in m["epochs"][1:]] + [m["lr"]], m["stop"]


@pytest.mark.parametrize("losses, lrs, stop", [
    # a rise halves; a fall after a rise compares with the LAST epoch (9.5), not the best (9.0)
    ([10.0, 9.0, 9.5, 9.2, 9.2 + 2e-5, 9.2 + 2.5e-5],
     [0.05, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.00625], "converged"),   # the last: a rise < tol
    ([10.0, 9.0, 8.0, 8.0], [0.05] * 5, "converged"),                  # no change: converged, no halving
    ([10.0, 10.5], [0.05, 0.05, 0.025], None),          # (tol 0.5 here) a change of exactly tol goes on
    ([10.0, 11.0, 12.0], [0.05, 0.05, 0.025, 0.0125], "max_epochs"),
])
def test_paper_schedule_rule_on_made_up_epoch_errors(losses, lrs, stop):
    got_lrs, got_stop = _schedule(losses, max_epochs=3 if stop == "max_epochs" else 50,
                                  tol=0.5 if losses == [10.0, 10.5] else 1e-5)
    assert got_lrs == lrs and got_stop == stop


# --------------------------------------------------------------------------- gradients
def plain_gradients(cell, p, strings, loss, embedded):
    """Per member: {tensor: all |∂loss_i/∂θ| over examples i} and {d: [||∂loss_T/∂h_{T-d}||]}
    for d = 0, 1, 2, each example on its own with torch.autograd.grad."""
    e = p["O"].shape[0]
    out = []
    for i in range(e):
        params, hidden = {n: [] for n in p}, {d: [] for d in range(3)}
        for s in strings:
            leaf = {n: t[i].detach().clone().requires_grad_() for n, t in p.items()}
            ys, hs = plain_outputs(cell, leaf, s)
            targets = [ALPHABET.index(c) for c in s[1:]]
            losses = [plain_step_loss(loss, y, tg) for y, tg in zip(ys, targets)]
            grads = torch.autograd.grad(sum(losses), list(leaf.values()), retain_graph=True)
            for n, g in zip(leaf, grads):
                params[n].append(g.abs().reshape(-1))
            big_t = len(s) - 3 if embedded else len(s) - 2   # predicts the outer symbol / the final E
            hg = torch.autograd.grad(losses[big_t], [hs[big_t - d] for d in range(3)])
            for d in range(3):
                hidden[d].append(torch.linalg.vector_norm(hg[d]).item())
        out.append(({n: torch.cat(v).numpy() for n, v in params.items()},
                    {d: np.array(v) for d, v in hidden.items()}))
    return out


def check_summary(row, values):
    """n, mean and max exactly (up to rounding); each quantile within one histogram bin of
    the order statistic it estimates (the ceil(q*n)-th smallest value)."""
    v = np.sort(values)
    assert row["n"] == v.size and int(np.sum(row["hist_count"])) == v.size
    assert row["mean"] == pytest.approx(v.mean(), rel=1e-9, abs=1e-300)
    assert row["max"] == pytest.approx(v[-1], rel=1e-9)
    bin_ratio = 10 ** (1 / contract.BINS_PER_DECADE) * (1 + 1e-9)
    for name, q in gradients.QUANTILES.items():
        ref = v[max(math.ceil(q * v.size), 1) - 1]
        if ref == 0:
            assert row[name] == 0, name
        else:
            assert 1 / bin_ratio <= row[name] / ref <= bin_ratio, (name, row[name], ref)


@pytest.mark.parametrize("cell, k, loss, embedded", [
    ("vanilla", 3, "squared-error", True), ("gru", 2, "squared-error", True), ("gru", 2, "cross-entropy", True),
    ("vanilla", 3, "cross-entropy", False)])
def test_gradient_summaries_match_a_per_example_loop(monkeypatch, cell, k, loss, embedded):
    monkeypatch.setattr(gradients, "EXAMPLES", 3)   # several backward passes, the last partial
    strings = STRINGS + ["BPBPTVVEPE"] if embedded else [s[2:-2] for s in STRINGS] + ["BPTTVVE"]
    data = reber.encode(strings, embedded, max(map(len, strings)) + 1, torch.float64)
    p = tiny_params(cell, k, [3, 4])
    got = gradients.summarise(cells.get_cell(cell), p, data, protocols.LOSSES[loss])
    plain = plain_gradients(cell, p, strings, loss, embedded)
    assert len(got) == 2
    for rows, (params, hidden) in zip(got, plain):
        by_tensor = {r["tensor"]: r for r in rows if r["quantity"] == "param"}
        assert set(by_tensor) == set(p) and all(r["distance"] == -1 for r in by_tensor.values())
        for n, values in params.items():
            assert values.size == len(strings) * p[n][0].numel()
            check_summary(by_tensor[n], values)
            # structural zeros: U's columns of the symbols a string never reads, each exactly 0 in the plain loop
            k_rows, n_symbols = p[n][0].shape[0], p[n][0].shape[-1]
            absent = [[ALPHABET.index(c) for c in ALPHABET if c not in s[:-1]] for s in strings]
            want = sum(len(a) for a in absent) * k_rows if n.startswith("U") else 0
            assert by_tensor[n]["structural_zeros"] == want, n
            if n.startswith("U"):
                per_string = values.reshape(len(strings), k_rows, n_symbols)
                assert all((per_string[i][:, a] == 0).all() for i, a in enumerate(absent))
                assert np.sum(values == 0) >= want
        by_distance = {r["distance"]: r for r in rows if r["quantity"] == "hidden"}
        for d, values in hidden.items():
            check_summary(by_distance[d], values)
        assert (np.array([r["max"] for r in by_distance.values()]) > 0).all()
