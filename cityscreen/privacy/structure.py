"""The release structure of one window: every value as a variable, every equation an observer can derive.

An observer of the frames knows the layout: a parent cell's value is the sum of its children's (one
resolution finer), and a cell's total is the sum of the categories of each breakdown. Those equations
are what differencing attacks use, so the gate reasons over exactly this set.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise

import numpy as np

from cityscreen.aggregates import STATISTICS, Measure, WindowAggregate, stat_key
from cityscreen.demography import BREAKDOWN_CATEGORIES
from cityscreen.geo import parent_of

VarKey = tuple[int, str, str]  # (resolution, cell, stat key)
ZERO = Measure(0.0, 0, 0.0)
AMOUNT_METRICS = frozenset({"payments.amount_cny"})


@dataclass
class Structure:
    """Variables in parallel arrays, plus equations `head = sum(members)` over variable ids."""

    keys: list[VarKey]
    value: np.ndarray
    persons: np.ndarray
    top: np.ndarray
    metric: list[str]  # "layer.metric" of each variable
    block: list[tuple[str, str]]  # (coarsest ancestor cell, metric): equations never cross blocks
    equations: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    # (res, cell, its keys) in variable order: each cell's variables are consecutive (empty: not known)
    cells: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)

    def index(self) -> dict[VarKey, int]:
        return {key: i for i, key in enumerate(self.keys)}

    def equations_of(self) -> list[list[int]]:
        """For each variable, the ids of the equations it appears in."""
        out: list[list[int]] = [[] for _ in self.keys]
        for e, (head, members) in enumerate(self.equations):
            out[head].append(e)
            for m in members:
                out[m].append(e)
        return out


def metric_of(key: str) -> str:
    return key.partition("|")[0]


def _dimensions(metric: str) -> tuple[str, ...]:
    layer, _, name = metric.partition(".")
    return STATISTICS.get(layer, {}).get(name, ())


def _present(present: Iterable[str], dim: str) -> list[str]:
    marker = f"|{dim}="
    return sorted(k.partition(marker)[2] for k in present if marker in k)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


# sum() adds floats left to right before Python 3.12 (which compensates) and ints exactly: while all the
# values add up to under 2**52 in size, numpy's column by column adds give the same numbers
_PLAIN_SUM = sys.version_info < (3, 12)


def _sums_close(
    value: np.ndarray, values: list[float], heads: list[int], members: Sequence[Sequence[int]]
) -> list[bool]:
    """For each candidate, `_close(values[head], sum(values[m] for m in members))` (members nonempty)."""
    if not _PLAIN_SUM or not members or float(np.abs(value).sum()) >= 2.0**52:
        return [
            _close(values[h], sum(map(values.__getitem__, ms))) for h, ms in zip(heads, members, strict=True)
        ]
    lengths = np.fromiter(map(len, members), dtype=np.int64, count=len(members))
    has = np.arange(int(lengths.max())) < lengths[:, None]
    table = np.full(has.shape, len(value), dtype=np.int64)  # padding: a 0.0 (its sign aside, the same sum)
    table[has] = np.fromiter(chain.from_iterable(members), dtype=np.int64, count=int(lengths.sum()))
    padded = np.append(value, 0.0)
    total = np.zeros(len(members))  # sum() starts from 0
    for column in table.T:
        total += padded[column]
    a = value[np.asarray(heads, dtype=np.int64)]
    return list((np.abs(a - total) <= 1e-6 * np.maximum(np.maximum(1.0, np.abs(a)), np.abs(total))).tolist())


@dataclass(frozen=True)
class _Layout:
    """A cell's variables as `build_structure` numbers them, for one set of keys: every cell with the
    same keys gets the same layout, so it is worked out once per window."""

    names: tuple[str, ...]  # keys in variable order (an open breakdown can repeat one, see _present)
    runs: tuple[tuple[str, int], ...]  # (metric, how many variables) in order
    sums: tuple[tuple[int, int, int], ...]  # breakdowns (total, first part, parts) as offsets


def _layout(
    stat_keys: tuple[str, ...], key_memo: dict[tuple[str, str, tuple[str, ...]], list[str]]
) -> _Layout:
    """Metrics sorted; each total, then its breakdowns' categories, then unexpected keys sorted."""
    by_metric: dict[str, list[str]] = defaultdict(list)
    for key in stat_keys:
        by_metric[metric_of(key)].append(key)
    names: list[str] = []
    runs: list[tuple[str, int]] = []
    sums: list[tuple[int, int, int]] = []
    for metric, present in sorted(by_metric.items()):
        start = len(names)
        dims = _dimensions(metric)
        if not dims:  # a statistic outside the known layout: threshold only, no equations
            names.extend(sorted(present))
            runs.append((metric, len(names) - start))
            continue
        names.append(metric)  # the total
        for dim in dims:
            # an open breakdown (transit line) has the categories present: an absent line is a line
            # nobody used here, which the network map already says
            cats = tuple(BREAKDOWN_CATEGORIES.get(dim) or _present(present, dim))
            part_keys = key_memo.get((metric, dim, cats))
            if part_keys is None:
                layer, _, name = metric.partition(".")
                part_keys = key_memo[(metric, dim, cats)] = [stat_key(layer, name, dim, c) for c in cats]
            if part_keys:
                sums.append((start, len(names), len(part_keys)))
            names.extend(part_keys)
        # an unexpected category: released under the threshold only
        added = set(names[start:])
        names.extend(sorted(k for k in present if k not in added))
        runs.append((metric, len(names) - start))
    return _Layout(tuple(names), tuple(runs), tuple(sums))


def build_structure(aggregate: WindowAggregate) -> Structure:
    """Every value the window releases (missing categories of a fixed set as zero) and its equations.

    Variables are numbered cell by cell (finest resolution first, cells sorted, metrics sorted, each
    total followed by its breakdowns' categories, then unexpected keys); breakdown equations come
    first, then parent = children sorted by (parent cell, key).
    """
    resolutions = sorted(aggregate.cells, reverse=True)  # finest first
    coarsest = resolutions[-1] if resolutions else aggregate.base_res
    keys: list[VarKey] = []
    measures: list[Measure] = []
    metrics: list[str] = []
    blocks: list[tuple[str, str]] = []
    cells: list[tuple[int, str, tuple[str, ...]]] = []
    # (res, cell) -> key -> variable id (the last one added wins)
    cell_index: dict[tuple[int, str], dict[str, int]] = {}
    sums: list[tuple[int, int, int]] = []  # breakdowns to check: (total, first part, parts)
    layouts: dict[tuple[str, ...], _Layout] = {}  # keys of a cell, in its order -> its layout
    key_memo: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}  # (metric, dim, cats) -> keys

    for res in resolutions:
        for cell, stats in sorted(aggregate.cells[res].items()):
            signature = tuple(stats)
            layout = layouts.get(signature)
            if layout is None:
                layout = layouts[signature] = _layout(signature, key_memo)
            names = layout.names
            first = len(keys)
            cells.append((res, cell, names))
            cell_index[(res, cell)] = dict(zip(names, range(first, first + len(names)), strict=True))
            keys.extend([(res, cell, k) for k in names])
            measures.extend([stats.get(k, ZERO) for k in names])
            top = parent_of(cell, coarsest)
            for metric, count in layout.runs:
                metrics.extend([metric] * count)
                blocks.extend([(top, metric)] * count)
            sums.extend([(first + total, first + part, count) for total, part, count in layout.sums])

    values = [m.value for m in measures]
    value = np.array(values, dtype=float)
    # a total equals its parts' sum up to rounding
    close = _sums_close(value, values, [t for t, _, _ in sums], [range(f, f + c) for _, f, c in sums])
    equations: list[tuple[int, tuple[int, ...]]] = [
        (total, tuple(range(first, first + count)))
        for (total, first, count), ok in zip(sums, close, strict=True)
        if ok
    ]
    names_of = {(res, cell): names for res, cell, names in cells}
    heads_of: list[int] = []  # parent = children candidates, in order
    members_of_head: list[tuple[int, ...]] = []
    for finer, coarser in pairwise(resolutions):
        # per parent, its children in the aggregate's order: sorting by parent then key gives the
        # order of sorting by (parent, key)
        kids: dict[str, list[str]] = defaultdict(list)
        for cell in aggregate.cells[finer]:
            kids[parent_of(cell, coarser)].append(cell)
        for parent in sorted(kids):
            members_of: dict[str, list[int]] = defaultdict(list)
            for cell in kids[parent]:
                ids = cell_index[(finer, cell)]
                for key in names_of[(finer, cell)]:
                    members_of[key].append(ids[key])
            heads = cell_index.get((coarser, parent), {})
            for key in sorted(members_of):
                head = heads.get(key)
                if head is not None:
                    heads_of.append(head)
                    members_of_head.append(tuple(members_of[key]))
    close = _sums_close(value, values, heads_of, members_of_head)
    equations.extend(
        (head, members) for head, members, ok in zip(heads_of, members_of_head, close, strict=True) if ok
    )
    return Structure(
        keys=keys,
        value=value,
        persons=np.array([m.persons for m in measures], dtype=np.int64),
        top=np.array([m.top_person_value for m in measures], dtype=float),
        metric=metrics,
        block=blocks,
        equations=equations,
        cells=cells,
    )
