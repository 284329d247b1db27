"""SSRF guard: private, loopback, link-local and metadata addresses refused unless allow-listed."""

from __future__ import annotations

import httpx
import pytest

from alerts.ssrf import DestinationRefused, GuardedTransport, SsrfGuard


@pytest.mark.parametrize("url, what", [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://[::1]/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
    ("http://[fe80::1]/hook", "link-local (cloud metadata)"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://localhost/hook", "loopback"),
])
async def test_forbidden_addresses_are_refused(url: str, what: str) -> None:
    with pytest.raises(DestinationRefused, match=what.replace("(", r"\(").replace(")", r"\)")):
        await SsrfGuard().check(url)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd"])
async def test_only_http_schemes(url: str) -> None:
    with pytest.raises(DestinationRefused, match="is not http or https"):
        await SsrfGuard().check(url)


async def test_public_address_passes() -> None:
    await SsrfGuard().check("https://93.184.216.34/hook")


async def test_allowlist_by_cidr_and_host() -> None:
    guard = SsrfGuard(["127.0.0.0/8", "internal.example"])
    await guard.check("http://127.0.0.1:9999/hook")
    await guard.check("http://internal.example/hook")
    with pytest.raises(DestinationRefused):
        await guard.check("http://10.0.0.1/hook")


async def test_transport_checks_every_request() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(204)

    transport = GuardedTransport(SsrfGuard(["93.184.216.34/32"]), httpx.MockTransport(handler))
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.post("http://93.184.216.34/hook")).status_code == 204
        with pytest.raises(DestinationRefused):
            await client.post("http://169.254.169.254/")
    assert calls == ["http://93.184.216.34/hook"]
