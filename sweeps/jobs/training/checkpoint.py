"""A training run's checkpoint as data only: NumPy arrays and JSON in one ``.npz`` file.

Checkpoints may come back from a shared bucket, so reading one must not be able to run code:
no pickle (``np.load(..., allow_pickle=False)``), and the bookkeeping (epoch rows, learning
rate, the data-order generator's state) is JSON. Floats round-trip exactly through JSON, so a
resumed run's numbers are bit-identical to an uninterrupted one's.

Nor must a small file be able to take the reader's memory: a deflated member of a few MB can
claim to inflate to GBs, and an array's header can claim any shape. Before any array is
read, :func:`read` checks what the file declares (the zip directory's members and their
uncompressed sizes, each array's shape and dtype in its ``.npy`` header, the size of the
bookkeeping) against what the run expects; Python's zip reader then never inflates a member
beyond its declared size, and NumPy reads no more than the header's shape.
"""
import io
import json
import zipfile
import zlib
from typing import Dict, Tuple

import numpy as np

META = "meta.json"

Layout = Dict[str, Tuple[Tuple[int, ...], np.dtype]]


def write(arrays: Dict[str, np.ndarray], meta: Dict) -> bytes:
    """``arrays`` and the JSON-able ``meta`` (NumPy values become lists and numbers) as bytes."""
    text = json.dumps(meta, default=lambda o: o.tolist())
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{META: np.frombuffer(text.encode(), np.uint8)})
    return buf.getvalue()


def read(data: bytes, layout: Layout, max_meta: int) -> Tuple[Dict[str, np.ndarray], Dict]:
    """(arrays, meta) of a checkpoint holding exactly the arrays of ``layout`` (name ->
    (shape, dtype)) and at most ``max_meta`` bytes of JSON; ValueError when ``data`` is not one."""
    try:
        _check_declared(data, layout, max_meta)
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
        meta = json.loads(arrays.pop(META).tobytes().decode())
    except (OSError, KeyError, ValueError, UnicodeDecodeError, EOFError, NotImplementedError, RecursionError,
            zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(f"not a training checkpoint ({' '.join(str(e).split())[:200]})") from None
    return arrays, meta


def _check_declared(data: bytes, layout: Layout, max_meta: int) -> None:
    """ValueError unless ``data`` declares (zip directory, .npy headers) the arrays of
    ``layout`` and at most ``max_meta`` bytes of bookkeeping, each member's size the one its
    header implies."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = {info.filename.removesuffix(".npy"): info for info in z.infolist()}
        if set(members) != {*layout, META}:
            missing, extra = sorted({*layout, META} - set(members)), sorted(set(members) - {*layout, META})
            raise ValueError(f"arrays missing: {', '.join(missing[:3]) or 'none'}; unexpected: "
                             f"{', '.join(extra[:3]) or 'none'}")
        for name, info in members.items():
            with z.open(info) as f:
                version = np.lib.format.read_magic(f)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(f))
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if info.file_size != f.tell() + nbytes:
                    raise ValueError(f"{name} declares {info.file_size:,} bytes in the zip directory and "
                                     f"{f.tell() + nbytes:,} in its header")
            if name == META:
                if dtype != np.uint8 or len(shape) != 1 or nbytes > max_meta:
                    raise ValueError(f"its bookkeeping declares {dtype}{list(shape)}, expected at most "
                                     f"{max_meta:,} bytes of text")
            elif (tuple(shape), dtype) != (tuple(layout[name][0]), layout[name][1]):
                raise ValueError(f"{name} is {dtype}{list(shape)}, expected {layout[name][1]}{list(layout[name][0])}")
