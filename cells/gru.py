"""The GRU of the paper, §II-B (Cho et al. 2014, with z weighting the old state)."""
import torch

from .registry import affine, register


@register(
    "gru",
    gates=("z", "r", "h"),
    equations="z = σ(U^z x + W^z h); r = σ(U^r x + W^r h); "
    "h' = tanh(U^h x + W^h (h∘r)); h_t = (1-z)∘h' + z∘h_{t-1}",
)
def gru(p, x, h):
    z = torch.sigmoid(affine(p, "z", x, h))
    r = torch.sigmoid(affine(p, "r", x, h))
    h_new = torch.tanh(affine(p, "h", x, h * r))
    return (1 - z) * h_new + z * h
