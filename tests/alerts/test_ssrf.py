"""SSRF guard: private, loopback, link-local and metadata addresses refused unless allow-listed."""

from __future__ import annotations

import httpx
import pytest

from alerts.ssrf import DestinationRefused, GuardedTransport, SsrfGuard, guarded_client, mask_url


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


@pytest.mark.parametrize("url, what", [
    ("http://100.100.100.200/latest/meta-data/", "shared address space"),
    ("http://100.64.0.1/hook", "shared address space"),
    ("http://192.0.0.8/hook", "IETF protocol assignments"),
    ("http://[fec0::1]/hook", "site-local"),
    ("http://[2002:7f00:1::]/hook", "loopback (embedded in 2002:7f00:1::)"),  # 6to4 of 127.0.0.1
    ("http://[2002:a00:1::]/hook", "private (embedded in 2002:a00:1::)"),  # 6to4 of 10.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/hook", "link-local (cloud metadata) (embedded"),  # NAT64 of 169.254.169.254
    ("http://[::127.0.0.1]/hook", "loopback (embedded"),  # IPv4-compatible
    ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook", "private (embedded"),  # Teredo client 10.0.0.1
    ("http://224.1.1.1/hook", "multicast"),
])
async def test_only_globally_routable_unicast_passes(url: str, what: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        await SsrfGuard().check(url)
    assert what in refused.value.reason


async def test_embedded_public_ipv4_passes() -> None:
    await SsrfGuard().check("http://[2002:5db8:d822::]/hook")  # 6to4 of 93.184.216.34


async def test_allowlist_by_host_and_port() -> None:
    guard = SsrfGuard(["hooks.internal:8443", "[::1]:9000"])
    await guard.check("https://hooks.internal:8443/x")
    await guard.check("http://[::1]:9000/x")
    with pytest.raises(DestinationRefused):
        await SsrfGuard(["127.0.0.1:8443"], resolver=_answers(["127.0.0.1"])).check("https://127.0.0.1:9999/x")


def _answers(*rounds: list[str]):
    """A resolver answering each look-up with the next round of addresses."""
    queue = list(rounds)

    async def resolve(host: str, port: int) -> list[str]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return resolve


async def test_dns_rebinding_connects_to_the_checked_address() -> None:
    """A name answering a public address first and 127.0.0.1 second: the request goes to the public
    address that was checked, with the name in the Host header and as TLS SNI."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    resolver = _answers(["93.184.216.34"], ["127.0.0.1"])
    async with guarded_client([], 5.0, resolver=resolver, inner=httpx.MockTransport(handler)) as client:
        assert (await client.post("https://rebind.example/hook")).status_code == 204
        with pytest.raises(DestinationRefused, match="loopback"):
            await client.post("https://rebind.example/hook")
    (request,) = seen
    assert request.url.host == "93.184.216.34"
    assert request.headers["Host"] == "rebind.example"
    assert request.extensions["sni_hostname"] == "rebind.example"


def test_refusal_shows_the_url_masked() -> None:
    refused = DestinationRefused("https://hooks.slack.com/services/T0/B0/SECRETxyz?token=abc", "loopback")
    assert "services" not in str(refused) and "token" not in str(refused)
    assert str(refused).startswith("webhook destination https://hooks.slack.com/…=abc#")


def test_mask_url_is_stable_and_hides_path_and_query() -> None:
    url = "https://user:pw@hooks.example.com:8443/T0/B0/XXXXXXXXXXXX?token=s3cr3t"
    masked = mask_url(url)
    assert masked == mask_url(url) != mask_url(url + "x")
    assert masked.startswith("https://hooks.example.com:8443/…cr3t#")
    for part in ("T0/B0", "token", "user", "pw@"):
        assert part not in masked
