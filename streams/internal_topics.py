"""Create the aggregate worker's internal topics before Faust subscribes to them.

Faust declares these topics itself, but only after its consumer has subscribed: the consumer then sees
them missing and waits for its next metadata refresh (five minutes by default) before it reads them, so
no window would be released for minutes after a cold start. Creating them first removes that wait.
"""

from __future__ import annotations

import asyncio

from adapters.kafka_topics import TopicSpec, ensure_topics
from cityscreen.events import replica_configs

STATE_TABLE = "aggregate-state"
BOOK_TABLE = "release-book"
# A fine-resolution frame of a dense city is over Kafka's 1 MB default (the shipped fixture's res-8 frames
# are about 1.1 MB of JSON): the frames topic and the worker's producer (streams/app.py) allow this much.
MAX_RECORD_BYTES = 16 * 1024 * 1024
# A partition's partial of a dense window, and one batch's delta in the state changelog, can pass 1 MB
# as well (a 2M-event benchmark crashed on the changelog): every internal topic takes large records.
LARGE = {"max.message.bytes": str(MAX_RECORD_BYTES)}
COMPACT = {"cleanup.policy": "compact", **LARGE}


def partials_topic(app_id: str) -> str:
    """Internal: exact partials, never leaves the workers. Per group: a group's release agent reads its
    topic from the beginning, and must never release partials another group computed."""
    return f"{app_id}-partials"


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"  # Faust's naming


def internal_topics(app_id: str, partitions: int) -> list[tuple[str, int, dict[str, str]]]:
    """(name, partitions, configs) of every topic the aggregate worker reads besides the clean ones."""
    return [
        (partials_topic(app_id), 1, LARGE),
        (changelog_topic(app_id, STATE_TABLE), partitions, COMPACT),
        (changelog_topic(app_id, BOOK_TABLE), 1, COMPACT),
        (f"{app_id}-__assignor-__leader", 1, {}),
    ]


def ensure_internal_topics(
    bootstrap: str,
    app_id: str,
    partitions: int,
    timeout_s: float = 30.0,
    large_topics: tuple[str, ...] = (),
    replication_factor: int = 1,
) -> None:
    """Create the internal topics; let existing `large_topics` take records up to MAX_RECORD_BYTES."""
    replicated = replica_configs(replication_factor)
    specs = [TopicSpec(n, p, {**c, **replicated}) for n, p, c in internal_topics(app_id, partitions)]
    asyncio.run(
        ensure_topics(
            bootstrap,
            specs,
            replication_factor=replication_factor,
            timeout_s=timeout_s,
            reconfigure={topic: LARGE for topic in large_topics},
        )
    )
