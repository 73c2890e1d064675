"""Shared in-process fixtures: a throwaway redis-server per test module (no stack, no Kafka), and frames
written to it as the release sink writes them."""

import asyncio
from collections.abc import Callable, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from cityscreen.frames import Frame
from services.gateway.testing import redis_server
from tests.support.gateway_support import write_frame


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def store(redis_url: str) -> Iterator[Callable[[Frame], None]]:
    """Write frames the way the release sink does; the database starts empty for every test."""
    sync = redis.Redis.from_url(redis_url)
    sync.flushdb()
    sync.close()

    def put(frame: Frame) -> None:
        async def go() -> None:
            client = aioredis.Redis.from_url(redis_url)
            await write_frame(client, frame, history_s=3600)
            await client.aclose()

        asyncio.run(go())

    yield put
