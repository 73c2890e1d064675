"""The bytes of a delta chunk: a window's rows of one kind from one record, as packed columns, and back.

Every delta byte is written twice (the state table and its Kafka changelog), so the columns are packed
where it is cheap: times relative to their window as int32, person keys as uint64, the record's few
distinct cells and categories as a list of them plus one small index per row. Category codes are the
worker's own (`VOCAB`), so a delta carries the strings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from cityscreen.aggregate.rows import KIND_PAYMENT, VOCAB, Chunk

# deltas, carry deltas and snapshots of this layout. 1: JSON-era rows; 2: columnar rows, carry of flow
# cells only; 3: the carry holds each person's last known position (people present as a stock)
FORMAT = 3


class StateFormatError(RuntimeError):
    """Persisted state of an older layout, which this version cannot read."""


def check_format(value: Mapping[str, Any], what: str, unversioned: int = 1) -> None:
    """Refuse state of another layout; `unversioned`: the layout of such state written without a number
    (rows of the JSON era; carry deltas before format 3)."""
    if value.get("format") != FORMAT:
        raise StateFormatError(
            f"the aggregate state holds a {what} of an older layout "
            f"(format {value.get('format', unversioned)}, "
            f"this version reads {FORMAT}): run the workers under a new consumer group "
            f"(`cityscreen worker --group NEW_NAME`), which reads the clean topics from the start, or "
            f"start the local stack afresh (`cityscreen up --fresh`)"
        )


def index_dtype(n: int) -> str:
    """The smallest unsigned little-endian dtype that indexes `n` distinct values."""
    return "<u1" if n <= 256 else "<u2" if n <= 65_536 else "<u4"


def _pack_codes(codes: np.ndarray) -> list[Any]:
    """[the distinct strings, each row's index into them]."""
    present = np.zeros(len(VOCAB.strings), np.int64)
    present[codes] = 1
    used = np.flatnonzero(present)
    index = np.cumsum(present) - 1
    return [[VOCAB.strings[c] for c in used.tolist()], index[codes].astype(index_dtype(len(used))).tobytes()]


def _unpack_codes(packed: list[Any]) -> np.ndarray:
    values, index = packed
    codes: np.ndarray = VOCAB.codes(values)[np.frombuffer(index, index_dtype(len(values)))]
    return codes


def encode_chunk(kind: str, w: int, chunk: Chunk) -> list[Any]:
    cells, cell_index = np.unique(chunk.cell, return_inverse=True)
    b = chunk.b.astype("<i8").tobytes() if kind == KIND_PAYMENT else _pack_codes(chunk.b)
    return [
        kind, w, (chunk.ts - w).astype("<i4").tobytes(), chunk.person.astype("<u8").tobytes(),
        [cells.astype("<u8").tobytes(), cell_index.astype(index_dtype(len(cells))).tobytes()],
        _pack_codes(chunk.a), b, _pack_codes(chunk.c),
    ]  # fmt: skip


def decode_chunk(packed: list[Any]) -> tuple[str, int, Chunk]:
    kind, w, ts, person, (cells, cell_index), a, b, c = packed
    uniq = np.frombuffer(cells, "<u8")
    chunk = Chunk(
        ts=np.frombuffer(ts, "<i4").astype(np.int64) + w,
        person=np.frombuffer(person, "<u8").astype(np.uint64),
        cell=uniq[np.frombuffer(cell_index, index_dtype(len(uniq)))].astype(np.uint64),
        a=_unpack_codes(a),
        b=np.frombuffer(b, "<i8").astype(np.int64) if kind == KIND_PAYMENT else _unpack_codes(b),
        c=_unpack_codes(c),
    )
    return kind, w, chunk


def delta_chunks(delta: Mapping[str, Any]) -> Iterator[tuple[str, int, Chunk]]:
    """(kind, window, rows) of each chunk of a decoded delta."""
    for packed in delta.get("chunks", ()):
        yield decode_chunk(packed)


def delta_windows(delta: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(kind, window) of each chunk of a decoded delta."""
    return [(ch[0], ch[1]) for ch in delta.get("chunks", ())]
