"""What a committed file holds, and how a reader knows it is what its name says.

Every Parquet file lksweep commits carries, in its footer's key-value metadata under
``lksweep``, its identity (``job``, ``kind``: "table", "part" or "shard"; ``table``; ``group``
or, for a compacted part, ``groups``; ``shard``), the settings it was computed with, and
``digest``: the BLAKE2b-128 of its data pages (bytes 4 up to the footer). :func:`decode`
checks the digest and the identity a reader expects, so a file whose pages were altered, or
that was put in another file's place (another group's, a sibling shard), is found whenever it
is read, in one line (:class:`Damaged`), never used. A damaged footer fails to parse, which
is found the same way.

A checkpoint (``*.ckpt``, the job's bytes) is sealed in a small envelope: a magic line, a
JSON line with its identity and digest, then the job's bytes.
"""
import hashlib
import json
from typing import Any, Dict, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"lksweep"
CHECKPOINT_MAGIC = b"LKSWEEP-CHECKPOINT 1\n"


class Damaged(ValueError):
    """A file whose bytes are not what its name says: truncated, altered, or another file's."""


def digest(data) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class _Sink:
    """A growing buffer ParquetWriter writes into, readable before the footer is written."""

    def __init__(self):
        self.buf = bytearray()
        self.closed = False

    def write(self, data) -> int:
        self.buf += data
        return len(data)

    def tell(self) -> int:
        return len(self.buf)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def encode(table: pa.Table, meta: Dict[str, Any]) -> Tuple[bytes, Dict[str, Any]]:
    """(Parquet bytes, the metadata sealed in them): ``table`` with ``meta`` plus its number
    of ``rows`` and the ``digest`` of its pages in the footer. One pass: the pages are
    written, hashed, then the footer."""
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), table.schema)
    writer.write_table(table)
    pages = len(sink.buf)
    sealed = {**meta, "rows": table.num_rows, "digest": digest(memoryview(sink.buf)[4:])}
    writer.add_key_value_metadata({META_KEY: json.dumps(sealed)})
    writer.close()
    data = bytes(sink.buf)
    if _footer_start(data) != pages:   # a writer that held pages back until the footer
        raise RuntimeError("pyarrow wrote data pages after the footer metadata was set; cannot seal the file")
    return data, sealed


def _footer_start(data: bytes) -> int:
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise Damaged("not a whole Parquet file (truncated?)")
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    if start < 4:
        raise Damaged("its footer length is impossible (truncated?)")
    return start


def read_meta(data: bytes) -> Dict[str, Any]:
    """The ``lksweep`` metadata of a Parquet file's bytes ({} when it has none); Damaged when
    the footer cannot be read."""
    _footer_start(data)
    try:
        kv = pq.read_metadata(pa.BufferReader(data)).metadata or {}
        return json.loads(kv[META_KEY]) if META_KEY in kv else {}
    except (OSError, pa.ArrowException, ValueError) as e:
        raise Damaged(f"its footer cannot be read ({_first_line(e)})") from None


def check(data: bytes, expect: Dict[str, Any], require_digest: bool = True) -> Dict[str, Any]:
    """The metadata of a file's bytes after checking its digest and that it carries ``expect``
    (e.g. {"kind": "table", "table": "runs", "group": G}); Damaged otherwise. Without
    ``require_digest``, a file with no lksweep metadata at all (written by other tools) passes."""
    meta = read_meta(data)
    if not meta and not require_digest:
        return meta
    if "digest" not in meta:
        raise Damaged("it carries no digest (not written by this version of lksweep)")
    if digest(memoryview(data)[4:_footer_start(data)]) != meta["digest"]:
        raise Damaged("its content does not match its digest (altered or damaged)")
    wrong = {k: meta.get(k) for k, v in expect.items() if meta.get(k) != v}
    if wrong:
        holds = ", ".join(f"{k} {v!r}" for k, v in wrong.items())
        wants = ", ".join(f"{k} {expect[k]!r}" for k in wrong)
        raise Damaged(f"it holds {holds} where its name says {wants} (another file put in its place)")
    return meta


def decode(data: bytes, expect: Dict[str, Any], require_digest: bool = True) -> Tuple[pa.Table, Dict[str, Any]]:
    """(table, metadata) of a committed file's bytes, checked by :func:`check`."""
    meta = check(data, expect, require_digest)
    try:
        return pq.read_table(pa.BufferReader(data)), meta
    except (OSError, pa.ArrowException, ValueError) as e:
        raise Damaged(f"its pages cannot be read ({_first_line(e)})") from None


def seal_checkpoint(state: bytes, identity: Dict[str, str]) -> bytes:
    """A job's checkpoint bytes in their envelope (identity and digest first)."""
    header = json.dumps({**identity, "digest": digest(state), "size": len(state)}, sort_keys=True).encode()
    return CHECKPOINT_MAGIC + header + b"\n" + state


def open_checkpoint(data: bytes, identity: Dict[str, str]) -> bytes:
    """The job's bytes of a sealed checkpoint, after checking its envelope; Damaged otherwise."""
    if not data.startswith(CHECKPOINT_MAGIC):
        raise Damaged("it is not an lksweep checkpoint")
    header, sep, state = data[len(CHECKPOINT_MAGIC):].partition(b"\n")
    try:
        meta = json.loads(header) if sep else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise Damaged("its envelope cannot be read")
    if meta.get("size") != len(state) or meta.get("digest") != digest(state):
        raise Damaged("its content does not match its digest (altered or truncated)")
    wrong = [k for k, v in identity.items() if meta.get(k) != v]
    if wrong:
        raise Damaged(f"it belongs to {', '.join(f'{k} {meta.get(k)!r}' for k in wrong)} (another file put in its place)")
    return state


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
