"""The fast path (``kernels`` through ``engines.NumbaEngine``) against the torch reference
(the cells' torch equations, ``engines.TorchEngine``), for every cell: gradients against
autograd within 1e-10 relative in float64 on random strings, a whole epoch of SGD and of Adam
updates, and the evaluation. The kernels' gate layout is each cell's registered gates, found by
name; a constant the kernels read reaches compiled kernels. The same checks run once more with
numba's bounds checking on, in a subprocess with its own compilation cache (numba does not check
array bounds otherwise: a bad index would read or write out of bounds instead of raising)."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import cells
from sweeps.jobs.training import engines, kernels, models, protocols, reber
from sweeps.jobs.training.run import Run


def make_run(cell, k, bias="authors", optimizer="sgd", loss="squared-error", batch_size=1, n_train=12, lr=0.05):
    return Run("embedded-reber", cell, k, "paper", optimizer, loss, "shuffled", 0, n_train, 7, 7, lr, 5, batch_size,
               bias, "normal", 0, "float64", "numba", 60.0, 1e-5)


def member_params(run, seeds):
    """Per member: named float64 arrays, weights N(0,1) and biases drawn non-zero (so they are tested)."""
    p = models.init_params(run.cell, run.k, run.bias, "normal", seeds, torch.float64)
    rng = np.random.default_rng(7)
    return [{n: rng.normal(0, 0.5, t.shape[1:]) if n.startswith("b") else t[i].numpy().copy() for n, t in p.items()}
            for i in range(len(seeds))]


def both_engines(run, seeds=(0, 1, 2)):
    # the authors' sampling (short strings, as the job drew before disjoint sets): the tolerances
    # below bound rounding over these strings, and the engines' agreement does not depend on which
    data = reber.datasets(run.task, {"train": run.n_train, "val": run.n_val, "test": run.n_test}, 0, torch.float64,
                          sampling="independent")
    params = member_params(run, list(seeds))
    cell = cells.get_cell(run.cell)
    return engines.NumbaEngine(cell, run, data, params), engines.TorchEngine(cell, run, data, params), data


def random_strings(n, length, seed):
    """Encoded sequences of random symbols (not the grammar's): any input and target sequence
    has a gradient. Lengths vary from 1 to ``length`` steps; legal sets are unused here."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(1, length + 1, n)
    symbols = rng.integers(0, 7, (n, length + 1))
    mask = torch.from_numpy(np.arange(length)[None] < steps[:, None])
    x = torch.nn.functional.one_hot(torch.from_numpy(symbols[:, :-1]), 7).double() * mask[..., None]
    target = torch.from_numpy(symbols[:, 1:]) * mask
    return reber.Encoded(x, target, torch.zeros(n, length, 7, dtype=torch.bool), mask, torch.from_numpy(steps - 1))


CELLS = ("vanilla", "gru", "tanh", "lstm", "mgu")
CASES = [(cell, k, bias) for cell in CELLS for k, bias in ((5, "authors"), (4, "all"), (3, "none"))]


def assert_gradients_match_autograd(run, fast, strings):
    """The kernels' gradient of the summed loss of ``strings`` against autograd's through the
    cell's torch equations, for each of the engine's three members."""
    d = engines.kernel_arrays(strings)
    for member in range(3):
        got, total = kernels.gradient(kernels.CELLS[run.cell], run.k, fast.off, fast.theta, member,
                                      kernels.LOSSES[run.loss], d["inp"], d["tgt"], d["steps"])
        p = {n: torch.from_numpy(a)[None].requires_grad_() for n, a in fast.get(member).items()}
        y, _ = models.forward(cells.get_cell(run.cell), p, strings.x[None], strings.mask)
        ref = protocols.sequence_loss(protocols.LOSSES[run.loss], y, strings.target[None], strings.mask).sum()
        want = torch.cat([g.reshape(-1) for g in torch.autograd.grad(ref, list(p.values()))]).numpy()
        assert total == pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("cell, k, bias", CASES)
@pytest.mark.parametrize("loss", ["squared-error", "cross-entropy"])
def test_gradients_match_autograd(cell, k, bias, loss):
    run = make_run(cell, k, bias, loss=loss)
    fast, _, data = both_engines(run)
    for strings in (data["train"], random_strings(9, 14, seed=k)):
        assert_gradients_match_autograd(run, fast, strings)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("k, optimizer, loss, batch_size", [
    (5, "sgd", "squared-error", 1), (4, "sgd", "cross-entropy", 5), (4, "adam", "cross-entropy", 1),
    (3, "adam", "squared-error", 5)])
def test_an_epoch_of_updates_matches_the_torch_engine(cell, k, optimizer, loss, batch_size):
    """12 strings in batches of 5 (the last one of 2) or one at a time; each member its own order
    and learning rate; two epochs, so Adam's moments and step count carry over."""
    run = make_run(cell, k, optimizer=optimizer, loss=loss, batch_size=batch_size, lr=0.01)
    fast, ref, _ = both_engines(run)
    rng = np.random.default_rng(3)
    lr = np.array([0.01, 0.02, 0.005])
    for _ in range(2):
        orders = np.stack([rng.permutation(run.n_train) for _ in range(3)])
        members = [0, 2]                         # member 1 sits the epochs out, as a stopped member does
        np.testing.assert_allclose(fast.epoch(members, orders, lr), ref.epoch(members, orders, lr), rtol=1e-12)
    for i in range(3):
        a, b = fast.get(i), ref.get(i)
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12, err_msg=name)
        sa, sb = fast.state(i), ref.state(i)
        assert sa.keys() == sb.keys() == (set() if optimizer == "sgd" else {*(f"{m}/{n}" for m in "mv" for n in a), "t"})
        for name in sa:
            np.testing.assert_allclose(sa[name], sb[name], rtol=1e-8, atol=1e-14, err_msg=name)
    untouched = member_params(run, [0, 1, 2])[1]
    assert all(np.array_equal(fast.get(1)[n], untouched[n]) for n in untouched)
    assert fast.state(1) == {} or int(fast.state(1)["t"][0]) == 0


@pytest.mark.parametrize("cell, k, loss", [("vanilla", 5, "squared-error"), ("gru", 4, "cross-entropy"),
                                           ("tanh", 5, "cross-entropy"), ("lstm", 4, "squared-error"),
                                           ("mgu", 4, "cross-entropy")])
def test_evaluation_matches_the_torch_engine(cell, k, loss):
    fast, ref, data = both_engines(make_run(cell, k, loss=loss, n_train=40))
    for name in reber.SETS:
        (fl, fw, ff), (rl, rw, rf) = fast.evaluate([0, 1, 2], name), ref.evaluate([0, 1, 2], name)
        np.testing.assert_allclose(fl, rl, rtol=1e-12)
        np.testing.assert_array_equal(fw, rw)
        np.testing.assert_array_equal(ff, rf)
    assert fw.shape == (3, 7) and fw.dtype == np.int64


def test_the_prefix_tree_holds_each_prefix_once():
    strings = ["BTBTXSETE", "BTBTXSETE", "BTBPVVETE", "BPBTXSEPE"]
    d = engines.kernel_arrays(reber.encode(strings, True, 9, torch.float64))
    prefixes = {s[:t + 1] for s in strings for t in range(len(s) - 1)}
    assert len(d["parent"]) == len(prefixes) == 8 + 5 + 7       # the 2nd string shares all, the 3rd BTB, the 4th B
    for i, s in enumerate(strings):
        for t in range(len(s) - 1):      # walking up from the node of step t spells s[:t + 1]
            m, spelled = d["node"][i, t], ""
            while m >= 0:
                spelled, m = reber.ALPHABET[d["symbol"][m]] + spelled, d["parent"][m]
            assert spelled == s[:t + 1]
    assert (d["parent"] < np.arange(len(d["parent"]))).all()      # parents come first


def test_packing_round_trips_and_the_layout_is_the_kernels():
    run = make_run("gru", 3, "all")
    fast, _, _ = both_engines(run)
    params = member_params(run, [0, 1, 2])
    for i in range(3):
        assert all(np.array_equal(fast.get(i)[n], params[i][n]) for n in params[i])
    shapes = models.shapes("gru", 3, "all")
    assert list(fast.get(0)) == list(shapes)
    # off: U, W, b of each gate, then O and bO, at their offsets in models.shapes order
    sizes = np.cumsum([0] + [int(np.prod(s)) for s in shapes.values()])
    assert fast.off.tolist() == sizes[:-1].tolist()
    assert make_run("vanilla", 3, "none").bias == "none"
    assert both_engines(make_run("vanilla", 3, "none"))[0].off.tolist() == [0, 21, -1, 30, -1]


def test_the_kernels_gate_layout_is_each_cells_registered_gates(monkeypatch):
    """Every shipped cell has a fast path whose gates and state width are the registered cell's.
    The engine finds each gate's weights by name, so a cell registering its gates in another
    order (here the GRU's, which moves every gate's weights in the packed row) still trains the
    right ones; a cell whose gates are not the kernels' is refused when the engine is built, as
    is another alphabet size."""
    assert set(kernels.LAYOUT) == set(cells.CELLS)
    assert sorted(kernels.CELLS.values()) == list(range(len(kernels.CELLS)))
    for name, (_, gates, memory) in kernels.LAYOUT.items():
        assert sorted(cells.get_cell(name).gates) == sorted(gates) and cells.get_cell(name).memory == memory, name
    run = make_run("gru", 4, "all")
    default = both_engines(run)[0].off
    monkeypatch.setitem(cells.CELLS, "gru", dataclasses.replace(cells.get_cell("gru"), gates=("h", "r", "z")))
    fast, _, data = both_engines(run)
    assert list(fast.shapes)[:3] == ["Uh", "Wh", "bh"] and fast.off.tolist() != default.tolist()
    assert_gradients_match_autograd(run, fast, data["train"])
    for name, changed in (("mgu", {"gates": ("z", "h")}), ("lstm", {"memory": 1}), ("vanilla", {"gates": ("h", "r")})):
        monkeypatch.setitem(cells.CELLS, name, dataclasses.replace(cells.get_cell(name), **changed))
        with pytest.raises(ValueError, match=f"cell '{name}' registers .* kernels.LAYOUT"):
            both_engines(make_run(name, 3))
    monkeypatch.setattr(models, "N_SYMBOLS", 8)
    with pytest.raises(ValueError, match="the models read 8 symbols .* kernels.N_SYMBOLS = 7"):
        both_engines(make_run("tanh", 3))


def test_a_changed_adam_constant_reaches_the_compiled_kernels():
    """numba's disk cache notices an edit to kernels.py only, so the kernels take Adam's betas as
    arguments. A fresh process that finds the kernels compiled (by the first process here) and
    trains with other betas gets other numbers, the torch engine's under those betas."""
    code = ("import json, sys; import numpy as np; from sweeps.jobs.training import protocols\n"
            "protocols.Adam.betas = (float(sys.argv[1]), float(sys.argv[2]))\n"
            "from tests.test_kernels import both_engines, make_run\n"
            "fast, ref, _ = both_engines(make_run('lstm', 3, optimizer='adam', lr=0.01))\n"
            "orders, lr = np.stack([np.arange(12)] * 3), np.full(3, 0.01)\n"
            "fast.epoch([0], orders, lr); ref.epoch([0], orders, lr)\n"
            "print(json.dumps([np.concatenate([a.ravel() for a in e.get(0).values()]).tolist() for e in (fast, ref)]))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def trained(*betas):
        out = subprocess.run([sys.executable, "-c", code, *map(str, betas)], capture_output=True, text=True,
                             timeout=600, cwd=root)
        assert out.returncode == 0, out.stderr[-2000:]
        return np.array(json.loads(out.stdout.strip().splitlines()[-1]))

    (fast, ref), (other, other_ref) = trained(*protocols.Adam.betas), trained(0.5, 0.9)
    assert any(f.startswith("kernels.train_epoch") and f.endswith(".nbi") for f in os.listdir(kernels.cache_dir()))
    np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(other, other_ref, rtol=1e-9, atol=1e-12)
    assert np.abs(other - fast).max() > 1e-3


@pytest.mark.slow
def test_the_kernels_run_under_numba_bounds_checking(tmp_path):
    """This module's other tests with NUMBA_BOUNDSCHECK=1 (compiled afresh into a cache of its
    own: the check is a compile-time flag that numba's cache does not key on), then a read past
    the end of a sequence, which must raise instead of reading out of bounds."""
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
                            "-k", "not bounds_checking and not adam_constant"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    probe = ("import numpy as np; from sweeps.jobs.training import kernels as K\n"
             "a = np.zeros((1, 3), np.int64); off = np.array([0, 14, -1, 18, -1], np.int64); one = np.zeros(1, np.int64)\n"
             "try:\n"
             "    K.evaluate(0, 2, off, np.zeros((1, 32)), one, 0, a, a, np.array([9]), one, one - 1, one, a)\n"
             "except IndexError:\n"
             "    print('raised')\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600)
    assert out.stdout.strip() == "raised", out.stderr[-2000:]
    # a cache outside the package is said, once per process
    said = subprocess.run([sys.executable, "-c", "from tests.test_kernels import both_engines, make_run\n"
                           "both_engines(make_run('vanilla', 3)); both_engines(make_run('gru', 3))"],
                          env=env, capture_output=True, text=True, timeout=600, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert said.stderr.count(f"training kernels are compiled into {tmp_path / 'cache'}") == 1, said.stderr[-2000:]
