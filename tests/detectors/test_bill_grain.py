"""Imported bills judged at their own grain (daily / hourly), per service and account."""

from __future__ import annotations

from schemas.alert import rfc3339
from schemas.usage import validate_usage
from detectors.bill_grain import BillGrainDetector, grain_of

DAY0 = 1_795_000_000.0 - 1_795_000_000.0 % 86400


def row(i: int, start: float, cost: float, *, hours: float = 24, service: str = "Bedrock", account: str = "111"):
    return validate_usage({"event_id": f"focus_{i}", "timestamp": start, "provider": "AWS", "model": service,
                           "service": service, "cost_usd": cost,
                           "tags": {"account": account, "charge_period_end": rfc3339(start + hours * 3600)}})


def test_grain_follows_the_charge_period() -> None:
    assert grain_of(DAY0, rfc3339(DAY0 + 3600)) == 3600
    assert grain_of(DAY0, rfc3339(DAY0 + 86400)) == 86400
    assert grain_of(DAY0, None) == 86400


def test_daily_spike_fires_once_then_resolves_and_reimports_are_dropped() -> None:
    """Ten days at $100 (two rows of $50 a day), then a $400 day: fires on that day, resolves the next."""
    detector = BillGrainDetector()
    n = 0
    alerts = []
    for day in range(14):
        daily = 400.0 if day == 10 else 100.0
        for _ in range(2):
            n += 1
            detector.add(row(n, DAY0 + day * 86400, daily / 2), daily / 2)
            alerts += detector.drain_alerts()
    detector.add(row(1, DAY0, 50.0), 50.0)  # the first row re-imported: its day is closed -> late
    assert [(a.type, a.status, a.key, a.window_start) for a in alerts] == [
        ("billing_spike", "firing", {"service": "Bedrock", "tags.account": "111"}, DAY0 + 10 * 86400),
        ("billing_spike", "resolved", {"service": "Bedrock", "tags.account": "111"}, DAY0 + 10 * 86400),
    ]
    assert alerts[0].observed == 400.0 and alerts[0].details["grain"] == "day"
    view = detector.view()[0]
    assert view["rows"] == 29 and view["late_rows"] == 1


def test_duplicate_rows_of_an_open_period_are_dropped() -> None:
    detector = BillGrainDetector()
    detector.add(row(1, DAY0, 10.0), 10.0)
    detector.add(row(1, DAY0, 10.0), 10.0)
    assert detector.duplicates == 1 and detector.view()[0]["total_cost_usd"] == 10.0
