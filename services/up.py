"""`cityscreen up`: the local stack, both workers, the gateway and the generator, supervised as one; prints
the live map's URL and a short status line until Ctrl-C."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import typer

from cityscreen import store_keys
from cityscreen.errors import CityScreenError
from cityscreen.settings import Settings, to_env
from services.stack.local import LocalStack, logs_dir, running_stack, start_stack
from services.stack.local_secrets import with_local_secrets
from services.stack.ports import PortRequest, resolve_ports
from services.stack.procs import ManagedProcess, sigterm_raises_interrupt, spawn

READY_PATH = "/api/v1/health/ready"
GATEWAY_READY_TIMEOUT_S = 60.0
STATUS_EVERY_S = 5.0
CHILD_STOP_TIMEOUT_S = 15.0
# The default run is real time on the wall clock, so events that external producers stamp "now" fall
# in open windows too. It starts a window and its grace in the past (that backlog is sent at once, so
# the first window closes within seconds), and warm: every person reports once in the first window, so
# people present (a stock) show the whole simulated city from the first frame.
# At most this many persons unless CITY_GENERATOR__PERSONS says otherwise (one operator's subscribers,
# about 6% of Shenzhen's census): what one 2-core box runs beside Kafka, both workers and the gateway
# with its first frame within 30 s; at 1.75 million the warm start took about 50 s to reach the screen
RUN_PERSONS_CAP = 1_000_000
LEAD_S = 5  # past the first window's end plus grace, so its watermark has passed when the backlog is in


@dataclass(frozen=True)
class UpOptions:
    fresh: bool = False
    speed: float | None = None  # accelerated simulated time instead of real time
    rate: float | None = None
    generate: bool = True
    now: bool = True  # the now layer's worker (CITY_NOW__ENABLED)
    start_ms: int | None = None  # event time of the generator's start; None: now
    persons: int | None = None  # None: the generator's default (the census x the city's operator share)
    warm_s: float = 0.0  # every person reports once within this long of the start


def cityscreen_argv(*args: str) -> list[str]:
    """The same interpreter and code as this process, whatever PATH holds."""
    return [sys.executable, "-m", "services.cli", *args]


def child_commands(options: UpOptions) -> dict[str, list[str]]:
    """Name -> argv, in start order: consumers before the producer, so nothing waits on a rebalance."""
    commands = {
        "ingest": cityscreen_argv("worker", "--role", "ingest"),
        "aggregate": cityscreen_argv("worker", "--role", "aggregate"),
        "now": cityscreen_argv("worker", "--role", "now"),
        "api": cityscreen_argv("api"),
    }
    if not options.now:
        del commands["now"]
    if options.generate:
        if options.speed is not None and options.rate is not None:
            raise CityScreenError("choose one of --speed X (accelerated time) or --rate EPS (load test)")
        # The generator logs to a file: a progress bar there is noise.
        generate = cityscreen_argv("generate", "--no-progress")
        if options.persons is not None:
            generate += ["--persons", str(options.persons)]
        if options.rate is not None:
            generate += ["--rate", f"{options.rate:g}"]
        else:
            generate += ["--realtime"] if options.speed is None else ["--speed", f"{options.speed:g}"]
            if options.start_ms is not None:
                generate += ["--start", iso_utc(options.start_ms)]
            if options.warm_s > 0:
                generate += ["--warm-s", f"{options.warm_s:g}"]
        commands["generator"] = generate
    return commands


def iso_utc(ts_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat()


def resume_start_ms(newest_window_ms: int | None, settings: Settings, now_ms: int) -> int | None:
    """Where an accelerated run resumes its simulated clock, or None to start at now.

    A --speed run runs ahead of the wall clock. Restarted at "now" over the same topics, its events
    would all fall into windows the workers already closed and be dead-lettered as late until it caught
    up. So it resumes two windows plus the grace past the newest released window instead.
    """
    if newest_window_ms is None:
        return None
    resume = after_released_ms(newest_window_ms, settings)
    return resume if resume > now_ms else None


def after_released_ms(newest_window_ms: int, settings: Settings) -> int:
    """The earliest start after a restart that cannot fall in a window the workers may have closed:
    two windows plus the grace past the newest released one."""
    w = settings.window
    return newest_window_ms + (2 * w.window_s + w.grace_s) * 1000


def realtime_start_ms(newest_window_ms: int | None, settings: Settings, now_ms: int) -> int:
    """Where a real-time run starts: a window plus its grace before now, on a window boundary, so its
    first window closes as soon as the backlog is sent; after a restart, never inside a window the
    workers may have closed (the generator then waits for the clock to reach its start)."""
    w = settings.window
    window_ms = w.window_s * 1000
    start = (now_ms - window_ms - (w.grace_s + LEAD_S) * 1000) // window_ms * window_ms
    if newest_window_ms is not None:
        start = max(start, after_released_ms(newest_window_ms, settings))
    return start


def run_persons(settings: Settings) -> int:
    """The population `up` simulates: the generator's setting, else the census capped for this box."""
    if settings.generator.persons is not None:
        return settings.generator.persons
    from cityscreen.city import load_city
    from services.generator.columnar.engine import census

    return min(census(load_city(settings.generator.city_file)), RUN_PERSONS_CAP)


def newest_window_ms(redis_url: str, resolution: int) -> int | None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        newest = client.zrange(store_keys.frame_index_key(resolution), -1, -1, withscores=True)
    finally:
        client.close()
    return int(newest[0][1]) if newest else None


def with_gateway_port(settings: Settings) -> Settings:
    """Settings whose gateway port is a real one (0 picks a free port; a taken port is a clear error),
    and whose allowed origins include the page the URL points at, so the map's websocket is accepted."""
    gw = settings.gateway
    port = resolve_ports([PortRequest("gateway", gw.port, "CITY_GATEWAY__PORT")], gw.host)["gateway"]
    origins = list(gw.allowed_origins)
    for origin in (f"http://{gw.host}:{port}", f"http://localhost:{port}"):
        if origin not in origins:
            origins.append(origin)
    return settings.model_copy(
        update={"gateway": gw.model_copy(update={"port": port, "allowed_origins": origins})}
    )


def live_map_url(settings: Settings) -> str:
    gw = settings.gateway
    token = gw.operator_tokens[0] if gw.operator_tokens else ""
    return f"http://{gw.host}:{gw.port}/#token={token}"


def format_status(stats: Mapping[str, str], frames_kept: Mapping[int, int]) -> str:
    """One line: the workers' counters as they name them, then released frames kept per resolution."""
    counters = " ".join(f"{k}={v}" for k, v in sorted(stats.items())) or "no counters yet"
    kept = " ".join(f"r{res}={n}" for res, n in sorted(frames_kept.items(), reverse=True))
    return f"[status] {counters} | frames kept: {kept}"


def read_status(redis_url: str, resolutions: list[int]) -> str:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
    try:
        stats = {str(k): str(v) for k, v in client.hgetall(store_keys.STATS_KEY).items()}
        kept = {res: int(client.zcard(store_keys.frame_index_key(res))) for res in resolutions}
    finally:
        client.close()
    return format_status(stats, kept)


def gateway_ready(settings: Settings) -> bool:
    import httpx

    gw = settings.gateway
    return httpx.get(f"http://{gw.host}:{gw.port}{READY_PATH}", timeout=2).status_code == 200


def start_children(settings: Settings, options: UpOptions, log_dir: Path) -> list[ManagedProcess]:
    env = {**os.environ, **to_env(settings)}
    children: list[ManagedProcess] = []
    try:
        for name, argv in child_commands(options).items():
            children.append(spawn(name, argv, log_dir=log_dir, env=env))
    except BaseException:
        stop_all(children)
        raise
    return children


def stop_all(children: list[ManagedProcess]) -> None:
    # The producer first, the gateway last: workers can commit what they consumed.
    for child in reversed(children):
        child.stop(CHILD_STOP_TIMEOUT_S)


def supervise(stack: LocalStack, children: list[ManagedProcess], settings: Settings) -> None:
    """Print the status every few seconds until Ctrl-C; a child or stack process that dies ends `up`."""
    next_status = time.monotonic() + STATUS_EVERY_S
    watched = list(children)
    while True:
        dead = next((c for c in watched if not c.is_alive()), None) or stack.dead_process()
        if dead is not None and dead.name == "generator" and dead.returncode == 0:
            # A --speed run ends after its simulated span; the screen keeps showing what was released.
            print("generator finished its run; the map keeps its last frames", flush=True)
            watched.remove(dead)
            continue
        if dead is not None:
            raise CityScreenError(dead.failure_message("stopped unexpectedly"))
        if time.monotonic() >= next_status:
            next_status += STATUS_EVERY_S
            try:
                print(read_status(settings.redis.url, settings.window.resolutions), flush=True)
            except Exception as exc:  # a slow Redis must not stop the screen
                print(f"[status] unavailable: {exc}", flush=True)
        time.sleep(0.25)


def generator_start(options: UpOptions, settings: Settings, newest: int | None) -> UpOptions:
    """Where the generator starts (`newest`: the newest released window, None on a fresh run), how
    many persons it simulates, and whether it starts warm."""
    now_ms = int(time.time() * 1000)
    options = replace(options, persons=options.persons or run_persons(settings))
    if options.speed is not None:
        start_ms = resume_start_ms(newest, settings, now_ms)
        if start_ms is not None:
            print(f"resuming simulated time at {iso_utc(start_ms)} (after the last frame)", flush=True)
        return replace(options, start_ms=start_ms)
    start_ms = realtime_start_ms(newest, settings, now_ms)
    print(f"simulating {options.persons:,} persons in real time from {iso_utc(start_ms)}, warm", flush=True)
    return replace(options, start_ms=start_ms, warm_s=float(settings.window.window_s))


def with_data_since(settings: Settings, options: UpOptions, newest_window_ms: int | None) -> Settings:
    """On a fresh real-time run nothing precedes the generator's start, so the first quarter hour of
    spend and transit covers only its end: the gateway tells the map where the data begins. After a
    restart a window may hold data from before it too, so nothing is claimed."""
    if newest_window_ms is not None or options.start_ms is None or options.speed is not None:
        return settings
    gw = settings.gateway.model_copy(update={"data_since_ms": options.start_ms})
    return settings.model_copy(update={"gateway": gw})


def run_up(settings: Settings, options: UpOptions) -> None:
    settings = with_local_secrets(settings)  # never the public development defaults (issue 20)
    with sigterm_raises_interrupt():
        stack = None if options.fresh else running_stack(settings)
        if stack is None:
            print("starting Kafka and Redis...", flush=True)
            stack = start_stack(settings, fresh=options.fresh, attached=True)
        else:
            print(f"using the running stack at {stack.bootstrap} / {stack.redis_url}", flush=True)
        children: list[ManagedProcess] = []
        try:
            live = with_gateway_port(stack.settings)
            if options.generate and options.rate is None and options.start_ms is None:
                newest = newest_window_ms(live.redis.url, live.window.h3_res)
                options = generator_start(options, live, newest)
                live = with_data_since(live, options, newest)
            log_dir = logs_dir(stack.data_dir)
            children = start_children(live, options, log_dir)
            api = next(c for c in children if c.name == "api")
            api.wait_ready(
                lambda: gateway_ready(live), timeout_s=GATEWAY_READY_TIMEOUT_S, what=f"serving {READY_PATH}"
            )
            print(f"Live map: {live_map_url(live)}", flush=True)
            print(f"logs: {log_dir}/<name>.log; Ctrl-C stops everything", flush=True)
            supervise(stack, children, live)
        except KeyboardInterrupt:
            print("stopping...", flush=True)
        finally:
            stop_all(children)
            stack.stop()


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        ctx: typer.Context,
        fresh: bool = typer.Option(False, "--fresh", help="wipe Kafka and Redis data first"),
        speed: float | None = typer.Option(
            None, "--speed", min=0.0, help="generator: simulated seconds per wall second [real time]"
        ),
        rate: float | None = typer.Option(
            None, "--rate", min=0.0, help="generator load test: events per second"
        ),
        generate: bool = typer.Option(True, "--generate/--no-generate", help="run the synthetic generator"),
    ) -> None:
        """Start everything (Kafka, Redis, workers, gateway, generator) and print the live map URL."""
        options = UpOptions(fresh=fresh, speed=speed, rate=rate, generate=generate, now=ctx.obj.now.enabled)
        run_up(ctx.obj, options)
