"""Settings from the environment, read once into a frozen object.

The ``SPENDSENTRY_*`` names are public interface (see docs/reference/configuration.md, checked against this module by tests/test_docs.py).
"""

from __future__ import annotations

import os
import re
import ssl
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from schemas.errors import ConfigError, ValidationError
from schemas.focus import DEFAULT_TAG_MAP, parse_tag_map
from schemas.usage import DIMENSIONS
from alerts.lifecycle import SeverityPolicy
from streams.core.attribution import AttributionConfig, TagPolicy
from streams.core.engine import EngineConfig

DEFAULT_SLACK_API_URL = "https://slack.com/api/"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be >= {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be >= {minimum}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _delays(env: Mapping[str, str], name: str) -> tuple[float, ...]:
    """Comma-separated seconds, each >= 0 and finite (e.g. ``5,300,1800``)."""
    out = []
    for item in _list(env, name):
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"{name}={env[name]!r}: {item!r} is not a number of seconds") from None
        if not 0 <= value < float("inf"):
            raise ConfigError(f"{name}={env[name]!r}: delays must be finite seconds >= 0")
        out.append(value)
    return tuple(out)


def parse_group_bys(text: str) -> tuple[tuple[str, ...], ...]:
    """``"model;team,model"`` -> ``(("model",), ("team", "model"))``.

    The first family is the partition key; every other family must contain its dimensions so
    that each key's events all arrive on one partition (no repartition hop).
    """
    families: list[tuple[str, ...]] = []
    for chunk in text.split(";"):
        dims = tuple(d.strip() for d in chunk.split(",") if d.strip())
        if not dims:
            continue
        for dim in dims:
            if dim not in DIMENSIONS and not (dim.startswith("tags.") and len(dim) > 5):
                raise ConfigError(f"SPENDSENTRY_GROUP_BY: unknown dimension {dim!r} (use {', '.join(DIMENSIONS)} or tags.<name>)")
        families.append(dims)
    if not families:
        raise ConfigError("SPENDSENTRY_GROUP_BY: needs at least one dimension")
    first = set(families[0])
    for dims in families[1:]:
        if not first <= set(dims):
            raise ConfigError(
                f"SPENDSENTRY_GROUP_BY: group-by {','.join(dims)} must include the partition key "
                f"{','.join(families[0])} (the first group-by), so every key lives on one partition"
            )
    return tuple(families)


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """Broker security for production clusters (SASL and/or TLS); PLAINTEXT by default."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.protocol:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka clients (producer, consumer, admin)."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                           sasl_plain_password=self.sasl_password)
        if (context := self.ssl_context()) is not None:
            options["ssl_context"] = context
        return options

    def faust_credentials(self) -> Any:
        """The ``broker_credentials`` for faust.App, or None for PLAINTEXT."""
        import faust

        if self.protocol == "PLAINTEXT":
            return None
        if self.protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context())
        return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                     ssl_context=self.ssl_context(), mechanism=self.sasl_mechanism)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaSecurity:
        protocol = (env.get("SPENDSENTRY_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise ConfigError(f"SPENDSENTRY_KAFKA_SECURITY_PROTOCOL={protocol!r}: use one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}")
        mechanism = (env.get("SPENDSENTRY_KAFKA_SASL_MECHANISM") or "PLAIN").upper()
        if mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"SPENDSENTRY_KAFKA_SASL_MECHANISM={mechanism!r}: use one of {', '.join(SASL_MECHANISMS)}")
        security = cls(
            protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=env.get("SPENDSENTRY_KAFKA_SASL_USERNAME") or None,
            sasl_password=env.get("SPENDSENTRY_KAFKA_SASL_PASSWORD") or None,
            ssl_cafile=env.get("SPENDSENTRY_KAFKA_SSL_CAFILE") or None,
            ssl_certfile=env.get("SPENDSENTRY_KAFKA_SSL_CERTFILE") or None,
            ssl_keyfile=env.get("SPENDSENTRY_KAFKA_SSL_KEYFILE") or None,
        )
        if protocol.startswith("SASL") and not (security.sasl_username and security.sasl_password):
            raise ConfigError(f"SPENDSENTRY_KAFKA_SECURITY_PROTOCOL={protocol} needs SPENDSENTRY_KAFKA_SASL_USERNAME "
                              "and SPENDSENTRY_KAFKA_SASL_PASSWORD")
        return security


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = field(default=None, repr=False)
    slack_token: str | None = field(default=None, repr=False)
    slack_channel: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    topic_prefix: str = "spendsentry"
    app_id: str = "spendsentry"
    partitions: int = 8
    group_bys: tuple[tuple[str, ...], ...] = (("model",), ("model", "service"))
    bucket_seconds: float = 60.0
    allowed_lateness_s: float = 10.0
    idle_close_s: float = 5.0
    prices_file: Path | None = None
    data_dir: Path = field(default_factory=lambda: Path(".spendsentry"))
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    replication_factor: int = 1
    max_body_bytes: int = 1024 * 1024
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    slack_signing_secret: str | None = field(default=None, repr=False)
    pagerduty_api_url: str = "https://events.pagerduty.com"
    webhook_allowlist: tuple[str, ...] = ()
    webhook_timeout_s: float = 10.0
    retry_period_s: float = 72 * 3600.0
    #: delays (s) before each long-period delivery retry round; empty: the Standard Webhooks schedule
    retry_delays: tuple[float, ...] = ()
    group_window_s: float = 1.5
    budgets_file: Path | None = None
    #: attribution (streams/core/attribution.py): tag policy, segment horizon, allocation rules
    required_tags: tuple[str, ...] = ()
    untagged_max_share: float = 0.1
    untagged_window_s: float = 3600.0
    untagged_min_usd: float = 1.0
    segment_horizon_s: float = 86_400.0
    max_segments: int = 1000
    allocation_file: Path | None = None
    #: GPU usage (streams/worker/gpu_agent.py): idle-waste detector and purchase-option prices
    gpu_idle_threshold: float = 0.05
    gpu_idle_minutes: float = 30.0
    gpu_prices_file: Path | None = None
    warning_usd_per_hour: float = 10.0
    critical_usd_per_hour: float = 100.0
    #: read-only API tokens, the explicit opt-out of "no token: loopback only", web timeouts
    read_tokens: tuple[str, ...] = field(default=(), repr=False)
    allow_unauthenticated: bool = False
    web_read_timeout_s: float = 30.0
    #: FOCUS import: event field -> tag keys (``SPENDSENTRY_FOCUS_TAG_MAP``; docs: concepts/cost-sources.md)
    focus_tag_map: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_TAG_MAP))
    #: the dashboard's address in digests' links; None: http://<web host>:<web port>
    public_url: str | None = None
    #: a period's digest goes out this long after the period closed (late buckets closed by then)
    digest_delay_s: float = 600.0

    #: event-time guard, key cap per partition and family, health's stall bound, table retention
    max_future_s: float = 300.0
    max_keys: int = 10_000
    stall_s: float = 120.0
    retention_s: float = 30 * 86_400.0

    @property
    def control_topic(self) -> str:
        """Operator feedback ("expected"), produced only by the worker's API and Slack handler."""
        return f"{self.topic_prefix}.control"

    @property
    def dashboard_base_url(self) -> str:
        return self.public_url or f"http://{self.web_host}:{self.web_port}"

    @property
    def gpu_topic(self) -> str:
        return f"{self.topic_prefix}.gpu"

    @property
    def usage_topic(self) -> str:
        return f"{self.topic_prefix}.usage"

    @property
    def alerts_topic(self) -> str:
        return f"{self.topic_prefix}.alerts"

    @property
    def deadletter_topic(self) -> str:
        return f"{self.topic_prefix}.deadletter"

    @property
    def undeliverable_topic(self) -> str:
        return f"{self.topic_prefix}.alerts.undeliverable"

    @property
    def budget_spend_topic(self) -> str:
        """Internal: per-partition budget spend partials, keyed by budget id."""
        return f"{self.topic_prefix}.budget-spend"

    @property
    def bootstrap(self) -> str:
        """The broker list as aiokafka wants it (``host:port,...``)."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";") if part)

    def engine_config(self) -> EngineConfig:
        """The engine settings: the worker and the backtest must use the very same ones."""
        attribution = AttributionConfig(
            policy=TagPolicy(self.required_tags, self.untagged_max_share, self.untagged_window_s, self.untagged_min_usd),
            alert_key=self.group_bys[0], horizon_s=self.segment_horizon_s, max_segments=self.max_segments)
        return EngineConfig(bucket_seconds=self.bucket_seconds, allowed_lateness_s=self.allowed_lateness_s,
                            group_bys=self.group_bys, attribution=attribution,
                            severity=SeverityPolicy(self.warning_usd_per_hour, self.critical_usd_per_hour),
                            max_keys=self.max_keys, max_future_s=self.max_future_s, clock=time.time)

    def backtest_engine_config(self) -> EngineConfig:
        """The worker's engine settings for one engine that holds every partition's keys (``spendsentry
        backtest``): its key cap is a whole worker's, ``partitions x SPENDSENTRY_MAX_KEYS``, so a
        file with more keys than one partition holds is judged as the worker would, not folded."""
        return replace(self.engine_config(), max_keys=self.max_keys * self.partitions)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        secret = env.get("SPENDSENTRY_WEBHOOK_SECRET") or None
        urls = _list(env, "SPENDSENTRY_WEBHOOK_URLS")
        if urls and not secret:
            raise ConfigError("SPENDSENTRY_WEBHOOK_URLS is set but SPENDSENTRY_WEBHOOK_SECRET (whsec_...) is not")
        if secret and not secret.startswith("whsec_"):
            raise ConfigError("SPENDSENTRY_WEBHOOK_SECRET: must start with whsec_ (Standard Webhooks format)")
        slack_token = env.get("SPENDSENTRY_SLACK_TOKEN") or None
        slack_channel = env.get("SPENDSENTRY_SLACK_CHANNEL") or None
        if bool(slack_token) != bool(slack_channel):
            raise ConfigError("SPENDSENTRY_SLACK_TOKEN and SPENDSENTRY_SLACK_CHANNEL must be set together")
        prices = env.get("SPENDSENTRY_PRICES_FILE")
        return cls(
            broker=env.get("SPENDSENTRY_BROKER") or cls.broker,
            web_port=_int(env, "SPENDSENTRY_WEB_PORT", cls.web_port),
            web_host=env.get("SPENDSENTRY_WEB_HOST") or cls.web_host,
            webhook_urls=urls,
            webhook_secret=secret,
            slack_token=slack_token,
            slack_channel=slack_channel,
            slack_api_url=env.get("SPENDSENTRY_SLACK_API_URL") or DEFAULT_SLACK_API_URL,
            topic_prefix=env.get("SPENDSENTRY_TOPIC_PREFIX") or cls.topic_prefix,
            app_id=env.get("SPENDSENTRY_APP_ID") or cls.app_id,
            partitions=_int(env, "SPENDSENTRY_PARTITIONS", cls.partitions),
            group_bys=parse_group_bys(env["SPENDSENTRY_GROUP_BY"]) if env.get("SPENDSENTRY_GROUP_BY") else cls.group_bys,
            bucket_seconds=_float(env, "SPENDSENTRY_BUCKET_SECONDS", cls.bucket_seconds, minimum=1.0),
            allowed_lateness_s=_float(env, "SPENDSENTRY_ALLOWED_LATENESS_SECONDS", cls.allowed_lateness_s),
            idle_close_s=_float(env, "SPENDSENTRY_IDLE_CLOSE_SECONDS", cls.idle_close_s, minimum=0.5),
            prices_file=Path(prices) if prices else None,
            data_dir=Path(env.get("SPENDSENTRY_DATA_DIR") or ".spendsentry"),
            api_tokens=_tokens(env, "SPENDSENTRY_API_TOKENS"),
            replication_factor=_int(env, "SPENDSENTRY_REPLICATION_FACTOR", cls.replication_factor),
            max_body_bytes=_int(env, "SPENDSENTRY_MAX_BODY_BYTES", cls.max_body_bytes),
            kafka_security=KafkaSecurity.from_env(env),
            slack_signing_secret=env.get("SPENDSENTRY_SLACK_SIGNING_SECRET") or None,
            pagerduty_api_url=env.get("SPENDSENTRY_PAGERDUTY_API_URL") or cls.pagerduty_api_url,
            webhook_allowlist=_list(env, "SPENDSENTRY_WEBHOOK_ALLOWLIST"),
            webhook_timeout_s=_float(env, "SPENDSENTRY_WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_s, minimum=0.1),
            retry_period_s=_float(env, "SPENDSENTRY_DELIVERY_RETRY_SECONDS", cls.retry_period_s),
            retry_delays=_delays(env, "SPENDSENTRY_DELIVERY_RETRY_SCHEDULE"),
            group_window_s=_float(env, "SPENDSENTRY_GROUP_WINDOW_SECONDS", cls.group_window_s),
            budgets_file=Path(env["SPENDSENTRY_BUDGETS_FILE"]) if env.get("SPENDSENTRY_BUDGETS_FILE") else None,
            **_attribution_env(env),
            warning_usd_per_hour=_float(env, "SPENDSENTRY_SEVERITY_WARNING_USD_PER_HOUR", cls.warning_usd_per_hour),
            critical_usd_per_hour=_float(env, "SPENDSENTRY_SEVERITY_CRITICAL_USD_PER_HOUR", cls.critical_usd_per_hour),
            **_security_env(env),
            focus_tag_map=_focus_tag_map(env),
            public_url=_public_url(env.get("SPENDSENTRY_PUBLIC_URL") or None),
            digest_delay_s=_float(env, "SPENDSENTRY_DIGEST_DELAY_SECONDS", cls.digest_delay_s, minimum=0.0),
            max_future_s=_float(env, "SPENDSENTRY_MAX_FUTURE_SECONDS", cls.max_future_s),
            max_keys=_int(env, "SPENDSENTRY_MAX_KEYS", cls.max_keys, minimum=1),
            stall_s=_float(env, "SPENDSENTRY_STALL_SECONDS", cls.stall_s, minimum=1.0),
            retention_s=_float(env, "SPENDSENTRY_RETENTION_SECONDS", cls.retention_s, minimum=60.0),
        )


def _focus_tag_map(env: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    try:
        return parse_tag_map(env.get("SPENDSENTRY_FOCUS_TAG_MAP") or "")
    except ValidationError as exc:
        raise ConfigError(f"SPENDSENTRY_FOCUS_TAG_MAP: {exc}") from None


def _attribution_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The tag policy, segment, allocation and GPU settings (docs: concepts/attribution.md, concepts/gpu.md)."""
    required = _list(env, "SPENDSENTRY_REQUIRED_TAGS")
    for dim in required:
        if dim not in DIMENSIONS and not (dim.startswith("tags.") and len(dim) > 5):
            raise ConfigError(f"SPENDSENTRY_REQUIRED_TAGS: unknown dimension {dim!r} (use {', '.join(DIMENSIONS)} or tags.<name>)")
    share = _float(env, "SPENDSENTRY_UNTAGGED_MAX_SHARE", Settings.untagged_max_share)
    if share > 1.0:
        raise ConfigError(f"SPENDSENTRY_UNTAGGED_MAX_SHARE={share}: must be a share between 0 and 1")
    threshold = _float(env, "SPENDSENTRY_GPU_IDLE_THRESHOLD", Settings.gpu_idle_threshold)
    if threshold > 1.0:
        raise ConfigError(f"SPENDSENTRY_GPU_IDLE_THRESHOLD={threshold}: must be a utilization between 0 and 1")
    allocation = env.get("SPENDSENTRY_ALLOCATION_FILE")
    gpu_prices = env.get("SPENDSENTRY_GPU_PRICES_FILE")
    return {
        "required_tags": required,
        "untagged_max_share": share,
        "untagged_window_s": _float(env, "SPENDSENTRY_UNTAGGED_WINDOW_SECONDS", Settings.untagged_window_s, minimum=60.0),
        "untagged_min_usd": _float(env, "SPENDSENTRY_UNTAGGED_MIN_USD", Settings.untagged_min_usd),
        "segment_horizon_s": _float(env, "SPENDSENTRY_SEGMENT_HORIZON_SECONDS", Settings.segment_horizon_s, minimum=3600.0),
        "max_segments": _int(env, "SPENDSENTRY_MAX_SEGMENTS", Settings.max_segments, minimum=10),
        "allocation_file": Path(allocation) if allocation else None,
        "gpu_idle_threshold": threshold,
        "gpu_idle_minutes": _float(env, "SPENDSENTRY_GPU_IDLE_MINUTES", Settings.gpu_idle_minutes, minimum=0.0),
        "gpu_prices_file": Path(gpu_prices) if gpu_prices else None,
    }


#: shortest accepted API token (characters) and webhook secret key (bytes, as subscriptions require)
MIN_TOKEN_CHARS = 16
MIN_SECRET_BYTES = 24
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _tokens(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    tokens = _list(env, name)
    for index, token in enumerate(tokens):
        if len(token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"{name}: token #{index + 1} has {len(token)} characters; use at least "
                              f"{MIN_TOKEN_CHARS} random ones (e.g. `openssl rand -hex 24`)")
    return tokens


def _security_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Tokens, secrets and the web bind, checked at start (docs: operations/security.md)."""
    from alerts.signing import decode_secret

    secret = env.get("SPENDSENTRY_WEBHOOK_SECRET")
    if secret and len(decode_secret(secret)) < MIN_SECRET_BYTES:
        raise ConfigError(f"SPENDSENTRY_WEBHOOK_SECRET: decodes to {len(decode_secret(secret))} bytes; use at least "
                          f"{MIN_SECRET_BYTES} random bytes (whsec_ + base64)")
    api_tokens, read_tokens = _tokens(env, "SPENDSENTRY_API_TOKENS"), _tokens(env, "SPENDSENTRY_READ_TOKENS")
    opt_out = env.get("SPENDSENTRY_ALLOW_UNAUTHENTICATED", "")
    if opt_out not in ("", "0", "1"):
        raise ConfigError(f"SPENDSENTRY_ALLOW_UNAUTHENTICATED={opt_out!r}: use 1 or 0")
    host = env.get("SPENDSENTRY_WEB_HOST") or Settings.web_host
    if not (api_tokens or read_tokens) and host not in LOOPBACK_HOSTS and opt_out != "1":
        raise ConfigError(f"SPENDSENTRY_WEB_HOST={host}: serving the API beyond loopback needs tokens "
                          "(set SPENDSENTRY_API_TOKENS and/or SPENDSENTRY_READ_TOKENS), or set "
                          "SPENDSENTRY_ALLOW_UNAUTHENTICATED=1 to serve it open on purpose")
    return {"read_tokens": read_tokens, "allow_unauthenticated": opt_out == "1",
            "web_read_timeout_s": _float(env, "SPENDSENTRY_WEB_READ_TIMEOUT_SECONDS", Settings.web_read_timeout_s,
                                         minimum=0.1)}


def _public_url(url: str | None) -> str | None:
    if url is not None and not re.match(r"^https?://[^/\s?#]+(/\S*)?$", url):
        raise ConfigError(f"SPENDSENTRY_PUBLIC_URL={url!r}: must be an http(s) URL (the dashboard's address)")
    return url.rstrip("/") if url else None
