"""CRUD over a global table for API-managed records (subscriptions, budgets).

Framework-free: handlers get the parsed request pieces and return ``(status, body)``; the
Faust views in :mod:`streams.api.routes` only adapt them.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import orjson

from schemas.errors import ValidationError

Validator = Callable[..., Any]  # (body, *, existing_id=None) -> record with .id, .to_dict()
Response = tuple[int, Any]


def error(status: int, reason: str, **extra: Any) -> Response:
    return status, {"error": reason, **extra}


def parse_body(body: bytes, limit: int) -> dict[str, Any] | Response:
    """The JSON object of a request, or an error response."""
    if len(body) > limit:
        return error(413, f"body over {limit} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, f"invalid JSON: {exc}")
    if not isinstance(data, dict):
        return error(400, "body must be a JSON object")
    return data


class Resource:
    """``/v1/<name>`` and ``/v1/<name>/{id}`` semantics over a ``str -> JSON`` mapping.

    Stored values are the unmasked form (``to_dict(masked=False)`` where the record has
    secrets); responses are ``render(record)``, which masks them.
    """

    def __init__(self, name: str, store: MutableMapping[str, Any], validate: Validator,
                 load: Callable[[dict], Any], render: Callable[[Any], dict], store_form: Callable[[Any], dict]) -> None:
        self.name = name
        self.store = store
        self.validate = validate
        self.load = load
        self.render = render
        self.store_form = store_form

    def _validated(self, data: dict, existing_id: str | None = None) -> Any | Response:
        try:
            return self.validate(data, existing_id=existing_id)
        except ValidationError as exc:
            return error(400, exc.reason, **exc.as_dict())

    def create(self, data: dict) -> Response:
        record = self._validated(data)
        if isinstance(record, tuple):
            return record
        self.store[record.id] = self.store_form(record)
        return 201, self.render(record)

    def list(self) -> Response:
        records = [self.load(value) for value in self.store.values()]
        return 200, {self.name: [self.render(r) for r in sorted(records, key=lambda r: r.id)]}

    def get(self, record_id: str) -> Response:
        value = self.store.get(record_id)
        if value is None:
            return error(404, f"{self.name[:-1]} {record_id} not found")
        return 200, self.render(self.load(value))

    def replace(self, record_id: str, data: dict, *, merge: bool) -> Response:
        """PUT (``merge=False``: the body is the whole record) or PATCH (top-level fields merged)."""
        stored = self.store.get(record_id)
        if stored is None:
            return error(404, f"{self.name[:-1]} {record_id} not found")
        body = {**{k: v for k, v in stored.items() if k != "id"}, **data} if merge else data
        record = self._validated(body, existing_id=record_id)
        if isinstance(record, tuple):
            return record
        self.store[record_id] = self.store_form(record)
        return 200, self.render(record)

    def delete(self, record_id: str) -> Response:
        if self.store.get(record_id) is None:
            return error(404, f"{self.name[:-1]} {record_id} not found")
        del self.store[record_id]
        return 204, None
