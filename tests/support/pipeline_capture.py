"""Test support: read back what a real aggregate worker group produced, straight from Kafka.

- `exact_aggregates`: the exact window aggregates, rebuilt from the internal partials topic a group's
  aggregate agents write (first copy per window and partition, as the release agent merges them).
  Redis and the frames topic only ever hold gated frames, so this is the one place the pipeline's
  exact aggregates can be compared.
- `topic_frames`: the frames on `city.frames.v1` in topic order, published_ms zeroed.
- `group_assignment`: which partitions each member of a consumer group holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cityscreen.aggregate.partial import decode_header
from cityscreen.aggregates import WindowAggregate
from cityscreen.events import FRAMES_TOPIC
from cityscreen.frames import decode_frame, encode_frame
from cityscreen.release_book import merge_window
from cityscreen.settings import Settings
from services.generator.consume import read_to_end
from streams.internal_topics import partials_topic


def _read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record of `topic` from the beginning to the current end."""
    return [(r.key, r.value) for r in asyncio.run(read_to_end(bootstrap, [topic], partitions))]


def exact_aggregates(settings: Settings, group: str = "cityscreen-aggregate") -> list[WindowAggregate]:
    records = _read_all(settings.kafka.bootstrap, partials_topic(group), 1)
    # (end, -length, start) -> partition -> partial: ordered as the reference orders its windows
    first: dict[tuple[int, int, int], dict[int, bytes]] = {}
    for _, value in records:
        head = decode_header(value)
        if head.window_start_ms is not None and head.blob is not None:
            length_ms = (head.span_s or settings.window.window_s) * 1000
            key = (head.window_start_ms + length_ms, -length_ms, head.window_start_ms)
            first.setdefault(key, {}).setdefault(head.partition, head.blob)
    # merged as the release agent's gate process merges them
    return [merge_window([first[w][p] for p in sorted(first[w])], settings) for w in sorted(first)]


def topic_frames(settings: Settings) -> list[tuple[bytes, bytes]]:
    """(key, frame JSON with published_ms zeroed) in topic order, partition by partition (a key's frames in
    the order sent: a minute sent again with its 15-minute window's layers comes after its first send)."""
    out = []
    for key, value in _read_all(settings.kafka.bootstrap, FRAMES_TOPIC, settings.kafka.partitions):
        frame = decode_frame(value)
        frame.published_ms = 0
        out.append((key or b"", encode_frame(frame)))
    return out


async def _assignment(bootstrap: str, group: str) -> dict[str, dict[str, list[int]]]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses: list[Any] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members: dict[str, dict[str, list[int]]] = {}
    for response in responses:
        for described in response.to_object()["groups"]:
            for member in described["members"]:
                if not member["member_assignment"]:
                    members[member["member_id"]] = {}
                    continue
                assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
                members[member["member_id"]] = {t: sorted(ps) for t, ps in assignment.assignment}
    return members


def group_assignment(settings: Settings, group: str) -> dict[str, dict[str, list[int]]]:
    """member id -> topic -> partitions, as the group coordinator last assigned them."""
    return asyncio.run(_assignment(settings.kafka.bootstrap, group))
