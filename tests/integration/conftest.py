"""Integration fixtures: the real local Kafka broker, real worker processes, real receivers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest

from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from streams.dev import localkafka
from streams.dev.demo import delete_topics
from tests.support import dead_port
from tests.support.slack_api import SlackAPIServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker() -> str:
    """The shared single-node broker on 127.0.0.1:9092 (started if needed, reused otherwise)."""
    return localkafka.up()


class Worker:
    """A real ``spendsentry worker`` process with its own app id and topic prefix."""

    def __init__(self, prefix: str, env: dict[str, str], log_path: Path) -> None:
        self.prefix = prefix
        self.env = env
        self.log_path = log_path
        self.port = int(env["SPENDSENTRY_WEB_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        tokens = [t for t in env.get("SPENDSENTRY_API_TOKENS", "").split(",") if t]
        #: reads need a token once any is configured
        self.auth = {"Authorization": f"Bearer {tokens[0]}"} if tokens else {}
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "streams.cli.main", "worker", "-l", "info"],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    async def ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.log()
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"worker not ready in {timeout}s\n{self.log()}")

    async def get(self, path: str) -> dict:
        async with httpx.AsyncClient(timeout=5.0, headers=self.auth) as client:
            response = await client.get(f"{self.url}{path}")
            response.raise_for_status()
            return response.json()

    async def text(self, path: str) -> str:
        async with httpx.AsyncClient(timeout=5.0, headers=self.auth) as client:
            response = await client.get(f"{self.url}{path}")
            response.raise_for_status()
            return response.text

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def topic_prefix() -> str:
    return f"it-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver(generate_secret())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackAPIServer]:
    server = SlackAPIServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def make_worker(broker: str, topic_prefix: str, tmp_path: Path) -> Iterator:
    """Build workers sharing one app id and prefix (so a second one is a restart or a peer)."""
    workers: list[Worker] = []

    def build(**extra: str) -> Worker:
        env = {
            **os.environ,
            "SPENDSENTRY_BROKER": f"kafka://{broker}",
            "SPENDSENTRY_TOPIC_PREFIX": topic_prefix,
            "SPENDSENTRY_APP_ID": topic_prefix,
            "SPENDSENTRY_WEB_PORT": str(dead_port()),
            "SPENDSENTRY_DATA_DIR": str(tmp_path / f"data-{len(workers)}"),
            "SPENDSENTRY_PARTITIONS": "4",
            "SPENDSENTRY_WEBHOOK_ALLOWLIST": "127.0.0.0/8",  # the local receivers; private ranges stay refused
            **extra,
        }
        worker = Worker(topic_prefix, env, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield build
    for worker in workers:
        worker.kill(signal.SIGTERM)
    # every test's topics go away with it: a broker holding thousands of partitions runs out of files
    asyncio.run(delete_topics(broker, (topic_prefix,)))


#: how long a "nothing more happened" check waits first: a grouping window (1.5 s) plus a delivery
SETTLE_S = 3.0


async def settle() -> None:
    """Give anything still on its way (a late alert, a second delivery) time to arrive before a
    check that it did not happen."""
    await asyncio.sleep(SETTLE_S)


async def eventually(check, timeout: float = 60.0, interval: float = 0.5, message: Any = "condition"):
    """Await ``check()`` (sync or async) until it returns something truthy.

    ``message`` is a string or a callable (sync or async) returning one: a callable is called
    when the check has failed, so the message shows what was seen then, not before the wait."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            if asyncio.iscoroutine(text):
                text = await text
            raise AssertionError(f"timed out after {timeout}s waiting for {text}")
        await asyncio.sleep(interval)


def assert_delivered_once(receiver: WebhookReceiver, *, escalations: bool = False) -> None:
    """Every alert state reached ``receiver`` in exactly one accepted request.

    Counts every request that reached it, not its deduplicated ``received`` view (which hides a
    repeated webhook-id): a second accepted POST of one webhook-id is a double delivery, and a
    second webhook-id for one (alert, status) is one a deduplicating receiver would not catch.
    With ``escalations`` an alert may fire again (a higher severity, a reopen): each firing, told
    apart by its ``triggered_at``, once."""
    accepted = Counter(attempt.webhook_id for attempt in receiver.attempts if attempt.status < 300)
    assert accepted and all(n == 1 for n in accepted.values()), accepted
    states = Counter((r["body"]["data"]["alert_id"], r["body"]["type"],
                      r["body"]["data"].get("triggered_at") if escalations else None) for r in receiver.received)
    assert all(n == 1 for n in states.values()), states
    assert set(accepted) == {r["webhook_id"] for r in receiver.received}
    assert receiver.rejected == 0
