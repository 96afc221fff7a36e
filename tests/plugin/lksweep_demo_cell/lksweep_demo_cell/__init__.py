"""A leaky tanh cell: each step keeps half of the old state, h_t = h/2 + tanh(U x + W h)/2."""
from cells import affine, register
from cells.registry import tanh


@register("leaky", gates=("h",), equations="h_t = (h_{t-1} + tanh(U x + W h_{t-1})) / 2")
def leaky(p, x, h):
    return 0.5 * h + 0.5 * tanh(affine(p, "h", x, h))
