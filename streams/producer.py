"""Send usage events to the usage topic, keyed by the partition-key dimensions.

Messages are keyed by the first group-by (``model`` by default) so that every event of a key
lands on one partition and the worker needs no repartition hop.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
import sys
from typing import Iterable, Iterator

import orjson
from aiokafka import AIOKafkaProducer

from schemas.errors import ConfigError


def message_key(event: dict, dims: tuple[str, ...]) -> bytes:
    """The Kafka key for an event: its partition-key dimension values joined by ``|``."""
    parts = []
    for dim in dims:
        value = event.get("tags", {}).get(dim[5:]) if dim.startswith("tags.") else event.get(dim)
        parts.append(value if isinstance(value, str) else "")
    return "|".join(parts).encode()


def key_message_key(key: dict[str, str], dims: tuple[str, ...]) -> bytes:
    """The same Kafka key for a flat key (an alert's ``{"model": ..., "tags.team": ...}``): a control
    record keyed so lands on the usage partition that owns the key."""
    return "|".join(key.get(dim) or "" for dim in dims).encode()


class UsageProducer:
    """A thin async producer for usage events (one per message, or arrays per key)."""

    def __init__(self, bootstrap: str, topic: str, key_dims: tuple[str, ...] = ("model",),
                 client_options: dict | None = None) -> None:
        self.topic = topic
        self.key_dims = key_dims
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024,
                                          acks=1, max_request_size=8 * 1024 * 1024, **(client_options or {}))
        self.sent_events = 0
        self.sent_messages = 0

    async def __aenter__(self) -> UsageProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send_raw(self, value: bytes, key: bytes | None = None) -> asyncio.Future:
        """Queue one message as is; the returned future resolves once the broker has it."""
        self.sent_messages += 1
        return await self._producer.send(self.topic, value=value, key=key)

    async def send_events(self, events: Iterable[dict], batch: int = 1) -> None:
        """Send events; with ``batch > 1``, as JSON arrays of up to ``batch`` events per key."""
        futures = []
        if batch <= 1:
            for event in events:
                futures.append(await self._producer.send(self.topic, orjson.dumps(event), key=message_key(event, self.key_dims)))
                self.sent_events += 1
        else:
            by_key: dict[bytes, list[dict]] = defaultdict(list)
            for event in events:
                by_key[message_key(event, self.key_dims)].append(event)
            for key, group in by_key.items():
                for i in range(0, len(group), batch):
                    chunk = group[i:i + batch]
                    futures.append(await self._producer.send(self.topic, orjson.dumps(chunk), key=key))
                    self.sent_events += len(chunk)
        self.sent_messages += len(futures)
        if futures:
            await asyncio.gather(*futures)

    async def flush(self) -> None:
        await self._producer.flush()


def read_lines(path: str) -> Iterator[bytes]:
    """Non-empty lines of a JSON Lines file (``-`` = stdin), as bytes."""
    try:
        handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the events file: {exc.strerror or exc}") from None
    try:
        for line in handle:
            line = line.strip()
            if line:
                yield line
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
