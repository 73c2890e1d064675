"""Values of any size in a key-value log whose records Kafka caps (the changelog's max.message.bytes).

A megacity partition's snapshot carries every person's last cell and open trip: tens of megabytes. A
large value is written as numbered chunks under a fresh generation, then a small head naming that
generation and the chunk count, then the previous generation's chunks are deleted. A crash at any
point leaves either the old head with its intact chunks, or the new head with all of its chunks.
"""

from __future__ import annotations

from cityscreen.aggregate.engine import PartitionLog

HEAD = b"\xc1chunks:"  # 0xc1 is never valid msgpack, so a head cannot be mistaken for a value
CHUNK_BYTES = 512 * 1024


class ChunkedLog:
    def __init__(self, inner: PartitionLog, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.inner, self.chunk_bytes = inner, chunk_bytes
        self._heads: dict[tuple[int, str], tuple[int, int]] = {}  # (partition, key) -> (generation, count)
        self._learned: set[int] = set()  # partitions whose heads were read from the log

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        old = self._head(partition, key)
        if value is not None and len(value) > self.chunk_bytes:
            gen = old[0] + 1 if old else 1
            parts = [value[i : i + self.chunk_bytes] for i in range(0, len(value), self.chunk_bytes)]
            for i, part in enumerate(parts):
                self.inner.put(partition, _chunk_key(key, gen, i), part)
            self.inner.put(partition, key, HEAD + f"{gen}:{len(parts)}".encode())
            self._heads[(partition, key)] = (gen, len(parts))
        else:
            self.inner.put(partition, key, value)
            self._heads.pop((partition, key), None)
        if old and self._heads.get((partition, key)) != old:
            for i in range(old[1]):
                self.inner.put(partition, _chunk_key(key, old[0], i), None)

    def items(self, partition: int) -> list[tuple[str, bytes]]:
        """The partition's values, chunked ones joined. Chunks no head names (left by a write that
        crashed before its head, or by a head deleted before its chunks) are deleted here."""
        raw = dict(self.inner.items(partition))
        self._learned.add(partition)
        out, named = [], set()
        for key, value in raw.items():
            if "#" in key:
                continue  # a chunk; its head assembles it
            if value.startswith(HEAD):
                gen, count = (int(x) for x in value[len(HEAD) :].decode().split(":"))
                self._heads[(partition, key)] = (gen, count)
                chunks = [_chunk_key(key, gen, i) for i in range(count)]
                named.update(chunks)
                value = b"".join(raw[c] for c in chunks)
            out.append((key, value))
        for orphan in [k for k in raw if "#" in k and k not in named]:
            self.inner.put(partition, orphan, None)
        return sorted(out)

    def _head(self, partition: int, key: str) -> tuple[int, int] | None:
        if partition not in self._learned:
            self.items(partition)  # learn the heads of a restored partition, once
        return self._heads.get((partition, key))


def _chunk_key(key: str, generation: int, index: int) -> str:
    return f"{key}#{generation}#{index:06d}"
