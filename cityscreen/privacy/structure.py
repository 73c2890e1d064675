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
    """Every value the window releases (missing categories of a fixed set as zero) and its equations."""
    resolutions = sorted(aggregate.cells, reverse=True)  # finest first
    coarsest = resolutions[-1] if resolutions else aggregate.base_res
    keys: list[VarKey] = []
    measures: list[Measure] = []
    metrics: list[str] = []
    blocks: list[tuple[str, str]] = []
    index: dict[VarKey, int] = {}
    cell_keys: dict[tuple[int, str], list[str]] = defaultdict(list)
    # (res, cell, metric, dimension) -> (total id, part ids): the breakdown equations
    breakdowns: list[tuple[int, list[int]]] = []

    def add(res: int, cell: str, key: str, measure: Measure, metric: str, top: str) -> int:
        index[(res, cell, key)] = len(keys)
        cell_keys[(res, cell)].append(key)
        keys.append((res, cell, key))
        measures.append(measure)
        metrics.append(metric)
        blocks.append((top, metric))
        return len(keys) - 1

    for res in resolutions:
        for cell, stats in sorted(aggregate.cells[res].items()):
            top = parent_of(cell, coarsest)
            by_metric: dict[str, dict[str, Measure]] = defaultdict(dict)
            for key, measure in stats.items():
                by_metric[metric_of(key)][key] = measure
            for metric, present in sorted(by_metric.items()):
                layer, _, name = metric.partition(".")
                dims = _dimensions(metric)
                if not dims:  # a statistic outside the known layout: threshold only, no equations
                    for key, measure in sorted(present.items()):
                        add(res, cell, key, measure, metric, top)
                    continue
                total = add(res, cell, metric, present.get(metric, ZERO), metric, top)
                for dim in dims:
                    # an open breakdown (transit line) has the categories present: an absent line is
                    # a line nobody used here, which the network map already says
                    cats = BREAKDOWN_CATEGORIES.get(dim) or _present(present, dim)
                    parts = [
                        add(res, cell, k, present.get(k, ZERO), metric, top)
                        for k in (stat_key(layer, name, dim, c) for c in cats)
                    ]
                    if parts and _close(measures[total].value, sum(measures[p].value for p in parts)):
                        breakdowns.append((total, parts))
                extra = set(present) - {keys[i][2] for i in range(total, len(keys))}
                for key in sorted(extra):  # an unexpected category: released under the threshold only
                    add(res, cell, key, present[key], metric, top)

    equations: list[tuple[int, tuple[int, ...]]] = [(h, tuple(ms)) for h, ms in breakdowns]
    for finer, coarser in pairwise(resolutions):
        children: dict[tuple[str, str], list[int]] = defaultdict(list)
        for cell in aggregate.cells[finer]:
            parent = parent_of(cell, coarser)
            for key in cell_keys[(finer, cell)]:
                children[(parent, key)].append(index[(finer, cell, key)])
        for (parent, key), members in sorted(children.items()):
            head = index.get((coarser, parent, key))
            if head is None:
                continue
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
