"""CloudEvents 1.0 structured-mode JSON envelope for alerts (optional per webhook destination).

``{"specversion": "1.0", "id": <webhook-id>, "source": "spendsentry", "type":
"com.spendsentry.alert.firing"|"com.spendsentry.alert.resolved", "subject": <alert key text>,
"time": <triggered_at>, "datacontenttype": "application/json", "severitytext", "severitynumber",
"data": <alert>}`` sent as ``application/cloudevents+json``. The id equals the Standard Webhooks
``webhook-id`` (stable per alert id and status), so CloudEvents consumers dedupe on ``source``+``id``
exactly as webhook receivers dedupe on ``webhook-id``. Severity uses the CloudEvents severity
extension with OpenTelemetry numbers (INFO 9, WARN 13, ERROR 17).
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.alert import Alert, rfc3339

CONTENT_TYPE = "application/cloudevents+json"
SPECVERSION = "1.0"
SOURCE = "spendsentry"
TYPES = {"firing": "com.spendsentry.alert.firing", "resolved": "com.spendsentry.alert.resolved"}
SEVERITY_NUMBERS = {"info": 9, "warning": 13, "critical": 17}


def to_cloudevent(alert: Alert, event_id: str, *, source: str = SOURCE) -> dict[str, Any]:
    return {
        "specversion": SPECVERSION, "id": event_id, "source": source, "type": TYPES[alert.status],
        "subject": alert.key_text or "all", "time": rfc3339(alert.triggered_at),
        "datacontenttype": "application/json", "severitytext": alert.severity.upper(),
        "severitynumber": SEVERITY_NUMBERS.get(alert.severity, 9), "data": alert.to_dict(),
    }


def cloudevent_body(alert: Alert, event_id: str, *, source: str = SOURCE) -> bytes:
    return orjson.dumps(to_cloudevent(alert, event_id, source=source))


def validate_cloudevent(event: Any) -> list[str]:
    """Problems with a structured-mode event (empty = valid); for receivers and tests."""
    if not isinstance(event, dict):
        return ["event is not a JSON object"]
    problems = [f"missing required attribute {name}" for name in ("id", "source", "specversion", "type")
                if not isinstance(event.get(name), str) or not event.get(name)]
    if event.get("specversion") not in (None, SPECVERSION):
        problems.append(f"specversion must be {SPECVERSION}")
    for name in event:
        if name not in ("data", "data_base64") and (not name.isalnum() or name != name.lower()):
            problems.append(f"attribute name {name!r} must be lowercase alphanumeric")
    return problems
