"""The trained model's outputs and hidden states on the probe strings of the paper's heatmaps
(Figs 3/4 for Reber, 6/7/8 for embedded Reber; the strings are in ``sweeps.contract``)."""
from typing import Dict, List

import torch

import cells

from ...contract import EMBEDDED, REBER_HIDDEN, REBER_OUTPUT
from . import models, reber


def probes(task: str) -> List[str]:
    if task == "embedded-reber":
        return list(EMBEDDED)
    return list(dict.fromkeys(REBER_OUTPUT + REBER_HIDDEN))


@torch.no_grad()
def probe_rows(cell: cells.Cell, p: cells.Params, task: str) -> List[List[Dict]]:
    """For each member, one row per (probe, position): the input symbol, the automaton state
    after it, the raw outputs, their softmax and the hidden state."""
    embedded = task == "embedded-reber"
    e = p["O"].shape[0]
    out = [[] for _ in range(e)]
    for probe in probes(task):
        x = reber.one_hot(probe, p["O"].dtype).expand(e, 1, len(probe), 7)
        y, hs = models.forward(cell, p, x, torch.ones(1, len(probe), dtype=torch.bool))
        probs = torch.softmax(y, -1)
        states, _ = reber.walk(probe, embedded)
        for i in range(e):
            for t, symbol in enumerate(probe):
                out[i].append({
                    "probe": probe,
                    "output_probe": embedded or probe in REBER_OUTPUT,
                    "hidden_probe": embedded or probe in REBER_HIDDEN,
                    "position": t, "symbol": symbol, "state": reber.state_name(states[t]),
                    "output": y[i, 0, t].float().numpy(), "probs": probs[i, 0, t].float().numpy(),
                    "hidden": hs[i, 0, t].float().numpy(),
                })
    return out
