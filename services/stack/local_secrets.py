"""The secrets of a local run: made at the first `cityscreen up` and kept under the data directory.

The development defaults (pseudonym key, DP seed, operator token) are public constants: with them anyone
could recompute the pseudonyms, or regenerate the DP noise and strip it from every released count. So
`up` replaces each one still at its default by a random value, made once and kept in
`<data_dir>/secrets.json` (mode 0600; `.data/` is not committed), and reused on later starts so that
pseudonyms and the map's URL stay stable. A value set in the environment (CITY_*) is kept as it is.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cityscreen.errors import CityScreenError
from cityscreen.settings import DEV_DP_SEED, DEV_OPERATOR_TOKEN, DEV_PSEUDONYM_SECRET, Settings

SECRETS_FILE = "secrets.json"
NAMES = ("pseudonym_secret", "dp_seed", "operator_token")


def secrets_path(data_dir: Path) -> Path:
    return data_dir / SECRETS_FILE


def load_or_create(path: Path) -> dict[str, str]:
    """The stored secrets, with any missing one made now (32 random bytes, URL-safe) and saved."""
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = {k: v for k, v in json.loads(path.read_text()).items() if isinstance(v, str) and v}
        except (json.JSONDecodeError, AttributeError) as exc:
            raise CityScreenError(
                f"{path} is not a JSON object of secrets: delete it and a new set is made at the next start "
                "(pseudonyms and the map's token change)"
            ) from exc
    missing = [name for name in NAMES if name not in stored]
    if missing:
        stored.update({name: secrets.token_urlsafe(32) for name in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(stored, out)
    return stored


def with_local_secrets(settings: Settings) -> Settings:
    """`settings` with every secret still at its public development default replaced by the stored one."""
    if settings.mode != "development":
        return settings  # production already refuses the defaults (Settings._refuse_placeholders)
    stored = load_or_create(secrets_path(settings.data_dir))
    updates: dict[str, object] = {}
    if settings.pseudonym_secret == DEV_PSEUDONYM_SECRET:
        updates["pseudonym_secret"] = stored["pseudonym_secret"]
    if settings.privacy.dp_seed == DEV_DP_SEED:
        updates["privacy"] = settings.privacy.model_copy(update={"dp_seed": stored["dp_seed"]})
    tokens = settings.gateway.operator_tokens
    if DEV_OPERATOR_TOKEN in tokens:
        kept = [t for t in tokens if t != DEV_OPERATOR_TOKEN]
        updates["gateway"] = settings.gateway.model_copy(
            update={"operator_tokens": [stored["operator_token"], *kept]}
        )
    return settings.model_copy(update=updates)
