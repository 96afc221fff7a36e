"""The GRU of the paper, §II-B (Cho et al. 2014, with z weighting the old state)."""
from .registry import affine, register, sigmoid, tanh


def update_gate(p, x, h):
    return sigmoid(affine(p, "z", x, h))


@register(
    "gru",
    gates=("z", "r", "h"),
    equations="z = σ(U^z x + W^z h); r = σ(U^r x + W^r h); "
    "h' = tanh(U^h x + W^h (h∘r)); h_t = (1-z)∘h' + z∘h_{t-1}",
    retain=update_gate,
)
def gru(p, x, h):
    z = update_gate(p, x, h)
    r = sigmoid(affine(p, "r", x, h))
    h_new = tanh(affine(p, "h", x, h * r))
    return (1 - z) * h_new + z * h
