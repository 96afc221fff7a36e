"""The training job (paper §III, Figs 3-9): Reber-grammar training runs as sweeps of seeds.

A run is one (task, lag range, cell, k, protocol, optimizer, loss, batch size, order, seed). Each run is one
group and one shard; runs of the same configuration that differ only in their seed share a
``batch_key`` and are trained together as one ensemble, up to ``max_batch``.

Modules: ``reber`` (grammars and data sets), ``models`` (a cell plus a linear output),
``protocols`` (losses, optimizers, schedules and stopping rules), ``ensemble`` (the trainer:
selection and stopping on the validation set), ``engines`` (who computes: the torch reference
or the compiled fast path of ``kernels``), ``evaluation`` (HS97 accuracies), ``gradients``
(Fig 9 and dloss/dh), ``probes`` (heatmap rows), ``checkpoint`` (a run's state as data),
``tables`` (the six tables, documented).
"""
import itertools
import math
import time
from typing import Dict, List, Optional

import pyarrow as pa
import torch

import cells

from ... import console
from ...errors import UsageError
from ...job import Checkpoint, Estimate, Job, register_job
from ...plan import Group, Shard, as_dict, content_hash
from ...settings import INT32, Choice, Choices, Family, Int, Ints, Number, Option, Ranges, Sized
from . import engines, models, reber
from .commands import COMMANDS
from .ensemble import Ensemble, open_state
from .protocols import LOSSES, OPTIMIZERS, ORDERS, PROTOCOLS
from .run import DTYPES, Run, run_id
from .tables import SCHEMAS, SHARD, TABLES

# Bounds on what one run may ask for: a model, a data set and a number of epochs far beyond
# the paper's (k 18, 2000 strings, 1000 epochs) yet small enough to fit one worker's memory.
MAX_K = 1024
MAX_STRINGS = 100_000
MAX_EPOCHS = 100_000
log = console.logger(__name__)


@register_job
class Training(Job):
    name = "training"
    command = "train"
    help = "train vanilla/GRU models on (embedded) Reber grammars over many seeds"
    tables = TABLES
    schemas = SCHEMAS
    shard = SHARD
    max_batch = 16                 # seeds of one configuration trained as one ensemble
    options = (
        Option("task", Choices(reber.TASKS), "reber, embedded-reber or both (comma-separated)"),
        Option("cells", Sized(lambda: cells.CELLS, models.MATCHED, maximum=MAX_K),
               "CELL:K items, e.g. vanilla:18,gru:10; a CELL alone is its matched width, about 600 parameters "
               f"({', '.join(f'{c}:{k}' for c, k in models.MATCHED.items())})"),
        Option("protocol", Choices(lambda: PROTOCOLS), "paper, adam or paper,adam: schedule, stopping rule, defaults"),
        Option("optimizer", Choices(lambda: OPTIMIZERS), "sgd, adam or sgd,adam (default: the protocol's: "
                                                         "paper sgd, adam adam)", None),
        Option("loss", Choices(lambda: LOSSES), "squared-error, cross-entropy or both (default: the protocol's: "
                                                "paper squared-error, adam cross-entropy)", None),
        Option("batch_size", Ints(minimum=1, maximum=MAX_STRINGS), "sequences per update, one or several (default: "
                                                                   "paper 1, adam 50)", None),
        Option("order", Choices(ORDERS), "order of the training strings in an epoch: fixed (the same every epoch), "
                                         "shuffled (drawn from the seed) or both (default: paper fixed, adam "
                                         "shuffled)", None),
        Option("seeds", Ints(minimum=0, maximum=INT32), "training seeds, e.g. 0-31", [0]),
        Option("lag", Ranges(reber.SHORTEST, reber.LONGEST_LAG, f"the shortest inner Reber strings (BTXSE, BPVVE) "
                                                                f"have {reber.SHORTEST} symbols"),
               "embedded-reber only: the dependency length, i.e. the length of the inner Reber string in symbols, B "
               "and E included (BTXSE: 5; the lengths table's length), as ranges L1-L2, each its own run, e.g. "
               "20-24 or 5-8,20-24: every inner string of a length in the range is equally likely (default: the "
               "grammar's own lengths, as the paper)", None),
        Option("sampling", Choice(reber.SAMPLINGS), "disjoint: no string in two sets nor twice in one, embedded "
                                                    "sets half T, half P (an odd size: one more of either, drawn); "
                                                    "independent: each set its own sample of "
                                                    "the grammar, repeats and overlaps included (the authors')",
               "disjoint"),
        Option("n_train", Int(minimum=1, maximum=MAX_STRINGS), "training strings (default: paper 256; adam 250 reber, "
                                                               "2000 embedded)", None),
        Option("n_val", Int(minimum=1, maximum=MAX_STRINGS), "validation strings, for selection and stopping "
                                                             "(default: as many as n_train)", None),
        Option("n_test", Int(minimum=1, maximum=MAX_STRINGS), "test strings (default: as many as n_train). Under "
                                                              "disjoint sampling a lag range with too few strings "
                                                              "shrinks the sets (said in a warning; the runs table "
                                                              "records the sizes used)", None),
        Option("lr", Number(), "learning rate (default: sgd 0.05 reber, 0.001 embedded; adam 1e-3 under paper, "
                               "1e-2 under adam)", None),
        Option("max_epochs", Int(minimum=1, maximum=MAX_EPOCHS), "epoch cap (default 1000 paper, 200 adam)", None),
        Option("bias", Choice(models.BIASES), "biases: authors, paper, none, hidden or all", "authors"),
        Option("init", Family(cells.INITS, (cells.GAIN,)), "initial weight draws: normal (the paper's N(0,1)), "
                                                            "xavier, uniform or gain:G (N(0, G^2/fan_in))", "normal"),
        Option("data_seed", Int(minimum=0, maximum=INT32), "seed of the training, validation and test strings (shared "
                                                           "by every run)", 0),
        Option("dtype", Choice(tuple(DTYPES)), "precision of training", "float64"),
        Option("engine", Choice(engines.ENGINES), "numba (compiled fast path: every built-in cell, in float64), torch (the "
                                                  "reference: any cell and dtype) or auto (numba where it applies); "
                                                  "part of a run's identity",
               "auto"),
        Option("tol", Number(), "paper protocol: stop when the epoch's mean error changes by less", 1e-5),
        Option("checkpoint_s", Number(), "seconds between checkpoints of a running ensemble (part of a "
                                         "run's identity: resume with the same value)", 60.0),
    )

    def plan(self, s) -> List[Group]:
        """One group (and one shard) per run. Group settings: everything that changes a run's
        numbers, defaults resolved (so a spec that spells out a default is the same run); the set
        sizes are those used (``reber.set_sizes``), each shrink said once in a warning."""
        if s.lag and "reber" in s.task:
            raise UsageError("lag: task reber has no inner string to set the length of; lag applies to "
                             "embedded-reber only (drop lag, or use task embedded-reber)")
        groups, noted = [], set()
        for task, lag in itertools.product(s.task, [tuple(r) for r in s.lag] if s.lag else [None]):
            for cell, k in map(Sized.split, s.cells):
                engine = engines.resolve(s.engine, cell, s.dtype)
                for name in s.protocol:
                    protocol = PROTOCOLS[name]
                    n_train = s.n_train or protocol.n_train[task]
                    sizes, note = reber.set_sizes(task, {"train": n_train, "val": s.n_val or n_train,
                                                         "test": s.n_test or n_train}, lag, s.sampling)
                    if note and note not in noted:
                        noted.add(note)
                        log.warning(note)
                    for optimizer, loss, batch_size, order in itertools.product(
                            s.optimizer or [protocol.optimizer], s.loss or [protocol.loss],
                            s.batch_size or [protocol.batch_size], s.order or [protocol.order]):
                        settings = {
                            "optimizer": optimizer, "loss": loss, "order": order, "n_train": sizes["train"],
                            "n_val": sizes["val"], "n_test": sizes["test"], "lr": s.lr or protocol.lr[optimizer][task],
                            "max_epochs": s.max_epochs or protocol.max_epochs, "batch_size": batch_size,
                            "bias": s.bias, "init": s.init, "data_seed": s.data_seed, "lag": list(lag) if lag else None,
                            "sampling": s.sampling, "dtype": s.dtype, "engine": engine,
                            **{key: getattr(s, key) for key in protocol.settings},
                        }
                        recipe = protocol.recipe(optimizer, loss, batch_size, order)
                        for seed in s.seeds:
                            rid = run_id(task, cell, k, recipe, seed, lag, s.init)
                            run = Run(task, cell, k, name, seed=seed, checkpoint_s=s.checkpoint_s,
                                      **{**settings, "lag": lag})
                            groups.append(Group(self.name, rid, settings, (Shard(self.name, rid, run),), self.tables))
        return groups

    def estimate(self, s) -> Estimate:
        """One group and one shard per run, counted from the settings (so ``plan`` runs, and
        says its warnings, once)."""
        runs = math.prod(len(v) if v else 1 for v in (s.task, s.lag, s.cells, s.protocol, s.optimizer, s.loss,
                                                      s.batch_size, s.order, s.seeds))
        return Estimate(runs, runs)

    def batch_key(self, shard: Shard) -> str:
        """Runs that differ only in their seed train as one ensemble."""
        return content_hash({k: v for k, v in as_dict(shard.params).items() if k != "seed"})

    def compute(self, runs: List[Run], states: List[Optional[bytes]]) -> List:
        """Train ``runs`` (one configuration, several seeds) as one ensemble for about
        ``checkpoint_s`` seconds (at least one epoch); a run that has stopped returns its
        tables, the others a Checkpoint to resume from (always at an epoch boundary)."""
        torch.set_num_threads(1)
        deadline = time.monotonic() + runs[0].checkpoint_s
        ens = Ensemble(runs, list(states or [None] * len(runs)))
        results: Dict[int, pa.Table] = {}
        while ens.active():   # at least one epoch per call, so every call makes progress
            stopped = ens.epoch()
            if stopped:
                results.update(zip(stopped, ens.finish(stopped)))
            if time.monotonic() > deadline:
                break
        return [results[i] if i in results else Checkpoint(ens.state(i), f"epoch {m['epoch']}")
                for i, m in enumerate(ens.members)]

    def finalize(self, group: Group, shard_tables: List[pa.Table]) -> Dict[str, pa.Table]:
        return SHARD.unpack(shard_tables[0], TABLES)

    def check_checkpoint(self, state: bytes, run: Run) -> None:
        open_state(state, run)

    def commands(self):
        return COMMANDS
