"""The shipped fixture's expected aggregates: the plain reference over the events the ingest edge accepts.

The ingest edge dead-letters events outside the city's bbox before anything is aggregated, so the
expected aggregates are those of the other events (the shipped fixture has none today; the count is in
the expected file's `out_of_city_events`, so a re-recorded fixture may have some). Every other ingest
rule passes for the fixture when its times are accepted (replay with `--shift-days 0` and a wide enough
`max_event_skew_s`, or the default day shift).

The file is gzipped (about 31 MB of JSON: ten windows of 2,100 to 3,700 cells, zero-filled breakdowns
included), written with a zero gzip timestamp. Regenerate it after changing the fixture or the
reference (`REGENERATE`):

    .venv/bin/python -m tests.support.fixture_expected fixtures/shenzhen-10min.jsonl.gz \
        fixtures/shenzhen-10min.expected.json.gz
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from cityscreen.aggregates import WindowAggregate
from cityscreen.city import BBox, load_city
from cityscreen.events import RawEvent
from cityscreen.settings import Settings
from services.generator.fixtures import open_write, read_events
from tests.support.reference_aggregates import reference_window_aggregates

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "shenzhen-10min.jsonl.gz"
EXPECTED = FIXTURE.with_name("shenzhen-10min.expected.json.gz")
DAY_S = 86_400


def skew_for_fixture(first_ts_ms: int) -> int:
    """max_event_skew_s for a test's ingest worker only: the fixture's recorded times are in the past,
    and `replay --shift-days 0` keeps them, so the committed events and windows are aggregated."""
    return int(time.time() - first_ts_ms / 1000) + DAY_S


REGENERATE = (
    ".venv/bin/python -m tests.support.fixture_expected fixtures/shenzhen-10min.jsonl.gz "
    "fixtures/shenzhen-10min.expected.json.gz"
)
CELL_DEPTH = 5  # document > windows > window > cells > resolution: each cell's statistics on one line
_WINDOWS = msgspec.json.Decoder(list[WindowAggregate])


class DefaultSettings(Settings):
    """`Settings` at its defaults, whatever CITY_* variables the environment holds."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def inside_city(events: Iterable[RawEvent], bbox: BBox) -> list[RawEvent]:
    """The events whose position is inside the city bbox (the others are dead-lettered at ingest)."""
    return [e for e in events if bbox.contains(e.lat, e.lng)]


def expected_document(fixture: Path, settings: Settings) -> str:
    """The expected file's text: JSON with sorted keys, one line per cell of each window and resolution."""
    raw = list(read_events(fixture))
    accepted = inside_city(raw, load_city(settings.generator.city_file).bbox)
    w = settings.window
    document = {
        "fixture": fixture.name,
        "raw_events": len(raw),
        "out_of_city_events": len(raw) - len(accepted),
        "settings": {
            "window_s": w.window_s,
            "grace_s": w.grace_s,
            "h3_res": w.h3_res,
            "rollup_res": w.rollup_res,
            "flow_res": w.flow_res,
            "trip_ttl_s": w.trip_ttl_s,
            "presence_ttl_s": w.presence_ttl_s,
            "partitions": settings.kafka.partitions,
            "pseudonym_rotation_s": settings.pseudonym_rotation_s,
            "dp_enabled": settings.privacy.dp_enabled,
        },
        "regenerate": REGENERATE,
        "windows": msgspec.to_builtins(reference_window_aggregates(accepted, settings)),
    }
    return _dumps(document, CELL_DEPTH) + "\n"


def _dumps(obj: Any, depth: int, indent: str = "") -> str:
    """JSON with sorted keys, indented down to `depth` levels and compact below (one cell per line)."""
    if depth == 0 or not isinstance(obj, dict | list) or not obj:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"))
    inner = indent + " "
    if isinstance(obj, dict):
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(obj[k], depth - 1, inner)}" for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    items = [inner + _dumps(v, depth - 1, inner) for v in obj]
    return "[\n" + ",\n".join(items) + f"\n{indent}]"


def write_expected(fixture: Path, out: Path, settings: Settings) -> None:
    with open_write(out) as f:  # gzip with mtime 0: the same aggregates give the same bytes
        f.write(expected_document(fixture, settings).encode())


def read_expected_text(path: Path = EXPECTED) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read()


def load_expected(path: Path = EXPECTED) -> list[WindowAggregate]:
    """The committed expected aggregates, as `WindowAggregate`s."""
    return _WINDOWS.decode(msgspec.json.encode(json.loads(read_expected_text(path))["windows"]))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {REGENERATE}", file=sys.stderr)
        return 2
    write_expected(Path(argv[0]), Path(argv[1]), DefaultSettings())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
