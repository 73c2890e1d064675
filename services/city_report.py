"""How much of the default city the screen shows: the `make run` city and settings through the real
ingest rules, aggregation and release gate, in one process (no Kafka), at the morning peak.

`cityscreen privacy report --default-city --minutes 10 --out FILE`. The city warms up first (the
people-present stock fills as idle phones report, every 30 minutes), then `minutes` windows are
measured from 08:00 local. Shares are of exact values, so they say what an operator loses to the gate:
- released_person_share[res]: persons present inside released population totals / persons present;
- released_breakdown_share[res]: non-zero breakdown values released / non-zero breakdown values;
- flows_released: released origin-destination flows per flow window.
Breakdown shares are also given per family (`released_breakdown_share_by_family`: population, payments,
transit; and per breakdown, e.g. `transit|line`), with the windows each layer covered (`layer_windows`):
spend, transit and flows may cover longer windows than people present (CITY_WINDOW__*_WINDOW_S). A
longer window still open when the simulation ends is closed with the data so far (`partial`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cityscreen.aggregates import WindowAggregate
from cityscreen.city import City, load_city
from cityscreen.events import CLEAN_TOPICS, RawEvent
from cityscreen.frames import Frame
from cityscreen.offline import CleanRecord, OfflineAggregator
from cityscreen.privacy.gate import release_kept
from cityscreen.privacy.temporal import Memory
from cityscreen.settings import Settings
from services.bench.data import CleanBatch, LoadStats, clean_batches

POPULATION = "population.persons"
PEAK_DAY = date(2026, 11, 17)  # a Tuesday: a working day's commute (fixed, so reports compare)
WARMUP_S = 1800  # every idle phone reports once in 30 minutes: after that the stock holds everyone
KIND_OF_TOPIC = {topic: kind for kind, topic in CLEAN_TOPICS.items()}
Events = Callable[[City, int, int, int, float], Iterator[RawEvent]]  # city, persons, seed, start, span_s


@dataclass
class Tally:
    present: float = 0.0
    present_released: float = 0.0
    parts: int = 0
    parts_released: int = 0
    # family ("payments", or "transit|line") -> [non-zero breakdown values, released ones]
    families: dict[str, list[int]] = field(default_factory=dict)

    def count_part(self, key: str, released: bool) -> None:
        self.parts += 1
        self.parts_released += released
        layer, dimension = key.split(".")[0], key.split("|")[1].split("=")[0]
        for family in (layer, f"{layer}|{dimension}"):
            counts = self.families.setdefault(family, [0, 0])
            counts[0] += 1
            counts[1] += released


def local_ms(city: City, day: date, hour: int) -> int:
    """`hour`:00 local time of the city on `day`, in UTC milliseconds."""
    local = datetime(day.year, day.month, day.day, hour, tzinfo=UTC) - timedelta(hours=city.utc_offset_h)
    return int(local.timestamp() * 1000)


def simulated_events(city: City, persons: int, seed: int, start_ms: int, span_s: float) -> Iterator[RawEvent]:
    from services.generator.columnar.engine import Engine

    return Engine(city, persons, seed).events(start_ms, span_s)


def tally_window(aggregate: WindowAggregate, frames: list[Frame], tallies: dict[int, Tally]) -> None:
    """Add one window's exact values, and which of them the frames release, to the per-res tallies."""
    for frame in frames:
        t = tallies.setdefault(frame.res, Tally())
        for cell, stats in aggregate.cells.get(frame.res, {}).items():
            released = frame.cells.get(cell, {})
            total = stats.get(POPULATION)
            if total is not None:
                t.present += total.value
                if released.get(POPULATION) is not None:
                    t.present_released += total.value
            for key, measure in stats.items():
                if "|" in key and measure.value > 0:
                    t.count_part(key, released.get(key) is not None)


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def city_report(
    settings: Settings, *, minutes: int, persons: int,
    aggregator: Callable[[Settings], OfflineAggregator] = OfflineAggregator,
    events: Events = simulated_events, say: Callable[[str], None] = print,
    on_window: Callable[[WindowAggregate, list[Frame]], None] | None = None, hour: int = 8,
) -> dict[str, Any]:  # fmt: skip
    """Simulate WARMUP_S before `hour`:00 local (08:00, the morning peak) and `minutes` after it;
    aggregate; gate; report. `on_window` sees each measured window's exact aggregate and its frames
    (the attack tests)."""
    city = load_city(settings.generator.city_file)
    peak_ms = local_ms(city, PEAK_DAY, hour=hour)
    span_s = WARMUP_S + minutes * 60
    say(f"[report] {persons:,} persons over {span_s // 60} simulated minutes ({WARMUP_S // 60} of warm-up)")
    stats = LoadStats()
    raws = events(city, persons, settings.generator.seed, peak_ms - WARMUP_S * 1000, span_s)
    agg = aggregator(settings)
    report = _Report(settings, peak_ms, peak_ms + minutes * 60_000, on_window)
    window_ms = settings.window.window_s * 1000
    for records in _numbered(clean_batches(raws, settings, city, stats, window_ms, now_ms=peak_ms)):
        report.measure(agg.feed(records))
    report.measure(agg.finish())
    return report.doc(persons, stats)


def _numbered(batches: Iterable[CleanBatch]) -> Iterator[list[CleanRecord]]:
    """Each batch's records as the aggregator reads them off Kafka: with their kind and the offset each
    would have in its (partition, kind)."""
    offsets: dict[tuple[int, str], int] = defaultdict(int)
    for batch in batches:
        records: list[CleanRecord] = []
        for topic, partition, value in batch.records:
            kind = KIND_OF_TOPIC[topic]
            records.append((partition, kind, offsets[(partition, kind)], value))
            offsets[(partition, kind)] += 1
        yield records


@dataclass
class _Report:
    """The measured windows (from 08:00 to `end_ms`), gated and added up."""

    settings: Settings
    peak_ms: int
    end_ms: int
    on_window: Callable[[WindowAggregate, list[Frame]], None] | None
    tallies: dict[int, Tally] = field(default_factory=dict)
    present: list[int] = field(default_factory=list)
    flows: list[int] = field(default_factory=list)
    gate_s: list[float] = field(default_factory=list)
    covered: defaultdict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    kept: dict[int, Memory | None] = field(default_factory=dict)  # the gate's memory, per window length

    def measure(self, windows: Iterator[WindowAggregate]) -> None:
        for aggregate in windows:
            if not self.peak_ms <= aggregate.window_start_ms < self.end_ms:
                continue  # warm-up, or a base window the idle close added after the simulated time
            started = time.perf_counter()
            frames, self.kept[aggregate.window_s] = release_kept(
                aggregate, self.settings.privacy, published_ms=0, previous=self.kept.get(aggregate.window_s)
            )
            self.gate_s.append(time.perf_counter() - started)
            tally_window(aggregate, frames, self.tallies)
            if self.on_window is not None:
                self.on_window(aggregate, frames)
            self._cover(aggregate, frames)

    def _cover(self, aggregate: WindowAggregate, frames: list[Frame]) -> None:
        """The window's span under each layer it holds; persons present and flows released."""
        layers = aggregate.layers or list(self.settings.window.layer_windows_s)
        span: dict[str, Any] = {"start_ms": aggregate.window_start_ms, "end_ms": aggregate.window_end_ms}
        if aggregate.window_end_ms > self.end_ms:
            span["partial"] = True  # closed when the simulation ended, before its end
        for layer in layers:
            self.covered[layer].append(span)
        if "population" in layers:
            base = aggregate.cells.get(aggregate.base_res, {})
            self.present.append(int(sum(s[POPULATION].value for s in base.values() if POPULATION in s)))
        if "flows" in layers and frames:
            self.flows.append(sum(1 for f in frames[0].flows if f.persons is not None))

    def doc(self, persons: int, stats: LoadStats) -> dict[str, Any]:
        settings, present, gate_s = self.settings, self.present, self.gate_s
        ordered = sorted(self.tallies.items())
        return {
            "persons_simulated": persons,
            "persons_present": present[-1] if present else 0,
            "persons_present_per_window": present,
            "released_person_share": {r: _share(t.present_released, t.present) for r, t in ordered},
            "released_breakdown_share": {r: _share(t.parts_released, t.parts) for r, t in ordered},
            "released_breakdown_share_by_family": {
                r: {f: _share(n[1], n[0]) for f, n in sorted(t.families.items())} for r, t in ordered
            },
            "breakdown_values_by_family": {
                r: {f: n[0] for f, n in sorted(t.families.items())} for r, t in ordered
            },
            "layer_windows_s": settings.window.layer_windows_s,
            "layer_windows": dict(self.covered),
            "flows_released": self.flows,
            "k": settings.privacy.min_persons,
            "windows": len(present),
            "events": stats.events,
            "rejected": dict(stats.rejected),
            "gate_s_per_window": round(sum(gate_s) / len(gate_s), 3) if gate_s else None,
            "settings": {"window_s": settings.window.window_s, "resolutions": settings.window.resolutions,
                         "flow_res": settings.window.flow_res, "dp_enabled": settings.privacy.dp_enabled},
        }  # fmt: skip
