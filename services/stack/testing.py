"""Helpers for tests that run the local stack: isolated settings and the shared jar cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cityscreen.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def jar_cache_dir() -> Path:
    """The developer's jar cache (`make setup` fills it), so test stacks never download the jars again."""
    base = Path(os.environ.get("CITY_DATA_DIR", REPO_ROOT / ".data"))
    if not base.is_absolute():
        base = REPO_ROOT / base
    return base / "kafka"


def isolated_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test stack: its own data dir and free ports, whatever the environment says."""
    base: Settings = load_settings(data_dir=data_dir)
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"port": 0, "controller_port": 0}),
            "redis": base.redis.model_copy(update={"port": 0}),
            **overrides,
        }
    )
