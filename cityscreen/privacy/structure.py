"""The release structure of one window: every value as a variable, every equation an observer can derive.

An observer of the frames knows the layout: a parent cell's value is the sum of its children's (one
resolution finer), a cell's total is the sum of the categories of each breakdown, and (from the public
city file) a transit mode's taps are the sum of its lines' taps. The key set says more: a key that is
there at all (even as null) had data, so a present total or transit line is at least 1 (`floor`), and
a mode none of whose lines is there is 0 (`known_zero`). The gate reasons over exactly this knowledge.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import chain, pairwise

import numpy as np

from cityscreen.aggregates import STATISTICS, Measure, WindowAggregate, stat_key
from cityscreen.city import load_city
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
    # what the key set alone tells an observer: a least value (a present total or line had data) and
    # values that are 0 (a mode with no line present); None: nothing (a structure built by hand)
    floor: np.ndarray | None = None
    known_zero: np.ndarray | None = None

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


@cache
def bundled_metro_lines() -> frozenset[str]:
    """The metro lines of the bundled city model: every other line is a bus line (the vocabulary's rule)."""
    return frozenset(line.id for line in load_city(None).metro_lines)


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
    groups: tuple[tuple[int, tuple[int, ...]], ...] = ()  # transit mode = its lines, as offsets
    zeros: tuple[int, ...] = ()  # modes with no line present: 0, and the key set says so
    floors: tuple[int, ...] = ()  # keys whose presence says "at least one" (totals, lines)


def _layout(
    stat_keys: tuple[str, ...],
    key_memo: dict[tuple[str, str, tuple[str, ...]], list[str]],
    metro_lines: frozenset[str],
) -> _Layout:
    """Metrics sorted; each total, then its breakdowns' categories, then unexpected keys sorted."""
    by_metric: dict[str, list[str]] = defaultdict(list)
    for key in stat_keys:
        by_metric[metric_of(key)].append(key)
    names: list[str] = []
    runs: list[tuple[str, int]] = []
    sums: list[tuple[int, int, int]] = []
    groups: list[tuple[int, tuple[int, ...]]] = []
    zeros: list[int] = []
    floors: list[int] = []
    for metric, present in sorted(by_metric.items()):
        start = len(names)
        layer, _, name = metric.partition(".")
        if name not in STATISTICS.get(layer, {}):  # a statistic outside the known layout: threshold only
            names.extend(sorted(present))
            runs.append((metric, len(names) - start))
            continue
        dims = _dimensions(metric)  # none for a total without breakdowns (active persons)
        if metric not in AMOUNT_METRICS:  # a count's key is there only when someone was counted
            floors.append(start)
        names.append(metric)  # the total
        for dim in dims:
            # an open breakdown (transit line) has the categories present: an absent line is a line
            # nobody used here, which the network map already says
            cats = tuple(BREAKDOWN_CATEGORIES.get(dim) or _present(present, dim))
            part_keys = key_memo.get((metric, dim, cats))
            if part_keys is None:
                part_keys = key_memo[(metric, dim, cats)] = [stat_key(layer, name, dim, c) for c in cats]
            if part_keys:
                sums.append((start, len(names), len(part_keys)))
            if dim not in BREAKDOWN_CATEGORIES:  # an open breakdown's key is there only when used
                floors.extend(range(len(names), len(names) + len(part_keys)))
            names.extend(part_keys)
        if "mode" in dims and "line" in dims:
            _mode_groups(names, start, metro_lines, groups, zeros)
        # an unexpected category: released under the threshold only
        added = set(names[start:])
        names.extend(sorted(k for k in present if k not in added))
        runs.append((metric, len(names) - start))
    return _Layout(tuple(names), tuple(runs), tuple(sums), tuple(groups), tuple(zeros), tuple(floors))


def _mode_groups(
    names: list[str],
    start: int,
    metro_lines: frozenset[str],
    groups: list[tuple[int, tuple[int, ...]]],
    zeros: list[int],
) -> None:
    """Each transit mode of the metric starting at `start` = the sum of its lines present (the city
    file says which line is which mode: metro lines are listed, every other line is a bus line)."""
    lines: dict[str, list[int]] = defaultdict(list)
    modes: dict[str, int] = {}
    for offset in range(start, len(names)):
        _, _, part = names[offset].partition("|")
        dim, _, cat = part.partition("=")
        if dim == "mode":
            modes[cat] = offset
        elif dim == "line":
            lines["metro" if cat in metro_lines else "bus"].append(offset)
    for mode, offset in modes.items():
        if lines.get(mode):
            groups.append((offset, tuple(lines[mode])))
        else:
            zeros.append(offset)


@dataclass
class _Variables:
    """The variables of a window as they are numbered, with the equations and hints of their cells'
    layouts already offset to variable ids."""

    keys: list[VarKey] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)
    cells: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    # (res, cell) -> key -> variable id (the last one added wins)
    cell_index: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)
    sums: list[tuple[int, int, int]] = field(default_factory=list)  # breakdowns: (total, first part, parts)
    groups: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # mode = lines, to check
    zeros: list[int] = field(default_factory=list)
    floors: list[int] = field(default_factory=list)

    def add_cell(self, res: int, cell: str, stats: dict[str, Measure], layout: _Layout, top: str) -> None:
        names = layout.names
        first = len(self.keys)
        self.cells.append((res, cell, names))
        self.cell_index[(res, cell)] = dict(zip(names, range(first, first + len(names)), strict=True))
        self.keys.extend([(res, cell, k) for k in names])
        self.measures.extend([stats.get(k, ZERO) for k in names])
        for metric, count in layout.runs:
            self.metrics.extend([metric] * count)
            self.blocks.extend([(top, metric)] * count)
        self.sums.extend([(first + total, first + part, count) for total, part, count in layout.sums])
        self.groups.extend([(first + head, tuple(first + m for m in ms)) for head, ms in layout.groups])
        self.zeros.extend([first + z for z in layout.zeros])
        self.floors.extend([first + f for f in layout.floors])


def _variables(aggregate: WindowAggregate, resolutions: list[int], metro: frozenset[str]) -> _Variables:
    coarsest = aggregate.coarsest_res
    out = _Variables()
    layouts: dict[tuple[str, ...], _Layout] = {}  # keys of a cell, in its order -> its layout
    key_memo: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}  # (metric, dim, cats) -> keys
    for res in resolutions:
        for cell, stats in sorted(aggregate.cells[res].items()):
            signature = tuple(stats)
            layout = layouts.get(signature)
            if layout is None:
                layout = layouts[signature] = _layout(signature, key_memo, metro)
            out.add_cell(res, cell, stats, layout, parent_of(cell, coarsest))
    return out


def _hierarchy(
    aggregate: WindowAggregate, resolutions: list[int], v: _Variables
) -> tuple[list[int], list[tuple[int, ...]]]:
    """Parent = children candidates, in order: per parent (sorted), per key (sorted), the key's
    variable in the parent and its variables in the children one resolution finer."""
    names_of = {(res, cell): names for res, cell, names in v.cells}
    heads_of: list[int] = []
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
                ids = v.cell_index[(finer, cell)]
                for key in names_of[(finer, cell)]:
                    members_of[key].append(ids[key])
            heads = v.cell_index.get((coarser, parent), {})
            for key in sorted(members_of):
                head = heads.get(key)
                if head is not None:
                    heads_of.append(head)
                    members_of_head.append(tuple(members_of[key]))
    return heads_of, members_of_head


def build_structure(aggregate: WindowAggregate, metro_lines: frozenset[str] | None = None) -> Structure:
    """Every value the window releases (missing categories of a fixed set as zero) and its equations.

    Variables are numbered cell by cell (finest resolution first, cells sorted, metrics sorted, each
    total followed by its breakdowns' categories, then unexpected keys); breakdown equations come
    first, then transit mode = its lines, then parent = children sorted by (parent cell, key).
    `metro_lines`: the city file's metro lines (None: the bundled city's).
    """
    metro = bundled_metro_lines() if metro_lines is None else metro_lines
    resolutions = sorted(aggregate.cells, reverse=True)  # finest first
    v = _variables(aggregate, resolutions, metro)
    values = [m.value for m in v.measures]
    value = np.array(values, dtype=float)
    # an equation holds only where its total equals its parts' sum up to rounding
    sums = v.sums
    close = _sums_close(value, values, [t for t, _, _ in sums], [range(f, f + c) for _, f, c in sums])
    equations: list[tuple[int, tuple[int, ...]]] = [
        (total, tuple(range(first, first + count)))
        for (total, first, count), ok in zip(sums, close, strict=True)
        if ok
    ]
    close = _sums_close(value, values, [h for h, _ in v.groups], [ms for _, ms in v.groups])
    equations.extend(eq for eq, ok in zip(v.groups, close, strict=True) if ok)
    heads_of, members_of_head = _hierarchy(aggregate, resolutions, v)
    close = _sums_close(value, values, heads_of, members_of_head)
    equations.extend(
        (head, members) for head, members, ok in zip(heads_of, members_of_head, close, strict=True) if ok
    )
    return Structure(
        keys=v.keys,
        value=value,
        persons=np.array([m.persons for m in v.measures], dtype=np.int64),
        top=np.array([m.top_person_value for m in v.measures], dtype=float),
        metric=v.metrics,
        block=v.blocks,
        equations=equations,
        cells=v.cells,
        floor=_floor(value, v.floors),
        known_zero=_known_zero(value, v.zeros),
    )


def _floor(value: np.ndarray, floors: list[int]) -> np.ndarray:
    """1 where a present key says someone was counted (and the value agrees), else 0."""
    out = np.zeros(len(value))
    at = np.asarray(floors, dtype=np.int64)
    out[at] = np.where(value[at] >= 1.0, 1.0, 0.0)
    return out


def _known_zero(value: np.ndarray, zeros: list[int]) -> np.ndarray:
    """Modes the key set says are 0 (no line of theirs present), where the value agrees."""
    out = np.zeros(len(value), dtype=bool)
    at = np.asarray(zeros, dtype=np.int64)
    out[at] = value[at] == 0.0
    return out
