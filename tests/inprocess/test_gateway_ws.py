"""/ws/live through Starlette's TestClient: refusals before accept, snapshot, live frames, limits."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from cityscreen import store_keys
from cityscreen.frames import Frame
from cityscreen.settings import load_settings
from services.gateway.app import create_app
from services.gateway.testing import make_frame
from tests.support.waiting import wait_for

TOKEN = "ws-operator-token"
PROTOCOLS = ["cityscreen.v1", f"bearer.{TOKEN}"]
SUBSCRIBE = {"type": "subscribe", "res": 7, "layers": ["population", "flows"], "breakdown": None}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def publish(redis_url: str, store: Callable[[Frame], None]) -> Iterator[Callable[[Frame], None]]:
    sync = redis.Redis.from_url(redis_url)

    def put(frame: Frame) -> None:
        # the hub subscribes in the background at startup: wait for it, or the notify is lost
        wait_for(
            lambda: sync.pubsub_numsub(store_keys.NOTIFY_CHANNEL)[0][1] >= 1,
            what="the hub to subscribe",
            interval_s=0.01,
        )
        store(frame)

    yield put
    sync.close()


@pytest.fixture
def client(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    gateway: dict[str, Any] = {"operator_tokens": [TOKEN], "web_dist": tmp_path, "max_message_bytes": 512}
    gateway.update(getattr(request, "param", {}))
    settings = load_settings(redis={"url": redis_url}, gateway=gateway)
    with TestClient(create_app(settings)) as c:
        yield c


def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.receive_text())
    return message


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({}, 401),
        ({"subprotocols": ["cityscreen.v1", "bearer.wrong"]}, 401),
        ({"subprotocols": PROTOCOLS, "headers": {"origin": "http://evil.example"}}, 403),
    ],
)
def test_refused_before_accept(client: TestClient, kwargs: dict[str, Any], status: int) -> None:
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect("/ws/live", **kwargs):
        pass
    assert refused.value.status_code == status
    assert "cityscreen_ws_refused_total" in client.get("/metrics").text


def test_query_token_and_allowed_origin_are_accepted(
    client: TestClient, publish: Callable[[Frame], None]
) -> None:
    with client.websocket_connect(
        f"/ws/live?token={TOKEN}", headers={"origin": "http://localhost:8000"}
    ) as ws:
        ws.send_json({"type": "ping"})
        assert receive(ws)["type"] == "pong"


def test_subscribe_waiting_then_live_frame_then_snapshot(
    client: TestClient, publish: Callable[[Frame], None]
) -> None:
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        assert ws.accepted_subprotocol == "cityscreen.v1"
        ws.send_json(SUBSCRIBE)
        assert receive(ws) == {"type": "waiting", "res": 7}
        publish(make_frame(window_start_ms=60_000))
        frame = receive(ws)
        assert frame["type"] == "frame" and frame["window_start_ms"] == 60_000
        assert all("|" not in k and k.startswith("population.") for s in frame["cells"].values() for k in s)
        assert len(frame["flows"]) == 1
    # a reconnect resumes with the latest frame at once
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        ws.send_json({**SUBSCRIBE, "breakdown": "gender"})
        snapshot = receive(ws)
        assert snapshot["type"] == "snapshot" and snapshot["window_start_ms"] == 60_000
        assert any("population.persons|gender=F" in s for s in snapshot["cells"].values())


def test_bad_messages_get_errors_and_keep_the_socket(client: TestClient) -> None:
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        for bad, match in [
            ("not json", "JSON"),
            ({"type": "dance"}, "unknown message"),
            ({**SUBSCRIBE, "res": 3}, "not released"),
        ]:
            if isinstance(bad, str):
                ws.send_text(bad)
            else:
                ws.send_json(bad)
            reply = receive(ws)
            assert reply["type"] == "error" and match in reply["message"]
        ws.send_json({"type": "ping"})
        assert receive(ws)["type"] == "pong"


def test_oversize_message_closes_1009(client: TestClient) -> None:
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        ws.send_text("x" * 513)
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009


@pytest.mark.parametrize("client", [{"heartbeat_s": 0.05}], indirect=True)
def test_idle_socket_gets_heartbeats(client: TestClient) -> None:
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        assert receive(ws)["type"] == "heartbeat"


def ws_clients_gauge(client: TestClient) -> float:
    line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith("cityscreen_ws_clients "))
    return float(line.split()[1])


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "subscribe", "res": 1e400}',  # the outside tester's: inf, and int(inf) raised
        '{"type": "subscribe", "res": -1e400}',
        '{"type": "subscribe", "res": NaN}',
        '{"type": "subscribe", "res": 7.5}',
        '{"type": "subscribe", "res": "7"}',
        '{"type": "subscribe", "res": true}',
        '{"type": "subscribe", "res": 7, "layers": [[1]]}',
        '{"type": "subscribe", "res": 7, "bbox": ["w", "s", "e", "n"]}',
        '{"type": "subscribe", "res": 7, "breakdown": ["gender"]}',
    ],
)
def test_a_bad_subscribe_gets_an_error_and_leaks_no_client(client: TestClient, text: str) -> None:
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        ws.send_text(text)
        assert receive(ws)["type"] == "error"
        ws.send_json({"type": "ping"})
        assert receive(ws)["type"] == "pong"  # the socket is still served
    assert ws_clients_gauge(client) == 0


@pytest.mark.parametrize("client", [{"max_message_bytes": 16_384}], indirect=True)
def test_deeply_nested_json_gets_an_error(client: TestClient) -> None:
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        ws.send_text("[" * 5000 + "]" * 5000)  # RecursionError in json.loads
        assert receive(ws)["type"] == "error"
    assert ws_clients_gauge(client) == 0


def test_a_failing_handler_closes_1011_and_cleans_up(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a handler raises, the socket ends with a close code and the client is forgotten."""

    async def broken(*args: object) -> str:
        raise OverflowError("a bug the handler did not foresee")

    monkeypatch.setattr("services.gateway.live.handle_message", broken)
    for _ in range(3):
        with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
            ws.send_json(SUBSCRIBE)
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
        assert closed.value.code == 1011
    assert ws_clients_gauge(client) == 0
    assert len(client.app.state.hub.clients) == 0  # type: ignore[attr-defined]
