"""The worker's digest service with in-memory tables: roll-ups, once per period, even across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson

from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from schemas.subscription import Subscription, validate_subscription
from streams.config import Settings
from streams.worker.alert_delivery import DeliveryService
from streams.worker.digests import SLOT_S, DigestService, rollup
from tests.support import make_alert

NAMES = ("subscriptions", "recent", "delivered", "routes", "sent", "pending", "slack_refs", "snoozed", "waiting",
         "budgets", "budget_state", "digest_spend", "digests")
#: 2026-06-02T00:00Z, a Tuesday
T0 = 1780358400.0
DIMS = ("provider", "model", "operation", "service", "team", "environment", "pipeline_stage", "experiment")


class FakeTable(dict):
    """What JsonTable needs of a Faust table of bytes (a restart keeps it: it is the changelog's content)."""

    def keys(self) -> Iterator[bytes]:  # type: ignore[override]
        return iter(list(super().keys()))


def seg(team: str, model: str) -> tuple:
    return tuple({"model": model, "team": team, "provider": "openai"}.get(d) for d in DIMS)


def engine(buckets: dict[float, dict[tuple, list]], closed_until: float) -> Any:
    store = SimpleNamespace(buckets=buckets, config=SimpleNamespace(horizon_s=86_400.0))
    return SimpleNamespace(segments=store, closed_until=closed_until)


def service(tables: dict, engines: dict, now: list[float]) -> DigestService:
    settings = Settings(webhook_allowlist=("127.0.0.0/8",), public_url="https://spend.example.com",
                        digest_delay_s=600.0)
    delivery = DeliveryService(settings, tables, owns=lambda _: True, clock=lambda: now[0])
    return DigestService(settings, tables, lambda: engines, delivery, owns=lambda _: True, clock=lambda: now[0])


def subscribe(tables: dict, url: str, secret: str, **changes: Any) -> Subscription:
    sub = validate_subscription({"name": "search daily", "match": {"team": "search"}, "digest": "daily",
                                 "timezone": "UTC", "destination": {"type": "webhook", "url": url, "secret": secret}}
                                | changes)
    tables["subscriptions"][sub.id.encode()] = orjson.dumps(sub.to_dict(masked=False))
    return sub


def test_rollup_sums_each_segment_of_the_slot() -> None:
    buckets = {T0: {seg("search", "gpt-4o"): [1.5, 0, 0, 0]}, T0 + 60: {seg("search", "gpt-4o"): [2.0, 0, 0, 0],
                                                                         seg("ads", "o3"): [0.0, 0, 0, 0]},
               T0 + SLOT_S: {seg("ads", "o3"): [9.0, 0, 0, 0]}}
    assert rollup(buckets, T0, T0 + SLOT_S) == [[*seg("search", "gpt-4o"), 3.5]]


async def test_a_closed_day_is_sent_once_even_across_a_restart() -> None:
    tables = {name: FakeTable() for name in NAMES}
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    sub = subscribe(tables, url, receiver.secret)
    # the 1st of June and the 2nd, one bucket of spend each hour; each partition's engine closed its day
    buckets = {T0 - 86_400 + h * 3600: {seg("search", "gpt-4o"): [1.0, 0, 0, 0]} for h in range(24)}
    buckets |= {T0 + h * 3600: {seg("search", "gpt-4o"): [2.0, 0, 0, 0], seg("ads", "o3"): [50.0, 0, 0, 0]}
                for h in range(24)}
    engines = {0: engine({s: b for s, b in buckets.items() if s >= T0}, T0 + 86_400),
               1: engine({s: b for s, b in buckets.items() if s < T0}, T0)}
    now = [T0 + 86_400 + 60.0]  # 00:01 on the 3rd: within the delay, the 2nd is not due yet
    first = service(tables, engines, now)
    assert await first.tick() == 1 and receiver.received[-1]["body"]["data"]["period"]["label"] == "2026-06-01"
    now[0] = T0 + 86_400 + 660.0
    assert await first.tick() == 1
    data = receiver.received[-1]["body"]["data"]
    assert data["period"]["label"] == "2026-06-02" and data["spend_usd"] == 48.0 and data["previous_spend_usd"] == 24.0
    assert data["dashboard_url"] == "https://spend.example.com/ui/?team=search"
    assert await first.tick() == 0

    restarted = service(tables, engines, now)  # same tables, fresh process state
    assert await restarted.tick() == 0
    assert len(receiver.attempts) == 2 and tables["digests"][sub.id.encode()]
    await first.delivery.aclose()
    await restarted.delivery.aclose()
    await receiver.stop()


async def test_a_permanent_failure_is_recorded_and_not_retried_every_minute() -> None:
    tables = {name: FakeTable() for name in NAMES}
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    receiver.fail_next(5, 400)
    subscribe(tables, url, receiver.secret)
    now = [T0 + 3600.0]
    svc = service(tables, {}, now)
    assert await svc.tick() == 0 and await svc.tick() == 0
    assert len(receiver.attempts) == 1
    (record,) = svc.sent.values()
    assert record["ok"] is False and "400" in record["error"]
    await svc.delivery.aclose()
    await receiver.stop()


async def test_a_digest_subscription_gets_no_alerts() -> None:
    tables = {name: FakeTable() for name in NAMES}
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    subscribe(tables, url, receiver.secret)
    svc = service(tables, {}, [T0 + 3600.0])
    alert = make_alert(key={"team": "search", "model": "gpt-4o"})
    await svc.delivery.handle([alert])
    assert receiver.attempts == [] and svc.delivery.recent[alert.alert_id]["deliveries"][0]["sink"] == "log"
    await svc.delivery.aclose()
    await receiver.stop()


async def test_a_disabled_digest_subscription_gets_no_digest() -> None:
    tables = {name: FakeTable() for name in NAMES}
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    subscribe(tables, url, receiver.secret, enabled=False)
    svc = service(tables, {}, [T0 + 3600.0])
    assert await svc.tick() == 0 and receiver.attempts == []
    await svc.delivery.aclose()
    await receiver.stop()
