"""`cityscreen bench soak`'s pure arithmetic: memory and lag trends over a long run, and whether every
event that went in came out. Nothing here touches a process, Kafka or Redis, so every rule is unit-tested.

Definitions (also written into the JSON):
- rss_slope_mb_per_h: least-squares slope of a process's resident memory (MB) against time, per hour,
  over the samples taken while the generator ran. A leak shows as a slope that stays positive; a flat
  process is near 0 (a JVM or allocator warming up shows early, so the second half is given too).
- lag_slope: the same slope of a consumer group's lag (records), per hour.
- events: in = events the generator reports sent; out = events on the clean topics plus events the
  ingest edge dead-lettered. Equal when nothing was lost (and, with no restart, nothing repeated).
  Of the clean events, `late_dead_lettered` came too late for their window and were dead-lettered by
  the aggregators; `aggregated` are the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from services.bench.report import second_half, slope_per_s

BYTES_PER_MB = 1024 * 1024
S_PER_H = 3600.0
_SENT = re.compile(r"\bsent (\d+) events\b")

Samples = Sequence[tuple[float, float]]  # (seconds since the start, value)


def sent_events(generator_line: str) -> int | None:
    """The event count of the generator's summary line ("sent 123 events (...) in ..."), if present."""
    match = _SENT.search(generator_line)
    return int(match.group(1)) if match else None


def slope_per_h(samples: Samples) -> float:
    """Least-squares slope of (t_s, value) samples in value units per hour (0 for fewer than 2)."""
    return slope_per_s(samples) * S_PER_H


def rss_trend(samples_bytes: Samples) -> dict[str, float | int]:
    """One process's memory over the run, in MB: first, last, max, and the slopes per hour."""
    mb = [(t, v / BYTES_PER_MB) for t, v in samples_bytes]
    values = [v for _, v in mb]
    return {
        "samples": len(mb),
        "first_mb": round(values[0], 1) if values else 0.0,
        "last_mb": round(values[-1], 1) if values else 0.0,
        "max_mb": round(max(values), 1) if values else 0.0,
        "rss_slope_mb_per_h": round(slope_per_h(mb), 2),
        "rss_slope_mb_per_h_second_half": round(slope_per_h(second_half(mb)), 2),
    }


def lag_trend(samples: Samples) -> dict[str, float | int]:
    """One consumer group's lag over the run (records): max, last, and the slopes per hour."""
    values = [v for _, v in samples]
    return {
        "samples": len(values),
        "max_records": int(max(values)) if values else 0,
        "last_records": int(values[-1]) if values else 0,
        "lag_slope_records_per_h": round(slope_per_h(samples), 1),
        "lag_slope_records_per_h_second_half": round(slope_per_h(second_half(samples)), 1),
    }


def event_balance(
    sent: int | None, clean_events: int, dead_lettered: int, late_events: int = 0
) -> dict[str, int | bool | None]:
    """Events in (generator) against events out (clean topics + ingest dead letters), and of the clean
    ones how many the aggregators dead-lettered as late (outside any window they could still count)."""
    out = clean_events + dead_lettered
    return {
        "in": sent,
        "out_clean": clean_events,
        "out_dead_lettered": dead_lettered,
        "out": out,
        "equal": sent is not None and sent == out,
        "late_dead_lettered": late_events,
        "aggregated": clean_events - late_events,
    }


def ingest_dead_lettered(stats: Mapping[str, int]) -> int:
    """Events the ingest edge dead-lettered, summed over its reasons (`deadletter.<reason>` counters)."""
    return sum(n for key, n in stats.items() if key.startswith("deadletter."))


def load_summary(samples: Samples) -> dict[str, float | int]:
    """The 1-minute load average over the run: the machine is shared, so its figures need this beside."""
    values = [v for _, v in samples]
    return {
        "samples": len(values),
        "mean": round(sum(values) / len(values), 2) if values else 0.0,
        "max": round(max(values), 2) if values else 0.0,
    }


def since(samples: Samples, t0_s: float) -> list[tuple[float, float]]:
    """The samples taken at or after t0_s (the load's start: trends before it are set-up, not soak)."""
    return [x for x in samples if x[0] >= t0_s]


def soak_summary(
    rss: Mapping[str, Samples],
    lags: Mapping[str, Samples],
    balance: Mapping[str, object],
    load: Samples,
    since_s: float = 0.0,
) -> dict[str, object]:
    """The soak's headline figures from the samples since `since_s`: the slopes by process and group,
    the event balance, the load average."""
    rss_doc = {name: rss_trend(since(samples, since_s)) for name, samples in sorted(rss.items())}
    lag_doc = {group: lag_trend(since(samples, since_s)) for group, samples in sorted(lags.items())}
    return {
        "load_started_s": since_s,
        "rss_slope_mb_per_h": {name: doc["rss_slope_mb_per_h"] for name, doc in rss_doc.items()},
        "lag_slope": {
            "unit": "records per hour",
            **{group: doc["lag_slope_records_per_h"] for group, doc in lag_doc.items()},
        },
        "events": dict(balance),
        "load_average_1m": load_summary(since(load, since_s)),
        "rss": rss_doc,
        "lag": lag_doc,
    }
