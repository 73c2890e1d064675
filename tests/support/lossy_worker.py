"""`cityscreen worker ...` with faust-streaming losing chosen records the way it does around rebalances.

Usage: LOSSY_DROP="topic:partition:offset,..." python -m tests.support.lossy_worker worker --role aggregate

Each listed record is fetched by the Kafka client (its position moves past it) and then never handed to
the stream, once: the failure streams/stall.py guards against. Only tests use this.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from faust.transport import consumer as faust_consumer

from services.cli import main

_DROP = {
    (topic, int(partition), int(offset))
    for topic, partition, offset in (item.split(":") for item in os.environ["LOSSY_DROP"].split(","))
}
_getmany = faust_consumer.Consumer.getmany


async def _lossy_getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    async for tp, message in _getmany(self, timeout):
        key = (tp.topic, tp.partition, message.offset)
        if key in _DROP:
            _DROP.discard(key)
            print(f"lossy: dropped {key[0]}[{key[1]}] offset {key[2]} after the fetch", flush=True)
            continue
        yield tp, message


faust_consumer.Consumer.getmany = _lossy_getmany  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv[0] = "cityscreen"
    main()
