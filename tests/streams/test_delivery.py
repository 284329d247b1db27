"""The worker's delivery service with in-memory tables: 410 disables, log sink fallback, replays."""

from __future__ import annotations

from collections.abc import Iterator

from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from schemas.subscription import validate_subscription
from streams.config import Settings
from streams.delivery import DeliveryService
from tests.support import make_alert


class FakeTable(dict):
    """What DeliveryService needs of a Faust table of bytes."""

    def keys(self) -> Iterator[bytes]:  # type: ignore[override]
        return iter(list(super().keys()))


def service(**settings: object) -> DeliveryService:
    names = ("subscriptions", "recent", "delivered", "routes", "sent", "pending", "slack_refs", "snoozed")
    return DeliveryService(Settings(webhook_allowlist=("127.0.0.0/8",), **settings),  # type: ignore[arg-type]
                           {name: FakeTable() for name in names}, owns=lambda alert_id: True)


async def test_no_destination_goes_to_the_log_and_the_api() -> None:
    svc = service()
    alert = make_alert()
    await svc.handle([alert])
    record = svc.recent[alert.alert_id]
    assert record["deliveries"][0]["sink"] == "log" and record["deliveries"][0]["ok"]
    await svc.aclose()


async def test_a_replayed_alert_is_not_delivered_twice() -> None:
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    svc = service(webhook_urls=(url,), webhook_secret=receiver.secret)
    alert = make_alert()
    await svc.handle([alert])
    await svc.handle([alert])
    assert len(receiver.attempts) == 1
    await svc.aclose()
    await receiver.stop()


async def test_410_disables_the_subscription() -> None:
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    receiver.fail_next(10, 410)
    svc = service()
    sub = validate_subscription({"name": "gone", "match": {"model": "gpt-4o"},
                                 "destination": {"type": "webhook", "url": url, "secret": receiver.secret}})
    svc.subscriptions[sub.id] = sub.to_dict(masked=False)
    await svc.handle([make_alert()])
    assert svc.subscriptions[sub.id]["enabled"] is False
    assert len(receiver.attempts) == 1  # 410 is not retried
    await svc.aclose()
    await receiver.stop()
