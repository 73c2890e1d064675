"""Pseudonym periods start at a quiet hour of the city (the offset), and windows never straddle them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cityscreen.aggregate.close import AggConfig
from cityscreen.pseudonym import period_of, period_start_ms, pseudonymize
from cityscreen.settings import Settings

DAY_S = 86_400
MIDNIGHT_UTC_MS = 1_795_219_200_000  # a UTC midnight (any would do)


@pytest.mark.parametrize(
    ("after_midnight_s", "period", "start_s"),
    [
        (0, -1, -4 * 3600),
        (19 * 3600 + 3599, -1, -4 * 3600),
        (20 * 3600, 0, 20 * 3600),
        (DAY_S - 1, 0, 20 * 3600),
    ],
)
def test_periods_start_at_the_offset(after_midnight_s: int, period: int, start_s: int) -> None:
    ts_ms = MIDNIGHT_UTC_MS + after_midnight_s * 1000
    base = MIDNIGHT_UTC_MS // (DAY_S * 1000)
    assert period_of(ts_ms, DAY_S, 72_000) == base + period
    assert period_start_ms(ts_ms, DAY_S, 72_000) == MIDNIGHT_UTC_MS + start_s * 1000


def test_the_key_changes_at_the_offset_not_at_utc_midnight() -> None:
    def pseudo(ts_ms: int) -> str:
        return pseudonymize("460001234567890", ts_ms=ts_ms, secret="k" * 20, rotation_s=DAY_S, domain="imsi",
                            offset_s=72_000)  # fmt: skip

    assert pseudo(MIDNIGHT_UTC_MS - 1) == pseudo(MIDNIGHT_UTC_MS)  # 07:59:59 and 08:00 in UTC+8
    four_local = MIDNIGHT_UTC_MS + 72_000_000
    assert pseudo(four_local - 1) != pseudo(four_local)


def test_the_aggregator_counts_presence_from_the_same_period_start() -> None:
    cfg = AggConfig.from_settings(Settings())
    window = MIDNIGHT_UTC_MS + 30 * 60_000  # 08:30 local: the stock reaches back two hours, over midnight UTC
    assert cfg.presence_since_ms(window) == window + 60_000 - 7_200_000
    just_after_rotation = MIDNIGHT_UTC_MS + 72_000_000 + 5 * 60_000
    assert cfg.presence_since_ms(just_after_rotation) == MIDNIGHT_UTC_MS + 72_000_000


def test_a_window_that_would_straddle_a_rotation_is_refused() -> None:
    with pytest.raises(ValidationError, match="multiples of CITY_WINDOW__WINDOW_S"):
        Settings(pseudonym_rotation_offset_s=72_030)
