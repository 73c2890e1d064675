"""Fan-out: one encode per view, latest wins per client, never back in time."""

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from services.gateway.conflate import LatestQueue
from services.gateway.hub import Client, Hub
from services.gateway.testing import make_frame
from services.gateway.view import make_view
from services.gateway.wire import Message

RESOLUTIONS = [8, 7, 6]


def make_client(res: int = 7, queue_frames: int = 2, **view: Any) -> Client:
    return Client(queue=LatestQueue(queue_frames), view=make_view(res, resolutions=RESOLUTIONS, **view))


def make_hub(*clients: Client) -> Hub:
    hub = Hub(redis=None)  # type: ignore[arg-type]  # deliver() never touches Redis
    for c in clients:
        hub.add(c)
    return hub


def test_same_view_shares_one_encoding() -> None:
    a, b = make_client(), make_client()
    other = make_client(layers=["population"])
    hub = make_hub(a, b, other)
    assert hub.deliver(make_frame()) == 3
    assert hub.encodes == 2
    sent_a, sent_b = a.queue.get_nowait(), b.queue.get_nowait()
    assert sent_a is sent_b
    other_msg = other.queue.get_nowait()
    assert sent_a is not None and other_msg is not None and sent_a.text != other_msg.text


def test_other_resolutions_and_unsubscribed_clients_get_nothing() -> None:
    coarse = make_client(res=6)
    idle = Client(queue=LatestQueue(2))
    hub = make_hub(coarse, idle)
    assert hub.deliver(make_frame(res=7)) == 0
    assert len(coarse.queue) == 0 and len(idle.queue) == 0


def test_slow_client_keeps_latest_and_fast_client_is_unaffected() -> None:
    slow, fast = make_client(queue_frames=1), make_client(queue_frames=1)
    hub = make_hub(slow, fast)
    for i in range(1, 4):
        hub.deliver(make_frame(window_start_ms=i * 60_000))
        fast.queue.get_nowait()  # the fast client reads every frame
    assert slow.queue.dropped == 2 and fast.queue.dropped == 0
    latest = slow.queue.get_nowait()
    assert latest is not None and '"window_start_ms":180000' in latest.text


def test_older_or_repeated_frames_are_not_delivered() -> None:
    client = make_client()
    hub = make_hub(client)
    assert hub.deliver(make_frame(window_start_ms=120_000)) == 1
    assert hub.deliver(make_frame(window_start_ms=120_000)) == 0
    assert hub.deliver(make_frame(window_start_ms=60_000)) == 0
    assert hub.deliver(make_frame(window_start_ms=120_000, published_ms=1_800_000_000_000)) == 1
    assert hub.frames_in == 2


def test_heartbeats_go_only_to_idle_clients_with_nothing_queued() -> None:
    idle, busy, recent = make_client(), make_client(), make_client()
    idle.last_sent_s = busy.last_sent_s = recent.last_sent_s - 60
    busy.queue.put(Message("pending frame"))
    hub = make_hub(idle, busy, recent)
    assert hub.beat(heartbeat_s=15) == 1
    beat = idle.queue.get_nowait()
    assert beat is not None and beat.text.startswith('{"type":"heartbeat"')
    assert len(busy.queue) == 1 and len(recent.queue) == 0


def test_offer_writes_idle_due_sockets_at_once_and_queues_the_rest() -> None:
    written: list[bytes] = []
    direct = make_client()

    def write(frame: bytes) -> bool:
        written.append(frame)
        return True

    direct.write = write
    direct.min_interval_s = 0.9
    early = make_client()
    early.write = direct.write
    early.next_frame_s = float("inf")
    hub = make_hub(direct, early)
    hub.deliver(make_frame(window_start_ms=60_000))
    assert len(written) == 1 and direct.sent == 1 and len(direct.queue) == 0
    assert len(early.queue) == 1  # not due yet: the sender task paces it
    hub.deliver(make_frame(window_start_ms=120_000))  # direct is now inside its interval
    assert len(written) == 1 and len(direct.queue) == 1


def test_offer_counts_a_frame_a_full_socket_refused_as_dropped() -> None:
    full = make_client()
    full.write = lambda frame: False
    hub = make_hub(full)
    hub.deliver(make_frame())
    assert full.queue.dropped == 1 and full.sent == 0


def test_a_new_subscription_moves_the_client_to_its_resolution() -> None:
    client = make_client(res=7)
    hub = make_hub(client)
    hub.watch(client, make_view(6, resolutions=RESOLUTIONS))
    assert hub.deliver(make_frame(res=7)) == 0
    assert hub.deliver(make_frame(res=6)) == 1
    hub.remove(client)
    assert hub.deliver(make_frame(res=6, window_start_ms=120_000)) == 0


class SteppedTime:
    """The hub's clock and timer, stepped by the test: no sleeping, no dependence on the box's speed."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self.timers: list[tuple[float, Callable[[int], None], int]] = []

    def call_later(self, delay_s: float, callback: Callable[[int], None], res: int) -> Any:
        self.timers.append((self.now_s + delay_s, callback, res))
        return SimpleNamespace(cancel=lambda: None)

    def advance(self, seconds: float) -> None:
        self.now_s += seconds
        due = [t for t in self.timers if t[0] <= self.now_s]
        self.timers = [t for t in self.timers if t[0] > self.now_s]
        for _, callback, res in due:
            callback(res)


def test_frames_sooner_than_the_interval_wait_on_one_timer_and_latest_wins() -> None:
    client, time_ = make_client(), SteppedTime()
    hub = make_hub(client)
    hub.clock_s, hub.call_later, hub.min_interval_s = (lambda: time_.now_s), time_.call_later, 0.05
    assert hub.deliver(make_frame(window_start_ms=60_000)) == 1
    assert hub.deliver(make_frame(window_start_ms=120_000)) == 0  # too soon: waits
    assert hub.deliver(make_frame(window_start_ms=180_000)) == 0  # replaces the waiting one
    assert hub.conflated == 1 and len(client.queue) == 1 and len(time_.timers) == 1
    time_.advance(0.04)
    assert len(client.queue) == 1  # not yet due
    time_.advance(0.02)
    assert len(client.queue) == 2 and not time_.timers
    client.queue.get_nowait()
    paced = client.queue.get_nowait()
    assert paced is not None and '"window_start_ms":180000' in paced.text


def test_resync_offers_watchers_the_newest_stored_frame_and_forgets_unwatched_snapshots(
    monkeypatch: Any,
) -> None:
    """After Redis comes back, announcements made meanwhile are lost: resync reads what is stored."""
    client = make_client()
    hub = make_hub(client)
    hub.deliver(make_frame(window_start_ms=60_000))
    client.queue.get_nowait()
    hub.latest[6] = make_frame(res=6)  # a cached snapshot nobody watches: it may be stale by now
    stored = {7: make_frame(window_start_ms=120_000)}

    async def latest_frame(redis: Any, res: int) -> Any:
        return stored.get(res)

    monkeypatch.setattr("services.gateway.hub.store.latest_frame", latest_frame)
    asyncio.run(hub.resync())
    sent = client.queue.get_nowait()
    assert sent is not None and '"window_start_ms":120000' in sent.text
    assert 6 not in hub.latest
    asyncio.run(hub.resync())  # nothing newer stored: nothing sent again
    assert client.queue.get_nowait() is None
