"""Counting every event once although the ingest edge may write it twice.

The ingest edge is at-least-once: a worker killed after delivering a batch's clean records but before
committing its raw offsets leaves its successor to write the batch again (docs/streams.md). Each clean
record says where its events come from (`cityscreen.clean_batch.Provenance`, written by
`cityscreen.provenance`); per clean topic-partition and raw source, `Seen` keeps the raw keys already
accounted for as a few disjoint intervals, and an event whose key lies in one of them is a repeat.

Why this holds whatever the order in which two writers' records reach a partition (a successor and a
worker that lost its partitions but still writes): a record's floor claims only what lies before it in
the partition's log, and its span only the keys it carries itself or its batch holds none of for this
partition; a record with keys already counted (by the same batch written again, or by an older
overlapping one) keeps exactly the keys not yet counted. Nothing is pruned by time: the intervals of
consecutive batches join, so one interval per source remains.

A raw topic deleted and created anew starts its offsets again at 0: its events would all be taken for
repeats. Recreate the clean topics and the aggregate state with it (`cityscreen up --fresh`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cityscreen.clean_batch import Key, Provenance

_LAST = 2**32 - 1  # the last element index (cityscreen.provenance.LAST_ELEMENT)


def _before(key: Key) -> Key:
    offset, element = key
    return (offset - 1, _LAST) if element == 0 else (offset, element - 1)


def _after(key: Key) -> Key:
    offset, element = key
    return (offset + 1, 0) if element == _LAST else (offset, element + 1)


@dataclass
class Seen:
    """The raw keys of one source already counted in one clean topic-partition: sorted, disjoint,
    inclusive intervals, adjacent ones joined."""

    intervals: list[tuple[Key, Key]] = field(default_factory=list)

    def add(self, first: Key, last: Key) -> None:
        if last < first:
            return
        out: list[tuple[Key, Key]] = []
        for lo, hi in self.intervals:
            if _after(hi) < first or _after(last) < lo:
                out.append((lo, hi))  # apart, with a gap of at least one key
            else:
                first, last = min(first, lo), max(last, hi)
        out.append((first, last))
        self.intervals = sorted(out)

    def below(self, floor_offset: int) -> None:
        """Every key below `floor_offset` is accounted for (it lies earlier in the partition's log)."""
        if floor_offset > 0:
            self.add((0, 0), _before((floor_offset, 0)))

    def counted(self, offset: np.ndarray, element: np.ndarray) -> np.ndarray:
        """Per event (raw keys as two columns): whether its key lies in an interval."""
        hit = np.zeros(len(offset), bool)
        for (lo_off, lo_el), (hi_off, hi_el) in self.intervals:
            from_lo = (offset > lo_off) | ((offset == lo_off) & (element >= lo_el))
            to_hi = (offset < hi_off) | ((offset == hi_off) & (element <= hi_el))
            hit |= from_lo & to_hi
        return hit

    def to_list(self) -> list[list[int]]:
        return [[lo[0], lo[1], hi[0], hi[1]] for lo, hi in self.intervals]

    @classmethod
    def from_list(cls, raw: list[list[int]]) -> Seen:
        return cls([((a, b), (c, d)) for a, b, c, d in raw])


def take_fresh(seen: dict[str, Seen], prov: Provenance) -> np.ndarray:
    """Indexes of the record's events not yet counted; records what the record accounts for."""
    repeated = np.zeros(len(prov.source), bool)
    for i, (name, floor, _, _) in enumerate(prov.spans):
        of = seen.setdefault(name, Seen())
        of.below(floor)
        if len(prov.spans) == 1:  # the usual record: one raw source
            repeated = of.counted(prov.offset, prov.element)
        else:
            mine = prov.source == i
            repeated[mine] = of.counted(prov.offset[mine], prov.element[mine])
    for name, _, first, last in prov.spans:
        seen[name].add(first, last)
    return np.flatnonzero(~repeated)


def encode_seen(seen: Mapping[str, Mapping[str, Seen]]) -> dict[str, dict[str, list[list[int]]]]:
    """{kind: {source: intervals}} for the persisted state (msgpack)."""
    return {kind: {name: s.to_list() for name, s in by.items()} for kind, by in seen.items()}


def merge_seen(into: dict[str, dict[str, Seen]], raw: Mapping[str, Any]) -> None:
    """Join persisted intervals into `into` (later deltas hold supersets: the union is their state)."""
    for kind, by in raw.items():
        for name, intervals in by.items():
            target = into.setdefault(kind, {}).setdefault(name, Seen())
            for lo, hi in Seen.from_list(intervals).intervals:
                target.add(lo, hi)
