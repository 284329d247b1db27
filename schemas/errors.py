"""Typed errors shared by every spendsentry package.

    SpendSentryError
     ├── SchemaError              bad input: never retried, goes to the dead-letter topic
     │    ├── DecodeError         bytes that are not JSON (or not an object/array of objects)
     │    └── ValidationError     JSON that breaks a field rule: carries field, value, rule
     ├── ConfigError              bad operator configuration (env, price file, budgets)
     └── DeliveryError            an alert could not be delivered to a sink
"""

from __future__ import annotations

from typing import Any


class SpendSentryError(Exception):
    """Root of every error spendsentry raises on purpose."""


class SchemaError(SpendSentryError):
    """Input that can never be processed; its ``reason`` goes to the dead-letter record."""

    @property
    def reason(self) -> str:
        return str(self)


class DecodeError(SchemaError):
    """The message bytes are not a JSON object or array of objects."""


class ValidationError(SchemaError):
    """A field breaks a rule of the schema.

    ``field`` is a dotted path (``tags.team``), ``value`` the offending value (repr-truncated
    in the message), ``rule`` the rule in words.
    """

    def __init__(self, field: str, value: Any, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {rule} (got {shown})")

    def as_dict(self) -> dict[str, Any]:
        value = self.value if isinstance(self.value, (str, int, float, bool, type(None))) else repr(self.value)
        if isinstance(value, int) and not -(2**63) <= value < 2**64:  # JSON encoders refuse wider integers
            value = str(value)
        if isinstance(value, str) and len(value) > 200:
            value = value[:200]
        return {"field": self.field, "value": value, "rule": self.rule}


class ConfigError(SpendSentryError):
    """Operator configuration that cannot be used; the message names the setting."""


class DeliveryError(SpendSentryError):
    """Delivering an alert failed. ``retryable`` says whether trying again may succeed."""

    def __init__(self, message: str, *, sink: str, status: int | None = None, retryable: bool = True) -> None:
        self.sink = sink
        self.status = status
        self.retryable = retryable
        super().__init__(f"{sink}: {message}" + (f" (HTTP {status})" if status is not None else ""))
