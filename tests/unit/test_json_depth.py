"""The nesting bound checked before decoding: brackets in strings and escapes do not count."""

from __future__ import annotations

import pytest

from cityscreen.json_depth import is_too_deep, nesting_depth


@pytest.mark.parametrize(
    ("payload", "depth"),
    [
        (b"", 0),
        (b"12", 0),
        (b'"[[[["', 0),
        (b"{}", 1),
        (b'[{"a": 1}, {"b": "]]]"}]', 2),
        (b'[{"a": [1, {"b": 2}]}]', 4),
        (b'["a\\"[[", []]', 2),  # an escaped quote does not end the string
        (b'["a\\\\", [[]]]', 3),  # an escaped backslash does not escape the quote after it
        (b"[" * 5000 + b"]" * 5000, 5000),
        (b"[[[", 3),  # unterminated: counted as deep as it goes
    ],
)
def test_nesting_depth(payload: bytes, depth: int) -> None:
    assert nesting_depth(payload) == depth


def test_is_too_deep_only_past_the_limit() -> None:
    assert not is_too_deep(b"[[[]]]", 3)
    assert is_too_deep(b"[[[[]]]]", 3)
    assert not is_too_deep(b'["[[[[[[[[[["]', 3)
