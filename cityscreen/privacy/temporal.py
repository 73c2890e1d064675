"""Privacy across time: what the gate keeps of the window it released last, and how it uses it.

Consecutive windows of the stock share most of their persons (at night almost all), so most values of a
window are the next window's too. A reader who knows where the truth persists adds value(before) =
value(after) for those keys and solves both windows' equations as one system
(tests/support/temporal_attacker.py). Against that reader the gate, releasing a window after one it
released before (the same span, the one just before it):
- holds: a value hidden before whose truth persisted stays hidden (released now, it would be known
  then too);
- does not lean on the past: a value released before whose truth persisted is known, so it neither
  serves as a complement nor counts as hidden if a repair hides it;
- audits the joint system: the previous window's equations and mask, this window's, and the links
  between persisting values, with the same protection rules (protection.py); a value it flags on
  either side is widened on this side: one of the previous window by its twin, or, changed since, by
  the persisting hidden values it shares an equation with (`JointAudit.near_partners`).
Nothing is released that the threshold alone would not release: this only ever hides more.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from cityscreen.aggregates import WindowAggregate
from cityscreen.privacy.auditor import equation_table
from cityscreen.privacy.interval import rows_of
from cityscreen.privacy.protection import Protection
from cityscreen.privacy.structure import Structure, build_structure


@dataclass
class Previous:
    """The window released last: its structure (the truth) and what it hid."""

    structure: Structure
    hidden: np.ndarray


class Memory(msgspec.Struct, frozen=True):
    """`Previous` as it is stored between windows (the gate's state): the exact aggregate it was built
    from and its mask as packed bits. Internal state like the aggregates, never published."""

    aggregate: WindowAggregate
    hidden_bits: bytes
    count: int

    @classmethod
    def of(cls, aggregate: WindowAggregate, hidden: np.ndarray) -> Memory:
        return cls(aggregate, np.packbits(hidden).tobytes(), len(hidden))

    def pack(self) -> bytes:
        return zlib.compress(_ENC.encode(self), 1)

    @classmethod
    def unpack(cls, data: bytes | None) -> Memory | None:
        return None if data is None else _MEMORY.decode(zlib.decompress(data))

    def previous(self, metro_lines: frozenset[str] | None = None) -> Previous:
        structure = build_structure(self.aggregate, metro_lines)
        bits = np.unpackbits(np.frombuffer(self.hidden_bits, dtype=np.uint8), count=self.count)
        if len(structure.keys) != self.count:
            raise ValueError(
                f"the kept window has {len(structure.keys)} values but its mask {self.count}: it was kept "
                "by another version of the gate's layout; drop the kept state (it is rebuilt in one window)"
            )
        return Previous(structure, bits.astype(bool))


_ENC = msgspec.msgpack.Encoder()
_MEMORY = msgspec.msgpack.Decoder(Memory)


def links(before: Structure, after: Structure) -> tuple[np.ndarray, np.ndarray]:
    """(before id, after id) of every key in both windows whose true value is the same."""
    where = {key: i for i, key in enumerate(before.keys)}
    pairs = [(where[key], j) for j, key in enumerate(after.keys) if key in where]
    if not pairs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    b, a = (np.array(side, dtype=np.int64) for side in zip(*pairs, strict=True))
    same = before.value[b] == after.value[a]  # an empty category that stayed empty persisted too
    return b[same], a[same]


def carried(previous: Previous, after: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Over `after`'s values: the ones to hold hidden, and the ones known from the previous release."""
    b, a = links(previous.structure, after)
    held = np.zeros(len(after.keys), dtype=bool)
    known = np.zeros(len(after.keys), dtype=bool)
    was_hidden = previous.hidden[b]
    held[a[was_hidden]] = True
    known[a[~was_hidden]] = True
    return held, known


def joint(previous: Previous, after: Structure) -> tuple[Structure, np.ndarray]:
    """Both windows as one structure (the previous window's values first), each persisting pair tied by
    an equation before = after; and, for each before value, its after value (-1: none persisted)."""
    s0, n0 = previous.structure, len(previous.structure.keys)
    b, a = links(s0, after)
    partner = np.full(n0, -1, dtype=np.int64)
    partner[b] = a
    shifted = [(h + n0, tuple(m + n0 for m in ms)) for h, ms in after.equations]
    tied = [(int(i), (int(j) + n0,)) for i, j in zip(b.tolist(), a.tolist(), strict=True)]

    def both(x: np.ndarray | None, y: np.ndarray | None, fill: float | bool) -> np.ndarray | None:
        if x is None and y is None:
            return None
        xs = np.full(n0, fill) if x is None else x
        ys = np.full(len(after.keys), fill) if y is None else y
        return np.concatenate([xs, ys])

    structure = Structure(
        keys=[*s0.keys, *after.keys],
        value=np.concatenate([s0.value, after.value]),
        persons=np.concatenate([s0.persons, after.persons]),
        top=np.concatenate([s0.top, after.top]),
        metric=[*s0.metric, *after.metric],
        block=[*s0.block, *after.block],
        equations=[*s0.equations, *shifted, *tied],
        floor=both(s0.floor, after.floor, 0.0),
        known_zero=both(s0.known_zero, after.known_zero, False),
    )
    return structure, partner


class JointAudit:
    """`flagged(secret)`: the protection rules over both windows, for successive masks of this one; each
    value flagged is named by this window's id (a flagged value of the previous window by its partner,
    or, with none, by this window's suppressed values in its group)."""

    def __init__(self, previous: Previous, after: Structure, **rules: Any) -> None:
        self.structure, self.partner = joint(previous, after)
        self.n0 = len(previous.structure.keys)
        self.before = np.asarray(previous.hidden, dtype=bool)
        idx, coef = equation_table(self.structure)
        self.rules = Protection(self.structure, idx, coef, **rules)
        self.idx = idx
        self.rows_ptr, self.rows = rows_of(idx, len(self.structure.keys))

    def given(self, known: np.ndarray) -> None:
        """What the rules flag with every value of this window hidden but the known ones: the previous
        release, the key sets and the persistence the reader is granted give these away on their own
        (a newcomer's categories, when its parent's and every neighbour's persisted). Hiding more here
        cannot help, so they are no reason to hide more (tests/unit/test_gate_across_time.py)."""
        mask = np.concatenate([self.before, ~np.asarray(known, dtype=bool)])
        self.rules.ignore[self.rules.flagged(mask)] = True
        self.rules.cache.clear()  # answers found before they were ignored

    def flagged(self, secret: np.ndarray) -> list[int]:
        mask = np.concatenate([self.before, np.asarray(secret, dtype=bool)])
        found = np.asarray(self.rules.flagged(mask), dtype=np.int64)
        now = found[found >= self.n0] - self.n0
        past = found[found < self.n0]
        partners = self.partner[past]
        out = set(now.tolist()) | set(partners[partners >= 0].tolist())
        rest = []
        for v in past[partners < 0].tolist():  # changed since: named by its hidden neighbours' partners
            near = self.near_partners(v, mask)
            if near:
                out.update(near)
            else:
                rest.append(v)
        if rest:  # no neighbour persisted: this window's suppressed values in its group
            for vars_, _ in self.rules.groups(mask):
                if np.isin(rest, vars_).any():
                    out.update((vars_[vars_ >= self.n0] - self.n0).tolist())
        return sorted(out)

    def near_partners(self, v: int, mask: np.ndarray) -> list[int]:
        """This window's ids of the hidden values that share an equation with the previous window's `v`
        and persisted: the way a change of `v` reaches this window. Named by its whole group instead
        (each suppressed value of this window in it), a value that changed since made the gate widen
        hundreds of values for one: at the morning peak it hid 46% of the persons in res-8 totals."""
        members = self.idx[self.rows[self.rows_ptr[v] : self.rows_ptr[v + 1]]].ravel()
        members = members[(members < self.n0) & (members != v)]
        members = members[mask[members]]
        partners = self.partner[members]
        return sorted(set(partners[partners >= 0].tolist()))
