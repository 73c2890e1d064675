"""The aggregate engine without Kafka: clean records in arrival order in, exact window aggregates out.

The worker (`streams/worker.py`) drives the same `Engine` from Faust agents; this drives it from a
list, for tools that run the real aggregation on a machine without a broker (`cityscreen privacy report
--default-city`) and for tests. Closes happen as the worker's would: when due after every few records,
then on idleness at the end until nothing is left open.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import DictLog, Engine
from cityscreen.aggregate.partial import Partial, merge_partials
from cityscreen.aggregates import WindowAggregate
from cityscreen.release_book import finalize_window
from cityscreen.settings import Settings

CleanRecord = tuple[int, str, int, bytes]  # (partition, kind, offset, clean batch bytes)


class OfflineAggregator:
    """Feeds records to an `Engine` over an in-memory log and hands out each window once it is
    complete: every partition of the clean topics has closed it (as the release book rules)."""

    def __init__(self, settings: Settings, close_every: int = 5) -> None:
        self.settings = settings
        self.engine = Engine(AggConfig.from_settings(settings), DictLog(), clock=lambda: 0.0)
        self.close_every = close_every
        self._fed = 0
        # (end, -span, start) -> partials: by the base window that completes it, a span window first
        self._partials: dict[tuple[int, int, int], list[Partial]] = {}

    def feed(self, records: Iterable[CleanRecord]) -> Iterator[WindowAggregate]:
        """Apply records; yields the windows every partition has closed so far, oldest first."""
        for partition, kind, offset, value in records:
            self.engine.apply(partition, kind, offset, value)
            self._fed += 1
            if self._fed % self.close_every == 0:
                self._close(idle=False)
        yield from self._complete(final=False)

    def finish(self) -> Iterator[WindowAggregate]:
        """Close every open window, as the worker's idle timer does once the feed stops."""
        while self._close(idle=True):
            pass
        yield from self._complete(final=True)

    def _close(self, *, idle: bool) -> bool:
        self.engine.persist()
        closes = self.engine.close_due(idle_s=0.0 if idle else None)
        for closed in closes:
            for part in closed.partials:
                span_ms = (part.span_s or self.settings.window.window_s) * 1000
                key = (part.window_start_ms + span_ms, -span_ms, part.window_start_ms)
                self._partials.setdefault(key, []).append(part)
            self.engine.commit_close(closed)
        return bool(closes)

    def _complete(self, *, final: bool) -> Iterator[WindowAggregate]:
        """The windows every partition has closed (all of them once the feed has ended)."""
        through: int | None = None
        if not final:
            closed = [s.closed_through_ms for s in self.engine.states.values()]
            if len(closed) < self.settings.kafka.partitions or any(c is None for c in closed):
                return  # a partition that has not closed a window yet may still send a partial of it
            through = min(c for c in closed if c is not None)
        base_ms = self.settings.window.window_s * 1000
        for key in sorted(k for k in self._partials if through is None or k[0] - base_ms <= through):
            merged = merge_partials(self._partials.pop(key))
            if merged is not None:
                yield finalize_window(merged, self.settings)
