"""The privacy manifest: the privacy in force, as the gateway serves it and the map shows it."""

from __future__ import annotations

from typing import Any

from cityscreen.privacy.accountant import Budget, budget, noised_layers
from cityscreen.privacy.person_day import day_statement, now_budget
from cityscreen.settings import NowSettings, PrivacySettings, Settings

MANIFEST_VERSION = 1
LARGE_DAILY_EPSILON = 10.0

LAYER_NAMES = ("population", "active", "payments", "transit", "flows")
RULES = (
    "threshold: a value with fewer than k distinct persons is suppressed (shown as suppressed, not zero)",
    "empty categories of a fixed breakdown count as 0 persons, so they are suppressed too (no homogeneity)",
    "dominance: a payment amount is suppressed when one payer holds more than the dominance share",
    "each window length is released and audited on its own: people present per base window; spend, "
    "transit and flows over their own aligned windows, never also per minute, so no sum over time "
    "relates two releases",
    "complementary suppression across resolutions (parent = sum of children) and breakdowns "
    "(total = sum of categories): no suppressed value can be recovered by subtraction, and the "
    "suppressed values of one sum always add up to at least k persons",
    "time: only tumbling windows are released; longer spans are sums of released windows",
    "people present (population.persons) are a stock: each person counts once per window, at their "
    "last known position within the presence TTL, so consecutive windows share most of their persons; "
    "every window's values are thresholded on their own",
    "flows: each origin-destination pair is thresholded on distinct persons",
    "frames carry counts only, never identifiers or pseudonyms",
)
DP_RULES = (
    "noise on every released value, seeded per (secret, window, resolution, cell, statistic): "
    "replays are identical and re-reading cannot average the noise away",
    "noisy threshold: a count is released only when its noisy value is at least k",
    "complementary suppression is off: differences of noisy values stay noisy",
    "released totals are not forced to equal the sum of their noisy parts",
)
STOCK_RULES = (
    "people present and active persons carry noise drawn once per (secret, resolution, cell, statistic, "
    "true count), as the cell key method does: a count keeps the same noise in every window it holds, "
    "so a value that persists cannot be worked out by differencing or averaging windows; a released "
    "number that repeats tells only that its count did not change",
    "noisy threshold for them: a count is released only when its noisy value is at least k (and its exact "
    "value too)",
    "complementary suppression is off for them (differences stay noisy); spend, transit and flows keep "
    "exact values and complementary suppression",
)


def build_manifest(
    privacy: PrivacySettings,
    *,
    window_s: int,
    resolutions: list[int],
    flow_res: int | None = None,
    layer_windows_s: dict[str, int] | None = None,
    now: NowSettings | None = None,
    period_s: int = 86_400,
) -> dict[str, Any]:
    """A JSON-able description of the privacy applied to every frame; `layer_windows_s`: the window
    each layer covers (every layer: `window_s` when not given); `now`: the now layer's settings when it
    is on, whose budget per person-day (`period_s`, the pseudonym period) the manifest then states."""
    plan = budget(
        privacy,
        window_s=window_s,
        resolutions=sorted(resolutions, reverse=True),
        layers=noised_layers(privacy) or None,  # threshold mode: the plan only counts windows per day
    )
    manifest = _final_manifest(privacy, plan, window_s, resolutions, flow_res, layer_windows_s)
    if now is not None and now.enabled:
        manifest.update(now_entry(now, period_s=period_s, final_rho_per_day=final_rho_per_day(privacy, plan)))
    return manifest


def manifest_for(settings: Settings) -> dict[str, Any]:
    """The manifest of everything these settings release (what the sink stores and the gateway serves)."""
    w = settings.window
    return build_manifest(
        settings.privacy,
        window_s=w.window_s,
        resolutions=w.resolutions,
        flow_res=w.flow_res,
        layer_windows_s=w.layer_windows_s,
        now=settings.now,
        period_s=settings.pseudonym_rotation_s,
    )


def final_rho_per_day(privacy: PrivacySettings, plan: Budget) -> float | None:
    """zCDP per person-day of the final frames' noise in DP mode (None otherwise: no DP statement over
    a day; stock noise repeats its draws while a count holds, so its windows do not compose as
    independent releases: docs/privacy.md, "Noise on the stock"). Pure epsilon-DP is (epsilon^2 / 2)-zCDP
    (Bun and Steinke 2016), and zCDP adds up: each family's Laplace values, in each window of the day.
    (Converting the day's summed epsilon instead squares it: 1,440 windows of epsilon 1 gave
    rho 1,036,800 rather than 720 for one family.)"""
    if not privacy.dp_enabled:  # thresholds only, or stock noise: drawn per count, not composed per window
        return None
    if plan.mechanism == "laplace":
        return plan.epsilon_per_family**2 / 2 * len(plan.families) * plan.windows_per_day
    return plan.rho_per_family * len(plan.families) * plan.windows_per_day


def now_entry(now: NowSettings, *, period_s: int, final_rho_per_day: float | None) -> dict[str, Any]:
    """The now layer's part of the manifest: its mechanism and budget, and the person-day statement of
    everything released (the now layer and DP mode's final layer, composed by adding rho)."""
    b = now_budget(now, period_s=period_s)
    day = day_statement(b, final_rho_per_day)
    return {
        "now_layer": {
            "mechanism": "binary-tree continual release, exact keyed discrete Gaussian node noise",
            "privacy_unit": "person-day (one pseudonym period)",
            "tick_s": b.tick_s,
            "resolutions": list(b.resolutions),
            "max_changes_per_day": b.max_changes,
            "settle_s": now.settle_s,
            "sensitivity2": b.sensitivity2,
            "node_sd": round(float(b.sigma2) ** 0.5, 3),
            "rho_per_person_day": b.rho,
            "epsilon_per_person_day": b.epsilon,
            "delta": b.delta,
        },
        "person_day": day,
        "epsilon_per_person_day": day["total_epsilon"],
    }


def _final_manifest(
    privacy: PrivacySettings,
    plan: Budget,
    window_s: int,
    resolutions: list[int],
    flow_res: int | None,
    layer_windows_s: dict[str, int] | None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "version": MANIFEST_VERSION,
        "privacy_unit": "person",
        "min_persons": privacy.min_persons,
        "k": privacy.min_persons,
        "window_s": window_s,
        "layer_windows_s": layer_windows_s or dict.fromkeys(LAYER_NAMES, window_s),
        "windows_per_day": plan.windows_per_day,
        "resolutions": sorted(resolutions, reverse=True),
        "flow_res": flow_res,
        "dominance_share": privacy.dominance_share,
        "dp_enabled": privacy.dp_enabled,
        "noised_layers": list(LAYER_NAMES if privacy.dp_enabled else noised_layers(privacy) or ()),
        "mechanism": _mechanism(privacy, plan),
        "rules": list(
            RULES + (DP_RULES if privacy.dp_enabled else STOCK_RULES if privacy.stock_noise else ())
        ),
        "defaults": {
            "min_persons": 10,
            "dp_enabled": False,
            "stock_noise": True,
            "dp_mechanism": "laplace",
            "epsilon_per_window": 1.0,
        },
    }
    if noised_layers(privacy) == ():
        manifest.update(epsilon_per_window=0.0, epsilon_per_day=0.0, dp=None)
        return manifest
    eps_day = plan.epsilon_per_day if privacy.dp_enabled else None
    manifest.update(
        epsilon_per_window=plan.epsilon_per_window,
        epsilon_per_day=eps_day,
        dp={
            "mechanism": plan.mechanism,
            "delta": plan.delta,
            "composition": _composition(privacy, plan),
            "statistics_per_person_per_window": len(plan.families),
            "epsilon_per_statistic": plan.epsilon_per_family,
            "contribution_bounds": {
                "max_contributions_per_window": privacy.max_contributions_per_window,
                "max_amount_cny": privacy.max_amount_cny,
            },
            "noise_scale": {fam.name: round(plan.scale(fam), 3) for fam in plan.families},
        },
    )
    if eps_day is not None and eps_day > LARGE_DAILY_EPSILON:
        manifest["warning"] = (
            f"epsilon per person per day is {eps_day:,.0f}: differential privacy alone protects little "
            "for someone present all day; the k threshold and the rules above still apply to every value"
        )
    return manifest


def _composition(privacy: PrivacySettings, plan: Budget) -> str:
    if not privacy.dp_enabled:
        return (
            "per window; across windows the noise is drawn once per true count and repeated while it "
            "holds (cell key method), so windows do not add up as independent releases"
        )
    if plan.mechanism == "laplace":
        return "sequential (Laplace: sum of epsilons)"
    return "zero-concentrated DP, converted to (epsilon, delta)"


def _mechanism(privacy: PrivacySettings, plan: Budget) -> str:
    if privacy.dp_enabled:
        return plan.mechanism
    return f"{plan.mechanism} on people counts, threshold elsewhere" if privacy.stock_noise else "threshold"
