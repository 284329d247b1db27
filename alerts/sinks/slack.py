"""Slack delivery through the Web API (bot token with ``chat:write``), not incoming webhooks.

One message per alert per channel. Firing: ``chat.postMessage`` with Block Kit and the
Acknowledge / Snooze 1h / Expected buttons (see :mod:`alerts.slack_blocks`); the message's
channel id, ``ts``, severity, state and the alert are kept in a :class:`SlackRefs` store (in
memory by default; the worker backs it with a table so a restart still threads). A repeat of the
same alert is a no-op unless its severity rose: then the parent is ``chat.update``-d and the
escalation is posted in the thread. Resolved: ``chat.update`` the parent to RESOLVED (no
buttons) and reply in its thread; with no parent known, post anew. :meth:`SlackSink.set_state`
applies a button click (ACKNOWLEDGED/SNOOZED/EXPECTED). Every ``chat.postMessage`` goes through a
per-channel :class:`ChannelPacer` (Slack allows about one message per second per channel).

Retries go through the SDK's retry-handler hook, but every wait is decided by our
:class:`~alerts.retry.RetryPolicy` and taken with the injected ``sleep``: the SDK's own
handlers call ``asyncio.sleep`` directly and parse ``Retry-After`` with ``int()``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from alerts.sink_protocol import DeliveryResult
from alerts.retry import ExponentialBackoff, RetryPolicy, Sleep, is_retryable, parse_retry_after
from alerts.slack_blocks import (escalation_reply_text, fallback_text, message_blocks, resolved_reply_text,
                                 state_reply_text)
from alerts.routing import severity_rank
from schemas.alert import Alert
from schemas.errors import DeliveryError

#: HTTP requests made by the current ``send`` (retries included); a ContextVar so concurrent sends don't mix
_REQUESTS: ContextVar[list[int] | None] = ContextVar("spendsentry_slack_requests", default=None)
#: the policy bounds the attempts; the SDK's per-handler count must never be the tighter limit
_UNBOUNDED = 1_000


class _PolicyWait:
    """Mixin for SDK retry handlers: the SDK class decides *what* is retryable, our policy *whether
    and how long*, and the injected sleep does the waiting."""

    _policy: RetryPolicy
    _sleep: Sleep

    def _wait(self, state: RetryState, response: HttpResponse | None, error: Exception | None) -> float | None:
        status = None if error is not None or response is None else response.status_code
        retry_after = None
        if response is not None:
            for name, values in response.headers.items():
                if name.lower() == "retry-after" and values:
                    retry_after = parse_retry_after(values[0] if isinstance(values, list) else values)
        # state.current_attempt counts retries already made, so the failed attempt is that + 1
        return self._policy.delay(state.current_attempt + 1, status=status, retry_after=retry_after)

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        matches = await super()._can_retry_async(  # type: ignore[misc]
            state=state, request=request, response=response, error=error)
        return bool(matches) and self._wait(state, response, error) is not None

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        await self._sleep(self._wait(state, response, error) or 0.0)
        state.increment_current_attempt()
        counter = _REQUESTS.get()
        if counter is not None:
            counter[0] += 1


class _RateLimitHandler(_PolicyWait, AsyncRateLimitErrorRetryHandler):
    """429 + ``Retry-After`` (fractional seconds and HTTP dates accepted)."""

    def __init__(self, policy: RetryPolicy, sleep: Sleep) -> None:
        super().__init__(max_retry_count=_UNBOUNDED)
        self._policy, self._sleep = policy, sleep


class _ServerErrorHandler(_PolicyWait, AsyncServerErrorRetryHandler):
    """Any 5xx (the SDK's class only retries 500 and 503)."""

    def __init__(self, policy: RetryPolicy, sleep: Sleep) -> None:
        super().__init__(max_retry_count=_UNBOUNDED)
        self._policy, self._sleep = policy, sleep

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or error is not None or not 500 <= response.status_code <= 599:
            return False
        return self._wait(state, response, error) is not None


class _ConnectionErrorHandler(_PolicyWait, AsyncConnectionErrorRetryHandler):
    """Refused/reset connections, server disconnects and timeouts."""

    def __init__(self, policy: RetryPolicy, sleep: Sleep) -> None:
        super().__init__(
            max_retry_count=_UNBOUNDED,
            error_types=[aiohttp.ServerConnectionError, aiohttp.ServerDisconnectedError,
                         aiohttp.ClientOSError, asyncio.TimeoutError],
        )
        self._policy, self._sleep = policy, sleep


def retry_handlers(policy: RetryPolicy, sleep: Sleep = asyncio.sleep) -> list[AsyncRetryHandler]:
    """SDK retry handlers driven by ``policy``: connection errors, 429 and 5xx."""
    return [_ConnectionErrorHandler(policy, sleep), _RateLimitHandler(policy, sleep), _ServerErrorHandler(policy, sleep)]


@runtime_checkable
class SlackRefs(Protocol):
    """Where the sink keeps each alert's message: ``key`` is :func:`slack_ref_key`; the value a plain
    dict ``{"channel", "ts", "severity", "state", "alert"}``. A Faust table fits as is."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def __setitem__(self, key: str, value: dict[str, Any]) -> None: ...


def slack_ref_key(channel: str, alert_id: str) -> str:
    return f"{channel}|{alert_id}"


class InMemorySlackRefs:
    """The default :class:`SlackRefs`: bounded, oldest evicted first."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max = max_entries

    def get(self, key: str) -> dict[str, Any] | None:
        return self._data.get(key)

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class ChannelPacer:
    """At most one post per ``interval_s`` per channel; other channels are not held up.

    Each caller reserves the next free slot of its channel and sleeps until it (no sleep when
    the slot is now), so concurrent sends to one channel queue up in order.
    """

    def __init__(self, interval_s: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}

    async def wait(self, channel: str) -> float:
        now = self._clock()
        slot = max(now, self._next.get(channel, now))
        self._next[channel] = slot + self.interval_s
        delay = slot - now
        if delay > 0:
            await self._sleep(delay)
        return delay


class SlackSink:
    """Posts alerts to one Slack channel and resolves them in place.

    A ``client`` passed in is used as is (its retry handlers and session are the caller's);
    otherwise one is built on ``base_url`` with policy-driven retry handlers and an aiohttp
    session that is opened on first use (inside the running loop) and closed by ``aclose``.
    """

    def __init__(
        self,
        token: str,
        channel: str,
        *,
        base_url: str = "https://slack.com/api/",
        client: AsyncWebClient | None = None,
        name: str = "slack",
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        timeout: int = 30,
        max_tracked: int = 10_000,
        refs: SlackRefs | None = None,
        pacer: ChannelPacer | None = None,
    ) -> None:
        self.name = name
        self.channel = channel
        self._timeout = timeout
        self._owns_client = client is None
        policy: RetryPolicy = retry if retry is not None else ExponentialBackoff()
        self._client = client if client is not None else AsyncWebClient(
            token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers(policy, sleep))
        self.refs: SlackRefs = refs if refs is not None else InMemorySlackRefs(max_tracked)
        self.pacer = pacer if pacer is not None else ChannelPacer(sleep=sleep)
        self._closed = False

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    def posted(self, alert_id: str) -> tuple[str, str] | None:
        """The (channel id, ts) of the message of ``alert_id`` in this sink's channel, if known."""
        ref = self.refs.get(slack_ref_key(self.channel, alert_id))
        return (str(ref["channel"]), str(ref["ts"])) if ref else None

    def _ensure_session(self) -> None:
        # The SDK opens and closes a new aiohttp session per request when it has none (or a closed
        # one); ours is made here, inside the running loop, and carries the timeout: with a session
        # supplied, the SDK's own ``timeout`` is not applied.
        if self._owns_client and (self._client.session is None or self._client.session.closed):
            self._client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def send(self, alert: Alert) -> DeliveryResult:
        return await self._run(lambda counter: self._deliver(alert, counter))

    async def post_message(self, text: str, blocks: list[dict[str, Any]]) -> DeliveryResult:
        """Post one standalone message (a spend digest) to the channel, paced and retried like alerts."""
        async def post(counter: list[int]) -> dict[str, Any]:
            response = await self._post(counter, text=text, blocks=blocks)
            return {"channel": str(response["channel"]), "ts": str(response["ts"])}

        return await self._run(post)

    async def set_state(self, alert_id: str, state: str, *, user: str | None = None) -> DeliveryResult:
        """Show a button's outcome (ACKNOWLEDGED/SNOOZED/EXPECTED) on the alert's message and in its thread."""
        return await self._run(lambda counter: self._set_state(alert_id, state, user, counter))

    async def _run(self, operation: Callable[[list[int]], Awaitable[dict[str, Any]]]) -> DeliveryResult:
        started = time.perf_counter()
        if self._closed:
            return DeliveryResult(sink=self.name, ok=False, attempts=0, error=str(
                DeliveryError("sink is closed", sink=self.name, retryable=False)), permanent=True)
        counter = [0]
        token = _REQUESTS.set(counter)
        try:
            self._ensure_session()
            ref = await operation(counter)
        except SlackApiError as exc:
            status = exc.response.status_code
            code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            error = DeliveryError(f"Slack API error {code or 'unknown'}", sink=self.name, status=status,
                                  retryable=is_retryable(status) or code in ("ratelimited", "internal_error",
                                                                             "service_unavailable"))
            return self._fail(counter[0], started, error)
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            text = str(exc)
            error = DeliveryError(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, sink=self.name)
            return self._fail(counter[0], started, error)
        finally:
            _REQUESTS.reset(token)
        return DeliveryResult(sink=self.name, ok=True, attempts=counter[0], status=200,
                              latency_s=time.perf_counter() - started, ref=ref)

    async def _post(self, counter: list[int], **kwargs: Any) -> Any:
        await self.pacer.wait(self.channel)
        counter[0] += 1
        return await self._client.chat_postMessage(channel=self.channel, **kwargs)

    async def _deliver(self, alert: Alert, counter: list[int]) -> dict[str, Any]:
        key = slack_ref_key(self.channel, alert.alert_id)
        ref = self.refs.get(key)
        text = fallback_text(alert)
        if ref is None:
            response = await self._post(counter, text=text, blocks=message_blocks(alert))
            state = "RESOLVED" if alert.status == "resolved" else "FIRING"
            ref = {"channel": str(response["channel"]), "ts": str(response["ts"]), "severity": alert.severity,
                   "state": state, "alert": alert.to_dict()}
            self.refs[key] = ref
            return {"channel": ref["channel"], "ts": ref["ts"]}
        channel, ts = str(ref["channel"]), str(ref["ts"])
        out: dict[str, Any] = {"channel": channel, "ts": ts}
        if alert.status == "firing":
            if ref.get("state") == "RESOLVED" or severity_rank(alert.severity) <= severity_rank(str(ref["severity"])):
                return out | {"duplicate": True}
            state = str(ref.get("state") or "FIRING")
            counter[0] += 1
            await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=message_blocks(alert, state))
            reply = await self._post(counter, thread_ts=ts,
                                     text=escalation_reply_text(alert, str(ref["severity"])))
            self.refs[key] = {**ref, "severity": alert.severity, "alert": alert.to_dict()}
            return out | {"reply_ts": str(reply["ts"]), "escalated": True}
        if ref.get("state") == "RESOLVED":
            return out | {"duplicate": True}
        counter[0] += 1
        await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=message_blocks(alert, "RESOLVED"))
        reply = await self._post(counter, thread_ts=ts, text=resolved_reply_text(alert))
        self.refs[key] = {**ref, "state": "RESOLVED", "alert": alert.to_dict()}
        return out | {"reply_ts": str(reply["ts"])}

    async def _set_state(self, alert_id: str, state: str, user: str | None, counter: list[int]) -> dict[str, Any]:
        key = slack_ref_key(self.channel, alert_id)
        ref = self.refs.get(key)
        if ref is None:
            raise SlackClientError(f"no message known for {alert_id} in {self.channel}")
        channel, ts = str(ref["channel"]), str(ref["ts"])
        if ref.get("state") == "RESOLVED":
            return {"channel": channel, "ts": ts, "ignored": "resolved"}
        alert = Alert.from_dict(ref["alert"])
        note = state_reply_text(state, user)
        counter[0] += 1
        await self._client.chat_update(channel=channel, ts=ts, text=fallback_text(alert),
                                       blocks=message_blocks(alert, state, note=note))
        reply = await self._post(counter, thread_ts=ts, text=note)
        self.refs[key] = {**ref, "state": state}
        return {"channel": channel, "ts": ts, "reply_ts": str(reply["ts"])}

    def _fail(self, attempts: int, started: float, error: DeliveryError) -> DeliveryResult:
        return DeliveryResult(sink=self.name, ok=False, attempts=attempts, status=error.status,
                              latency_s=time.perf_counter() - started, error=str(error), permanent=not error.retryable)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        session = self._client.session
        if self._owns_client and session is not None and not session.closed:
            await session.close()
