"""`cityscreen up` never runs on the public development secrets: it makes its own once and keeps them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from cityscreen.errors import CityScreenError
from cityscreen.privacy import build_manifest
from cityscreen.settings import DEV_DP_SEED, DEV_OPERATOR_TOKEN, DEV_PSEUDONYM_SECRET, Settings
from services.stack.local_secrets import secrets_path, with_local_secrets


def settings_in(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path, **overrides)  # type: ignore[arg-type]


def test_the_public_defaults_are_replaced_and_kept_private(tmp_path: Path) -> None:
    live = with_local_secrets(settings_in(tmp_path))
    assert live.pseudonym_secret != DEV_PSEUDONYM_SECRET and len(live.pseudonym_secret) >= 32
    assert live.privacy.dp_seed != DEV_DP_SEED
    assert DEV_OPERATOR_TOKEN not in live.gateway.operator_tokens and len(live.gateway.operator_tokens) == 1
    path = secrets_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["dp_seed"] == live.privacy.dp_seed


def test_a_second_start_reuses_the_stored_secrets(tmp_path: Path) -> None:
    first = with_local_secrets(settings_in(tmp_path))
    second = with_local_secrets(settings_in(tmp_path))
    assert (first.pseudonym_secret, first.privacy.dp_seed, first.gateway.operator_tokens) == (
        second.pseudonym_secret,
        second.privacy.dp_seed,
        second.gateway.operator_tokens,
    )
    other = with_local_secrets(settings_in(tmp_path / "elsewhere"))
    assert other.pseudonym_secret != first.pseudonym_secret  # made at random, not derived


def test_values_set_by_the_operator_are_kept(tmp_path: Path) -> None:
    base = settings_in(tmp_path, pseudonym_secret="an-operator-chosen-key-0123456789")
    base = base.model_copy(
        update={
            "privacy": base.privacy.model_copy(update={"dp_seed": "operator-seed"}),
            "gateway": base.gateway.model_copy(update={"operator_tokens": ["tok-a", DEV_OPERATOR_TOKEN]}),
        }
    )
    live = with_local_secrets(base)
    assert live.pseudonym_secret == "an-operator-chosen-key-0123456789"
    assert live.privacy.dp_seed == "operator-seed"
    assert live.gateway.operator_tokens[1:] == ["tok-a"] and live.gateway.operator_tokens[0] != "tok-a"


def test_the_manifest_reveals_no_secret(tmp_path: Path) -> None:
    live = with_local_secrets(settings_in(tmp_path, privacy={"dp_enabled": True}))
    w = live.window
    text = json.dumps(build_manifest(live.privacy, window_s=w.window_s, resolutions=w.resolutions,
                                     flow_res=w.flow_res))  # fmt: skip
    for secret in (live.pseudonym_secret, live.privacy.dp_seed, *live.gateway.operator_tokens):
        assert secret not in text


def test_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    secrets_path(tmp_path).write_text("[1, 2")
    with pytest.raises(CityScreenError, match="delete it"):
        with_local_secrets(settings_in(tmp_path))
