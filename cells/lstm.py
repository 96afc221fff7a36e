"""The LSTM (Hochreiter & Schmidhuber 1997) with a forget gate (Gers, Schmidhuber & Cummins
2000), without peepholes, as torch.nn.LSTM. Its state is (h, c): ``memory = 2``; outputs and
the discrepancy read h, the Lyapunov exponent follows the whole state."""
from .registry import affine, cat, register, sigmoid, split, tanh


def forget_gate(p, x, s):
    h, _ = split(s, 2)
    return sigmoid(affine(p, "f", x, h))


@register(
    "lstm",
    gates=("i", "f", "g", "o"),
    equations="i = σ(U^i x + W^i h); f = σ(U^f x + W^f h); g = tanh(U^g x + W^g h); "
    "o = σ(U^o x + W^o h); c_t = f∘c_{t-1} + i∘g; h_t = o∘tanh(c_t)",
    memory=2,
    retain=forget_gate,
)
def lstm(p, x, s):
    h, c = split(s, 2)
    i = sigmoid(affine(p, "i", x, h))
    f = forget_gate(p, x, s)
    g = tanh(affine(p, "g", x, h))
    o = sigmoid(affine(p, "o", x, h))
    c = f * c + i * g
    return cat(o * tanh(c), c)
