"""The minimal gated unit (Zhou, Wu, Zhang & Zhou 2016, "Minimal gated unit for recurrent
neural networks"): one forget gate f that both resets h inside the candidate and mixes the
candidate in, so 1 - f is the weight of the old state."""
from .registry import affine, register, sigmoid, tanh


def forget_gate(p, x, h):
    return sigmoid(affine(p, "f", x, h))


@register(
    "mgu",
    gates=("f", "h"),
    equations="f = σ(U^f x + W^f h); h' = tanh(U^h x + W^h (f∘h)); h_t = (1-f)∘h_{t-1} + f∘h'",
    retain=lambda p, x, h: 1 - forget_gate(p, x, h),
)
def mgu(p, x, h):
    f = forget_gate(p, x, h)
    h_new = tanh(affine(p, "h", x, f * h))
    return (1 - f) * h + f * h_new
