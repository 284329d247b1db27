"""Settings from the environment: public names, defaults and precise errors."""

from __future__ import annotations

import pytest

from schemas.errors import ConfigError
from streams.config import Settings, parse_group_bys

SECRET = "whsec_" + "QUFB" * 8  # 24 bytes
TOKEN = "t" * 16


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.broker == "kafka://127.0.0.1:9092" and settings.bootstrap == "127.0.0.1:9092"
    assert (settings.usage_topic, settings.alerts_topic, settings.deadletter_topic) == (
        "spendsentry.usage", "spendsentry.alerts", "spendsentry.deadletter")
    assert settings.group_bys == (("model",), ("model", "service"))
    assert settings.slack_api_url == "https://slack.com/api/"


def test_public_names_are_read() -> None:
    settings = Settings.from_env({
        "SPENDSENTRY_BROKER": "kafka://k1:9092;kafka://k2:9092", "SPENDSENTRY_WEB_PORT": "7000",
        "SPENDSENTRY_WEBHOOK_URLS": "http://a/hook, http://b/hook", "SPENDSENTRY_WEBHOOK_SECRET": SECRET,
        "SPENDSENTRY_SLACK_TOKEN": "xoxb-1", "SPENDSENTRY_SLACK_CHANNEL": "#alerts",
        "SPENDSENTRY_SLACK_API_URL": "http://127.0.0.1:9/api/", "SPENDSENTRY_TOPIC_PREFIX": "acme",
    })
    assert settings.bootstrap == "k1:9092,k2:9092" and settings.web_port == 7000
    assert settings.webhook_urls == ("http://a/hook", "http://b/hook")
    assert settings.usage_topic == "acme.usage"
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize("env, message", [
    ({"SPENDSENTRY_WEB_PORT": "x"}, "SPENDSENTRY_WEB_PORT='x': must be an integer"),
    ({"SPENDSENTRY_WEBHOOK_URLS": "http://a"}, "SPENDSENTRY_WEBHOOK_SECRET (whsec_...) is not"),
    ({"SPENDSENTRY_WEBHOOK_SECRET": "abc"}, "must start with whsec_"),
    ({"SPENDSENTRY_SLACK_TOKEN": "xoxb"}, "must be set together"),
    ({"SPENDSENTRY_GROUP_BY": "model;team"}, "must include the partition key model"),
    ({"SPENDSENTRY_GROUP_BY": "colour"}, "unknown dimension 'colour'"),
])
def test_errors_name_the_setting(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_group_bys() -> None:
    assert parse_group_bys("model; team,model ;tags.tenant,model") == (
        ("model",), ("team", "model"), ("tags.tenant", "model"))


def test_severity_thresholds_reach_the_engine() -> None:
    config = Settings.from_env({"SPENDSENTRY_SEVERITY_WARNING_USD_PER_HOUR": "50",
                                "SPENDSENTRY_SEVERITY_CRITICAL_USD_PER_HOUR": "500"}).engine_config()
    assert (config.severity.warning_usd_per_hour, config.severity.critical_usd_per_hour) == (50.0, 500.0)
    assert config.severity.severity(excess_usd=0.05, bucket_seconds=60) == "info"  # $3/h never pages


@pytest.mark.parametrize("env, message", [
    ({"SPENDSENTRY_API_TOKENS": "a"}, "SPENDSENTRY_API_TOKENS: token #1 has 1 characters; use at least 16"),
    ({"SPENDSENTRY_READ_TOKENS": f"{TOKEN},short"}, "SPENDSENTRY_READ_TOKENS: token #2 has 5 characters"),
    ({"SPENDSENTRY_WEBHOOK_SECRET": "whsec_AA=="}, "SPENDSENTRY_WEBHOOK_SECRET: decodes to 1 bytes; use at least 24"),
    ({"SPENDSENTRY_WEB_HOST": "0.0.0.0"}, "SPENDSENTRY_WEB_HOST=0.0.0.0: serving the API beyond loopback needs tokens"),
    ({"SPENDSENTRY_ALLOW_UNAUTHENTICATED": "yes"}, "SPENDSENTRY_ALLOW_UNAUTHENTICATED='yes': use 1 or 0"),
])
def test_weak_credentials_and_open_binds_are_refused_at_start(env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_binding_beyond_loopback_needs_tokens_or_the_explicit_opt_out() -> None:
    assert Settings.from_env({"SPENDSENTRY_WEB_HOST": "0.0.0.0", "SPENDSENTRY_READ_TOKENS": TOKEN}).read_tokens == (TOKEN,)
    assert Settings.from_env({"SPENDSENTRY_WEB_HOST": "0.0.0.0", "SPENDSENTRY_API_TOKENS": TOKEN}).api_tokens == (TOKEN,)
    assert Settings.from_env({"SPENDSENTRY_WEB_HOST": "0.0.0.0",
                              "SPENDSENTRY_ALLOW_UNAUTHENTICATED": "1"}).allow_unauthenticated
    assert Settings.from_env({"SPENDSENTRY_WEB_HOST": "::1"}).web_host == "::1"


def test_a_backtest_holds_as_many_keys_as_a_whole_worker() -> None:
    """One engine holds every partition's keys in a backtest: its cap is partitions x MAX_KEYS (with
    the worker's per-partition cap, a file of 20,000 models folded half of them into __other__)."""
    settings = Settings.from_env({"SPENDSENTRY_MAX_KEYS": "5", "SPENDSENTRY_PARTITIONS": "4"})
    assert settings.engine_config().max_keys == 5
    assert settings.backtest_engine_config().max_keys == 20
    assert settings.backtest_engine_config().group_bys == settings.engine_config().group_bys
