"""The nesting bound checked before decoding: brackets in strings and escapes do not count."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def reference_depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    return 0


_text = st.text(alphabet='[]{}"\\\\ab:,', max_size=6)
_values = st.recursive(
    st.none() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400, derandomize=True, database=None)
@given(_values)
def test_the_scan_agrees_with_the_parsed_depth(value: object) -> None:
    """Strings full of brackets, quotes and backslashes: both the fast and the numpy path are exact."""
    assert nesting_depth(json.dumps(value).encode()) == reference_depth(value)
