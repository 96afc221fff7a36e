"""The memory measure under noise (``decodable``): a one-unit linear cell against its closed
form, a bistable cell (near 1), chaotic and forgetting cells (near 1/2, where D still reads
memory for the chaotic one), a plain NumPy reference of the whole measure, determinism across
shard layouts, and bad noise levels refused."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import cells
from cells.registry import CELLS, affine, register
from sweeps.jobs import decodable, resident
from sweeps.jobs import discrepancy as D


def group_tables(cell, init, k, l_max, draws, noise, shard_size=1000, noise_draws=None):
    """The job's tables for one group with ``noise``, computed in-process (plan, shards, finalize)."""
    job = D.Discrepancy()
    (group,) = job.plan(job.Settings.parse({"cells": cell, "inits": init, "k": k, "l_max": l_max, "draws": draws,
                                            "shard_size": shard_size, "noise": noise, "noise_draws": noise_draws}))
    merged = job.finalize(group, [D.compute_shard(s.params) for s in group.shards])
    return {name: t.to_pandas() for name, t in merged.items()}


def phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@pytest.fixture
def linear_cell():
    register("linear-test", gates=("h",), equations="h_t = U x_t + W h_{t-1}")(lambda p, x, h: affine(p, "h", x, h))
    yield cells.get_cell("linear-test")
    del CELLS["linear-test"]


def fitted_accuracy(gap, spread, m):
    """The expected held-out accuracy of a one-unit readout fitted on m repeats a word, for
    classes N(∓gap/2, spread²): the fitted means' difference D ~ N(gap, spread²/(m/2)) picks the
    side, their midpoint M ~ N(0, spread²/(4m/2)) the threshold, independently (sum and
    difference of independent Gaussians of equal variance); integrated over M on a fine grid."""
    grid = np.linspace(-8, 8, 4001) * spread / math.sqrt(2 * m)
    density = np.exp(-0.5 * (grid * math.sqrt(2 * m) / spread) ** 2)
    cdf = np.vectorize(phi)
    given = 0.5 * (cdf((gap / 2 - grid) / spread) + cdf((gap / 2 + grid) / spread))
    right_side = phi(gap / (spread / math.sqrt(m / 2)))
    a = (given * density).sum() / density.sum()
    return right_side * a + (1 - right_side) * (1 - a)


def test_a_one_unit_linear_cell_reads_its_closed_form(linear_cell):
    """h_t = a h_{t-1} + b x_t + N(0, σ²): after l steps u's and v's states are Gaussians whose
    means differ by a^(l-1) (b_1 - b_0) and whose variance is σ_l² = σ² Σ_{j<l} a^(2j), so the
    best accuracy is Φ(|Δμ| / (2 σ_l)). The held-out readout, fitted on 8 repeats a word, reads
    its exact finite-sample expectation within 3 standard errors over 400 draws at every l, and
    that approaches the best: within 0.015 wherever |Δμ| >= σ_l; where the classes overlap more
    the fitted side itself is uncertain and the readout reads closer to 1/2."""
    e, l_max, a, sigma = 400, 12, 0.85, 0.35
    params = {"Uh": torch.tensor([[[0.2, 1.2]]], dtype=torch.float64).expand(e, 1, 2).contiguous(),
              "Wh": torch.full((e, 1, 1), a, dtype=torch.float64)}
    acc = resident.decodability(linear_cell, params, l_max, sigma, [cells.stream("linear", i) for i in range(e)])
    gap = a ** np.arange(l_max)
    spread = sigma * np.sqrt(np.cumsum(a ** (2 * np.arange(l_max))))
    best = np.array([phi(g / (2 * s)) for g, s in zip(gap, spread)])
    fitted = np.array([fitted_accuracy(g, s, decodable.REPEATS // 2) for g, s in zip(gap, spread)])
    mean, se = acc.mean(0), acc.std(0, ddof=1) / math.sqrt(e)
    assert best[0] > 0.9 and best[-1] < 0.6          # the range the check spans
    assert np.all(abs(mean - fitted) <= 3 * se), (mean, fitted)
    assert np.all((best - fitted)[gap >= spread] <= 0.015) and np.all(fitted <= best)


def test_a_bistable_cell_reads_near_one_and_chaos_and_forgetting_near_one_half():
    """A one-unit tanh cell h = tanh(5 h + U x), U = (-1, 4), has two attractors near ±1; u
    falls into the lower and v into the upper, and noise of 0.1 never carries a state over the
    barrier, so both stay readable. A chaotic tanh cell (N(0,1), k = 64: gain 8) keeps D of
    order one, yet noise spreads u's and v's repeats over one attractor: decodable is 1/2
    within 3 standard errors (+0.02 for the readout's small fitting noise) once the noise has
    spread, and so for a forgetting vanilla cell (xavier), whose D falls to rounding."""
    e = 20
    tanh = cells.get_cell("tanh")
    bistable = {"Uh": torch.tensor([[[-1.0, 4.0]]], dtype=torch.float64).expand(e, 1, 2).contiguous(),
                "Wh": torch.full((e, 1, 1), 5.0, dtype=torch.float64)}
    acc = resident.decodability(tanh, bistable, 60, 0.1, [cells.stream("bistable", i) for i in range(e)])
    assert acc.min() >= 0.97

    for cell, init, chaotic in (("tanh", "normal", True), ("vanilla", "xavier", False)):
        t = group_tables(cell, init, 64, 40, 50, 0.05)
        late = t["decodable"][t["decodable"].l >= 20]
        se = late.decodable_std / math.sqrt(50)
        assert (abs(late.decodable - 0.5) <= 3 * se + 0.02).all(), (cell, late.decodable.tolist())
        d = t["discrepancy"][t["discrepancy"].l >= 20]
        assert (d.q50 > 0.5).all() if chaotic else (d.q50 < 1e-6).all()


def test_a_readout_scored_on_its_own_repeats_would_read_memory_in_chaos():
    """Why the repeats are split: fitted and scored on the same 16 repeats, the discriminant
    separates a chaotic cell's u from v well above 1/2; held out, it does not."""
    tanh = cells.get_cell("tanh")
    params = D.draw_block("tanh", "normal", 64, 0, 0)
    h = plain_noisy_hidden(tanh, {n: t[:10].numpy() for n, t in params.items()}, 30, 0.05, np.random.default_rng(1))
    r = decodable.REPEATS
    w, mid = decodable.readout(h[..., :r, :], h[..., r:, :])
    z = ((h - mid[..., None, :]) * w[..., None, :]).sum(-1)
    own = ((z[..., :r] < 0).sum(-1) + (z[..., r:] > 0).sum(-1)) / (2 * r)
    assert own[:, -1].mean() > 0.7
    assert abs(decodable.accuracy(h)[:, -1].mean() - 0.5) < 0.1


def plain_noisy_hidden(cell, p, l_max, sigma, rng):
    """h of R noisy runs of u and of v per draw, (E, l_max, 2R, k), one draw, run and step at a
    time from the published equations (vanilla σ, tanh Elman, GRU), noise from ``rng``."""
    e, k = p[f"W{cell.gates[0]}"].shape[:2]
    r = decodable.REPEATS
    out = np.empty((e, l_max, 2 * r, k))
    for i in range(e):
        q = {name: a[i] for name, a in p.items()}
        for j in range(2 * r):
            h = np.zeros(k)
            for t in range(l_max):
                x = np.eye(2)[int(t == 0 and j >= r)]
                if cell.name == "vanilla":
                    h = 1 / (1 + np.exp(-(q["Uh"] @ x + q["Wh"] @ h)))
                elif cell.name == "tanh":
                    h = np.tanh(q["Uh"] @ x + q["Wh"] @ h)
                else:      # GRU, Cho et al. (2014), as the paper writes it
                    z = 1 / (1 + np.exp(-(q["Uz"] @ x + q["Wz"] @ h)))
                    rr = 1 / (1 + np.exp(-(q["Ur"] @ x + q["Wr"] @ h)))
                    h = z * h + (1 - z) * np.tanh(q["Uh"] @ x + q["Wh"] @ (rr * h))
                h = h + sigma * rng.standard_normal(k)
                out[i, t, j] = h
    return out


def plain_accuracy(h):
    """The measure written out for one draw and step, h (2R, k): for each half of the repeats,
    each unit's pooled variance s_j shrunk to (1 - α) s_j + α mean(s), w_j = (μ_v - μ_u)_j /
    that, scored on the other half at the midpoint, ties 1/2."""
    r = decodable.REPEATS
    halves = [np.arange(r // 2), np.arange(r // 2, r)]
    correct = 0.0
    for fit, scored in (halves, halves[::-1]):
        u, v = h[fit], h[r + fit]
        var = np.array([(np.sum((u[:, j] - u[:, j].mean()) ** 2) + np.sum((v[:, j] - v[:, j].mean()) ** 2))
                        / (2 * len(fit) - 2) for j in range(h.shape[1])])
        w = (v.mean(0) - u.mean(0)) / ((1 - decodable.SHRINK) * var + decodable.SHRINK * var.mean())
        mid = (u.mean(0) + v.mean(0)) / 2
        for x, sign in ((h[scored], -1), (h[r + scored], 1)):
            z = (x - mid) @ w * sign
            correct += (z > 0).sum() + 0.5 * (z == 0).sum()
    return correct / (2 * r)


@pytest.mark.parametrize("cell, init, k, sigma", [("gru", "normal", 6, 0.05), ("vanilla", "gain:4", 40, 0.05),
                                                  ("tanh", "gain:1.2", 24, 0.2)])
def test_the_measure_agrees_with_a_plain_reference(cell, init, k, sigma):
    """The job's decodable (the same draws, its own noise) against the plain computation above
    (other noise): at every l the mean over 12 draws differs by less than 4 standard errors of
    the paired per-draw differences (+0.01), and the reference spans more than chance."""
    l_max, draws = 15, 12
    t = group_tables(cell, init, k, l_max, draws, sigma)["decodable"]
    params = D.draw_block(cell, init, k, 0, 0)
    h = plain_noisy_hidden(cells.get_cell(cell), {n: a[:draws].numpy() for n, a in params.items()}, l_max, sigma,
                           np.random.default_rng(7))
    ref = np.array([[plain_accuracy(h[i, l]) for l in range(l_max)] for i in range(draws)])
    got = resident.decodability(cells.get_cell(cell), {n: a[:draws] for n, a in params.items()}, l_max, sigma,
                                [cells.stream(0, cell, init, k, "noise", i) for i in range(draws)])
    np.testing.assert_array_equal(t.decodable.to_numpy(), got.mean(0))       # the table holds what was measured
    diff = got - ref
    se = diff.std(0, ddof=1) / math.sqrt(draws)
    assert np.all(abs(diff.mean(0)) <= 4 * se + 0.01), (got.mean(0), ref.mean(0))
    assert ref.mean(0).max() > 0.6


def test_bit_identical_for_other_shard_layouts():
    """Each draw's noise comes from a stream of its own identity, so shards of 50, 100 or all
    250 draws give the same table to the bit, the noise measured on the first 120 draws (which
    end inside a block and a shard); its quantiles are exact values of the grid."""
    a, b, c = (group_tables("gru", "gain:2", 5, 20, 250, 0.1, shard_size=size, noise_draws=120)["decodable"]
               for size in (50, 100, 1000))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(a, c, check_exact=True)
    first = group_tables("gru", "gain:2", 5, 20, 120, 0.1)["decodable"]      # the same 120 draws, alone
    pd.testing.assert_frame_equal(a, first, check_exact=True)
    assert (a.n_draws == 120).all() and (a.noise == 0.1).all() and (a.repeats == decodable.REPEATS).all()
    grid = a[["decodable_q10", "decodable_q50", "decodable_q90"]].to_numpy() * 4 * decodable.REPEATS
    assert np.array_equal(grid, np.rint(grid)) and (a.decodable_q10 <= a.decodable_q90).all()


def test_cli_noise_writes_the_table_and_bad_levels_are_refused(tmp_path, cli):
    out = tmp_path / "o"
    code, _, err = cli("discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", 3, "--draws", 50, "--noise", "0.1",
                       "--out", out)
    assert code == 0, err
    df = pd.read_parquet(out / "decodable")
    assert list(df.columns) == decodable.SCHEMA.names and len(df) == 5
    # the same directory refuses the group under another noise level (its settings differ)
    code, _, err = cli("discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", 3, "--draws", 50, "--noise", "0.2",
                       "--out", out)
    assert code == 2 and "noise" in err
    for bad in ("0", "-1", "nan", "inf", "loud"):
        code, _, err = cli("discrepancy", "--cells", "vanilla", "--l-max", 5, "--k", 3, "--draws", 50, "--noise", bad,
                           "--out", tmp_path / "bad")
        assert code == 2 and err.startswith("lksweep: error: --noise") and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
