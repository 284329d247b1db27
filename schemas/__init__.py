"""Event and alert records: the data contracts of spendsentry."""

from schemas.alert import Alert, alert_id_for
from schemas.errors import (
    ConfigError,
    DecodeError,
    DeliveryError,
    SchemaError,
    SpendSentryError,
    ValidationError,
)
from schemas.usage import UsageEvent, validate_usage

__all__ = [
    "Alert",
    "ConfigError",
    "DecodeError",
    "DeliveryError",
    "SchemaError",
    "SpendSentryError",
    "UsageEvent",
    "ValidationError",
    "alert_id_for",
    "validate_usage",
]
