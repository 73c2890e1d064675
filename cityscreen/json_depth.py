"""A cheap bound on JSON nesting, checked before a record is decoded.

msgspec decodes nested arrays and objects recursively: about 5,000 levels of `[` (a 10 KB record) raise
RecursionError instead of a DecodeError, and a crash there took a whole batch with it. Valid events are
flat objects, alone or in one array (depth 2), so anything nested deeper than a small limit is refused
here, before any decoder sees it.
"""

from __future__ import annotations

import re

import numpy as np

_ESCAPE = re.compile(rb"\\.", re.DOTALL)  # a backslash and the byte it escapes
_KEEP = b'"[]{}'
_DROP = bytes(b for b in range(256) if b not in _KEEP)
_QUOTE = ord('"')
_STEP = np.zeros(256, dtype=np.int32)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def nesting_depth(payload: bytes) -> int:
    """The deepest nesting of arrays and objects in `payload` (0 for a scalar, 2 for `[{}]`).

    Brackets inside strings do not count. An unterminated string's brackets do: that can only overstate
    the depth of a record that is malformed anyway.
    """
    if b"\\" not in payload:
        # Fast path, all in C: with no escapes, quotes alternate open / close, so once adjacent quote
        # pairs are gone, a quote is left exactly when some string holds a bracket. With none left, the
        # brackets are all structural, and a flat event array reads `[{}{}...{}]`.
        structure = payload.translate(None, _DROP).replace(b'""', b"")
        if b'"' not in structure:
            if structure[:1] == b"[" and structure[-1:] == b"]" and not structure[1:-1].replace(b"{}", b""):
                return 2 if len(structure) > 2 else 1
            if structure in (b"", b"{}"):
                return len(structure) // 2
            return _depth_of(structure, strings=False)
    else:
        payload = _ESCAPE.sub(b"", payload)
    return _depth_of(payload.translate(None, _DROP), strings=True)


def _depth_of(structure: bytes, *, strings: bool) -> int:
    """Depth of quotes and brackets only; with `strings`, brackets after an odd number of quotes are
    inside a string and do not count."""
    codes = np.frombuffer(structure, dtype=np.uint8)
    steps = _STEP[codes]
    if strings:
        steps = steps * (np.cumsum(codes == _QUOTE) % 2 == 0)
    return int(np.cumsum(steps).max(initial=0))


def is_too_deep(payload: bytes, max_depth: int) -> bool:
    """Whether `payload` nests deeper than `max_depth`; cheap when it has few brackets at all."""
    if payload.count(b"[") + payload.count(b"{") <= max_depth:
        return False  # cannot nest deeper than it has openers
    return nesting_depth(payload) > max_depth
