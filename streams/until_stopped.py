"""Run a worker's consumer loop until SIGTERM or SIGINT (the ingest edge's and the now worker's)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run_until_stopped(loop_body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """`loop_body(stop)` in a fresh event loop; SIGTERM and SIGINT set `stop`, and the body finishes
    what it holds before it returns."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await loop_body(stop)

    asyncio.run(main())
