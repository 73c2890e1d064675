"""Columns to the raw wire format (cityscreen.events: msgspec's JSON of RawSim / RawPayment /
RawTransit, field for field and byte for byte), without a Python object per event.

Each event is a row of a uint8 matrix: literal pieces of the JSON template, digits written by integer
arithmetic, and strings gathered from small vocabularies. Fields are laid out at their widest and
padded with NUL bytes, which cannot occur in JSON text; dropping them leaves the variable-width JSON.
Identifiers (IMSI, MSISDN, account, card, event id) are computed from the person index here, and
nowhere else become strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from cityscreen.city import BBox
from services.generator.columnar.grid import I64, TOWER_DEG, snap
from services.generator.columnar.places import CATEGORIES
from services.generator.columnar.population import ORIGINS
from services.generator.columnar.rand import MASK64, key_of, mix64
from services.generator.columnar.world import World

U8 = np.ndarray[Any, np.dtype[np.uint8]]
Cols = dict[str, np.ndarray[Any, Any]]
CHUNK_ROWS = 8192  # rows encoded at a time: the padded matrix (~3 MB) stays in the CPU cache
MASK48 = np.uint64((1 << 48) - 1)


def lit(text: bytes, n: int) -> U8:
    return np.broadcast_to(np.frombuffer(text, dtype=np.uint8), (n, len(text)))


def table(rows: list[bytes]) -> np.ndarray[Any, Any]:
    """Byte strings of one length as a 1-D array of opaque items: gathering whole items is a memcpy
    each, many times faster than gathering rows of a 2-D uint8 matrix."""
    width = max([len(r) for r in rows] + [1])
    padded = b"".join(r.ljust(width, b"\0") for r in rows) or b"\0" * width
    return np.frombuffer(padded, dtype=f"V{width}")


def vocab(words: list[str] | tuple[str, ...]) -> np.ndarray[Any, Any]:
    """Words as a `table` (gather them with codes and `take`)."""
    return table([w.encode() for w in words])


def take(items: np.ndarray[Any, Any], codes: np.ndarray[Any, Any]) -> U8:
    """Rows of a `table` as a (len(codes), width) uint8 matrix."""
    rows: U8 = items[codes].view(np.uint8).reshape(len(codes), items.dtype.itemsize)
    return rows


_DIGITS4 = table([f"{i:04d}".encode() for i in range(10_000)])  # 0000..9999
_HEX2 = table([f"{i:02x}".encode() for i in range(256)])  # 00..ff
_YEAR_START_MS = np.arange("1970", "2200", dtype="datetime64[Y]").astype("datetime64[ms]").astype(np.int64)
_POW10 = np.array([10**k for k in range(1, 19)], dtype=np.int64)


def digits(values: I64, width: int, *, zeros: bool = False) -> U8:
    """Decimal digits of non-negative ints, right-aligned; leading zeros become NUL unless `zeros`.
    Four digits per table lookup: a divmod per digit would cost more than all the rest of a row."""
    groups = -(-width // 4)
    out = np.empty((len(values), groups), dtype="V4")
    v = values.astype(np.int64)
    for g in range(groups - 1, -1, -1):
        v, rest = np.divmod(v, 10_000)
        out[:, g] = _DIGITS4[rest]
    matrix = out.view(np.uint8).reshape(len(values), groups * 4)[:, groups * 4 - width :]
    if not zeros:
        n_digits = 1 + np.searchsorted(_POW10, values, side="right")
        matrix[np.arange(width)[None, :] < (width - n_digits)[:, None]] = 0
    return matrix


def signed(values: I64, width: int) -> U8:
    sign = np.where(values < 0, ord("-"), 0).astype(np.uint8)[:, None]
    return np.concatenate([sign, digits(np.abs(values), width)], axis=1)


def decimal(values: np.ndarray[Any, Any], places: int, int_width: int) -> U8:
    """Like repr() of a float rounded to `places` decimals: trailing zeros dropped, one kept."""
    scaled = np.rint(np.abs(values) * 10**places).astype(np.int64)
    whole, frac = np.divmod(scaled, 10**places)
    sign = np.where(values < 0, ord("-"), 0).astype(np.uint8)[:, None]
    frac_d = digits(frac, places, zeros=True)
    # fractional digits followed by zeros only are dropped with them, but the first is always kept
    zeros_after = sum((frac % 10**k == 0).astype(np.int64) for k in range(1, places))
    frac_d[np.arange(places)[None, :] >= (places - zeros_after)[:, None]] = 0
    return np.concatenate([sign, digits(whole, int_width), lit(b".", len(values)), frac_d], axis=1)


def ident(person: I64, prefixes: tuple[str, ...], width: int, offset: int) -> U8:
    """An identifier as today (population._digits): an affine bijection of the person index, so no two
    persons share one, behind a prefix that cycles with the index."""
    number = (person * 7919 + offset) % 10**width
    return np.concatenate(
        [take(vocab(prefixes), person % len(prefixes)), digits(number, width, zeros=True)], axis=1
    )


def compact(matrix: U8) -> tuple[U8, I64]:
    """The rows (each ending in a newline, which JSON text never holds) with their NULs dropped, and
    each row's end offset in the result. bytes.translate deletes the NULs about twice as fast as a
    boolean mask over the matrix."""
    data = np.frombuffer(matrix.tobytes().translate(None, b"\0"), dtype=np.uint8)
    return data, np.flatnonzero(data == 10) + 1


def _ts_digits(ts_ms: I64) -> U8:
    """Times of 2001-2286 have exactly 13 digits: no leading zeros to look for."""
    if len(ts_ms) and ts_ms.min() >= 10**12 and ts_ms.max() < 10**13:
        return digits(ts_ms, 13, zeros=True)
    return digits(ts_ms, 15)


class TowerFields:
    """The `"tower_id":...,"lat":...,"lng":...` part of a SIM event, written once per tower of the
    city's grid: nine in ten events are SIM updates, and a city has some ten thousand towers."""

    MAX_TOWERS = 2_000_000

    def __init__(self, box: BBox) -> None:
        self.iy0, self.ix0 = math.ceil(box.min_lat / TOWER_DEG), math.ceil(box.min_lng / TOWER_DEG)
        self.ny = math.floor(box.max_lat / TOWER_DEG) - self.iy0 + 1
        self.nx = math.floor(box.max_lng / TOWER_DEG) - self.ix0 + 1
        self.table: np.ndarray[Any, Any] | None = None
        if self.ny * self.nx <= self.MAX_TOWERS:
            iy, ix = np.divmod(np.arange(self.ny * self.nx), self.nx)
            iy, ix, lat, lng = snap(
                (iy + self.iy0) * TOWER_DEG, (ix + self.ix0) * TOWER_DEG, TOWER_DEG, TOWER_DEG, box
            )
            data, ends = compact(np.concatenate([self.write(iy, ix, lat, lng), lit(b"\n", len(iy))], axis=1))
            rows = np.split(data, ends[:-1])
            self.table = table([r.tobytes()[:-1] for r in rows])

    @staticmethod
    def write(iy: I64, ix: I64, lat: np.ndarray[Any, Any], lng: np.ndarray[Any, Any]) -> U8:
        n = len(iy)
        return np.concatenate([
            lit(b'","tower_id":"T', n), signed(iy, 5), lit(b"-", n), signed(ix, 5),
            lit(b'","lat":', n), decimal(lat, 5, 3), lit(b',"lng":', n), decimal(lng, 5, 3),
        ], axis=1)  # fmt: skip

    def fields(self, iy: I64, ix: I64, lat: np.ndarray[Any, Any], lng: np.ndarray[Any, Any]) -> U8:
        if self.table is None:
            return self.write(iy, ix, lat, lng)
        return take(self.table, (iy - self.iy0) * self.nx + (ix - self.ix0))


class Encoder:
    """Encodes slice columns as JSON lines (fixtures) or JSON arrays (Kafka records)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.id_keys = [np.uint64(key_of(world.seed, 77, r)) for r in range(4)]
        self.origins = vocab(ORIGINS)
        self.cats = vocab(CATEGORIES)
        self.cat3 = vocab([c[:3] for c in CATEGORIES])
        self.merchant_ids = vocab(world.merchants.ids)
        self.station_ids = vocab(world.stops.ids)
        self.line_names = vocab(world.stops.lines)
        self.modes, self.taps, self.genders = vocab(["metro", "bus"]), vocab(["in", "out"]), vocab(["F", "M"])
        self.towers = TowerFields(world.city.bbox)

    def event_ids(self, person: I64, ts_ms: I64, seq: I64) -> U8:
        """24 hex digits: a keyed 4-round Feistel permutation of the 96-bit (person, ts_ms, seq), so ids
        are unique by construction and do not show the person."""
        ts = ts_ms.astype(np.uint64)
        left = (person.astype(np.uint64) << np.uint64(16)) | (ts >> np.uint64(26))
        right = ((ts & np.uint64((1 << 26) - 1)) << np.uint64(11)) | seq.astype(np.uint64)
        for key in self.id_keys:
            left, right = right, left ^ (mix64(right ^ key) & MASK48)
        both = np.stack([left, right], axis=1).astype(">u8")  # big-endian: the high byte first
        low6 = both.view(np.uint8).reshape(len(person), 2, 8)[:, :, 2:]  # the 48 bits of each half
        return take(_HEX2, low6.reshape(-1)).reshape(len(person), 24)

    def chunks(self, kind: str, cols: Cols, rows: int = CHUNK_ROWS) -> Iterator[tuple[U8, I64]]:
        """(bytes, end offsets) of the events' JSON objects, each ending in a newline, `rows` events at
        a time: a chunk's padded matrix stays in the CPU cache while it is compacted."""
        n = len(cols["ts_ms"]) if cols else 0
        for lo in range(0, n, rows):
            part = {k: v[lo : lo + rows] for k, v in cols.items()}
            yield compact(getattr(self, f"_{kind}")(part, len(part["ts_ms"])))

    def rows(self, kind: str, cols: Cols, sep: bytes) -> tuple[U8, I64]:
        """(bytes, end offsets) of all the events' JSON objects, each followed by the one-byte `sep`."""
        datas, ends, done = [], [], 0
        for data, end in self.chunks(kind, cols):
            datas.append(data)
            ends.append(end + done)
            done += len(data)
        if not datas:
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
        data, end = np.concatenate(datas), np.concatenate(ends)
        if sep != b"\n":
            data[end - 1] = ord(sep)
        return data, end

    def lines(self, kind: str, cols: Cols) -> bytes:
        return self.rows(kind, cols, b"\n")[0].tobytes()

    def merged_lines(self, piece: Any, limit: int | None = None) -> tuple[U8, I64, I64]:
        """JSON lines of a slice's events of every kind in (ts_ms, person, seq) order, as a fixture
        holds them; at most `limit` events. Returns (bytes, each line's end offset, its ts_ms)."""
        datas, starts, lengths, keys, times, done = [], [], [], [], [], 0
        for kind, cols in piece.cols.items():
            if not cols:
                continue
            data, end = self.rows(kind, cols, b"\n")
            begin = np.concatenate([[0], end[:-1]])
            datas.append(data)
            starts.append(begin + done)
            lengths.append(end - begin)
            keys.append(((cols["ts_ms"] - piece.lo_ms) << 38) | (cols["person"] << 11) | cols["seq"])
            times.append(cols["ts_ms"])
            done += len(data)
        if not datas:
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        order = np.argsort(np.concatenate(keys), kind="stable")[:limit]
        start, length = np.concatenate(starts)[order], np.concatenate(lengths)[order]
        # byte i of the output comes from start[row] + (i - where the row begins in the output)
        out_begin = np.cumsum(length) - length
        index = np.repeat(start - out_begin, length) + np.arange(int(length.sum()))
        return np.concatenate(datas)[index], np.cumsum(length), np.concatenate(times)[order]

    def arrays(self, kind: str, cols: Cols, batch: int) -> list[bytes]:
        """JSON arrays of up to `batch` events: one Kafka record each. Chunks hold whole records, so
        no record is put together from two of them."""
        out = []
        for data, ends in self.chunks(kind, cols, batch * max(1, CHUNK_ROWS // batch)):
            for lo in range(0, len(ends), batch):
                start = int(ends[lo - 1]) if lo else 0
                stop = int(ends[min(lo + batch, len(ends)) - 1])
                out.append(b"[" + data[start : stop - 1].tobytes().replace(b"\n", b",") + b"]")
        return out

    def _head(self, kind: bytes, cols: Cols, n: int) -> list[U8]:
        return [
            lit(b'{"kind":"' + kind + b'","v":1,"event_id":"', n),
            self.event_ids(cols["person"], cols["ts_ms"], cols["seq"]),
            lit(b'","ts_ms":', n), _ts_digits(cols["ts_ms"]),
        ]  # fmt: skip

    def _sim(self, c: Cols, n: int) -> U8:
        pop, p = self.world.pop, c["person"]
        off = pop.id_offsets
        born = 1970 + np.searchsorted(_YEAR_START_MS, c["ts_ms"], side="right") - 1 - pop.reg_age[p]
        return np.concatenate([
            *self._head(b"sim", c, n),
            lit(b',"imsi":"460', n), ident(p, ("00", "01", "11"), 10, off[0]),
            lit(b'","msisdn":"86', n), ident(p, ("138", "159", "186", "177"), 8, off[1]),
            self.towers.fields(c["iy"], c["ix"], c["lat"], c["lng"]),
            lit(b',"gender":"', n), take(self.genders, pop.reg_gender[p]),
            lit(b'","birth_year":', n), digits(born, 4, zeros=bool(born.min() >= 1000)),
            lit(b',"origin":"', n), take(self.origins, pop.origin[p]), lit(b'"}\n', n),
        ], axis=1)  # fmt: skip

    def _payment(self, c: Cols, n: int) -> U8:
        pop, p = self.world.pop, c["person"]
        local = (c["merchant"] < 0)[:, None]
        named = take(self.merchant_ids, np.maximum(c["merchant"], 0))
        shop = np.concatenate([lit(b"LOC-", n), signed(c["iy"], 5), lit(b"-", n), signed(c["ix"], 5),
                               lit(b"-", n), take(self.cat3, c["cat"])], axis=1)  # fmt: skip
        return np.concatenate([
            *self._head(b"payment", c, n),
            lit(b',"account":"6217', n), ident(p, ("",), 12, pop.id_offsets[2]),
            lit(b'","merchant_id":"', n), np.where(local, 0, named), np.where(local, shop, 0),
            lit(b'","category":"', n), take(self.cats, c["cat"]),
            lit(b'","amount_cny":', n), decimal(c["amount"], 2, 6),
            lit(b',"lat":', n), decimal(c["lat"], 5, 3), lit(b',"lng":', n), decimal(c["lng"], 5, 3),
            lit(b',"origin":"', n), take(self.origins, pop.origin[p]), lit(b'"}\n', n),
        ], axis=1)  # fmt: skip

    def _transit(self, c: Cols, n: int) -> U8:
        stop = c["stop"]
        grid = (stop < 0)[:, None]
        iy, ix = self.world.stops.grid_iy_ix(np.minimum(stop, -1))
        local = np.concatenate([lit(b"BUS-", n), signed(iy, 5), lit(b"-", n), signed(ix, 5)], axis=1)
        shuttle = np.where(c["shuttle"][:, None], lit(b"-shuttle", n), 0)
        return np.concatenate([
            *self._head(b"transit", c, n),
            lit(b',"card":"SZT', n), ident(c["person"], ("",), 9, self.world.pop.id_offsets[3]),
            lit(b'","tap":"', n), take(self.taps, c["tap"]),
            lit(b'","station_id":"', n), np.where(grid, 0, take(self.station_ids, np.maximum(stop, 0))),
            np.where(grid, local, 0), shuttle,
            lit(b'","line":"', n), take(self.line_names, c["line"]),
            lit(b'","mode":"', n), take(self.modes, c["mode"]),
            lit(b'","lat":', n), decimal(c["lat"], 5, 3), lit(b',"lng":', n), decimal(c["lng"], 5, 3),
            lit(b"}\n", n),
        ], axis=1)  # fmt: skip


__all__ = ["MASK64", "Encoder"]
