"""``spendsentry redeliver`` sends through the same SSRF guard as the worker."""

from __future__ import annotations

import time

import orjson
import pytest

from alerts.delivery import UndeliverableRecord
from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from schemas.subscription import Destination
from streams.cli import redeliver
from streams.config import Settings
from tests.support import make_alert


@pytest.fixture
async def receiver():
    server = WebhookReceiver(generate_secret())
    await server.start()
    yield server
    await server.stop()


def _fake_broker(monkeypatch: pytest.MonkeyPatch, dest: Destination) -> None:
    record = UndeliverableRecord(alert=make_alert().to_dict(), destination=dest.to_dict(masked=True),
                                 destination_key=dest.key, sink=dest.key, reason="gave up",
                                 first_attempt_at=time.time(), gave_up_at=time.time())

    async def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
        return [(b"k", orjson.dumps(record.to_dict()))]

    async def destinations(settings: Settings) -> dict[str, Destination]:
        return {dest.key: dest}

    monkeypatch.setattr(redeliver, "read_topic", read_topic)
    monkeypatch.setattr(redeliver, "destinations", destinations)


async def test_redeliver_refuses_what_the_worker_refuses(monkeypatch: pytest.MonkeyPatch,
                                                         receiver: WebhookReceiver) -> None:
    """A loopback destination the worker refused is refused by redeliver too (no request sent)."""
    _fake_broker(monkeypatch, Destination("webhook", url=receiver.url, secret=receiver.secret))
    ((_, result),) = await redeliver.run_redeliver(Settings())
    assert not result.ok and "loopback" in (result.error or "")
    assert receiver.received == []


async def test_redeliver_sends_to_an_allow_listed_destination(monkeypatch: pytest.MonkeyPatch,
                                                              receiver: WebhookReceiver) -> None:
    _fake_broker(monkeypatch, Destination("webhook", url=receiver.url, secret=receiver.secret))
    ((_, result),) = await redeliver.run_redeliver(Settings(webhook_allowlist=("127.0.0.0/8",)))
    assert result.ok and len(receiver.received) == 1
