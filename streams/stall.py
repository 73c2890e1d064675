"""Lost-record guards: records the Kafka client fetched but Faust never delivered are read again.

faust-streaming can drop a fetched batch (around rebalances and recovery) after the client's fetch
position has moved past it; nothing fetches those records again, and Faust even counts them as a gap
it may commit past. Seen here as a restarted worker that never finished its last window. Two cases:
- later records of the partition arrive: `OffsetGuard` sees the hole in the offsets (clean topics are
  written without transactions, so their offsets have none) and asks for a seek back to the first
  unapplied offset, dropping the records after the hole until it is re-delivered;
- nothing arrives after the lost records: `StallWatch` sees a worker behind the end offsets that applies
  nothing for `reseek_s`, and asks for the same seek.
A seek that was not needed only re-delivers records the engine skips (it ignores offsets at or below
the applied ones), so both are safe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Behind = tuple[int, str, int, int]  # partition, kind, applied offset, end offset


@dataclass(frozen=True)
class Verdict:
    reseek: list[Behind]  # seek these to their applied offset + 1
    warning: str | None


_FINE = Verdict([], None)


@dataclass
class StallWatch:
    reseek_s: float = 10.0
    label: str = "aggregate worker"  # what stalled, for the warning
    _applied: int = -1
    _moved_at: float | None = None
    _acted_at: float = field(default=float("-inf"))

    def check(
        self,
        now: float,
        applied_total: int,
        behind: Iterable[Behind],
        detail: Callable[[list[Behind]], str] = lambda _: "",
    ) -> Verdict:
        """What to do now. `applied_total` is any number that grows when records are applied (the sum
        of applied offsets); `behind` lists the (partition, kind) not yet read to their end offset;
        `detail` describes them for the log (called only when there is something to report)."""
        lagging = sorted(behind)
        if applied_total != self._applied or not lagging or self._moved_at is None:
            self._applied, self._moved_at = applied_total, now
            return _FINE
        if now - self._moved_at < self.reseek_s or now - self._acted_at < self.reseek_s:
            return _FINE
        self._acted_at = now
        where = ", ".join(f"{kind}[{p}] at {applied + 1} of {end}" for p, kind, applied, end in lagging)
        more = detail(lagging)
        warning = (
            f"{self.label} stalled: nothing applied for {now - self._moved_at:.0f} s although records "
            f"wait unread ({where}){'; ' + more if more else ''}. Seeking these partitions back to their "
            f"first unapplied offset; if this repeats, check the broker and the consumer group "
            f"(`cityscreen stack status`)."
        )
        return Verdict(lagging, warning)


@dataclass
class _Chase:
    offset: int  # sought back to here; records after it are dropped until it arrives
    since: float
    accept: bool = False  # sought twice and still a hole: a real one, take the next record


@dataclass
class OffsetGuard:
    """Admits each record only in offset order, from the first unapplied offset on."""

    give_up_s: float = 10.0
    _chasing: dict[tuple[int, str], _Chase] = field(default_factory=dict)

    def admit(self, partition: int, kind: str, offset: int, applied: int, now: float) -> tuple[str, int]:
        """What to do with a record, and the offset it concerns:
        ("apply", offset); ("drop", offset): it follows a hole being re-read; ("seek", first): drop it
        and seek (partition, kind) back to `first`; ("hole", first): apply it although `first` up to it
        does not exist (deleted by retention before this worker ever read it)."""
        key, expected = (partition, kind), applied + 1
        chase = self._chasing.get(key)
        if chase is not None and chase.offset != expected:
            chase = None  # the state moved on (restored, or the hole was filled)
            del self._chasing[key]
        # no state yet (applied -1) expects offset 0: a topic trimmed by retention costs one give-up wait
        if offset <= expected:  # the next record, or a re-delivery (the engine skips those)
            self._chasing.pop(key, None)
            return "apply", offset
        if chase is None:
            self._chasing[key] = _Chase(expected, now)
            return "seek", expected
        if chase.accept:
            del self._chasing[key]
            return "hole", expected
        if now - chase.since >= self.give_up_s:
            # still a hole after the seek: make the partition deliver again from it and accept it then
            chase.accept = True
            return "seek", expected
        return "drop", offset


def polled_since(polled_ms: int | None, now_ms: float, max_age_s: float) -> bool:
    """Whether the Kafka client heard the partition's end offset within `max_age_s`.

    An end offset is only as fresh as the client's last fetch response for that partition. A worker
    starved of CPU (or holding the GIL through a long window close) fetches nothing, so the last end it
    knows can equal what it applied while newer records wait on the broker. Treating such a partition as
    read to its end made it look quiet, closed its windows early, and turned every record still on the
    broker late: the aggregate worker then spent itself on late dead letters and never caught up (a
    30-minute soak on a loaded box, 300,000 late events in one window)."""
    return polled_ms is not None and now_ms - polled_ms <= max_age_s * 1000


def client_view(consumer: Any, tp: Any) -> str:
    """What Faust's consumer and its Kafka client hold for one partition, for a stall warning (private
    attributes: diagnostics only; the caller catches what this raises)."""
    st = consumer._thread._consumer._subscription.subscription.assignment.state_value(tp)
    return (
        f"fetch position {st._position} paused {st._paused} highwater {st.highwater} "
        f"read {consumer._read_offset.get(tp)}"
    )
