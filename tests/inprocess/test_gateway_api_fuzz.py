"""Property-based fuzzing of the REST API from its own OpenAPI document (schemathesis), in-process.

Every operation gets generated requests, valid and invalid, with an operator token; none may end in a
server error or a content type its document does not declare. Bounded and derandomized: the same examples
every run, a few seconds in all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from cityscreen.settings import load_settings
from services.gateway.app import create_app
from services.gateway.testing import make_frame
from tests.support.gateway_support import write_frame

TOKEN = "fuzz-operator-token"
EXAMPLES_PER_OPERATION = 25
# Every documented response, 422s included, must match its schema.
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    gateway = {"operator_tokens": [TOKEN], "web_dist": tmp_path_factory.mktemp("web")}
    app_settings = load_settings(redis={"url": redis_url}, gateway=gateway)
    with TestClient(create_app(app_settings)) as client:
        client.portal.call(_seed, redis_url)  # type: ignore[union-attr]
        yield client


async def _seed(redis_url: str) -> None:
    """One released frame, so that the frame routes have something to find and encode."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await write_frame(client, make_frame(window_start_ms=60_000), history_s=3600)
    await client.aclose()


Operation = APIOperation[Any, Any, Any, Any]


def operations(client: TestClient) -> list[Operation]:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    found: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"an operation schemathesis cannot read: {result.err()!r}"
        found.append(result.ok())
    return found


def test_the_openapi_document_lists_the_operations(gateway: TestClient) -> None:
    paths = {op.path for op in operations(gateway)}
    assert {"/api/v1/frames/latest", "/api/v1/cells/{cell}/history", "/api/v1/totals"} <= paths


def test_no_generated_request_gets_a_server_error(gateway: TestClient) -> None:
    failures: list[str] = []
    for operation in operations(gateway):

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Operation]) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            kwargs.setdefault("headers", {})["Authorization"] = f"Bearer {TOKEN}"
            response = gateway.request(**kwargs)
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert failures == [], "\n\n".join(failures)
