"""`cityscreen stack fetch|start|stop|status|env`: the local Kafka (KRaft) + redis-server for development."""

from __future__ import annotations

import time

import typer

from cityscreen.errors import CityScreenError
from cityscreen.events import ALL_TOPICS
from cityscreen.settings import Settings
from services.stack.kafka import create_project_topics, fetch_jars, is_fetched
from services.stack.local import (
    LocalStack,
    default_cache_dir,
    logs_dir,
    running_stack,
    start_stack,
    stop_recorded_stack,
)
from services.stack.procs import sigterm_raises_interrupt
from services.stack.state import read_state


def stack_env_lines(stack: LocalStack) -> list[str]:
    """Shell lines that point other `cityscreen` commands at this stack."""
    lines = [
        f"export CITY_DATA_DIR={stack.data_dir}",
        f"export CITY_KAFKA__BOOTSTRAP={stack.bootstrap}",
        f"export CITY_REDIS__URL={stack.redis_url}",
    ]
    if stack.state.replication_factor > 1:  # workers must create their own topics as replicated
        lines.append(f"export CITY_KAFKA__REPLICATION_FACTOR={stack.state.replication_factor}")
    return lines


def describe(stack: LocalStack) -> str:
    s = stack.state
    kafka_pids = ", ".join(str(pid) for name, pid in s.pids().items() if name.startswith("kafka"))
    replicas = f", {s.replication_factor} replicas" if s.replication_factor > 1 else ""
    return (
        f"Kafka  {s.bootstrap} (controller :{s.kafka_controller_port}, pid {kafka_pids}{replicas})\n"
        f"Redis  {s.redis_url} (pid {s.redis_pid})\n"
        f"logs   {logs_dir(stack.data_dir)}"
    )


def supervise(stack: LocalStack) -> None:
    """Block until Ctrl-C / SIGTERM, or fail when a child exits on its own."""
    while True:
        dead = stack.dead_process()
        if dead is not None:
            raise CityScreenError(dead.failure_message("stopped unexpectedly"))
        time.sleep(0.5)


stack_app = typer.Typer(help="The local Kafka 3.9 (KRaft) + redis-server, on loopback ports.")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")


@stack_app.command("fetch")
def fetch(ctx: typer.Context) -> None:
    """Download the Kafka jars once (Maven); later starts reuse them."""
    settings: Settings = ctx.obj
    cache = default_cache_dir(settings)
    already = is_fetched(cache, settings.kafka.version)
    libs = fetch_jars(cache, settings.kafka.version)
    print(f"Kafka {settings.kafka.version} jars {'already in' if already else 'fetched to'} {libs}")


@stack_app.command("start")
def start(
    ctx: typer.Context,
    fresh: bool = typer.Option(False, "--fresh", help="wipe Kafka and Redis data first (not the jars)"),
    foreground: bool = typer.Option(
        False, "--foreground", help="stay attached; Ctrl-C stops the stack (default: run in background)"
    ),
    brokers: int = typer.Option(
        0, "--brokers", min=0, max=5, help="KRaft brokers (3: topics replicated 3x, 2 in sync); 0 = setting"
    ),
) -> None:
    """Start Kafka and Redis, create every topic, record them in <data_dir>/stack.json."""
    settings: Settings = ctx.obj
    if brokers:
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"brokers": brokers})}
        )
    with sigterm_raises_interrupt():
        stack = start_stack(settings, fresh=fresh, attached=foreground)
        print(describe(stack))
        print("\n".join(stack_env_lines(stack)))
        if not foreground:
            print("running in the background: `cityscreen stack stop` stops it")
            return
        print("Ctrl-C stops the stack")
        try:
            supervise(stack)
        except KeyboardInterrupt:
            print("stopping the stack")
        finally:
            stack.stop()


@stack_app.command("stop")
def stop(ctx: typer.Context) -> None:
    """Stop the stack recorded in <data_dir>/stack.json."""
    settings: Settings = ctx.obj
    stopped = stop_recorded_stack(settings.data_dir.resolve())
    if stopped:
        print("stopped " + ", ".join(f"{name} (pid {pid})" for name, pid in stopped.items()))
    else:
        print("no local stack was running")


@stack_app.command("status")
def status(ctx: typer.Context) -> None:
    """Show the running stack (exit code 1 when none runs)."""
    settings: Settings = ctx.obj
    stack = running_stack(settings)
    if stack is None:
        state = read_state(settings.data_dir.resolve())
        detail = f" ({state.data_dir}/stack.json lists dead processes)" if state else ""
        print(f"no local stack is running{detail}: `cityscreen stack start`")
        raise typer.Exit(1)
    print(describe(stack))


@stack_app.command("topics")
def topics(
    ctx: typer.Context,
    timeout_s: float = typer.Option(120.0, "--timeout-s", help="how long to wait for Kafka"),
) -> None:
    """Create every project topic on CITY_KAFKA__BOOTSTRAP (for a Kafka not started by `stack start`)."""
    settings: Settings = ctx.obj
    k = settings.kafka
    create_project_topics(k.bootstrap, ALL_TOPICS, k.partitions, timeout_s, k.replication_factor)
    print(f"{len(ALL_TOPICS)} topics ready on {settings.kafka.bootstrap}")


@stack_app.command("env")
def env(ctx: typer.Context) -> None:
    """Print `export` lines for the running stack: eval "$(cityscreen stack env)"."""
    settings: Settings = ctx.obj
    stack = running_stack(settings)
    if stack is None:
        raise CityScreenError("no local stack is running: `cityscreen stack start` first")
    print("\n".join(stack_env_lines(stack)))
