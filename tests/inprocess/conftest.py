"""Shared in-process fixtures: a throwaway redis-server per test module (no stack, no Kafka)."""

from collections.abc import Iterator

import pytest

from services.gateway.testing import redis_server


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url
