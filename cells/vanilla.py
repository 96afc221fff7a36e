"""The vanilla (Elman) RNN of the paper, eq. (1), with the logistic sigmoid."""
from .registry import affine, register, sigmoid


@register("vanilla", gates=("h",), equations="h_t = σ(U x_t + W h_{t-1})")
def vanilla(p, x, h):
    return sigmoid(affine(p, "h", x, h))
