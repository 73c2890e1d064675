"""The ingest edge's side of counting every event once: which raw keys each clean record accounts for.

An event's raw key is (offset of its raw record, index of the element in it); its raw source is the raw
topic-partition ("topic:partition"). The ingest edge commits raw offsets only after a batch's clean
records are delivered, so a worker killed in between leaves its successor to write the batch again. The
aggregators skip what they already counted (cityscreen/aggregate/repeats.py) from two facts each record
carries per raw source (`cityscreen.clean_batch.Provenance`):
- the floor: the batch's first raw offset of the source. Every raw record below it was read by this
  worker in an earlier batch and delivered, or committed by a worker before, which delivered it first:
  whatever of it belongs in this partition lies before this record in the partition's log.
- the span: the raw keys this record accounts for. The records one batch writes to one partition cut
  the batch's keys of the source (from the floor to the last element of its last raw record) into
  adjacent spans, each up to its own last event; so the spans of consecutive batches join, and the
  aggregator's record of what it counted stays one interval per source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cityscreen.clean_batch import Key, Provenance, Span

LAST_ELEMENT = 2**32 - 1  # elements are indexed in uint32; the last key of a raw record ends with this


def source_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def batch_bounds(names: Sequence[str], source: np.ndarray, offset: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per raw source of a batch (`source` indexes `names` per record, `offset` each record's): its
    first and last raw offset in the batch."""
    bounds = {}
    for i, name in enumerate(names):
        of = offset[source == i]
        bounds[name] = (int(of.min()), int(of.max()))
    return bounds


def record_provenance(
    names: Sequence[str],
    bounds: Mapping[str, tuple[int, int]],
    source: np.ndarray,
    offset: np.ndarray,
    element: np.ndarray,
    cuts: Sequence[int],
) -> list[Provenance]:
    """The provenance of each record [cuts[r], cuts[r + 1]) of one partition's events of a batch.

    `source` indexes `names` per event, `offset` and `element` are the events' raw keys, in raw order
    within each source (the order the batch read them); `bounds` as `batch_bounds`."""
    last_record: dict[int, int] = {}
    present = []
    for r in range(len(cuts) - 1):
        codes = np.unique(source[cuts[r] : cuts[r + 1]]).tolist()
        present.append(codes)
        last_record.update((c, r) for c in codes)
    next_key: dict[int, Key] = {}  # source -> the first key the next record of it accounts for
    out = []
    for r, codes in enumerate(present):
        lo, hi = cuts[r], cuts[r + 1]
        src = source[lo:hi]
        spans: list[Span] = []
        local = np.zeros(max(codes) + 1 if codes else 0, np.int64)
        for i, c in enumerate(codes):
            name = names[c]
            floor, last_offset = bounds[name]
            first = next_key.get(c, (floor, 0))
            if last_record[c] == r:  # its last record of the batch takes the rest of the batch's keys
                last: Key = (last_offset, LAST_ELEMENT)
            else:
                at = lo + int(np.flatnonzero(src == c)[-1])
                last = (int(offset[at]), int(element[at]))
            next_key[c] = _after(last)
            spans.append((name, floor, first, last))
            local[c] = i
        out.append(Provenance(spans, local[src], offset[lo:hi], element[lo:hi]))
    return out


def _after(key: Key) -> Key:
    offset, element = key
    return (offset + 1, 0) if element == LAST_ELEMENT else (offset, element + 1)
