"""The Elman RNN with tanh (Elman 1990, "Finding structure in time"; torch.nn.RNN's default):
the recurrent network most people call vanilla. Its slope is 1 at 0, where the paper's
sigmoid's is at most 1/4."""
from .registry import affine, register, tanh


@register("tanh", gates=("h",), equations="h_t = tanh(U x_t + W h_{t-1})")
def elman_tanh(p, x, h):
    return tanh(affine(p, "h", x, h))
