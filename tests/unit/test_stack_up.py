"""The pure parts of `cityscreen up`: child commands, gateway port and origins, the URL, the status."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from cityscreen.errors import CityScreenError
from cityscreen.settings import Settings
from services.up import (
    RUN_PERSONS_CAP,
    UpOptions,
    child_commands,
    format_status,
    iso_utc,
    live_map_url,
    realtime_start_ms,
    resume_start_ms,
    run_persons,
    with_data_since,
    with_gateway_port,
)


def make_settings(**gateway: object) -> Settings:
    base = Settings()
    return base.model_copy(update={"gateway": base.gateway.model_copy(update=gateway)})


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_children_are_the_three_workers_the_gateway_and_the_generator() -> None:
    commands = child_commands(UpOptions())
    assert list(commands) == ["ingest", "aggregate", "now", "api", "generator"]
    assert commands["ingest"][-3:] == ["worker", "--role", "ingest"]
    assert commands["aggregate"][-3:] == ["worker", "--role", "aggregate"]
    assert commands["now"][-3:] == ["worker", "--role", "now"]
    assert "now" not in child_commands(UpOptions(now=False))  # CITY_NOW__ENABLED=false
    assert commands["api"][-1] == "api"


def test_the_generator_runs_in_real_time_by_default() -> None:
    generate = child_commands(UpOptions())["generator"]
    assert "--realtime" in generate
    assert {"--speed", "--rate", "--warm-s"} & set(generate) == set()


def test_a_real_time_run_starts_warm_a_window_and_its_grace_in_the_past() -> None:
    settings = Settings()  # 60 s windows, 30 s grace
    now_ms = 1_800_000_012_345
    start = realtime_start_ms(None, settings, now_ms)
    assert start % 60_000 == 0
    # the first window ends, with its grace, before now: it closes once the backlog is sent
    assert start + 60_000 + 30_000 <= now_ms < start + 2 * 60_000 + 30_000 + 5_000
    # a restart never starts inside a window the workers may have closed: it waits for the clock
    just_released = now_ms - 60_000
    assert realtime_start_ms(just_released, settings, now_ms) == just_released + 150_000
    argv = child_commands(UpOptions(start_ms=start, warm_s=60.0, persons=1000))["generator"]
    assert argv[argv.index("--start") + 1] == iso_utc(start)
    assert argv[argv.index("--warm-s") + 1] == "60"
    assert argv[argv.index("--persons") + 1] == "1000"
    assert "--realtime" in argv


def test_a_fresh_real_time_run_tells_the_gateway_where_its_data_begins() -> None:
    settings = Settings()
    start = 1_800_000_000_000
    assert with_data_since(settings, UpOptions(start_ms=start), None).gateway.data_since_ms == start
    # after a restart a window may hold data from before it; an accelerated run has no wall-clock start
    restart = (UpOptions(start_ms=start), start - 60_000)
    accelerated = (UpOptions(start_ms=start, speed=10.0), None)
    for options, newest in (restart, accelerated):
        assert with_data_since(settings, options, newest).gateway.data_since_ms is None
    assert with_data_since(settings, UpOptions(), None).gateway.data_since_ms is None


def test_the_default_run_simulates_the_census_capped_for_this_box() -> None:
    assert run_persons(Settings()) == RUN_PERSONS_CAP  # Shenzhen's census is 17.5 million
    assert run_persons(Settings(generator={"persons": 20_000})) == 20_000


@pytest.mark.parametrize(
    ("options", "flag", "value"),
    [(UpOptions(speed=144), "--speed", "144"), (UpOptions(rate=2500.5), "--rate", "2500.5")],
)
def test_generator_flags_pass_through(options: UpOptions, flag: str, value: str) -> None:
    generate = child_commands(options)["generator"]
    assert generate[generate.index(flag) + 1] == value
    assert {"--speed", "--rate"} - {flag} & set(generate) == set()


def test_speed_and_rate_together_are_refused() -> None:
    with pytest.raises(CityScreenError, match=r"--speed X .* or --rate EPS"):
        child_commands(UpOptions(speed=10, rate=100))


def test_no_generate_leaves_the_generator_out() -> None:
    assert "generator" not in child_commands(UpOptions(generate=False))


def test_port_zero_gets_a_free_port_and_its_origins() -> None:
    live = with_gateway_port(make_settings(port=0))
    assert live.gateway.port > 0
    assert f"http://127.0.0.1:{live.gateway.port}" in live.gateway.allowed_origins
    assert f"http://localhost:{live.gateway.port}" in live.gateway.allowed_origins
    assert set(Settings().gateway.allowed_origins) <= set(live.gateway.allowed_origins)


def test_a_taken_gateway_port_names_the_setting(listening_port: int) -> None:
    with pytest.raises(CityScreenError, match=f"gateway port {listening_port} .*CITY_GATEWAY__PORT=0"):
        with_gateway_port(make_settings(port=listening_port))


def test_the_url_carries_the_first_operator_token() -> None:
    settings = make_settings(port=8123, operator_tokens=["tok-a", "tok-b"])
    assert live_map_url(settings) == "http://127.0.0.1:8123/#token=tok-a"


def test_status_line_shows_counters_and_frames_kept() -> None:
    line = format_status({"windows_published": "3", "events_in": "1200"}, {6: 3, 8: 2, 7: 3})
    assert line == "[status] events_in=1200 windows_published=3 | frames kept: r8=2 r7=3 r6=3"
    assert "no counters yet" in format_status({}, {8: 0})


def test_an_accelerated_restart_resumes_after_the_newest_frame() -> None:
    """Restarted at "now", a --speed run that had run ahead would only produce late events."""
    settings = Settings()  # 60 s windows, 30 s grace
    now_ms = 1_800_000_000_000
    ahead = now_ms + 3_600_000  # the last run got an hour ahead of the wall clock
    resume = resume_start_ms(ahead, settings, now_ms)
    assert resume == ahead + 150_000
    assert resume_start_ms(None, settings, now_ms) is None  # nothing released yet: start now
    assert resume_start_ms(now_ms - 3_600_000, settings, now_ms) is None  # behind the clock: now
    argv = child_commands(UpOptions(start_ms=resume))["generator"]
    assert argv[argv.index("--start") + 1] == iso_utc(resume)
