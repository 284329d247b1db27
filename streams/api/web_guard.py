"""What stands between the network and the routes: the read-token gate on every ``/v1/*`` route and
``/metrics``, request bodies read under a size limit and a read timeout, and decoded off the event
loop (which also sends the Kafka heartbeats), and destinations vetted by the SSRF guard when a
subscription is created or changed (docs: operations/security.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from alerts.ssrf import DestinationRefused, SsrfGuard
from streams.api.auth import TokenSettings, read_error
from streams.api.resources import Response, error

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: signed by Slack instead of a bearer token
OPEN_PATHS = frozenset({"/v1/slack/interactivity"})


def needs_read_token(path: str) -> bool:
    """Every ``/v1/*`` route (but Slack's signed callback) and ``/metrics``; ``/healthz`` and
    ``/openapi.json`` stay open."""
    return (path.startswith("/v1/") or path == "/metrics") and path not in OPEN_PATHS


def read_gate(settings: TokenSettings) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware answering 401 to a request without a read (or write) token."""

    @web.middleware
    async def require_read_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if needs_read_token(request.path) and (reason := read_error(request.headers, settings)) is not None:
            return web.json_response({"error": reason}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="spendsentry"'})
        return await handler(request)

    return require_read_token


async def read_body(request: Any, limit: int, timeout_s: float) -> bytes | Response:
    """The request body, or 413 (over ``limit`` bytes) or 408 (not sent within ``timeout_s``)."""
    if (request.content_length or 0) > limit:
        return error(413, f"body over {limit} bytes")
    try:
        body = await asyncio.wait_for(request.read(), timeout_s)
    except asyncio.TimeoutError:
        return error(408, f"request body not received within {timeout_s:g}s")
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"body over {limit} bytes")
    if len(body) > limit:
        return error(413, f"body over {limit} bytes")
    return body


async def off_loop(decode: Callable[..., T], *args: Any) -> T:
    """Run a CPU-bound decode in a thread, so a large body never stalls the event loop."""
    return await asyncio.to_thread(decode, *args)


async def vet_destination(guard: SsrfGuard, body: Mapping[str, Any]) -> Response | None:
    """422 with the reason when a webhook destination in ``body`` is refused by the SSRF guard."""
    destination = body.get("destination")
    if not isinstance(destination, Mapping) or destination.get("type") != "webhook":
        return None
    url = destination.get("url")
    if not isinstance(url, str):
        return None  # the validator answers 400 for it
    try:
        await guard.check(url)
    except DestinationRefused as exc:
        return error(422, exc.reason, field="destination.url", value=exc.url, rule="globally routable unicast")
    return None
