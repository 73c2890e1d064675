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

# (res, cell, statistic key) -> person -> their contribution
Contributions = dict[tuple[int, str, str], dict[str, int]]


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

    def tally(
        events: list[tuple[int, str, str, RawEvent]],
        families: set[str],
        add: object,
        state: _FlowState,
        end: int,
    ) -> list[FlowAggregate]:
        """Spend, transit taps and flows of one window's events (sorted by time), for `families`."""
        used: dict[tuple[str, str], int] = {}

        def allowed(metric: str, person: str, used: dict[tuple[str, str], int] = used) -> bool:
            if limit is None:
                return True
            n = used.get((metric, person), 0)
            if n >= limit:
                return False
            used[(metric, person)] = n + 1
            return True

        for _, _, _, ev in events:
            if isinstance(ev, RawPayment) and "payments" in families:
                person = person_of(ev)
                if not allowed("payments", person):
                    continue
                amount = ev.amount_cny if clip is None else min(ev.amount_cny, clip)
                fen = round(amount * 100)
                cell = cell_for(ev.lat, ev.lng, base)
                for res in resolutions:
                    c = parent_of(cell, res)
                    for metric, v in (("count", 1), ("amount_cny", fen)):
                        add(res, c, f"payments.{metric}", person, v)  # type: ignore[operator]
                        add(res, c, f"payments.{metric}|category={ev.category}", person, v)  # type: ignore[operator]
                        add(res, c, f"payments.{metric}|origin={_region(ev.origin)}", person, v)  # type: ignore[operator]
            elif isinstance(ev, RawTransit) and "transit" in families:
                person = person_of(ev)
                metric = "tap_in" if ev.tap == "in" else "tap_out"
                if not allowed(metric, person):
                    continue
                cell = cell_for(ev.lat, ev.lng, base)
                for res in resolutions:
                    c = parent_of(cell, res)
                    add(res, c, f"transit.{metric}", person, 1)  # type: ignore[operator]
                    add(res, c, f"transit.{metric}|mode={ev.mode}", person, 1)  # type: ignore[operator]
                    add(res, c, f"transit.{metric}|line={ev.line}", person, 1)  # type: ignore[operator]
        if "flows" not in families:
            return []

        # flows: transit trips first, then SIM movement, each in time order
        flow_persons: dict[tuple[str, str, str], set[str]] = {}
        flow_used: dict[tuple[str, str], int] = {}

        def add_flow(origin: str, dest: str, kind: str, person: str) -> None:
            if origin == dest:
                return
            if kind == "movement":
                state.candidates += 1
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
                    state.open_trip[person] = (fcell, ev.ts_ms)
                elif person in state.open_trip:
                    start = state.open_trip.pop(person)
                    if ev.ts_ms - start[1] <= ttl:
                        add_flow(start[0], fcell, "transit", person)
        for _, _, _, ev in events:
            if isinstance(ev, RawSim):
                person = person_of(ev)
                fcell = parent_of(cell_for(ev.lat, ev.lng, base), flow_res)
                if person in state.last_cell and ev.ts_ms - state.last_cell[person][1] <= ttl:
                    add_flow(state.last_cell[person][0], fcell, "movement", person)
                state.last_cell[person] = (fcell, ev.ts_ms)
        for d in (state.last_cell, state.open_trip):
            for person in [p for p, (_, ts) in d.items() if end - ts > ttl]:
                del d[person]
        return [
            FlowAggregate(o, d, k, len(ps))  # type: ignore[arg-type]
            for (o, d, k), ps in sorted(flow_persons.items())
        ]

    # the window of each layer: people present and active per base window; the others their own length
    lengths = {
        "payments": settings.window.payments_window_s * 1000,
        "transit": settings.window.transit_window_s * 1000,
        "flows": settings.window.flows_window_s * 1000,
    }
    base_families = {f for f, n in lengths.items() if n == win}
    spans = sorted({n for n in lengths.values() if n != win})
    seen = set(on_time) | set(late)
    # an idle feed closes every window holding an event: the base windows run to the last span's end
    last = max(seen, default=-win)
    end_base = max([last, *(last - last % n + n - win for n in spans)]) if seen else last

    state = _FlowState()
    results = []
    known: dict[str, RawSim] = {}  # person -> their latest SIM event so far: their last known position
    for w in range(min(seen, default=0), end_base + win, win):
        # a person's events by time, then arrival (a stable sort: ties keep the feed's order)
        events = sorted(on_time.get(w, []), key=lambda t: t[0])
        contrib: Contributions = {}

        def add(
            res: int, cell: str, key: str, person: str, value: int, contrib: Contributions = contrib
        ) -> None:
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
        flows = tally(events, base_families, add, state, w + win)
        layers = sorted(["population", "active", *base_families])
        results.append(_aggregate(w, win, contrib, flows, late.get(w, 0), layers, settings))

    # the longer windows: each over all on-time events of its base windows, in time order
    for n in spans:
        families = {f for f, length in lengths.items() if length == n}
        state = _FlowState()
        starts = sorted({w - w % n for w in on_time})
        for start in starts:
            events = sorted((e for w in range(start, start + n, win) for e in on_time.get(w, [])),
                            key=lambda t: t[0])  # fmt: skip
            contrib = {}

            def add_long(
                res: int, cell: str, key: str, person: str, value: int, contrib: Contributions = contrib
            ) -> None:
                per = contrib.setdefault((res, cell, key), {})
                per[person] = per.get(person, 0) + value

            moved_before = state.candidates
            flows = tally(events, families, add_long, state, start + n)
            has_rows = any(
                (isinstance(ev, RawPayment) and "payments" in families)
                or (isinstance(ev, RawTransit) and families & {"transit", "flows"})
                for _, _, _, ev in events
            )
            if has_rows or state.candidates > moved_before:
                results.append(_aggregate(start, n, contrib, flows, 0, sorted(families), settings))
    return sorted(results, key=lambda a: (a.window_start_ms + a.window_s * 1000, -a.window_s))


class _FlowState:
    """Per-person state carried across the flow windows: open trips and last cells."""

    def __init__(self) -> None:
        self.open_trip: dict[str, tuple[str, int]] = {}
        self.last_cell: dict[str, tuple[str, int]] = {}
        self.candidates = 0  # movement pairs between distinct cells seen so far


def _aggregate(
    w: int,
    length_ms: int,
    contrib: dict[tuple[int, str, str], dict[str, int]],
    flows: list[FlowAggregate],
    late_events: int,
    layers: list[str],
    settings: Settings,
) -> WindowAggregate:
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
    return WindowAggregate(
        window_start_ms=w,
        window_s=length_ms // 1000,
        base_res=settings.window.h3_res,
        flow_res=settings.window.flow_res,
        cells=sorted_cells,
        flows=flows,
        late_events=late_events,
        layers=layers,
    )
