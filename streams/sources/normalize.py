"""Provider payloads -> canonical, priced usage events (``spendsentry normalize``).

:func:`normalize_payload` is the pure entry point shared with the HTTP ingest endpoint;
:func:`normalize_lines` drives it over a JSON Lines file, collecting per-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import orjson

from schemas.errors import DecodeError, SchemaError, ValidationError
from schemas.providers import FORMATS, normalize_body
from schemas.usage import validate_usage
from streams.core.pricing import PriceCatalogue

#: provider format -> function turning one decoded item into canonical event dicts
Normalizer = Callable[[str, Any], list[dict]]

__all__ = ["FORMATS", "LineError", "Normalizer", "NormalizeResult", "normalize_payload", "normalize_lines", "price_events"]


def normalize_payload(format: str, data: Any, catalogue: PriceCatalogue | None = None) -> list[dict[str, Any]]:
    """Canonical event dicts (accepted by :func:`schemas.usage.validate_usage`) for one payload.

    ``data`` is a decoded provider body, an envelope ``{"timestamp", "event_id", "provider",
    "model", "service", "team", ..., "response": <body>}``, or a JSON array of those. With a
    ``catalogue``, events without ``cost_usd`` get one priced at their timestamp (unknown models
    stay unpriced). Raises :class:`~schemas.errors.ValidationError` / :class:`~schemas.errors.SchemaError`
    with a precise reason; an array is all-or-nothing (the error names the element).
    """
    if format not in FORMATS:
        raise SchemaError(f"unknown format {format!r} (use one of: {', '.join(FORMATS)})")
    if isinstance(data, list):
        events = []
        for index, item in enumerate(data):
            try:
                events.extend(normalize_body(format, item))
            except ValidationError as exc:
                raise ValidationError(f"[{index}].{exc.field}", exc.value, exc.rule) from None
            except SchemaError as exc:
                raise SchemaError(f"[{index}]: {exc}") from None
    else:
        events = normalize_body(format, data)
    if catalogue is not None:
        price_events(events, catalogue)
    return events


def price_events(events: list[dict[str, Any]], catalogue: PriceCatalogue) -> list[str]:
    """Add ``cost_usd`` in place where missing; returns the models that could not be priced."""
    unpriced = []
    for event in events:
        if event.get("cost_usd") is None:
            cost = catalogue.cost(validate_usage(event))
            if cost is None:
                unpriced.append(f"{event['provider']}/{event['model']}")
            else:
                event["cost_usd"] = round(cost, 10)
    return unpriced


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class NormalizeResult:
    events: int = 0
    errors: list[LineError] = field(default_factory=list)
    unpriced: dict[str, int] = field(default_factory=dict)


def normalize_lines(format: str, lines: Iterable[bytes], catalogue: PriceCatalogue | None,
                    result: NormalizeResult) -> Iterator[dict[str, Any]]:
    """Canonical events of every good line (1-based numbering counts blank lines too); the bad
    lines' errors go to ``result.errors``."""
    for number, raw in enumerate(lines, 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise DecodeError(f"not JSON: {exc}") from None
            events = normalize_payload(format, data)
        except SchemaError as exc:
            result.errors.append(LineError(number, exc.reason))
            continue
        if catalogue is not None:
            for model in price_events(events, catalogue):
                result.unpriced[model] = result.unpriced.get(model, 0) + 1
        result.events += len(events)
        yield from events
