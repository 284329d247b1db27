"""SSRF guard for outbound webhook deliveries.

A webhook URL comes from an API user, so the worker must not become a proxy into the
private network: every request's host is resolved and refused when any address is loopback,
private, link-local (incl. cloud metadata 169.254.169.254), multicast, reserved or unspecified,
unless the host or the address is allow-listed (``SPENDSENTRY_WEBHOOK_ALLOWLIST``: hosts or
CIDRs, comma-separated). The check runs in the HTTP transport, so it applies to every attempt
(a DNS answer that changes between attempts is checked again).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Iterable

import httpx

from schemas.errors import SpendSentryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(SpendSentryError):
    """The destination is not allowed (scheme, forbidden address, unresolvable host)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"webhook destination {url} refused: {reason}")


def _forbidden(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for test, what in (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local (cloud metadata)"),
        (address.is_private, "private"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
    ):
        if test:
            return what
    return None


class SsrfGuard:
    """Decides whether a URL may be called. ``allowlist`` entries are hostnames or CIDRs."""

    def __init__(self, allowlist: Iterable[str] = ()) -> None:
        self.hosts: set[str] = set()
        self.networks: list[Network] = []
        for entry in allowlist:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry)

    def check_url(self, url: str) -> httpx.URL:
        """Static checks: scheme and host present. Raises :class:`DestinationRefused`."""
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise DestinationRefused(url, f"scheme {parsed.scheme!r} is not http or https")
        if not parsed.host:
            raise DestinationRefused(url, "no host")
        return parsed

    def allowed_address(self, host: str, address: IPAddress) -> str | None:
        """None when the address may be called for ``host``, else why not."""
        if host.lower() in self.hosts or any(address in net for net in self.networks):
            return None
        reason = _forbidden(address)
        return None if reason is None else f"{host} resolves to {address}, a {reason} address (allow-list it in SPENDSENTRY_WEBHOOK_ALLOWLIST)"

    async def check(self, url: str) -> None:
        """Resolve the URL's host and refuse it if any address is forbidden."""
        parsed = self.check_url(url)
        host = parsed.host
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            if host.lower() in self.hosts:
                return
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, parsed.port or 443, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise DestinationRefused(url, f"cannot resolve {host}: {exc}") from exc
            addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        for address in addresses:
            if (reason := self.allowed_address(host, address)) is not None:
                raise DestinationRefused(url, reason)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that runs the guard before every request it sends."""

    def __init__(self, guard: SsrfGuard, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.guard.check(str(request.url))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
