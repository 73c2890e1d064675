"""Fixture files: raw events as JSON lines (optionally gzip), written by `record`, read by `replay`.

One event per line, in the wire encoding of `cityscreen.events`. Gzip files are written with a zero
timestamp so the same events always give the same bytes. Replay shifts event times by whole days
(`shift_days_for`) so old fixtures pass the ingest skew check while keeping their time of day,
window alignment and pseudonym periods (the rotation period divides a day).
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from cityscreen.errors import CityScreenError
from cityscreen.events import RawEvent

DAY_MS = 86_400_000
_ENCODER = msgspec.json.Encoder()
_RAW = msgspec.json.Decoder(RawEvent)


class _Stamp(msgspec.Struct):
    ts_ms: int


_STAMP = msgspec.json.Decoder(_Stamp)


def open_write(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        raw = open(path, "wb")  # noqa: SIM115 - closed through the gzip wrapper's owner below
        return _OwningGzip(raw)  # type: ignore[return-value]
    return open(path, "wb")


class _OwningGzip(gzip.GzipFile):
    """A gzip writer with mtime 0 (reproducible bytes) that also closes its underlying file."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def write_lines(out: IO[bytes], lines: Iterable[bytes]) -> int:
    n = 0
    for line in lines:
        out.write(line)
        out.write(b"\n")
        n += 1
    return n


def encode_line(event: RawEvent) -> bytes:
    return _ENCODER.encode(event)


def write_events(path: Path, events: Iterable[RawEvent]) -> int:
    """Write events as JSON lines; returns how many."""
    with open_write(path) as out:
        return write_lines(out, map(encode_line, events))


def iter_lines(path: Path) -> Iterator[bytes]:
    """The non-empty lines of a fixture (gzip or plain)."""
    if not path.exists():
        raise CityScreenError(f"fixture {path} not found: record one with `cityscreen record --out {path}`")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f, io.BufferedReader(f) as lines:
        for line in lines:
            line = line.strip()
            if line:
                yield line


def read_events(path: Path) -> Iterator[RawEvent]:
    for n, line in enumerate(iter_lines(path), 1):
        try:
            yield _RAW.decode(line)
        except msgspec.DecodeError as exc:
            raise CityScreenError(f"{path}:{n}: not a raw event ({exc})") from exc


def line_ts_ms(line: bytes) -> int:
    return _STAMP.decode(line).ts_ms


def time_range(path: Path) -> tuple[int, int]:
    """(first, last) event time of a fixture."""
    lo, hi = math.inf, -math.inf
    for line in iter_lines(path):
        ts = line_ts_ms(line)
        lo, hi = min(lo, ts), max(hi, ts)
    if lo == math.inf:
        raise CityScreenError(f"fixture {path} holds no events")
    return int(lo), int(hi)


def shift_days_for(last_ts_ms: int, now_ms: int) -> int:
    """Whole days that move the last event into the day before now: (now - 1 day, now]."""
    return (now_ms - last_ts_ms) // DAY_MS


def shifted(event: RawEvent, shift_days: int) -> RawEvent:
    if shift_days:
        event.ts_ms += shift_days * DAY_MS
    return event
