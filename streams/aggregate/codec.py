"""The bytes of a delta: each record's rows as compact columns, and back.

Every delta byte is written twice (the state table and its Kafka changelog), so the columns are
packed where it is cheap: times relative to their window, pseudonyms (hex digests) as raw bytes, and
the few distinct cells and categories of a record as an index into a list of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from streams.aggregate.rows import KIND_PAYMENT

_HEX_CHARS = 20  # a pseudonym (cityscreen.pseudonym.PSEUDONYM_HEX_CHARS)


def _pack_hex(values: Sequence[str]) -> bytes | Sequence[str]:
    """Lower-case hex strings of one length as their bytes; anything else unchanged."""
    joined = "".join(values)
    if len(joined) != _HEX_CHARS * len(values) or joined != joined.lower():
        return values
    try:
        packed = bytes.fromhex(joined)
    except ValueError:
        return values
    # fromhex skips whitespace: the length proves there was none
    return packed if len(packed) * 2 == len(joined) else values


def _unpack_hex(packed: bytes | list[str]) -> list[str]:
    if not isinstance(packed, bytes):
        return packed
    text = packed.hex()
    return [text[i : i + _HEX_CHARS] for i in range(0, len(text), _HEX_CHARS)]


def _pack_codes(values: Sequence[Any]) -> Sequence[Any]:
    """[distinct values, their indexes as bytes] when there are few of them, else the values."""
    index = {v: i for i, v in enumerate(dict.fromkeys(values))}
    if len(index) > 255:
        return values
    return [list(index), bytes(map(index.__getitem__, values))]


def _unpack_codes(packed: list[Any]) -> list[Any]:
    if len(packed) == 2 and isinstance(packed[1], bytes):
        return list(map(packed[0].__getitem__, packed[1]))
    return packed


def encode_chunk(kind: str, w: int, cols: Sequence[Sequence[Any]]) -> list[Any]:
    ts, eid, person, cell, a, b, c = cols
    return [
        kind, w, [t - w for t in ts], eid, _pack_hex(person), _pack_codes(cell), _pack_codes(a),
        b if kind == KIND_PAYMENT else _pack_codes(b), _pack_codes(c),
    ]  # fmt: skip


def delta_chunks(delta: Mapping[str, Any]) -> Iterator[tuple[str, int, list[list[Any]]]]:
    """(kind, window, columns) of each record part in a decoded delta."""
    for kind, w, ts, eid, person, cell, a, b, c in delta.get("chunks", ()):
        cols = [[t + w for t in ts], eid, _unpack_hex(person), _unpack_codes(cell), _unpack_codes(a),
                b if kind == KIND_PAYMENT else _unpack_codes(b), _unpack_codes(c)]  # fmt: skip
        yield kind, w, cols
    for kind, w, row in delta.get("rows", ()):  # written before deltas were columnar
        yield kind, w, [[v] for v in row]


def delta_windows(delta: Mapping[str, Any]) -> list[int]:
    return [ch[1] for ch in delta.get("chunks", ())] + [r[1] for r in delta.get("rows", ())]
