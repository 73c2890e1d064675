"""A deliberately plain reference implementation of the window aggregates, straight from raw events.

It shares no code with `streams/`: only the core schemas, `cityscreen.geo`, `cityscreen.demography` and
`cityscreen.aggregates`. It is slow and simple on purpose; the golden tests and the privacy attack tests
compare the real pipeline against it. The rules it encodes are the ones documented in docs/streams.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from cityscreen.aggregates import FlowAggregate, Measure, WindowAggregate
from cityscreen.demography import BREAKDOWN_CATEGORIES, ORIGIN_REGIONS, age_band
from cityscreen.events import RawEvent, RawPayment, RawSim, RawTransit, partition_for
from cityscreen.geo import cell_for, parent_of
from cityscreen.pseudonym import pseudonymize
from cityscreen.settings import Settings


def _identity(ev: RawEvent) -> tuple[str, str]:
    """(identifier, pseudonym domain) of the person behind an event, as the ingest edge keys it."""
    if isinstance(ev, RawSim):
        return ev.imsi, "imsi"
    if isinstance(ev, RawPayment):
        return ev.account, "account"
    return ev.card, "card"


def _region(code: str) -> str:
    return ORIGIN_REGIONS.get(code, code)


def reference_window_aggregates(raw_events: Iterable[RawEvent], settings: Settings) -> list[WindowAggregate]:
    win = settings.window.window_s * 1000
    grace = settings.window.grace_s * 1000
    base = settings.window.h3_res
    resolutions = settings.window.resolutions
    flow_res = settings.window.flow_res
    ttl = settings.window.trip_ttl_s * 1000
    presence_ttl = settings.window.presence_ttl_s * 1000
    rotation = settings.pseudonym_rotation_s * 1000
    dp = settings.privacy.dp_enabled
    limit = settings.privacy.max_contributions_per_window if dp else None
    clip = settings.privacy.max_amount_cny if dp else None
    rot = settings.pseudonym_rotation_s
    rot_offset = settings.pseudonym_rotation_offset_s
    secret = settings.pseudonym_secret
    partitions = settings.kafka.partitions

    def person_of(ev: RawEvent) -> str:
        identifier, domain = _identity(ev)
        return pseudonymize(
            identifier, ts_ms=ev.ts_ms, secret=secret, rotation_s=rot, domain=domain, offset_s=rot_offset
        )

    # 1. lateness, per kind and clean-topic partition (the person's), in arrival order
    watermark: dict[tuple[str, int], int] = {}
    on_time: dict[int, list[tuple[int, str, str, RawEvent]]] = {}  # window -> (ts, event_id, kind, event)
    late: dict[int, int] = {}
    for ev in raw_events:
        kind = "sim" if isinstance(ev, RawSim) else "payment" if isinstance(ev, RawPayment) else "transit"
        w = ev.ts_ms - ev.ts_ms % win
        lane = (kind, partition_for(person_of(ev), partitions))
        wm = watermark.get(lane)
        if wm is not None and w + win + grace <= wm:
            home = wm - wm % win
            late[home] = late.get(home, 0) + 1
            continue
        if wm is None or ev.ts_ms > wm:
            watermark[lane] = ev.ts_ms
        on_time.setdefault(w, []).append((ev.ts_ms, ev.event_id, kind, ev))

    results = []
    last_cell: dict[str, tuple[str, int]] = {}
    open_trip: dict[str, tuple[str, int]] = {}
    known: dict[str, RawSim] = {}  # person -> their latest SIM event so far: their last known position
    seen = set(on_time) | set(late)
    # every window from the first to the last seen: one without events still has people present
    for w in range(min(seen, default=0), max(seen, default=-win) + win, win):
        # a person's events by time, then arrival (a stable sort: ties keep the feed's order)
        events = sorted(on_time.get(w, []), key=lambda t: t[0])
        # (res, cell, key) -> person -> contribution (amounts in fen)
        contrib: dict[tuple[int, str, str], dict[str, int]] = {}

        def add(res: int, cell: str, key: str, person: str, value: int, contrib: dict = contrib) -> None:
            per = contrib.setdefault((res, cell, key), {})
            per[person] = per.get(person, 0) + value

        # active: the last SIM event of each person in the window
        last_sim: dict[str, RawSim] = {}
        for _, _, _, ev in events:
            if isinstance(ev, RawSim):
                last_sim[person_of(ev)] = ev
        for person, ev in last_sim.items():
            for res in resolutions:
                add(res, parent_of(cell_for(ev.lat, ev.lng, base), res), "active.persons", person, 1)
        # people present: each person's latest SIM event at or before the window's end, if it is within
        # the presence TTL and of the window's pseudonym period (a new period is a new pseudonym)
        known.update(last_sim)
        since = max(w + win - presence_ttl, w - (w - rot_offset * 1000) % rotation)
        for person in [p for p, ev in known.items() if ev.ts_ms < since]:
            del known[person]  # never counts again: `since` only grows
        for person, ev in known.items():
            year = dt.datetime.fromtimestamp(ev.ts_ms / 1000, dt.UTC).year
            cell = cell_for(ev.lat, ev.lng, base)
            for res in resolutions:
                c = parent_of(cell, res)
                add(res, c, "population.persons", person, 1)
                add(res, c, f"population.persons|gender={ev.gender}", person, 1)
                add(res, c, f"population.persons|age_band={age_band(ev.birth_year, year)}", person, 1)
                add(res, c, f"population.persons|origin={_region(ev.origin)}", person, 1)
        if w not in seen and not known:
            continue  # nothing happened and nobody is present: no window

        used: dict[tuple[str, str], int] = {}

        def allowed(metric: str, person: str, used: dict = used) -> bool:
            if limit is None:
                return True
            n = used.get((metric, person), 0)
            if n >= limit:
                return False
            used[(metric, person)] = n + 1
            return True

        for _, _, _, ev in events:
            if isinstance(ev, RawPayment):
                person = person_of(ev)
                if not allowed("payments", person):
                    continue
                amount = ev.amount_cny if clip is None else min(ev.amount_cny, clip)
                fen = round(amount * 100)
                cell = cell_for(ev.lat, ev.lng, base)
                for res in resolutions:
                    c = parent_of(cell, res)
                    for metric, v in (("count", 1), ("amount_cny", fen)):
                        add(res, c, f"payments.{metric}", person, v)
                        add(res, c, f"payments.{metric}|category={ev.category}", person, v)
                        add(res, c, f"payments.{metric}|origin={_region(ev.origin)}", person, v)
            elif isinstance(ev, RawTransit):
                person = person_of(ev)
                metric = "tap_in" if ev.tap == "in" else "tap_out"
                if not allowed(metric, person):
                    continue
                cell = cell_for(ev.lat, ev.lng, base)
                for res in resolutions:
                    c = parent_of(cell, res)
                    add(res, c, f"transit.{metric}", person, 1)
                    add(res, c, f"transit.{metric}|mode={ev.mode}", person, 1)
                    add(res, c, f"transit.{metric}|line={ev.line}", person, 1)

        # flows: transit trips first, then SIM movement, each in time order
        flow_persons: dict[tuple[str, str, str], set[str]] = {}
        flow_used: dict[tuple[str, str], int] = {}

        def add_flow(
            origin: str,
            dest: str,
            kind: str,
            person: str,
            flow_persons: dict = flow_persons,
            flow_used: dict = flow_used,
        ) -> None:
            if origin == dest:
                return
            members = flow_persons.setdefault((origin, dest, kind), set())
            if person in members:
                return
            if limit is not None and flow_used.get((kind, person), 0) >= limit:
                return
            flow_used[(kind, person)] = flow_used.get((kind, person), 0) + 1
            members.add(person)

        for _, _, _, ev in events:
            if isinstance(ev, RawTransit):
                person = person_of(ev)
                fcell = parent_of(cell_for(ev.lat, ev.lng, base), flow_res)
                if ev.tap == "in":
                    open_trip[person] = (fcell, ev.ts_ms)
                elif person in open_trip:
                    start = open_trip.pop(person)
                    if ev.ts_ms - start[1] <= ttl:
                        add_flow(start[0], fcell, "transit", person)
        for _, _, _, ev in events:
            if isinstance(ev, RawSim):
                person = person_of(ev)
                fcell = parent_of(cell_for(ev.lat, ev.lng, base), flow_res)
                if person in last_cell and ev.ts_ms - last_cell[person][1] <= ttl:
                    add_flow(last_cell[person][0], fcell, "movement", person)
                last_cell[person] = (fcell, ev.ts_ms)
        end = w + win
        for d in (last_cell, open_trip):
            for person in [p for p, (_, ts) in d.items() if end - ts > ttl]:
                del d[person]

        cells: dict[int, dict[str, dict[str, Measure]]] = {}
        for (res, cell, key), per in contrib.items():
            total, top = sum(per.values()), max(per.values())
            if key.startswith("payments.amount_cny"):
                m = Measure(total / 100, len(per), top / 100)
            else:
                m = Measure(float(total), len(per), float(top))
            cells.setdefault(res, {}).setdefault(cell, {})[key] = m
        # every fixed category of a breakdown is present, zeros included
        for res_cells in cells.values():
            for stats in res_cells.values():
                for key in list(stats):
                    if "|" in key:
                        continue
                    for dim, cats in BREAKDOWN_CATEGORIES.items():
                        if any(k.startswith(f"{key}|{dim}=") for k in stats):
                            for cat in cats:
                                stats.setdefault(f"{key}|{dim}={cat}", Measure(0.0, 0, 0.0))
        sorted_cells = {
            res: {c: dict(sorted(cells[res][c].items())) for c in sorted(cells[res])}
            for res in sorted(cells, reverse=True)
        }
        flows = [
            FlowAggregate(o, d, k, len(ps))  # type: ignore[arg-type]
            for (o, d, k), ps in sorted(flow_persons.items())
        ]
        results.append(
            WindowAggregate(
                window_start_ms=w,
                window_s=settings.window.window_s,
                base_res=base,
                flow_res=flow_res,
                cells=sorted_cells,
                flows=flows,
                late_events=late.get(w, 0),
            )
        )
    return results
