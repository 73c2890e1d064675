"""The recovery guard re-reads changelog partitions a Faust recovery waits on and never receives, and only
those (streams/recovery_guard.py says what was seen)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from faust.types import TP

from streams.recovery_guard import RecoveryGuard, waiting

STATE = "cityscreen-aggregate-aggregate-state-changelog"
P0, P1, P2 = TP(STATE, 0), TP(STATE, 1), TP(STATE, 2)


@dataclass
class FakeRecovery:
    """Faust's recovery as far as the guard reads it: restored and last offsets of the active partitions."""

    last: dict[TP, int | None]
    active_offsets: dict[TP, int | None] = field(default_factory=dict)
    in_recovery: bool = True

    @property
    def active_highwaters(self) -> Mapping[TP, int | None]:
        return self.last


@dataclass
class FakeConsumer:
    """Faust's consumer over a changelog: delivers records from each fetch position, dropping those below the
    offset it last delivered (`_read_offset`), as Faust does. Its position starts at the end: the standby
    read everything before the partition turned active, and the recovery's own seek was lost."""

    recovery: FakeRecovery
    _read_offset: dict[TP, int | None] = field(default_factory=dict)
    position: dict[TP, int] = field(default_factory=dict)
    resumed: set[TP] = field(default_factory=set)
    sought: list[dict[TP, int]] = field(default_factory=list)

    def resume_partitions(self, tps: set[TP]) -> None:
        self.resumed |= tps

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        self.sought.append(dict(partitions))
        for tp, offset in partitions.items():
            self.position[tp] = offset
            if offset > 0:  # as Faust's seek_wait does
                self._read_offset[tp] = offset
            else:
                self._read_offset.pop(tp, None)

    def fetch(self) -> None:
        for tp, last in self.recovery.last.items():
            while last is not None and self.position.get(tp, last + 1) <= last:
                offset = self.position[tp]
                self.position[tp] = offset + 1
                read = self._read_offset.get(tp)
                if read is None or offset >= read:
                    self._read_offset[tp] = offset
                    self.recovery.active_offsets[tp] = offset


class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def test_only_active_partitions_behind_their_end_are_waiting() -> None:
    recovery = FakeRecovery({P0: 7, P1: 7, P2: -1}, {P0: 7, P1: None, P2: None})
    assert waiting(recovery) == {P1: (1, STATE, -1, 8)}  # P0 restored, P2 empty
    recovery.in_recovery = False
    assert waiting(recovery) == {}


def test_a_recovery_that_restores_nothing_is_read_again_from_what_it_restored() -> None:
    recovery = FakeRecovery({P0: 7, P1: 7, P2: 6}, {P0: None, P1: 3, P2: 6})
    consumer = FakeConsumer(recovery, _read_offset={P0: 7, P1: 7})
    log = Log()
    guard = RecoveryGuard(lambda: recovery, lambda: consumer, log, reread_s=20.0)
    for now in range(0, 20, 5):
        asyncio.run(guard.check(float(now)))
        consumer.fetch()
    assert consumer.sought == [] and log.warnings == []
    assert waiting(recovery).keys() == {P0, P1}  # stuck: the consumer is at the end and drops nothing new

    asyncio.run(guard.check(20.0))
    assert consumer.sought == [{P0: 0, P1: 4}] and consumer.resumed == {P0, P1}
    assert len(log.warnings) == 1 and "table recovery stalled: nothing applied for 20 s" in log.warnings[0]
    assert f"{STATE}[0] at 0 of 8" in log.warnings[0]
    consumer.fetch()
    assert waiting(recovery) == {} and recovery.active_offsets == {P0: 7, P1: 7, P2: 6}


def test_the_offset_faust_last_delivered_is_forgotten_before_reading_again() -> None:
    recovery = FakeRecovery({P0: 7}, {P0: 2})
    consumer = FakeConsumer(recovery, _read_offset={P0: 9}, position={P0: 3})
    consumer.fetch()
    assert recovery.active_offsets[P0] == 2  # 3 to 7 dropped: below what Faust last delivered
    guard = RecoveryGuard(lambda: recovery, lambda: consumer, Log(), reread_s=20.0)
    for now in (0.0, 20.0):
        asyncio.run(guard.check(now))
    consumer.fetch()
    assert recovery.active_offsets[P0] == 7


def test_a_recovery_that_moves_or_ends_is_left_alone() -> None:
    recovery = FakeRecovery({P0: 100}, {P0: 0})
    consumer = FakeConsumer(recovery)
    guard = RecoveryGuard(lambda: recovery, lambda: consumer, Log(), reread_s=20.0)
    for now in range(0, 100, 5):
        recovery.active_offsets[P0] = now  # slow, but restoring
        asyncio.run(guard.check(float(now)))
    recovery.in_recovery = False
    for now in range(100, 200, 5):
        asyncio.run(guard.check(float(now)))
    assert consumer.sought == []
