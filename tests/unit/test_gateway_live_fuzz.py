"""Property-based fuzzing of the websocket protocol: `handle_message` answers any JSON with a reply.

Any JSON value, and subscribe messages whose fields are any JSON value (numbers out of every range
included), get a pong, an error, `waiting` or a snapshot: never an exception, which would drop the
socket. Bounded and derandomized: the same examples every run.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityscreen.settings import Settings
from services.gateway.conflate import LatestQueue
from services.gateway.hub import Client, Hub
from services.gateway.live import handle_message, requested_res
from services.gateway.view import View

FUZZ = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip
SETTINGS = Settings()
REPLIES = {"pong", "error", "waiting", "snapshot"}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# numbers as JSON text, where Python's json gives inf, -inf and nan (1e400, -1e400, NaN)
number_texts = st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-0.0", "7.0", "7.5", "1" * 400])


class StubHub:
    """The two Hub methods a subscribe uses, without Redis: no frame is released yet."""

    def __init__(self) -> None:
        self.watched: list[View] = []

    def watch(self, client: Client, view: View) -> None:
        self.watched.append(view)

    async def snapshot(self, res: int) -> None:
        return None


def reply_to(raw: str) -> dict[str, Any]:
    client = Client(queue=LatestQueue(4))
    with asyncio.Runner() as runner:
        text = runner.run(handle_message(raw, client, SETTINGS, cast(Hub, StubHub())))
    assert text is not None
    reply: dict[str, Any] = json.loads(text)
    assert reply["type"] in REPLIES
    return reply


@FUZZ
@given(json_values)
def test_any_json_message_gets_a_reply(value: object) -> None:
    reply_to(json.dumps(value))


@FUZZ
@given(st.dictionaries(st.sampled_from(["res", "layers", "bbox", "breakdown", "type"]), json_values))
def test_any_subscribe_fields_get_a_reply(fields: dict[str, object]) -> None:
    reply_to(json.dumps({**fields, "type": "subscribe"}))


@FUZZ
@given(number_texts, st.sampled_from(["res", "bbox"]))
def test_numbers_out_of_range_get_a_reply(number: str, field: str) -> None:
    value = number if field == "res" else f"[{number}, 22.5, 114.5, 22.8]"
    reply = reply_to(f'{{"type": "subscribe", "{field}": {value}}}')
    if field == "res" and number != "7.0":
        assert reply["type"] == "error"


def test_requested_res_accepts_integers_only() -> None:
    assert requested_res(7) == 7 and requested_res(7.0) == 7
    for bad in (float("inf"), float("nan"), 7.5, "7", True, None, [7], 2**40):
        try:
            requested_res(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
