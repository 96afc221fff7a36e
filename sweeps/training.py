"""The training job (paper §III, Figs 3-9): Reber-grammar training runs as sweeps of seeds.

A run is one (task, cell, k, protocol, seed). Each run is one group and one shard; runs
of the same configuration that differ only in their seed share a ``batch_key`` and are
trained together as one ensemble (the cells' leading dimension E), up to ``MAX_BATCH``.

Tables (one file per run under OUT/<table>/<run_id>.parquet; read with pandas):

``runs`` — one row per run
    run_id str, task str ('reber'|'embedded-reber'), cell str, k int32, protocol str
    ('paper'|'adam'), seed int32, bias str, init str, n_params int32, n_train int32,
    n_test int32, data_seed int32, lr float64 (initial), final_lr float64, max_epochs int32,
    epochs int32 (epochs trained), stop_reason str ('solved'|'converged'|'max_epochs'),
    final_loss float64 (mean training objective over the last epoch, per sequence),
    train_loss, test_loss float64 (objective of the final model, mean per sequence),
    train_string_accuracy, test_string_accuracy, string_accuracy (= test) float64,
    train_step_accuracy, test_step_accuracy, step_accuracy (= test) float64,
    train_outer_accuracy, test_outer_accuracy, outer_accuracy (= test) float64
    (NaN for the plain Reber task), solved bool (test string accuracy == 1),
    solved_epoch int32 (first epoch with test string accuracy 1; null if never),
    outer_epoch int32 (first epoch with test outer accuracy 1; null if never / reber),
    wall_s float64 (training seconds of this run, its share of its ensemble's time).

``epochs`` — one row per run and epoch; epoch 0 is the initial model
    run_id, task, cell, k, protocol, seed (as in runs), epoch int32, lr float64 (used in
    that epoch), loss float64 (mean training objective over the epoch's updates, per
    sequence; null at epoch 0), train_loss, test_loss, train_/test_string_accuracy,
    train_/test_step_accuracy, train_/test_outer_accuracy float64 (model at epoch end).

``gradients`` — summaries of gradient magnitudes over every training example
    run_id, task, cell, k, protocol, seed, stage str ('init'|'trained'),
    quantity str: 'param' = |∂loss_i/∂θ_j| for every training example i and every
    coefficient j of one parameter tensor (loss_i: the protocol's loss of example i);
    'hidden' = ||∂loss_T/∂h_{T-d}||_2 for every training example, where loss_T is the
    loss of the step predicting the final outer symbol (embedded) or the final E (reber);
    tensor str (parameter name: U<g>, W<g>, b<g>, O, bO; 'h' for hidden),
    distance int32 (d = T - t for 'hidden'; -1 for 'param'),
    n int64 (values summarised), mean, q10, q50, q90, q99, max float64,
    hist_bin list<int16>, hist_count list<int64>: the non-empty bins of the log-spaced
    histogram of sweeps.summaries (bin 0 = exact zeros, 50 bins per decade from 1e-20).

``probes`` — the trained model on the probe strings of DESIGN.md (Reber probes for
reber runs, BPBTXSE and BTBTXSE for embedded runs), one row per (run, probe, position)
    run_id, task, cell, k, protocol, seed, probe str, output_probe bool, hidden_probe bool
    (listed for Figs 3/6/7 resp. 4/8), position int32 (0-based index of the input symbol),
    symbol str (input symbol), state str (automaton state after reading it: 'q0'..'q5'
    for Reber; for embedded e.g. 'T/q2' inside the branch opened by T, or 'start',
    'outer', 'T/end', 'last', 'end'), output list<float32>[7] (raw y_t),
    probs list<float32>[7] (softmax of y_t, order B T S X V P E), hidden list<float32>[k].
"""
