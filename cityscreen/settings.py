"""The one settings object: every tunable of CityScreen, read from `CITY_*` environment variables.

Built once at an entry point (the command line or an app factory) and passed down; nothing reads the
environment anywhere else. Nested groups use `__`, e.g. `CITY_PRIVACY__MIN_PERSONS=20`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that ship in examples and docs; refused outside development.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "dev-secret", "secret", "development-only"})
DEV_PSEUDONYM_SECRET = "development-only"
DEV_OPERATOR_TOKEN = "dev-operator-token"
DEV_DP_SEED = "cityscreen-dp"


class KafkaSettings(BaseModel):
    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]")
    partitions: int = Field(4, ge=1, le=256, description="partitions of every project topic at creation")
    port: int = Field(0, ge=0, le=65535, description="local broker port for `stack`; 0 picks a free one")
    controller_port: int = Field(0, ge=0, le=65535, description="local KRaft controller port; 0 = free")
    heap_mb: int = Field(512, ge=128, le=512, description="broker JVM heap in MB (at most 512)")
    version: str = Field("3.9.2", description="Apache Kafka version fetched from Maven Central")
    brokers: int = Field(1, ge=1, le=5, description="KRaft brokers `stack start` runs on loopback")
    replication_factor: int = Field(
        1, ge=1, le=5, description="replicas of every project and worker topic (3 on a real cluster)"
    )
    session_timeout_s: float = Field(
        60.0,
        ge=6.0,
        le=300.0,
        description="a worker silent this long (killed, frozen) leaves its group and its partitions move",
    )


class RedisSettings(BaseModel):
    url: str = Field("redis://127.0.0.1:6379/0", description="Redis the gate writes, the gateway reads")
    port: int = Field(0, ge=0, le=65535, description="local redis-server port for `stack`; 0 = free")
    history_s: int = Field(3600, ge=60, description="how long released frames stay queryable in Redis")


class WindowSettings(BaseModel):
    window_s: int = Field(60, ge=10, le=3600, description="event-time tumbling window length in seconds")
    grace_s: int = Field(30, ge=0, le=3600, description="lateness allowed before dead-lettering")
    h3_res: int = Field(8, ge=5, le=10, description="base H3 resolution of the aggregates")
    rollup_res: list[int] = Field([7, 6], description="coarser H3 resolutions rolled up from the base")
    flow_res: int = Field(6, ge=4, le=9, description="H3 resolution of origin-destination flows")
    max_batch_events: int = Field(20_000, ge=1, description="events taken per agent iteration")
    flush_s: float = Field(0.5, gt=0, description="longest wait before a partial batch is aggregated")
    trip_ttl_s: int = Field(
        7200, ge=60, description="how long a tap-in (or a last SIM cell) waits for its flow's other end"
    )
    idle_close_s: float = Field(
        5.0, gt=0, description="a partition with no new events for this long closes its open windows"
    )
    presence_ttl_s: int = Field(
        7200, ge=60, le=86_400, description="a person counts as present at their last position for this long"
    )
    # The grace holds a window's final frame back by grace_s; the gate then takes seconds of it. Computed
    # a few seconds after the end, a window's partials usually hold all its events already, so the gate
    # runs during the grace and the final frame needs only the close's partials to match.
    speculate_after_s: int = Field(
        10,
        ge=0,
        description="event-time seconds after a window's end at which a live feed's window is gated "
        "speculatively, during the grace (0, or not under grace_s: off)",
    )
    # People present is a stock: a minute already holds nearly everyone, so it stays per window_s. Event
    # layers count what happened inside the window, so a minute holds too few payers or riders per cell
    # to clear k; 15 minutes is the usual reporting step of city dashboards and still reads as "now".
    payments_window_s: int = Field(
        900, ge=10, le=3600, description="window of the spend layer (a multiple of window_s, epoch-aligned)"
    )
    transit_window_s: int = Field(
        900, ge=10, le=3600, description="window of the transit layer (a multiple of window_s, epoch-aligned)"
    )
    flows_window_s: int = Field(
        900, ge=10, le=3600, description="window of origin-destination flows (a multiple of window_s)"
    )

    @model_validator(mode="after")
    def _coarser_rollups(self) -> WindowSettings:
        bad = [r for r in self.rollup_res if r >= self.h3_res]
        if bad:
            raise ValueError(f"rollup_res {bad} must be coarser (smaller) than h3_res={self.h3_res}")
        if self.flow_res > self.h3_res:
            raise ValueError(f"flow_res={self.flow_res} must not be finer than h3_res={self.h3_res}")
        for layer, span_s in self.layer_windows_s.items():
            if span_s % self.window_s:
                raise ValueError(
                    f"CITY_WINDOW__{layer.upper()}_WINDOW_S ({span_s}) must be a multiple of "
                    f"CITY_WINDOW__WINDOW_S ({self.window_s}): a layer's window is made of whole base windows"
                )
        return self

    @property
    def layer_windows_s(self) -> dict[str, int]:
        """The window length of every released layer (population and active: the base window)."""
        return {
            "population": self.window_s,
            "active": self.window_s,
            "payments": self.payments_window_s,
            "transit": self.transit_window_s,
            "flows": self.flows_window_s,
        }

    @property
    def spans_s(self) -> dict[int, tuple[str, ...]]:
        """Window length -> the layers released together over windows of that length (base first)."""
        out: dict[int, tuple[str, ...]] = {}
        for layer, span_s in self.layer_windows_s.items():
            out[span_s] = (*out.get(span_s, ()), layer)
        return dict(sorted(out.items()))

    @property
    def resolutions(self) -> list[int]:
        """Every released resolution, finest first."""
        return sorted({self.h3_res, *self.rollup_res}, reverse=True)


# breakdowns whose small categories must not be provably present (issue 20); transit modes and lines
# are exempt by default: stations are public places, and a line key is there only when the line was used
PROTECTED_DIMENSIONS = ("gender", "age_band", "origin", "category")
BREAKDOWN_DIMENSIONS = (*PROTECTED_DIMENSIONS, "mode", "line")


class PrivacySettings(BaseModel):
    min_persons: int = Field(10, ge=10, description="k: fewest distinct persons behind any released value")
    dominance_share: float = Field(
        0.5, gt=0, le=1, description="an amount is suppressed when one payer holds more than this share"
    )
    interval_min_whole_numbers: int = Field(
        3,
        ge=3,
        description="a suppressed value's interval under all an observer knows holds at least this many "
        "whole numbers (only upward)",
    )
    presence_protected_dimensions: list[str] = Field(
        list(PROTECTED_DIMENSIONS),
        description="breakdowns whose categories under k persons an observer must not prove present "
        "(lower bound stays 0); may add mode and line, never drop one",
    )
    dp_enabled: bool = Field(False, description="add calibrated noise to released counts")
    across_time: bool = Field(
        False,
        description=(
            "threshold mode: gate each window with what the gate kept of the one before (temporal.py):"
            " hold values hidden before that did not change, audit both windows as one system. Off by "
            "default: it does not yet stop every finding of the attacker across time (docs/privacy.md)"
        ),
    )
    stock_noise: bool = Field(
        True,
        description=(
            "on by default, in threshold mode: people present and active persons (the per-window person "
            "counts) get DP noise and a noisy threshold instead of complementary suppression, so differences "
            "across time stay noisy; spend, transit and flows keep exact values and complementary "
            "suppression. CITY_PRIVACY__STOCK_NOISE=false gives exact threshold mode on every layer"
        ),
    )
    dp_mechanism: Literal["laplace", "discrete_gaussian"] = "laplace"
    epsilon_per_window: float = Field(1.0, gt=0, le=10, description="epsilon per person per window")
    delta: float = Field(1e-6, ge=0, lt=1e-3, description="delta, used by the discrete Gaussian mechanism")
    max_contributions_per_window: int = Field(
        4, ge=1, description="events one person may contribute to one statistic per window (DP bound)"
    )
    max_amount_cny: float = Field(
        2000.0, gt=0, description="payment amounts are clipped to this before summing (DP sensitivity bound)"
    )
    dp_seed: str = Field(
        DEV_DP_SEED, description="keys the per-cell noise stream (`up` replaces this public default)"
    )
    gate_processes: int = Field(
        2,
        ge=1,
        le=64,
        description="processes an aggregate worker gates windows in: each window in as many shards at once",
    )

    @field_validator("presence_protected_dimensions")
    @classmethod
    def _only_more_dimensions(cls, dims: list[str]) -> list[str]:
        missing = [d for d in PROTECTED_DIMENSIONS if d not in dims]
        unknown = [d for d in dims if d not in BREAKDOWN_DIMENSIONS]
        if missing or unknown:
            raise ValueError(f"keep {list(PROTECTED_DIMENSIONS)}, add only from {list(BREAKDOWN_DIMENSIONS)}")
        return dims


class NowSettings(BaseModel):
    """The provisional "now" layer: people present every tick under a budget per person-day
    (cityscreen/privacy/person_day.py), published by `cityscreen worker --role now`
    (cityscreen/now_engine.py). Its accuracy: `cityscreen privacy now-report`."""

    enabled: bool = Field(
        True, description="publish the now layer (`cityscreen up` starts `worker --role now`)"
    )
    tick_s: int = Field(2, ge=1, le=60, description="seconds between provisional releases (a tree tick)")
    epsilon_per_person_day: float = Field(
        3.0, gt=0, le=10, description="(epsilon, delta) of everything the now layer releases per person-day"
    )
    delta_per_person_day: float = Field(1e-6, gt=0, lt=1e-3, description="delta of that statement")
    max_changes_per_day: int = Field(
        8,
        ge=2,
        le=64,
        description="presence changes (arrive, move cell, leave) one person makes count per day and "
        "resolution; the last allowed one takes them off the now layer until the day ends",
    )
    settle_s: int = Field(
        600,
        ge=0,
        le=3600,
        description="a person moves to a cell on the now layer once there this long with no report from "
        "elsewhere, so the towers passed on a trip are not changes",
    )
    resolutions: list[int] = Field(
        [8, 7], description="resolutions with their own noisy tree; coarser ones are sums of the coarsest"
    )
    lateness_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="a partition's watermark trails its newest report by this much; a report behind it "
        "is left off the now layer (counted; the final frame still counts it)",
    )
    idle_s: float = Field(
        5.0, gt=0, le=300, description="a partition with no report for this long holds no tick back"
    )


class GatewaySettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535, description="gateway HTTP port; 0 = free")
    operator_tokens: list[str] = Field(
        [DEV_OPERATOR_TOKEN],
        description="bearer tokens for REST data and the websocket (`up` replaces the public default)",
    )
    allowed_origins: list[str] = Field(
        ["http://127.0.0.1:8000", "http://localhost:8000"], description="Origins allowed on /ws/live"
    )
    update_hz: float = Field(1.0, gt=0, le=10, description="most websocket updates per second per client")
    queue_frames: int = Field(2, ge=1, le=64, description="frames buffered per slow client (latest wins)")
    max_message_bytes: int = Field(16_384, ge=256, description="largest client websocket message accepted")
    heartbeat_s: float = Field(15.0, gt=0, description="seconds between server heartbeats")
    web_dist: Path = Field(Path("web/dist"), description="built web app served at /")
    data_since_ms: int | None = Field(
        None,
        ge=0,
        description="event time the pipeline's data begins (`up` sets it on a fresh run): a longer window "
        "that began earlier is shown as partial, its rates over the part covered; None: not known",
    )


class GeneratorSettings(BaseModel):
    city_file: Path | None = Field(None, description="city model JSON; None = the bundled Shenzhen model")
    seed: int = 42
    persons: int | None = Field(
        None, ge=1, description="synthetic population size; None = the city's census x its operator_share"
    )
    batch_events: int = Field(500, ge=1, le=10_000, description="events per Kafka record (JSON array)")


class Settings(BaseSettings):
    """Everything CityScreen can be told; placeholder secrets are refused outside development."""

    model_config = SettingsConfigDict(
        env_prefix="CITY_", env_nested_delimiter="__", env_file=None, extra="ignore"
    )

    mode: Literal["development", "production"] = Field(
        "development", description="production refuses placeholder secrets"
    )
    data_dir: Path = Field(Path(".data"), description="local stack data, caches, logs")
    pseudonym_secret: str = Field(
        DEV_PSEUDONYM_SECRET,
        description="HMAC key of the ingest pseudonyms (`up` replaces this public default)",
    )
    pseudonym_rotation_s: int = Field(86_400, ge=3600, description="pseudonym key period (default: daily)")
    pseudonym_rotation_offset_s: int = Field(
        72_000,
        ge=0,
        description="periods start this long after UTC midnight: 72000 = 04:00 in UTC+8, a quiet hour",
    )
    max_event_skew_s: int = Field(
        7 * 86_400, ge=60, description="events further than this from now are rejected at ingest"
    )
    max_payload_bytes: int = Field(1_048_576, ge=1024, description="largest record accepted at ingest")
    max_amount_cny: float = Field(
        100_000.0, gt=0, description="largest payment accepted at ingest (mobile payments cap far lower)"
    )
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    window: WindowSettings = WindowSettings()
    privacy: PrivacySettings = PrivacySettings()
    now: NowSettings = NowSettings()
    gateway: GatewaySettings = GatewaySettings()
    generator: GeneratorSettings = GeneratorSettings()

    @property
    def chained_gate(self) -> bool:
        """Whether a window's gate needs what it kept of the window before (threshold mode, across time)."""
        return self.privacy.across_time and not self.privacy.dp_enabled

    @property
    def speculate_ms(self) -> int | None:
        """When, after a live window's end, its partials are computed and gated ahead of its close (None:
        never). Not with the chained gate: a window's gate then waits for the one before it."""
        after_s, grace_s = self.window.speculate_after_s, self.window.grace_s
        return after_s * 1000 if 0 < after_s < grace_s and not self.chained_gate else None

    @model_validator(mode="after")
    def _windows_inside_periods(self) -> Settings:
        # a window that straddles a pseudonym rotation would count a person under two keys
        for layer, w in self.window.layer_windows_s.items():
            if self.pseudonym_rotation_s % w or self.pseudonym_rotation_offset_s % w:
                name = "WINDOW_S" if layer in ("population", "active") else f"{layer.upper()}_WINDOW_S"
                raise ValueError(
                    f"CITY_PSEUDONYM_ROTATION_S ({self.pseudonym_rotation_s}) and "
                    f"CITY_PSEUDONYM_ROTATION_OFFSET_S ({self.pseudonym_rotation_offset_s}) must be "
                    f"multiples of CITY_WINDOW__{name} ({w}), so that no window straddles a pseudonym "
                    f"rotation"
                )
        return self

    @model_validator(mode="after")
    def _now_layer_fits(self) -> Settings:
        if self.pseudonym_rotation_s % self.now.tick_s:
            raise ValueError(
                f"CITY_NOW__TICK_S ({self.now.tick_s}) must divide CITY_PSEUDONYM_ROTATION_S "
                f"({self.pseudonym_rotation_s}): the now layer's tree covers one period in whole ticks"
            )
        return self

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.mode == "development":
            return self
        problems = []
        if self.pseudonym_secret.strip().lower() in PLACEHOLDER_SECRETS or len(self.pseudonym_secret) < 16:
            problems.append(
                "CITY_PSEUDONYM_SECRET is a placeholder or shorter than 16 characters: "
                "set it to a long random value (e.g. `openssl rand -hex 32`)"
            )
        if any(t in PLACEHOLDER_SECRETS or t == DEV_OPERATOR_TOKEN for t in self.gateway.operator_tokens):
            problems.append(
                "CITY_GATEWAY__OPERATOR_TOKENS holds a development token: set real tokens, "
                "e.g. CITY_GATEWAY__OPERATOR_TOKENS='[\"<random>\"]'"
            )
        if (self.privacy.dp_enabled or self.privacy.stock_noise) and self.privacy.dp_seed == DEV_DP_SEED:
            problems.append(
                "CITY_PRIVACY__DP_SEED is the default: set a secret seed so noise cannot be replayed"
            )
        if problems:
            raise ValueError("refusing to start in production mode: " + "; ".join(problems))
        return self


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def to_env(settings: Settings) -> dict[str, str]:
    """The settings as CITY_* variables, so a child process (worker, gateway) rebuilds the same object."""
    import json

    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                if subvalue is None:
                    continue
                env[f"CITY_{name.upper()}__{sub.upper()}"] = (
                    subvalue if isinstance(subvalue, str) else json.dumps(subvalue)
                )
        elif value is not None:
            env[f"CITY_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env
