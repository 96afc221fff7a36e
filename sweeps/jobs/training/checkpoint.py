"""A training run's checkpoint as data only: NumPy arrays and JSON in one ``.npz`` file.

Checkpoints may come back from a shared bucket, so reading one must not be able to run code:
no pickle (``np.load(..., allow_pickle=False)``), and the bookkeeping (epoch rows, learning
rate, the data-order generator's state) is JSON. Floats round-trip exactly through JSON, so a
resumed run's numbers are bit-identical to an uninterrupted one's.
"""
import io
import json
from typing import Dict, Tuple

import numpy as np

META = "meta.json"


def write(arrays: Dict[str, np.ndarray], meta: Dict) -> bytes:
    """``arrays`` and the JSON-able ``meta`` (NumPy values become lists and numbers) as bytes."""
    text = json.dumps(meta, default=lambda o: o.tolist())
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{META: np.frombuffer(text.encode(), np.uint8)})
    return buf.getvalue()


def read(data: bytes) -> Tuple[Dict[str, np.ndarray], Dict]:
    """(arrays, meta) of a checkpoint; ValueError when ``data`` is not one."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        meta = json.loads(arrays.pop(META).tobytes().decode())
    except (OSError, KeyError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not a training checkpoint ({e})") from None
    return arrays, meta
