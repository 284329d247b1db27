"""The delivery side of the worker: route, group, gate, send, retry, record.

Thin glue around the pure pieces in :mod:`alerts` (Router, Grouper, NotificationGate,
RetryQueue, SinkFactory). Its state lives in global tables (every worker sees every entry,
writes go to the changelog from anywhere), wrapped as JSON mappings by :class:`JsonTable`.
Retries are run only by the worker that owns the alert's partition, so two workers never
retry the same delivery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import orjson

from alerts.sink_protocol import DeliveryResult
from alerts.delivery import PendingDelivery, RetryQueue, RetrySchedule, UndeliverableRecord
from alerts.destinations import SinkFactory
from alerts.routing import Grouper, NotificationGate, Route, Router
from alerts.sinks.log import LogSink
from alerts.ssrf import DestinationRefused, guarded_client
from schemas.alert import Alert
from schemas.subscription import Destination, Subscription
from streams.config import Settings
from streams.core.histogram import Histogram

log = logging.getLogger("spendsentry.delivery")


class JsonTable(MutableMapping[str, Any]):
    """A ``str -> JSON`` view of a Faust table of raw bytes."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        raw = self.table.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = orjson.dumps(value)

    def __delitem__(self, key: str) -> None:
        if self.table.get(key.encode()) is None:
            raise KeyError(key)
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)


class Owned(JsonTable):
    """Entries of alerts whose partition this worker owns (``id_of`` finds the alert id in a key)."""

    def __init__(self, table: Any, owns: Callable[[str], bool], id_of: Callable[[str], str]) -> None:
        super().__init__(table)
        self.owns = owns
        self.id_of = id_of

    def __iter__(self) -> Iterator[str]:
        for key in super().__iter__():
            if self.owns(self.id_of(key)):
                yield key


def default_destinations(settings: Settings) -> list[Destination]:
    """The sinks configured in the environment, as routing destinations."""
    out = [Destination(type="webhook", url=url, secret=settings.webhook_secret) for url in settings.webhook_urls]
    if settings.slack_token and settings.slack_channel:
        out.append(Destination(type="slack", channel=settings.slack_channel))
    return out


class DeliveryService:
    """Everything between ``spendsentry.alerts`` and the outside world."""

    def __init__(self, settings: Settings, tables: dict[str, Any], owns: Callable[[str], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.subscriptions = JsonTable(tables["subscriptions"])
        self.recent = JsonTable(tables["recent"])
        self.delivered = JsonTable(tables["delivered"])
        self.snoozed = JsonTable(tables["snoozed"])
        self.http = guarded_client(settings.webhook_allowlist, settings.webhook_timeout_s)
        self.factory = SinkFactory(slack_token=settings.slack_token, slack_api_url=settings.slack_api_url,
                                   slack_refs=JsonTable(tables["slack_refs"]), pagerduty_url=settings.pagerduty_api_url,
                                   webhook_client=self.http)
        self.router = Router(self._subscriptions(), default_destinations(settings), routes=JsonTable(tables["routes"]))
        self.grouper = Grouper(window_s=settings.group_window_s, clock=clock)
        #: firing alerts held in a grouping window, so a crash before the window closes loses none
        self.waiting = Owned(tables["waiting"], owns, id_of=lambda key: key.rsplit("|", 1)[-1])
        self._routes: dict[str, Route] = {}
        self._restored: set[str] = set()
        #: "<dest key>|<alert id>" -> set once that firing's delivery has settled (sent, queued or
        #: given up): a resolve that comes in meanwhile waits for it (see :meth:`_send`)
        self._settling: dict[str, asyncio.Event] = {}
        self.gate = NotificationGate(sent=JsonTable(tables["sent"]), clock=clock)
        schedule = RetrySchedule(settings.retry_delays, period_s=settings.retry_period_s) if settings.retry_delays \
            else RetrySchedule(period_s=settings.retry_period_s)
        self.retries = RetryQueue(schedule,
                                  pending=Owned(tables["pending"], owns, id_of=lambda key: key.split("|")[-2]),
                                  clock=clock, lookup=self.router.destination)
        self.log_sink = LogSink()
        self.undeliverable: list[UndeliverableRecord] = []
        #: metrics by sink kind (webhook/slack/pagerduty/log: destinations may hold secrets in URLs)
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.latency = Histogram()

    def _subscriptions(self) -> list[Subscription]:
        return [Subscription.from_dict(value) for value in self.subscriptions.values()]

    def reload(self) -> None:
        """Pick up subscription changes made through the API (on this or another worker)."""
        self.router.update(self._subscriptions())

    async def handle(self, alerts: list[Alert]) -> None:
        """Route one batch of alerts: what can go out goes out; firing alerts wait in their
        destination's grouping window (kept in a table) until :meth:`flush_due`."""
        self.reload()
        self._restore_waiting()
        for alert in alerts:
            slot = f"{alert.alert_id}:{alert.status}:{alert.severity}"
            if slot in self.delivered:
                log.info("alert %s %s already delivered; skipping replay", alert.alert_id, alert.status)
                continue
            routes = self.router.route(alert)
            if not routes:
                await self._record(alert, [await self.log_sink.send(alert)])
            for route in routes:
                await self._group(route, alert)
            self.delivered[slot] = self.clock()  # the time, for retention (streams/worker/retention.py)
        await self.flush_due()

    async def _group(self, route: Route, alert: Alert) -> None:
        dest = route.destination
        self._routes[dest.key] = route
        outs = self.grouper.add(dest, alert)
        waiting_key = f"{dest.key}|{alert.alert_id}"
        if self.grouper.is_waiting(dest.key, alert.type, alert.alert_id):
            self._restored.add(waiting_key)  # already in this process's grouper
            self.waiting[waiting_key] = {"route": {"destination": dest.to_dict(masked=True), "key": dest.key,
                                                   "subscription_id": route.subscription_id,
                                                   "cooldown_s": route.cooldown_s},
                                         "alert": alert.to_dict(), "at": self.clock()}
        for _, out in outs:
            await self._send(route, out)
        if not self.grouper.is_waiting(dest.key, alert.type, alert.alert_id):
            # only now: a crash during the sends above leaves the firing in the table, resent on restart
            self.waiting.pop(waiting_key, None)

    async def flush_due(self) -> None:
        """Send what the grouping windows that closed hold (one grouped message or single alerts)."""
        self._restore_waiting()
        for dest, alert in self.grouper.flush(self.clock()):
            await self._send(self._routes.get(dest.key) or Route(dest), alert)
            members = [m["alert_id"] for m in alert.details["members"]] if alert.details.get("grouped") \
                else [alert.alert_id]
            for member in members:
                self.waiting.pop(f"{dest.key}|{member}", None)

    def _restore_waiting(self) -> None:
        """After a restart or a rebalance, put the alerts that were waiting in a grouping window
        of a partition this worker now owns back into the grouper (each once)."""
        for key in list(self.waiting):
            if key in self._restored:
                continue
            self._restored.add(key)
            record = self.waiting.get(key)
            if record is None:
                continue
            r = record["route"]
            # found again by key (the table holds it masked); older versions stored it whole
            dest = self.router.destination(r["key"]) if "key" in r else Destination.from_dict(r["destination"])
            if dest is None:
                log.warning("alert %s was waiting for %s, which is no longer configured: dropped",
                            record["alert"]["alert_id"], r["key"])
                continue
            self._routes[dest.key] = Route(dest, r.get("subscription_id"), float(r.get("cooldown_s", 0.0)))
            self.grouper.add(dest, Alert.from_dict(record["alert"]), now=float(record["at"]))

    def _snoozed(self, alert: Alert) -> bool:
        until = self.snoozed.get(alert.alert_id)
        return alert.status == "firing" and until is not None and self.clock() < float(until)

    async def _send(self, route: Route, alert: Alert) -> None:
        dest = route.destination
        slot = f"{dest.key}|{alert.alert_id}"
        if alert.status == "resolved" and slot in self._settling:
            # its firing is in its inline retries (another task): until that settles the gate has
            # no record of it and would drop this resolve; the caller marks it delivered only after
            await self._settling[slot].wait()
        if self._snoozed(alert) or not self.gate.admit(dest, alert, cooldown_s=route.cooldown_s, record=False):
            return
        if alert.status == "resolved" and self.retries.firing_pending(dest, alert.alert_id) is not None:
            self.retries.queue_behind(alert, dest)  # never resolve before the firing went through
            self.gate.record(dest, alert)
            return
        if alert.status != "firing":
            return await self._deliver(route, alert)
        settled = self._settling[slot] = asyncio.Event()
        try:
            await self._deliver(route, alert)
        finally:
            if self._settling.get(slot) is settled:  # (an escalation may have started its own meanwhile)
                del self._settling[slot]
            settled.set()

    async def _deliver(self, route: Route, alert: Alert) -> None:
        """Send now; record the outcome (delivered, queued for a retry round, or undeliverable)."""
        dest = route.destination
        result = await self.send(dest, alert)
        if result.disable and route.subscription_id:
            self.disable(route.subscription_id, result.error or "endpoint gone")
        outcome = self.retries.on_result(alert, dest, result, subscription_id=route.subscription_id)
        self.gate.record(dest, alert)  # delivered, queued for retry, or given up (undeliverable): settled
        if isinstance(outcome, UndeliverableRecord):
            self.undeliverable.append(outcome)
        await self._record(alert, [result])

    async def send(self, dest: Destination, alert: Alert) -> DeliveryResult:
        try:
            return await self.factory.sink_for(dest).send(alert)
        except DestinationRefused as exc:
            log.error("delivery of %s refused: %s", alert.alert_id, exc)
            return DeliveryResult(sink=dest.key, ok=False, error=str(exc), permanent=True)
        except Exception as exc:  # a sink bug or refused destination is a failed delivery, not a crash
            log.exception("delivery of %s to %s raised", alert.alert_id, dest.key)
            return DeliveryResult(sink=dest.key, ok=False, error=f"{type(exc).__name__}: {exc}", permanent=True)

    async def retry_due(self) -> None:
        done, gave_up = await self.retries.run_due(self.send)
        for item, result in done:
            await self._record(Alert.from_dict(item.alert), [result])
        for record in gave_up:
            if record.disable and record.subscription_id:
                self.disable(record.subscription_id, record.reason)
        self.undeliverable += gave_up

    def disable(self, subscription_id: str, reason: str) -> None:
        """A destination answered 410 Gone: its subscription is switched off (visible on the API)."""
        stored = self.subscriptions.get(subscription_id)
        if stored is not None and stored.get("enabled", True):
            self.subscriptions[subscription_id] = {**stored, "enabled": False}
            log.error("subscription %s disabled: %s", subscription_id, reason)

    async def _record(self, alert: Alert, results: list[DeliveryResult]) -> None:
        """Keep the alert and every delivery attempt for ``GET /v1/alerts[/{id}]``."""
        for result in results:
            kind = result.sink.split(":", 1)[0]
            self.outcomes[(kind, "ok" if result.ok else "failed")] += 1
            self.latency.observe(result.latency_s, sink=kind)
        record = self.recent.get(alert.alert_id) or {"alert": alert.to_dict(), "deliveries": []}
        if alert.status == "resolved" or record["alert"]["status"] != "resolved":
            record["alert"] = alert.to_dict()
        record["deliveries"] += [
            {"sink": r.sink, "status": alert.status, "ok": r.ok, "attempts": r.attempts, "http_status": r.status,
             "latency_s": round(r.latency_s, 4), "error": r.error, "at": self.clock()}
            for r in results
        ]
        self.recent[alert.alert_id] = record

    def pending(self) -> list[PendingDelivery]:
        return [PendingDelivery.from_dict(v) for v in self.retries.pending.values()]

    async def aclose(self) -> None:
        await self.factory.aclose()
        await self.http.aclose()
