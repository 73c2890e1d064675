"""Demographic categories: age bands, origin regions, merchant categories, and how raw values map to them.

The released category sets are fixed and small on purpose: every category is a potential small group,
so fewer, coarser categories keep more of the city above the privacy threshold.
"""

from __future__ import annotations

from cityscreen.events import AGE_BANDS, GENDERS

# Province / region codes on the wire (ID-document origin) -> the released origin region.
ORIGIN_REGIONS: dict[str, str] = {
    "GD": "guangdong",
    **dict.fromkeys(("HN", "HB", "JX", "HA"), "central"),  # Hunan, Hubei, Jiangxi, Henan
    **dict.fromkeys(("GX", "SC", "CQ", "GZ", "YN", "HI"), "southwest"),
    **dict.fromkeys(("FJ", "ZJ", "JS", "SH", "AH", "SD"), "east"),
    **dict.fromkeys(
        ("BJ", "TJ", "HE", "SX", "NM", "LN", "JL", "HL", "SN", "GS", "QH", "NX", "XJ", "XZ"), "north"
    ),
    **dict.fromkeys(("HK", "MO", "TW"), "hk-mo-tw"),
    "INTL": "international",
}
ORIGIN_GROUPS: tuple[str, ...] = (
    "guangdong",
    "central",
    "southwest",
    "east",
    "north",
    "hk-mo-tw",
    "international",
)
PROVINCE_CODES: tuple[str, ...] = tuple(ORIGIN_REGIONS)

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "food",
    "groceries",
    "retail",
    "transport",
    "entertainment",
    "services",
    "travel",
)
TRANSIT_MODES: tuple[str, ...] = ("metro", "bus")

# The fixed category set of every breakdown dimension: zeros are part of the set, so a released
# breakdown can never hide that a category is empty (the homogeneity leak).
BREAKDOWN_CATEGORIES: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "age_band": AGE_BANDS,
    "origin": ORIGIN_GROUPS,
    "category": MERCHANT_CATEGORIES,
    "mode": TRANSIT_MODES,
}


def origin_region(code: str) -> str:
    """The released region of an origin code; unknown codes raise KeyError (ingest rejects them first)."""
    return ORIGIN_REGIONS[code]


def age_band(birth_year: int, year: int) -> str:
    """Age band in `year` of someone born in `birth_year` (age taken as year difference)."""
    age = year - birth_year
    if age < 0:
        raise ValueError(f"birth_year {birth_year} is after the event year {year}")
    uppers = (("0-17", 17), ("18-24", 24), ("25-34", 34), ("35-44", 44), ("45-54", 54), ("55-64", 64))
    for band, upper in uppers:
        if age <= upper:
            return band
    return "65+"
