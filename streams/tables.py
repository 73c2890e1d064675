"""The worker's changelog-backed Faust tables: bytes values written to an explicit changelog partition.

Two tables: `aggregate-state` (the engine's per-partition log, `TableLog`, partitioned like the clean
topics) and `release-book` (the release agent's `BookLog`, `TableBookLog`, one partition).
"""

from __future__ import annotations

from typing import Any

import faust


def bytes_table(app: faust.App, name: str, partitions: int) -> Any:
    """A table of json-string keys and opaque bytes values (msgpack written by the engine or the book)."""
    schema: faust.Schema[str, bytes] = faust.Schema(
        key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
    )
    # key_type / value_type as well as the schema: Faust builds the changelog topic's serializers from
    # the types, and without them recovery decodes the msgpack values as JSON and stalls
    return app.Table(name, default=None, schema=schema, key_type=str, value_type=bytes,
                     partitions=partitions)  # fmt: skip


def table_put(table: Any, partition: int, key: str, value: bytes | None) -> None:
    """Write (None: delete) a key of a bytes table and its changelog partition explicitly: Faust's
    `table[key] = ...` takes the partition from the current event, which a batch of several partitions,
    or `stream.take`, does not have."""
    if value is None:
        table.data.pop(key, None)
    else:
        table.data[key] = value
    table.send_changelog(partition, key, value, key_serializer="json", value_serializer="raw")


class TableLog:
    """The engine's per-partition log in a Faust table, written to the changelog partition of the data.

    Written explicitly per partition (not through `table[key] = ...`, which uses the partition of the
    current event) because one batch mixes partitions; keys are "<partition>/<key>".
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        table_put(self.table, partition, f"{partition}/{key}", value)

    def items(self, partition: int) -> list[tuple[str, bytes]]:
        prefix = f"{partition}/"
        return sorted((k[len(prefix) :], v) for k, v in self.table.data.items() if k.startswith(prefix))


class TableBookLog:
    """The release book's log (cityscreen.release_book.BookLog) in its one-partition table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def put(self, key: str, value: bytes | None) -> None:
        table_put(self.table, 0, key, value)

    def items(self) -> list[tuple[str, bytes]]:
        return sorted(self.table.data.items())
