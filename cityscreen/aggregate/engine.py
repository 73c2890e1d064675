"""The aggregate engine: routes records to partition states and keeps their durable log consistent.

Storage is a key-value log per partition (a changelog-backed Faust table in the worker, a dict in tests):
`snap` holds the partition snapshot, `d:<seq>` one delta per batch, and `c:<closed-through>` the carry
entries (last known position, open trip) that one close changed. The order of writes is what makes a SIGKILL
harmless: deltas are written after every batch (before Faust commits the batch's offsets); at a close
the partials are delivered first, then its carry delta, then the snapshot, then the deltas it made
redundant are deleted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.codec import delta_windows
from cityscreen.aggregate.partial import Partial
from cityscreen.aggregate.partition import PartitionState
from cityscreen.aggregate.rows import KINDS
from cityscreen.clean_batch import BatchError, decode_record, encode_batch
from cityscreen.events import CleanEvent
from cityscreen.gcpause import gc_paused

SNAPSHOT = "snap"
CARRY = "c:"  # + closed-through: the carry entries one close changed
MOVES = "m:"  # + closed-through: the movement candidates of one close's base windows, for longer flow windows
CaughtUp = Callable[[int, str], bool]  # (partition, kind) -> every record written so far has been applied


class PartitionLog(Protocol):
    def put(self, partition: int, key: str, value: bytes | None) -> None: ...
    def items(self, partition: int) -> list[tuple[str, bytes]]: ...


class DictLog:
    """In-memory PartitionLog (tests, benchmarks without durability)."""

    def __init__(self) -> None:
        self.data: dict[int, dict[str, bytes]] = {}

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        part = self.data.setdefault(partition, {})
        if value is None:
            part.pop(key, None)
        else:
            part[key] = value

    def items(self, partition: int) -> list[tuple[str, bytes]]:
        return sorted(self.data.get(partition, {}).items())


@dataclass
class Closed:
    partition: int
    partials: list[Partial]
    closed_through_ms: int


class Engine:
    def __init__(
        self, cfg: AggConfig, log: PartitionLog, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg, self.log, self.clock = cfg, log, clock
        self.states: dict[int, PartitionState] = {}
        self._seq: dict[int, int] = {}
        self._delta_newest: dict[int, dict[str, int]] = {}  # partition -> delta key -> newest window
        self._carry_keys: dict[int, list[int]] = {}  # partition -> closed-through of its carry deltas
        self._moves_newest: dict[int, dict[int, int]] = {}  # partition -> closed-through -> newest use
        self._touched: set[int] = set()
        # wall-clock time of the last record per partition and topic kind (idleness, never event time)
        self._active_at: dict[int, dict[str, float]] = {}
        self._since: dict[int, float] = {}  # when this worker took the partition
        self._tally: Counter[str] = Counter()  # of partitions dropped since the last `take_tally`

    def state(self, partition: int) -> PartitionState:
        st = self.states.get(partition)
        if st is None:
            st = self.states[partition] = self._restore(partition)
            self._since[partition] = self.clock()
        return st

    def load(self, partitions: Iterable[int]) -> None:
        """Restore assigned partitions now, so their open windows close even if no new event comes."""
        for p in partitions:
            self.state(p)

    def _restore(self, partition: int) -> PartitionState:
        snap, deltas, newest = None, [], {}
        carries: list[tuple[int, bytes]] = []
        moves: list[tuple[int, bytes]] = []
        seq = 0
        for key, value in self.log.items(partition):  # once: a chunked snapshot is joined per call
            if key == SNAPSHOT:
                snap = value
            elif key.startswith(CARRY):
                carries.append((int(key[len(CARRY) :]), value))
            elif key.startswith(MOVES):
                moves.append((int(key[len(MOVES) :]), value))
            else:
                deltas.append(value)
                seq = max(seq, int(key[2:]))
                newest[key] = _newest_of(value, self.cfg)
        st = PartitionState.restore(partition, self.cfg, snap, deltas, carries, moves)
        # a moves entry is needed until every span window it feeds has closed (at most one span long)
        self._moves_newest[partition] = {t: t + self.cfg.flows_span_ms for t, _ in moves}
        self._carry_keys[partition] = sorted(carries_through for carries_through, _ in carries)
        self._seq[partition] = seq
        self._delta_newest[partition] = newest
        return st

    def apply(self, partition: int, kind: str, offset: int, value: bytes) -> list[dict[str, Any]]:
        """Apply one record (a clean batch, or clean JSON); returns its late events as dicts.

        Raises BatchError (or msgspec's errors) for a record that is not clean events of this kind;
        the caller dead-letters it and calls `skip`."""
        batches = decode_record(value, self.cfg.base_res)
        wrong = [b.kind for b in batches if b.kind != kind]
        if wrong:
            raise BatchError(f"{wrong[0]} events in a record of the {kind} topic")
        st = self.state(partition)
        self._touched.add(partition)
        self._active_at.setdefault(partition, {})[kind] = self.clock()
        if not batches:  # an empty JSON array
            st.skip(kind, offset)
            return []
        with gc_paused():
            late = st.add_record(kind, offset, batches[0])
        return batches[0].rows(late.tolist()) if len(late) else []

    def apply_events(
        self, partition: int, kind: str, offset: int, events: Sequence[CleanEvent]
    ) -> list[dict[str, Any]]:
        """Apply clean events as one record (tests, tools)."""
        return self.apply(partition, kind, offset, encode_batch(kind, events, self.cfg.base_res))

    def skip(self, partition: int, kind: str, offset: int) -> None:
        """Count a record as applied without applying it (a dead-lettered one)."""
        self.state(partition).skip(kind, offset)
        self._touched.add(partition)

    def persist(self) -> None:
        """Write one delta per partition touched since the last call."""
        for p in sorted(self._touched):
            with gc_paused():
                taken = self.states[p].take_delta()
            if taken is None:
                continue
            data, newest = taken
            self._seq[p] = self._seq.get(p, 0) + 1
            key = f"d:{self._seq[p]:012d}"
            self.log.put(p, key, data)
            self._delta_newest.setdefault(p, {})[key] = newest
        self._touched.clear()

    def quiet_kinds(
        self, partition: int, idle_s: float, caught_up: CaughtUp = lambda p, k: True
    ) -> frozenset[str]:
        """Topic kinds of a partition with no record for `idle_s` (counted from when we took it) and
        nothing left to read: a topic whose records wait unread behind a busier one is slow, not quiet,
        and closing on it would turn its events late (a fast replay would lose whole windows)."""
        now, since = self.clock(), self._since.get(partition, self.clock())
        active = self._active_at.get(partition, {})
        return frozenset(k for k in KINDS if now - active.get(k, since) >= idle_s and caught_up(partition, k))

    def applied_offset(self, partition: int, kind: str) -> int:
        """The offset of the last record of (partition, kind) reflected in the state; -1 if none."""
        return self.state(partition).applied_offset.get(kind, -1)

    def pause_idle(self, busy_s: float) -> None:
        """Stop the idle clocks for `busy_s`: time the worker spent computing, not waiting for records.

        Without this, a close that keeps the event loop busy for longer than `idle_s` makes every topic
        look quiet to the next timer tick, which would then close windows whose records are still
        waiting in the consumer, and count them as late.
        """
        for kinds in self._active_at.values():
            for k in kinds:
                kinds[k] += busy_s
        for p in self._since:
            self._since[p] += busy_s

    def due(self) -> bool:
        """Whether `close_due()` (no idleness) closes a window now: its watermarks passed an end + grace."""
        return any(st.due() for st in self.states.values())

    def close_due(
        self,
        idle_s: float | None = None,
        caught_up: CaughtUp = lambda p, k: True,
        wall_ms: float | None = None,
    ) -> list[Closed]:
        """Close due windows of every partition. With `idle_s`, a topic kind quiet for that long stops
        holding its partition's watermark back, and a partition whose every kind is quiet closes all
        its open windows (those that ended a grace before `wall_ms`, when given), and closes through at
        least what this worker's busiest partition has closed (a partition with no events must not hold
        back the windows the others finished)."""
        out = []
        # an idle partition closes through what this worker's busiest partition has closed
        floor = max((s.closed_through_ms for s in self.states.values() if s.closed_through_ms is not None),
                    default=None)  # fmt: skip
        for p, st in sorted(self.states.items()):
            quiet = self.quiet_kinds(p, idle_s, caught_up) if idle_s is not None else frozenset()
            before = st.closed_through_ms
            with gc_paused():
                partials = st.close_due(
                    idle=len(quiet) == len(KINDS), quiet=quiet, floor_ms=floor, wall_ms=wall_ms
                )
            if st.closed_through_ms is not None and st.closed_through_ms != before:
                out.append(Closed(p, partials, st.closed_through_ms))
        return out

    def speculate(self, wall_ms: float) -> list[Closed]:
        """Each partition's partials of the windows its next close will close, computed ahead of it
        (`PartitionState.speculate`); nothing to commit, the state is unchanged."""
        out = []
        for p, st in sorted(self.states.items()):
            with gc_paused():
                taken = st.speculate(wall_ms)
            if taken is not None:
                out.append(Closed(p, taken[1], taken[0]))
        return out

    def commit_close(self, closed: Closed) -> None:
        """After the partials are delivered: the carry delta, the snapshot, then drop the deltas the
        snapshot covers and the carry deltas older than the carry TTL (every entry in them is stale)."""
        p, through = closed.partition, closed.closed_through_ms
        st = self.states[p]
        self.persist()
        with gc_paused():
            carry = st.take_carry_delta()
        self.log.put(p, f"{CARRY}{through:015d}", carry)
        moves = st.spans.take_moves()
        moves_newest = self._moves_newest.setdefault(p, {})
        if moves is not None:
            self.log.put(p, f"{MOVES}{through:015d}", moves[0])
            moves_newest[through] = moves[1]
        keys = self._carry_keys.setdefault(p, [])
        if through not in keys:
            keys.append(through)
        self.log.put(p, SNAPSHOT, st.snapshot())
        newest = self._delta_newest.get(p, {})
        for key in [k for k, w in newest.items() if w <= through]:
            self.log.put(p, key, None)
            del newest[key]
        for t in [t for t, w in moves_newest.items() if w <= through]:
            self.log.put(p, f"{MOVES}{t:015d}", None)
            del moves_newest[t]
        # entries of a carry delta are older than its close; windows still to close are newer than
        # `through`, so once the delta is a whole TTL older than that, none of its entries can pair
        # or count as present
        for old in [w for w in keys if w < through - self.cfg.carry_ttl_ms]:
            self.log.put(p, f"{CARRY}{old:015d}", None)
            keys.remove(old)

    def take_tally(self) -> Counter[str]:
        """Events counted and repeats skipped (`PartitionState.tally`) since the last call."""
        out, self._tally = self._tally, Counter()
        for st in self.states.values():
            out.update(st.tally)
            st.tally.clear()
        return out

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions moved to another worker (their log moved with them)."""
        for p in partitions:
            st = self.states.pop(p, None)
            if st is not None:
                self._tally.update(st.tally)
            self._delta_newest.pop(p, None)
            self._carry_keys.pop(p, None)
            self._moves_newest.pop(p, None)
            self._active_at.pop(p, None)
            self._since.pop(p, None)
            self._touched.discard(p)


def _newest_of(delta: bytes, cfg: AggConfig) -> int:
    """The last base window whose close needs this delta (a span's rows: the span's last window)."""
    d = msgspec.msgpack.decode(delta)
    uses = [cfg.newest_use_ms(kind, w) for kind, w in delta_windows(d)]
    return max(uses + list(d["late"]), default=-(2**62))
