"""Events per simulated local hour, by type, counted straight off the raw `city.ingest.*` topics.

Shows the daily cycle of a generated run (night, commute peaks, lunch-time payments):

    .venv/bin/python -m services.generator.hourly            # the stack in CITY_KAFKA__BOOTSTRAP
    .venv/bin/python -m services.generator.hourly --utc-offset-h 8 --markdown

Raw records are one event or a JSON array of events; only `ts_ms` is read from each.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import msgspec

from cityscreen.events import INGEST_TOPICS
from services.generator.consume import read_to_end

KINDS = tuple(INGEST_TOPICS)  # sim, payment, transit
HourCounts = dict[str, Counter[str]]  # "YYYY-MM-DD HH" local -> kind -> events


class _Stamp(msgspec.Struct):
    ts_ms: int


_ONE = msgspec.json.Decoder(_Stamp)
_MANY = msgspec.json.Decoder(list[_Stamp])


def event_times(value: bytes) -> list[int]:
    """Event times of one raw record (an event or an array of events); undecodable records count nothing."""
    try:
        if value.lstrip()[:1] == b"[":
            return [s.ts_ms for s in _MANY.decode(value)]
        return [_ONE.decode(value).ts_ms]
    except msgspec.DecodeError:
        return []


def local_hour(ts_ms: int, utc_offset_h: float) -> str:
    when = datetime.fromtimestamp(ts_ms / 1000, UTC) + timedelta(hours=utc_offset_h)
    return when.strftime("%Y-%m-%d %H")


def count_hours(records: Iterable[tuple[str, bytes]], utc_offset_h: float) -> HourCounts:
    """(raw topic, record value) pairs -> events per local hour per kind."""
    kind_of = {topic: kind for kind, topic in INGEST_TOPICS.items()}
    out: HourCounts = {}
    for topic, value in records:
        kind = kind_of[topic]
        for ts_ms in event_times(value):
            out.setdefault(local_hour(ts_ms, utc_offset_h), Counter())[kind] += 1
    return out


def format_table(counts: HourCounts, *, markdown: bool = False) -> str:
    header = ["local hour", *KINDS, "total"]
    rows = [[hour, *(str(counts[hour][k]) for k in KINDS), str(sum(counts[hour].values()))]
            for hour in sorted(counts)]  # fmt: skip
    totals = Counter[str]()
    for c in counts.values():
        totals.update(c)
    rows.append(["total", *(str(totals[k]) for k in KINDS), str(sum(totals.values()))])
    if markdown:
        lines = [header, ["---"] * len(header), *rows]
        return "\n".join("| " + " | ".join(r) + " |" for r in lines)
    return "\n".join(
        "  ".join(cell.rjust(13 if i == 0 else 9) for i, cell in enumerate(r)) for r in [header, *rows]
    )


def main(argv: list[str] | None = None) -> int:
    from cityscreen.city import load_city
    from cityscreen.settings import load_settings

    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=settings.kafka.bootstrap)
    parser.add_argument("--partitions", type=int, default=settings.kafka.partitions)
    parser.add_argument("--utc-offset-h", type=float, default=None, help="default: the city model's")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    offset = args.utc_offset_h
    if offset is None:
        offset = load_city(settings.generator.city_file).utc_offset_h
    raw = asyncio.run(read_to_end(args.bootstrap, INGEST_TOPICS.values(), args.partitions))
    records = [(r.topic, r.value) for r in raw]
    print(format_table(count_hours(records, offset), markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
