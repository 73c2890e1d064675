"""The stack a benchmark runs on: a fresh local stack in its own data dir on free ports (default), stopped
and deleted at the end, or the running local stack when asked."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator

from cityscreen.errors import CityScreenError
from cityscreen.settings import Settings
from services.stack.local import default_cache_dir, running_stack, start_stack


@contextlib.contextmanager
def bench_stack(
    settings: Settings, name: str, use_running: bool, say: Callable[[str], None]
) -> Iterator[Settings]:
    if use_running:
        stack = running_stack(settings)
        if stack is None:
            raise CityScreenError(
                "no running local stack: start one (`cityscreen stack start`) or drop --use-running"
            )
        say(f"using the running stack: Kafka {stack.bootstrap}, Redis {stack.redis_url}")
        yield stack.settings
        return
    data_dir = (settings.data_dir / "bench" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    fresh = settings.model_copy(
        update={
            "data_dir": data_dir,
            "kafka": settings.kafka.model_copy(update={"port": 0, "controller_port": 0}),
            "redis": settings.redis.model_copy(update={"port": 0}),
        }
    )
    say(f"starting a fresh stack in {data_dir} (free ports) ...")
    t0 = time.monotonic()
    stack = start_stack(fresh, fresh=True, cache_dir=default_cache_dir(settings))
    ok = False
    try:
        say(f"stack up in {time.monotonic() - t0:.1f} s: Kafka {stack.bootstrap}, Redis {stack.redis_url}")
        yield stack.settings
        ok = True
    finally:
        stack.stop()
        if ok:
            shutil.rmtree(data_dir, ignore_errors=True)
            say("stack stopped, its data removed")
        else:
            say(f"stack stopped; its data and logs are kept in {data_dir}")
