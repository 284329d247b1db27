"""The worker's delivery service with in-memory tables: 410 disables, log sink fallback, replays."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from schemas.subscription import validate_subscription
from streams.config import Settings
from streams.worker.alert_delivery import DeliveryService
from tests.support import make_alert


class FakeTable(dict):
    """What DeliveryService needs of a Faust table of bytes."""

    def keys(self) -> Iterator[bytes]:  # type: ignore[override]
        return iter(list(super().keys()))


NAMES = ("subscriptions", "recent", "delivered", "routes", "sent", "pending", "slack_refs", "snoozed", "waiting")


def service(tables: dict | None = None, clock=None, **settings: object) -> DeliveryService:
    settings.setdefault("group_window_s", 0.0)
    return DeliveryService(Settings(webhook_allowlist=("127.0.0.0/8",), **settings),  # type: ignore[arg-type]
                           tables if tables is not None else {name: FakeTable() for name in NAMES},
                           owns=lambda alert_id: True, **({"clock": clock} if clock else {}))


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


async def test_alerts_firing_together_are_grouped_and_survive_a_restart_in_the_window() -> None:
    """Three keys in one window: one grouped message, even when the worker restarts mid-window."""
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    now = [1000.0]
    tables = {name: FakeTable() for name in NAMES}
    first = service(tables, clock=lambda: now[0], group_window_s=10.0, webhook_urls=(url,),
                    webhook_secret=receiver.secret)
    alerts = [make_alert(key={"model": m, "service": "bot"}) for m in ("gpt-4o", "gpt-4o-mini", "o3")]
    await first.handle(alerts[:2])
    assert receiver.attempts == [] and len(tables["waiting"]) == 2
    await first.aclose()
    second = service(tables, clock=lambda: now[0], group_window_s=10.0, webhook_urls=(url,),
                     webhook_secret=receiver.secret)  # a restarted worker, same tables
    await second.handle(alerts[2:])
    now[0] += 11
    await second.flush_due()
    (delivery,) = receiver.received
    data = delivery["body"]["data"]
    assert data["details"]["grouped"] and data["details"]["count"] == 3 and data["key"] == {"service": "bot"}
    assert len(tables["waiting"]) == 0
    await second.aclose()
    await receiver.stop()


async def test_a_resolve_arriving_while_its_firing_is_being_delivered_follows_it() -> None:
    """The firing is still in its inline retries (another task: the grouping timer) when the
    resolve comes in: the resolve waits for the firing to settle, then goes out. It was dropped
    (the once-per-incident gate had no record of the firing yet) before the fix."""
    receiver = WebhookReceiver(generate_secret())
    url = await receiver.start()
    svc = service(webhook_urls=(url,), webhook_secret=receiver.secret)
    in_flight, release = asyncio.Event(), asyncio.Event()
    send = svc.send

    async def slow_firing(dest, alert):  # noqa: ANN001, ANN202 - the firing's delivery takes a while
        if alert.status == "firing":
            in_flight.set()
            await release.wait()
        return await send(dest, alert)

    svc.send = slow_firing  # type: ignore[method-assign]
    firing = asyncio.create_task(svc.handle([make_alert()]))
    await in_flight.wait()
    resolving = asyncio.create_task(svc.handle([make_alert("resolved")]))
    await asyncio.sleep(0.1)
    release.set()
    await asyncio.gather(firing, resolving)
    assert [r["body"]["type"] for r in receiver.received] == ["spendsentry.alert.firing", "spendsentry.alert.resolved"]
    await svc.aclose()
    await receiver.stop()
