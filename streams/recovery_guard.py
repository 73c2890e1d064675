"""Recovery guard: changelog partitions a Faust table recovery waits on but never receives are read again.

Seen in CI on a group going from two workers back to one: the remaining worker took over the changelog
partitions it had read as a standby, Faust's recovery sought them back to the start, and not one record
of them reached the recovery for five minutes (its own warnings: "No event received for active tp ...
since recovery start"), while the Kafka client kept fetching. The worker then held every clean partition
paused for good and released nothing. Why the records never arrived was not found (the hang did not
recur in eight runs); whatever lost them, resuming the partitions and seeking them back to the first
unrestored record has them fetched and delivered again (a seek also resets the offset below which Faust's
consumer drops records). Faust's recovery ignores records at or below what it has restored, so reading a
partition again from there is always safe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from faust.types import TP

from streams.stall import Behind, StallWatch, client_view


class RecoveryState(Protocol):
    """What the guard reads of Faust's `Recovery` service."""

    @property
    def in_recovery(self) -> bool: ...

    @property
    def active_offsets(self) -> Mapping[TP, int | None]: ...  # last offset restored (-1 or None: none)

    @property
    def active_highwaters(self) -> Mapping[TP, int | None]: ...  # last offset to restore (end - 1)


class RecoveryConsumer(Protocol):
    """What the guard needs of Faust's consumer."""

    def resume_partitions(self, tps: set[TP]) -> None: ...

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None: ...


def waiting(recovery: RecoveryState) -> dict[TP, Behind]:
    """The active changelog partitions a running recovery has not restored to their end."""
    if not recovery.in_recovery:
        return {}
    behind: dict[TP, Behind] = {}
    for tp, last in recovery.active_highwaters.items():
        restored = recovery.active_offsets.get(tp)
        restored = -1 if restored is None else restored
        if last is not None and restored < last:
            behind[tp] = (tp.partition, tp.topic, restored, last + 1)
    return behind


class RecoveryGuard:
    """Called every few seconds: re-reads the changelog partitions of a recovery that restores nothing."""

    def __init__(
        self,
        recovery: Callable[[], RecoveryState],
        consumer: Callable[[], RecoveryConsumer],
        log: Any,
        reread_s: float = 20.0,
    ) -> None:
        self.recovery, self.consumer, self.log = recovery, consumer, log
        self.watch = StallWatch(reseek_s=reread_s, label="table recovery")

    async def check(self, now: float) -> None:
        behind = waiting(self.recovery())
        restored = sum(applied for _, _, applied, _ in behind.values())
        verdict = self.watch.check(now, restored, behind.values(), self._detail)
        if not verdict.reseek:
            return
        self.log.warning(verdict.warning)
        consumer = self.consumer()
        stalled = {tp: applied + 1 for tp, (_, _, applied, _) in behind.items()}  # the verdict: all of them
        try:
            consumer.resume_partitions(set(stalled))
            await consumer.seek_wait(stalled)
        except Exception as exc:  # e.g. revoked meanwhile: the next rebalance starts a new recovery
            self.log.warning(f"table recovery: reading the changelog again failed ({exc!r}); trying again "
                             f"in {self.watch.reseek_s:g} s if it still restores nothing")  # fmt: skip

    def _detail(self, lagging: list[Behind]) -> str:
        """The Kafka client's view of the stalled partitions (private attributes: diagnostics only)."""
        try:
            consumer: Any = self.consumer()
            parts = []
            for p, topic, _, _ in lagging:
                tp = TP(topic, p)
                parts.append(f"{topic}[{p}] {client_view(consumer, tp)} "
                             f"Faust-active {tp in (consumer._active_partitions or ())} "
                             f"Faust-paused {tp in consumer._paused_partitions}")  # fmt: skip
            return "; ".join(parts)
        except Exception as exc:  # diagnostics must never take the worker down
            return f"(positions unavailable: {exc!r})"
