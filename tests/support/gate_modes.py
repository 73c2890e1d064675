"""The gate's modes, named for tests that assert one of them whatever the default is.

Stock noise is the default (`PrivacySettings.stock_noise`): people present and active persons are noised,
everything else is gated exactly. A test about exact values, complementary suppression or the attackers
on exact releases asks for `THRESHOLD`: exact threshold mode on every layer."""

from __future__ import annotations

from cityscreen.settings import PrivacySettings

THRESHOLD = PrivacySettings(stock_noise=False)


def threshold(**overrides: object) -> PrivacySettings:
    """Exact threshold mode on every layer (stock noise off), with `overrides`."""
    return PrivacySettings.model_validate({"stock_noise": False, **overrides})
