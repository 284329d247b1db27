"""Webhook CloudEvents, attempt logs, 410 disable, long-period retries, undeliverable, redelivery."""

from __future__ import annotations

import orjson

from alerts.cloudevents import CONTENT_TYPE, validate_cloudevent
from alerts.delivery import PendingDelivery, RetryQueue, RetrySchedule, UndeliverableRecord, redeliver
from alerts.receiver import WebhookReceiver
from alerts.retry import NoRetry
from alerts.signing import generate_secret
from alerts.sink_protocol import DeliveryResult
from alerts.sinks.webhook import WebhookSink, webhook_id
from schemas.alert import Alert
from schemas.subscription import Destination
from tests.support import SleepRecorder, make_alert

SECRET = generate_secret()


async def test_cloudevents_envelope_is_signed_and_verified() -> None:
    async with WebhookReceiver(SECRET) as rx:
        assert rx.url
        sink = WebhookSink(rx.url, SECRET, cloudevents=True, sleep=SleepRecorder())
        alert = make_alert()
        result = await sink.send(alert)
        await sink.aclose()
    assert result.ok and 0 == rx.rejected
    [got] = rx.received
    event = got["body"]
    assert [] == validate_cloudevent(event)
    assert ("1.0", "spendsentry", "com.spendsentry.alert.firing", webhook_id(alert)) == (
        event["specversion"], event["source"], event["type"], event["id"])
    assert ("model=gpt-4o, team=cx", "application/json", "2026-11-27T06:05:00Z") == (
        event["subject"], event["datacontenttype"], event["time"])
    assert alert == Alert.from_dict(event["data"])
    assert CONTENT_TYPE == sink.body(alert, 0)[1]
    assert [1] == [a["attempt"] for a in result.attempts_log]


async def test_410_flags_disable_and_logs_attempts() -> None:
    async with WebhookReceiver(SECRET) as rx:
        assert rx.url
        rx.fail_next(1, 410)
        sink = WebhookSink(rx.url, SECRET, sleep=SleepRecorder())
        result = await sink.send(make_alert())
        await sink.aclose()
    assert (False, True, True) == (result.ok, result.permanent, result.disable)
    assert [410] == [a["status"] for a in result.attempts_log]
    assert {"attempts_log", "disable", "permanent"} <= set(result.to_dict())


def test_schedule_follows_standard_webhooks_and_the_period() -> None:
    s = RetrySchedule(jitter=0.0)
    assert [5, 300, 1800, 7200] == [s.delay(n, 0) for n in range(1, 5)]
    assert s.delay(10, 0) is None and 272105 == s.total_s  # about 75.6 h
    short = RetrySchedule(delays=(5, 300, 1800), period_s=600, jitter=0.0)
    assert 300 == short.delay(2, 5) and short.delay(3, 305) is None


async def test_fails_for_a_while_then_delivered_without_blocking_others() -> None:
    """A receiver down for 3 rounds; the queue retries it on schedule while a healthy one is served at once."""
    now = [1000.0]
    queue = RetryQueue(RetrySchedule(delays=(5, 30, 60, 120), jitter=0.0), clock=lambda: now[0])
    async with WebhookReceiver(SECRET) as bad, WebhookReceiver(SECRET) as good:
        assert bad.url and good.url
        dest_bad = Destination("webhook", url=bad.url, secret=SECRET)
        dest_good = Destination("webhook", url=good.url, secret=SECRET)
        sinks = {d.key: WebhookSink(d.url or "", SECRET, retry=NoRetry(), sleep=SleepRecorder())
                 for d in (dest_bad, dest_good)}

        async def send(dest: Destination, alert: Alert):
            return await sinks[dest.key].send(alert)

        bad.fail_next(3, 503)
        alert = make_alert()
        first = await send(dest_bad, alert)
        pending = queue.on_result(alert, dest_bad, first)
        assert pending is not None and pending.next_at == 1005.0
        assert queue.on_result(alert, dest_good, await send(dest_good, alert)) is None
        assert 1 == len(good.received)  # not held up by the dead endpoint
        assert ([], []) == await queue.run_due(send)  # nothing due yet
        for t in (1005.0, 1035.0):
            now[0] = t
            [(_, result)], gave_up = await queue.run_due(send)
            assert not result.ok and [] == gave_up
        now[0] = 1095.0
        [(item, result)], gave_up = await queue.run_due(send)
        assert result.ok and [] == gave_up and {} == dict(queue.pending)
        assert [1, 2, 3, 4] == [a["attempt"] for a in item.attempts_log]
        assert 1 == len(bad.received) and 4 == len(bad.attempts)
        for s in sinks.values():
            await s.aclose()


async def test_undeliverable_after_the_period_then_redelivered() -> None:
    now = [0.0]
    queue = RetryQueue(RetrySchedule(delays=(5, 10), period_s=20, jitter=0.0), clock=lambda: now[0])
    async with WebhookReceiver(SECRET) as rx:
        assert rx.url
        dest = Destination("webhook", url=rx.url, secret=SECRET)
        sink = WebhookSink(rx.url, SECRET, retry=NoRetry(), sleep=SleepRecorder())
        rx.fail_next(100, 502)
        alert = make_alert()

        async def send(d: Destination, a: Alert):
            return await sink.send(a)

        queue.on_result(alert, dest, await sink.send(alert))
        now[0] = 5.0
        assert [] == (await queue.run_due(send))[1]
        now[0] = 15.0
        _, [record] = await queue.run_due(send)
        assert 3 == len(record.attempts) and "gave up" in record.reason
        assert SECRET not in orjson.dumps(record.to_dict()).decode()
        assert record.destination["secret"].startswith("whsec_****")
        back = UndeliverableRecord.from_dict(orjson.loads(orjson.dumps(record.to_dict())))
        assert back.destination_key == dest.key and 15.0 == back.gave_up_at
        rx.fail_next(0)
        [ok, missing] = await redeliver([back, back], lambda r: sink)
        assert ok.ok and missing.ok and 1 == len(rx.received)  # the receiver dedupes on webhook-id
        [gone] = await redeliver([back], lambda r: None)
        assert (False, True) == (gone.ok, gone.permanent)
        await sink.aclose()


async def test_permanent_failure_is_undeliverable_at_once() -> None:
    async with WebhookReceiver(SECRET) as rx:
        assert rx.url
        rx.fail_next(1, 410)
        sink = WebhookSink(rx.url, SECRET, sleep=SleepRecorder())
        dest = Destination("webhook", url=rx.url, secret=SECRET)
        record = RetryQueue(clock=lambda: 0.0).on_result(make_alert(), dest, await sink.send(make_alert()))
        await sink.aclose()
    assert isinstance(record, UndeliverableRecord) and record.disable


async def test_a_resolution_waits_behind_its_pending_firing_and_goes_after_it() -> None:
    """An incident tool must see trigger then resolve, even when the trigger needed retries."""
    from alerts.sink_protocol import DeliveryResult

    now = [0.0]
    queue = RetryQueue(RetrySchedule(delays=(5.0,), jitter=0.0), clock=lambda: now[0])
    dest = Destination("webhook", url="http://93.184.216.34/h", secret=generate_secret())
    firing, resolved = make_alert(), make_alert("resolved")
    queue.on_result(firing, dest, DeliveryResult(sink=dest.key, ok=False, status=503, error="down"))
    assert queue.firing_pending(dest, firing.alert_id) is not None
    queue.queue_behind(resolved, dest)
    sent: list[str] = []

    async def send(_dest: Destination, alert: Alert) -> DeliveryResult:
        sent.append(alert.status)
        return DeliveryResult(sink=dest.key, ok=True)

    now[0] = 6.0
    done, gave_up = await queue.run_due(send)
    assert sent == ["firing", "resolved"] and gave_up == [] and len(queue.pending) == 0


async def test_a_resolution_keeps_waiting_while_its_firing_still_fails() -> None:
    from alerts.sink_protocol import DeliveryResult

    now = [0.0]
    queue = RetryQueue(RetrySchedule(delays=(5.0, 5.0), period_s=3600, jitter=0.0), clock=lambda: now[0])
    dest = Destination("webhook", url="http://93.184.216.34/h", secret=generate_secret())
    queue.on_result(make_alert(), dest, DeliveryResult(sink=dest.key, ok=False, status=503, error="down"))
    queue.queue_behind(make_alert("resolved"), dest)
    sent: list[str] = []

    async def send(_dest: Destination, alert: Alert) -> DeliveryResult:
        sent.append(alert.status)
        return DeliveryResult(sink=dest.key, ok=False, status=503, error="still down")

    now[0] = 6.0
    await queue.run_due(send)
    assert sent == ["firing"] and len(queue.pending) == 2


async def test_pending_retries_hold_no_secret_and_find_the_destination_again_by_key() -> None:
    """A restarted worker's queue (``lookup``: the configured destinations) reads the pending table:
    the retry goes to the configured destination; one no longer configured is given up on."""
    url = "https://hooks.example.com/services/T0/B0/SECRETPATH?token=SECRETQUERY"
    dest = Destination("webhook", url=url, secret=SECRET)
    table: dict = {}
    failed = DeliveryResult(sink=dest.key, ok=False, error="503")
    RetryQueue(RetrySchedule(delays=(5.0,), jitter=0.0), pending=table, clock=lambda: 0.0).on_result(
        make_alert(), dest, failed)
    stored = orjson.dumps(table)
    assert b"SECRETPATH" not in stored and b"SECRETQUERY" not in stored and SECRET.encode() not in stored

    sent: list[Destination] = []

    async def send(d: Destination, a: Alert) -> DeliveryResult:
        sent.append(d)
        return DeliveryResult(sink=d.key, ok=True)

    configured = {dest.key: dest}
    restarted = RetryQueue(pending=dict(table), clock=lambda: 10.0, lookup=configured.get)
    [(_, result)], [] = await restarted.run_due(send)
    assert result.ok and sent == [dest]  # the whole URL and secret, from the configuration
    gone = RetryQueue(pending=dict(table), clock=lambda: 10.0, lookup={}.get)
    [(_, result)], [record] = await gone.run_due(send)
    assert record.reason == f"destination {dest.key} is no longer configured" and len(sent) == 1


def test_a_pending_retry_written_before_masking_is_read_masked_and_moved_to_its_key() -> None:
    dest = Destination("webhook", url="https://hooks.example.com/services/T0/B0/SECRETPATH", secret=SECRET)
    old = {"alert": make_alert().to_dict(), "destination": dest.to_dict(masked=False), "sink": dest.key,
           "first_attempt_at": 0.0, "next_at": 5.0}
    item = PendingDelivery.from_dict(old)
    assert item.destination_key == dest.key and item.destination == dest.to_dict(masked=True)
    table = {f"webhook:{dest.url}|{item.alert['alert_id']}|firing": old}
    assert [i.slot for i in RetryQueue(pending=table, clock=lambda: 10.0).due()] == [item.slot]
    assert list(table) == [item.slot] and b"SECRETPATH" not in orjson.dumps(table)  # moved, masked
