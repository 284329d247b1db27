"""The dead-letter record of a message at the broker's size limit still fits in one record."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.app import create_app
from streams.config import Settings
from streams.core.engine import DeadLetter
from streams.core.pricing import PriceCatalogue
from streams.worker.runtime import DEADLETTER_MAX_BYTES


class Topic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **record: Any) -> None:
        self.sent.append(record)


async def test_a_dead_letter_keeps_at_most_its_bound_and_says_how_big_the_original_was(tmp_path) -> None:
    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path)})
    _, runtime = create_app(settings, PriceCatalogue.load(None))
    runtime.deadletter_topic = topic = Topic()
    message = SimpleNamespace(topic="usage", partition=2, offset=7, key=b"gpt-4o")
    await runtime.send_dead(DeadLetter("invalid JSON: depth limit exceeded", b"[" * 1_000_000), message)
    await runtime.send_dead(DeadLetter("invalid JSON", b"{"), message)
    big, small = topic.sent
    assert len(big["value"]) == DEADLETTER_MAX_BYTES and big["headers"]["spendsentry-truncated-from"] == b"1000000"
    assert small["value"] == b"{" and "spendsentry-truncated-from" not in small["headers"]
    assert big["headers"]["spendsentry-source"] == b"usage/2/7" and runtime.deadletters == 2
