"""One window's gate in shards that run apart (in the worker's gate processes), with the same frames.

Every equation an observer can derive (structure.py) stays inside one block: a coarsest-resolution cell
and its descendants. Suppression decides each block from that block alone: the primary rule, the
repairs, the protection programs of its groups, and the tie-breaks (which compare values, then persons,
then the position in variable order, which a shard keeps). DP noise is keyed by the value's own
coordinates. So gating the window's blocks split into shards, and putting the frames' cells together,
gives the frames of the whole window (tests/unit/test_gate_shards.py checks it). Origin-destination flows
are thresholded one by one: shard 0 carries them all.

Not for the gate across time (`privacy.across_time`): it audits against the whole previous window and
keeps the whole window for the next one.
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame
from cityscreen.geo import parent_of

_SMALL, _SMALL_WEIGHT = 20, 8  # values under about k persons: what the gate's programs work on


def block_weights(aggregate: WindowAggregate) -> dict[str, int]:
    """Each coarsest cell's share of the gate's work: its values, and again eightfold those behind fewer
    than 20 persons (the suppressed ones the protection programs bound). Weighing values alone left
    the shards of a census window at 1.5 and 1.8 s; with the small ones weighed, 1.6 and 1.6 s."""
    coarsest = aggregate.coarsest_res
    weight: defaultdict[str, int] = defaultdict(int)
    for cells in aggregate.cells.values():
        for cell, stats in cells.items():
            small = sum(1 for m in stats.values() if m.persons < _SMALL)
            weight[parent_of(cell, coarsest)] += len(stats) + _SMALL_WEIGHT * small
    return dict(weight)


def shard_blocks(aggregate: WindowAggregate, shards: int) -> dict[str, int]:
    """Each coarsest cell's shard: the heaviest blocks first, each to the shard with the least weight so
    far (ties to the lower shard), so that the shards take about the same time. Deterministic: every
    gate process works the same split out from the same window."""
    load = [0] * shards
    out: dict[str, int] = {}
    for block, w in sorted(block_weights(aggregate).items(), key=lambda item: (-item[1], item[0])):
        shard = min(range(shards), key=lambda i: (load[i], i))
        out[block] = shard
        load[shard] += w
    return out


def shard_of(aggregate: WindowAggregate, shard: int, shards: int) -> WindowAggregate:
    """The window's cells in the blocks of `shard` (every resolution kept, maybe empty); flows in shard 0."""
    if shards == 1:
        return aggregate
    owner = shard_blocks(aggregate, shards)
    coarsest = aggregate.coarsest_res
    cells = {
        res: {cell: stats for cell, stats in by_cell.items() if owner[parent_of(cell, coarsest)] == shard}
        for res, by_cell in aggregate.cells.items()
    }
    return msgspec.structs.replace(aggregate, cells=cells, flows=aggregate.flows if shard == 0 else [])


def merge_frames(parts: list[list[Frame]]) -> list[Frame]:
    """The frames of every shard (each a list in the same resolution order) as the window's frames:
    shard 0's frame per resolution, with every shard's cells in cell order (the whole window's order)."""
    merged = []
    for same_res in zip(*parts, strict=True):
        first = same_res[0]
        if any(f.res != first.res for f in same_res):
            raise ValueError("shard frames out of step: every shard releases the same resolutions in order")
        cells = {cell: keys for frame in same_res for cell, keys in frame.cells.items()}
        merged.append(msgspec.structs.replace(first, cells=dict(sorted(cells.items()))))
    return merged
