"""Parse an HTTP ingest body (one event, a JSON array, or NDJSON) into valid events and errors."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.errors import SchemaError, ValidationError
from schemas.usage import UsageEvent, validate_usage
from streams.sources.normalize import Normalizer



def _items(body: bytes) -> list[tuple[int, Any, str | None]]:
    """Decoded items with their index; an undecodable NDJSON line carries its error instead."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        items: list[tuple[int, Any, str | None]] = []
        for index, line in enumerate(l for l in body.splitlines() if l.strip()):
            try:
                items.append((index, orjson.loads(line), None))
            except orjson.JSONDecodeError as exc:
                items.append((index, None, f"invalid JSON: {exc}"))
        return items
    if isinstance(data, list):
        return [(index, item, None) for index, item in enumerate(data)]
    return [(0, data, None)]


def parse_events(body: bytes, fmt: str = "canonical",
                 normalize: Normalizer | None = None) -> tuple[list[UsageEvent], list[dict[str, Any]]]:
    """Valid events and one error record per rejected item (``index``, ``reason`` and, for
    rule violations, ``field``/``value``/``rule``). Good items are kept whatever the bad ones."""
    events: list[UsageEvent] = []
    errors: list[dict[str, Any]] = []
    for index, item, decode_error in _items(body):
        if decode_error is not None:
            errors.append({"index": index, "reason": decode_error})
            continue
        try:
            canonical = [item] if fmt == "canonical" or normalize is None else normalize(fmt, item)
            events.extend(validate_usage(each) for each in canonical)
        except SchemaError as exc:
            record: dict[str, Any] = {"index": index, "reason": exc.reason}
            if isinstance(exc, ValidationError):
                record.update(exc.as_dict())
            errors.append(record)
    return events, errors
