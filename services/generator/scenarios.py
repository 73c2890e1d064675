"""Scenarios that can be switched on: a stadium event, a metro line outage, a tourist influx.

On the command line a scenario is `NAME[:key=value,...]`, e.g. `stadium:start=19:30,share=0.05`,
`outage:line=L1,start=07:30,end=10:00`, `tourists:share=0.3`. Times are local wall-clock times and
apply on every simulated day.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cityscreen.errors import CityScreenError


def clock_ms(hhmm: str) -> int:
    """'19:30' -> milliseconds after local midnight."""
    try:
        hours, minutes = hhmm.split(":")
        value = (int(hours) * 60 + int(minutes)) * 60_000
    except ValueError as exc:
        raise CityScreenError(f"time {hhmm!r} is not HH:MM (e.g. 19:30)") from exc
    if not 0 <= value < 86_400_000:
        raise CityScreenError(f"time {hhmm!r} is outside 00:00-23:59")
    return value


@dataclass(frozen=True)
class Stadium:
    """A match or concert: a crowd builds before `start`, spends inside, and leaves after `hours`."""

    venue: str = ""  # venue id; "" = the city's first venue of kind "stadium"
    start: str = "19:30"
    hours: float = 2.5
    share: float = 0.03  # share of the simulated population that attends (the population is a sample)


@dataclass(frozen=True)
class Outage:
    """A metro line stops between `start` and `end`: its riders take shuttle buses or a taxi."""

    line: str = "L1"
    start: str = "07:30"
    end: str = "10:00"


@dataclass(frozen=True)
class Tourists:
    """Extra tourists, as a share of the population, sightseeing and spending in the merchant clusters."""

    share: float = 0.2


@dataclass(frozen=True)
class Scenarios:
    stadium: Stadium | None = None
    outage: Outage | None = None
    tourists: Tourists | None = None
    names: tuple[str, ...] = field(default=())


SCENARIO_TYPES: dict[str, type] = {"stadium": Stadium, "outage": Outage, "tourists": Tourists}


def parse_scenarios(specs: list[str]) -> Scenarios:
    """Parse `NAME[:key=value,...]` specs; errors name the valid scenarios and keys."""
    chosen: dict[str, object] = {}
    for spec in specs:
        name, _, rest = spec.partition(":")
        kind = SCENARIO_TYPES.get(name.strip())
        if kind is None:
            raise CityScreenError(f"unknown scenario {name!r}: choose from {', '.join(SCENARIO_TYPES)}")
        known = {f.name: f.type for f in fields(kind)}
        kwargs: dict[str, object] = {}
        for pair in filter(None, rest.split(",")):
            key, eq, value = pair.partition("=")
            if not eq or key not in known:
                raise CityScreenError(f"scenario {name}: bad option {pair!r}; options: {', '.join(known)}")
            kwargs[key] = float(value) if known[key] == "float" else value
        chosen[name.strip()] = kind(**kwargs)
    scenarios = Scenarios(**chosen, names=tuple(specs))  # type: ignore[arg-type]
    for window in [scenarios.outage.start, scenarios.outage.end] if scenarios.outage else []:
        clock_ms(window)
    if scenarios.stadium:
        clock_ms(scenarios.stadium.start)
    return scenarios
