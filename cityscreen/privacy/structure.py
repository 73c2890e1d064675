"""The release structure of one window: every value as a variable, every equation an observer can derive.

An observer of the frames knows the layout: a parent cell's value is the sum of its children's (one
resolution finer), and a cell's total is the sum of the categories of each breakdown. Those equations
are what differencing attacks use, so the gate reasons over exactly this set.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

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


def _present(present: dict[str, Measure], dim: str) -> list[str]:
    marker = f"|{dim}="
    return sorted(k.partition(marker)[2] for k in present if marker in k)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


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
    # (res, cell) -> the keys in order (as added) and key -> variable id (the last one added wins)
    cell_keys: dict[tuple[int, str], list[str]] = {}
    cell_index: dict[tuple[int, str], dict[str, int]] = {}
    breakdowns: list[tuple[int, tuple[int, ...]]] = []
    metric_memo: dict[str, str] = {}  # key -> metric: the same keys recur in every cell
    key_memo: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}  # (metric, dim, cats) -> keys

    for res in resolutions:
        for cell, stats in sorted(aggregate.cells[res].items()):
            top = parent_of(cell, coarsest)
            names: list[str] = []
            ids: dict[str, int] = {}
            cell_keys[(res, cell)] = names
            cell_index[(res, cell)] = ids

            def add(
                key: str,
                measure: Measure,
                metric: str,
                block: tuple[str, str],
                at: VarKey = (res, cell, ""),
                ids: dict[str, int] = ids,
                names: list[str] = names,
            ) -> int:
                i = len(keys)
                ids[key] = i
                names.append(key)
                keys.append((at[0], at[1], key))
                measures.append(measure)
                metrics.append(metric)
                blocks.append(block)
                return i

            by_metric: dict[str, dict[str, Measure]] = defaultdict(dict)
            for key, measure in stats.items():
                metric = metric_memo.get(key)
                if metric is None:
                    metric = metric_memo[key] = metric_of(key)
                by_metric[metric][key] = measure
            for metric, present in sorted(by_metric.items()):
                block = (top, metric)
                dims = _dimensions(metric)
                if not dims:  # a statistic outside the known layout: threshold only, no equations
                    for key, measure in sorted(present.items()):
                        add(key, measure, metric, block)
                    continue
                total = add(metric, present.get(metric, ZERO), metric, block)
                for dim in dims:
                    # an open breakdown (transit line) has the categories present: an absent line is
                    # a line nobody used here, which the network map already says
                    cats = tuple(BREAKDOWN_CATEGORIES.get(dim) or _present(present, dim))
                    part_keys = key_memo.get((metric, dim, cats))
                    if part_keys is None:
                        layer, _, name = metric.partition(".")
                        part_keys = key_memo[(metric, dim, cats)] = [
                            stat_key(layer, name, dim, c) for c in cats
                        ]
                    first = len(keys)  # the parts, added in one go (as add() would, key by key)
                    parts = list(range(first, first + len(part_keys)))
                    ids.update(zip(part_keys, parts, strict=True))
                    names.extend(part_keys)
                    keys.extend([(res, cell, k) for k in part_keys])
                    measures.extend([present.get(k, ZERO) for k in part_keys])
                    metrics.extend([metric] * len(part_keys))
                    blocks.extend([block] * len(part_keys))
                    if parts and _close(measures[total].value, sum(measures[p].value for p in parts)):
                        breakdowns.append((total, tuple(parts)))
                # an unexpected category: released under the threshold only (keys of other metrics
                # in this cell never equal one of this metric, so `ids` holds exactly what was added)
                for key in sorted(k for k in present if k not in ids):
                    add(key, present[key], metric, block)

    equations: list[tuple[int, tuple[int, ...]]] = breakdowns
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
                for key in cell_keys[(finer, cell)]:
                    members_of[key].append(ids[key])
            heads = cell_index.get((coarser, parent), {})
            for key in sorted(members_of):
                head = heads.get(key)
                if head is None:
                    continue
                members = members_of[key]
                if _close(measures[head].value, sum(measures[m].value for m in members)):
                    equations.append((head, tuple(members)))
    return Structure(
        keys=keys,
        value=np.array([m.value for m in measures], dtype=float),
        persons=np.array([m.persons for m in measures], dtype=np.int64),
        top=np.array([m.top_person_value for m in measures], dtype=float),
        metric=metrics,
        block=blocks,
        equations=equations,
    )
