"""Subscription validation: every bad input is a ValidationError naming field, value and rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from alerts.signing import generate_secret
from schemas.errors import ValidationError
from schemas.subscription import Destination, Subscription, match_key, validate_subscription

SECRET = generate_secret()
BODY: dict[str, Any] = {
    "name": "llm-platform on-call", "match": {"team": "llm-platform", "model": "claude-*"},
    "alert_types": ["cost_spike", "budget_burn"], "min_severity": "warning", "min_impact_usd": 5,
    "destination": {"type": "webhook", "url": "https://hooks.example.com/x", "secret": SECRET},
}


def body(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(BODY)
    for k, v in changes.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def test_valid_subscription_and_defaults() -> None:
    sub = validate_subscription(body())
    assert sub.id.startswith("sub_") and len(sub.id) > 12
    assert ("cost_spike", "budget_burn") == sub.alert_types
    assert (5.0, "warning", True, 0.0) == (sub.min_impact_usd, sub.min_severity, sub.enabled, sub.cooldown_s)
    assert validate_subscription(body()).id != sub.id
    assert "sub_abcdef123456" == validate_subscription(body(), existing_id="sub_abcdef123456").id


def test_masking_and_round_trip() -> None:
    sub = validate_subscription(body())
    shown = sub.to_dict()
    assert shown["destination"]["secret"] == "whsec_****" + SECRET[-4:]
    assert SECRET not in str(shown)
    stored = sub.to_dict(masked=False)
    assert SECRET == stored["destination"]["secret"]
    assert sub == Subscription.from_dict(stored)
    pd = validate_subscription(body(destination={"type": "pagerduty", "routing_key": "a" * 28 + "wxyz"}))
    assert "****wxyz" == pd.to_dict()["destination"]["routing_key"]
    assert "a" * 28 not in str(pd.to_dict()) and pd.destination.key.startswith("pagerduty:")


def test_slack_and_cloudevents_destinations() -> None:
    assert "#llm-oncall" == validate_subscription(body(destination={"type": "slack", "channel": "#llm-oncall"})
                                                  ).destination.channel
    assert "C0123ABCD" == validate_subscription(body(destination={"type": "slack", "channel": "C0123ABCD"})
                                                ).destination.channel
    dest = body()["destination"] | {"cloudevents": True}
    assert validate_subscription(body(destination=dest)).destination.cloudevents


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": ""}, "name"), ({"name": ...}, "name"), ({"match": {"colour": "x"}}, "match.colour"),
    ({"match": {"model": ""}}, "match.model"), ({"match": {"model": "gpt-[4"}}, "match.model"),
    ({"match": ["model"]}, "match"), ({"alert_types": ["nope"]}, "alert_types[0]"),
    ({"alert_types": "cost_spike"}, "alert_types"), ({"min_severity": "page"}, "min_severity"),
    ({"min_impact_usd": -1}, "min_impact_usd"), ({"min_impact_usd": "5"}, "min_impact_usd"),
    ({"min_impact_usd": True}, "min_impact_usd"), ({"cooldown_s": -5}, "cooldown_s"),
    ({"destination": ...}, "destination"), ({"destination": {"type": "email"}}, "destination.type"),
    ({"destination": {"type": "webhook", "url": "ftp://x", "secret": SECRET}}, "destination.url"),
    ({"destination": {"type": "webhook", "url": "https://x.io/h", "secret": "abc"}}, "destination.secret"),
    ({"destination": {"type": "webhook", "url": "https://x.io/h", "secret": "whsec_%%"}}, "destination.secret"),
    ({"destination": {"type": "webhook", "url": "https://x.io/h", "secret": "whsec_YWJj"}}, "destination.secret"),
    ({"destination": {"type": "slack", "channel": "general"}}, "destination.channel"),
    ({"destination": {"type": "slack", "channel": "#x", "url": "https://x"}}, "destination.url"),
    ({"destination": {"type": "pagerduty", "routing_key": "short"}}, "destination.routing_key"),
    ({"enabled": "yes"}, "enabled"), ({"surprise": 1}, "surprise"),
])
def test_bad_input_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_subscription(body(**changes))
    assert field == info.value.field and info.value.rule
    assert "whsec_" + "x" not in str(info.value)


def test_secret_is_not_echoed_in_errors() -> None:
    bad = "whsec_" + "A" * 10
    with pytest.raises(ValidationError) as info:
        validate_subscription(body(destination={"type": "webhook", "url": "https://x.io/h", "secret": bad}))
    assert bad not in str(info.value)


def test_body_must_be_an_object_and_id_checked() -> None:
    with pytest.raises(ValidationError):
        validate_subscription([])
    with pytest.raises(ValidationError):
        validate_subscription(body(), existing_id="bud_123456789")


def test_match_key_semantics() -> None:
    assert match_key({"model": "claude-*", "team": "llm"}, {"model": "claude-3-5", "team": "llm"})
    assert not match_key({"model": "claude-*"}, {"model": "gpt-4o"})
    assert not match_key({"service": "x"}, {"model": "gpt-4o"})  # a dimension the key lacks never matches
    assert match_key({}, {"model": "gpt-4o"})
    assert match_key({"tags.tenant": "acme"}, {"tags.tenant": "acme", "model": "m"})
    assert not match_key({"model": "GPT-4O"}, {"model": "gpt-4o"})  # case-sensitive


def test_webhook_url_is_masked_in_responses_and_keys() -> None:
    """The URL of a Slack/Teams/Discord-style webhook is the secret: path and query never leave."""
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX?token=s3cr3tvalue"
    dest = Destination("webhook", url=url, secret="whsec_" + "A" * 32)
    shown = str(dest.to_dict(masked=True)) + dest.key
    for part in ("/services/T000/B000", "token=s3cr3tvalue", "XXXXXXXXXXXX"):
        assert part not in shown
    assert dest.to_dict(masked=False)["url"] == url
    assert dest.key == Destination("webhook", url=url, secret="whsec_" + "B" * 32).key
    assert dest.key != Destination("webhook", url=url + "2", secret="whsec_" + "A" * 32).key


class TestDigest:
    def test_digest_and_timezone_round_trip(self) -> None:
        sub = validate_subscription(body(digest="weekly", timezone="America/New_York"))
        assert (sub.digest, sub.timezone) == ("weekly", "America/New_York")
        again = Subscription.from_dict(sub.to_dict(masked=False))
        assert (again.digest, again.timezone) == ("weekly", "America/New_York")

    def test_timezone_defaults_to_utc_and_alert_subscriptions_show_no_digest(self) -> None:
        assert validate_subscription(body(digest="daily")).timezone == "UTC"
        assert "digest" not in validate_subscription(body()).to_dict()

    @pytest.mark.parametrize("value", ["hourly", "Daily", "", 1, None, ["daily"]])
    def test_bad_digest_is_one_validation_error(self, value: Any) -> None:
        """``null`` is no digest, and then a time zone is refused (it would do nothing)."""
        with pytest.raises(ValidationError) as err:
            validate_subscription(body(digest=value, timezone="UTC"))
        assert err.value.field == ("digest" if value is not None else "timezone")

    @pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "Europe/Paris\x00", 7, "x" * 300,
                                      "/usr/share/zoneinfo/UTC"])
    def test_bad_timezone_is_one_validation_error(self, zone: Any) -> None:
        with pytest.raises(ValidationError) as err:
            validate_subscription(body(digest="daily", timezone=zone))
        assert err.value.field == "timezone" and "IANA" in err.value.rule

    def test_a_digest_does_not_go_to_pagerduty(self) -> None:
        with pytest.raises(ValidationError) as err:
            validate_subscription(body(digest="daily", destination={"type": "pagerduty", "routing_key": "a" * 32}))
        assert err.value.field == "destination.type"
