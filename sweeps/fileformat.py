"""What a committed file holds, and how a reader knows it is what its name says.

Every Parquet file lksweep commits carries, in its footer's key-value metadata under
``lksweep``, its identity (``job``, ``kind``: "table", "part", "shard" or "index"; ``table``;
``group`` or, for a compacted part, ``groups`` with each group's ``rows``; ``shard``), the
settings it was computed with, its number of ``rows`` and, as the last key, ``seal``: the
BLAKE2b-128 of **the whole file** (magic, data pages, footer, footer length), computed with
the 32 hex digits of the seal itself read as '0'. The writer writes the file with 32 '0's in
the seal's place, hashes it, and puts the digest in their place (same length, so the footer's
encoding is unchanged). The file stays plain Parquet that pandas, pyarrow and DuckDB read.

A reader (:func:`check`, :func:`decode`) checks the seal on the raw bytes *before* the Parquet
library parses anything: it finds the last ``"seal": "`` in the file, hashes the file with the
32 characters after it read as '0' and compares. Any change anywhere (a flipped bit in a page,
in the schema, in a row group's row count, in the ``lksweep`` metadata, in the footer's length
or in the seal) makes them differ, so the footer handed to pyarrow is always one lksweep wrote
(a damaged footer can abort the Parquet library's C++ reader; it is never parsed). Then the
metadata's shape is checked (a kind's fields, their types, row counts that add up to the
file's), and the identity a reader expects, so a file put in another file's place (another
group's, a sibling shard) is found too. Every failure is one line (:class:`Damaged`); a file
without a seal (written by another tool, or by an earlier lksweep, whose digest left the
footer out) is never read as data.

A checkpoint (``*.ckpt``, the job's bytes) is sealed in a small envelope: a magic line, a
JSON line with its identity and digest, then the job's bytes.
"""
import hashlib
import json
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

META_KEY = b"lksweep"
CHECKPOINT_MAGIC = b"LKSWEEP-CHECKPOINT 1\n"
SEAL = b'"seal": "'        # how json.dumps writes the metadata's last key, found in the raw bytes
BLANK = b"0" * 32          # the seal's 32 hex digits, as they are read while the file is hashed


class Damaged(ValueError):
    """A file whose bytes are not what its name says: truncated, altered, or another file's."""


def digest(data) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _seal_at(data) -> Optional[int]:
    """Where the seal's 32 digits begin in a file's bytes (None: it carries none)."""
    at = data.rfind(SEAL)
    return at + len(SEAL) if at >= 0 and at + len(SEAL) + len(BLANK) <= len(data) else None


def _digest_at(data, at: int) -> bytes:
    """The seal a file must carry: its digest with the 32 bytes at ``at`` read as '0'."""
    view = memoryview(data)
    h = hashlib.blake2b(digest_size=16)
    for piece in (view[:at], BLANK, view[at + len(BLANK):]):
        h.update(piece)
    return h.hexdigest().encode()


def encode(table: pa.Table, meta: Dict[str, Any]) -> Tuple[bytes, Dict[str, Any]]:
    """(Parquet bytes, the metadata sealed in them): ``table`` with ``meta``, its number of
    ``rows`` and its ``seal`` in the footer (see the module docstring)."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({META_KEY: json.dumps({**meta, "rows": table.num_rows, "seal": BLANK.decode()})})
    data = bytearray(sink.getvalue().to_pybytes())
    at = _seal_at(data)
    if at is None or data[at:at + len(BLANK)] != BLANK:   # the metadata is not where a reader looks
        raise RuntimeError("pyarrow did not write the lksweep metadata as given; cannot seal the file")
    seal = _digest_at(data, at)
    data[at:at + len(BLANK)] = seal
    return bytes(data), {**meta, "rows": table.num_rows, "seal": seal.decode()}


def verify(data: bytes) -> None:
    """Damaged unless ``data`` is a whole file whose seal matches its bytes (raw bytes only:
    nothing is parsed)."""
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise Damaged("not a whole Parquet file (truncated?)")
    at = _seal_at(data)
    if at is None:
        raise Damaged("it carries no digest (not written by this version of lksweep)")
    if _digest_at(data, at) != data[at:at + len(BLANK)]:
        raise Damaged("its content does not match its digest (altered or damaged)")


def read_meta(data: bytes) -> Tuple[Dict[str, Any], int]:
    """(the ``lksweep`` metadata, the rows the footer counts) of a file whose seal matches;
    Damaged otherwise, or when the metadata lacks what its kind needs."""
    verify(data)
    try:
        footer = pq.read_metadata(pa.BufferReader(data))
        meta = json.loads((footer.metadata or {})[META_KEY])
    except (OSError, pa.ArrowException, ValueError, KeyError) as e:
        raise Damaged(f"its footer cannot be read ({_first_line(e)})") from None
    why = _malformed(meta)
    if not why and meta["rows"] != footer.num_rows:
        why = f"its metadata counts {meta['rows']} rows, its row groups {footer.num_rows}"
    if why:
        raise Damaged(f"its lksweep metadata is not usable: {why}")
    return meta, footer.num_rows


# The fields each kind of file carries, and their types (sweeps.index and the readers use them).
FIELDS = {"table": {"table": str, "group": str, "settings": dict},
          "shard": {"group": str, "shard": str, "settings": dict},
          "part": {"table": str, "part": str, "groups": list},
          "index": {}}
GROUP_FIELDS = {"group": str, "settings": dict, "rows": int}


def _wrong_types(obj: Dict, fields: Dict[str, type]) -> List[str]:
    return [k for k, t in fields.items() if type(obj.get(k)) is not t]


def _malformed(meta) -> str:
    """Why sealed metadata cannot be used ("" when it can)."""
    if not isinstance(meta, dict) or meta.get("kind") not in FIELDS:
        return "no known kind"
    bad = _wrong_types(meta, {"job": str, "rows": int, **FIELDS[meta["kind"]]})
    if not bad and meta["kind"] == "part":
        groups = meta["groups"]
        bad = [f"groups[{i}]" for i, g in enumerate(groups)
               if not isinstance(g, dict) or _wrong_types(g, GROUP_FIELDS) or g["rows"] < 0]
        if not bad and sum(g["rows"] for g in groups) != meta["rows"]:
            return "its groups' rows do not add up to its rows"
    return f"{', '.join(bad[:3])} missing or of the wrong type" if bad else ""


def check(data: bytes, expect: Dict[str, Any]) -> Dict[str, Any]:
    """The metadata of a file's bytes after checking its seal, its shape and that it carries
    ``expect`` (e.g. {"kind": "table", "table": "runs", "group": G}); Damaged otherwise."""
    meta, _ = read_meta(data)
    wrong = {k: meta.get(k) for k, v in expect.items() if meta.get(k) != v}
    if wrong:
        holds = ", ".join(f"{k} {v!r}" for k, v in wrong.items())
        wants = ", ".join(f"{k} {expect[k]!r}" for k in wrong)
        raise Damaged(f"it holds {holds} where its name says {wants} (another file put in its place)")
    return meta


def decode(data: bytes, expect: Dict[str, Any]) -> Tuple[pa.Table, Dict[str, Any]]:
    """(table, metadata) of a committed file's bytes, checked by :func:`check`; the table holds
    the rows the metadata counts."""
    meta = check(data, expect)
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (OSError, pa.ArrowException, ValueError) as e:
        raise Damaged(f"its pages cannot be read ({_first_line(e)})") from None
    if table.num_rows != meta["rows"]:
        raise Damaged(f"it holds {table.num_rows} rows where its metadata counts {meta['rows']}")
    return table, meta


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
