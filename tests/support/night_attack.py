"""The attacker across time on a night of the default city, gated both ways (docs/privacy.md, "Across
time"): `python -m tests.support.night_attack [PERSONS] [MINUTES] [--hour H] [--no-attack] [--out FILE]`.

Simulates the `make run` city from 03:00 (`city_report` with `hour=3`; `--hour 8`: the morning peak),
gates its minutes in a row with the stateless gate and with `across_time`, and prints per minute the
gate's CPU seconds and the shares of persons inside released totals at res 8 and 7, then per pair of
minutes what the attacker finds beyond what it is given (`beyond_given`; not with `--no-attack`).
Minutes of CPU: the attack on one pair of a 1,000,000-person minute takes about two.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame
from cityscreen.offline import OfflineAggregator
from cityscreen.privacy.gate import release_series
from cityscreen.settings import Settings
from services.city_report import city_report
from tests.support.temporal_attacker import beyond_given

TOTAL = "population.persons"


def person_share(aggregate: WindowAggregate, frames: list[Frame], res: int) -> float:
    """Share of the persons present at `res` who are inside a released total."""
    whole = inside = 0.0
    for frame in (f for f in frames if f.res == res):
        for cell, values in frame.cells.items():
            measure = aggregate.cells[res].get(cell, {}).get(TOTAL)
            persons = measure.value if measure else 0.0
            whole += persons
            inside += persons if values.get(TOTAL) is not None else 0.0
    return round(inside / whole, 4) if whole else 0.0


def night(persons: int, minutes: int, hour: int = 3) -> list[WindowAggregate]:
    seen: list[WindowAggregate] = []
    city_report(Settings(), minutes=minutes, persons=persons, aggregator=OfflineAggregator,
                say=lambda _: None, on_window=lambda a, _f: seen.append(a), hour=hour)  # fmt: skip
    return [a for a in seen if a.window_s == 60]


def gated(windows: list[WindowAggregate], across_time: bool, attack: bool = True) -> dict[str, Any]:
    # the stateless gate and the gate across time, both threshold mode: exact values on every layer
    privacy = Settings().privacy.model_copy(update={"across_time": across_time, "stock_noise": False})
    out: dict[str, Any] = {"across_time": across_time, "gate_cpu_s": [], "r8": [], "r7": [], "pairs": []}
    released = []
    last = time.process_time()
    for aggregate, frames in release_series(windows, privacy):
        now = time.process_time()
        out["gate_cpu_s"].append(round(now - last, 1))
        out["r8"].append(person_share(aggregate, frames, 8))
        out["r7"].append(person_share(aggregate, frames, 7))
        released.append((aggregate, frames))
        last = time.process_time()
    for (a0, f0), (a1, f1) in itertools.pairwise(released if attack else []):
        pinned, present = beyond_given([a0, a1], f0, f1, privacy.min_persons)
        out["pairs"].append({"start_ms": a0.window_start_ms, "pinned": len(pinned), "present": len(present)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("persons", nargs="?", type=int, default=1_000_000)
    parser.add_argument("minutes", nargs="?", type=int, default=3)
    parser.add_argument("--hour", type=int, default=3, help="local hour the minutes start at")
    parser.add_argument("--no-attack", action="store_true", help="gate only: the shares and the CPU")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    windows = night(args.persons, args.minutes, args.hour)
    doc = {"persons": args.persons, "minutes": args.minutes, "hour": args.hour, "runs": []}
    for across_time in (False, True):
        doc["runs"].append(gated(windows, across_time, attack=not args.no_attack))
        print(json.dumps(doc["runs"][-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
