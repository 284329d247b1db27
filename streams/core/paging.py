"""``limit`` and ``cursor`` paging for list endpoints (``GET /v1/alerts``, ``GET /v1/spend``).

A cursor is the sort key of the last item of the previous page, opaque to clients (URL-safe
base64 of JSON); the next page holds the items after it in the endpoint's order. A page is
picked with a bounded heap (``O(n log limit)``), never a sort of the whole collection.
"""

from __future__ import annotations

import base64
import binascii
import heapq
from datetime import datetime
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


class CursorError(ValueError):
    """A ``cursor`` query parameter that no page of this endpoint handed out."""


def encode_cursor(key: tuple) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(raw: str | None, shape: tuple[type, ...]) -> tuple | None:
    """The sort key in ``raw``, checked against ``shape`` (the types of its parts); None for no cursor."""
    if raw is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise CursorError("cursor: not a cursor this endpoint returned") from None
    if not isinstance(key, list) or len(key) != len(shape) or not all(
            isinstance(part, kind) and not isinstance(part, bool) for part, kind in zip(key, shape)):
        raise CursorError("cursor: not a cursor this endpoint returned")
    return tuple(key)


#: the order of ``GET /v1/alerts``: newest first, resolved before firing at the same time
_STATUS_RANK = {"resolved": 0, "firing": 1}
ALERT_CURSOR = (float, int, str)
SPEND_CURSOR = (float, str)


def alert_order(record: dict[str, Any]) -> tuple[float, int, str]:
    """A ``recent`` record's sort key; its alert's ``triggered_at`` is RFC 3339 as stored."""
    alert = record["alert"]
    triggered = datetime.fromisoformat(alert["triggered_at"].replace("Z", "+00:00")).timestamp()
    return -triggered, _STATUS_RANK.get(alert["status"], 2), str(alert["alert_id"])


def page(items: Iterable[T], sort_key: Callable[[T], tuple], limit: int,
         after: tuple | None) -> tuple[list[T], str | None]:
    """The ``limit`` smallest items by ``sort_key`` that sort after ``after``, and the cursor of
    the next page (None when this page is the last)."""
    candidates = items if after is None else (item for item in items if sort_key(item) > after)
    chosen = heapq.nsmallest(limit + 1, candidates, key=sort_key)
    if len(chosen) <= limit:
        return chosen, None
    chosen = chosen[:limit]
    return chosen, encode_cursor(sort_key(chosen[-1]))
