"""Probe strings of the paper's heatmaps (Figs 3/4 for Reber, 6/7/8 for embedded Reber)
and the trained model's outputs and hidden states on them."""
from typing import Dict, List

import torch

import cells

from . import models, reber

# Fig 3 (outputs) and Fig 4 (hidden states, labelled there by the automaton state reached).
REBER_OUTPUT = ("B", "BT", "BTSSS", "BTX", "BTXXVP", "BTXS", "BP", "BPTT", "BPV", "BPVV")
REBER_HIDDEN = ("B", "BT", "BTSS", "BTX", "BPTTTVP", "BTXS", "BPVV", "BPTTT",
                "BPTTTTVPXTTVPXTTTTTTTTTVPXVPX", "BPV", "BTSSSXXTTTVPXTV")
# Figs 6/7 (outputs) and 8 (hidden states): after the inner E the model must predict P resp. T.
EMBEDDED = ("BPBTXSE", "BTBTXSE")


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
