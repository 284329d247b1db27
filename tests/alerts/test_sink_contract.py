"""One contract for every sink in ``alerts.sinks`` (River's ``check_estimator`` idea, for delivery).

Each sink, against a live endpoint and against a dead one, must: return a ``DeliveryResult``
for a firing and a resolved alert, never raise for a delivery failure, and close idempotently.
A new sink module fails ``test_every_sink_is_covered`` until it is added to ``FACTORIES``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

import alerts.sinks
from alerts.sink_protocol import DeliveryResult, Sink
from alerts.receiver import WebhookReceiver
from alerts.retry import ExponentialBackoff
from alerts.signing import generate_secret
from alerts.sinks.log import LogSink
from alerts.sinks.pagerduty import PagerDutySink
from alerts.sinks.slack import SlackSink
from alerts.sinks.webhook import WebhookSink
from tests.support import SleepRecorder, dead_port, make_alert
from tests.support.pagerduty_api import PagerDutyAPIServer
from tests.support.slack_api import SlackAPIServer

SECRET = generate_secret()
RETRY = ExponentialBackoff(max_attempts=3, base_s=0.01, max_s=0.05, jitter=0.0)
Factory = Callable[[AsyncExitStack, bool], Awaitable[Sink]]


async def log_sink(stack: AsyncExitStack, live: bool) -> Sink:
    return LogSink()


async def webhook_sink(stack: AsyncExitStack, live: bool) -> Sink:
    url = f"http://127.0.0.1:{dead_port()}/hook"
    if live:
        url = await (await stack.enter_async_context(WebhookReceiver(SECRET))).start()
    return WebhookSink(url, SECRET, retry=RETRY, sleep=SleepRecorder(), timeout=2.0)


async def slack_sink(stack: AsyncExitStack, live: bool) -> Sink:
    base_url = f"http://127.0.0.1:{dead_port()}/api/"
    if live:
        base_url = await (await stack.enter_async_context(SlackAPIServer(token="xoxb-t"))).start()
    return SlackSink("xoxb-t", "#alerts", base_url=base_url, retry=RETRY, sleep=SleepRecorder(), timeout=2)


async def pagerduty_sink(stack: AsyncExitStack, live: bool) -> Sink:
    base_url = f"http://127.0.0.1:{dead_port()}"
    if live:
        base_url = await (await stack.enter_async_context(PagerDutyAPIServer())).start()
    return PagerDutySink("R" * 32, base_url=base_url, retry=RETRY, sleep=SleepRecorder(), timeout=2.0)


FACTORIES: dict[type, Factory] = {LogSink: log_sink, WebhookSink: webhook_sink, SlackSink: slack_sink,
                                  PagerDutySink: pagerduty_sink}


def discovered_sinks() -> set[type]:
    """Every concrete class in an ``alerts.sinks`` module that has ``send`` and ``aclose``."""
    found: set[type] = set()
    for info in pkgutil.iter_modules(alerts.sinks.__path__, "alerts.sinks."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and not inspect.isabstract(cls) \
                    and callable(getattr(cls, "send", None)) and callable(getattr(cls, "aclose", None)):
                found.add(cls)
    return found


def test_every_sink_is_covered() -> None:
    assert discovered_sinks() == set(FACTORIES)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


@pytest.mark.parametrize("live", [True, False], ids=["live", "dead-endpoint"])
@pytest.mark.parametrize("cls", list(FACTORIES), ids=lambda c: c.__name__)
async def test_sink_contract(cls: type, live: bool, stack: AsyncExitStack) -> None:
    """Firing and resolved both yield a DeliveryResult named after the sink; nothing raises; aclose twice is fine."""
    sink = await FACTORIES[cls](stack, live)
    assert isinstance(sink, Sink) and isinstance(sink, cls)
    assert isinstance(sink.name, str) and sink.name
    results = [await sink.send(make_alert()), await sink.send(make_alert("resolved"))]
    for result in results:
        assert isinstance(result, DeliveryResult)
        assert sink.name == result.sink
        assert result.latency_s >= 0.0
        if live or cls is LogSink:
            assert result.ok, result.error
        else:
            assert not result.ok and result.error and result.attempts >= 1
    await sink.aclose()
    await sink.aclose()
    after = await sink.send(make_alert())  # a closed sink reports, it does not raise
    assert isinstance(after, DeliveryResult)
