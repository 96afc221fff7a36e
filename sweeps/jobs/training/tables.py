"""The training job's tables, their columns documented once, and a run's shard format.

One file per run under ``OUT/<table>/<run_id>.parquet``; ``lksweep schema --tables`` prints
these columns with their documentation, which every file also carries.
"""
import io
from typing import Dict

import pyarrow as pa

from ... import contract

KEY = [
    ("run_id", pa.string(), "<task>-<cell>-k<k>-<protocol>-seed<seed>"),
    ("task", pa.string(), "reber or embedded-reber"),
    ("cell", pa.string(), "the cell's registry name"),
    ("k", pa.int32(), "hidden units"),
    ("protocol", pa.string(), "training protocol: paper or adam"),
    ("seed", pa.int32(), "sets the initial weights and the data order"),
]
MEASURES = {
    "loss": "objective per sequence",
    "string_accuracy": "share of strings with every step correct (HS97)",
    "step_accuracy": "share of steps whose top-|S| outputs are exactly the legal set S",
    "outer_accuracy": "share of strings whose prediction after the inner E puts the outer symbol first (NaN on reber)",
}


def scores(model: str):
    return [(f"{s}_{q}", pa.float64(), f"{doc}, {s} set, {model}") for s in ("train", "test") for q, doc in MEASURES.items()]


F32_LIST = pa.list_(pa.float32())

RUNS = contract.schema(KEY + [
    ("bias", pa.string(), "bias option: paper, authors, none, hidden or all"),
    ("init", pa.string(), "initial weight draws (normal = the paper's N(0,1))"),
    ("n_params", pa.int32(), "trainable parameters"),
    ("n_train", pa.int32(), "training strings"),
    ("n_test", pa.int32(), "test strings"),
    ("data_seed", pa.int32(), "seed of the training and test strings (shared by every run)"),
    ("lr", pa.float64(), "initial learning rate"),
    ("final_lr", pa.float64(), "learning rate at the stop"),
    ("max_epochs", pa.int32(), "epoch cap"),
    ("epochs", pa.int32(), "epochs trained"),
    ("stop_reason", pa.string(), "solved, converged or max_epochs"),
    ("final_loss", pa.float64(), "mean training objective per sequence over the last epoch's updates"),
    *scores("final model"),
    ("string_accuracy", pa.float64(), "= test_string_accuracy"),
    ("step_accuracy", pa.float64(), "= test_step_accuracy"),
    ("outer_accuracy", pa.float64(), "= test_outer_accuracy"),
    ("solved", pa.bool_(), "test string accuracy == 1"),
    ("solved_epoch", pa.int32(), "first epoch with test string accuracy 1 (null if never)"),
    ("outer_epoch", pa.int32(), "first epoch with test outer accuracy 1 (null if never, or reber)"),
    ("wall_s", pa.float64(), "seconds of training of this run: its share of its ensemble's time"),
])
EPOCHS = contract.schema(KEY + [
    ("epoch", pa.int32(), "0 is the initial model"),
    ("lr", pa.float64(), "learning rate used in the epoch"),
    ("loss", pa.float64(), "mean training objective per sequence over the epoch's updates (null at epoch 0)"),
    *scores("model at the end of the epoch"),
])
GRADIENTS = contract.schema(KEY + [
    ("stage", pa.string(), "init or trained"),
    ("quantity", pa.string(), "param: |dloss_i/dθ_j| for every training example i and coefficient j of one "
                              "tensor (loss_i: the protocol's loss of example i); hidden: ||dloss_T/dh_{T-d}||_2 "
                              "per training example, loss_T the loss of the step predicting the outer symbol "
                              "(embedded) or the final E (reber)"),
    ("tensor", pa.string(), "parameter name (U<g>, W<g>, b<g>, O, bO); h for hidden"),
    ("distance", pa.int32(), "d = T - t for hidden; -1 for param"),
    ("n", pa.int64(), "values summarised"),
    ("mean", pa.float64(), "mean of the values"),
    ("q10", pa.float64(), "10 % quantile (log histogram, within 4.7 %)"),
    ("q50", pa.float64(), "median"),
    ("q90", pa.float64(), "90 % quantile"),
    ("q99", pa.float64(), "99 % quantile"),
    ("max", pa.float64(), "largest value"),
    ("hist_bin", pa.list_(pa.int16()), "non-empty bins of the log-spaced histogram (sweeps.contract: bin 0 = "
                                       "exact zeros, 50 bins per decade from 1e-20)"),
    ("hist_count", pa.list_(pa.int64()), "counts of those bins"),
])
PROBES = contract.schema(KEY + [
    ("probe", pa.string(), "probe string (sweeps.contract: Reber probes, or BPBTXSE and BTBTXSE)"),
    ("output_probe", pa.bool_(), "listed for the output heatmaps (Figs 3, 6, 7)"),
    ("hidden_probe", pa.bool_(), "listed for the hidden-state heatmaps (Figs 4, 8)"),
    ("position", pa.int32(), "0-based index of the input symbol"),
    ("symbol", pa.string(), "input symbol"),
    ("state", pa.string(), "automaton state after reading it: q0..q5 (Reber); e.g. T/q2 inside the embedded "
                           "branch opened by T, or start, outer, T/end, last, end"),
    ("output", F32_LIST, "raw y_t, order B T S X V P E"),
    ("probs", F32_LIST, "softmax of y_t"),
    ("hidden", F32_LIST, "h_t (k values)"),
])
SCHEMAS = {"runs": RUNS, "epochs": EPOCHS, "gradients": GRADIENTS, "probes": PROBES}
TABLES = tuple(SCHEMAS)


def pack(tables: Dict[str, pa.Table]) -> pa.Table:
    """A run's four tables as one shard table: one row per table, its Arrow IPC stream."""
    blobs = []
    for name in TABLES:
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, tables[name].schema) as writer:
            writer.write_table(tables[name])
        blobs.append(sink.getvalue())
    return pa.table({"table": pa.array(TABLES), "ipc": pa.array(blobs, pa.binary())})


def unpack(shard_table: pa.Table) -> Dict[str, pa.Table]:
    return {name: pa.ipc.open_stream(blob.as_py()).read_all()
            for name, blob in zip(shard_table.column("table").to_pylist(), shard_table.column("ipc"))}
