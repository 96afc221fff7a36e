"""The cells beyond the paper (tanh Elman, LSTM, MGU), gain draws, the cache-resident path and
the largest Lyapunov exponent, each against an independent plain computation."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import cells
from cells.registry import CELLS, affine, register
from sweeps.jobs import discrepancy as D
from sweeps.jobs import memory as M
from sweeps.jobs import resident


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def plain_state(cell, p, word):
    """The state after reading ``word`` (0/1 symbols), from each cell's published equations,
    one draw at a time; ``p`` maps names to (k, 2) / (k, k) arrays. Returns (h, whole state)."""
    k = p["Wf" if cell != "tanh" else "Wh"].shape[0]
    h, c = np.zeros(k), np.zeros(k)
    for symbol in word:
        x = np.eye(2)[symbol]
        if cell == "tanh":                                   # Elman (1990) with tanh
            h = np.tanh(p["Uh"] @ x + p["Wh"] @ h)
        elif cell == "lstm":                                 # Hochreiter & Schmidhuber; Gers et al.
            i = sigmoid(p["Ui"] @ x + p["Wi"] @ h)
            f = sigmoid(p["Uf"] @ x + p["Wf"] @ h)
            g = np.tanh(p["Ug"] @ x + p["Wg"] @ h)
            o = sigmoid(p["Uo"] @ x + p["Wo"] @ h)
            c = f * c + i * g
            h = o * np.tanh(c)
        else:                                                # minimal gated unit, Zhou et al. (2016)
            f = sigmoid(p["Uf"] @ x + p["Wf"] @ h)
            h = (1 - f) * h + f * np.tanh(p["Uh"] @ x + p["Wh"] @ (f * h))
    return h, (np.concatenate([h, c]) if cell == "lstm" else h)


GATES = {"tanh": "h", "lstm": "ifgo", "mgu": "fh"}


def plain_draw(cell, init, k, rng):
    out = {}
    for g in GATES[cell]:
        for name, shape in ((f"U{g}", (k, 2)), (f"W{g}", (k, k))):
            scale = 1.0 if init == "normal" else float(init.split(":")[1]) / math.sqrt(shape[1])
            out[name] = rng.normal(0, scale, shape)
    return out


def group_rows(cell, init, k, l_max, draws, seed=0, shard_size=1000, lyapunov=False):
    """The job's tables for one group, computed in-process (plan, shards, finalize)."""
    job = D.Discrepancy()
    (group,) = job.plan(job.Settings.parse({"cells": cell, "inits": init, "k": k, "l_max": l_max, "draws": draws,
                                            "seeds": seed, "shard_size": shard_size, "lyapunov": lyapunov}))
    merged = job.finalize(group, [D.compute_shard(s.params) for s in group.shards])
    return {name: t.to_pandas() for name, t in merged.items()}


@pytest.mark.parametrize("cell,init,k,l", [("tanh", "normal", 3, 8), ("tanh", "gain:0.9", 6, 12),
                                           ("lstm", "normal", 4, 10), ("lstm", "gain:2", 5, 15),
                                           ("mgu", "normal", 3, 10), ("mgu", "gain:1.5", 40, 10)])
def test_new_cells_agree_with_a_plain_per_draw_loop(cell, init, k, l):
    """D (and, for the LSTM, D of the whole state (h, c)) within 4 standard errors of an
    independent Monte Carlo estimate: other draws, the cells' equations written out here."""
    n = 400
    tables = group_rows(cell, init, k, l, n)
    rng = np.random.default_rng(7)
    ref_h, ref_s = [], []
    for _ in range(n):
        p = plain_draw(cell, init, k, rng)
        (hu, su), (hv, sv) = plain_state(cell, p, [0] * l), plain_state(cell, p, [1] + [0] * (l - 1))
        ref_h.append(np.linalg.norm(hu - hv)), ref_s.append(np.linalg.norm(su - sv))
    for table, ref in (("discrepancy", np.array(ref_h)), ("state_discrepancy", np.array(ref_s))):
        if table not in tables:
            assert cell != "lstm"
            continue
        row = tables[table].set_index("l").loc[l]
        se = math.sqrt(row["std"] ** 2 / n + ref.std(ddof=1) ** 2 / n)
        assert abs(row["mean"] - ref.mean()) <= 4 * se, (table, row["mean"], ref.mean(), se)
        # The two medians: the sweep's (within a 4.7 % bin) among the reference's order statistics
        # at 1/2 -+ 4 standard errors of the difference of two sample proportions.
        lo, hi = np.quantile(ref, [0.5 - 4 * math.sqrt(0.5 / n), 0.5 + 4 * math.sqrt(0.5 / n)])
        assert lo / 1.05 <= row["q50"] <= hi * 1.05, (table, row["q50"], lo, hi)
    assert ("state_discrepancy" in tables) == (cell == "lstm")


def test_gain_draws_have_the_variance_they_claim():
    k, n = 64, 40
    for g in (0.5, 3.0):
        p = cells.draw(cells.get_cell("gru").shapes(2, k), n, f"gain:{g:g}", cells.stream(1))
        for name, fan_in in (("Wz", k), ("Uz", 2)):
            x = p[name].numpy().ravel()
            var, want = x.var(ddof=1), g * g / fan_in
            se = want * math.sqrt(2 / (len(x) - 1))                 # sd of a normal sample variance
            assert abs(var - want) <= 4 * se, (g, name, var, want)
            assert abs(x.mean()) <= 4 * math.sqrt(want / len(x))
        assert cells.gain(f"gain:{g:g}", k) == g
    # the gain of the named draws: the same sqrt(fan_in x variance)
    for init, fan_in, want in (("normal", 16, 4.0), ("xavier", 16, 1.0), ("uniform", 16, 1 / math.sqrt(3))):
        w = cells.draw({"W": (fan_in, fan_in)}, 400, init, cells.stream(2))["W"].numpy()
        assert math.sqrt(fan_in * w.var()) == pytest.approx(want, rel=0.02)
        assert cells.gain(init, fan_in) == pytest.approx(want)
    with pytest.raises(ValueError, match="gain:G with G > 0"):
        cells.draw({"W": (2, 2)}, 1, "gain:-1", cells.stream(0))


@pytest.mark.parametrize("cell,k", [("vanilla", 3), ("vanilla", 40), ("gru", 5), ("gru", 20), ("tanh", 8),
                                    ("lstm", 6), ("mgu", 7)])
def test_the_resident_path_agrees_with_the_reference(cell, k):
    """Same draws through both paths: the vanilla cell to 1e-12 relative at every l (1e-13
    absolute below D = 0.1, where D is a difference of nearly equal states), gated cells to that
    up to l = 20 and in distribution beyond (their chaos amplifies rounding)."""
    c = cells.get_cell(cell)
    p = {n: torch.cat([D.draw_block(cell, "normal", k, s, 0)[n] for s in (0, 1)]) for n in c.shapes(2, k)}
    ref, ref_state = D.reference_distances(c, {n: cells.with_guard(t, 2 * k) for n, t in p.items()}, 50)
    ref = ref[:100].numpy()
    got, got_state = resident.distances(c, p, 50)
    upto = 50 if cell == "vanilla" else 20
    np.testing.assert_allclose(got[:, :upto], ref[:, :upto], rtol=1e-12, atol=1e-13)
    if ref_state is not None:
        np.testing.assert_allclose(got_state[:, :upto], ref_state[:100, :upto].numpy(), rtol=1e-12, atol=1e-13)
    se = np.sqrt(ref.var(axis=0, ddof=1) / 100 + got.var(axis=0, ddof=1) / 100) + 1e-300
    assert np.all(np.abs(got.mean(axis=0) - ref.mean(axis=0)) <= 4 * se)
    assert np.all(np.abs((got > 1e-6).mean(axis=0) - (ref > 1e-6).mean(axis=0)) <= 0.1)


def test_a_group_s_path_depends_on_k_alone():
    """Groups below RESIDENT_K run the reference path (the paper's grid keeps its numbers),
    wider ones the resident path, whatever the shard size."""
    for k, path in ((D.RESIDENT_K - 1, "reference"), (D.RESIDENT_K, "resident")):
        c = cells.get_cell("gru")
        rows = [group_rows("gru", "normal", k, 12, 150, shard_size=s)["discrepancy"] for s in (50, 100)]
        pd.testing.assert_frame_equal(rows[0], rows[1], check_exact=True)
        p = {n: torch.cat([D.draw_block("gru", "normal", k, 0, b)[n] for b in (0, 1, 2)]) for n in c.shapes(2, k)}
        if path == "reference":
            d = D.reference_distances(c, {n: cells.with_guard(t, 2 * k) for n, t in p.items()}, 12)[0][:150].numpy()
        else:
            d = resident.distances(c, p, 12)[0]
        np.testing.assert_allclose(rows[0]["mean"], d.mean(axis=0), rtol=1e-13)
        assert rows[0]["frac_distinct"].tolist() == (d > 1e-6).mean(axis=0).tolist()


# ---------------------------------------------------------------------- the largest Lyapunov exponent
@pytest.fixture
def linear_cell():
    """h_t = U x_t + W h_{t-1}: with W = a Q (Q orthogonal) every tangent grows by |a| a step."""
    register("linear-test", gates=("h",), equations="h_t = U x_t + W h_{t-1}")(lambda p, x, h: affine(p, "h", x, h))
    yield cells.get_cell("linear-test")
    del CELLS["linear-test"]


def test_lyapunov_of_a_linear_cell_is_log_a(linear_cell):
    rng = np.random.default_rng(3)
    k, scales = 6, np.array([0.3, 0.9, 1.0, 1.7])
    q = np.stack([np.linalg.qr(rng.normal(size=(k, k)))[0] for _ in scales])
    params = {"Uh": torch.from_numpy(rng.normal(size=(len(scales), k, 2))),
              "Wh": torch.from_numpy(scales[:, None, None] * q)}
    lam, saturated = resident.lyapunov(linear_cell, params, 40)
    np.testing.assert_allclose(lam, np.log(scales), atol=1e-12)
    assert np.isnan(saturated).all()                       # no gate to saturate
    lam, _ = resident.lyapunov(linear_cell, {"Uh": params["Uh"][:1, :1], "Wh": torch.tensor([[[-0.5]]])}, 9)
    assert lam[0] == pytest.approx(math.log(0.5), abs=1e-14)


@pytest.mark.parametrize("cell,init,k", [("vanilla", "normal", 4), ("gru", "normal", 5), ("lstm", "gain:2", 4),
                                         ("mgu", "normal", 3), ("tanh", "gain:3", 5)])
def test_lyapunov_equals_an_exact_jacobian_product(cell, init, k):
    """The complex-step tangent against torch's forward-mode derivative of the torch step
    (another implementation of J δ), renormalised and averaged the same way."""
    c = cells.get_cell(cell)
    p = {n: t[:6] for n, t in D.draw_block(cell, init, k, 0, 0).items()}
    l_max = 30
    lam, _ = resident.lyapunov(c, p, l_max)
    x0, x1 = torch.eye(2, dtype=torch.float64)[[0]], torch.eye(2, dtype=torch.float64)[[1]]
    for i in range(6):
        q = {n: t[i: i + 1] for n, t in p.items()}
        f = lambda s, q=q: c.step(q, x0, s)                            # noqa: E731
        zero = torch.zeros(1, 1, c.memory * k, dtype=torch.float64)
        s = f(zero)
        delta = c.step(q, x1, zero) - s
        delta = delta / delta.norm()
        total = 0.0
        for t in range(2, l_max + 1):
            s, tangent = torch.func.jvp(f, (s,), (delta,))
            growth = float(tangent.norm())
            if t > l_max // 2:
                total += math.log(growth)
            delta = tangent / growth
        assert lam[i] == pytest.approx(total / (l_max - l_max // 2), abs=1e-9), (cell, i)


def test_lyapunov_predicts_the_decay_rate_of_d():
    """Where D decays as exp(λ l), each draw's decay rate matches its exponent, and the median
    decay rate of the group matches the median exponent."""
    for cell, init in (("vanilla", "gain:2"), ("gru", "gain:1"), ("lstm", "gain:1"), ("tanh", "gain:0.8")):
        tables = group_rows(cell, init, 8, 60, 100, lyapunov=True)
        draws, memory = tables["lyapunov"], tables["memory"].iloc[0]
        both = draws[np.isfinite(draws["rate"]) & np.isfinite(draws["lyapunov"]) & (draws["lyapunov"] < -0.02)]
        assert len(both) >= 80, cell
        gap = (both["rate"] - both["lyapunov"]).abs()
        assert gap.median() < 0.02 and gap.quantile(0.8) < 0.1, (cell, gap.describe())
        assert memory["rate"] == pytest.approx(memory["lyapunov_q50"], abs=0.1 * abs(memory["rate"]) + 0.01)
        assert len(draws) == 100 and list(draws["draw"]) == list(range(100))
        assert (cell in ("vanilla", "tanh")) == draws["saturated"].isna().all()


def test_saturated_gates_are_the_share_of_units_above_0_99():
    k = 6
    p = {n: t[:4] for n, t in D.draw_block("gru", "gain:6", k, 0, 0).items()}
    _, saturated = resident.lyapunov(cells.get_cell("gru"), p, 20)
    x0 = torch.eye(2, dtype=torch.float64)[[0]]
    for i in range(4):
        q = {n: t[i: i + 1] for n, t in p.items()}
        h = torch.zeros(1, 1, k, dtype=torch.float64)
        for _ in range(20):
            h = cells.get_cell("gru").step(q, x0, h)
        z = torch.sigmoid(h @ q["Wz"][0].T + x0 @ q["Uz"][0].T)
        assert saturated[i] == pytest.approx(float((z > 0.99).double().mean()), abs=1e-12)


# ---------------------------------------------------------------------- what the trajectories settle on
def test_attractors_of_hand_made_maps(linear_cell):
    """h_t = U x_t + W h_{t-1}: with W = 0.5 I both words reach one fixed point; with W = -I and U's
    second column 0, u cycles 0 <-> U_0 and v is that cycle one step later, while any other second
    column puts v on a cycle of its own; a rotation by 1 radian never repeats."""
    rot = np.array([[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]])
    W = np.stack([0.5 * np.eye(2), -np.eye(2), -np.eye(2), rot])
    U = np.array([[[1.0, 0.3], [0.5, -0.2]], [[1.0, 0.0], [0.5, 0.0]], [[1.0, 0.3], [0.5, -0.2]],
                  [[1.0, 0.3], [0.5, -0.2]]])
    period_u, period_v, shift = resident.settled(linear_cell, {"Uh": torch.from_numpy(U), "Wh": torch.from_numpy(W)},
                                                 61)
    assert period_u.tolist() == [1, 2, 2, 0] and period_v.tolist() == [1, 2, 2, 0]
    assert shift.tolist() == [0, 1, -1, -1]
    assert [M.attractor_name(p) for p in period_u] == ["fixed", "period-2", "period-2", "other"]


def test_period_and_phase_shift_against_a_plain_loop():
    """The vectorised classification against a loop over draws and offsets, on orbits of period 1 to 5
    (plus a drifting one), with noise just below and just above the tolerance."""
    rng = np.random.default_rng(0)
    E, P, m = 40, M.PERIOD_MAX, 3
    recent = np.empty((P + 1, E, m))
    final = np.empty((E, m))
    for e in range(E):
        p = e % 6                                     # 0: a drifting trajectory
        orbit = rng.normal(size=(max(p, 1), m))
        noise = M.SETTLED * (0.4 if e % 4 else 2.0) / math.sqrt(m)
        for j in range(P + 1):
            recent[j, e] = orbit[j % p] + noise * (j % 2) if p else rng.normal(size=m)
        final[e] = orbit[(e // 6) % max(p, 1)] if p and e % 3 else rng.normal(size=m)

    def plain(e):
        close = [j for j in range(1, P + 1) if np.linalg.norm(recent[0, e] - recent[j, e]) <= M.SETTLED]
        near = [j for j in range(P + 1) if np.linalg.norm(final[e] - recent[j, e]) <= M.SETTLED]
        return (close[0] if close else 0), (near[0] if near else -1)

    want = np.array([plain(e) for e in range(E)])
    assert M.period(recent).tolist() == want[:, 0].tolist()
    assert M.phase_shift(final, recent).tolist() == want[:, 1].tolist()
    assert {1, 2, 3, 4, 5, 0} <= set(want[:, 0].tolist()) and len(set(want[:, 1].tolist())) >= 3


def test_the_lyapunov_table_records_what_each_draw_settled_on():
    """The columns match the resident path's classification draw by draw, and an LSTM's whole-state rate
    follows its exponent (both measure (h, c)) at least as closely as its h rate does."""
    for cell, init in (("vanilla", "gain:1"), ("lstm", "gain:1")):
        rows = group_rows(cell, init, 6, 80, 100, lyapunov=True)["lyapunov"]
        p = {n: torch.cat([D.draw_block(cell, init, 6, 0, b)[n] for b in (0, 1)]) for n in D.draw_block(cell, init, 6, 0, 0)}
        period_u, period_v, shift = resident.settled(cells.get_cell(cell), p, 80)
        assert rows["attractor"].tolist() == [M.attractor_name(x) for x in period_u]
        assert rows["v_attractor"].tolist() == [M.attractor_name(x) for x in period_v]
        assert rows["v_shift"].fillna(-1).astype(int).tolist() == shift.astype(int).tolist()
        if cell == "vanilla":
            assert rows["state_rate"].isna().all()
        else:
            ok = rows[np.isfinite(rows["state_rate"]) & np.isfinite(rows["rate"]) & (rows["lyapunov"] < -0.02)]
            whole, h = (ok["state_rate"] - ok["lyapunov"]).abs(), (ok["rate"] - ok["lyapunov"]).abs()
            assert len(ok) >= 50 and whole.median() <= h.median() and whole.median() < 0.01


@pytest.mark.parametrize("cell,k", [("tanh", 6), ("lstm", 4), ("mgu", 5)])
def test_each_new_cell_trains_through_the_training_job(cli, tmp_path, cell, k):
    out = tmp_path / "out"
    code, _, err = cli("train", "--task", "reber", "--cells", f"{cell}:{k}", "--protocol", "adam", "--seeds", "0-1",
                       "--n-train", 20, "--max-epochs", 3, "--bias", "none", "--out", out)
    assert code == 0, err
    runs = pd.read_parquet(out / "runs")
    epochs = pd.read_parquet(out / "epochs")
    gates = len(cells.get_cell(cell).gates)
    assert (runs["n_params"] == gates * (7 * k + k * k) + 7 * k).all()       # no biases
    assert set(runs["engine"]) == {"numba"}                                 # auto: their fast path
    assert len(runs) == 2 and np.isfinite(runs["final_loss"]).all()
    trained = epochs[epochs["epoch"] >= 1].sort_values(["run_id", "epoch"])
    first, last = (trained.groupby("run_id")["train_loss"].nth(i) for i in (0, -1))
    assert (last.to_numpy() < first.to_numpy()).all()                     # it learns something
