"""Operator tokens and websocket Origins."""

import pytest

from services.gateway import auth

TOKENS = ["alpha-token", "beta-token"]


@pytest.mark.parametrize(
    ("token", "ok"),
    [("alpha-token", True), ("beta-token", True), ("alpha", False), ("", False), (None, False)],
)
def test_is_valid_token(token: str | None, ok: bool) -> None:
    assert auth.is_valid_token(token, TOKENS) is ok


def test_empty_configured_token_never_matches() -> None:
    assert not auth.is_valid_token("", ["", "x"])


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None)],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert auth.bearer_token(header) == token


def test_websocket_token_prefers_subprotocol_over_query() -> None:
    assert auth.websocket_token({"token": "q"}, ["cityscreen.v1", "bearer.s"]) == "s"
    assert auth.websocket_token({"token": "q"}, ["cityscreen.v1"]) == "q"
    assert auth.websocket_token({}, []) is None


def test_chosen_subprotocol_never_echoes_the_token() -> None:
    assert auth.chosen_subprotocol(["bearer.secret", "cityscreen.v1"]) == "cityscreen.v1"
    assert auth.chosen_subprotocol(["bearer.secret"]) is None


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("http://localhost:8000", "127.0.0.1:9999", True),  # listed
        ("http://localhost:8000/", "x", True),
        ("http://127.0.0.1:9999", "127.0.0.1:9999", True),  # same origin
        ("http://evil.example", "127.0.0.1:9999", False),
        ("http://127.0.0.1:9998", "127.0.0.1:9999", False),
        (None, "127.0.0.1:9999", True),  # not a browser
    ],
)
def test_is_allowed_origin(origin: str | None, host: str, ok: bool) -> None:
    assert auth.is_allowed_origin(origin, host, ["http://localhost:8000"]) is ok
