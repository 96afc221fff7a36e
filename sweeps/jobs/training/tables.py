"""The training job's tables, their columns documented once, and a run's shard format (:data:`SHARD`).

One file per run under ``OUT/<table>/<run_id>.parquet``; ``lksweep schema --tables`` prints
these columns with their documentation, which every file also carries.
"""
import pyarrow as pa

from ... import contract

KEY = [
    ("run_id", pa.string(), "<task>-<cell>-k<k>-<recipe>[-lag<lo>-<hi>][-<init>]-seed<seed>"),
    ("task", pa.string(), "reber or embedded-reber"),
    ("cell", pa.string(), "the cell's registry name"),
    ("k", pa.int32(), "hidden units"),
    ("protocol", pa.string(), "training protocol: paper or adam (its schedule, stopping rule and defaults)"),
    ("recipe", pa.string(), "the protocol and the ingredients that differ from its own, e.g. paper, "
                            "paper+adam+cross-entropy, paper+shuffled, adam+b10"),
    ("optimizer", pa.string(), "sgd or adam"),
    ("loss", pa.string(), "squared-error (of the linear output, the paper's) or cross-entropy (of its softmax)"),
    ("seed", pa.int32(), "sets the initial weights (and the data order, when shuffled)"),
]
MEASURES = {
    "loss": "objective per sequence",
    "string_accuracy": "share of strings with every step correct (HS97)",
    "step_accuracy": "share of steps whose top-|S| outputs are exactly the legal set S",
    "outer_accuracy": "share of strings whose prediction after the inner E puts the outer symbol first (NaN on reber)",
}
SETS = {"train": "training", "val": "validation", "test": "test"}


def scores(sets, model: str):
    return [(f"{s}_{q}", pa.float64(), f"{doc}, {SETS[s]} set, {model}") for s in sets for q, doc in MEASURES.items()]


F32_LIST = pa.list_(pa.float32())
SELECTED = ("the selected model (the epoch with the best validation string accuracy, then outer, then step "
            "accuracy; the earliest on ties)")

RUNS = contract.schema(KEY + [
    ("bias", pa.string(), "bias option: authors (default), paper, none, hidden or all"),
    ("init", pa.string(), "initial weight draws (normal = the paper's N(0,1); gain:G = N(0, G^2/fan_in))"),
    ("dtype", pa.string(), "precision of training: float64 or float32"),
    ("engine", pa.string(), "numba (the compiled fast path) or torch (the cells' torch equations); they agree to "
                            "rounding"),
    ("n_params", pa.int32(), "trainable parameters"),
    ("n_train", pa.int32(), "training strings (the size used: a lag range short of strings makes it smaller than "
                            "asked)"),
    ("n_val", pa.int32(), "validation strings (selection and stopping; the size used)"),
    ("n_test", pa.int32(), "test strings (reported, never used to choose; the size used)"),
    ("data_seed", pa.int32(), "seed of the training, validation and test strings (shared by every run)"),
    ("lag_min", pa.int32(), "embedded-reber with a lag range: the shortest inner string of the run's sets, in symbols "
                            "(B and E included, as length in lengths); null: the grammar's own lengths"),
    ("lag_max", pa.int32(), "the longest (null: the grammar's own lengths); every inner string of a length in "
                            "[lag_min, lag_max] is equally likely"),
    ("sampling", pa.string(), "disjoint (no string in two sets nor twice in one; embedded sets half T, half P) or "
                              "independent (each set its own sample of the grammar, repeats and overlaps included: "
                              "the authors')"),
    ("test_in_train", pa.float64(), "share of the test strings that occur verbatim in the training set (0 under "
                                    "disjoint)"),
    *[(f"{s}_constant_outer", pa.float64(), f"outer accuracy of the best constant prediction on the {SETS[s]} set: "
                                            f"max(share of T, share of P) (0.5 under disjoint, (n+1)/2n for an odd "
                                            f"size n; NaN on reber)")
      for s in SETS],
    ("batch_size", pa.int32(), "sequences per update"),
    ("order", pa.string(), "fixed (the training strings in the same order every epoch, the authors') or shuffled "
                           "(a new order every epoch, drawn from the seed)"),
    ("lr", pa.float64(), "initial learning rate"),
    ("final_lr", pa.float64(), "learning rate at the stop"),
    ("max_epochs", pa.int32(), "epoch cap"),
    ("tol", pa.float64(), "paper protocol: stop when the epoch's mean training loss changes by less (null otherwise)"),
    ("epochs", pa.int32(), "epochs trained"),
    ("stop_reason", pa.string(), "solved (validation set solved), converged (paper: change < tol), max_epochs, or "
                                 "diverged: after epoch `epochs` the training loss (final_loss NaN or inf) or a "
                                 "parameter (final_loss finite) was NaN or infinite; that epoch's validation scores are "
                                 "NaN, and the selected model is the best finite one before it, with its scores, "
                                 "gradients and probes"),
    ("final_loss", pa.float64(), "mean training objective per sequence over the last epoch's updates (NaN or inf "
                                 "when the training loss diverged)"),
    ("selected_epoch", pa.int32(), "epoch of " + SELECTED),
    *scores(SETS, SELECTED),
    ("string_accuracy", pa.float64(), "= test_string_accuracy"),
    ("step_accuracy", pa.float64(), "= test_step_accuracy"),
    ("outer_accuracy", pa.float64(), "= test_outer_accuracy"),
    ("strict", pa.bool_(), "every test string correct (the strict criterion of Hochreiter & Schmidhuber 1997), "
                           "selected model"),
    ("solved_epoch", pa.int32(), "first epoch with validation string accuracy 1 (null if never)"),
    ("outer_epoch", pa.int32(), "first epoch with validation outer accuracy 1 (null if never, or reber)"),
    ("loss_floor", pa.float64(), "mean loss per training sequence of the ideal predictor that knows the automaton's "
                                 "state (squared error: 1 - 1/|S| per step; cross-entropy: log |S|)"),
    ("loss_floor_guess", pa.float64(), "the same for a predictor that guesses the outer symbol (embedded: + 1/2 "
                                       "resp. log 2; reber: = loss_floor)"),
    ("wall_s", pa.float64(), "seconds of training of this run: its share of its ensemble's time"),
])
EPOCHS = contract.schema(KEY + [
    ("epoch", pa.int32(), "0 is the initial model"),
    ("lr", pa.float64(), "learning rate used in the epoch"),
    ("train_loss", pa.float64(), "mean training objective per sequence over the epoch's updates, each sequence "
                                 "under the parameters it was trained with (null at epoch 0)"),
    *scores(["val"], "model at the end of the epoch"),
])
LENGTHS = contract.schema(KEY + [
    ("length", pa.int32(), "dependency length: symbols of the inner Reber string (embedded: the outer symbol is "
                           "carried across them), or of the string (reber)"),
    ("n", pa.int32(), "test strings of that length"),
    ("string_correct", pa.int32(), "of them, strings with every step correct (selected model)"),
    ("outer_correct", pa.int32(), "of them, strings whose outer symbol is predicted first (selected model; null "
                                  "on reber)"),
    ("outer_T", pa.int32(), "of them, strings whose outer symbol is T (null on reber): a constant prediction scores "
                            "max(outer_T, n - outer_T) / n here"),
])
GRADIENTS = contract.schema(KEY + [
    ("stage", pa.string(), "init, or trained (the selected model)"),
    ("quantity", pa.string(), "param: |dloss_i/dθ_j| for every training example i and coefficient j of one "
                              "tensor (loss_i: the protocol's loss of example i); hidden: ||dloss_T/dh_{T-d}||_2 "
                              "per training example, loss_T the loss of the step predicting the outer symbol "
                              "(embedded) or the final E (reber)"),
    ("tensor", pa.string(), "parameter name (U<g>, W<g>, b<g>, O, bO); h for hidden"),
    ("distance", pa.int32(), "d = T - t for hidden; -1 for param"),
    ("n", pa.int64(), "values summarised (finite ones)"),
    ("nonfinite", pa.int64(), "values that were NaN or infinite (a model whose weights or gradients overflowed), "
                              "left out of n, the mean, the quantiles, max and the histogram (NaN when n is 0)"),
    ("mean", pa.float64(), "mean of the values"),
    ("q10", pa.float64(), "10 % quantile (log histogram, within 4.7 %)"),
    ("q50", pa.float64(), "median"),
    ("q90", pa.float64(), "90 % quantile"),
    ("q99", pa.float64(), "99 % quantile (1e8, the histogram's top, where it lies beyond: a lower bound)"),
    ("max", pa.float64(), "largest value"),
    ("structural_zeros", pa.int64(), "of n, the exact zeros that are structural: coefficients of an input-weight "
                                     "tensor U<g> in the columns of symbols absent from the example's string (one-hot "
                                     "inputs: their gradient is 0 by construction); counted in n and in bin 0 (0 for "
                                     "other tensors and for hidden)"),
    ("hist_bin", pa.list_(pa.int16()), "non-empty bins of the log-spaced histogram (sweeps.contract: bin 0 = "
                                       "exact zeros, 50 bins per decade from 1e-20 to 1e8, the last bin all above)"),
    ("hist_count", pa.list_(pa.int64()), "counts of those bins"),
])
PROBES = contract.schema(KEY + [
    ("probe", pa.string(), "probe string (sweeps.contract: Reber probes, or BPBTXSE and BTBTXSE)"),
    ("output_probe", pa.bool_(), "listed for the output heatmaps (Figs 3, 6, 7); probes show the selected model"),
    ("hidden_probe", pa.bool_(), "listed for the hidden-state heatmaps (Figs 4, 8)"),
    ("position", pa.int32(), "0-based index of the input symbol"),
    ("symbol", pa.string(), "input symbol"),
    ("state", pa.string(), "automaton state after reading it: q0..q5 (Reber); e.g. T/q2 inside the embedded "
                           "branch opened by T, or start, outer, T/end, last, end"),
    ("output", F32_LIST, "raw y_t, order B T S X V P E"),
    ("probs", F32_LIST, "softmax of y_t"),
    ("hidden", F32_LIST, "h_t (k values)"),
])
WEIGHTS = contract.schema(KEY + [
    ("stage", pa.string(), "init (the initial model, epoch 0) or trained (" + SELECTED + ")"),
    ("tensor", pa.string(), "parameter name: U<g>, W<g>, b<g> of the cell's gates, O and bO of the linear output"),
    ("shape", pa.list_(pa.int32()), "the tensor's shape"),
    ("values", pa.list_(pa.float64()), "its entries in row-major (C) order, exactly as trained (a float32 run's "
                                       "values are exact in float64); analysis.weights.parameters rebuilds them"),
])
SCHEMAS = {"runs": RUNS, "epochs": EPOCHS, "gradients": GRADIENTS, "probes": PROBES, "lengths": LENGTHS,
           "weights": WEIGHTS}
TABLES = tuple(SCHEMAS)


# A run's shard: its six tables, one row each (format 1: the layout runs' shards had before the
# format was declared, so a run's shard and its id are unchanged).
SHARD = contract.ShardFormat("training", 1, SCHEMAS)
