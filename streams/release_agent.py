"""The release agent's work, apart from Faust: partials in, each complete window released exactly once.

`ReleaseAgent` gets plain collaborators: the release book's log (cityscreen.release_book.BookLog, the
`release-book` table in the worker) and the release sink's one entry point (`WindowReleaser`, the
sink in streams/release.py). The Faust agent in streams/worker.py hands it batches of partials-topic
records.

Gating starts at once, in the gate pool, and the agent goes on reading: a window completed meanwhile is
gated in parallel instead of waiting for the windows before it. Storing stays in window order (fused
indicators read the previous window's frame): each batch's store waits for the one before.

Records are booked in offset order (`on_records`), as the aggregate agent applies clean records: Faust
lost the first partials record a restarted worker fetched (a partition's partial of the open window),
the progress record after it completed the window, and the window was released without that
partition (CI, twice: tests/integration/test_lost_records.py and test_recovery_sigkill.py). A hole in
the offsets is read again (streams/stall.py: `OffsetGuard`), and so is a lost last record
(`check_stall`: `StallWatch`). The book keeps the last offset it booked, so a hole right after a restart
is seen too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from cityscreen.frames import Frame
from cityscreen.release_book import BookLog, Release, ReleaseBook, StoredBook
from streams.stall import OffsetGuard, StallWatch

PARTIALS = "partials"  # the guards' name for the partials topic (one partition, 0)
Seek = Callable[[int], Awaitable[None]]  # seek the partials topic's partition to an offset


async def _no_seek(offset: int) -> None:
    """Tests that hand the agent records directly: nothing to seek."""


def _guards() -> tuple[OffsetGuard, StallWatch]:
    """Fresh lost-record guards for the partials topic (at start, and when its partition moves)."""
    return OffsetGuard(), StallWatch(reseek_s=20.0, label="release agent")


class WindowReleaser(Protocol):
    async def release(
        self, windows: Sequence[tuple[Release, Sequence[bytes]]], *, after: Awaitable[object] | None = None
    ) -> dict[Release, list[Frame]]: ...

    def speculate(self, windows: Sequence[tuple[Release, Sequence[bytes]]]) -> None: ...

    def forget(self) -> None: ...


class ReleaseAgent:
    def __init__(
        self,
        log: BookLog,
        sink: WindowReleaser,
        *,
        partitions: int,
        window_s: int,
        seek: Seek = _no_seek,
        warn: Callable[[str], Any] = logging.getLogger(__name__).warning,
    ) -> None:
        self.log, self.sink, self.partitions, self.window_s = log, sink, partitions, window_s
        self.seek, self.warn = seek, warn
        self.guard, self.watch = _guards()
        self._book: StoredBook | None = None
        self._settling: asyncio.Future[None] | None = None  # the latest batch's settle
        # speculative partials (partition.py: `speculate`), complete like the book's but kept in memory
        # only: their frames are never stored unless the close sends the same partials
        self.speculation = ReleaseBook(partitions, window_s=window_s)

    @property
    def book(self) -> StoredBook:
        """Read from its log on first use: by then Faust has recovered the table from its changelog."""
        if self._book is None:
            self._book = StoredBook(self.log, self.partitions, window_s=self.window_s)
        return self._book

    def revoked(self) -> None:
        """Partitions moved away: forget the book in memory. Another worker may book partials while
        this one holds none, and on a later assignment the book is read again from its log, which
        holds them; a copy kept from before misses them and releases those windows without them.
        The gate's memory goes the same way (it lives in the same log)."""
        self._book = None
        self.speculation = ReleaseBook(self.partitions, window_s=self.window_s)
        self.guard, self.watch = _guards()
        self.sink.forget()

    async def on_records(self, records: Sequence[tuple[int, bytes]], now: float) -> None:
        """Book a batch of (offset, value) partials-topic records in offset order: after a hole (records
        Faust fetched and never delivered), seek back to it and drop what follows until it arrives."""
        book = self.book
        read, values = book.read_offset, []
        for offset, value in records:
            action, at = self.guard.admit(0, PARTIALS, offset, read, now)
            if action == "seek":
                self.warn(f"partials topic: offset {offset} arrived but {at} was never delivered; seeking "
                          f"back to {at} (records the Kafka client fetched and Faust dropped)")  # fmt: skip
                await self.seek(at)
            elif action in ("apply", "hole"):
                values.append(value)
                read = max(read, offset)
        self.on_batch(values)
        book.mark_read(read)

    async def check_stall(self, now: float, end_offset: int | None) -> None:
        """Called every few seconds with the partials topic's end offset (None: not assigned here, or
        not fetched yet): records lost at its end, with nothing after them, are read again."""
        read = self.book.read_offset
        behind = [] if end_offset is None or read + 1 >= end_offset else [(0, PARTIALS, read, end_offset)]
        verdict = self.watch.check(now, read, behind)
        if verdict.reseek:
            self.warn(str(verdict.warning))
            await self.seek(read + 1)

    def on_batch(self, values: Sequence[bytes]) -> None:
        """Book a batch of partials-topic records and start releasing the windows they complete.

        Raises the error of an earlier batch's failed store (which stops the agent)."""
        if self._settling is not None and self._settling.done():
            self._settling.result()
        book = self.book
        speculative = book.add(values)  # left out of the book
        complete, meta = book.take_complete()
        self._settling = asyncio.ensure_future(self._settle(book, self._settling, complete, meta))
        self.speculation.drop_through(book.book.state.released_through)
        for head in speculative:
            self.speculation.add(head)
        self.sink.speculate(self.speculation.take_complete())

    async def settled(self) -> None:
        """Wait until every batch so far is stored and settled in the book (tests, shutdown)."""
        if self._settling is not None:
            await self._settling

    async def _settle(
        self,
        book: StoredBook,
        previous: asyncio.Future[None] | None,
        complete: list[tuple[Release, list[bytes]]],
        meta: bytes,
    ) -> None:
        """After the previous batch's windows: store this batch's complete windows, then drop their
        partials from the book and record what was released (never before it is stored)."""
        await self.sink.release(complete, after=previous)
        book.settle([rel for rel, _ in complete], meta)  # the book that took them, even if revoked since
