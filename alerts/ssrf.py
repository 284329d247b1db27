"""SSRF guard for every outbound request to a destination an API user can name.

A webhook URL comes from an API user, so the worker must not become a proxy into the private
network. The rule is *globally routable unicast only*: an address is refused unless it is global
(IANA special-purpose registries), which refuses loopback, private, link-local (incl. cloud
metadata 169.254.169.254), shared address space (100.64.0.0/10, incl. 100.100.100.200),
192.0.0.0/24, site-local fec0::/10, multicast, reserved and unspecified addresses. An IPv6
address that embeds an IPv4 one (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64) is judged by
the IPv4 address it carries.

The decision and the connection use the same address: :class:`GuardedTransport` resolves the
host once, checks every answer, and connects to the checked address while the ``Host`` header
and the TLS SNI (and certificate check) keep the name. A name that answers a public address
first and 127.0.0.1 second (DNS rebinding) therefore never reaches 127.0.0.1.

Allow-list entries (``SPENDSENTRY_WEBHOOK_ALLOWLIST``, comma-separated) are a host, a host:port
or a CIDR. Every command that sends (the worker, ``spendsentry redeliver``) builds its HTTP
client with :func:`guarded_client`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpx

from schemas.errors import SpendSentryError
from schemas.subscription import mask_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``: the one DNS look-up of a request (tests pass their own)
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: not global, though Python 3.11's ``is_global`` says otherwise for some of them
_NOT_GLOBAL: tuple[tuple[Network, str], ...] = (
    (ipaddress.ip_network("100.64.0.0/10"), "shared address space (carrier-grade NAT, cloud metadata)"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignments"),
    (ipaddress.ip_network("fec0::/10"), "site-local"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "local-use NAT64"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(SpendSentryError):
    """The destination is not allowed (scheme, forbidden address, unresolvable host)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = mask_url(url)
        self.reason = reason
        super().__init__(f"webhook destination {self.url} refused: {reason}")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: IPv4-mapped, IPv4-compatible, 6to4, Teredo (client), NAT64."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(address.packed[-4:])
    if address.packed[:12] == bytes(12) and int(address) > 1:  # ::a.b.c.d (deprecated compatible form)
        return ipaddress.IPv4Address(address.packed[-4:])
    return None


def refusal(address: IPAddress) -> str | None:
    """None when ``address`` is globally routable unicast, else what it is."""
    if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)) is not None:
        why = refusal(inner)
        return None if why is None else f"{why} (embedded in {address})"
    for network, what in _NOT_GLOBAL:
        if address.version == network.version and address in network:
            return what
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
    return None if address.is_global else "not globally routable"


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]).split("%")[0] for info in infos]


class SsrfGuard:
    """Decides whether a URL may be called, and which address to connect to."""

    def __init__(self, allowlist: Iterable[str] = (), *, resolver: Resolver = system_resolver) -> None:
        self.hosts: set[str] = set()
        self.host_ports: set[tuple[str, int]] = set()
        self.networks: list[Network] = []
        self.resolver = resolver
        for entry in allowlist:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            host, sep, port = entry.rpartition(":")
            if sep and port.isdigit() and host and (":" not in host or host.startswith("[")):
                self.host_ports.add((host.strip("[]"), int(port)))
            else:
                self.hosts.add(entry.strip("[]"))

    def check_url(self, url: str) -> httpx.URL:
        """Static checks: scheme and host present. Raises :class:`DestinationRefused`."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise DestinationRefused(url, f"not a URL ({exc})") from None
        if parsed.scheme not in ("http", "https"):
            raise DestinationRefused(url, f"scheme {parsed.scheme!r} is not http or https")
        if not parsed.host:
            raise DestinationRefused(url, "no host")
        return parsed

    def _host_allowed(self, host: str, port: int) -> bool:
        return host in self.hosts or (host, port) in self.host_ports

    def allowed_address(self, host: str, address: IPAddress, port: int = 443) -> str | None:
        """None when the address may be called for ``host``, else why not."""
        if self._host_allowed(host.lower(), port) or any(address in net for net in self.networks):
            return None
        reason = refusal(address)
        return None if reason is None else (f"{host} resolves to {address}, a {reason} address "
                                            "(allow-list it in SPENDSENTRY_WEBHOOK_ALLOWLIST)")

    async def resolve(self, url: str) -> IPAddress | None:
        """The address to connect to for ``url``: resolved once, every answer checked (None: an
        allow-listed host, connected to by name). Raises :class:`DestinationRefused`."""
        parsed = self.check_url(url)
        host = parsed.host.lower()
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if self._host_allowed(host, port):
            return None
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                answers = await self.resolver(host, port)
                addresses = [ipaddress.ip_address(answer) for answer in answers]
            except (OSError, ValueError) as exc:
                raise DestinationRefused(url, f"cannot resolve {host}: {exc}") from None
            if not addresses:
                raise DestinationRefused(url, f"cannot resolve {host}: no address")
        for address in addresses:
            if (reason := self.allowed_address(host, address, port)) is not None:
                raise DestinationRefused(url, reason)
        return addresses[0]

    async def check(self, url: str) -> None:
        """Resolve the URL's host and refuse it if any address is forbidden."""
        await self.resolve(url)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that resolves and checks every request, then sends it to the checked
    address (``Host`` header and TLS SNI keep the name)."""

    def __init__(self, guard: SsrfGuard, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        address = await self.guard.resolve(str(url))
        if address is not None and url.host.lower() != str(address):
            request.url = url.copy_with(host=str(address))
            request.extensions = {**request.extensions, "sni_hostname": url.host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_client(allowlist: Iterable[str], timeout: float, *, resolver: Resolver = system_resolver,
                   inner: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The HTTP client every command sends alerts with: the guard on every request, no redirects."""
    return httpx.AsyncClient(transport=GuardedTransport(SsrfGuard(allowlist, resolver=resolver), inner),
                             timeout=timeout, follow_redirects=False)
