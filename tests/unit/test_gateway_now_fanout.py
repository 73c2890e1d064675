"""The now layer in the gateway, without Redis: the side slot, `view_now`, and the hub's now fan-out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest

from cityscreen import store_keys
from services.gateway.conflate import LatestQueue
from services.gateway.hub import Client, Hub
from services.gateway.metrics import GatewayMetrics
from services.gateway.testing import demo_cells, make_frame, make_now_frame
from services.gateway.view import BBox, View, cell_in_bbox, make_view, view_frame, view_now
from services.gateway.wire import Message

RESOLUTIONS = [8, 7, 6]
TICK_MS = 1_700_000_124_000
NOW_CHANNEL = store_keys.NOW_NOTIFY_CHANNEL.encode()  # as redis-py hands it over


def make_client(queue_frames: int = 2, **view: Any) -> Client:
    return Client(queue=LatestQueue(queue_frames), view=make_view(7, resolutions=RESOLUTIONS, **view))


def make_hub(*clients: Client) -> Hub:
    hub = Hub(redis=None)  # type: ignore[arg-type]  # deliver_now() never touches Redis
    for c in clients:
        hub.add(c)
    return hub


def drain(client: Client) -> list[dict[str, Any]]:
    out = []
    while (message := client.queue.get_nowait()) is not None:
        out.append(json.loads(message.text))
    return out


# the side slot


def test_side_slot_is_latest_wins_and_never_pushes_out_a_queued_item() -> None:
    q: LatestQueue[str] = LatestQueue(1)
    q.put("frame")
    for tick in ("now 1", "now 2", "now 3"):
        q.put_side(tick)
    assert len(q) == 2 and q.dropped == 2
    assert [q.get_nowait(), q.get_nowait(), q.get_nowait()] == ["frame", "now 3", None]


def test_side_item_waits_behind_items_queued_after_it() -> None:
    q: LatestQueue[str] = LatestQueue(3)
    q.put_side("now")
    q.put("frame")
    assert [q.get_nowait(), q.get_nowait()] == ["frame", "now"]


async def test_get_wakes_for_a_side_item_and_clear_empties_the_slot() -> None:
    q: LatestQueue[str] = LatestQueue(1)
    q.put_side("old view")
    q.clear()
    assert len(q) == 0
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.put_side("now")
    assert await getter == "now"


# view_now


def test_view_now_keeps_people_present_totals_in_the_bbox_with_their_noise() -> None:
    cells = demo_cells(7, rings=1)
    tick = make_now_frame(tick_ms=TICK_MS)
    tick.cells[cells[0]]["population.persons|gender=F"] = 12.0  # not in the now layer: must not leak
    box = BBox(113.0, 22.0, 115.0, 23.0)
    out = view_now(tick, View(res=7, bbox=box))
    assert out["pane"] == "early" and out["tick_ms"] == TICK_MS and out["res"] == 7
    assert out["cells"][cells[0]] == {"population.persons": 30.0}
    assert out["cells"][cells[1]] == {"population.persons": None}  # under the threshold: null
    assert set(out["noise_sd"]) == set(cells) and out["noise_sd"][cells[2]] == 3.5
    assert out["budget"] == msgspec.to_builtins(tick.budget)
    assert out["privacy"]["mechanism"] == "continual"
    json.dumps(out)  # JSON-ready as it is


def test_view_now_cuts_cells_and_noise_to_the_bbox() -> None:
    cells = demo_cells(7, rings=1)
    tick = make_now_frame()
    box = BBox(113.0, 22.0, 114.05, 23.0)  # west of the ring's centre only
    out = view_now(tick, View(res=7, bbox=box))
    inside = {c for c in cells if cell_in_bbox(c, box)}
    assert inside and inside != set(cells)
    assert set(out["cells"]) == set(out["noise_sd"]) == inside


def test_final_frames_say_their_pane() -> None:
    assert view_frame(make_frame(), make_view(7, resolutions=RESOLUTIONS))["pane"] == "final"


# Client.offer_now


def test_a_pending_frame_survives_any_number_of_now_ticks() -> None:
    client = make_client(queue_frames=1)
    client.offer(Message('{"type":"frame"}'), now_s=0.0)
    for i in range(5):
        client.offer_now(Message(f'{{"type":"now","i":{i}}}'), TICK_MS + i * 2000, now_s=0.0)
    assert drain(client) == [{"type": "frame"}, {"type": "now", "i": 4}]


def test_offer_now_never_steps_back_until_a_new_subscription() -> None:
    client = make_client()
    client.offer_now(Message("new"), TICK_MS, now_s=0.0)
    client.offer_now(Message("old"), TICK_MS - 2000, now_s=0.0)
    client.offer_now(Message("same"), TICK_MS, now_s=0.0)
    assert [m.text for m in iter(client.queue.get_nowait, None)] == ["new"]
    client.clear()
    client.offer_now(Message("older, for the new view"), TICK_MS - 2000, now_s=0.0)
    assert len(client.queue) == 1


def test_offer_now_writes_an_idle_socket_at_once_unpaced_and_queues_behind_a_frame() -> None:
    written: list[bytes] = []
    client = make_client()

    def write(frame: bytes) -> bool:
        written.append(frame)
        return True

    client.write = write
    client.next_frame_s = float("inf")  # frames are paced: none due
    client.offer_now(Message("now 1"), TICK_MS, now_s=5.0)
    assert len(written) == 1 and client.sent == 1 and client.last_sent_s == 5.0
    assert client.next_frame_s == float("inf")  # a now frame does not move the frame pacing
    client.offer(Message('{"type":"frame"}'), now_s=5.0)  # not due: queued
    client.offer_now(Message("now 2"), TICK_MS + 2000, now_s=5.0)
    assert len(written) == 1 and [m.text for m in iter(client.queue.get_nowait, None)] == [
        '{"type":"frame"}',
        "now 2",
    ]


def test_offer_now_counts_a_tick_a_full_socket_refused_as_dropped() -> None:
    client = make_client()
    client.write = lambda frame: False
    client.offer_now(Message("now"), TICK_MS, now_s=0.0)
    assert client.queue.dropped == 1 and client.sent == 0


# Hub.deliver_now


def test_deliver_now_goes_to_population_views_once_per_view_and_counts() -> None:
    a, b = make_client(layers=["population"]), make_client(layers=["population"])
    boxed = make_client(layers=["population", "flows"], bbox=[113.0, 22.0, 114.05, 23.0])
    spend = make_client(layers=["payments"])
    hub = make_hub(a, b, boxed, spend)
    hub.metrics = GatewayMetrics()
    assert hub.deliver_now(make_now_frame(tick_ms=TICK_MS)) == 3
    assert hub.encodes == 2 and hub.now_in == 1
    assert hub.metrics.registry.get_sample_value("cityscreen_ws_now_frames_total") == 1
    sent_a, sent_b = a.queue.get_nowait(), b.queue.get_nowait()
    assert sent_a is sent_b and sent_a is not None
    assert sent_a.text.startswith('{"type":"now","pane":"early"')
    assert len(drain(boxed)[0]["cells"]) < len(json.loads(sent_a.text)["cells"])
    assert len(spend.queue) == 0 and spend.now_tick_ms == -1


def test_deliver_now_skips_older_and_repeated_ticks() -> None:
    client = make_client()
    hub = make_hub(client)
    assert hub.deliver_now(make_now_frame(tick_ms=TICK_MS)) == 1
    assert hub.deliver_now(make_now_frame(tick_ms=TICK_MS)) == 0
    assert hub.deliver_now(make_now_frame(tick_ms=TICK_MS - 2000)) == 0
    assert hub.deliver_now(make_now_frame(tick_ms=TICK_MS + 2000)) == 1
    assert hub.now_in == 2 and hub.latest_now[7].tick_ms == TICK_MS + 2000


def test_now_ticks_and_frames_of_other_resolutions_stay_apart() -> None:
    coarse = Client(queue=LatestQueue(2), view=make_view(6, resolutions=RESOLUTIONS))
    hub = make_hub(coarse)
    assert hub.deliver_now(make_now_frame(res=7, tick_ms=TICK_MS)) == 0
    assert hub.deliver_now(make_now_frame(res=6, tick_ms=TICK_MS - 2000)) == 1  # its own last tick


class FakeStore:
    """The store reads the hub makes, from dicts, counting the now reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, now: dict[int, Any]) -> None:
        self.now, self.now_reads = now, 0

        async def latest_now(redis: Any, res: int) -> Any:
            self.now_reads += 1
            return self.now.get(res)

        async def latest_frame(redis: Any, res: int) -> Any:
            return None

        monkeypatch.setattr("services.gateway.hub.store.latest_now", latest_now)
        monkeypatch.setattr("services.gateway.hub.store.latest_frame", latest_frame)


def notice(res: Any, tick_ms: Any) -> bytes:
    return json.dumps({"res": res, "tick_ms": tick_ms}).encode()


def test_now_notices_read_only_what_someone_watches_and_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    client = make_client()
    hub = make_hub(client)
    fake = FakeStore(monkeypatch, {7: make_now_frame(tick_ms=TICK_MS)})
    asyncio.run(hub.on_notice(NOW_CHANNEL, notice(8, TICK_MS)))  # nobody watches res 8
    assert fake.now_reads == 0
    asyncio.run(hub.on_notice(NOW_CHANNEL, notice(7, TICK_MS)))
    assert fake.now_reads == 1 and drain(client)[0]["tick_ms"] == TICK_MS
    asyncio.run(hub.handle_now_notify(notice(7, TICK_MS - 2000)))  # older than delivered: not read
    asyncio.run(hub.handle_now_notify(b"not json"))
    asyncio.run(hub.handle_now_notify(notice(7, None)))
    assert fake.now_reads == 1 and len(client.queue) == 0


def test_a_notice_nobody_watches_drops_the_cached_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = make_hub()
    hub.latest_now[7] = make_now_frame()
    FakeStore(monkeypatch, {})
    asyncio.run(hub.handle_now_notify(notice(7, TICK_MS)))
    assert 7 not in hub.latest_now


def test_offer_current_now_follows_a_subscription_and_resync_now_catches_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, spend = make_client(), make_client(layers=["payments"])
    hub = make_hub(client, spend)
    fake = FakeStore(monkeypatch, {7: make_now_frame(tick_ms=TICK_MS)})
    asyncio.run(hub.offer_current_now(spend))
    assert fake.now_reads == 0 and len(spend.queue) == 0
    asyncio.run(hub.offer_current_now(client))
    assert drain(client)[0]["tick_ms"] == TICK_MS
    # a snapshot read does not count as delivered: other watchers still get the tick from its notice
    assert hub.deliver_now(make_now_frame(tick_ms=TICK_MS)) == 1 and len(client.queue) == 0
    # a tick fanned out while a snapshot was read may have gone before it: it follows the snapshot again
    asyncio.run(hub.offer_current_now(client))
    assert drain(client)[0]["tick_ms"] == TICK_MS
    fake.now[7] = make_now_frame(tick_ms=TICK_MS + 2000)  # announced while the subscription was down
    hub.latest_now[6] = make_now_frame(res=6)  # a cached tick nobody watches: it may be stale by now
    asyncio.run(hub.resync_now())
    assert drain(client)[0]["tick_ms"] == TICK_MS + 2000
    assert 6 not in hub.latest_now
